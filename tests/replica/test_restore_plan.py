"""The restore planner against a model of replica listings and a literal copy of Litestream's rule.

Listings are generated from a history of TXIDs 1..N: one L0 file per TXID, random
compactions into L1..L3 (partitions of a prefix of the history), a few arbitrary
extra files at any level 0..8, level-9 snapshots, "snapshot L0" files declared as
full images, and random retention deletions. Creation times follow the TXIDs
(sometimes equal, to exercise ties and the strictly-before rule); snapshots are
stamped a little after the TXID they cover, as Litestream does.

Properties:

* a plan exists iff the model says the goal is reachable from a full image through
  admitted files (a fixed-point computation, not the greedy the planner uses);
* every plan starts at a full image, uses only admitted files, is contiguous and ends
  at the goal;
* whenever Litestream's ``CalcRestorePlan`` (transcribed below from reference §5.2,
  cursors and all) reaches the goal, the planner returns exactly its plan;
* :func:`probe_candidates` returns exactly the files whose being a full image would
  make planning succeed, best start first.

With page-size changes (some TXIDs where the database starts over at another page
size, with a full image there, or, as damage, without one):

* every plan has one page size, that of the state at the goal, and ends at the goal;
  it exists iff the model reaches the goal over the files of that size; when only a
  chain across a change would, the error is :class:`PageSizeChangeError`;
* where Litestream's plan reaches the goal without crossing a change, it is the plan;
* a caller that starts knowing only the sizes of the files ending at the goal and
  learns those of each plan's files ends at the plan full knowledge gives.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Sequence

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ltx.fileinfo import FileInfo
from replica.restore import (
    LATEST,
    FullImages,
    NoBackupError,
    NonContiguousError,
    RestoreOptionsError,
    RestorePlan,
    RestorePlanError,
    RestoreTarget,
    TxNotAvailableError,
    check_contiguous,
    plan_restore,
    probe_candidates,
)
from replica.restore.plan import PageSizeChangeError, goal_files

BASE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
US = dt.timedelta(microseconds=1)


def fi(level: int, lo: int, hi: int, at: dt.datetime | None = None) -> FileInfo:
    return FileInfo(level, lo, hi, 100 + hi - lo, at if at is not None else BASE + dt.timedelta(seconds=hi))


def listing_of(files: Iterable[FileInfo]) -> dict[int, list[FileInfo]]:
    out: dict[int, list[FileInfo]] = {lvl: [] for lvl in range(10)}
    for f in files:
        out[f.level].append(f)
    for lvl in out:
        out[lvl].sort(key=lambda f: (f.min_txid, f.max_txid))
    return out


def names(plan: RestorePlan) -> list[str]:
    return [f"{f.level}:{f.min_txid}-{f.max_txid}" for f in plan.files]


# --- Litestream's CalcRestorePlan, transcribed -------------------------------------------


class LitestreamGapError(Exception):
    pass


class LitestreamTxNotAvailableError(Exception):
    pass


def _better(a: FileInfo, b: FileInfo) -> bool:
    if a.max_txid != b.max_txid:
        return a.max_txid > b.max_txid
    if a.min_txid != b.min_txid:
        return a.min_txid < b.min_txid
    if a.level != b.level:
        return a.level > b.level
    return a.created_at < b.created_at


@attrs.define
class _Cursor:
    files: list[FileInfo]
    pos: int = 0
    candidate: FileInfo | None = None


def litestream_plan(levels: dict[int, list[FileInfo]], txid: int, ts: dt.datetime | None) -> list[FileInfo]:
    """``CalcRestorePlan(client, txid, timestamp)`` as reference §5.2 describes it (txid 0 = none)."""
    infos: list[FileInfo] = []
    snaps = [
        f
        for f in levels.get(9, [])
        if not (txid and f.max_txid > txid) and not (ts is not None and f.created_at >= ts)
    ]
    current_max = 0
    if snaps:
        infos.append(snaps[-1])
        current_max = snaps[-1].max_txid
        if txid and current_max >= txid:
            return infos
    cursors = [_Cursor(list(levels.get(lvl, []))) for lvl in range(8, -1, -1)]
    while True:
        best: FileInfo | None = None
        for c in cursors:
            while c.pos < len(c.files) and c.files[c.pos].min_txid <= current_max + 1:
                f = c.files[c.pos]
                c.pos += 1
                if f.max_txid <= current_max:
                    continue
                if txid and f.max_txid > txid:
                    continue
                if ts is not None and f.created_at >= ts:
                    continue
                if c.candidate is None or _better(f, c.candidate):
                    c.candidate = f
            if c.candidate is not None and c.candidate.max_txid <= current_max:
                c.candidate = None
            if c.candidate is not None and (best is None or _better(c.candidate, best)):
                best = c.candidate
        if best is None:
            break
        infos.append(best)
        current_max = best.max_txid
        for c in cursors:
            if c.candidate is best:
                c.candidate = None
        if txid and current_max >= txid:
            break
    if not txid and ts is None and infos:
        for c in cursors:
            if c.pos < len(c.files) and c.files[c.pos].min_txid > current_max + 1:
                raise LitestreamGapError(
                    f"have up to {current_max} but next file starts at {c.files[c.pos].min_txid}"
                )
    if not infos:
        raise LitestreamTxNotAvailableError()
    if txid and current_max < txid:
        raise LitestreamTxNotAvailableError()
    return infos


# --- the model ---------------------------------------------------------------------------


def model_goal(files: Sequence[FileInfo], target: RestoreTarget) -> int | None:
    """The TXID a plan must end at, or None when the target is hopeless from the start."""
    if not files:
        return None
    if target.txid is not None:
        return target.txid if target.txid <= max(f.max_txid for f in files) else None
    admitted = [f for f in files if target.admits(f)]
    return max((f.max_txid for f in admitted), default=None)


def model_reachable(
    files: Sequence[FileInfo], target: RestoreTarget, full: frozenset[FileInfo], goal: int | None = None
) -> bool:
    goal = model_goal(files, target) if goal is None else goal
    if goal is None:
        return False
    admitted = [f for f in files if target.admits(f)]
    reached = {f.max_txid for f in admitted if f.min_txid == 1 or f in full}
    steps = [f for f in admitted if f.level <= 8]
    grew = True
    while grew:
        grew = False
        for f in steps:
            if f.max_txid not in reached and any(f.min_txid <= p + 1 and f.max_txid > p for p in reached):
                reached.add(f.max_txid)
                grew = True
    return goal in reached


@attrs.frozen
class Replica:
    n: int
    times: tuple[dt.datetime, ...]
    files: tuple[FileInfo, ...]
    full: frozenset[FileInfo]

    def listing(self) -> dict[int, list[FileInfo]]:
        return listing_of(self.files)


@st.composite
def replicas(draw: st.DrawFn) -> Replica:
    n = draw(st.integers(1, 20))
    times = [BASE]
    for step in draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)):
        times.append(times[-1] + dt.timedelta(seconds=step))

    def info(level: int, lo: int, hi: int, delay: int = 0) -> FileInfo:
        return FileInfo(level, lo, hi, 100 + 7 * (hi - lo), times[hi] + dt.timedelta(seconds=delay))

    files = {info(0, i, i) for i in range(1, n + 1)}
    for level in (1, 2, 3):
        if draw(st.booleans()):
            m = draw(st.integers(1, n))
            cuts = draw(st.sets(st.integers(1, m - 1), max_size=6)) if m > 1 else set()
            bounds = [0, *sorted(cuts), m]
            files.update(info(level, a + 1, b) for a, b in itertools.pairwise(bounds))
    for level, lo, span in draw(
        st.lists(st.tuples(st.integers(0, 8), st.integers(1, n), st.integers(0, n)), max_size=4)
    ):
        files.add(info(level, lo, min(n, lo + span)))
    for hi in draw(st.sets(st.integers(1, n), max_size=4)):
        files.add(info(9, 1, hi, delay=draw(st.integers(0, 3))))
    # retention: L0 up to some TXID, and a few arbitrary files
    l0_cut = draw(st.integers(0, n))
    files = {f for f in files if not (f.level == 0 and f.max_txid <= l0_cut)}
    if files:
        gone = draw(st.sets(st.sampled_from(sorted(files)), max_size=4))
        files -= gone
    later = sorted(f for f in files if f.min_txid > 1)
    full = frozenset(draw(st.sets(st.sampled_from(later), max_size=3))) if later else frozenset()
    return Replica(n, tuple(times), tuple(sorted(files)), full)


@st.composite
def targets(draw: st.DrawFn, rep: Replica) -> RestoreTarget:
    kind = draw(st.sampled_from(["latest", "txid", "time"]))
    if kind == "latest":
        return LATEST
    if kind == "txid":
        return RestoreTarget.at_txid(draw(st.integers(1, rep.n + 2)))
    at = rep.times[draw(st.integers(0, rep.n))]
    return RestoreTarget.at_time(
        at + draw(st.sampled_from([-US, dt.timedelta(0), US, dt.timedelta(seconds=1)]))
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[Replica, RestoreTarget]:
    rep = draw(replicas())
    return rep, draw(targets(rep))


def _plan_or_none(
    listing: dict[int, list[FileInfo]],
    target: RestoreTarget,
    full: FullImages,
    sizes: dict[FileInfo, int] | None = None,
) -> RestorePlan | None:
    try:
        return plan_restore(listing, target, full_images=full, page_sizes=sizes)
    except RestorePlanError:
        return None


# --- properties -------------------------------------------------------------------------


@given(cases())
def test_plan_exists_iff_model_reachable(case: tuple[Replica, RestoreTarget]) -> None:
    rep, target = case
    listing = rep.listing()
    reachable = model_reachable(rep.files, target, rep.full)
    try:
        plan = plan_restore(listing, target, full_images=rep.full)
    except RestorePlanError as e:
        assert not reachable, f"model reaches the goal but the planner said: {e}"
        if not rep.files:
            assert isinstance(e, NoBackupError)
        elif target.txid is not None and target.txid > max(f.max_txid for f in rep.files):
            assert isinstance(e, TxNotAvailableError)
        return
    assert reachable, f"planner found {names(plan)} but the model says unreachable"
    goal = model_goal(rep.files, target)
    assert plan.txid == goal
    assert plan.files[-1].max_txid == goal
    check_contiguous(plan.files)
    for prev, cur in itertools.pairwise(plan.files):
        assert cur.min_txid <= prev.max_txid + 1 and cur.max_txid > prev.max_txid
    assert plan.start.min_txid == 1 or plan.start in rep.full
    assert all(target.admits(f) for f in plan.files)
    assert all(f in rep.files for f in plan.files)
    assert all(f.level <= 8 for f in plan.files[1:])


@given(cases())
def test_same_plan_as_litestream_whenever_litestream_reaches_the_goal(
    case: tuple[Replica, RestoreTarget],
) -> None:
    rep, target = case
    listing = rep.listing()
    try:
        expected = litestream_plan(listing, target.txid or 0, target.timestamp)
    except (LitestreamGapError, LitestreamTxNotAvailableError):
        return
    goal = model_goal(rep.files, target)
    plan = _plan_or_none(listing, target, rep.full)
    if expected[-1].max_txid == goal:
        assert plan is not None
        assert plan.files == tuple(expected)
        assert plan.litestream_compatible
        # and with no extra knowledge at all, too
        assert plan_restore(listing, target).files == tuple(expected)
    elif plan is not None:
        # Litestream stops short of the goal (a timestamp target across a gap): we do not
        assert plan.txid == goal and not plan.litestream_compatible


@given(cases())
def test_without_declared_full_images_we_fail_only_where_litestream_does(
    case: tuple[Replica, RestoreTarget],
) -> None:
    """Knowing only MinTXID-1 files, a plan exists iff Litestream's reaches the goal."""
    rep, target = case
    listing = rep.listing()
    try:
        expected: list[FileInfo] | None = litestream_plan(listing, target.txid or 0, target.timestamp)
    except (LitestreamGapError, LitestreamTxNotAvailableError):
        expected = None
    goal = model_goal(rep.files, target)
    ours = _plan_or_none(listing, target, None)
    ls_ok = expected is not None and expected[-1].max_txid == goal
    assert (ours is not None) == ls_ok


