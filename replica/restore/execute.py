"""Carrying out a restore: list the replica, plan, fetch, write a temporary file, publish it.

:func:`restore` is the entry point (Litestream's ``Replica.Restore`` and the
``litestream restore`` preparation of the output path, reference §5.1/§5.5);
:func:`calc_restore_plan` is the planning half alone (for ``-dry-run`` and for
the CLI's JSON ``txid``).

Design choices:

* **Apply file by file, in plan order**, into the temporary output: every page of
  every file is decoded once and written with ``pwrite`` at ``(pgno-1)*pageSize``;
  a later file's copy of a page overwrites an earlier one, pages past the final
  Commit are not written, and the file is finally truncated (or extended) to
  exactly ``Commit`` pages, so the lock page reads as zeros. The result is the
  image Litestream's compactor-then-decode pipeline produces (latest page wins,
  pages past the final Commit dropped, lock page zeroed), but applying in order
  needs only one input open at a time, lets the fetch of later files overlap the
  application of earlier ones, and skips the compactor's re-encoding of every page.
  The decoder verifies each file's checksum as its last byte is read, so every
  input is verified before the restore reports success.
* **Every page must come from somewhere.** After the last file, each page
  ``1..Commit`` except the lock page must have been written by some file of the
  plan, or the restore fails (:class:`CorruptBackupError`). This is what makes a
  plan that starts at a full image other than a snapshot safe: if the page index
  promise was wrong, the restore fails instead of leaving zeros. The pages written
  are kept as runs of consecutive numbers, so nothing is allocated from the Commit
  field of a header whose checksum has not been checked yet.
* **Streaming with bounded read-ahead, no temporary copies.** The plan's files are
  cut into ranged reads of :data:`CHUNK_SIZE` bytes, fetched by a thread pool of
  ``parallelism`` workers (so one large snapshot is downloaded in parallel too)
  and consumed strictly in order; at most ``2 * parallelism`` chunks are in flight
  or waiting, so memory stays under ``2 * parallelism * CHUNK_SIZE`` (32 MiB at the
  default 8) plus one page index, whatever the database size, and no disk space
  beyond the output is needed. Each ranged read is retried by the replica client.
* **Nothing at the output path on failure, and nothing replaced that the restore
  did not create.** Pages go to ``<output>.<random>.tmp``, created with ``O_EXCL``
  for this restore alone (:mod:`replica.restore.output`); on success it is truncated
  to size, fsynced and moved to the output without replacing anything that appeared
  there meanwhile (unless ``force``), and the directory is fsynced; on any failure,
  Ctrl-C included, it is removed. The plan (including its contiguity) is checked
  before the temporary file is created. OS errors on the output side are raised as
  :class:`~replica.restore.errors.RestoreOutputError` naming the output.
* **Page sizes and full images found by probing** (:mod:`replica.restore.probe`): the
  headers of the plan's files are read (100 bytes each, ``parallelism`` at a time) so
  that a plan never spans a page-size change; when no plan of one page size reaches
  the target, :func:`calc_restore_plan` reads the page index of the files
  :func:`~replica.restore.plan.probe_candidates` proposes (header, tail and index:
  three ranged reads each, at most :data:`MAX_PROBES`) until it finds a full image of
  the right page size to start from.
"""

from __future__ import annotations

import collections
import concurrent.futures
import datetime as dt
import functools
import io
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO, Literal, cast

import attrs
import numpy as np
import numpy.typing as npt

from ltx.decoder import Decoder, read_header
from ltx.errors import LTXError
from ltx.fileinfo import FileInfo
from ltx.layout import HEADER_SIZE
from ltx.names import lock_pgno
from replica.restore.errors import (
    CorruptBackupError,
    IntegrityCheckError,
    RestoreOptionsError,
)
from replica.restore.output import TempOutput, check_output, make_parent, output_error
from replica.restore.plan import (
    LEVELS,
    RestorePlan,
    RestoreTarget,
    check_contiguous,
)
from replica.restore.probe import MAX_PROBES as MAX_PROBES
from replica.restore.probe import is_full_image as is_full_image
from replica.restore.probe import plan_with_probes
from replica.restore.probe import probe_full_image as probe_full_image
from replica.storage.client import ReplicaClient

log = logging.getLogger(__name__)

IntegrityCheck = Literal["none", "quick", "full"]
INTEGRITY_CHECKS: tuple[str, ...] = ("none", "quick", "full")
Progress = Callable[[int, int], None]
"""``progress(done_bytes, total_bytes)``: called from the restoring thread as file data is applied."""

