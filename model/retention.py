"""What retention may take away, and what must stay restorable: pure rules over a listing.

A replicator deletes old files; the model does not copy its algorithm, it states what
must survive any correct one, given the two retention periods (Litestream 0.5's
``l0-retention`` and ``snapshot.retention``) and the time ``now``:

* **exact window** (``created_at >= now - l0_retention``; everything when L0 files
  are never deleted): every TXID made in it stays restorable, and a restore to any
  moment ``T`` in it ends at the newest TXID created strictly before ``T``;
* **reach window** (``T >= now - snapshot_retention``; everything when snapshots are
  never deleted): a restore to any moment ``T`` in it that had a TXID before it still
  has a plan (it may end at an older file boundary than the exact window would);
* the newest TXID always stays restorable.

Restores follow Litestream's rule (:func:`model.replica.reachable`): a chain of
contiguous files from one starting at TXID 1. :func:`time_target` is the TXID a
restore to a moment must end at, as the listing stands.

Moments are checked at each recorded TXID's creation time plus a microsecond (just
after the file appeared) and at the window starts; ``now`` should be a time at or
after the replicator's own retention ``now`` (the checks only get weaker later).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import attrs

from ltx.fileinfo import FileInfo
from model.replica import reachable
from model.state import History

_JUST_AFTER = dt.timedelta(microseconds=1)


@attrs.frozen
class RetentionPolicy:
    """The retention periods a replicator runs with; None means "never deletes those files"."""

    l0_retention: dt.timedelta | None = None
    snapshot_retention: dt.timedelta | None = None

    @classmethod
    def keep_everything(cls) -> RetentionPolicy:
        return cls()

    def exact_from(self, now: dt.datetime) -> dt.datetime | None:
        """Start of the exact window (None: unbounded)."""
        if self.l0_retention is None or self.l0_retention <= dt.timedelta(0):
            return None
        return now - self.l0_retention

    def reach_from(self, now: dt.datetime) -> dt.datetime | None:
        """Start of the reach window (None: unbounded)."""
        return None if self.snapshot_retention is None else now - self.snapshot_retention


def time_target(files: Sequence[FileInfo], when: dt.datetime) -> int | None:
    """The TXID a restore to the moment ``when`` ends at, or None when it has no plan."""
    r = reachable(files, before=when)
    return max(r) if r else None


def retention_problems(
    history: History, files: Sequence[FileInfo], now: dt.datetime, policy: RetentionPolicy
) -> list[str]:
    """What a listing fails to keep restorable, at ``now``, under ``policy`` (empty: nothing)."""
    out: list[str] = []
    if not history.syncs:
        return out
    reach = reachable(files)
    exact_from = policy.exact_from(now)
    reach_from = policy.reach_from(now)
    lost = [
        s.txid
        for s in history.syncs
        if s.txid not in reach and (exact_from is None or s.created_at >= exact_from)
    ]
    latest = history.syncs[-1].txid
    if latest not in reach and latest not in lost:
        lost.append(latest)
    if lost:
        shown = ", ".join(f"{t:016x}" for t in sorted(lost)[:5]) + (" ..." if len(lost) > 5 else "")
        out.append(f"TXIDs no longer restorable from the replica: {shown}")
    moments = sorted(
        {s.created_at + _JUST_AFTER for s in history.syncs} | {t for t in (exact_from, reach_from) if t}
    )
    for when in moments:
        if when > now or (reach_from is not None and when < reach_from):
            continue
        want = history.sync_at_time(when)
        if want is None:
            continue
        got = time_target(files, when)
        if got is None:
            out.append(
                f"a restore to {when.isoformat()} has no plan any more (it should give TXID {want.txid:016x})"
            )
        elif (exact_from is None or when >= exact_from) and got != want.txid:
            out.append(
                f"a restore to {when.isoformat()} would end at TXID {got:016x}, not at {want.txid:016x} "
                "(the newest TXID created before it)"
            )
        if len(out) >= 4:
            break
    return out
