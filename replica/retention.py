"""Retention as a pure decision: which replica files to delete, from a listing, the clock and settings.

The rules start from Litestream 0.5's (reference §4.4-4.5) and add one that overrides
them all: **a file is only deleted if no restore to a moment inside the retained
window loses its plan.** The retained window is ``[now - snapshot.retention, now]``.

1. **Snapshots.** Let ``W = now - snapshot.retention``. The *anchor* is the snapshot
   with the highest TXID among those created before ``W``. Every other snapshot
   created before ``W`` is deleted; the anchor and every snapshot created at or after
   ``W`` are kept, and so is the newest snapshot. (Litestream deletes the anchor too,
   which is its bug: a restore to a moment between ``W`` and the next snapshot then
   has no snapshot to start from.)
2. **Cascade.** With ``floor`` = the anchor's TXID (0 without an anchor), files of
   levels 1..8 with ``max_txid <= floor`` are deleted, except the last file of each
   level. A restore to any ``T >= W`` starts at the anchor or a later snapshot, so
   nothing ending at or before the anchor can be part of its plan.
3. **L0** (``l0-retention`` > 0; 0 turns it off). The L0 files created before
   ``now - l0-retention``, walked in TXID order up to the first younger one, whose TXIDs
   are covered by level 1 (``max_txid <=`` the level-1 maximum) or by the anchor are
   candidates; the newest L0 file is never one, nor, without an anchor, an L0 file
   starting at TXID 1 (the only start of a young replica's earliest moments). The
   deletion ends at a boundary of a higher-level file, so the higher level takes over
   the time span seamlessly.

**The overriding check** (:func:`check_retention`): the candidate deletions are
simulated and compared with the listing before them. For every moment ``T >= W``
(every distinct creation time, and ``W`` itself) and every TXID from the floor up:

* a moment that had a restore plan still has one (a chain from a snapshot, or from a
  file starting at TXID 1, through levels 0..8 to the newest file created before
  ``T``: exactly Litestream's ``CalcRestorePlan`` rule, so the real ``litestream
  restore`` works too);
* for moments at or after ``now - l0-retention`` the plan ends at the same TXID as
  before (the state restored is exactly the state at ``T``); before that it may end
  at an earlier file boundary: L0 retention trades the resolution of old moments,
  never their reach;
* a TXID that is still some file's max TXID after the deletion and had a plan still
  has one.

Deletions that fail the check are withheld (reported in
:attr:`RetentionDecision.withheld`); the rules above are built so that it normally
passes, and the check makes the guarantee independent of that reasoning.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

import attrs

from ltx.fileinfo import FileInfo
from ltx.names import SNAPSHOT_LEVEL
from replica.defaults import DEFAULT_L0_RETENTION, DEFAULT_SNAPSHOT_RETENTION

EXTENSION_LEVELS = range(9)
MAX_L0_ATTEMPTS = 6
"""How many L0 deletion end points are tried against the check per decision."""
_EPS = dt.timedelta(microseconds=1)

Listing = Mapping[int, Iterable[FileInfo]]


def positive_duration(_: object, attr: attrs.Attribute[dt.timedelta], value: dt.timedelta) -> None:
    if value <= dt.timedelta(0):
        raise ValueError(f"{attr.name}: must be greater than 0 (got {value})")


def non_negative_duration(_: object, attr: attrs.Attribute[dt.timedelta], value: dt.timedelta) -> None:
    if value < dt.timedelta(0):
        raise ValueError(f"{attr.name}: must not be negative (got {value})")


@attrs.frozen
class RetentionSettings:
    """``snapshot.retention`` (> 0), ``l0-retention`` (>= 0; 0 = never delete L0) and ``retention.enabled``.

    ``enabled`` does not change the decision; it tells the executor not to delete
    anything remotely (local copies are still cleaned up, as in Litestream).
    """

    snapshot_retention: dt.timedelta = attrs.field(
        default=DEFAULT_SNAPSHOT_RETENTION, validator=positive_duration
    )
    l0_retention: dt.timedelta = attrs.field(default=DEFAULT_L0_RETENTION, validator=non_negative_duration)
    enabled: bool = True


@attrs.frozen
class RetentionDecision:
    """The files one retention run deletes, by rule, and what the safety check withheld.

    ``window_start`` is ``now - snapshot.retention``; ``floor_txid`` the anchor
    snapshot's TXID (0 without one); ``l0_cutoff`` is ``now - l0-retention`` (None when
    L0 retention is off).
    """

    now: dt.datetime
    window_start: dt.datetime
    floor_txid: int
    l0_cutoff: dt.datetime | None
    snapshots: tuple[FileInfo, ...] = ()
    levels: tuple[FileInfo, ...] = ()
    l0: tuple[FileInfo, ...] = ()
    withheld: tuple[str, ...] = ()
    """Snapshot/level deletions the check refused (never expected: worth a warning)."""
    deferred: str = ""
    """Why L0 files past the rules' candidates wait (expected: the level-1 file holding the
    L0 cutoff is younger than some moment that still needs the L0 files before it)."""

    @property
    def files(self) -> tuple[FileInfo, ...]:
        """Every file to delete, snapshots first."""
        return self.snapshots + self.levels + self.l0

    def __bool__(self) -> bool:
        return bool(self.files)


# --- coverage: the restore-plan rule in closed form -------------------------------------


class _Coverage:
    """The union of integer intervals ``[min, max]``, kept as disjoint, non-adjacent runs."""

    def __init__(self) -> None:
        self._lo: list[int] = []
        self._hi: list[int] = []

    def add(self, lo: int, hi: int) -> None:
        i = bisect.bisect_right(self._lo, hi + 1)
        j = i
        while j > 0 and self._hi[j - 1] >= lo - 1:
            j -= 1
            lo = min(lo, self._lo[j])
            hi = max(hi, self._hi[j])
        self._lo[j:i] = [lo]
        self._hi[j:i] = [hi]

    def reaches(self, start: int, end: int) -> bool:
        """Whether every TXID in ``start..end`` is covered."""
        i = bisect.bisect_right(self._lo, start) - 1
        return i >= 0 and self._hi[i] >= end


class _Profile:
    """Restorability of a listing as files are admitted one by one.

    A restore plan exists for an admitted set iff, with ``snap`` the highest admitted
    level-9 snapshot (0 if none) and ``goal`` the highest admitted max TXID, every TXID
    in ``snap+1..goal`` lies in some admitted level-0..8 file: Litestream's greedy
    extension from the snapshot then reaches the goal (it reaches as far as any chain
    can), and no chain exists otherwise.
    """

    def __init__(self) -> None:
        self.cov = _Coverage()
        self.snap = 0
        self.goal = 0

    def admit(self, f: FileInfo) -> None:
        self.goal = max(self.goal, f.max_txid)
        if f.level == SNAPSHOT_LEVEL:
            if f.min_txid == 1:
                self.snap = max(self.snap, f.max_txid)
        elif f.level in EXTENSION_LEVELS:
            self.cov.add(f.min_txid, f.max_txid)

    def plan_end(self, goal: int | None = None) -> int | None:
        """The TXID a restore plan ends at (``goal`` or the admitted maximum), None if none exists."""
        g = self.goal if goal is None else goal
        if g <= 0:
            return None
        if g <= self.snap or self.cov.reaches(self.snap + 1, g):
            return g
        return None


def _time_profile(files: Sequence[FileInfo], points: Sequence[dt.datetime]) -> list[int | None]:
    """For each ``T`` in ``points`` (ascending): the end TXID of a restore to ``T``, or None."""
    order = sorted(files, key=lambda f: f.created_at)
    prof = _Profile()
    out: list[int | None] = []
    i = 0
    for t in points:
        while i < len(order) and order[i].created_at < t:
            prof.admit(order[i])
            i += 1
        out.append(prof.plan_end())
    return out


def _txid_profile(files: Sequence[FileInfo], targets: Sequence[int]) -> list[bool]:
    """For each TXID in ``targets`` (ascending): whether a restore to exactly that TXID has a plan."""
    order = sorted(files, key=lambda f: f.max_txid)
    prof = _Profile()
    out: list[bool] = []
    i = 0
    for t in targets:
        while i < len(order) and order[i].max_txid <= t:
            prof.admit(order[i])
            i += 1
        out.append(prof.plan_end(t) == t)
    return out


class RetentionCheck:
    """The overriding rule, for one listing (``before``) and window; see the module docstring.

    Build once per decision (the baseline profiles are computed here), then call
    :meth:`violations` for each candidate listing.
    """

    def __init__(
        self,
        before: Sequence[FileInfo],
        *,
        window_start: dt.datetime,
        floor_txid: int = 0,
        extra_points: Iterable[dt.datetime] = (),
    ) -> None:
        self.window_start = window_start
        pts = {window_start, *(p for p in extra_points if p >= window_start)}
        pts.update(f.created_at + _EPS for f in before if f.created_at + _EPS > window_start)
        self.points = sorted(pts)
        self.targets = sorted({f.max_txid for f in before if f.max_txid >= floor_txid})
        self.before_times = _time_profile(before, self.points)
        self.before_txids = _txid_profile(before, self.targets)

    def violations(self, after: Sequence[FileInfo], *, exact_from: dt.datetime, limit: int = 5) -> list[str]:
        """Why ``after`` (a subset of ``before``) breaks the rule; empty when it does not.

        ``exact_from``: moments at or after it must restore to the same TXID as before.
        """
        out: list[str] = []
        for t, b, a in zip(self.points, self.before_times, _time_profile(after, self.points), strict=True):
            if b is not None and a is None:
                out.append(f"restore to {t.isoformat()} would have no plan (it ended at txid {b:016x})")
            elif b is not None and t >= exact_from and a != b:
                out.append(f"restore to {t.isoformat()} would end at txid {a or 0:016x} instead of {b:016x}")
            if len(out) >= limit:
                return out
        still = {f.max_txid for f in after}
        for txid, ok, ok_after in zip(
            self.targets, self.before_txids, _txid_profile(after, self.targets), strict=True
        ):
            if ok and not ok_after and txid in still:
                out.append(f"restore to txid {txid:016x} would have no plan")
                if len(out) >= limit:
                    break
        return out


def check_retention(
    before: Sequence[FileInfo],
    after: Sequence[FileInfo],
    *,
    window_start: dt.datetime,
    exact_from: dt.datetime | None = None,
    floor_txid: int = 0,
) -> list[str]:
    """Violations of the overriding rule when ``before`` becomes ``after`` (empty = safe).

    ``exact_from`` defaults to ``window_start`` (no moment of the window may change).
    """
    exact = window_start if exact_from is None else exact_from
    check = RetentionCheck(before, window_start=window_start, floor_txid=floor_txid, extra_points=[exact])
    return check.violations(after, exact_from=exact)


# --- the decision ---------------------------------------------------------------------


def _normalize(listing: Listing) -> dict[int, list[FileInfo]]:
    return {lvl: sorted(files, key=lambda f: (f.min_txid, f.max_txid)) for lvl, files in listing.items()}


def _anchor(snapshots: Sequence[FileInfo], window_start: dt.datetime) -> FileInfo | None:
    expired = [s for s in snapshots if s.created_at < window_start and s.min_txid == 1]
    return max(expired, key=lambda s: s.max_txid, default=None)


def plan_retention(listing: Listing, now: dt.datetime, settings: RetentionSettings) -> RetentionDecision:
    """Decide which files of ``listing`` (all levels) one retention run at ``now`` deletes.

    Pure. See the module docstring for the rules and the guarantee. The decision is the
    same whether or not retention is enabled; :attr:`RetentionSettings.enabled` only
    stops the executor from deleting remotely.
    """
    levels = _normalize(listing)
    window_start = now - settings.snapshot_retention
    snaps = levels.get(SNAPSHOT_LEVEL, [])
    anchor = _anchor(snaps, window_start)
    floor = anchor.max_txid if anchor is not None else 0
    before = [f for lvl in sorted(levels) for f in levels[lvl]]
    l0_on = settings.l0_retention > dt.timedelta(0)
    cutoff = now - settings.l0_retention if l0_on else None
    exact_from = max(window_start, cutoff) if cutoff is not None else window_start
    check = RetentionCheck(before, window_start=window_start, floor_txid=floor, extra_points=[exact_from])
    withheld: list[str] = []

    # 1. snapshots created before the window, except the anchor and the newest
    del_snaps: list[FileInfo] = []
    if anchor is not None and snaps:
        newest = snaps[-1]
        del_snaps = [s for s in snaps if s.created_at < window_start and s != anchor and s != newest]
    # 2. cascade: levels 1..8 at or below the floor, except each level's last file
    del_levels: list[FileInfo] = []
    if floor:
        for lvl in range(1, SNAPSHOT_LEVEL):
            files = levels.get(lvl, [])
            if not files:
                continue
            keep = {files[-1], max(files, key=lambda f: (f.max_txid, f.min_txid))}
            del_levels.extend(f for f in files if f.max_txid <= floor and f not in keep)
    gone = set(del_snaps) | set(del_levels)
    if gone:
        problems = check.violations([f for f in before if f not in gone], exact_from=window_start)
        if problems:
            withheld.append(f"snapshot/level retention withheld: {problems[0]}")
            del_snaps, del_levels, gone = [], [], set()

    # 3. L0
    del_l0: list[FileInfo] = []
    deferred = ""
    l0 = levels.get(0, [])
    if cutoff is not None and len(l0) > 1:
        del_l0, deferred = _l0_deletions(levels, l0, before, gone, floor, cutoff, check, exact_from)
    return RetentionDecision(
        now=now,
        window_start=window_start,
        floor_txid=floor,
        l0_cutoff=cutoff,
        snapshots=tuple(del_snaps),
        levels=tuple(del_levels),
        l0=tuple(del_l0),
        withheld=tuple(withheld),
        deferred=deferred,
    )


def _l0_deletions(
    levels: dict[int, list[FileInfo]],
    l0: list[FileInfo],
    before: list[FileInfo],
    gone: set[FileInfo],
    floor: int,
    cutoff: dt.datetime,
    check: RetentionCheck,
    exact_from: dt.datetime,
) -> tuple[list[FileInfo], str]:
    covered = max(max((f.max_txid for f in levels.get(1, [])), default=0), floor)
    if covered == 0:
        return [], ""
    eligible: list[FileInfo] = []
    for f in l0[:-1]:  # never the newest L0 file
        if f.created_at >= cutoff:
            break  # keep L0 contiguous: stop at the first file that is not older than the cutoff
        if f.max_txid > covered:
            break
        eligible.append(f)
    if not eligible:
        return [], ""
    remaining = [f for f in before if f not in gone]
    bounds = {f.max_txid for f in remaining if f.level != 0}
    if floor:
        bounds.add(floor)
    # end at a boundary of a higher-level file, which then takes over the time span
    ends = [i for i in range(len(eligible) - 1, -1, -1) if eligible[i].max_txid in bounds]
    first_problem = ""
    attempts = 0
    for i in ends:
        prefix = eligible[: i + 1]
        # without an anchor, an L0 file starting at TXID 1 may be the only start of the
        # earliest moments: if the whole prefix cannot go, try again keeping it
        pinned = [f for f in prefix if not (f.min_txid == 1 and f.max_txid > floor)]
        for cand in (prefix, pinned) if len(pinned) < len(prefix) else (prefix,):
            if not cand or attempts >= MAX_L0_ATTEMPTS:
                continue
            attempts += 1
            drop = set(cand)
            problems = check.violations([f for f in remaining if f not in drop], exact_from=exact_from)
            if not problems:
                return cand, ""
            first_problem = first_problem or problems[0]
    return [], first_problem