CHUNK_SIZE = 2 * 1024 * 1024
"""Bytes per ranged read of a plan file."""
MIN_LTX_SIZE = HEADER_SIZE
"""A listed file smaller than an LTX header cannot be one (Litestream's check)."""
_WRITE_RUN = 4 * 1024 * 1024


@attrs.frozen
class RestoreResult:
    """What a restore did.

    ``txid`` is the restored database's TXID; ``files`` the plan's files in apply
    order; ``bytes`` the bytes read from them; ``duration`` wall seconds. With
    ``if_db_not_exists`` and an existing output, ``skipped`` is true and nothing
    else is set.
    """

    output_path: str
    txid: int
    files: tuple[FileInfo, ...]
    bytes: int
    duration: float
    page_size: int = 0
    page_count: int = 0
    plan: RestorePlan | None = None
    skipped: bool = False


# --- listing and planning ---------------------------------------------------------------


def list_replica(
    client: ReplicaClient,
    *,
    use_metadata: bool = False,
    pool: concurrent.futures.Executor | None = None,
) -> dict[int, list[FileInfo]]:
    """Every level's files (levels 0..9), listed concurrently when ``pool`` is given.

    ``use_metadata`` asks object stores for the recorded LTX timestamps (needed for
    point-in-time restores on S3, where the listing's own time is the upload time).
    """
    if pool is None:
        return {lvl: client.list_files(lvl, use_metadata=use_metadata) for lvl in LEVELS}
    futures = {lvl: pool.submit(client.list_files, lvl, use_metadata=use_metadata) for lvl in LEVELS}
    return {lvl: fut.result() for lvl, fut in futures.items()}


def _plan_with_probes(
    client: ReplicaClient,
    listing: dict[int, list[FileInfo]],
    target: RestoreTarget,
    pool: concurrent.futures.Executor,
    batch: int,
    max_probes: int,
) -> RestorePlan:
    """The plan of :func:`replica.restore.probe.plan_with_probes`: one page size, starts found by probing."""
    return plan_with_probes(client, listing, target, pool=pool, batch=batch, max_probes=max_probes)


def _target(txid: int | None, timestamp: dt.datetime | None) -> RestoreTarget:
    if txid == 0:
        txid = None  # Litestream: 0 means latest
    return RestoreTarget(txid=txid, timestamp=timestamp)


def calc_restore_plan(
    client: ReplicaClient,
    *,
    txid: int | None = None,
    timestamp: dt.datetime | None = None,
    parallelism: int = 8,
    max_probes: int = MAX_PROBES,
) -> RestorePlan:
    """List the replica and plan a restore to ``txid`` / ``timestamp`` / latest (``None``, ``None``).

    Reads the headers of the plan's files (the plan has one page size) and probes page
    indexes for full images when Litestream's rule finds no such plan (see the module
    docstring). Raises :class:`~replica.restore.errors.RestorePlanError` subclasses and
    the errors of reading a plan file's header.
    """
    target = _target(txid, timestamp)
    if parallelism < 1:
        raise RestoreOptionsError(f"invalid parallelism {parallelism}: must be at least 1")
    with concurrent.futures.ThreadPoolExecutor(parallelism, thread_name_prefix="restore-plan") as pool:
        listing = list_replica(client, use_metadata=timestamp is not None, pool=pool)
        return _plan_with_probes(client, listing, target, pool, parallelism, max_probes)


# --- fetching -------------------------------------------------------------------------


@attrs.frozen
class _Chunk:
    index: int
    offset: int
    length: int


