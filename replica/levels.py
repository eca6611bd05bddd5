"""Compaction levels and snapshots as pure decisions: a listing and the clock in, a plan out.

Nothing here reads a file, a store or a clock; :mod:`replica.compaction` gathers the
inputs and carries the plans out. ``docs/spec/compaction.md`` says the same in prose.

**Schedule.** Level ``L`` (1..8) runs at start-up and then at every multiple of its
interval counted from Go's zero time (:func:`truncate`, :func:`next_run_at`), like
Litestream's ``time.Truncate``-aligned tickers. The snapshot level (9) runs the same
way with ``snapshot.interval``.

**A level run** (:func:`plan_level`) merges the files of level ``L-1`` that reach past
the newest file of ``L`` (``max_txid >`` the level's max) into one file ``<min>-<max>``
per contiguous run of inputs. It does nothing when

* the level's newest file was created after the start of the current interval
  ("too early": a restart does not compact twice in one window, reference §4.2);
* no file of ``L-1`` reaches past the level's max ("no new files");
* the only new input is a single file ("single input"): merging one file gives the
  same TXID range and the same pages as the input, a byte-for-byte copy that no
  restore, compaction or retention rule needs. The level waits until at least two
  files are new and merges them together then, so a level never holds a copy of a
  lone file of the level below.

**A snapshot** (:func:`plan_snapshot`) is the compaction of the restore plan of the
latest state into ``1-<max TXID>`` at level 9; it is skipped when the newest snapshot
already holds the latest TXID, or was made in the current interval. The plan starts at
a full image (a snapshot, or a file the caller's planner found to hold every page,
such as the one a page-size change starts with) and has one page size, so the merged
output is a full image of the latest state.

**Page-size changes** need no rule here: a run of level ``L`` may span one, and the
LTX compactor merges it into a full image of the new size (:mod:`ltx.compactor`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs

from ltx.fileinfo import FileInfo
from ltx.names import SNAPSHOT_LEVEL as SNAPSHOT_LEVEL
from replica.restore.plan import LATEST, RestorePlan, plan_restore

UTC = dt.UTC
GO_ZERO_TIME = dt.datetime(1, 1, 1, tzinfo=UTC)
"""Go's zero ``time.Time`` (January 1, year 1, UTC): the origin ``time.Truncate`` counts from."""
_US = dt.timedelta(microseconds=1)

MAX_COMPACTION_LEVEL = 8

Listing = Mapping[int, Iterable[FileInfo]]
"""Every level's files, ``{level: [FileInfo, ...]}``; a missing level is empty."""


def _files(value: Iterable[FileInfo]) -> tuple[FileInfo, ...]:
    return tuple(value)


def _jobs(value: Iterable[LevelJob]) -> tuple[LevelJob, ...]:
    return tuple(value)


def truncate(t: dt.datetime, interval: dt.timedelta) -> dt.datetime:
    """Go's ``t.Truncate(interval)``: round down to a multiple of ``interval`` since the zero time.

    ``t`` must be timezone-aware. An interval of zero or less returns ``t`` unchanged.
    For intervals that divide a day the result is a UTC wall-clock boundary.
    """
    if interval <= dt.timedelta(0):
        return t
    since = (t.astimezone(UTC) - GO_ZERO_TIME) // _US
    step = interval // _US
    return GO_ZERO_TIME + dt.timedelta(microseconds=since - since % step)


def next_run_at(now: dt.datetime, interval: dt.timedelta) -> dt.datetime:
    """When a level that last ran at ``now`` runs next: ``truncate(now, interval) + interval``."""
    return truncate(now, interval) + interval


def max_file(files: Iterable[FileInfo]) -> FileInfo | None:
    """The file with the largest max TXID (then the largest min TXID), or None."""
    return max(files, key=lambda f: (f.max_txid, f.min_txid), default=None)


def listing_max_txid(listing: Listing) -> int:
    """The highest max TXID in any level (0 for an empty replica)."""
    return max((f.max_txid for files in listing.values() for f in files), default=0)


@attrs.frozen
class LevelJob:
    """One output file: ``inputs`` (oldest first, contiguous) merged into ``level``."""

    level: int
    inputs: tuple[FileInfo, ...] = attrs.field(converter=_files)

    def __attrs_post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("a compaction job needs at least one input")

    @property
    def min_txid(self) -> int:
        return self.inputs[0].min_txid

    @property
    def max_txid(self) -> int:
        return self.inputs[-1].max_txid


@attrs.frozen
class LevelPlan:
    """What one run of a level does: ``jobs`` to carry out, or none and the ``reason``."""

    level: int
    jobs: tuple[LevelJob, ...] = attrs.field(default=(), converter=_jobs)
    reason: str = ""

    @property
    def skipped(self) -> bool:
        return not self.jobs


