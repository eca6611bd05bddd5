"""Hypothesis state machines that drive a replicator and the model side by side.

Like ``zarr.testing``: import the machine, bind it to an implementation with
:func:`make_machine`, and run it::

    from hypothesis.stateful import run_state_machine_as_test
    from model.adapters import in_process
    from model.testing import make_machine, file_store

    Machine = make_machine(in_process(), file_store)
    run_state_machine_as_test(Machine, settings=...)

What a run does. The application (:mod:`model.app`, its own process) creates a
database and then, as Hypothesis chooses, commits transactions (inserts, updates,
deletes, schema changes, growth, ``VACUUM`` shrink), rolls some back, checkpoints in
every mode (``PASSIVE``, ``FULL``, ``RESTART``, ``TRUNCATE``, with a short busy
timeout) and reopens its connections. Every commit's full image goes into the model
(:class:`~model.state.History`). Meanwhile the replicator is synced (or, for one that
syncs by itself, waited for), stopped and started (possibly after its meta directory
or its replica's contents were lost), crashed (at chosen points, or killed in the
middle of a burst of commits and a checkpoint), told to compact and enforce
retention, its virtual clock moved, its storage made to fail transiently, and
restores are made to random TXIDs, moments and the latest state. Only what the
adapter declares in its :class:`~model.adapters.Capabilities` is used.

What is checked, after every step (the invariant) and by the rules:

* every file in the replica decodes and verifies, its header matches its name, it
  holds no lock page, and a TXID range never changes content (no TXID reuse);
* L0 files cover one TXID each and are contiguous (except where a compacted file
  covers a gap); compacted levels are chains; snapshots start at TXID 1;
* every TXID the replica can restore to (every file's last TXID: normally an L0
  file, sometimes only a snapshot that closed a gap), replayed from the replica's own
  files with the model's restore step, is a state the database really had: exactly
  its state when the file was made (replicators synced on demand), or one between the
  previous TXID's and the moment the file was first seen (replicators that sync by
  themselves); it is recorded in the model, and TXID order must agree with commit order;
* every compacted or snapshot file equals the state of its last TXID;
* nothing needed was deleted (:mod:`model.retention`: the newest TXID, every TXID and
  moment of the exact window, a plan for every moment of the reach window);
* after a sync (or a graceful stop) the replica's latest TXID holds the database's
  current state;
* every restore (to a recorded TXID, to a moment, to the latest) returns exactly the
  model's state -- byte for byte, or logically for replicators that write to the
  database -- and passes ``PRAGMA integrity_check``; restores the model says must be
  possible do not fail, and one to a moment before every file does not succeed.

Any violation raises :class:`Discrepancy`; a failure of the harness itself raises
:class:`~model.adapters.HarnessError` or :class:`~model.app.AppError`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import attrs

from ltx.errors import PyLitestreamError
from model._extra import missing

try:
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
except ModuleNotFoundError as e:
    raise missing(e, "model.testing") from e

from ltx.fileinfo import FileInfo
from model.adapters import (
    Adapter,
    AdapterFactory,
    CrashPoint,
    Environment,
    HarnessError,
    ProcessAdapter,
    Target,
    rfc3339,
)
from model.app import AppError, Application, Image
from model.observe import ReplicaContentError, ReplicaObserver
from model.replica import Replayed, listing_problems, reachable
from model.retention import retention_problems, time_target
from model.sqlite import explain_difference, fingerprint, integrity_check
from model.state import Commit, Compare, DatabaseState, History, ModelError, Sync
from model.stores import FaultKind, FileStore, MemoryStore, S3Store, Store

CHECKPOINT_MODES = ("PASSIVE", "FULL", "RESTART", "TRUNCATE")
TABLE = st.integers(0, 7)
SEED = st.integers(0, 2**16)
ROW_SIZES = st.sampled_from([0, 24, 300, 1500, 5000])


# -- application operations (values, so that failing examples print readably) -------------


@attrs.frozen
class Insert:
    table: int
    rows: int
    size: int
    seed: int


@attrs.frozen
class Update:
    table: int
    modulo: int
    size: int
    seed: int


@attrs.frozen
class Delete:
    table: int
    modulo: int
    rest: int


@attrs.frozen
class Grow:
    """One row of ``kib`` KiB: the database grows by many (overflow) pages at once."""

    table: int
    kib: int
    seed: int


@attrs.frozen
class Rollback:
    """A transaction that is rolled back; big ones spill uncommitted frames into the WAL."""

    table: int
    rows: int
    size: int
    seed: int


Write = Insert | Update | Delete | Grow | Rollback


@attrs.frozen
class CreateTable:
    indexed: bool


@attrs.frozen
class DropTable:
    table: int


@attrs.frozen
class AddColumn:
    table: int


@attrs.frozen
class CreateIndex:
    table: int


@attrs.frozen
class Vacuum:
    pass


SchemaChange = CreateTable | DropTable | AddColumn | CreateIndex | Vacuum

SCHEMA_CHANGES: st.SearchStrategy[SchemaChange] = st.one_of(
    st.builds(CreateTable, st.booleans()),
    st.builds(DropTable, TABLE),
    st.builds(AddColumn, TABLE),
    st.builds(CreateIndex, TABLE),
    st.just(Vacuum()),
)
WRITES: st.SearchStrategy[Write | SchemaChange] = st.one_of(
    st.builds(Insert, TABLE, st.integers(1, 20), ROW_SIZES, SEED),
    st.builds(Update, TABLE, st.integers(1, 4), ROW_SIZES, SEED),
    st.builds(Delete, TABLE, st.integers(1, 4), st.integers(0, 3)),
    st.builds(Grow, TABLE, st.integers(8, 96), SEED),
    st.builds(Rollback, TABLE, st.integers(1, 40), ROW_SIZES, SEED),
    SCHEMA_CHANGES,
)


class Discrepancy(PyLitestreamError, AssertionError):
    """The implementation did something the model says it must not.

    ``steps`` is the run that found it (the rules executed, as Hypothesis prints them),
    set when the machine is torn down: a fallback for failures that depend on timing and
    that Hypothesis therefore cannot replay and shrink.
    """

    steps: list[str]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.steps = []


StoreFactory = Callable[[str], Store]


def file_store(workdir: str) -> Store:
    """A ``file://`` replica in the run's working directory."""
    return FileStore(os.path.join(workdir, "replica"))