@given(cases())
def test_probe_candidates_are_exactly_the_useful_starts(case: tuple[Replica, RestoreTarget]) -> None:
    rep, target = case
    listing = rep.listing()
    known = rep.full
    cands = probe_candidates(listing, target, full_images=known)
    assert len(set(cands)) == len(cands)
    base = _plan_or_none(listing, target, known)
    for f in rep.files:
        if f.min_txid == 1 or f in known or not target.admits(f):
            assert f not in cands
            continue
        useful = _plan_or_none(listing, target, known | {f}) is not None
        if base is None:
            assert (f in cands) == useful, f"{f} useful={useful}"
        elif f in cands:
            assert useful
    if base is None and cands:
        plan = plan_restore(listing, target, full_images=known | set(cands))
        assert plan.start == cands[0]
        assert not plan.litestream_compatible


@given(cases())
def test_predicate_and_collection_forms_agree(case: tuple[Replica, RestoreTarget]) -> None:
    rep, target = case
    listing = rep.listing()
    a = _plan_or_none(listing, target, rep.full)
    b = _plan_or_none(listing, target, lambda f: f in rep.full)
    assert a == b


@given(replicas(), st.data())
def test_timestamp_rule_is_strictly_before(rep: Replica, data: st.DataObject) -> None:
    """A file created exactly at the target time is never used; one microsecond later it may be."""
    if not rep.files:
        return
    f = data.draw(st.sampled_from(rep.files))
    listing = rep.listing()
    at = _plan_or_none(listing, RestoreTarget.at_time(f.created_at), rep.full)
    if at is not None:
        assert all(g.created_at < f.created_at for g in at.files)
        assert f not in at.files
    after = _plan_or_none(listing, RestoreTarget.at_time(f.created_at + US), rep.full)
    if after is not None:
        assert all(g.created_at <= f.created_at for g in after.files)
        assert after.txid >= f.max_txid


