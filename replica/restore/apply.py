"""Applying a restore plan: decode each file in plan order and write its pages in place.

* **File by file, in plan order**, into the temporary output: every page of every
  file is decoded once and written with ``pwrite`` at ``(pgno-1)*pageSize``; a later
  file's copy of a page overwrites an earlier one, and pages past the final Commit
  are not written. The result is the image Litestream's compactor-then-decode
  pipeline produces (latest page wins, pages past the final Commit dropped), but
  applying in order needs only one input open at a time, lets the fetch of later
  files overlap the application of earlier ones, and skips re-encoding every page.
  The decoder verifies each file's checksum as its last byte is read.
* **Every page must come from somewhere.** After the last file, each page
  ``1..Commit`` except the lock page must have been written by some file of the
  plan, or :func:`apply_plan` fails (:class:`~replica.restore.errors.CorruptBackupError`).
  This is what makes a plan that starts at a full image other than a snapshot safe.
  The pages written are kept as runs of consecutive numbers (:class:`Coverage`), so
  nothing is allocated from the Commit field of a header whose checksum has not been
  checked yet.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO, cast

import numpy as np
import numpy.typing as npt

from ltx.decoder import Decoder
from ltx.names import lock_pgno
from replica.restore.errors import CorruptBackupError
from replica.restore.fetch import Fetcher, FileStream
from replica.restore.plan import RestorePlan
from replica.storage.client import ReplicaClient

_WRITE_RUN = 4 * 1024 * 1024
"""Bytes gathered into one ``pwrite`` at most."""


class PageWriter:
    """Writes pages at ``(pgno-1)*pageSize``, coalescing runs of consecutive pages.

    An ``OSError`` (a full disk, a file too large) becomes a
    :class:`~replica.restore.errors.RestoreOutputError` through ``on_error``.
    """

    def __init__(
        self, fd: int, page_size: int, on_error: Callable[[OSError], Exception] | None = None
    ) -> None:
        self._fd = fd
        self._ps = page_size
        self._on_error = on_error
        self._start = 0
        self._next = 0
        self._parts: list[bytes] = []
        self._size = 0

    def write(self, pgno: int, page: bytes) -> None:
        if not self._parts or pgno != self._next or self._size >= _WRITE_RUN:
            self.flush()
            self._start = pgno
        self._parts.append(page)
        self._size += len(page)
        self._next = pgno + 1

    def flush(self) -> None:
        if not self._parts:
            return
        data = b"".join(self._parts)
        offset = (self._start - 1) * self._ps
        view = memoryview(data)
        try:
            while view:
                n = os.pwrite(self._fd, view, offset)
                view, offset = view[n:], offset + n
        except OSError as e:
            if self._on_error is None:
                raise
            raise self._on_error(e) from None
        self._parts, self._size = [], 0


U64Array = npt.NDArray[np.uint64]


class Coverage:
    """The pages written so far, as sorted, disjoint, non-touching runs ``[start, end]``.

    Memory grows with the number of runs in the pages actually decoded (one run for a
    snapshot), never with the page count a header claims: a damaged Commit field
    cannot make the restore allocate anything before its file's checksum is checked.
    """

    def __init__(self) -> None:
        self._starts: U64Array = np.zeros(0, dtype=np.uint64)
        self._ends: U64Array = np.zeros(0, dtype=np.uint64)

    def add(self, pgnos: U64Array) -> None:
        """Add strictly ascending page numbers."""
        if len(pgnos) == 0:
            return
        cut = np.flatnonzero(np.diff(pgnos) != 1) + 1
        starts = np.concatenate((self._starts, pgnos[np.concatenate(([0], cut))]))
        ends = np.concatenate((self._ends, pgnos[np.concatenate((cut - 1, [len(pgnos) - 1]))]))
        order = np.argsort(starts, kind="stable")
        starts, ends = starts[order], ends[order]
        reach = np.maximum.accumulate(ends)
        first = np.ones(len(starts), dtype=bool)
        first[1:] = starts[1:] > reach[:-1] + np.uint64(1)
        at = np.flatnonzero(first)
        self._starts = starts[at]
        self._ends = reach[np.concatenate((at[1:] - 1, [len(starts) - 1]))]

    def count(self) -> int:
        """How many distinct pages have been added."""
        return int((self._ends - self._starts).sum()) + len(self._starts)

    def missing(self, commit: int, skip: int, limit: int) -> list[int]:
        """The first ``limit`` pages of ``1..commit`` not added, leaving out ``skip``."""
        out: list[int] = []
        bounds = [*zip(self._starts.tolist(), self._ends.tolist(), strict=True), (commit + 1, commit + 1)]
        prev = 0
        for start, end in bounds:
            for p in range(prev + 1, min(start, commit + 1)):
                if p != skip:
                    out.append(p)
                    if len(out) == limit:
                        return out
            prev = max(prev, end)
        return out


def apply_plan(
    client: ReplicaClient,
    plan: RestorePlan,
    fd: int,
    page_size: int,
    commit: int,
    fetcher: Fetcher,
    on_bytes: Callable[[int], None],
    on_write_error: Callable[[OSError], Exception] | None = None,
) -> None:
    """Decode each plan file in order into ``fd``; verify headers, checksums and coverage.

    Memory does not depend on ``commit`` (read from a header before its checksum can be
    checked): the pages written are tracked as runs (:class:`Coverage`).
    ``on_write_error`` turns an ``OSError`` of a write into the error to raise.
    """
    seen = Coverage()
    writer = PageWriter(fd, page_size, on_write_error)
    for i, info in enumerate(plan.files):
        where = client.location(client.key(info.level, info.min_txid, info.max_txid))
        stream = FileStream(fetcher, i, on_bytes)
        dec = Decoder(cast(BinaryIO, stream), path=where, level=info.level)
        h = dec.header
        problem = None
        if (h.min_txid, h.max_txid) != (info.min_txid, info.max_txid):
            problem = f"header says TXIDs {h.min_txid:016x}-{h.max_txid:016x}, the file name {info.name}"
        elif h.page_size != page_size:
            problem = f"page size {h.page_size} differs from the plan's {page_size}"
        elif i == len(plan.files) - 1 and h.commit != commit:
            problem = f"commit {h.commit} differs from the {commit} read before"
        if problem is not None:
            raise CorruptBackupError(problem, path=where, level=info.level, txid=info.min_txid)
        for pgno, page in dec:
            if pgno <= commit:
                writer.write(pgno, page)
        writer.flush()
        pgnos = dec.page_index.pgnos
        seen.add(pgnos[: int(np.searchsorted(pgnos, np.uint64(commit), side="right"))])
    lock = lock_pgno(page_size)
    expected = commit - (1 if commit >= lock else 0)
    if seen.count() != expected:
        missing = expected - seen.count()
        first = seen.missing(commit, lock, 11)
        shown = ", ".join(str(p) for p in first[:10]) + (" ..." if len(first) > 10 else "")
        raise CorruptBackupError(
            f"the plan's files do not hold every page of the database: {missing} of {commit} "
            f"pages missing ({shown}); the first file is not a full image",
            path=client.location(client.key(plan.start.level, plan.start.min_txid, plan.start.max_txid)),
            level=plan.start.level,
            txid=plan.start.min_txid,
        )
