"""What a replica holds, judged without the implementation: decoding, shape, and replay.

Pure functions over bytes and :class:`~ltx.fileinfo.FileInfo` listings (no storage
I/O; whoever calls them fetched the bytes):

* :func:`decode_file` decodes and verifies one LTX file as a restore would, and
  checks what its name promises;
* :func:`listing_problems` checks the shape rules every compatible writer keeps
  (reference §4.8): one TXID per L0 file, L0 contiguous, each compacted level a
  contiguous chain, snapshots starting at TXID 1;
* :func:`apply_file` is a restore's step (latest page wins, truncate to Commit,
  lock page zero), so a chain of files can be *replayed* into a
  :class:`~model.state.DatabaseState` and compared with the model;
* :func:`reachable` tells which TXIDs Litestream's restore rule can reach from a
  listing (a chain of contiguous files starting at a snapshot, i.e. at TXID 1).
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import io
import itertools
from collections.abc import Iterable, Mapping, Sequence

import attrs

from ltx.decoder import Decoder
from ltx.errors import LTXError, PyLitestreamError
from ltx.fileinfo import FileInfo
from ltx.header import Header
from ltx.names import SNAPSHOT_LEVEL, format_filename, lock_pgno
from model.state import DatabaseState


class ReplicaFileError(PyLitestreamError, ValueError):
    """An LTX file in the replica does not decode, does not verify, or contradicts its name."""


def key_of(info: FileInfo) -> tuple[int, int, int]:
    return (info.level, info.min_txid, info.max_txid)


def describe(level: int, min_txid: int, max_txid: int) -> str:
    return f"L{level}/{format_filename(min_txid, max_txid)}"


@attrs.frozen
class LTXFile:
    """One decoded, verified replica file: its header and its pages in page order."""

    level: int
    header: Header
    pages: tuple[tuple[int, bytes], ...]
    size: int
    content: str
    """Digest of what a restore takes from the file (page size, Commit, pages), not of its
    bytes: two encodings of the same content, or two header timestamps, have one digest."""

    @property
    def min_txid(self) -> int:
        return self.header.min_txid

    @property
    def max_txid(self) -> int:
        return self.header.max_txid

    @property
    def created_at(self) -> dt.datetime:
        """The header timestamp: the file's logical creation time."""
        return dt.datetime.fromtimestamp(self.header.timestamp / 1000, dt.UTC)

    @property
    def name(self) -> str:
        return describe(self.level, self.min_txid, self.max_txid)

    @property
    def is_full_image(self) -> bool:
        """Whether the file holds every page ``1..Commit`` except the lock page."""
        c = self.header.commit
        if c == 0:
            return False
        expected = c - (1 if c >= lock_pgno(self.header.page_size) else 0)
        return len(self.pages) == expected


def decode_file(level: int, min_txid: int, max_txid: int, data: bytes) -> LTXFile:
    """Decode and fully verify ``data``, the file the replica lists as ``level/min-max``.

    Raises :class:`ReplicaFileError` when the decoder rejects it (bad checksum,
    pages out of order, the lock page, a page past Commit, ...), when the header's
    TXIDs differ from the name, or when an L0 file covers more than one TXID.
    """
    where = describe(level, min_txid, max_txid)
    try:
        dec = Decoder(io.BytesIO(data), path=where, level=level)
        pages = tuple(dec)
    except LTXError as e:
        raise ReplicaFileError(f"{where}: does not decode: {e}") from None
    h = dec.header
    if (h.min_txid, h.max_txid) != (min_txid, max_txid):
        raise ReplicaFileError(f"{where}: header says TXIDs {h.min_txid:016x}-{h.max_txid:016x}")
    if level == 0 and min_txid != max_txid:
        raise ReplicaFileError(f"{where}: an L0 file must cover exactly one TXID")
    lock = lock_pgno(h.page_size)
    if any(p == lock for p, _ in pages):
        raise ReplicaFileError(f"{where}: holds the lock page {lock}")
    d = hashlib.sha256(f"{h.page_size}:{h.commit}:".encode())
    for pgno, page in pages:
        d.update(pgno.to_bytes(4, "big"))
        d.update(page)
    return LTXFile(level, h, pages, len(data), d.hexdigest())


# -- shape of a listing -------------------------------------------------------------------


