"""Running replication: monitor, upload and compaction threads per database, and a clean shutdown.

The monitor thread syncs when the database changes (:mod:`replica.watch`: the first
commit after a quiet interval at once, then at most once per ``monitor_interval``) or
every ``monitor_interval`` without a notification, and applies the checkpoint policy;
the upload thread wakes on every new L0 file (or every ``sync_interval``) and ships
pending files; the compaction thread runs the compaction levels, the
level-9 snapshots and retention on their schedules (:mod:`replica.compaction`).
Errors back off exponentially (from the interval up to five minutes) and are
logged at most every 30 seconds per kind; nothing is lost by an error, because
local L0 files stay until uploaded.

All three share one :class:`~replica.index.ReplicaIndex`: the replica is listed at
start-up (and after a failure), and our own writes and deletes keep the index
current, so steady state makes no LIST request. With compaction levels configured,
uploaded L0 files stay in the meta directory until level-1 compaction has merged
them (it reads them there instead of downloading them), then they are deleted, the
newest always kept; without levels they are deleted right after upload.

:meth:`Replication.stop` makes the last sync and then keeps uploading, for up to
``shutdown_timeout``, until every local file is in the replica; it reports
whether that was achieved, and the command line turns that into its exit code. No
error of the last sync (a malformed or replaced database included) escapes it: each
is logged, and the result then says that not everything was shipped.

Temporary files in the meta directory belong to the task that writes them: the
monitor removes only its own leftovers when it opens the database, and
:meth:`Replication.start` removes compaction's before the compaction thread runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence

import attrs

from ltx.errors import LTXError, PyLitestreamError
from replica.compaction import (
    CompactionOptions,
    Compactor,
    RetentionResult,
    RunResult,
    Scheduler,
    is_compaction_temp,
)
from replica.defaults import (
    DEFAULT_L0_RETENTION,
    DEFAULT_L0_RETENTION_CHECK_INTERVAL,
    DEFAULT_LEVEL_INTERVALS,
    DEFAULT_MAX_SYNC_LTX_FILES,
    DEFAULT_SHUTDOWN_SYNC_INTERVAL,
    DEFAULT_SHUTDOWN_SYNC_TIMEOUT,
    DEFAULT_SNAPSHOT_INTERVAL,
    DEFAULT_SNAPSHOT_RETENTION,
    DEFAULT_SYNC_INTERVAL,
    ERROR_LOG_EVERY,
    MAX_ERROR_BACKOFF,
    seconds,
)
from replica.errors import DatabaseNotReadyError
from replica.index import ReplicaIndex
from replica.l0 import L0File
from replica.monitor import Database, DBOptions
from replica.storage import ReplicaClient
from replica.uploader import Uploader
from replica.watch import Watcher, shared_watcher

log = logging.getLogger("replica")

MAX_BACKOFF = seconds(MAX_ERROR_BACKOFF)
LOG_EVERY = seconds(ERROR_LOG_EVERY)


def _intervals(value: Iterable[dt.timedelta]) -> tuple[dt.timedelta, ...]:
    return tuple(value)


@attrs.frozen
class ReplicationOptions:
    """Settings of one replicated database, with Litestream 0.5's defaults.

    Times of the sync side are float seconds; compaction and retention settings are
    :class:`datetime.timedelta` (validated by :class:`~replica.compaction.CompactionOptions`):
    ``levels`` are the intervals of L1..Ln (empty: no compaction levels);
    ``snapshot_interval``/``snapshot_retention`` the level-9 schedule and retention;
    ``l0_retention`` how long compacted L0 files stay (0: forever);
    ``l0_retention_check_interval`` how often retention runs; ``retention_enabled``
    False keeps every remote file.
    """

    db: DBOptions = attrs.field(factory=DBOptions)
    sync_interval: float = seconds(DEFAULT_SYNC_INTERVAL)
    max_batch: int = DEFAULT_MAX_SYNC_LTX_FILES
    shutdown_timeout: float = seconds(DEFAULT_SHUTDOWN_SYNC_TIMEOUT)
    shutdown_interval: float = seconds(DEFAULT_SHUTDOWN_SYNC_INTERVAL)
    levels: tuple[dt.timedelta, ...] = attrs.field(default=DEFAULT_LEVEL_INTERVALS, converter=_intervals)
    snapshot_interval: dt.timedelta = DEFAULT_SNAPSHOT_INTERVAL
    snapshot_retention: dt.timedelta = DEFAULT_SNAPSHOT_RETENTION
    l0_retention: dt.timedelta = DEFAULT_L0_RETENTION
    l0_retention_check_interval: dt.timedelta = DEFAULT_L0_RETENTION_CHECK_INTERVAL
    retention_enabled: bool = True

    def __attrs_post_init__(self) -> None:
        self.compaction  # noqa: B018 (validates the compaction settings now)

    @property
    def compaction(self) -> CompactionOptions:
        """The compaction, snapshot and retention settings."""
        return CompactionOptions(
            levels=self.levels,
            snapshot_interval=self.snapshot_interval,
            snapshot_retention=self.snapshot_retention,
            l0_retention=self.l0_retention,
            l0_retention_check_interval=self.l0_retention_check_interval,
            retention_enabled=self.retention_enabled,
        )


class _Backoff:
    def __init__(self, base: float) -> None:
        self.base = max(base, 0.05)
        self.delay = self.base
        self.last_log = 0.0

    def failed(self, what: str, err: BaseException) -> float:
        now = time.monotonic()
        if now - self.last_log >= LOG_EVERY:
            log.error("%s failed (retrying in %.1fs): %s", what, self.delay, err)
            self.last_log = now
        d = self.delay
        self.delay = min(self.delay * 2, MAX_BACKOFF)
        return d

    def ok(self) -> None:
        if self.delay != self.base:
            log.info("recovered")
        self.delay = self.base


class Replication:
    """One database replicated to one replica, with its three threads."""

    def __init__(
        self, db_path: str, client: ReplicaClient, options: ReplicationOptions | None = None
    ) -> None:
        self.options = options or ReplicationOptions()
        self._wake = threading.Event()
        self._changed = threading.Event()
        """Set by change notifications (:mod:`replica.watch`) and by :meth:`stop`."""
        self._watcher: Watcher | None = None
        """The notifier watching the database, from :meth:`start` on (None: polling only)."""
        self.db = Database(db_path, self.options.db, on_l0=self._on_l0)
        self.client = client
        self.index = ReplicaIndex(client)
        self.compacting = bool(self.options.levels)
        """Whether level-1 compaction consumes the local L0 files (levels are configured)."""
        self.uploader = Uploader(
            self.db, client, max_batch=self.options.max_batch, index=self.index, keep_local=self.compacting
        )
        self.compactor = Compactor(
            client,
            self.index,
            self.options.compaction,
            local_l0_dir=self.db.l0_dir,
            work_dir=self.db.meta_path,
            on_l0_consumed=self._on_l0_consumed,
            remove_local=self._remove_local,
        )
        self.scheduler: Scheduler | None = None
        self._opened_once = False
        """The database was opened (local state loaded) at least once: its files may be shipped
        even while it is closed again (e.g. deleted and not yet recreated)."""
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.errors = 0

    def _on_l0(self, _f: L0File) -> None:
        self._wake.set()

    def _on_l0_consumed(self, txid: int) -> None:
        """Level-1 compaction merged every L0 file up to ``txid``: their local copies can go."""
        self.db.remove_local_files(min(txid, self.index.max_txid(0)))

    def _remove_local(self, txids: Sequence[int]) -> int:
        """Delete the local copies of these L0 files, never the database's newest one."""
        wanted = set(txids)
        removed = 0
        with self.db.lock:
            for txid, path in self.db.local_l0_files():
                if txid in wanted and path != self.db.last_path:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                        removed += 1
        return removed

    def _local_grace(self) -> float:
        """Seconds an uploaded L0 file may wait in the meta directory for level-1 compaction."""
        return max(60.0, 4 * self.options.levels[0].total_seconds()) if self.options.levels else 0.0

    def _trim_local(self) -> int:
        """Delete uploaded local L0 files that compaction no longer needs (always keeping the newest).

        Without levels: everything uploaded. With levels: what level 1 has merged,
        and anything uploaded that has waited longer than :meth:`_local_grace` (level-1
        compaction is failing or lagging; it then reads the replica's copy).
        """
        uploaded = self.index.max_txid(0) if self.index.loaded else 0
        if not self.compacting:
            return self.db.remove_local_files(uploaded)
        up_to = min(self.index.max_txid(1), uploaded)
        old = time.time() - self._local_grace()
        for txid, path in self.db.local_l0_files():
            if txid > uploaded:
                break
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path).st_mtime < old:
                    up_to = max(up_to, txid)
        return self.db.remove_local_files(up_to) if up_to else 0

    def open(self) -> bool:
        """Open the database now if it exists; False when it does not exist yet."""
        self.uploader.claim()  # lock the database, claim the replica (replica/ownership.py)
        try:
            remote = self.uploader.remote_position()
            self.db.open(remote)
        except DatabaseNotReadyError:
            return False
        # e.g. files another replicator left behind; with levels, keep what L1 has not merged
        keep_from = self.index.max_txid(1) if self.compacting else remote
        self.db.remove_local_files(min(remote, keep_from))
        self._opened_once = True
        return True

    def sync_once(self, force_snapshot: bool = False, enforce_retention: bool = False) -> None:
        """One sync, checkpoint policy and upload, in the caller's thread (``-once``, tests).

        ``force_snapshot`` then writes a level-9 snapshot of the replica's latest state
        (``-force-snapshot``), ``enforce_retention`` runs one retention pass
        (``-enforce-retention``). When the compaction thread is not running, uploaded
        local L0 files are deleted (always keeping the newest): nothing will merge them.
        """
        if not self.db.is_open and not self.open():
            raise DatabaseNotReadyError("database does not exist", path=self.db.path)
        self.db.sync()
        self.db.maybe_checkpoint()
        self.uploader.sync()
        if self.scheduler is None:
            self.db.remove_local_files(self.index.max_txid(0))
        if force_snapshot:
            self.snapshot(force=True)
        if enforce_retention:
            self.enforce_retention()

    def snapshot(self, force: bool = False) -> RunResult:
        """Write a level-9 snapshot now (see :meth:`replica.compaction.Compactor.snapshot`)."""
        return self.compactor.snapshot(force=force)

    def enforce_retention(self) -> RetentionResult:
        """Run one retention pass now (see :meth:`replica.compaction.Compactor.enforce_retention`)."""
        return self.compactor.enforce_retention()

    def _remove_compaction_temps(self) -> None:
        """Delete outputs a compaction run left half-written (only while no compaction runs)."""
        folder = self.compactor.work_dir
        if folder is None:
            return
        with contextlib.suppress(OSError):
            for n in os.listdir(folder):
                if is_compaction_temp(n):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(folder, n))

    def start(self) -> None:
        self.uploader.claim(at_start=True)  # a second writer is refused here, before any thread
        self._remove_compaction_temps()
        self.scheduler = Scheduler(self.compactor)
        self._watcher = shared_watcher()
        self._watch()
        jobs = (("monitor", self._monitor), ("upload", self._upload), ("compact", self._compact))
        for name, target in jobs:
            t = threading.Thread(target=target, name=f"{name}:{self.db.path}", daemon=True)
            t.start()
            self._threads.append(t)

    def _compact(self) -> None:
        sched = self.scheduler
        assert sched is not None
        while not self._stop.is_set():
            try:
                if sched.run_pending(self._stop) and self.db.is_open:
                    self._trim_local()
            except Exception as e:  # the loop must survive anything
                self.errors += 1
                log.error("compaction of %s failed: %s", self.db.path, e)
            wait = (sched.next_due() - self.compactor.clock()).total_seconds()
            self._stop.wait(min(max(wait, 0.01), 1.0))

    def _watch(self) -> None:
        """Have the database's changes wake the monitor (where the platform can)."""
        if self._watcher is not None:
            self._watcher.watch(self.db.path, self._changed)

    def _monitor(self) -> None:
        """Sync on a change (leading edge) or every ``monitor_interval``, whichever is first.

        Syncs that write an L0 file are at least ``gap`` apart: the smaller of
        ``sync_interval`` and ``monitor_interval`` (after an error, the backoff). A change
        notified sooner waits for the rest of the gap, so under sustained writes there is
        one L0 file (and one upload) per gap, as with polling, while the first commit after
        a quiet gap is synced, and shipped, at once; polls that find nothing new do not
        count. The event is cleared before the sync starts, so a commit made during a
        sync wakes the next one.
        """
        interval = self.options.db.monitor_interval
        min_gap = min(self.options.sync_interval, interval)
        backoff = _Backoff(interval)
        delay = 0.0  # open (and make the first sync) at once
        gap = min_gap
        last = -float("inf")  # when the last sync that wrote an L0 file (or failed) began
        while True:
            if self._changed.wait(delay) and not self._stop.is_set():
                rest = last + gap - time.monotonic()
                if rest > 0 and self._stop.wait(rest):
                    break
            if self._stop.is_set():
                break
            self._changed.clear()
            began = time.monotonic()
            try:
                if not self.db.is_open:
                    if not self.open():
                        delay, gap = interval, min_gap
                        continue
                    last = began
                    self._watch()  # again: the folder may be new
                elif self.db.sync() is not None:
                    last = began
                self.db.maybe_checkpoint()
                backoff.ok()
                delay, gap = interval, min_gap
            except Exception as e:  # the loop must survive anything
                self.errors += 1
                last = began
                delay = gap = backoff.failed(f"sync of {self.db.path}", e)

    def _upload(self) -> None:
        backoff = _Backoff(self.options.sync_interval)
        delay = self.options.sync_interval
        while not self._stop.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            if self._stop.is_set() or not (self.db.is_open or self._opened_once):
                continue
            try:
                self.uploader.sync()
                backoff.ok()
                delay = self.options.sync_interval
            except Exception as e:
                self.errors += 1
                delay = backoff.failed(f"upload of {self.db.path}", e)

    def stop(self) -> bool:
        """Stop the threads, make a last sync, upload everything; True if nothing is left unsent."""
        self._stop.set()
        self._wake.set()
        self._changed.set()
        if self._watcher is not None:
            self._watcher.unwatch(self.db.path, self._changed)
        for t in self._threads:
            t.join()
        self._threads.clear()
        complete = True
        if not self.db.is_open:
            try:  # stopped before the monitor got to it (e.g. a short -exec child): one last look
                self.open()
            except (PyLitestreamError, OSError, sqlite3.Error) as e:
                log.error("cannot open %s for a last sync: %s", self.db.path, e)
                complete = False
        try:
            self.db.close(final_sync=True)
        except (LTXError, OSError, sqlite3.Error) as e:
            log.error("final sync of %s failed: %s", self.db.path, e)
            complete = False
            try:
                self.db.close(final_sync=False)
            except OSError as e2:
                log.error("closing %s failed: %s", self.db.path, e2)
        if not self.db.local_l0_files():
            return self.uploader.finish(complete)
        try:
            shipped = self.uploader.sync_with_retry(
                self.options.shutdown_timeout, self.options.shutdown_interval
            )
        except (PyLitestreamError, OSError) as e:
            log.error("final upload of %s failed: %s", self.db.path, e)
            shipped = False
        return self.uploader.finish(complete and shipped)
