"""What the application does in a run: the operations the machine draws, and their strategies.

Each operation is a frozen value, so that failing examples print readably
(``state.write(op=Insert(table=0, rows=3, size=300, seed=7))``). :data:`WRITES` draws
one transaction (committed or rolled back) or one schema change;
:data:`CHECKPOINT_MODES` are SQLite's checkpoint modes the application uses.
"""

from __future__ import annotations

import attrs

from model._hypothesis import st

CHECKPOINT_MODES = ("PASSIVE", "FULL", "RESTART", "TRUNCATE")
TABLE = st.integers(0, 7)
SEED = st.integers(0, 2**16)
ROW_SIZES = st.sampled_from([0, 24, 300, 1500, 5000])


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
