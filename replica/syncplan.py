"""Pure decision: can the next L0 file continue from the last one, or must it be a snapshot?

The replicator keeps one read transaction open on the database at all times except
inside its own checkpoints, and takes its own checkpoints only while it also holds
the write lock (a "barrier": ``BEGIN IMMEDIATE`` on a second connection) and after
syncing every committed frame. SQLite's WAL rules then give this invariant, on
which every "continue" below rests:

* While a read transaction is open, no checkpoint copies frames it might still
  need, and the WAL is not restarted unless it was completely checkpointed when
  the read transaction began; in that case it is restarted at most once, by the
  first write after that moment, and every later commit stays in the WAL until
  the read transaction ends.
* So if, when the read transaction began, everything in the WAL had been synced
  (which the barrier guarantees), then every commit since is still in the WAL:
  after the last synced offset in the same generation, or from the top of a new
  generation, whose salt 1 SQLite sets to the previous one plus one. (The header's
  checkpoint sequence is no help here: each connection writes its own count.)

``trusted`` says that invariant holds for the last L0 file: true after any sync
this process made under its continuously held read transaction; false after a
start-up, where nothing is known about what happened while nobody watched. An
untrusted continuation is allowed only inside the same WAL generation, and only if
the last frame we synced is still in place with the same page (no restart has
happened since); any other change, a WAL restart we did not watch included, means
a full snapshot. Litestream continues after a restart whenever its last page still
matches, which loses the commits that the restart overwrote; we don't.

None of that can hold across two different database files: a file that is not the
one the last L0 file was read from (``file_change``, decided by
:mod:`replica.identity`) or whose page size differs from that file's always means a
snapshot, whatever its WAL looks like.
"""

from __future__ import annotations

import enum

import attrs

from replica.wal_format import WAL_HEADER_SIZE

NO_SALTS = (0, 0)
"""Salts recorded in an L0 file made while the database had no WAL header."""


@attrs.frozen
class LastSync:
    """What the replicator knows about its newest L0 file."""

    txid: int
    end_offset: int
    """Logical end of the WAL data covered: the header's ``wal_offset + wal_size``."""
    salts: tuple[int, int]
    commit: int
    page_size: int = 0
    """Page size of the last L0 file; 0 when unknown."""


@attrs.frozen
class WALView:
    """The WAL as it is now: its header (None when it has no valid header) and its file size."""

    salts: tuple[int, int] | None
    size: int


class Action(enum.Enum):
    SNAPSHOT = "snapshot"
    CONTINUE = "continue"
    """Read committed frames from ``offset`` in the current generation."""


@attrs.frozen
class SyncPlan:
    action: Action
    offset: int = WAL_HEADER_SIZE
    reason: str = ""


def plan_sync(
    last: LastSync | None,
    wal: WALView,
    *,
    trusted: bool,
    last_frame_matches: bool | None = None,
    page_size: int = 0,
    file_change: str = "",
) -> SyncPlan:
    """Decide how the next sync reads the WAL.

    ``last_frame_matches`` (needed only when untrusted, in the same generation, with
    ``last.end_offset`` past the WAL header) says whether the frame just before
    ``last.end_offset`` is still valid and holds the same page as the last L0 file.
    ``page_size`` is the database's page size now (0: not compared); ``file_change``,
    when not empty, says why the database is not the file the last L0 file came from.
    """
    if last is None:
        return SyncPlan(Action.SNAPSHOT, reason="first sync")
    if file_change:
        return SyncPlan(Action.SNAPSHOT, reason=file_change)
    if page_size and last.page_size and page_size != last.page_size:
        return SyncPlan(Action.SNAPSHOT, reason=f"page size changed from {last.page_size} to {page_size}")
    if wal.salts is None:
        if trusted and last.salts == NO_SALTS:
            return SyncPlan(Action.CONTINUE, WAL_HEADER_SIZE, "no wal data yet")
        return SyncPlan(Action.SNAPSHOT, reason="wal has no header: history since the last sync unknown")
    if wal.salts == last.salts:
        if wal.size < last.end_offset:
            return SyncPlan(Action.SNAPSHOT, reason="wal truncated by another process")
        if trusted or last.end_offset <= WAL_HEADER_SIZE:
            return SyncPlan(Action.CONTINUE, last.end_offset)
        if last_frame_matches:
            return SyncPlan(Action.CONTINUE, last.end_offset)
        return SyncPlan(Action.SNAPSHOT, reason="last synced frame overwritten by another process")
    if trusted:
        if last.salts == NO_SALTS:
            return SyncPlan(Action.CONTINUE, WAL_HEADER_SIZE, "wal started")
        if wal.salts[0] == (last.salts[0] + 1) & 0xFFFFFFFF:
            return SyncPlan(Action.CONTINUE, WAL_HEADER_SIZE, "wal restarted after a full checkpoint")
        return SyncPlan(Action.SNAPSHOT, reason="wal restarted unexpectedly")
    return SyncPlan(Action.SNAPSHOT, reason="wal restarted while not replicating")
