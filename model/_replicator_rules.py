"""The machine's replicator rules: sync, stop, start, crash, faults, time and compaction.

Only what the adapter declares in its :class:`~model.adapters.Capabilities` is used.
A sync (told, or waited for) and a graceful stop must leave the replica's latest TXID
holding the database's current state, unless an injected storage fault fired; a start
may follow the loss of the meta directory or of the replica's contents; a crash kills
the replicator at a chosen point, or in the middle of a burst of commits after which
the application restarts the WAL while it is down.
"""

from __future__ import annotations

import shutil
import threading
import time

import attrs

from model._checks import CheckingMachine
from model._hypothesis import precondition, rule, st
from model._operations import CHECKPOINT_MODES, SEED
from model.adapters import CrashPoint, HarnessError, ProcessAdapter
from model.app import AppError
from model.stores import FaultKind


class ReplicatorRules(CheckingMachine):
    """The rules that drive the replicator through its adapter."""

    @precondition(lambda self: self._fresh("sync", 3))
    @precondition(lambda self: self.running)
    @rule()
    def sync(self) -> None:
        self._step("sync")
        if self.explicit:
            fired = self._fired()
            if self._replicator_op("sync", self.adapter.sync):
                self._observe()
                if self._fired() == fired:
                    self._check_caught_up("after a sync")
        else:
            self._wait_caught_up("sync")

    @precondition(lambda self: self._fresh("stop", 3))
    @precondition(lambda self: self.running)
    @rule()
    def stop(self) -> None:
        self._step("stop")
        wait = self.started_at + self.options.min_uptime - time.monotonic()
        if wait > 0 and not self.explicit:
            time.sleep(wait)
        fired = self._fired()
        if self._replicator_op("stop", self.adapter.stop):
            self._observe()
            if self._fired() == fired:
                self._check_caught_up("after a graceful stop")
        self.crashed = False

    @precondition(lambda self: self._fresh("start", 3))
    @precondition(lambda self: not self.running)
    @rule(lost=st.sampled_from(["nothing", "meta", "replica"]))
    def start(self, lost: str) -> None:
        """Start the replicator again, after ``lost`` was lost while it was down."""
        self._step("start", lost=lost)
        self._lose(lost)
        self.started_at = time.monotonic()
        if self._replicator_op("start", self.adapter.start):
            self.crashed = False

    @precondition(lambda self: self._fresh("crash", 3))
    @precondition(lambda self: self.running and self.options.crashes)
    @rule(at=st.integers(0, 3), delay=st.sampled_from([0.0, 0.1, 0.4, 0.9]))
    def crash(self, at: int, delay: float) -> None:
        self._step("crash", at=at, delay=delay)
        self._crash(CrashPoint(at, delay))
        self.crashed = True

    @precondition(lambda self: self._fresh("crash_while_writing", 3))
    @precondition(lambda self: self.running and self.options.crashes)
    @rule(
        at=st.integers(0, 3),
        delay=st.sampled_from([0.0, 0.05, 0.2, 0.5]),
        rows=st.integers(1, 6),
        mode=st.sampled_from([None, *CHECKPOINT_MODES]),
        seed=SEED,
    )
    def crash_while_writing(self, at: int, delay: float, rows: int, mode: str | None, seed: int) -> None:
        """A supervisor scenario: the replicator is killed while the application commits a
        burst of rows (``delay`` seconds in, for one that runs by itself; at crash point
        ``at`` first, for one synced on demand), the application checkpoints in ``mode``
        while it is down, and then the replicator is started again."""
        self._step("crash_while_writing", at=at, delay=delay, rows=rows, mode=mode, seed=seed)
        adapter = self.adapter
        concurrent = isinstance(adapter, ProcessAdapter)
        timer: threading.Timer | None = None
        if concurrent:
            assert isinstance(adapter, ProcessAdapter)
            timer = threading.Timer(delay, adapter.kill_now)
            timer.start()
        else:
            self._crash(CrashPoint(at, delay))
        t = self._table(seed)
        insert = f"INSERT INTO {t} (n, body) VALUES (?, ?)"
        update = f"UPDATE {t} SET n = n + 1, body = ? WHERE id % 3 = ?"
        try:
            for i in range(rows):
                # updates change pages that already exist (a restart of the WAL can hide
                # those); inserts of small rows mostly do too
                if i % 2 == 0:
                    self._tx(f"update {t}", [(update, [{"blob": [seed + i, 300]}, i % 3])])
                else:
                    self._tx(f"insert 1 row into {t}", [(insert, [seed + i, {"blob": [seed + i, 24]}])])
        finally:
            if timer is not None:
                timer.join()
        self._crash(CrashPoint(at, 0.0))
        self.crashed = True
        if mode is not None and self.options.wal_restart_after_crash:
            self._app().checkpoint(mode)
            self._tx(f"insert 1 row into {t}", [(insert, [seed + rows, {"blob": [seed + rows, 24]}])])
        self.started_at = time.monotonic()
        if self._replicator_op("start", adapter.start):
            self.crashed = False

    def _crash(self, point: CrashPoint) -> None:
        """Kill the replicator. What it was doing when it died may fail in any way (an
        injected storage fault, say): that is not a discrepancy, the process is gone."""
        try:
            self.adapter.crash(point)
        except (HarnessError, AppError):
            raise
        except Exception as e:
            self.notes.append(f"crash: the dying replicator's last work failed: {e}")
        finally:
            self._note_seen()

    def _lose(self, what: str) -> None:
        """Lose the meta directory (a new machine, an ephemeral disk) or the replica's
        contents (the bucket was emptied) while nothing replicates."""
        if what == "meta" and self.options.lose_meta and self.adapter.capabilities.meta_dir:
            shutil.rmtree(self.adapter.env.meta_dir, ignore_errors=True)
        elif what == "replica" and self.options.lose_replica:
            c = self.observer.client
            c.delete_files(f for lv in range(10) for f in c.list_files(lv))
            self.observer.forget()
            self.history = attrs.evolve(self.model, syncs=())
            self.checked = set()
        else:
            return
        self._forget_vanished()

    def _forget_vanished(self) -> None:
        """TXIDs that exist nowhere any more (neither locally nor in the replica) may be used again."""
        present = self.adapter.local_l0_txids() | self.observer.refresh().ends
        self.first_seen = {t: s for t, s in self.first_seen.items() if t in present}

    @precondition(lambda self: self._fresh("storage_fault", 2))
    @precondition(
        lambda self: (
            self.options.faults
            and self.store is not None
            and self.store.faults is not None
            and self.store.faults.armed == 0
            and self.adapter.capabilities.storage_faults
        )
    )
    @rule(kind=st.sampled_from(list(FaultKind)), count=st.integers(1, 4))
    def storage_fault(self, kind: FaultKind, count: int) -> None:
        """The next ``count`` storage operations of ``kind`` fail transiently."""
        self._step("storage_fault", kind=kind, count=count)
        assert self.store is not None and self.store.faults is not None
        self.store.faults.arm(kind, count)

    @precondition(lambda self: self._fresh("time_passes", 3))
    @precondition(lambda self: self._adapter is not None and self._adapter.capabilities.virtual_clock)
    @rule(seconds=st.sampled_from([1.0, 15.0, 70.0, 700.0]))
    def time_passes(self, seconds: float) -> None:
        """Time passes on the replicator's (virtual) clock: compaction and retention come due."""
        self._step("time_passes", seconds=seconds)
        self.adapter.advance(seconds)

    @precondition(lambda self: self._fresh("compact", 3))
    @precondition(
        lambda self: self.running and self._adapter is not None and self._adapter.capabilities.compaction
    )
    @rule(level=st.sampled_from([1, 2, 9, 0]))
    def compact(self, level: int) -> None:
        """Compact into ``level`` now (9: a level-9 snapshot; 0: a retention pass instead)."""
        self._step("compact", level=level)
        if level == 0:
            self._replicator_op("retention", self.adapter.enforce_retention)
        else:
            self._replicator_op(f"compaction into L{level}", lambda: self.adapter.compact(level))