def memory_store(_workdir: str) -> Store:
    """fsspec's memory store under a root of the run's own (faults can be injected)."""
    return MemoryStore()


def s3_store(endpoint: str) -> StoreFactory:
    """A fresh bucket per run on the S3 ``endpoint`` (credentials: :func:`model.stores.s3_env`)."""

    def make(_workdir: str) -> Store:
        return S3Store(endpoint)

    return make


@attrs.frozen
class MachineOptions:
    """What a machine may do; the defaults allow everything."""

    page_sizes: tuple[int, ...] = (1024, 4096)
    sync_timeout: float = 30.0
    """Seconds a replicator that syncs by itself gets to catch up with the database."""
    poll_interval: float = 0.2
    wal_restart_after_crash: bool = True
    """Let the application checkpoint, restart its connections or auto-checkpoint while a
    crashed replicator is down (this is where Litestream 0.5.17 loses commits)."""
    app_autocheckpoint: int = 1000
    checkpoint_timeout: float = 0.1
    """The busy timeout of the application's checkpointing connection."""
    crashes: bool = True
    lose_meta: bool = True
    lose_replica: bool = True
    faults: bool = True
    restores: bool = True
    min_uptime: float = 0.0
    """Seconds a replicator runs before a graceful stop (Litestream ships nothing when
    stopped before its first sync, about a second after start)."""
    listing_time_bounds: bool = False
    """A restore to a moment is only required to succeed inside the span of the store's
    own listing times (Litestream bounds moments by them; on S3 that is LastModified, in
    whole seconds), not just inside the span of the files' LTX times."""


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class ReplicationMachine(RuleBasedStateMachine):
    """The conformance state machine; bind it with :func:`make_machine` (see the module docstring)."""

    adapter_factory: ClassVar[AdapterFactory]
    store_factory: ClassVar[StoreFactory]
    options: ClassVar[MachineOptions] = MachineOptions()

    def __init__(self) -> None:
        super().__init__()
        self.workdir: str | None = None
        self.store: Store | None = None
        self.app: Application | None = None
        self._adapter: Adapter | None = None
        self._observer: ReplicaObserver | None = None
        self.history: History | None = None
        self.first_seen: dict[int, int] = {}
        self.checked: set[tuple[int, int, int, str]] = set()
        self.tables: list[str] = ["t0"]
        self.columns: dict[str, int] = {"t0": 0}
        self.next_table = 1
        self.crashed = False
        self.started_at = 0.0
        self.restores = 0
        self.notes: list[str] = []
        self.counts: dict[str, int] = {}
        self.recent: list[str] = []
        self.trace: list[str] = []

    # -- plumbing ----------------------------------------------------------------------

    @property
    def adapter(self) -> Adapter:
        if self._adapter is None:
            raise HarnessError("the machine is not initialised")
        return self._adapter

    @property
    def observer(self) -> ReplicaObserver:
        if self._observer is None:
            raise HarnessError("the machine is not initialised")
        return self._observer

    @property
    def model(self) -> History:
        if self.history is None:
            raise HarnessError("the machine is not initialised")
        return self.history

    @property
    def how(self) -> Compare:
        return self.adapter.capabilities.compare

    @property
    def explicit(self) -> bool:
        return self.adapter.capabilities.explicit_sync

    @property
    def running(self) -> bool:
        return self._adapter is not None and self._adapter.running

    def _fired(self) -> int:
        f = self.store.faults if self.store is not None else None
        return f.fired if f is not None else 0

    def _app(self) -> Application:
        if self.app is None:
            raise HarnessError("the machine is not initialised")
        return self.app

    @initialize(page_size=st.sampled_from([1024, 4096]))
    def setup(self, page_size: int) -> None:
        opts = self.options
        if page_size not in opts.page_sizes:
            page_size = opts.page_sizes[0]
        self.trace.append(f"state.setup(page_size={page_size!r})")
        self.workdir = tempfile.mkdtemp(prefix="conformance-")
        self.store = type(self).store_factory(self.workdir)
        db = os.path.join(self.workdir, "app.db")
        self.app = Application(
            db,
            page_size=page_size,
            checkpoint_timeout=opts.checkpoint_timeout,
            autocheckpoint=opts.app_autocheckpoint,
        )
        img = self.app.image()
        state = DatabaseState(img.page_size, img.pages)
        self.history = History.start(state, fingerprint(state.image()), _utc(img.t1))
        self._adapter = type(self).adapter_factory(Environment(self.workdir, db, self.store))
        if self.store.kind not in self._adapter.capabilities.stores:
            raise HarnessError(f"{self._adapter.name} cannot replicate to {self.store.kind} stores")
        self._observer = ReplicaObserver(self.store.observer_client())
        self.started_at = time.monotonic()
        self._replicator_op("start", self._adapter.start)

    def _step(self, name: str, **args: Any) -> None:
        """Note a rule being run: counts, the recent-rules window, and the trace of steps."""
        self.counts[name] = self.counts.get(name, 0) + 1
        self.recent = [*self.recent[-7:], name]
        self.trace.append(f"state.{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})")

    def _fresh(self, name: str, limit: int = 3) -> bool:
        """False after ``limit`` runs of rule ``name`` in a row. Hypothesis's swarm testing
        sometimes enables a single rule for a whole example; this makes such an example
        stop early (discarded) instead of spending the budget on one rule 50 times."""
        tail = self.recent[-limit:]
        return len(tail) < limit or any(r != name for r in tail)

    def teardown(self) -> None:
        failing = sys.exc_info()[1]  # teardown runs in Hypothesis's ``finally``
        if isinstance(failing, Discrepancy) and not failing.steps:
            failing.steps = [f"state = {type(self).__name__}()", *self.trace, "state.teardown()"]
        if os.environ.get("CONFORMANCE_DEBUG"):
            print(f"run: {self.describe_run()}; {sorted(self.counts.items())}; {self.notes}", flush=True)
        if self._adapter is not None:
            with contextlib.suppress(Exception):
                self._adapter.close()
        if self.app is not None:
            with contextlib.suppress(Exception):
                self.app.close()
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.cleanup()
        if self.workdir is not None and not os.environ.get("CONFORMANCE_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _replicator_op(self, what: str, fn: Callable[[], None]) -> bool:
        """Run a replicator operation; True if it succeeded.

        A failure is a :class:`Discrepancy` unless an injected storage fault fired
        during it. Harness failures propagate.
        """
        fired = self._fired()
        try:
            fn()
            return True
        except (HarnessError, AppError, Discrepancy, NotImplementedError):
            raise
        except Exception as e:
            if self._fired() > fired:
                self.notes.append(f"{what} failed under injected faults: {e}")
                return False
            raise Discrepancy(f"{what} failed: {type(e).__name__}: {e}\n{self.adapter.log_tail()}") from e
        finally:
            self._note_seen()

    def _note_seen(self) -> None:
        """Note the TXIDs that exist now (locally or in the replica) with the current commit.

        Called after every replicator operation and at each observation: a TXID first
        seen here was made no later than the current commit.
        """
        if self._adapter is None or self._observer is None or self.history is None:
            return
        cur = self.history.current.seq
        local = self._adapter.local_l0_txids()
        remote = {i.max_txid for i in self._list_new()}
        for t in local | remote:
            self.first_seen.setdefault(t, cur)

    def _list_new(self) -> list[FileInfo]:
        """Levels where a new TXID can first appear: L0, and L9 (a snapshot closing a gap)."""
        try:
            return [*self.observer.client.list_files(0), *self.observer.client.list_files(9)]
        except Exception:  # the next observation reports storage trouble
            return []

    def _record(self, label: str, img: Image) -> None:
        state = DatabaseState(img.page_size, img.pages)
        self.history = self.model.commit(state, fingerprint(state.image()), _utc(img.t1), label)

    def _tx(self, label: str, stmts: Sequence[tuple[str, Sequence[Any]]]) -> None:
        self._record(label, self._app().transaction(stmts))

    def _table(self, i: int) -> str:
        return self.tables[i % len(self.tables)]

    # -- the application -------------------------------------------------------------------

    @precondition(lambda self: self._fresh("write", 6))
    @rule(op=WRITES)
    def write(self, op: Write | SchemaChange) -> None:
        """One application transaction (committed, or rolled back), a schema change, or VACUUM."""
        self._step("write", op=op)
        if isinstance(op, SchemaChange):
            self._change_schema(op)
            return
        t = self._table(op.table)
        insert = f"INSERT INTO {t} (n, body) VALUES (?, ?)"
        if isinstance(op, Insert):
            rows = [(insert, [op.seed + i, {"blob": [op.seed + i, op.size]}]) for i in range(op.rows)]
            self._tx(f"insert {op.rows} rows into {t}", rows)
        elif isinstance(op, Update):
            stmt = f"UPDATE {t} SET n = n + 1, body = ? WHERE id % ? = 0"
            self._tx(f"update {t}", [(stmt, [{"blob": [op.seed, op.size]}, op.modulo])])
        elif isinstance(op, Delete):
            stmt = f"DELETE FROM {t} WHERE id % ? = ?"
            self._tx(f"delete from {t}", [(stmt, [op.modulo, op.rest % op.modulo])])
        elif isinstance(op, Grow):
            self._tx(f"grow {t} by {op.kib} KiB", [(insert, [-1, {"blob": [op.seed, op.kib * 1024]}])])
        elif isinstance(op, Rollback):
            rows = [(insert, [op.seed + i, {"blob": [op.seed + i, op.size]}]) for i in range(op.rows)]
            self._app().rollback(rows)
        else:  # pragma: no cover
            raise HarnessError(f"unknown write {op!r}")

    def _change_schema(self, op: SchemaChange) -> None:
        if isinstance(op, Vacuum):
            self._record("vacuum", self._app().vacuum())
            return
        if isinstance(op, CreateTable):
            t = f"t{self.next_table}"
            stmts: list[tuple[str, Sequence[Any]]] = [
                (f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, n INTEGER, body BLOB)", [])
            ]
            if op.indexed:
                stmts.append((f"CREATE INDEX {t}_n ON {t} (n)", []))
            self._tx(f"create table {t}", stmts)
            self.next_table += 1
            self.tables.append(t)
            self.columns[t] = 0
            return
        t = self._table(op.table)
        if isinstance(op, DropTable):
            if len(self.tables) < 2:
                return
            self._tx(f"drop table {t}", [(f"DROP TABLE {t}", [])])
            self.tables.remove(t)
            del self.columns[t]
        elif isinstance(op, AddColumn):
            c = self.columns[t] + 1
            self._tx(f"alter table {t}", [(f"ALTER TABLE {t} ADD COLUMN c{c} TEXT DEFAULT 'x{c}'", [])])
            self.columns[t] = c
        elif isinstance(op, CreateIndex):
            self._tx(f"index {t}", [(f"CREATE INDEX IF NOT EXISTS {t}_n ON {t} (n)", [])])
        else:  # pragma: no cover
            raise HarnessError(f"unknown schema change {op!r}")

    def _wal_restart_allowed(self) -> bool:
        return self.running or not self.crashed or self.options.wal_restart_after_crash

    @precondition(lambda self: self._fresh("checkpoint", 3))
    @precondition(lambda self: self._wal_restart_allowed())
    @rule(mode=st.sampled_from([*CHECKPOINT_MODES, "reopen"]))
    def checkpoint(self, mode: str) -> None:
        """The application checkpoints (its busy timeout is short), or closes and reopens its
        connections ("reopen": if nobody else has the database open, SQLite checkpoints and
        deletes the WAL)."""
        self._step("checkpoint", mode=mode)
        if mode == "reopen":
            self._app().restart()
        else:
            self._app().checkpoint(mode)

    # -- the replicator --------------------------------------------------------------------

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

    # -- restores --------------------------------------------------------------------------

    @precondition(lambda self: self._fresh("restore", 4))
    @precondition(lambda self: self.options.restores)
    @rule(
        kind=st.sampled_from(["txid", "time", "latest"]),
        pick=st.integers(0, 2**16),
        where=st.sampled_from(["at", "after", "between"]),
    )
    def restore(self, kind: str, pick: int, where: str) -> None:
        """Restore to a recorded TXID, to a moment near one (``where``), or to the latest state
        (nothing while no TXID is recorded: the precondition must not depend on timing)."""
        self._step("restore", kind=kind, pick=pick, where=where)
        syncs = self.model.syncs
        if not syncs:
            return
        s = syncs[pick % len(syncs)]
        infos = self.observer.listing.all()
        if kind == "txid":
            self._restore(Target(txid=s.txid), [self.model.commits[s.seq]], s.txid in reachable(infos))
        elif kind == "time":
            self._restore_time(s, where)
        else:
            before = syncs[-1]

            def candidates() -> list[Commit]:
                if not self.explicit:
                    self._observe()
                return [self.model.commits[x.seq] for x in self.model.syncs if x.txid >= before.txid]

            self._restore(Target(), candidates, before.txid in reachable(infos))

    def _restore_time(self, s: Sync, where: str) -> None:
        syncs = self.model.syncs
        half_ms = dt.timedelta(microseconds=500)
        if where == "at":
            when = s.created_at
        else:
            later = sorted(x.created_at for x in syncs if x.created_at > s.created_at)
            if where == "after" or not later:
                when = s.created_at + half_ms
            else:
                when = s.created_at + (later[0] - s.created_at) / 2
        infos = self.observer.listing.all()
        target = time_target(infos, when)
        times = [i.created_at for i in infos]
        if target is not None:
            # The plan's end, as the listing stands (the newest TXID before ``when`` unless
            # retention coarsened it: the invariant checks that it did so only where allowed).
            # Litestream refuses moments outside the files' time span: not required then.
            expected = self.model.state_at_txid(target)
            must = bool(times) and min(times) <= when <= max(times)
            if must and self.options.listing_time_bounds:
                listed = self.observer.listing_times()
                must = bool(listed) and min(listed) <= when <= max(listed)
            self._restore(Target(time=when), [expected] if expected is not None else [], must)
        elif self.model.sync_at_time(when) is None:
            self._restore(Target(time=when), [], False)  # nothing was made before it
        else:
            # retention took the plan away (allowed before the reach window): anything the
            # database was at some TXID before ``when`` is acceptable
            older = [self.model.commits[x.seq] for x in syncs if x.created_at < when]
            self._restore(Target(time=when), older, False)

    def _restore(
        self, target: Target, expected: Sequence[Commit] | Callable[[], Sequence[Commit]], must: bool
    ) -> None:
        assert self.workdir is not None
        self.restores += 1
        out = os.path.join(self.workdir, f"restore-{self.restores}.db")
        fired = self._fired()
        try:
            self.adapter.restore(out, target)
        except (HarnessError, AppError, NotImplementedError):
            raise
        except Exception as e:
            if must and self._fired() == fired:
                raise Discrepancy(f"restore to {target} failed, but the replica holds it: {e}") from e
            return
        finally:
            data = b""
            if os.path.exists(out):
                with open(out, "rb") as f:
                    data = f.read()
            for suffix in ("", "-wal", "-shm", "-journal", "-txid", ".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(out + suffix)
        options = expected() if callable(expected) else expected
        if not options:
            raise Discrepancy(f"restore to {target} succeeded, but no file was created before that moment")
        ic = integrity_check(data)
        if ic != "ok":
            raise Discrepancy(f"restore to {target}: integrity_check says {ic}")
        ps = _page_size(data)
        fp = fingerprint(data)
        for c in options:
            try:
                state = DatabaseState.from_image(data, ps, like=c.state)
            except ValueError:  # not a whole number of pages of a valid size
                break
            if c.matches(state, fp, self.how):
                return
        best = options[-1]
        raise Discrepancy(
            f"restore to {target} returned a database that is not the model's commit {best.seq} "
            f"({best.label}): {explain_difference(best.state.image(), data)}"
        )

    # -- observing the replica ---------------------------------------------------------

    @invariant()
    def agrees_with_model(self) -> None:
        problem = self.adapter.alive_problem()
        if problem is not None:
            raise Discrepancy(f"{problem}\n{self.adapter.log_tail()}")
        self._observe()

    def _observe(self) -> None:
        """Read the replica and check it against the model (see the module docstring)."""
        try:
            listing = self.observer.refresh()
        except ReplicaContentError as e:
            raise Discrepancy(str(e)) from None
        problems = listing_problems(listing.files)
        if problems:
            raise Discrepancy("replica layout: " + "; ".join(problems))
        cur = self.model.current.seq
        for t in self.adapter.local_l0_txids() | listing.ends:
            self.first_seen.setdefault(t, cur)
        recorded = set(self.model.txids)
        for t in sorted(listing.ends - recorded):
            self._identify(t)
        self._check_compacted()
        caps = self.adapter.capabilities
        problems = retention_problems(self.model, listing.all(), self.adapter.now(), caps.retention)
        if problems:
            raise Discrepancy("retention: " + "; ".join(problems))

    def _identify(self, txid: int) -> None:
        rep = self.observer.replay(txid)
        if rep is None:
            raise Discrepancy(f"TXID {txid:016x} is in the replica but no chain from a full image reaches it")
        if not rep.complete:
            shown = ", ".join(str(p) for p in sorted(rep.missing)[:8])
            raise Discrepancy(f"TXID {txid:016x}: pages {shown} are in no file of its chain")
        lo, hi = self.model.seq_bounds(txid)
        hi = min(hi, self.first_seen.get(txid, hi))
        if self.explicit:
            lo = max(lo, hi)
        fp = self.observer.fingerprint_of(txid) if self.how is Compare.LOGICAL else ""
        c = self.model.identify(rep.state, fp, lo, hi, self.how)
        if c is None:
            raise Discrepancy(self._explain(txid, rep, lo, hi))
        created = self.observer.created_at(txid)
        assert created is not None
        try:
            self.history = self.model.record_sync(txid, c.seq, created)
        except ModelError as e:
            raise Discrepancy(str(e)) from None

    def _explain(self, txid: int, rep: Replayed, lo: int, hi: int) -> str:
        exp = self.model.commit_at(max(lo, min(hi, self.model.current.seq)))
        window = f"commit {hi}" if lo >= hi else f"commits {lo}..{hi}"
        img = rep.state.image()
        msg = [
            f"TXID {txid:016x} holds a database the application never had at {window}",
            f"compared with commit {exp.seq} ({exp.label}): {explain_difference(exp.state.image(), img)}",
        ]
        if self.how is Compare.PAGES:
            diff = exp.state.differing_pages(rep.state)
            msg.append(f"differing pages: {diff[:12]}{' ...' if len(diff) > 12 else ''}")
        ic = integrity_check(img)
        if ic != "ok":
            msg.append(f"integrity_check of that state: {ic}")
        return "; ".join(msg)

    def _check_compacted(self) -> None:
        for (lv, lo, hi), f in sorted(self.observer.files.items()):
            if lv == 0 or (lv, lo, hi, f.content) in self.checked:
                continue
            expected = self.model.state_at_txid(hi)
            if expected is None:
                continue
            base = None if f.is_full_image or lo == 1 else self.observer.replay(lo - 1)
            if base is None and not (f.is_full_image or lo == 1):
                continue
            from model.replica import apply_file

            rep = apply_file(base, f)
            fp = fingerprint(rep.state.image()) if self.how is Compare.LOGICAL else ""
            if rep.missing or not expected.matches(rep.state, fp, self.how):
                raise Discrepancy(
                    f"{f.name} does not hold the state of TXID {hi:016x} (commit {expected.seq}): "
                    f"{explain_difference(expected.state.image(), rep.state.image())}"
                    + (f"; pages missing: {sorted(rep.missing)[:8]}" if rep.missing else "")
                )
            self.checked.add((lv, lo, hi, f.content))

    def _caught_up(self) -> bool:
        s = self.model.latest_sync
        cur = self.model.current
        return s is not None and self.model.commits[s.seq].matches(cur.state, cur.fingerprint, self.how)

    def _check_caught_up(self, when: str) -> None:
        if not self._caught_up():
            s = self.model.latest_sync
            cur = self.model.current
            if s is None:
                raise Discrepancy(f"{when}: the replica is empty, the database is at commit {cur.seq}")
            held = self.model.commits[s.seq]
            raise Discrepancy(
                f"{when}: the replica's latest TXID {s.txid:016x} holds commit {s.seq}, the database is at "
                f"commit {cur.seq} ({cur.label}): {explain_difference(cur.state.image(), held.state.image())}"
            )

    def _wait_caught_up(self, when: str) -> None:
        deadline = time.monotonic() + self.options.sync_timeout
        while True:
            self._observe()
            if self._caught_up():
                return
            problem = self.adapter.alive_problem()
            if problem is not None:
                raise Discrepancy(f"{problem}\n{self.adapter.log_tail()}")
            if time.monotonic() > deadline:
                self._check_caught_up(f"{when}: {self.options.sync_timeout:.0f}s later")
                return
            time.sleep(self.options.poll_interval)

    def describe_run(self) -> str:
        """One line about the run (for reports)."""
        h = self.history
        if h is None:
            return "not started"
        return f"{len(h.commits)} commits, {len(h.syncs)} TXIDs, {self.restores} restores"


def _page_size(image: bytes) -> int:
    if len(image) < 100:
        return 0
    raw = int.from_bytes(image[16:18], "big")
    return 65536 if raw == 1 else raw


def make_machine(
    adapter_factory: AdapterFactory,
    store_factory: StoreFactory,
    options: MachineOptions | None = None,
    *,
    name: str = "Replication",
) -> type[ReplicationMachine]:
    """A :class:`ReplicationMachine` subclass bound to one implementation and one kind of store."""
    attrs_: dict[str, Any] = {
        "adapter_factory": staticmethod(adapter_factory),
        "store_factory": staticmethod(store_factory),
        "options": options or MachineOptions(),
    }
    return type(f"{name}Machine", (ReplicationMachine,), attrs_)


__all__ = [
    "CHECKPOINT_MODES",
    "Discrepancy",
    "MachineOptions",
    "ReplicationMachine",
    "StoreFactory",
    "file_store",
    "make_machine",
    "memory_store",
    "rfc3339",
    "s3_store",
]