# --- pinned examples (reference §5.2) --------------------------------------------------------


def test_snapshot_past_the_target_txid_is_ignored() -> None:
    files = [fi(9, 1, 15), *(fi(0, i, i) for i in range(1, 16))]
    plan = plan_restore(listing_of(files), RestoreTarget.at_txid(10))
    assert names(plan) == [f"0:{i}-{i}" for i in range(1, 11)]
    assert plan.txid == 10


def test_snapshot_then_l1_then_l0_up_to_txid() -> None:
    files = [
        fi(9, 1, 5),
        fi(1, 6, 7),
        fi(1, 8, 9),
        fi(1, 10, 12),
        *(fi(0, i, i) for i in (7, 8, 9, 10, 11)),
    ]
    plan = plan_restore(listing_of(files), RestoreTarget.at_txid(10))
    assert names(plan) == ["9:1-5", "1:6-7", "1:8-9", "0:10-10"]


def test_longest_reach_wins_over_higher_level() -> None:
    files = [fi(9, 1, 5), fi(0, 6, 20), fi(2, 6, 12)]
    assert names(plan_restore(listing_of(files))) == ["9:1-5", "0:6-20"]


def test_gap_in_l1_is_bridged_through_l0() -> None:
    files = [fi(9, 1, 5), fi(1, 6, 7), fi(1, 9, 10), fi(0, 8, 8)]
    assert names(plan_restore(listing_of(files))) == ["9:1-5", "1:6-7", "0:8-8", "1:9-10"]
    files_all_l0 = [*files, *(fi(0, i, i) for i in (6, 7, 9, 10))]
    assert names(plan_restore(listing_of(files_all_l0))) == ["9:1-5", "1:6-7", "0:8-8", "1:9-10"]


