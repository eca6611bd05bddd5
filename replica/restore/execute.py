"""Carrying out a restore: list the replica, plan, fetch, write ``<output>.tmp``, rename.

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
  promise was wrong, the restore fails instead of leaving zeros. One byte per page
  of bookkeeping.
* **Streaming with bounded read-ahead, no temporary copies.** The plan's files are
  cut into ranged reads of :data:`CHUNK_SIZE` bytes, fetched by a thread pool of
  ``parallelism`` workers (so one large snapshot is downloaded in parallel too)
  and consumed strictly in order; at most ``2 * parallelism`` chunks are in flight
  or waiting, so memory stays under ``2 * parallelism * CHUNK_SIZE`` (32 MiB at the
  default 8) plus one page index, whatever the database size, and no disk space
  beyond the output is needed. Each ranged read is retried by the replica client.
* **Nothing at the output path on failure.** Pages go to ``<output>.tmp`` (held
  with an exclusive ``flock`` so two restores cannot interleave); on success it is
  fsynced, truncated to size, renamed over the output and the directory fsynced;
  on any failure it is removed. The plan (including its contiguity) is checked
  before the temporary file is created.
* **Full images found by probing.** When Litestream's plan cannot reach the target,
  :func:`calc_restore_plan` reads the page index of the files
  :func:`~replica.restore.plan.probe_candidates` proposes (header, tail and index:
  three ranged reads each, ``parallelism`` at a time, at most :data:`MAX_PROBES`)
  until it finds a full image to start from.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import datetime as dt
import fcntl
import io
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO, Literal, cast

import attrs

from ltx.decoder import Decoder, IndexedFile, read_header, read_page_index
from ltx.errors import LTXError
from ltx.fileinfo import FileInfo
from ltx.fsutil import fsync_dir
from ltx.layout import HEADER_SIZE
from ltx.names import lock_pgno
from replica.errors import FileNotFoundInReplicaError, StorageError
from replica.restore.errors import (
    CorruptBackupError,
    IntegrityCheckError,
    OutputExistsError,
    RestoreOptionsError,
    RestorePlanError,
)
from replica.restore.plan import (
    LEVELS,
    RestorePlan,
    RestoreTarget,
    check_contiguous,
    plan_restore,
    probe_candidates,
)
from replica.storage.client import ReplicaClient

log = logging.getLogger(__name__)

IntegrityCheck = Literal["none", "quick", "full"]
INTEGRITY_CHECKS: tuple[str, ...] = ("none", "quick", "full")
Progress = Callable[[int, int], None]
"""``progress(done_bytes, total_bytes)``: called from the restoring thread as file data is applied."""

CHUNK_SIZE = 2 * 1024 * 1024
"""Bytes per ranged read of a plan file."""
MAX_PROBES = 256
"""At most this many page indexes are read looking for a full image to start from."""
MIN_LTX_SIZE = HEADER_SIZE
"""A listed file smaller than an LTX header cannot be one (Litestream's check)."""
SIDECAR_SUFFIXES = ("-wal", "-shm", "-journal")
_WRITE_RUN = 4 * 1024 * 1024
_PROBE_BUFFER = 32 * 1024


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


def is_full_image(indexed: IndexedFile) -> bool:
    """Whether a file's page index holds every page ``1..Commit`` except the lock page.

    The index is strictly ascending with every page at most Commit (checked by
    :func:`ltx.decoder.read_page_index`), so the right count without the lock page
    means exactly that set.
    """
    h = indexed.header
    if h.commit == 0:
        return False
    lock = h.lock_pgno
    expected = h.commit - (1 if h.commit >= lock else 0)
    return len(indexed.index) == expected and indexed.index.entry(lock) is None


def probe_full_image(client: ReplicaClient, info: FileInfo) -> bool:
    """Read a file's header and page index (ranged reads) and tell whether it is a full image.

    A file that is missing, damaged, or whose header TXIDs differ from its name is
    not (it cannot start a plan); storage failures other than "not found" propagate.
    """
    where = client.location(client.key(info.level, info.min_txid, info.max_txid))
    try:
        with client.open_file(
            info.level, info.min_txid, info.max_txid, size=info.size or None, buffer_size=_PROBE_BUFFER
        ) as f:
            indexed = read_page_index(f, path=where, level=info.level)
    except FileNotFoundInReplicaError:
        return False
    except StorageError:
        raise
    except LTXError as e:
        log.debug("probe %s: not usable as a full image: %s", where, e)
        return False
    h = indexed.header
    if (h.min_txid, h.max_txid) != (info.min_txid, info.max_txid):
        return False
    return is_full_image(indexed)


def _plan_with_probes(
    client: ReplicaClient,
    listing: dict[int, list[FileInfo]],
    target: RestoreTarget,
    pool: concurrent.futures.Executor,
    batch: int,
    max_probes: int,
) -> RestorePlan:
    try:
        return plan_restore(listing, target)
    except RestorePlanError as e:
        first_error = e
    candidates = probe_candidates(listing, target)[:max_probes]
    known: set[FileInfo] = set()
    for at in range(0, len(candidates), batch):
        group = candidates[at : at + batch]
        found = list(pool.map(lambda f: probe_full_image(client, f), group))
        known.update(f for f, full in zip(group, found, strict=True) if full)
        if known:  # candidates come best first: nothing later can be a better start
            break
    if not known:
        raise first_error
    log.info(
        "restore: starting from full image(s) %s (no snapshot chain reaches %s)",
        ", ".join(f"L{f.level}/{f.name}" for f in sorted(known)),
        target,
    )
    return plan_restore(listing, target, full_images=known)


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

    Probes page indexes for full images when Litestream's rule finds no plan (see the
    module docstring). Raises :class:`~replica.restore.errors.RestorePlanError` subclasses.
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
    """Writes pages at ``(pgno-1)*pageSize``, coalescing runs of consecutive pages."""

    def __init__(self, fd: int, page_size: int) -> None:
        self._fd = fd
        self._ps = page_size
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
        while view:
            n = os.pwrite(self._fd, view, offset)
            view, offset = view[n:], offset + n
        self._parts, self._size = [], 0


