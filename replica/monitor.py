"""Watching one live database: connections, locks, syncs into L0 files, and checkpoints.

How the locks are used (the reasoning is in :mod:`replica.syncplan`):

* ``_reader`` holds a read transaction at all times except inside our own
  checkpoints, so no checkpoint can copy or discard WAL frames we have not read.
* ``_barrier`` takes the write lock (``BEGIN IMMEDIATE``) around every moment the
  read transaction is (re)acquired and the first sync after it, so nothing can be
  committed that we have not synced when the read transaction begins. Nothing is
  ever written with it: it is always rolled back.
* ``_checkpointer`` runs ``PRAGMA wal_checkpoint``.

No row, table or page of the user's database is written by this module. The only
change made to the database is switching it to WAL mode when it is not already.

The database and WAL files are read through descriptors held open until
:meth:`Database.close`, after SQLite's connections are closed: closing a
descriptor of the database file would drop the POSIX locks SQLite holds on it in
this process.

Database identity (:mod:`replica.identity`): before every sync, and again before an
L0 file is published, the files at the paths are compared with the descriptors held.
When they differ (the database was deleted, recreated, renamed over, restored over,
or its WAL replaced) nothing read from the old file is published: the connections
are closed without touching the new file's WAL, the new file is opened, and its
first L0 file is a snapshot, continuing the TXID sequence. While the path is empty
the database waits. The identity is also recorded in the meta directory, so a file
changed while nobody replicated is noticed at start-up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator

import attrs

from ltx.decoder import read_page, read_page_index
from ltx.errors import LTXError, PyLitestreamError
from replica import identity, metadir
from replica.defaults import (
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_CHECKPOINT_INTERVAL,
    DEFAULT_MIN_CHECKPOINT_PAGE_COUNT,
    DEFAULT_MONITOR_INTERVAL,
    DEFAULT_TRUNCATE_PAGE_N,
    default_meta_path,
    seconds,
)
from replica.errors import DatabaseNotReadyError, DatabaseReplacedError, SQLiteError
from replica.identity import Change, ChangeKind, FileId, Identity
from replica.l0 import L0File, is_l0_temp, read_wal_header, scan_wal, write_l0
from replica.metrics import DatabaseMetrics
from replica.replaced import no_exclusive_lock, remove_orphaned_wal
from replica.syncplan import Action, LastSync, SyncPlan, WALView, plan_sync
from replica.wal import WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE, WALFrameHeader, WALHeader

log = logging.getLogger("replica.monitor")


@attrs.frozen
class DBOptions:
    """Per-database settings, with Litestream 0.5's defaults."""

    meta_path: str | None = None
    """Default: ``.<name>-litestream`` beside the database."""
    monitor_interval: float = seconds(DEFAULT_MONITOR_INTERVAL)
    checkpoint_interval: float = seconds(DEFAULT_CHECKPOINT_INTERVAL)
    """Seconds of database-file idleness before a PASSIVE checkpoint; 0 turns it off."""
    busy_timeout: float = seconds(DEFAULT_BUSY_TIMEOUT)
    min_checkpoint_page_count: int = DEFAULT_MIN_CHECKPOINT_PAGE_COUNT
    truncate_page_n: int = DEFAULT_TRUNCATE_PAGE_N


def wal_bytes(pages: int, page_size: int) -> int:
    """Size of a WAL holding ``pages`` frames."""
    return WAL_HEADER_SIZE + pages * (WAL_FRAME_HEADER_SIZE + page_size)