def test_duplicate_ranges_across_levels_give_the_snapshot_alone() -> None:
    files = [fi(9, 1, 10), fi(2, 1, 10), fi(1, 1, 10), fi(0, 1, 10)]
    assert names(plan_restore(listing_of(files))) == ["9:1-10"]


def test_small_file_inside_a_big_compaction_is_not_used() -> None:
    files = [fi(2, 1, 100), fi(2, 50, 60)]
    assert names(plan_restore(listing_of(files))) == ["2:1-100"]


def test_no_snapshot_but_a_chain_from_txid_1() -> None:
    files = [fi(1, 1, 3), *(fi(0, i, i) for i in range(1, 6))]
    plan = plan_restore(listing_of(files))
    assert names(plan) == ["1:1-3", "0:4-4", "0:5-5"]
    assert plan.litestream_compatible


def test_tie_breaks_smaller_min_then_higher_level() -> None:
    """Equal reach: the smaller min TXID wins, then the higher level. (The last tie-break,
    earlier creation, can only separate two listings of the same level and range, which a
    store cannot hold.)"""
    early, late = BASE, BASE + dt.timedelta(seconds=5)
    files = [fi(0, 1, 1), fi(1, 2, 9, late), fi(3, 2, 9, late), fi(0, 2, 9, early), fi(2, 1, 9, late)]
    assert names(plan_restore(listing_of(files))) == ["2:1-9"]  # smaller min first
    files = [fi(0, 1, 1), fi(1, 2, 9, early), fi(3, 2, 9, late), fi(2, 3, 9, early)]
    assert names(plan_restore(listing_of(files))) == ["0:1-1", "3:2-9"]  # then the higher level