def contiguous_runs(files: Iterable[FileInfo], after: int) -> list[list[FileInfo]]:
    """Split the files reaching past TXID ``after`` into runs the LTX compactor accepts.

    Files are taken in (min, max) order; a file whose max TXID is not past the run's
    current end adds nothing and is left out (e.g. a small file inside a large one).
    A file starting beyond the current end + 1 starts a new run. The first run may
    start past ``after + 1`` (the level then has a gap, bridged by other levels) or
    overlap it; within a run every file passes ``is_contiguous``.
    """
    runs: list[list[FileInfo]] = []
    cur = after
    for f in sorted(files, key=lambda i: (i.min_txid, i.max_txid)):
        if f.max_txid <= cur:
            continue
        if not runs or f.min_txid > cur + 1:
            runs.append([f])
        else:
            runs[-1].append(f)
        cur = f.max_txid
    return runs


def plan_level(
    level: int,
    src: Iterable[FileInfo],
    dst: Iterable[FileInfo],
    now: dt.datetime,
    interval: dt.timedelta,
    *,
    skip_single: bool = True,
) -> LevelPlan:
    """Plan one run of compaction level ``level`` (1..8) from level ``level - 1``.

    ``src`` and ``dst`` are the files of levels ``level - 1`` and ``level``. Returns one
    job per contiguous run of source files with ``max_txid`` past the newest ``dst``
    file, or no job with the reason: ``too early`` (the newest ``dst`` file was created
    after ``truncate(now, interval)``), ``no new files``, or ``single input`` (exactly
    one new source file and ``skip_single``; see the module docstring).
    """
    if not 1 <= level <= MAX_COMPACTION_LEVEL:
        raise ValueError(f"invalid compaction level {level}: must be 1..{MAX_COMPACTION_LEVEL}")
    top = max_file(dst)
    if top is not None and top.created_at > truncate(now, interval):
        return LevelPlan(level, reason="too early")
    runs = contiguous_runs(src, top.max_txid if top is not None else 0)
    if not runs:
        return LevelPlan(level, reason="no new files")
    if skip_single and len(runs) == 1 and len(runs[0]) == 1:
        return LevelPlan(level, reason="single input")
    return LevelPlan(level, tuple(LevelJob(level, run) for run in runs), reason="compact")


@attrs.frozen
class SnapshotPlan:
    """What one run of the snapshot level does: compact ``inputs`` into ``1-<txid>``, or skip."""

    inputs: tuple[FileInfo, ...] = attrs.field(default=(), converter=_files)
    txid: int = 0
    reason: str = ""

    @property
    def skipped(self) -> bool:
        return not self.inputs


def _latest_plan(listing: Listing) -> RestorePlan:
    return plan_restore(listing, LATEST)


def plan_snapshot(
    listing: Listing,
    now: dt.datetime,
    interval: dt.timedelta,
    *,
    force: bool = False,
    planner: Callable[[Listing], RestorePlan] = _latest_plan,
) -> SnapshotPlan:
    """Plan a level-9 snapshot of the replica's latest state.

    Skips (with a reason) when the replica is empty, or, unless ``force``, when the
    newest snapshot was created after ``truncate(now, interval)`` (``too early``) or
    already holds the latest TXID (``up to date``). Otherwise the inputs are the
    restore plan of the latest state that ``planner`` makes: by default
    :func:`replica.restore.plan.plan_restore` on the listing alone (a plan starting at
    a file whose min TXID is 1); a caller that reads page sizes and page indexes
    passes :func:`replica.restore.probe.plan_with_probes`, whose plans have one page
    size and may start at any full image. Either way the merged output is a full
    snapshot. Raises :class:`~replica.restore.errors.RestorePlanError` when the
    replica has no contiguous plan to its latest TXID (the snapshot would hide a
    broken replica, so it is not made).
    """
    top = listing_max_txid(listing)
    if top == 0:
        return SnapshotPlan(reason="replica is empty")
    last = max_file(listing.get(SNAPSHOT_LEVEL, ()))
    if not force and last is not None:
        if last.created_at > truncate(now, interval):
            return SnapshotPlan(reason="too early")
        if last.max_txid >= top:
            return SnapshotPlan(reason="up to date")
    plan = planner(listing)
    return SnapshotPlan(plan.files, plan.txid, reason="snapshot")


def levels_of(files: Sequence[FileInfo]) -> dict[int, list[FileInfo]]:
    """Group files by level, each level sorted by (min, max) TXID."""
    out: dict[int, list[FileInfo]] = {}
    for f in files:
        out.setdefault(f.level, []).append(f)
    for lvl in out:
        out[lvl].sort(key=lambda i: (i.min_txid, i.max_txid))
    return out
