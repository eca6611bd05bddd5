"""Compaction, snapshots and retention for one replica: carrying out the pure plans.

* :class:`CompactionOptions`: the levels (L1..Ln intervals), ``snapshot.interval``,
  ``snapshot.retention``, ``l0-retention`` and its check interval, ``retention.enabled``.
* :class:`Compactor`: one level run (:meth:`Compactor.compact_level`), one snapshot
  (:meth:`Compactor.snapshot`), one retention run (:meth:`Compactor.enforce_retention`).
  Each lists nothing: it plans from a :class:`~replica.index.ReplicaIndex` with
  :mod:`replica.levels` / :mod:`replica.retention`, streams the inputs through the LTX
  compactor into a temporary file, writes the result, and updates the index.
* :class:`Scheduler`: when each of those is due (``time.Truncate``-aligned boundaries,
  the first run at once), for a thread to drive.

Inputs are read from the local L0 copies in the database's meta directory when they are
there (and the right size), from the replica otherwise. A snapshot's plan is made with
:func:`~replica.restore.probe.plan_with_probes`, which reads the page size of each file
of the plan (and page indexes when it must look for a full image), so after a page-size
change the snapshot is built from the full image of the new size; what it learns is
cached for the next runs. A level run that spans a page-size change merges into a full
image of the new size (:mod:`ltx.compactor`). Outputs are NoChecksum, take
the last input's header timestamp (so their ``created_at`` is the time of the state
they hold, and point-in-time restores stay exact), and are written by the replica
client, which records that timestamp as the file mtime or the ``litestream-timestamp``
metadata.

Any storage failure invalidates the index (a write or delete may or may not have
happened); the next run lists the replica again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import BinaryIO, cast

import attrs

from ltx.compactor import compact
from ltx.errors import LTXError, PyLitestreamError
from ltx.fileinfo import FileInfo
from ltx.header import FLAG_NO_CHECKSUM, Header
from ltx.layout import HEADER_SIZE
from replica.defaults import (
    DEFAULT_L0_RETENTION,
    DEFAULT_L0_RETENTION_CHECK_INTERVAL,
    DEFAULT_LEVEL_INTERVALS,
    DEFAULT_SNAPSHOT_INTERVAL,
    DEFAULT_SNAPSHOT_RETENTION,
    ERROR_LOG_EVERY,
    NOT_READY_RETRY,
    NOT_READY_TIMEOUT,
    seconds,
)
from replica.index import ReplicaIndex
from replica.levels import (
    MAX_COMPACTION_LEVEL,
    SNAPSHOT_LEVEL,
    LevelJob,
    next_run_at,
    plan_level,
    plan_snapshot,
)
from replica.restore.errors import RestorePlanError
from replica.restore.plan import LATEST, Listing, RestorePlan
from replica.restore.probe import FileFacts, plan_with_probes, read_file_header
from replica.retention import (
    RetentionDecision,
    RetentionSettings,
    plan_retention,
)
from replica.retention import (
    non_negative_duration as _not_negative,
)
from replica.retention import (
    positive_duration as _positive,
)
from replica.storage import ReplicaClient
from replica.storage.timestamps import EPOCH

log = logging.getLogger("replica.compaction")

UTC = dt.UTC
_SMALL_BUFFER = 64 * 1024
_LARGE_BUFFER = 8 * 1024 * 1024
TEMP_PREFIX = "compact-"
TEMP_SUFFIX = ".ltx.tmp"


class CompactionCancelled(PyLitestreamError):
    """A compaction run stopped because the replication is shutting down (not a failure)."""


class _Cancellable:
    """A staged output whose every write first checks the cancel event."""

    def __init__(self, f: BinaryIO, cancel: threading.Event, level: int) -> None:
        self._f = f
        self._cancel = cancel
        self._level = level

    def write(self, b: bytes | memoryview) -> int:
        if self._cancel.is_set():
            raise CompactionCancelled("compaction cancelled by shutdown", level=self._level)
        return self._f.write(b)

    def __getattr__(self, name: str) -> object:
        return getattr(self._f, name)


def is_compaction_temp(name: str) -> bool:
    """Whether ``name`` (in ``work_dir``) is an output being staged by a compaction run.

    Those files belong to the compaction task alone: only it may remove leftovers,
    before its first run (:meth:`replica.daemon.Replication.start`).
    """
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


def _to_intervals(value: Iterable[dt.timedelta]) -> tuple[dt.timedelta, ...]:
    return tuple(value)


def _check_levels(
    _: object, __: attrs.Attribute[tuple[dt.timedelta, ...]], value: tuple[dt.timedelta, ...]
) -> None:
    if len(value) > MAX_COMPACTION_LEVEL:
        raise ValueError(f"levels: at most {MAX_COMPACTION_LEVEL} compaction levels (got {len(value)})")
    for i, iv in enumerate(value):
        if not isinstance(iv, dt.timedelta) or iv <= dt.timedelta(0):
            raise ValueError(f"levels[{i}].interval: compaction interval must be greater than 0 (got {iv})")


@attrs.frozen
class CompactionOptions:
    """Compaction, snapshot and retention settings, with Litestream 0.5's defaults.

    ``levels[i]`` is the interval of level ``i + 1`` (at most 8 levels, each > 0; an
    empty tuple means no compaction levels). ``l0_retention`` of 0 turns L0 deletion
    off. ``retention_enabled=False`` keeps every remote file (local copies are still
    cleaned up).
    """

    levels: tuple[dt.timedelta, ...] = attrs.field(
        default=DEFAULT_LEVEL_INTERVALS, converter=_to_intervals, validator=_check_levels
    )
    snapshot_interval: dt.timedelta = attrs.field(default=DEFAULT_SNAPSHOT_INTERVAL, validator=_positive)
    snapshot_retention: dt.timedelta = attrs.field(default=DEFAULT_SNAPSHOT_RETENTION, validator=_positive)
    l0_retention: dt.timedelta = attrs.field(default=DEFAULT_L0_RETENTION, validator=_not_negative)
    l0_retention_check_interval: dt.timedelta = attrs.field(
        default=DEFAULT_L0_RETENTION_CHECK_INTERVAL, validator=_positive
    )
    retention_enabled: bool = True

    @property
    def retention(self) -> RetentionSettings:
        return RetentionSettings(self.snapshot_retention, self.l0_retention, self.retention_enabled)

    def interval(self, level: int) -> dt.timedelta:
        """The interval of ``level`` (1..n, or 9 for snapshots)."""
        if level == SNAPSHOT_LEVEL:
            return self.snapshot_interval
        return self.levels[level - 1]


@attrs.frozen
class RunResult:
    """What one level or snapshot run did: the files written (empty when skipped) and why."""

    level: int
    written: tuple[FileInfo, ...] = ()
    reason: str = ""

    @property
    def skipped(self) -> bool:
        return not self.written


@attrs.frozen
class RetentionResult:
    """What one retention run decided and deleted (``deleted`` is empty when retention is disabled)."""

    decision: RetentionDecision
    deleted: tuple[FileInfo, ...] = ()
    local_deleted: int = 0


@attrs.define
class CompactorStats:
    """Counters for monitoring and tests."""

    runs: dict[int, int] = attrs.field(factory=dict)
    written: dict[int, int] = attrs.field(factory=dict)
    skipped: dict[str, int] = attrs.field(factory=dict)
    bytes_written: int = 0
    retention_runs: int = 0
    deleted: int = 0
    errors: int = 0


class Compactor:
    """Compacts, snapshots and enforces retention on one replica, planning from ``index``.

    ``local_l0_dir``: the database's ``<meta>/ltx/0``, read before the replica.
    ``work_dir``: where outputs are staged (``*.tmp``; default: the system temp dir).
    ``on_l0_consumed(txid)``: called after a level-1 compaction with the highest TXID
    it consumed. ``remove_local(txids)``: delete local L0 copies (default: unlink them
    in ``local_l0_dir``). ``clock`` gives aware UTC datetimes. ``cancel``: once set, a
    run that is writing its output stops at its next write with
    :class:`CompactionCancelled` (nothing is written to the replica; shutdown sets it).

    Methods are not meant to run concurrently with each other (one thread drives them);
    the index may be updated concurrently by the uploader.
    """

    def __init__(
        self,
        client: ReplicaClient,
        index: ReplicaIndex,
        options: CompactionOptions | None = None,
        *,
        local_l0_dir: str | None = None,
        work_dir: str | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        on_l0_consumed: Callable[[int], None] | None = None,
        remove_local: Callable[[Sequence[int]], int] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.cancel = cancel or threading.Event()
        self.index = index
        self.options = options or CompactionOptions()
        self.local_l0_dir = local_l0_dir
        self.work_dir = work_dir
        self.clock = clock
        self.on_l0_consumed = on_l0_consumed
        self.remove_local = remove_local or self._unlink_local
        self.stats = CompactorStats()
        self._lock = threading.Lock()
        self._facts = FileFacts()

    # -- level runs ------------------------------------------------------------------------

    def compact_level(self, level: int, now: dt.datetime | None = None) -> RunResult:
        """One run of compaction level ``level`` (1..n): plan from the index, merge, write."""
        if not 1 <= level <= len(self.options.levels):
            n = len(self.options.levels)
            raise ValueError(f"level {level} is not a configured compaction level (1..{n})")
        now = now or self.clock()
        with self._lock:
            self.stats.runs[level] = self.stats.runs.get(level, 0) + 1
            listing = self.index.listing()
            plan = plan_level(level, listing[level - 1], listing[level], now, self.options.interval(level))
            if plan.skipped:
                self._count_skip(plan.reason)
                log.debug("L%d: nothing to do (%s)", level, plan.reason)
                return RunResult(level, reason=plan.reason)
            written = tuple(self._run_job(job.level, job.inputs) for job in plan.jobs)
            for job, info in zip(plan.jobs, written, strict=True):
                log.info(
                    "compacted %d file(s) of L%d into L%d %s (%d bytes)",
                    len(job.inputs), level - 1, level, info.name, info.size,
                )  # fmt: skip
        if level == 1 and self.on_l0_consumed is not None:
            self.on_l0_consumed(max(j.max_txid for j in plan.jobs))
        return RunResult(level, written, reason=plan.reason)

    def snapshot(self, now: dt.datetime | None = None, *, force: bool = False) -> RunResult:
        """One run of the snapshot level: the latest restore plan merged into ``1-<txid>`` at L9.

        ``force`` writes one even if the newest snapshot is recent or up to date
        (``replicate -once -force-snapshot``), unless the replica is empty.
        """
        now = now or self.clock()
        with self._lock:
            self.stats.runs[SNAPSHOT_LEVEL] = self.stats.runs.get(SNAPSHOT_LEVEL, 0) + 1
            listing = self.index.listing()
            self._facts.retain(listing)
            try:
                plan = plan_snapshot(
                    listing, now, self.options.snapshot_interval, force=force, planner=self._latest_plan
                )
            except RestorePlanError as e:
                self.stats.errors += 1
                log.error("snapshot skipped: the replica has no restore plan to its latest state: %s", e)
                return RunResult(SNAPSHOT_LEVEL, reason="no restore plan")
            if plan.skipped:
                self._count_skip(plan.reason)
                log.debug("snapshot: nothing to do (%s)", plan.reason)
                return RunResult(SNAPSHOT_LEVEL, reason=plan.reason)
            info = self._run_job(SNAPSHOT_LEVEL, plan.inputs)
            log.info(
                "snapshot complete: L9 %s from %d file(s) (%d bytes)", info.name, len(plan.inputs), info.size
            )
        return RunResult(SNAPSHOT_LEVEL, (info,), reason=plan.reason)

    def _latest_plan(self, listing: Listing) -> RestorePlan:
        """The restore plan of the latest state, reading page sizes and page indexes as needed."""
        try:
            return plan_with_probes(
                self.client, listing, LATEST, facts=self._facts, read_header=self._read_header
            )
        except RestorePlanError:
            raise
        except PyLitestreamError:
            self.index.invalidate()  # e.g. a file deleted behind our back: re-list next time
            raise

    def _count_skip(self, reason: str) -> None:
        self.stats.skipped[reason] = self.stats.skipped.get(reason, 0) + 1

    def _run_job(self, level: int, inputs: Sequence[FileInfo]) -> FileInfo:
        job = LevelJob(level, inputs)
        # a snapshot may start at a full image other than 1-<txid>: it is still written as 1-<max>
        min_txid = 1 if level == SNAPSHOT_LEVEL else job.min_txid
        if self.work_dir is not None:
            os.makedirs(self.work_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}L{level}-", suffix=TEMP_SUFFIX, dir=self.work_dir)
        try:
            with contextlib.ExitStack() as stack:
                out = _Cancellable(stack.enter_context(os.fdopen(fd, "wb")), self.cancel, level)
                readers = [stack.enter_context(self._open_input(f)) for f in inputs]
                names = [f"L{f.level}/{f.name}" for f in inputs]
                res = compact(
                    cast(BinaryIO, out),  # a file whose writes check for cancellation
                    readers,
                    flags=FLAG_NO_CHECKSUM,
                    names=names,
                    levels=[f.level for f in inputs],
                    as_snapshot=min_txid != job.min_txid,
                )
            h = res.header
            if (h.min_txid, h.max_txid) != (min_txid, job.max_txid):
                raise LTXError(
                    f"compaction output holds {h.min_txid:016x}-{h.max_txid:016x}, "
                    f"expected {min_txid:016x}-{job.max_txid:016x}",
                    level=level,
                )
            try:
                info = self.client.write_file(level, min_txid, job.max_txid, Path(tmp))
            except BaseException:
                self.index.invalidate()
                raise
        except CompactionCancelled:
            raise
        except PyLitestreamError:
            self.stats.errors += 1
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self.index.add(info)
        self.stats.written[level] = self.stats.written.get(level, 0) + 1
        self.stats.bytes_written += info.size
        return info

    def _open_input(self, info: FileInfo) -> BinaryIO:
        """The local L0 copy when it is there with the listed size, else a ranged reader on the replica."""
        if info.level == 0 and self.local_l0_dir is not None:
            path = os.path.join(self.local_l0_dir, info.name)
            try:
                f = open(path, "rb", buffering=_SMALL_BUFFER)  # noqa: SIM115
            except FileNotFoundError:
                pass
            else:
                if self._same_file(f, info):
                    return f
                f.close()  # another lineage's file with the same name: use the replica's
        size = info.size or None
        buf = _LARGE_BUFFER if size is None else max(_SMALL_BUFFER, min(size, _LARGE_BUFFER))
        try:
            return self.client.open_file(info.level, info.min_txid, info.max_txid, size=size, buffer_size=buf)
        except PyLitestreamError:
            self.index.invalidate()  # e.g. deleted behind our back: re-list next time
            raise

    def _read_header(self, info: FileInfo) -> Header:
        """A file's header, from the local L0 copy when it is the listed file, else from the replica."""
        if info.level == 0 and self.local_l0_dir is not None:
            path = os.path.join(self.local_l0_dir, info.name)
            try:
                f = open(path, "rb")  # noqa: SIM115
            except FileNotFoundError:
                pass
            else:
                with f:
                    if self._same_file(f, info):
                        try:
                            h = Header.from_bytes(f.read(HEADER_SIZE))
                            h.validate()
                        except LTXError as e:
                            raise e.located(path=path, level=0, txid=info.min_txid) from None
                        return h
        return read_file_header(self.client, info)

    @staticmethod
    def _same_file(f: BinaryIO, info: FileInfo) -> bool:
        """Whether a local L0 file is the one listed: same size, same header TXIDs and timestamp."""
        if info.size and os.fstat(f.fileno()).st_size != info.size:
            return False
        try:
            h = Header.from_bytes(f.read(HEADER_SIZE))
        except LTXError:
            return False
        f.seek(0)
        created_ms = (info.created_at - EPOCH) // dt.timedelta(milliseconds=1)
        return (h.min_txid, h.max_txid, h.timestamp) == (info.min_txid, info.max_txid, created_ms)

    # -- retention -------------------------------------------------------------------------

    def enforce_retention(self, now: dt.datetime | None = None) -> RetentionResult:
        """One retention run: decide from the index (:func:`replica.retention.plan_retention`), delete.

        Remote deletions only when retention is enabled; the local copies of deleted L0
        files always.
        """
        now = now or self.clock()
        with self._lock:
            self.stats.retention_runs += 1
            decision = plan_retention(self.index.listing(), now, self.options.retention)
            for note in decision.withheld:
                log.warning("retention: %s", note)
            if decision.deferred:
                log.debug("L0 retention deferred: %s", decision.deferred)
            deleted: tuple[FileInfo, ...] = ()
            if decision.files and self.options.retention_enabled:
                try:
                    self.client.delete_files(decision.files)
                except BaseException:
                    self.index.invalidate()
                    raise
                self.index.remove(decision.files)
                deleted = decision.files
                self.stats.deleted += len(deleted)
                log.info(
                    "retention: deleted %d snapshot(s), %d level file(s), %d L0 file(s) (floor txid %016x)",
                    len(decision.snapshots), len(decision.levels), len(decision.l0), decision.floor_txid,
                )  # fmt: skip
            local = self.remove_local([f.max_txid for f in decision.l0]) if decision.l0 else 0
        return RetentionResult(decision, deleted, local)

    def _unlink_local(self, txids: Sequence[int]) -> int:
        if self.local_l0_dir is None:
            return 0
        n = 0
        for t in txids:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.local_l0_dir, f"{t:016x}-{t:016x}.ltx"))
                n += 1
        return n