def test_latest_restore_refuses_a_gap() -> None:
    files = [*(fi(0, i, i) for i in range(1, 6)), fi(1, 8, 10)]
    with pytest.raises(
        NonContiguousError, match="have up to 0000000000000005 but next file starts at 0000000000000008"
    ):
        plan_restore(listing_of(files))
    with pytest.raises(LitestreamGapError):
        litestream_plan(listing_of(files), 0, None)
    # the state before the gap is still reachable by TXID
    assert plan_restore(listing_of(files), RestoreTarget.at_txid(5)).txid == 5


def test_timestamp_files_created_at_the_target_are_excluded() -> None:
    files = [fi(0, i, i) for i in range(1, 6)]
    at = files[2].created_at  # TXID 3
    assert plan_restore(listing_of(files), RestoreTarget.at_time(at)).txid == 2
    assert plan_restore(listing_of(files), RestoreTarget.at_time(at + US)).txid == 3
    with pytest.raises(NoBackupError, match="no file was created before"):
        plan_restore(listing_of(files), RestoreTarget.at_time(files[0].created_at))


def test_snapshot_stamped_after_its_txid_is_excluded_until_it_was_written() -> None:
    snap = fi(9, 1, 4, BASE + dt.timedelta(seconds=10))
    files = [snap, *(fi(0, i, i) for i in range(3, 6))]
    t = BASE + dt.timedelta(seconds=6)  # after L0 5 was written, before the snapshot
    with pytest.raises(NoBackupError):
        plan_restore(listing_of(files), RestoreTarget.at_time(t))
    assert names(plan_restore(listing_of(files))) == ["9:1-4", "0:5-5"]


# --- the improvement: starting from a full image other than a snapshot ----------------------


def test_retention_removed_the_start_of_the_chain() -> None:
    files = [*(fi(0, i, i) for i in range(7, 13)), fi(1, 7, 10)]
    listing = listing_of(files)
    with pytest.raises(NoBackupError, match="no snapshot or full database image"):
        plan_restore(listing)
    with pytest.raises(LitestreamTxNotAvailableError):
        litestream_plan(listing, 0, None)
    assert [f.name for f in probe_candidates(listing)][:3] == [
        fi(0, 12, 12).name,
        fi(0, 11, 11).name,
        fi(1, 7, 10).name,
    ]
    snapshot_l0 = fi(0, 7, 7)
    plan = plan_restore(listing, full_images={snapshot_l0})
    assert names(plan) == ["0:7-7", "1:7-10", "0:11-11", "0:12-12"]
    assert not plan.litestream_compatible
    # a compaction whose first input was the snapshot L0 is preferred (it reaches further)
    plan = plan_restore(listing, full_images={snapshot_l0, fi(1, 7, 10)})
    assert names(plan) == ["1:7-10", "0:11-11", "0:12-12"]


