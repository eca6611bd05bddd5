"""Adapters: how the conformance harness drives one replicator implementation.

An :class:`Adapter` says how to start, stop, crash (kill at an arbitrary point) and
restore an implementation, and, if it can be told to, how to sync and compact. The
state machines in :mod:`model.testing` only ever talk to an adapter, so any
implementation that can be driven this way can be checked against the model:

* :class:`InProcessAdapter` (:mod:`model._inprocess_adapter`): ours,
  :class:`replica.daemon.Replication` in the test process, synced on demand with
  ``sync_once`` (deterministic; simulated crashes at chosen points; storage faults
  through the store).
* :class:`OursProcessAdapter` (:mod:`model._process_adapter`): ours as a process,
  ``python -m replica replicate DB URL``.
* :class:`LitestreamAdapter` (:mod:`model._litestream_adapter`): the ``litestream``
  binary (``replicate DB URL``; syncs by its own 1 s monitor; ``litestream restore``).
* :class:`CommandAdapter` (:mod:`model._process_adapter`): any command speaking
  Litestream's command line.

This module holds the protocol every adapter implements (:class:`Adapter`, its
:class:`Capabilities`, the :class:`Environment` of a run, restore :class:`Target` and
:class:`CrashPoint`) and the adapters' errors; the adapters themselves, and their
factories, are imported from their modules on first use.

Contracts every adapter keeps:

* Nothing here opens the database with SQLite in the test process, except the
  in-process replicator itself (see :mod:`model.app` for why).
* Failures of the implementation are raised as :class:`ReplicatorFailure` /
  :class:`RestoreFailure` (or, in process, as whatever the implementation raised);
  problems of the harness itself as :class:`HarnessError`.
* :meth:`Adapter.close` releases everything, whatever state the adapter is in.
"""

from __future__ import annotations

import abc
import datetime as dt
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import attrs

from ltx.errors import PyLitestreamError
from ltx.lazy import lazy_exports
from model.retention import RetentionPolicy
from model.state import Compare
from model.stores import Store

if TYPE_CHECKING:
    from model._inprocess_adapter import VIRTUAL_EPOCH, InProcessAdapter, VirtualClock, in_process
    from model._litestream_adapter import LitestreamAdapter, litestream_binary
    from model._process_adapter import (
        DEFAULT_RETENTION,
        CommandAdapter,
        OursProcessAdapter,
        ProcessAdapter,
        command,
    )


class HarnessError(PyLitestreamError, RuntimeError):
    """The harness itself could not do its job (a missing binary, a dead helper, ...)."""


class ReplicatorFailure(PyLitestreamError, RuntimeError):
    """The replicator failed to do what it was asked (start, stop, sync)."""


class RestoreFailure(PyLitestreamError, RuntimeError):
    """A restore did not produce a database (the implementation reported an error)."""


class SimulatedCrash(Exception):
    """Raised inside an in-process replicator to stop it dead at a chosen point."""


@attrs.frozen
class Target:
    """What a restore asks for: a TXID, a moment, or (neither) the latest state."""

    txid: int | None = None
    time: dt.datetime | None = None

    def __attrs_post_init__(self) -> None:
        if self.txid is not None and self.time is not None:
            raise ValueError("a restore target is a TXID or a time, not both")

    def cli_flags(self) -> list[str]:
        """Litestream's ``restore`` flags for this target."""
        if self.txid is not None:
            return ["-txid", f"{self.txid:016x}"]
        if self.time is not None:
            return ["-timestamp", rfc3339(self.time)]
        return []

    def __str__(self) -> str:
        if self.txid is not None:
            return f"txid {self.txid:016x}"
        if self.time is not None:
            return f"time {rfc3339(self.time)}"
        return "latest"


def rfc3339(t: dt.datetime) -> str:
    """``t`` in UTC as RFC 3339 with microseconds (Go's ``time.RFC3339`` parses it)."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@attrs.frozen
class CrashPoint:
    """Where to kill the replicator: ``at`` picks one of the adapter's crash points (modulo
    their number); ``delay`` is seconds to wait first (process adapters) or a small count
    (in-process: which storage write to die on)."""

    at: int = 0
    delay: float = 0.0


@attrs.frozen
class Capabilities:
    """What an adapter can do; the state machine only uses what is declared here."""

    explicit_sync: bool = False
    """``sync()`` syncs now and nothing happens in the background: every TXID holds
    exactly the state the database had when it was made."""
    compaction: bool = False
    storage_faults: bool = False
    """Faults injected into the store (the store must support them too) are survivable."""
    crash_points: tuple[str, ...] = ("kill",)
    compare: Compare = Compare.LOGICAL
    """How restores are compared with the model: ``PAGES`` only for replicators that
    never write to the database."""
    stores: frozenset[str] = frozenset({"file", "s3"})
    meta_dir: bool = True
    """Keeps its local L0 files in Litestream's ``.<db>-litestream/ltx/0``."""
    retention: RetentionPolicy = attrs.field(factory=RetentionPolicy)
    """What it may delete (by default nothing: every TXID stays restorable)."""
    virtual_clock: bool = False
    """Runs on a clock the harness moves (``now``/``advance``) instead of the wall clock."""


