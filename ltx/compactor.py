"""Merge a run of LTX files into one, streaming.

For each page number the copy from the latest input wins; pages past the last
input's Commit are dropped and the lock page never appears. The output header
takes its TXID range from the first and last inputs, Commit and Timestamp from
the last, the pre-apply checksum from the first; its post-apply checksum is the
last input's. Memory holds one pending page per input plus the output's page
index, whatever the file sizes.

**Page-size changes.** A database that changed its page size (``VACUUM`` after
``PRAGMA page_size``) was written out whole at the new size, so the file where the
change happens is a full image and every page of the old size is superseded. The
output therefore has the last input's page size and is merged from the inputs of
that size at the end of the run only; the earlier inputs are still read to the end
(their checksums verified) but contribute no page. Such an output holds every page
``1..Commit`` (it is a full image, named by the whole run's TXID range); when the
inputs of the new size do not make one, the change has no full image after it and
the compaction fails with a :class:`CompactionError` naming that input. The
database checksum before the run cannot be known at the new page size, so a run
across a change merges only into a NoChecksum output or one starting at TXID 1.
Litestream's compactor refuses every run with two page sizes (so its level runs
fail forever after such a change).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import attrs

from ltx.decoder import Decoder
from ltx.encoder import Encoder
from ltx.errors import CompactionError, LTXError, PageOrderError
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
    levels: Sequence[int] | None = None,
    legacy_frames: bool = False,
    as_snapshot: bool = False,
) -> CompactResult:
    """Compact ``inputs`` (oldest first) into ``out`` and return the output's header and trailer.

    ``flags`` sets the output header flags; by default NoChecksum when any
    input has it (its database checksums are unknown), otherwise none.
    ``names`` and ``levels`` locate errors by input. Every input is fully decoded,
    so every input's checksums are verified; the first failure raises.
    ``as_snapshot`` writes the output as a snapshot (min TXID 1, no pre-apply
    checksum) whatever the first input's min TXID: the merged inputs must then hold
    every page, as when the first input is a full image. A run that changes page
    size is merged as the module docstring says.
    """
    if not inputs:
        raise CompactionError("at least one input file is required")
    labels = list(names) if names is not None else [f"input {i}" for i in range(len(inputs))]
    lvls: list[int | None] = list(levels) if levels is not None else [None] * len(inputs)
    decoders: list[Decoder] = []
    for i, f in enumerate(inputs):
        try:
            decoders.append(Decoder(f, path=labels[i], level=lvls[i]))
        except LTXError as e:
            raise e.located(path=labels[i], level=lvls[i]) from None
    first, last = decoders[0].header, decoders[-1].header
    for i, (prev, cur) in enumerate(itertools.pairwise(decoders), 1):
        if not allow_noncontiguous and not is_contiguous(
            prev.header.max_txid, cur.header.min_txid, cur.header.max_txid
        ):
            raise CompactionError(
                f"TXIDs not contiguous: {cur.header.min_txid:016x}-{cur.header.max_txid:016x} "
                f"cannot follow {prev.header.max_txid:016x}",
                path=labels[i],
                level=lvls[i],
                txid=cur.header.min_txid,
            )
    # the inputs of the last page size: earlier ones are superseded by a full image
    start = len(decoders) - 1
    while start > 0 and decoders[start - 1].header.page_size == last.page_size:
        start -= 1
    if flags is None:
        flags = FLAG_NO_CHECKSUM if any(d.header.no_checksum for d in decoders) else 0
    no_checksum = bool(flags & FLAG_NO_CHECKSUM)
    min_txid = 1 if as_snapshot else first.min_txid
    if start > 0 and not no_checksum and min_txid != 1:
        raise CompactionError(
            f"page size changes from {decoders[start - 1].header.page_size} to {last.page_size}: "
            "the database checksum before the run is unknown at the new page size, so the output "
            "must be NoChecksum",
            path=labels[start],
            level=lvls[start],
            txid=decoders[start].header.min_txid,
        )
    header = Header(
        page_size=last.page_size,
        commit=last.commit,
        min_txid=min_txid,
        max_txid=last.max_txid,
        timestamp=last.timestamp,
        flags=flags,
        pre_apply_checksum=0 if no_checksum or min_txid == 1 else first.pre_apply_checksum,
    )
    for d in decoders[:start]:
        d.verify()
    enc = Encoder(out, header, legacy_frames=legacy_frames)
    lock = header.lock_pgno
    must_be_full = start > 0 or as_snapshot
    for pgno, page in _merge(decoders[start:]):
        if pgno <= header.commit and pgno != lock:
            try:
                enc.write_page(pgno, page)
            except PageOrderError as e:
                if not must_be_full:
                    raise
                raise _not_full(decoders, labels, lvls, start, e.message) from None
    if must_be_full:
        expected = header.commit - (1 if header.commit >= lock else 0)
        if enc.page_count != expected:
            detail = f"{enc.page_count} of the {expected} pages of {last.page_size} bytes"
            raise _not_full(decoders, labels, lvls, start, detail)
    last_trailer = decoders[-1].trailer
    assert last_trailer is not None
    trailer = enc.close(None if no_checksum else last_trailer.post_apply_checksum)
    return CompactResult(header, trailer, enc.page_count, enc.bytes_written)


def _not_full(
    decoders: Sequence[Decoder], labels: Sequence[str], lvls: Sequence[int | None], start: int, detail: str
) -> CompactionError:
    """The error for an output that must be a full image but is not: located at input ``start``."""
    if start > 0:
        what = (
            f"the page size changes from {decoders[start - 1].header.page_size} to "
            f"{decoders[start].header.page_size} bytes here"
        )
    else:
        what = "the output is a snapshot"
    return CompactionError(
        f"{what}, but the inputs from here on are not a full image of the database ({detail})",
        path=labels[start],
        level=lvls[start],
        txid=decoders[start].header.min_txid,
    )


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