# -- scheduling -----------------------------------------------------------------------------


RETENTION = "retention"


class Scheduler:
    """When each job of a :class:`Compactor` is due, and running the due ones in order.

    Jobs: each level 1..n and the snapshot level run at once, then at
    :func:`~replica.levels.next_run_at` their interval; retention every
    ``l0_retention_check_interval`` and right after each level-1 compaction and each
    snapshot run. While the replica is empty the snapshot level retries every second
    for up to 30 s after start-up, as Litestream does while a database is not ready.
    Errors are logged (at most every 30 s per job) and the job waits for its next time.
    """

    LOG_EVERY = seconds(ERROR_LOG_EVERY)

    def __init__(self, compactor: Compactor, start: dt.datetime | None = None) -> None:
        self.compactor = compactor
        opts = compactor.options
        now = start or compactor.clock()
        self.started = now
        self.due: dict[int | str, dt.datetime] = {lvl: now for lvl in range(1, len(opts.levels) + 1)}
        self.due[SNAPSHOT_LEVEL] = now
        self.due[RETENTION] = now + opts.l0_retention_check_interval
        self._last_log: dict[int | str, float] = {}
        self.failures = 0

    def next_due(self) -> dt.datetime:
        return min(self.due.values())

    def _order(self) -> list[int | str]:
        levels: list[int | str] = [k for k in self.due if isinstance(k, int) and k != SNAPSHOT_LEVEL]
        return [*sorted(levels, key=lambda k: int(k)), SNAPSHOT_LEVEL, RETENTION]

    def run_pending(self, stop: threading.Event | None = None) -> int:
        """Run every job that is due now, lower levels first; returns how many ran."""
        ran = 0
        retention_now = False
        for job in self._order():
            if stop is not None and stop.is_set():
                break
            now = self.compactor.clock()
            if self.due[job] > now:
                continue
            ran += 1
            if job == RETENTION:
                retention_now = True
                self.due[job] = now + self.compactor.options.l0_retention_check_interval
                continue
            level = int(job)
            result = self._guard(job, functools.partial(self._level, level))
            now = self.compactor.clock()
            if (
                level == SNAPSHOT_LEVEL
                and result is not None
                and result.reason == "replica is empty"
                and now - self.started < NOT_READY_TIMEOUT
            ):
                self.due[job] = now + NOT_READY_RETRY
            else:
                self.due[job] = next_run_at(now, self.compactor.options.interval(level))
            if level == SNAPSHOT_LEVEL or (level == 1 and result is not None and result.written):
                retention_now = True
        if retention_now and not (stop is not None and stop.is_set()):
            self._guard(RETENTION, self.compactor.enforce_retention)
        return ran

    def _level(self, level: int) -> RunResult:
        if level == SNAPSHOT_LEVEL:
            return self.compactor.snapshot()
        return self.compactor.compact_level(level)

    def _guard(self, job: int | str, fn: Callable[[], object]) -> RunResult | None:
        try:
            out = fn()
        except CompactionCancelled:
            return None
        except Exception as e:  # the loop must survive anything
            self.failures += 1
            self.compactor.stats.errors += 1
            now = time.monotonic()
            if now - self._last_log.get(job, -self.LOG_EVERY) >= self.LOG_EVERY:
                self._last_log[job] = now
                what = "retention" if job == RETENTION else f"L{job} compaction"
                log.error("%s failed: %s", what, e)
            return None
        return out if isinstance(out, RunResult) else None

    def run(self, stop: threading.Event, wake_every: float = 1.0) -> None:
        """Drive the jobs until ``stop`` is set (sleeping until the next due time, at most ``wake_every``)."""
        while not stop.is_set():
            self.run_pending(stop)
            wait = (self.next_due() - self.compactor.clock()).total_seconds()
            stop.wait(min(max(wait, 0.01), wake_every))