class _Fetcher:
    """The plan's files as one ordered stream of ranged reads, up to ``window`` ahead."""

    def __init__(
        self,
        client: ReplicaClient,
        files: Sequence[FileInfo],
        pool: concurrent.futures.Executor,
        window: int,
        chunk_size: int | None = None,
    ) -> None:
        self._client = client
        self._files = files
        self._pool = pool
        self._window = window
        self._chunk_size = chunk_size or CHUNK_SIZE  # read at call time: tests shrink it
        self._todo = self._chunks()
        self._ahead: collections.deque[tuple[_Chunk, concurrent.futures.Future[bytes]]] = collections.deque()

    def _chunks(self) -> Iterator[_Chunk]:
        for i, f in enumerate(self._files):
            for off in range(0, f.size, self._chunk_size):
                yield _Chunk(i, off, min(self._chunk_size, f.size - off))

    def chunk_count(self, index: int) -> int:
        return math.ceil(self._files[index].size / self._chunk_size)

    def _fill(self) -> None:
        while len(self._ahead) < self._window:
            c = next(self._todo, None)
            if c is None:
                return
            f = self._files[c.index]
            fut = self._pool.submit(
                self._client.read_file, f.level, f.min_txid, f.max_txid, c.offset, c.length
            )
            self._ahead.append((c, fut))

    def next(self, index: int) -> bytes:
        """The next chunk, which must belong to plan file ``index``."""
        self._fill()
        c, fut = self._ahead.popleft()
        assert c.index == index, "chunks are consumed in plan order"
        data = fut.result()
        self._fill()
        if len(data) != c.length:
            f = self._files[index]
            raise CorruptBackupError(
                f"file is shorter than listed: {len(data)} bytes at offset {c.offset}, expected {c.length} "
                f"(listed size {f.size})",
                path=self._client.location(self._client.key(f.level, f.min_txid, f.max_txid)),
                level=f.level,
                txid=f.min_txid,
            )
        return data

    def cancel(self) -> None:
        for _, fut in self._ahead:
            fut.cancel()
        self._ahead.clear()


class _FileStream(io.RawIOBase):
    """One plan file read through the :class:`_Fetcher`, front to back."""

    def __init__(self, fetcher: _Fetcher, index: int, on_bytes: Callable[[int], None]) -> None:
        super().__init__()
        self._fetcher = fetcher
        self._index = index
        self._left = fetcher.chunk_count(index)
        self._buf = memoryview(b"")
        self._on_bytes = on_bytes

    def readable(self) -> bool:
        return True

    def _more(self) -> bool:
        if self._left == 0:
            return False
        data = self._fetcher.next(self._index)
        self._left -= 1
        self._buf = memoryview(data)
        self._on_bytes(len(data))
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if not self._buf and not self._more():
            return b""
        out = bytes(self._buf[:size])
        self._buf = self._buf[size:]
        return out

    def readall(self) -> bytes:
        parts = [bytes(self._buf)]
        self._buf = memoryview(b"")
        while self._more():
            parts.append(bytes(self._buf))
            self._buf = memoryview(b"")
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer)))
        n = len(data)
        memoryview(buffer).cast("B")[:n] = data
        return n


# --- writing --------------------------------------------------------------------------


class _PageWriter:
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


class _Coverage:
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


def _preflight(client: ReplicaClient, plan: RestorePlan) -> tuple[int, int]:
    """Check the plan before anything is written; return (page size, final Commit)."""
    check_contiguous(plan.files)
    for f in plan.files:
        if f.size < MIN_LTX_SIZE:
            raise CorruptBackupError(
                f"invalid ltx file: level={f.level} min={f.min_txid:016x} max={f.max_txid:016x} "
                f"has size {f.size} bytes (minimum {MIN_LTX_SIZE})",
                path=client.location(client.key(f.level, f.min_txid, f.max_txid)),
                level=f.level,
                txid=f.min_txid,
            )
    last = plan.files[-1]
    where = client.location(client.key(last.level, last.min_txid, last.max_txid))
    raw = client.read_file(last.level, last.min_txid, last.max_txid, 0, HEADER_SIZE)
    try:
        header = read_header(io.BytesIO(raw))
    except LTXError as e:
        raise e.located(path=where, level=last.level, txid=last.min_txid) from None
    return header.page_size, header.commit


def _apply(
    client: ReplicaClient,
    plan: RestorePlan,
    fd: int,
    page_size: int,
    commit: int,
    fetcher: _Fetcher,
    on_bytes: Callable[[int], None],
    on_write_error: Callable[[OSError], Exception] | None = None,
) -> None:
    """Decode each plan file in order into ``fd``; verify headers, checksums and coverage.

    Memory does not depend on ``commit`` (read from a header before its checksum can be
    checked): the pages written are tracked as runs (:class:`_Coverage`).
    ``on_write_error`` turns an ``OSError`` of a write into the error to raise.
    """
    seen = _Coverage()
    writer = _PageWriter(fd, page_size, on_write_error)
    for i, info in enumerate(plan.files):
        where = client.location(client.key(info.level, info.min_txid, info.max_txid))
        stream = _FileStream(fetcher, i, on_bytes)
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


