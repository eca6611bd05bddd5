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

Where each part lives: the operations the machine draws in :mod:`model._operations`,
the store factories in :mod:`model._store_factories`, the options, the error and the
run's state in :mod:`model._machine_base`, the invariant and checks in
:mod:`model._checks`, and the rules in :mod:`model._application_rules`,
:mod:`model._replicator_rules` and :mod:`model._restore_rules`. This module combines
them and is the public entry.
"""

from __future__ import annotations

from typing import Any

from model._application_rules import ApplicationRules
from model._machine_base import Discrepancy, MachineOptions
from model._operations import (
    CHECKPOINT_MODES,
    SCHEMA_CHANGES,
    WRITES,
    AddColumn,
    CreateIndex,
    CreateTable,
    Delete,
    DropTable,
    Grow,
    Insert,
    Rollback,
    SchemaChange,
    Update,
    Vacuum,
    Write,
)
from model._replicator_rules import ReplicatorRules
from model._restore_rules import RestoreRules
from model._store_factories import StoreFactory, file_store, memory_store, s3_store
from model.adapters import AdapterFactory, rfc3339


class ReplicationMachine(ApplicationRules, ReplicatorRules, RestoreRules):
    """The conformance state machine; bind it with :func:`make_machine` (see the module docstring)."""


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
    "SCHEMA_CHANGES",
    "WRITES",
    "AddColumn",
    "CreateIndex",
    "CreateTable",
    "Delete",
    "Discrepancy",
    "DropTable",
    "Grow",
    "Insert",
    "MachineOptions",
    "ReplicationMachine",
    "Rollback",
    "SchemaChange",
    "StoreFactory",
    "Update",
    "Vacuum",
    "Write",
    "file_store",
    "make_machine",
    "memory_store",
    "rfc3339",
    "s3_store",
]