class Database:
    """One database under replication. Thread-safe: every operation takes :attr:`lock`.

    ``on_l0`` is called (under the lock) with every L0 file written, so an uploader can
    be woken. ``floor_txid`` is the highest TXID known to exist anywhere (the replica's
    maximum): new files always get a larger TXID, so none is ever reused.
    """

    def __init__(
        self,
        path: str,
        options: DBOptions | None = None,
        *,
        on_l0: Callable[[L0File], None] | None = None,
        clock: Callable[[], float] = time.time,
        metrics: DatabaseMetrics | None = None,
    ) -> None:
        self.path = os.path.abspath(path)
        self.metrics = metrics or DatabaseMetrics(self.path)
        """Where syncs and checkpoints are reported."""
        self.options = options or DBOptions()
        self.meta_path = self.options.meta_path or default_meta_path(self.path)
        self.l0_dir = metadir.l0_dir(self.meta_path)
        self.on_l0 = on_l0
        self.clock = clock
        self.lock = threading.RLock()
        self.page_size = 0
        self.txid = 0
        """Highest TXID used so far (locally or, per ``floor_txid``, remotely)."""
        self.last: LastSync | None = None
        self.last_path: str | None = None
        self.trusted = False
        self.synced_since_checkpoint = False
        self.snapshot_requested = False
        self._reader: sqlite3.Connection | None = None
        self._barrier: sqlite3.Connection | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._db_fd = -1
        self._wal_fd = -1
        self._opened = False
        self._reading = False
        self._held: Identity | None = None
        """The files behind our descriptors, and the page size, while connected."""
        self._recorded: Identity | None = None
        """The identity recorded in the meta directory (as read or last written)."""
        self.file_change = ""
        """Why the database is not the file the local history describes (next L0: a snapshot)."""
        self._stale_wal: tuple[int, FileId] | None = None
        """A replaced file's WAL still at the WAL path: its descriptor (pinning the inode) and id."""
        self._waiting_logged = False
        self._opening = False
        self._last_l0: L0File | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._opened

    def open(self, floor_txid: int = 0) -> None:
        """Connect, load local state, and make the first (barrier-protected) sync.

        Raises :class:`DatabaseNotReadyError` when the file does not exist yet (or,
        after a change of file, while the new one is empty or the old one's WAL is
        still at the WAL path), :class:`SQLiteError` when SQLite fails.
        """
        with self.lock:
            if self._opened:
                return
            if not os.path.exists(self.path):
                raise DatabaseNotReadyError("database does not exist yet", path=self.path)
            self._check_stale_wal()
            if self.file_change and os.path.getsize(self.path) == 0:
                # Someone is creating the new file: let them choose its page size first.
                raise DatabaseNotReadyError("new database file is still empty", path=self.path)
            self._opening = True
            try:
                self._connect()
                self._load_local_state(floor_txid)
                self._check_record()
                self._opened = True
                self.sync(barrier=True)
            except BaseException as e:
                self._disconnect()
                self._opened = False
                if isinstance(e, sqlite3.Error):
                    raise SQLiteError(str(e), path=self.path) from e
                raise
            finally:
                self._opening = False
            self._waiting_logged = False

    def _connect(self) -> None:
        timeout = self.options.busy_timeout

        def conn() -> sqlite3.Connection:
            c = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
            c.execute("PRAGMA wal_autocheckpoint = 0")
            return c

        # Our descriptor first: if the path still names the same file once SQLite has
        # opened it too, both read the same file.
        self._db_fd = os.open(self.path, os.O_RDONLY)
        self._reader = conn()
        mode = self._reader.execute("PRAGMA journal_mode = wal").fetchone()[0]
        if str(mode).lower() != "wal":
            raise DatabaseNotReadyError(
                f"cannot switch the database to WAL mode (mode is {mode})", path=self.path
            )
        self.page_size = int(self._reader.execute("PRAGMA page_size").fetchone()[0])
        self._barrier = conn()
        self._checkpointer = conn()
        self._begin_read()  # creates the -wal file if it did not exist
        self._wal_fd = os.open(self.path + "-wal", os.O_RDONLY)
        self._held = identity.of_descriptors(self._db_fd, self._wal_fd, self.page_size)
        change = self._identity_change()
        if change is not None:  # replaced while we connected: try again, and start afresh then
            self.file_change = self.file_change or str(change)
            raise DatabaseReplacedError(change, path=self.path)

    def _disconnect(self) -> None:
        """Close SQLite's connections, then our descriptors.

        When the WAL at the WAL path is not the one we read, the closing connections
        must not checkpoint and delete the files at those names (they may be another
        file's): :func:`~replica.replaced.no_exclusive_lock`. When our database file
        is no longer at the path but its WAL still is (SQLite leaves the WAL of a
        moved file in place), the WAL's descriptor is kept, which pins its inode
        number, and :meth:`open` does not read the new file before that WAL is gone.
        """
        held, self._held = self._held, None
        seen = identity.at_paths(self.path) if held is not None else None
        foreign_wal = held is not None and seen is not None and seen.wal != held.wal
        with no_exclusive_lock(self._db_fd) if foreign_wal else contextlib.nullcontext():
            for c in (self._reader, self._barrier, self._checkpointer):
                if c is not None:
                    with contextlib.suppress(sqlite3.Error):
                        c.rollback()
                    with contextlib.suppress(sqlite3.Error):
                        c.close()
        self._reader = self._barrier = self._checkpointer = None
        # Only now, with SQLite's connections gone, may our own descriptors close.
        if (
            held is not None
            and held.wal is not None
            and seen is not None
            and seen.db != held.db
            and self._stale_wal is None
            and identity.at_paths(self.path).wal == held.wal
        ):
            self._stale_wal = (self._wal_fd, held.wal)
            self._wal_fd = -1
        for fd in (self._db_fd, self._wal_fd):
            if fd >= 0:
                os.close(fd)
        self._db_fd = self._wal_fd = -1

    def _check_stale_wal(self) -> None:
        """Refuse to connect while a replaced file's WAL is still at the WAL path.

        SQLite would read that WAL's frames as the new file's. It is removed once no
        connection uses it (:func:`~replica.replaced.remove_orphaned_wal`); until then
        :class:`DatabaseNotReadyError`.
        """
        if self._stale_wal is None:
            return
        fd, wal_id = self._stale_wal
        if not remove_orphaned_wal(self.path, wal_id):
            if not self._waiting_logged:
                log.warning(
                    "%s: the wal file at its path still belongs to the replaced database file, which "
                    "another process has open; waiting before reading the new file",
                    self.path,
                )
                self._waiting_logged = True
            raise DatabaseNotReadyError("wal file of the replaced database is still in use", path=self.path)
        os.close(fd)
        self._stale_wal = None

    def close(self, final_sync: bool = True) -> None:
        """A last barrier-protected sync (unless told otherwise), then disconnect."""
        with self.lock:
            try:
                if final_sync and self._opened:
                    self.sync(barrier=True)
            finally:
                self._disconnect()
                self._opened = False
                self.trusted = False
                if self._stale_wal is not None:
                    os.close(self._stale_wal[0])
                    self._stale_wal = None

    # -- local state ----------------------------------------------------------------------

    def local_l0_files(self) -> list[tuple[int, str]]:
        """``(txid, path)`` of the L0 files in the meta directory, oldest first."""
        return metadir.local_l0_files(self.l0_dir)

    def _load_local_state(self, floor_txid: int) -> None:
        os.makedirs(self.l0_dir, exist_ok=True)
        # Only our own staging names: uploads and compaction stage files here too, maybe now.
        metadir.remove_temps(((self.l0_dir, is_l0_temp), (self.meta_path, identity.is_record_temp)))
        files = self.local_l0_files()
        local_max = files[-1][0] if files else 0
        self.last, self.last_path = None, None
        if files and local_max >= floor_txid:
            try:
                self.last = metadir.last_sync(local_max, files[-1][1])
                self.last_path = files[-1][1]
            except (LTXError, OSError) as e:
                # Keep the TXID (it may have been uploaded); the next sync is a snapshot.
                log.warning("newest local L0 file is unreadable, next sync is a snapshot: %s", e)
        if floor_txid > local_max:
            log.info("database is behind its replica (local %d, replica %d): next sync is a snapshot",
                     local_max, floor_txid)  # fmt: skip
        self.txid = max(local_max, floor_txid)
        self.trusted = False

    def _check_record(self) -> None:
        """Compare the identity recorded in the meta directory with the file now connected."""
        try:
            self._recorded = identity.load_record(self.meta_path)
        except PyLitestreamError as e:
            self._recorded = None
            self.file_change = self.file_change or f"identity record unusable ({e.message})"
            log.warning("%s: %s: the next L0 file is a snapshot", self.path, e)
            return
        if self._recorded is None or self._held is None:
            return  # nothing recorded yet: the WAL rules decide (replica.syncplan)
        now = Identity(self._held.db, None, self._held.page_size)
        change = identity.compare(self._recorded, now)
        if change is not None and not self.file_change:
            self.file_change = f"{change} while not replicating"
            log.warning("%s: %s: the next L0 file is a snapshot", self.path, self.file_change)

    def _record_identity(self) -> None:
        """Record the connected file as the one the local history describes (when it changed).

        A failure is only logged (and retried at the next sync): the record matters
        only for noticing a file changed while nobody replicated it.
        """
        if self._held is None or self.file_change or self.last is None:
            return
        now = Identity(self._held.db, None, self._held.page_size)
        if now != self._recorded:
            try:
                identity.write_record(self.meta_path, now)
            except OSError as e:
                log.warning("%s: cannot record the database's identity: %s", self.path, e)
                return
            self._recorded = now

    # -- identity -------------------------------------------------------------------------

    def _identity_change(self) -> Change | None:
        """How the files at the paths differ from the ones we read; None when they do not."""
        if self._held is None:
            return None
        return identity.compare(self._held, identity.at_paths(self.path))

    def _refuse_if_replaced(self) -> None:
        """The last check before an L0 file is published: every page came from the file at the path."""
        change = self._identity_change()
        if change is not None:
            raise DatabaseReplacedError(change, path=self.path)

    def _switch_files(self, change: Change) -> L0File | None:
        """Leave a file that is no longer the database; open the new one if there is one.

        Returns the new file's first L0 file (a snapshot), or None while there is no
        usable file at the path (the daemon keeps trying :meth:`open`).
        """
        self.file_change = str(change)
        self._disconnect()
        self._opened = False
        self.trusted = False
        with contextlib.suppress(DatabaseNotReadyError):
            self._check_stale_wal()  # at once: the application may be opening the new file already
        if self._opening:
            raise DatabaseReplacedError(change, path=self.path)
        if change.kind is ChangeKind.DELETED:
            log.warning("%s: %s; waiting for a database file to appear", self.path, change)
            return None
        log.warning("%s: %s; replicating the new file from a snapshot", self.path, change)
        before = self.txid
        try:
            self.open(self.txid)
        except DatabaseNotReadyError:
            return None
        return self._last_l0 if self.txid != before else None

    # -- syncing --------------------------------------------------------------------------

    def _begin_read(self) -> None:
        assert self._reader is not None
        self._end_read()
        self._reader.execute("BEGIN")
        self._reader.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        self._reading = True

    def _end_read(self) -> None:
        assert self._reader is not None
        self._reading = False
        with contextlib.suppress(sqlite3.Error):
            self._reader.execute("ROLLBACK")

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[bool]:
        """Hold SQLite's write lock (nothing is written); yields False if it stayed busy."""
        assert self._barrier is not None
        try:
            self._barrier.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                yield False
                return
            raise
        try:
            yield True
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._barrier.execute("ROLLBACK")

    def _wal_view(self) -> tuple[WALHeader | None, WALView]:
        h = read_wal_header(self._wal_fd)
        size = os.fstat(self._wal_fd).st_size
        if h is None:
            return None, WALView(None, size)
        return h, WALView(h.salts, size)

    def _last_frame_matches(self, header: WALHeader) -> bool:
        last = self.last
        if last is None or self.last_path is None or last.end_offset <= WAL_HEADER_SIZE:
            return False
        off = last.end_offset - header.frame_size
        raw = os.pread(self._wal_fd, header.frame_size, off)
        if len(raw) < header.frame_size:
            return False
        fh = WALFrameHeader.parse(raw[:WAL_FRAME_HEADER_SIZE])
        if (fh.salt1, fh.salt2) != last.salts:
            return False
        try:
            with open(self.last_path, "rb") as f:
                page = read_page(f, read_page_index(f), fh.pgno)
        except (LTXError, OSError):
            return False
        return page == raw[WAL_FRAME_HEADER_SIZE:]

    def plan(self) -> tuple[WALHeader | None, SyncPlan]:
        header, view = self._wal_view()
        matches = None
        if (
            not self.trusted
            and not self.file_change
            and header is not None
            and self.last is not None
            and view.salts == self.last.salts
        ):
            matches = self._last_frame_matches(header)
        p = plan_sync(
            self.last,
            view,
            trusted=self.trusted,
            last_frame_matches=matches,
            page_size=self.page_size,
            file_change=self.file_change,
        )
        if self.snapshot_requested and p.action is not Action.SNAPSHOT:
            p = SyncPlan(Action.SNAPSHOT, reason="snapshot requested")
        return header, p

    def sync(self, *, barrier: bool = False) -> L0File | None:
        """Write the next L0 file if there are new commits (or a snapshot is due).

        With ``barrier`` the sync runs under the write lock and (re)establishes trust;
        if the lock stays busy the sync still runs, untrusted, and trust is retried on
        the next barrier sync.
        """
        with self.lock:
            if not self._opened:
                raise DatabaseNotReadyError("database is not open", path=self.path)
            started = time.monotonic()
            self.metrics.sync_attempted()
            try:
                change = self._identity_change()
                if change is None:
                    try:
                        return self._sync_same_file(barrier)
                    except DatabaseReplacedError as e:
                        change = e.change
                return self._switch_files(change)
            except BaseException as e:
                self.metrics.sync_failed()
                if isinstance(e, sqlite3.Error):
                    raise SQLiteError(str(e), path=self.path) from e
                raise
            finally:
                self.metrics.sync_took(time.monotonic() - started)

    def _sync_same_file(self, barrier: bool) -> L0File | None:
        if not barrier:
            return self._sync_locked()
        with self._write_lock() as held:
            if held or not self._reading:
                self._begin_read()  # a fresh read transaction with nothing unsynced behind it
            out = self._sync_locked()
            if held:
                self.trusted = True
            return out

    def _sync_locked(self) -> L0File | None:
        header, p = self.plan()
        snapshot = p.action is Action.SNAPSHOT
        if snapshot and p.reason:
            log.info("%s: writing snapshot L0 (%s)", self.path, p.reason)
        start = WAL_HEADER_SIZE if snapshot else p.offset
        scan = scan_wal(self._wal_fd, header, start)
        prev_commit = self.last.commit if self.last is not None else 0
        out = write_l0(
            self.l0_dir,
            self.txid + 1,
            wal_fd=self._wal_fd,
            db_fd=self._db_fd,
            page_size=self.page_size,
            scan=scan,
            snapshot=snapshot,
            prev_commit=prev_commit,
            now_ms=int(self.clock() * 1000),
            before_publish=self._refuse_if_replaced,
        )
        if out is None:
            if (
                self.last is not None
                and header is not None
                and header.salts != self.last.salts
                and (p.action is Action.CONTINUE)
            ):
                # a new generation with nothing committed in it yet: remember where it starts
                self.last = attrs.evolve(self.last, end_offset=WAL_HEADER_SIZE, salts=header.salts)
            self._record_identity()
            return None
        self.txid = out.txid
        self.metrics.synced(
            out.txid, os.fstat(self._db_fd).st_size, out.last.end_offset, out.last.end_offset - scan.start
        )
        self.last, self.last_path = out.last, out.path
        self._last_l0 = out
        self.snapshot_requested = False
        if out.snapshot:
            self.file_change = ""
        self.synced_since_checkpoint = True
        if self.on_l0 is not None:
            self.on_l0(out)
        self._record_identity()
        return out

    # -- checkpoints ----------------------------------------------------------------------

    def checkpoint(self, mode: str = "PASSIVE") -> tuple[int, int, int] | None:
        """Checkpoint without ever losing a frame; returns SQLite's (busy, log, checkpointed).

        PASSIVE runs under the write lock after a full sync, with our read transaction
        released only for the checkpoint itself. TRUNCATE (the emergency remedy for a
        huge WAL file) cannot run while we hold the write lock, so commits may slip in
        between: afterwards the next sync is planned as after a restart, which means a
        snapshot if the WAL generation changed. Returns None when the write lock stayed busy.
        """
        mode = mode.upper()
        if mode not in ("PASSIVE", "TRUNCATE"):
            raise ValueError(f"unsupported checkpoint mode {mode}")
        started = time.monotonic()
        try:
            res = self._checkpoint(mode)
        except BaseException as e:
            self.metrics.checkpoint_failed(mode)
            if isinstance(e, sqlite3.Error):
                raise SQLiteError(str(e), path=self.path) from e
            raise
        if res is not None:
            self.metrics.checkpointed(mode, time.monotonic() - started)
        return res

    def _checkpoint(self, mode: str) -> tuple[int, int, int] | None:
        with self.lock:
            if not self._opened:
                return None
            change = self._identity_change()
            if change is None:
                try:
                    return self._checkpoint_same_file(mode)
                except DatabaseReplacedError as e:
                    change = e.change
            self._switch_files(change)  # never checkpoint a file that is no longer the database
            return None

    def _checkpoint_same_file(self, mode: str) -> tuple[int, int, int] | None:
        with self.lock:
            assert self._checkpointer is not None
            # Flush the WAL now, before taking the write lock: the checkpoint's own fsync of
            # the WAL, made while every writer waits, then has only the last moments to write
            # (measured under a flat-out writer: 1.0 s under the lock before, 0.18 s after).
            os.fsync(self._wal_fd)
            with self._write_lock() as held:
                if not held:
                    return None
                self._begin_read()
                self._sync_locked()
                self.trusted = True
                self._end_read()
                try:
                    res = self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                finally:
                    if mode == "PASSIVE":
                        self._begin_read()
            self.synced_since_checkpoint = False
            if mode == "PASSIVE":
                return (int(res[0]), int(res[1]), int(res[2]))
            # TRUNCATE: our read transaction is released, so we are no longer trusted.
            self.trusted = False
            try:
                res = self._checkpointer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                self.sync(barrier=True)  # re-acquires the read transaction under the barrier
            return (int(res[0]), int(res[1]), int(res[2]))

    def maybe_checkpoint(self) -> str | None:
        """Apply the checkpoint policy after a sync; returns the mode run, if any."""
        with self.lock:
            if not self._opened or self.last is None:
                return None
            ps = self.page_size
            wal_size = os.fstat(self._wal_fd).st_size
            end = self.last.end_offset
            if wal_size >= wal_bytes(self.options.truncate_page_n, ps):
                log.info("%s: wal file is %d bytes, forcing truncate checkpoint", self.path, wal_size)
                return "TRUNCATE" if self.checkpoint("TRUNCATE") is not None else None
            if end >= wal_bytes(self.options.min_checkpoint_page_count, ps):
                return "PASSIVE" if self.checkpoint("PASSIVE") is not None else None
            interval = self.options.checkpoint_interval
            idle = self.clock() - os.fstat(self._db_fd).st_mtime
            if interval > 0 and self.synced_since_checkpoint and end > wal_bytes(1, ps) and idle > interval:
                return "PASSIVE" if self.checkpoint("PASSIVE") is not None else None
            return None

    def request_snapshot(self) -> None:
        """Make the next sync a full snapshot (e.g. when the replica lost its history)."""
        with self.lock:
            self.snapshot_requested = True

    # -- local housekeeping ---------------------------------------------------------------

    def remove_local_files(self, up_to_txid: int) -> int:
        """Delete local L0 files with TXID <= ``up_to_txid``, always keeping the newest one."""
        with self.lock:
            return metadir.remove_l0_files(self.l0_dir, up_to_txid, keep=self.last_path)
