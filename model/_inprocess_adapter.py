"""Ours in process: :class:`replica.daemon.Replication` in the test process, on a virtual clock.

:class:`InProcessAdapter` is synced on demand (deterministic), runs on a
:class:`VirtualClock` only the harness moves, survives storage faults injected through
the store, and simulates crashes at chosen points by raising
:class:`~model.adapters.SimulatedCrash` inside the replicator and dropping its objects
after closing their connections and descriptors, as a killed process's would be.
:func:`in_process` makes a factory of it for :func:`~model.testing.make_machine`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Sequence
from typing import Any

from model.adapters import (
    Adapter,
    AdapterFactory,
    Capabilities,
    CrashPoint,
    Environment,
    HarnessError,
    ReplicatorFailure,
    RestoreFailure,
    SimulatedCrash,
    Target,
)
from model.retention import RetentionPolicy
from model.state import Compare

VIRTUAL_EPOCH = 1_767_225_600.0
"""2026-01-01T00:00:00Z: where virtual clocks start, so that schedules aligned to
``time.Truncate`` boundaries behave the same in every run."""


class VirtualClock:
    """Deterministic time for an in-process replicator: starts at ``start`` (default
    :data:`VIRTUAL_EPOCH`), moves 1 ms per reading (so timestamps are distinct and
    increasing), and jumps when told."""

    def __init__(self, start: float | None = None) -> None:
        self.t = VIRTUAL_EPOCH if start is None else start

    def __call__(self) -> float:
        self.t += 0.001
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def peek(self) -> dt.datetime:
        """The current time without moving it."""
        return dt.datetime.fromtimestamp(self.t, dt.UTC)

    def datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self(), dt.UTC)


class InProcessAdapter(Adapter):
    """Ours, as a library in the test process, synced on demand, on a virtual clock.

    ``start`` opens the database (a first sync) and uploads, like the first round of the
    replicate command; ``sync`` is ``Replication.sync_once`` (sync, checkpoint policy
    with small thresholds so that our own checkpoints happen, upload) followed by the
    compaction scheduler's due jobs (levels, level-9 snapshot, retention; unless
    ``schedule`` is false), all on a :class:`VirtualClock` that only the harness moves
    (``advance``), so the run is deterministic and hours of retention fit in a test.
    ``compact(level)`` runs one level (1..n) or the snapshot level (9) now;
    ``enforce_retention`` one retention pass.

    Crash points (simulated: the objects are dropped after their SQLite connections
    and descriptors are closed, as a killed process's would be):

    * ``idle``: now;
    * ``after-l0``: after writing the next local L0 file, before uploading it, leaving a
      half-written ``.tmp`` beside it as a killed writer would;
    * ``mid-upload``: inside the upload, at the ``1 + int(delay * 3)``-th storage write;
    * ``after-checkpoint``: right after one of its own PASSIVE checkpoints.
    """

    name = "ours-inprocess"

    def __init__(
        self,
        env: Environment,
        *,
        min_checkpoint_page_count: int = 32,
        truncate_page_n: int = 400,
        levels: Sequence[dt.timedelta] = (dt.timedelta(seconds=10), dt.timedelta(seconds=60)),
        snapshot_interval: dt.timedelta = dt.timedelta(minutes=2),
        snapshot_retention: dt.timedelta = dt.timedelta(minutes=10),
        l0_retention: dt.timedelta = dt.timedelta(seconds=30),
        schedule: bool = True,
        clock_start: float | None = None,
    ) -> None:
        super().__init__(env)
        from replica.daemon import Replication, ReplicationOptions
        from replica.monitor import DBOptions

        self._Replication = Replication
        self.options = ReplicationOptions(
            db=DBOptions(
                monitor_interval=0.0,
                checkpoint_interval=0.0,
                busy_timeout=1.0,
                min_checkpoint_page_count=min_checkpoint_page_count,
                truncate_page_n=truncate_page_n,
            ),
            shutdown_timeout=1.0,
            shutdown_interval=0.01,
            levels=tuple(levels),
            snapshot_interval=snapshot_interval,
            snapshot_retention=snapshot_retention,
            l0_retention=l0_retention,
        )
        self.capabilities = Capabilities(
            explicit_sync=True,
            compaction=bool(levels),
            storage_faults=True,
            crash_points=("idle", "after-l0", "mid-upload", "after-checkpoint"),
            compare=Compare.PAGES,
            stores=frozenset({"file", "memory", "s3"}),
            retention=RetentionPolicy(l0_retention=l0_retention, snapshot_retention=snapshot_retention),
            virtual_clock=True,
        )
        self.schedule = schedule
        self.clock = VirtualClock(clock_start)
        self.rep: Any = None
        self.scheduler: Any = None
        self.client = env.store.client()

    @property
    def running(self) -> bool:
        return self.rep is not None

    def now(self) -> dt.datetime:
        return self.clock.peek()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def start(self) -> None:
        from replica.compaction import Scheduler

        if self.rep is not None:
            raise HarnessError("already running")
        rep = self._Replication(self.env.db_path, self.client, self.options)
        rep.db.clock = self.clock
        rep.compactor.clock = self.clock.datetime
        try:
            if not rep.open():
                raise ReplicatorFailure("database does not exist")
        except BaseException:
            self._die(rep)
            raise
        self.rep = rep
        self.scheduler = Scheduler(rep.compactor, start=self.clock.datetime())
        rep.uploader.sync()  # as the replicate command's first round does

    def sync(self) -> None:
        if self.rep is None:
            raise HarnessError("not running")
        self.rep.sync_once()
        if self.scheduler is not None and self.schedule:
            self.scheduler.run_pending()

    def compact(self, level: int) -> None:
        if self.rep is None:
            raise HarnessError("not running")
        if level == 9:
            self.rep.compactor.snapshot()
        elif 1 <= level <= len(self.options.levels):
            self.rep.compactor.compact_level(level)

    def enforce_retention(self) -> None:
        if self.rep is None:
            raise HarnessError("not running")
        self.rep.compactor.enforce_retention()

    def stop(self) -> None:
        rep, self.rep = self.rep, None
        self.scheduler = None
        if rep is None:
            return
        if not rep.stop():
            raise ReplicatorFailure("stop: not every L0 file was uploaded before shutdown")

    @staticmethod
    def _die(rep: Any) -> None:
        with contextlib.suppress(Exception):
            rep.db.close(final_sync=False)

    def crash(self, point: CrashPoint) -> None:
        rep, self.rep = self.rep, None
        self.scheduler = None
        if rep is None:
            return
        kind = self.capabilities.crash_points[point.at % len(self.capabilities.crash_points)]
        try:
            if kind == "after-l0":
                out = rep.db.sync()
                if out is not None:
                    tmp = os.path.join(rep.db.l0_dir, f"{out.txid + 1:016x}-{out.txid + 1:016x}.ltx.tmp")
                    with open(tmp, "wb") as f:
                        f.write(b"LTX1 interrupted")
            elif kind == "mid-upload":
                self._sync_until_write(rep, 1 + int(point.delay * 3))
            elif kind == "after-checkpoint":
                rep.db.checkpoint("PASSIVE")
        except SimulatedCrash:
            pass
        finally:
            self._die(rep)

    def _sync_until_write(self, rep: Any, n: int) -> None:
        client = rep.client
        original = client.write_file
        count = 0

        def write_file(*args: Any, **kwargs: Any) -> Any:
            nonlocal count
            count += 1
            if count >= n:
                raise SimulatedCrash(f"killed at storage write {count}")
            return original(*args, **kwargs)

        client.write_file = write_file
        try:
            rep.sync_once()
        finally:
            del client.write_file

    def restore(self, output: str, target: Target) -> None:
        from replica.restore import restore

        try:
            restore(self.env.store.client(), output, txid=target.txid, timestamp=target.time, parallelism=2)
        except Exception as e:
            raise RestoreFailure(f"{type(e).__name__}: {e}") from e

    def close(self) -> None:
        rep, self.rep = self.rep, None
        if rep is not None:
            self._die(rep)


def in_process(**options: Any) -> AdapterFactory:
    """A factory of :class:`InProcessAdapter` with these options (see its constructor)."""

    def make(env: Environment) -> Adapter:
        return InProcessAdapter(env, **options)

    return make