def listing_problems(listing: Mapping[int, Sequence[FileInfo]]) -> list[str]:
    """Violations of the replica shape rules; empty when the listing is well formed.

    * every L0 file covers one TXID, and L0 has no gap between its smallest and
      largest TXID except where one file of a higher level covers the whole gap
      (retention deleted L0 files that compaction had merged);
    * every level 1..8 is a chain: sorted by TXID, each file starts right after the
      previous one ends (no gap, no overlap);
    * every snapshot (level 9) starts at TXID 1.
    """
    out: list[str] = []
    l0 = sorted(listing.get(0, ()), key=lambda i: (i.min_txid, i.max_txid))
    for i in l0:
        if i.min_txid != i.max_txid:
            out.append(f"{describe(0, i.min_txid, i.max_txid)} covers more than one TXID")
    txids = sorted({i.max_txid for i in l0})
    higher = [i for lv in range(1, SNAPSHOT_LEVEL + 1) for i in listing.get(lv, ())]
    for lo_, hi_ in _gaps(txids):
        if not any(f.min_txid <= lo_ and f.max_txid >= hi_ for f in higher):
            out.append(
                f"L0 is not contiguous: TXIDs {lo_:016x}..{hi_:016x} are missing and no compacted "
                "file or snapshot covers them"
            )
    for level in range(1, SNAPSHOT_LEVEL):
        files = sorted(listing.get(level, ()), key=lambda i: (i.min_txid, i.max_txid))
        for prev, cur in itertools.pairwise(files):
            if cur.min_txid != prev.max_txid + 1:
                kind = "overlaps" if cur.min_txid <= prev.max_txid else "leaves a gap after"
                out.append(
                    f"L{level}: {describe(level, cur.min_txid, cur.max_txid)} {kind} "
                    f"{describe(level, prev.min_txid, prev.max_txid)}"
                )
    for i in listing.get(SNAPSHOT_LEVEL, ()):
        if i.min_txid != 1:
            name = describe(SNAPSHOT_LEVEL, i.min_txid, i.max_txid)
            out.append(f"{name} is a snapshot not starting at TXID 1")
    return out


def _gaps(txids: Sequence[int]) -> list[tuple[int, int]]:
    """Missing runs ``(first, last)`` inside a sorted list of TXIDs."""
    return [(a + 1, b - 1) for a, b in itertools.pairwise(txids) if b > a + 1]


def reachable(files: Iterable[FileInfo], *, before: dt.datetime | None = None) -> set[int]:
    """TXIDs a restore can reach by Litestream's rule: ends of contiguous chains from TXID 1.

    A file continues a chain ending at ``r`` when ``min <= r + 1`` and ``max > r``; a
    chain starts at a file with ``min == 1`` (a snapshot). With ``before``, only files
    created strictly before it count (a point-in-time restore).
    """
    usable = [f for f in files if before is None or f.created_at < before]
    usable.sort(key=lambda f: (f.max_txid, f.min_txid))
    ends: list[int] = []  # sorted
    for f in usable:
        ok = f.min_txid == 1
        if not ok:
            # any chain end r with min-1 <= r < max
            i = bisect.bisect_left(ends, f.min_txid - 1)
            ok = i < len(ends) and ends[i] < f.max_txid
        if ok:
            j = bisect.bisect_left(ends, f.max_txid)
            if j == len(ends) or ends[j] != f.max_txid:
                ends.insert(j, f.max_txid)
    return set(ends)


# -- replay ----------------------------------------------------------------------------------


@attrs.frozen
class Replayed:
    """A database rebuilt from replica files; ``missing`` lists pages no file supplied."""

    state: DatabaseState
    missing: frozenset[int] = frozenset()
    txid: int = 0

    @property
    def complete(self) -> bool:
        return not self.missing


def apply_file(base: Replayed | None, f: LTXFile) -> Replayed:
    """A restore step: ``f``'s pages over ``base`` (latest wins), size set to its Commit.

    A full image needs no base. Without a base, or past the base's size, pages the
    file does not hold are *missing* (zero in the state, listed in ``missing``): a
    restore that needs them cannot be right. The lock page is zero and never missing.
    Raises :class:`ReplicaFileError` for a page size that differs from the base's.
    """
    h = f.header
    ps = h.page_size
    commit = h.commit
    lock = lock_pgno(ps)
    if f.is_full_image or base is None:
        pages: dict[int, bytes] = dict(f.pages)
        state0 = DatabaseState(ps, ())
        missing = {p for p in range(1, commit + 1) if p not in pages and p != lock}
        return Replayed(state0.with_pages(pages, commit), frozenset(missing), f.max_txid)
    if base.state.page_size != ps:
        raise ReplicaFileError(f"{f.name}: page size {ps} differs from {base.state.page_size} before it")
    given = dict(f.pages)
    old = base.state.commit
    missing = {p for p in base.missing if p <= commit and p not in given}
    missing.update(p for p in range(old + 1, commit + 1) if p not in given and p != lock)
    return Replayed(base.state.with_pages(given, commit), frozenset(missing), f.max_txid)