def _integrity_check(path: str, mode: str) -> None:
    pragma = "quick_check" if mode == "quick" else "integrity_check"
    try:
        con = sqlite3.connect(path, isolation_level=None)
        try:
            rows = tuple(str(r[0]) for r in con.execute(f"PRAGMA {pragma}").fetchmany(100))
        finally:
            con.close()
    except sqlite3.Error as e:
        rows = (f"error: {e}",)
    ok = rows == ("ok",)
    for suffix in ("-wal", "-shm") if ok else ("", "-wal", "-shm"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise output_error(path, f"cannot remove {path + suffix}", e) from None
    if ok:
        return
    raise IntegrityCheckError(
        f"{pragma} failed: {'; '.join(rows[:5])}; the restored database was removed", results=rows, path=path
    )


def restore(
    client: ReplicaClient,
    output_path: str | os.PathLike[str],
    *,
    txid: int | None = None,
    timestamp: dt.datetime | None = None,
    integrity_check: str = "none",
    if_db_not_exists: bool = False,
    force: bool = False,
    parallelism: int = 8,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore the database in ``client``'s replica to ``output_path``.

    Target: the latest state, the state after ``txid`` (inclusive; 0 means latest), or
    the state at ``timestamp`` (files created strictly before it). Not both.

    Output: refused if it is a directory, or non-empty, or has ``-wal``/``-shm``/
    ``-journal`` sidecars, unless ``force`` (then they are replaced/removed when the new
    file is renamed into place); an empty file is replaced. Without ``force``, a file or
    sidecar that appears at the output while the restore runs is never replaced: the
    restore fails with :class:`~replica.restore.errors.OutputExistsError` instead. With
    ``if_db_not_exists`` an existing output (even empty) is left alone and the result
    has ``skipped=True``. The parent directory is created (mode 0700) if missing.

    Guarantees on success: the output is the page image of the database at the
    returned TXID, exactly ``Commit`` pages, lock page zeroed; every file used was
    fully read and its checksum verified; the bytes were fsynced and atomically
    renamed, and the directory fsynced. ``integrity_check`` (``none``, ``quick`` or
    ``full``) then runs SQLite's check, removing the output on failure. On any
    failure nothing is left at the output path (a previous file there is untouched,
    except after a failed integrity check).

    Raises :class:`~replica.restore.errors.RestoreError` subclasses (an OS error on the
    output side is a :class:`~replica.restore.errors.RestoreOutputError` naming the
    output), decoder errors (:class:`ltx.errors.LTXError`, e.g. a file checksum
    mismatch) and :class:`~replica.errors.StorageError`.
    """
    started = time.monotonic()
    output = os.path.abspath(os.fspath(output_path))
    if integrity_check not in INTEGRITY_CHECKS:
        raise RestoreOptionsError(f"unsupported integrity check mode: {integrity_check!r}")
    if parallelism < 1:
        raise RestoreOptionsError(f"invalid parallelism {parallelism}: must be at least 1")
    target = _target(txid, timestamp)
    if if_db_not_exists and os.path.lexists(output):
        log.info("database already exists, skipping: %s", output)
        return RestoreResult(output, 0, (), 0, time.monotonic() - started, skipped=True)
    seen = check_output(output, force)

    with concurrent.futures.ThreadPoolExecutor(parallelism, thread_name_prefix="restore") as pool:
        listing = list_replica(client, use_metadata=timestamp is not None, pool=pool)
        plan = _plan_with_probes(client, listing, target, pool, parallelism, MAX_PROBES)
        page_size, commit = _preflight(client, plan)
        log.info(
            "restoring %s to %s: %d file(s), txid %016x-%016x, %d bytes",
            client.location(client.root),  # no query string: it may hold keys
            output,
            len(plan.files),
            plan.min_txid,
            plan.txid,
            plan.size,
        )
        make_parent(output)
        total = plan.size
        done = 0

        def on_bytes(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        if progress is not None:
            progress(0, total)
        fetcher = _Fetcher(client, plan.files, pool, window=2 * parallelism)
        tmp = TempOutput(output)
        try:
            on_error = functools.partial(tmp.error, "cannot write")
            _apply(client, plan, tmp.fd, page_size, commit, fetcher, on_bytes, on_error)
            tmp.publish(commit * page_size, force=force, seen=seen)
        except BaseException:
            fetcher.cancel()
            tmp.discard()
            raise

    if integrity_check != "none":
        _integrity_check(output, integrity_check)
    duration = time.monotonic() - started
    log.info("restored %s at txid %016x in %.3fs", output, plan.txid, duration)
    return RestoreResult(
        output_path=output,
        txid=plan.txid,
        files=plan.files,
        bytes=done,
        duration=duration,
        page_size=page_size,
        page_count=commit,
        plan=plan,
    )