def test_gap_after_an_old_snapshot_is_skipped_by_a_later_full_image() -> None:
    files = [fi(9, 1, 5), *(fi(0, i, i) for i in range(9, 13))]
    listing = listing_of(files)
    with pytest.raises(
        NonContiguousError, match="have up to 0000000000000005 but next file starts at 0000000000000009"
    ):
        plan_restore(listing)
    assert names(plan_restore(listing, full_images={fi(0, 9, 9)})) == [
        "0:9-9",
        "0:10-10",
        "0:11-11",
        "0:12-12",
    ]
    # the old snapshot still serves targets before the gap
    assert names(plan_restore(listing, RestoreTarget.at_txid(5))) == ["9:1-5"]


def test_txid_older_than_every_remaining_snapshot() -> None:
    files = [fi(9, 1, 20), *(fi(0, i, i) for i in range(11, 21)), fi(2, 1, 10)]
    listing = listing_of(files)
    assert names(plan_restore(listing, RestoreTarget.at_txid(13))) == [
        "2:1-10",
        "0:11-11",
        "0:12-12",
        "0:13-13",
    ]
    listing[2] = []  # retention took the compacted history
    with pytest.raises(NoBackupError):
        plan_restore(listing, RestoreTarget.at_txid(13))
    plan = plan_restore(listing, RestoreTarget.at_txid(13), full_images={fi(0, 11, 11)})
    assert names(plan) == ["0:11-11", "0:12-12", "0:13-13"]


# --- errors and inputs ------------------------------------------------------------------


def test_empty_replica() -> None:
    with pytest.raises(NoBackupError, match="no matching backup files available"):
        plan_restore({})
    with pytest.raises(NoBackupError):
        plan_restore(listing_of([]), RestoreTarget.at_txid(1))


def test_txid_past_the_end_and_inside_a_compaction() -> None:
    files = [fi(1, 1, 20)]
    with pytest.raises(TxNotAvailableError, match="past the end"):
        plan_restore(listing_of(files), RestoreTarget.at_txid(21))
    with pytest.raises(TxNotAvailableError):
        plan_restore(listing_of(files), RestoreTarget.at_txid(10))
    assert plan_restore(listing_of(files), RestoreTarget.at_txid(20)).txid == 20


def test_target_validation() -> None:
    with pytest.raises(RestoreOptionsError, match="cannot specify index & timestamp"):
        RestoreTarget(txid=3, timestamp=BASE)
    with pytest.raises(RestoreOptionsError):
        RestoreTarget(txid=0)
    with pytest.raises(RestoreOptionsError):
        RestoreTarget(timestamp=dt.datetime(2026, 1, 1))  # naive
    with pytest.raises(RestoreOptionsError):
        plan_restore({10: [fi(0, 1, 1)]})
    with pytest.raises(RestoreOptionsError):
        plan_restore({1: [fi(0, 1, 1)]})


def test_plan_invariants_are_enforced() -> None:
    with pytest.raises(NonContiguousError):
        RestorePlan((fi(0, 1, 1), fi(0, 3, 3)), 3)
    with pytest.raises(NonContiguousError):
        RestorePlan((fi(0, 1, 5), fi(0, 3, 5)), 5)  # does not go past the previous max
    with pytest.raises(NoBackupError):
        RestorePlan((), 0)
    with pytest.raises(RestorePlanError):
        RestorePlan((fi(0, 1, 1),), 2)
    ok = RestorePlan([fi(0, 1, 3), fi(1, 2, 6)], 6)
    assert ok.files == (fi(0, 1, 3), fi(1, 2, 6)) and ok.min_txid == 1 and ok.size == 100 + 2 + 100 + 4


