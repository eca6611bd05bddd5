"""The machine's application rules: transactions, schema changes and checkpoints.

The application (:mod:`model.app`, its own process) commits what :data:`~model._operations.WRITES`
draws -- inserts, updates, deletes, growth, rolled-back transactions, schema changes,
``VACUUM`` -- and every committed image goes into the model. It checkpoints in every
mode (with a short busy timeout) or reopens its connections, except while a crashed
replicator is down and the options forbid restarting the WAL then.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from model._hypothesis import precondition, rule, st
from model._machine_base import MachineBase
from model._operations import (
    CHECKPOINT_MODES,
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
from model.adapters import HarnessError


class ApplicationRules(MachineBase):
    """The ``write`` and ``checkpoint`` rules."""

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
