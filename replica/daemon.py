"""Running replication: one database's monitor, upload and compaction jobs, and a clean shutdown.

The jobs run on the process's :mod:`replica.runtime` (one scheduler, bounded pools),
so a database costs no thread of its own. The monitor job syncs when the database
changes (:mod:`replica.watch` notifies it) or when its poll is due, and applies the
checkpoint policy; :class:`~replica.pace.SyncPace` decides when: the first commit after
a quiet gap at once, then at most once per gap. The upload job runs when a sync wrote
an L0 file, after failures with a backoff, and every :data:`~replica.defaults.QUIET_RECHECK`
as a safety net. The compaction job runs the compaction levels, the level-9 snapshots
and retention on their schedules (:mod:`replica.compaction`). Errors back off
exponentially (from the interval up to five minutes) and are logged at most every 30
seconds per kind; nothing is lost by an error, because local L0 files stay until uploaded.

All three share one :class:`~replica.index.ReplicaIndex`: the replica is listed at
start-up (and after a failure), and our own writes and deletes keep the index
current, so steady state makes no LIST request. With compaction levels configured,
uploaded L0 files stay in the meta directory until level-1 compaction has merged
them (it reads them there instead of downloading them), then they are deleted, the
newest always kept; without levels they are deleted right after upload.

Shutdown has two halves so that a process can stop many databases at once:
:meth:`Replication.halt` stops scheduling rounds and cancels a running compaction
(it stops at its next write); :meth:`Replication.finish` waits for the running sync or
upload, makes the last sync and keeps uploading until the deadline (default
``shutdown_timeout`` from now), until every local file is in the replica; it reports
whether that was achieved, and the command line turns that into its exit code. No
error of the last sync (a malformed or replaced database included) escapes it: each
is logged, and the result then says that not everything was shipped.

Temporary files in the meta directory belong to the task that writes them: the
monitor removes only its own leftovers when it opens the database, and
:meth:`Replication.start` removes compaction's before the compaction job runs.
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
    QUIET_RECHECK,
    seconds,
)
from replica.errors import DatabaseNotReadyError
from replica.index import ReplicaIndex
from replica.l0 import L0File
from replica.metrics import DatabaseMetrics, Registry
from replica.monitor import Database, DBOptions
from replica.pace import Backoff, Outcome, SyncPace
from replica.runtime import Job, Runtime, shared_runtime
from replica.storage import ReplicaClient
from replica.uploader import Uploader
from replica.watch import Watcher, shared_watcher

log = logging.getLogger("replica")

MAX_BACKOFF = seconds(MAX_ERROR_BACKOFF)
LOG_EVERY = seconds(ERROR_LOG_EVERY)
QUIET = seconds(QUIET_RECHECK)
COMPACTION_RECHECK = 60.0
"""The longest a compaction job sleeps before it looks at its schedule again (the schedule
is wall-clock time, which may jump)."""


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


class _ErrorLog:
    """Logs a repeating failure at most every :data:`LOG_EVERY` seconds, and the recovery."""

    def __init__(self) -> None:
        self.last_log = -LOG_EVERY
        self.failing = False

    def failed(self, what: str, err: BaseException, retry_in: float) -> None:
        now = time.monotonic()
        if now - self.last_log >= LOG_EVERY:
            log.error("%s failed (retrying in %.1fs): %s", what, retry_in, err)
            self.last_log = now
        self.failing = True

    def ok(self) -> None:
        if self.failing:
            log.info("recovered")
            self.failing = False


class Replication:
    """One database replicated to one replica: its monitor, upload and compaction jobs.

    The jobs run on ``runtime`` (default: the process's :func:`~replica.runtime.shared_runtime`);
    the database's metrics go to ``registry`` (default: the served
    :data:`~replica.metrics.REGISTRY`).
    """

    def __init__(
        self,
        db_path: str,
        client: ReplicaClient,
        options: ReplicationOptions | None = None,
        *,
        runtime: Runtime | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.options = options or ReplicationOptions()
        self._runtime = runtime
        self._watcher: Watcher | None = None
        """The notifier watching the database, from :meth:`start` on (None: polling only)."""
        self.db = Database(
            db_path,
            self.options.db,
            on_l0=self._on_l0,
            metrics=DatabaseMetrics(os.path.abspath(db_path), registry),
        )
        self.client = client
        self.index = ReplicaIndex(client)
        self.compacting = bool(self.options.levels)
        """Whether level-1 compaction consumes the local L0 files (levels are configured)."""
        self.uploader = Uploader(
            self.db, client, max_batch=self.options.max_batch, index=self.index, keep_local=self.compacting
        )
        self._stop = threading.Event()
        self.compactor = Compactor(
            client,
            self.index,
            self.options.compaction,
            local_l0_dir=self.db.l0_dir,
            work_dir=self.db.meta_path,
            on_l0_consumed=self._on_l0_consumed,
            remove_local=self._remove_local,
            cancel=self._stop,
        )
        self.scheduler: Scheduler | None = None
        self._opened_once = False
        """The database was opened (local state loaded) at least once: its files may be shipped
        even while it is closed again (e.g. deleted and not yet recreated)."""
        self._pace = SyncPace.new(
            self.options.db.monitor_interval, self.options.sync_interval, QUIET, MAX_BACKOFF
        )
        self._upload_backoff = Backoff(self.options.sync_interval, MAX_BACKOFF)
        self._sync_errors = _ErrorLog()
        self._upload_errors = _ErrorLog()
        self._monitor_job: Job | None = None
        self._upload_job: Job | None = None
        self._compact_job: Job | None = None
        self.errors = 0

    def _on_l0(self, _f: L0File) -> None:
        if self._upload_job is not None:
            self._upload_job.set()

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
        """Claim the replica and schedule the jobs (the first sync at once)."""
        self.uploader.claim(at_start=True)  # a second writer is refused here, before any job
        self._remove_compaction_temps()
        self.scheduler = Scheduler(self.compactor)
        runtime = self._runtime or shared_runtime()
        self._watcher = shared_watcher()
        path = self.db.path
        monitor = runtime.job(f"sync of {path}", self._monitor_step, when_set=self._when_changed)
        upload = runtime.job(f"upload of {path}", self._upload_step, pool="upload")
        compact = runtime.job(f"compaction of {path}", self._compact_step, pool="background")
        self._monitor_job, self._upload_job, self._compact_job = monitor, upload, compact
        self._watch()
        for job in (monitor, upload, compact):
            job.start()

    def _when_changed(self, now: float) -> float:
        return self._pace.when_changed(now)

    def _compact_step(self) -> float | None:
        sched = self.scheduler
        assert sched is not None
        if self._stop.is_set():
            return None
        try:
            if sched.run_pending(self._stop) and self.db.is_open:
                self._trim_local()
        except Exception as e:  # the job must survive anything
            self.errors += 1
            log.error("compaction of %s failed: %s", self.db.path, e)
        wait = (sched.next_due() - self.compactor.clock()).total_seconds()
        return time.monotonic() + min(max(wait, 0.01), COMPACTION_RECHECK)

    def _watch(self) -> bool:
        """Have the database's changes set its monitor job (where the platform can)."""
        if self._watcher is None or self._monitor_job is None:
            return False
        return self._watcher.watch(self.db.path, self._monitor_job)

    def _notified(self) -> bool:
        """Whether the kernel is notifying this database's changes right now."""
        return self._watcher is not None and self._watcher.watching(self.db.path)

    def _monitor_step(self) -> float | None:
        """One round: open or sync, then the checkpoint policy; when the next poll is due.

        The timing is :class:`~replica.pace.SyncPace`'s: a notified change runs this at
        once, or when the gap since the last sync that wrote an L0 file is over.
        """
        if self._stop.is_set():
            return None
        began = time.monotonic()
        try:
            if not self.db.is_open:
                if self.open():
                    outcome = Outcome.WROTE
                    self._watch()  # again: the folder may be new
                else:
                    outcome = Outcome.ABSENT
            else:
                outcome = Outcome.NOTHING if self.db.sync() is None else Outcome.WROTE
            if outcome is not Outcome.ABSENT:
                self.db.maybe_checkpoint()
            self._sync_errors.ok()
        except Exception as e:  # the job must survive anything
            self.errors += 1
            outcome = Outcome.FAILED
            self._sync_errors.failed(f"sync of {self.db.path}", e, self._pace.backoff.failed().delay())
        self._pace, due = self._pace.after(began, time.monotonic(), outcome, notified=self._notified())
        return due

    def _upload_step(self) -> float | None:
        """Ship pending L0 files; runs when a sync wrote one, after failures, and every ``QUIET`` s."""
        if self._stop.is_set():
            return None
        now = time.monotonic()
        if not (self.db.is_open or self._opened_once):
            return now + self.options.sync_interval
        try:
            self.uploader.sync()
        except Exception as e:
            self.errors += 1
            self._upload_backoff = self._upload_backoff.failed()
            self._upload_errors.failed(f"upload of {self.db.path}", e, self._upload_backoff.delay())
            return time.monotonic() + self._upload_backoff.delay()
        self._upload_backoff = self._upload_backoff.ok()
        self._upload_errors.ok()
        return time.monotonic() + max(QUIET, self.options.sync_interval)

    def stop(self, deadline: float | None = None) -> bool:
        """Stop the jobs, make a last sync, upload everything; True if nothing is left unsent.

        ``deadline`` (monotonic) bounds the final upload (default: ``shutdown_timeout``
        from now); see :meth:`halt` and :meth:`finish`.
        """
        self.halt()
        return self.finish(deadline)

    def halt(self) -> None:
        """Stop scheduling rounds and cancel a running compaction (returns at once)."""
        self._stop.set()
        if self._watcher is not None and self._monitor_job is not None:
            self._watcher.unwatch(self.db.path, self._monitor_job)
        for job in self._jobs():
            job.cancel(timeout=0)

    def finish(self, deadline: float | None = None) -> bool:
        """After :meth:`halt`: :meth:`last_sync`, then :meth:`ship` until ``deadline``
        (default: ``shutdown_timeout`` from now); True if every local L0 file reached the replica."""
        if deadline is None:
            deadline = time.monotonic() + self.options.shutdown_timeout
        return self.ship(deadline, self.last_sync(deadline))

    def last_sync(self, deadline: float) -> bool | None:
        """After :meth:`halt`: wait (until ``deadline``) for a running sync to end (not for
        an upload: a store that hangs must not keep the last sync from being made), then
        sync the database a last time and close it.

        True if that worked, False if it failed (logged), None if a round was still
        running at the deadline (nothing was done: :meth:`ship` then only reports).
        """
        monitor = self._monitor_job
        if monitor is not None and not monitor.cancel(timeout=max(0.0, deadline - time.monotonic())):
            log.error("%s: %s was still running at the shutdown deadline", self.db.path, monitor.name)
            return None
        return self._final_sync()

    def ship(self, deadline: float, synced: bool | None = True) -> bool:
        """Wait (until ``deadline``) for a running upload, upload what is left until then, wait
        for a cancelled compaction, release the replica; True if ``synced`` and every local
        L0 file reached the replica."""
        if synced is None:
            return False
        upload = self._upload_job
        if upload is not None and not upload.cancel(timeout=max(0.0, deadline - time.monotonic())):
            log.error("%s: %s was still running at the shutdown deadline", self.db.path, upload.name)
            return False
        shipped = True
        if self.db.local_l0_files():
            try:
                shipped = self.uploader.sync_with_retry(
                    max(0.0, deadline - time.monotonic()), self.options.shutdown_interval
                )
            except (PyLitestreamError, OSError) as e:
                log.error("final upload of %s failed: %s", self.db.path, e)
                shipped = False
        compaction = self._compact_job  # cancelled at its next write; a storage call may still hold it
        if compaction is not None and not compaction.cancel(timeout=max(0.0, deadline - time.monotonic())):
            log.warning("%s: compaction still running at the shutdown deadline", self.db.path)
        self._monitor_job = self._upload_job = self._compact_job = None
        return self.uploader.finish(synced and shipped)

    def _jobs(self) -> list[Job]:
        return [j for j in (self._monitor_job, self._upload_job, self._compact_job) if j is not None]

    def _final_sync(self) -> bool:
        """Open the database if it never was, sync it a last time and close it; False on failure."""
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
        return complete