def test_listing_order_does_not_matter() -> None:
    files = [fi(9, 1, 5), fi(1, 6, 7), fi(1, 8, 9), fi(1, 10, 12), *(fi(0, i, i) for i in (7, 8, 9, 10, 11))]
    shuffled = {lvl: list(reversed(v)) for lvl, v in listing_of(files).items()}
    assert plan_restore(shuffled, RestoreTarget.at_txid(10)) == plan_restore(
        listing_of(files), RestoreTarget.at_txid(10)
    )


# --- page-size changes ----------------------------------------------------------------------


PAGE_SIZES = (1024, 4096, 8192)


@attrs.frozen
class SizedReplica:
    """A replica whose database changed page size at ``changes`` (a full image there unless damaged)."""

    n: int
    times: tuple[dt.datetime, ...]
    files: tuple[FileInfo, ...]
    full: frozenset[FileInfo]
    sizes: dict[FileInfo, int]
    changes: tuple[int, ...]
    damaged: frozenset[int]

    def listing(self) -> dict[int, list[FileInfo]]:
        return listing_of(self.files)


@st.composite
def sized_replicas(draw: st.DrawFn) -> SizedReplica:
    rep = draw(replicas())
    changes = sorted(draw(st.sets(st.integers(2, rep.n), max_size=3))) if rep.n >= 2 else []
    damaged = frozenset(draw(st.sets(st.sampled_from(changes), max_size=1))) if changes else frozenset()
    seq = [draw(st.sampled_from(PAGE_SIZES))]
    for _ in changes:
        seq.append(draw(st.sampled_from([s for s in PAGE_SIZES if s != seq[-1]])))

    def size_at(t: int) -> int:
        return seq[sum(1 for c in changes if c <= t)]

    def spans(f: FileInfo, c: int) -> bool:
        return f.min_txid < c <= f.max_txid

    # a run across a damaged change cannot be compacted, nor a snapshot taken after it
    files = [f for f in rep.files if not any(spans(f, c) for c in damaged)]
    # a run across a good change is merged into a full image of the new size
    full = {f for f in rep.full if f in files and not (f.level == 0 and f.min_txid in damaged)}
    full |= {f for f in files for c in changes if c not in damaged and spans(f, c)}
    full |= {f for f in files if f.level == 0 and f.min_txid in changes and f.min_txid not in damaged}
    sizes = {f: size_at(f.max_txid) for f in files}
    return SizedReplica(rep.n, rep.times, tuple(files), frozenset(full), sizes, tuple(changes), damaged)


@st.composite
def sized_cases(draw: st.DrawFn) -> tuple[SizedReplica, RestoreTarget]:
    rep = draw(sized_replicas())
    plain = Replica(rep.n, rep.times, rep.files, rep.full)
    return rep, draw(targets(plain))


def _size_at_goal(rep: SizedReplica, target: RestoreTarget) -> int | None:
    goal = model_goal(rep.files, target)
    ends = [f for f in rep.files if f.max_txid == goal and target.admits(f)]
    return rep.sizes[ends[0]] if ends else None


@given(sized_cases())
def test_plans_have_one_page_size_and_end_at_the_goal(case: tuple[SizedReplica, RestoreTarget]) -> None:
    rep, target = case
    listing = rep.listing()
    goal = model_goal(rep.files, target)
    size = _size_at_goal(rep, target)
    same = [f for f in rep.files if rep.sizes[f] == size]
    reachable = size is not None and model_reachable(same, target, rep.full, goal)
    across = model_reachable(rep.files, target, rep.full)
    try:
        plan = plan_restore(listing, target, full_images=rep.full, page_sizes=rep.sizes)
    except PageSizeChangeError as e:
        assert not reachable and across, f"{e}"
        assert e.new_size == size and e.old_size != size and e.txid is not None and e.level is not None
        return
    except RestorePlanError as e:
        assert not reachable and not across, f"the model reaches the goal but the planner said: {e}"
        return
    assert reachable, f"planner found {names(plan)} but the model says unreachable"
    assert {rep.sizes[f] for f in plan.files} == {size}
    assert plan.txid == goal and plan.files[-1].max_txid == goal
    check_contiguous(plan.files)
    assert plan.start.min_txid == 1 or plan.start in rep.full
    assert all(target.admits(f) for f in plan.files)
    assert all(f.level <= 8 for f in plan.files[1:])