class _TempOutput:
    """``<output>.tmp``, exclusively locked; :meth:`commit` renames it over the output."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.path = output + ".tmp"
        self.folder = os.path.dirname(output)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise OutputExistsError(
                    f"cannot restore, another restore is writing {self.path}", path=output
                ) from None
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                st = None
            mine = os.fstat(fd)
            if st is not None and (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
                break
            os.close(fd)  # the previous holder renamed or removed it meanwhile: open afresh
        os.ftruncate(fd, 0)
        self.fd = fd
        self._open = True

    def commit(self, size: int, *, force: bool) -> None:
        os.ftruncate(self.fd, size)
        os.fsync(self.fd)
        for suffix in SIDECAR_SUFFIXES:
            side = self.output + suffix
            if not os.path.lexists(side):
                continue
            if not force:
                raise OutputExistsError(
                    f"cannot restore, SQLite sidecar path already exists: {side}. Use -force to overwrite",
                    path=side,
                )
            os.unlink(side)
        os.replace(self.path, self.output)
        fsync_dir(self.folder)
        os.close(self.fd)
        self._open = False

    def discard(self) -> None:
        if not self._open:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)
        self._open = False


def _check_output(output: str, force: bool) -> None:
    if os.path.isdir(output):
        raise OutputExistsError(f"cannot restore, output path is a directory: {output}", path=output)
    if os.path.exists(output) and os.path.getsize(output) > 0 and not force:
        raise OutputExistsError(
            f"cannot restore, output path already exists and is not empty: {output}. Use -force to overwrite",
            path=output,
        )
    if not force:
        for suffix in SIDECAR_SUFFIXES:
            if os.path.lexists(output + suffix):
                raise OutputExistsError(
                    f"cannot restore, SQLite sidecar path already exists: {output + suffix}. "
                    "Use -force to overwrite",
                    path=output + suffix,
                )


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
) -> None:
    """Decode each plan file in order into ``fd``; verify headers, checksums and coverage."""
    seen = bytearray(commit + 1)
    writer = _PageWriter(fd, page_size)
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
                seen[pgno] = 1
        writer.flush()
    lock = lock_pgno(page_size)
    expected = commit - (1 if commit >= lock else 0)
    if seen.count(1) != expected:
        missing = [p for p in range(1, commit + 1) if not seen[p] and p != lock]
        shown = ", ".join(str(p) for p in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise CorruptBackupError(
            f"the plan's files do not hold every page of the database: {len(missing)} of {commit} "
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
    if rows == ("ok",):
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + suffix)
        return
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)
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
    file is renamed into place); an empty file is replaced. With ``if_db_not_exists``
    an existing output (even empty) is left alone and the result has ``skipped=True``.
    The parent directory is created (mode 0700) if missing.

    Guarantees on success: the output is the page image of the database at the
    returned TXID, exactly ``Commit`` pages, lock page zeroed; every file used was
    fully read and its checksum verified; the bytes were fsynced and atomically
    renamed, and the directory fsynced. ``integrity_check`` (``none``, ``quick`` or
    ``full``) then runs SQLite's check, removing the output on failure. On any
    failure nothing is left at the output path (a previous file there is untouched,
    except after a failed integrity check).

    Raises :class:`~replica.restore.errors.RestoreError` subclasses, decoder errors
    (:class:`ltx.errors.LTXError`, e.g. a file checksum mismatch) and
    :class:`~replica.errors.StorageError`.
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
    _check_output(output, force)

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
        os.makedirs(os.path.dirname(output), mode=0o700, exist_ok=True)
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
        tmp = _TempOutput(output)
        try:
            _apply(client, plan, tmp.fd, page_size, commit, fetcher, on_bytes)
            tmp.commit(commit * page_size, force=force)
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