@attrs.frozen
class Environment:
    """Where a run happens: a private working directory, the database path, the store."""

    workdir: str
    db_path: str
    store: Store

    @property
    def meta_dir(self) -> str:
        d, base = os.path.split(os.path.abspath(self.db_path))
        return os.path.join(d, f".{base}-litestream")


class Adapter(abc.ABC):
    """One implementation, driven for one run (see the module docstring for the contracts)."""

    name: ClassVar[str] = "adapter"
    capabilities: Capabilities = Capabilities()

    def __init__(self, env: Environment) -> None:
        self.env = env

    @property
    @abc.abstractmethod
    def running(self) -> bool:
        """Whether the replicator is running now."""

    def alive_problem(self) -> str | None:
        """Why a replicator that should be running is not (it exited by itself), or None."""
        return None

    @abc.abstractmethod
    def start(self) -> None:
        """Start replicating (the database exists)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop gracefully: a last sync, everything shipped. Raises :class:`ReplicatorFailure`
        if the implementation reports that it could not ship everything."""

    @abc.abstractmethod
    def crash(self, point: CrashPoint) -> None:
        """Kill the replicator without any chance to clean up."""

    def sync(self) -> None:
        """Sync now and ship (only with ``capabilities.explicit_sync``)."""
        raise NotImplementedError(f"{self.name} cannot be told to sync")

    def compact(self, level: int) -> None:
        """Compact into ``level`` now, 9 meaning a snapshot (only with ``capabilities.compaction``)."""
        raise NotImplementedError(f"{self.name} cannot be told to compact")

    def enforce_retention(self) -> None:
        """Run retention now (only with ``capabilities.compaction``)."""
        raise NotImplementedError(f"{self.name} cannot be told to enforce retention")

    def now(self) -> dt.datetime:
        """The replicator's idea of the current time (the wall clock unless ``virtual_clock``)."""
        return dt.datetime.now(dt.UTC)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on a virtual clock (only with ``capabilities.virtual_clock``)."""
        raise NotImplementedError(f"{self.name} runs on the wall clock")

    @abc.abstractmethod
    def restore(self, output: str, target: Target) -> None:
        """Restore the replica to ``output``; :class:`RestoreFailure` if it reports an error."""

    def local_l0_txids(self) -> set[int]:
        """TXIDs of the L0 files in the meta directory (empty if it keeps none there)."""
        if not self.capabilities.meta_dir:
            return set()
        from ltx.names import is_filename, parse_filename

        try:
            names = os.listdir(os.path.join(self.env.meta_dir, "ltx", "0"))
        except FileNotFoundError:
            return set()
        return {parse_filename(n)[1] for n in names if is_filename(n)}

    def log_tail(self) -> str:
        """The end of the replicator's log, for reports."""
        return ""

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything (kill what still runs)."""


AdapterFactory = Callable[[Environment], Adapter]


_HOMES = {
    **dict.fromkeys(
        ["VIRTUAL_EPOCH", "InProcessAdapter", "VirtualClock", "in_process"], "model._inprocess_adapter"
    ),
    **dict.fromkeys(
        ["DEFAULT_RETENTION", "CommandAdapter", "OursProcessAdapter", "ProcessAdapter", "command"],
        "model._process_adapter",
    ),
    **dict.fromkeys(["LitestreamAdapter", "litestream_binary"], "model._litestream_adapter"),
}

__getattr__ = lazy_exports(__name__, _HOMES, globals())


__all__ = [
    "DEFAULT_RETENTION",
    "VIRTUAL_EPOCH",
    "Adapter",
    "AdapterFactory",
    "Capabilities",
    "CommandAdapter",
    "CrashPoint",
    "Environment",
    "HarnessError",
    "InProcessAdapter",
    "LitestreamAdapter",
    "OursProcessAdapter",
    "ProcessAdapter",
    "ReplicatorFailure",
    "RestoreFailure",
    "SimulatedCrash",
    "Target",
    "VirtualClock",
    "command",
    "in_process",
    "litestream_binary",
]
