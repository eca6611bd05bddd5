"""Merge a run of LTX files into one, streaming.

For each page number the copy from the latest input wins; pages past the last
input's Commit are dropped and the lock page never appears. The output header
takes its TXID range from the first and last inputs, Commit and Timestamp from
the last, the pre-apply checksum from the first; its post-apply checksum is the
last input's. Memory holds one pending page per input plus the output's page
index, whatever the file sizes.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import attrs

from ltx.decoder import Decoder
from ltx.encoder import Encoder
from ltx.errors import CompactionError, LTXError
from ltx.fileinfo import is_contiguous
from ltx.header import FLAG_NO_CHECKSUM, Header
from ltx.trailer import Trailer


@attrs.frozen
class CompactResult:
    header: Header
    trailer: Trailer
    page_count: int
    size: int


def compact(
    out: BinaryIO,
    inputs: Sequence[BinaryIO],
    *,
    flags: int | None = None,
    allow_noncontiguous: bool = False,
    names: Sequence[str] | None = None,
    legacy_frames: bool = False,
) -> CompactResult:
    """Compact ``inputs`` (oldest first) into ``out`` and return the output's header and trailer.

    ``flags`` sets the output header flags; by default NoChecksum when any
    input has it (its database checksums are unknown), otherwise none.
    ``names`` label errors by input. Every input is fully decoded, so every
    input's checksums are verified; the first failure raises.
    """
    if not inputs:
        raise CompactionError("at least one input file is required")
    labels = list(names) if names is not None else [f"input {i}" for i in range(len(inputs))]
    decoders: list[Decoder] = []
    for i, f in enumerate(inputs):
        try:
            decoders.append(Decoder(f, path=labels[i]))
        except LTXError as e:
            raise e.located(path=labels[i]) from None
    first, last = decoders[0].header, decoders[-1].header
    for prev, cur, label in zip(decoders, decoders[1:], labels[1:], strict=False):
        if cur.header.page_size != first.page_size:
            raise CompactionError(
                f"page size {cur.header.page_size} differs from {first.page_size}", path=label
            )
        if not allow_noncontiguous and not is_contiguous(
            prev.header.max_txid, cur.header.min_txid, cur.header.max_txid
        ):
            raise CompactionError(
                f"TXIDs not contiguous: {cur.header.min_txid:016x}-{cur.header.max_txid:016x} "
                f"cannot follow {prev.header.max_txid:016x}",
                path=label,
                txid=cur.header.min_txid,
            )
    if flags is None:
        flags = FLAG_NO_CHECKSUM if any(d.header.no_checksum for d in decoders) else 0
    no_checksum = bool(flags & FLAG_NO_CHECKSUM)
    header = Header(
        page_size=first.page_size,
        commit=last.commit,
        min_txid=first.min_txid,
        max_txid=last.max_txid,
        timestamp=last.timestamp,
        flags=flags,
        pre_apply_checksum=0 if no_checksum else first.pre_apply_checksum,
    )
    enc = Encoder(out, header, legacy_frames=legacy_frames)
    lock = header.lock_pgno
    for pgno, page in _merge(decoders):
        if pgno <= header.commit and pgno != lock:
            enc.write_page(pgno, page)
    last_trailer = decoders[-1].trailer
    assert last_trailer is not None
    trailer = enc.close(None if no_checksum else last_trailer.post_apply_checksum)
    return CompactResult(header, trailer, enc.page_count, enc.bytes_written)


def _merge(decoders: Sequence[Decoder]) -> Iterator[tuple[int, bytes]]:
    """k-way merge by page number; for a page held by several inputs, the latest wins.

    Every input iterator is driven to its end, so each input's trailer is
    verified before the merge finishes.
    """
    iters = [iter(d) for d in decoders]
    heap: list[tuple[int, int]] = []
    pending: dict[int, bytes] = {}

    def advance(i: int) -> None:
        nxt = next(iters[i], None)
        if nxt is not None:
            pending[i] = nxt[1]
            heapq.heappush(heap, (nxt[0], -i))

    for i in range(len(iters)):
        advance(i)
    while heap:
        pgno, neg = heapq.heappop(heap)
        winner = -neg
        page = pending.pop(winner)
        while heap and heap[0][0] == pgno:
            _, other = heapq.heappop(heap)
            del pending[-other]
            advance(-other)
        advance(winner)
        yield pgno, page