@given(sized_cases())
def test_litestream_plan_when_it_has_one_page_size(case: tuple[SizedReplica, RestoreTarget]) -> None:
    rep, target = case
    listing = rep.listing()
    try:
        expected = litestream_plan(listing, target.txid or 0, target.timestamp)
    except (LitestreamGapError, LitestreamTxNotAvailableError):
        return
    if expected[-1].max_txid != model_goal(rep.files, target):
        return
    plan = _plan_or_none(listing, target, rep.full, rep.sizes)
    if len({rep.sizes[f] for f in expected}) == 1:
        assert plan is not None and plan.files == tuple(expected) and plan.litestream_compatible
    else:
        assert plan is None or not plan.litestream_compatible


@given(sized_cases())
def test_learning_the_sizes_of_each_plan_ends_at_the_plan_full_knowledge_gives(
    case: tuple[SizedReplica, RestoreTarget],
) -> None:
    rep, target = case
    listing = rep.listing()
    full_knowledge = _plan_or_none(listing, target, rep.full, rep.sizes)
    known = {f: rep.sizes[f] for f in goal_files(listing, target)}
    plan: RestorePlan | None = None
    for _ in range(len(rep.files) + 1):
        plan = _plan_or_none(listing, target, rep.full, known)
        if plan is None:
            break
        # every plan agrees with what is known: its known sizes are one
        assert len({known[f] for f in plan.files if f in known}) <= 1
        unknown = [f for f in plan.files if f not in known]
        if not unknown:
            break
        known.update((f, rep.sizes[f]) for f in unknown)
    assert plan == full_knowledge


@given(sized_cases())
def test_probe_candidates_with_page_sizes_are_exactly_the_useful_starts(
    case: tuple[SizedReplica, RestoreTarget],
) -> None:
    rep, target = case
    listing = rep.listing()
    known = rep.full
    cands = probe_candidates(listing, target, full_images=known, page_sizes=rep.sizes)
    base = _plan_or_none(listing, target, known, rep.sizes)
    for f in rep.files:
        if f.min_txid == 1 or f in known or not target.admits(f):
            assert f not in cands
            continue
        useful = _plan_or_none(listing, target, known | {f}, rep.sizes) is not None
        if base is None:
            assert (f in cands) == useful, f"{f} useful={useful}"
        elif f in cands:
            assert useful


def test_a_change_after_the_snapshot_starts_the_plan_at_the_full_image() -> None:
    """The issue's replica: a 4096-byte snapshot, then an 8192-byte full image in L0."""
    files = [fi(9, 1, 5), *(fi(0, i, i) for i in range(1, 9)), fi(1, 1, 4)]
    sizes = {f: 4096 if f.max_txid < 6 else 8192 for f in files}
    listing = listing_of(files)
    assert names(plan_restore(listing)) == ["9:1-5", "0:6-6", "0:7-7", "0:8-8"]  # Litestream's
    plan = plan_restore(listing, full_images={fi(0, 6, 6)}, page_sizes=sizes)
    assert names(plan) == ["0:6-6", "0:7-7", "0:8-8"] and not plan.litestream_compatible
    assert names(plan_restore(listing, RestoreTarget.at_txid(5), page_sizes=sizes)) == ["9:1-5"]
    assert probe_candidates(listing, page_sizes=sizes)[-1] == fi(0, 6, 6)
    with pytest.raises(PageSizeChangeError, match="from 4096 to 8192 bytes at L0 0000000000000006") as e:
        plan_restore(listing, page_sizes=sizes)
    assert (e.value.level, e.value.txid) == (0, 6)
    # unknown sizes exclude nothing: the plan agrees with what is known
    partial = {fi(0, 8, 8): 8192, fi(0, 7, 7): 8192}
    assert names(plan_restore(listing, page_sizes=partial)) == ["9:1-5", "0:6-6", "0:7-7", "0:8-8"]
    partial[fi(9, 1, 5)] = 4096
    assert names(plan_restore(listing, page_sizes=partial))[0] == "1:1-4"
