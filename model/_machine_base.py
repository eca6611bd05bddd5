"""The state machine's foundations: its options, its error, its state and its plumbing.

:class:`MachineOptions` says what a machine may do; :class:`Discrepancy` is what it
raises when the implementation disagrees with the model. :class:`MachineBase` holds a
run's state (the application, the adapter, the observer of the replica, the model's
:class:`~model.state.History`), creates it in the ``setup`` initialize rule, releases it
in ``teardown``, and runs replicator operations so that only failures the model forbids
become discrepancies. The rules and checks are built on it (:mod:`model._checks`,
:mod:`model._application_rules`, :mod:`model._replicator_rules`,
:mod:`model._restore_rules`); :class:`model.testing.ReplicationMachine` combines them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import attrs

from ltx.errors import PyLitestreamError
from ltx.fileinfo import FileInfo
from model._hypothesis import RuleBasedStateMachine, initialize, st
from model._store_factories import StoreFactory
from model.adapters import Adapter, AdapterFactory, Environment, HarnessError
from model.app import AppError, Application, Image
from model.observe import ReplicaObserver
from model.sqlite import fingerprint
from model.state import Compare, DatabaseState, History
from model.stores import Store

_T = TypeVar("_T")


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


def _initialised(value: _T | None) -> _T:
    if value is None:
        raise HarnessError("the machine is not initialised")
    return value


class MachineBase(RuleBasedStateMachine):
    """A run's state and plumbing, shared by the rules and checks of the machine
    (:class:`model.testing.ReplicationMachine`)."""

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
        return _initialised(self._adapter)

    @property
    def observer(self) -> ReplicaObserver:
        return _initialised(self._observer)

    @property
    def model(self) -> History:
        return _initialised(self.history)

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
        return _initialised(self.app)

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

    def describe_run(self) -> str:
        """One line about the run (for reports)."""
        h = self.history
        if h is None:
            return "not started"
        return f"{len(h.commits)} commits, {len(h.syncs)} TXIDs, {self.restores} restores"
