"""Compaction scheduling and level plans (pure): Go's ``time.Truncate`` alignment, runs, skips."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ltx.fileinfo import FileInfo
from replica.levels import contiguous_runs, next_run_at, plan_level, plan_snapshot, truncate

UTC = dt.UTC
BASE = dt.datetime(2026, 1, 1, tzinfo=UTC)
GO_UNIX_OFFSET = 62135596800


@given(
    st.integers(0, 4_000_000_000_000_000),
    st.sampled_from([1, 7, 30, 300, 3600, 86400, 100_000]).map(lambda s: s * 1_000_000)
    | st.integers(1, 10**11),
)
def test_truncate_counts_from_go_zero_time(unix_us: int, interval_us: int) -> None:
    t = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=unix_us)
    iv = dt.timedelta(microseconds=interval_us)
    got = truncate(t, iv)
    since_zero = unix_us + GO_UNIX_OFFSET * 1_000_000
    want_us = since_zero // interval_us * interval_us - GO_UNIX_OFFSET * 1_000_000
    assert got == dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=want_us)
    assert got <= t < got + iv
    assert next_run_at(t, iv) == got + iv


def test_intervals_that_divide_a_day_are_wall_clock_boundaries() -> None:
    t = dt.datetime(2026, 3, 4, 13, 47, 29, 123456, tzinfo=UTC)
    assert truncate(t, dt.timedelta(hours=24)) == dt.datetime(2026, 3, 4, tzinfo=UTC)
    assert truncate(t, dt.timedelta(minutes=5)) == dt.datetime(2026, 3, 4, 13, 45, tzinfo=UTC)
    assert truncate(t, dt.timedelta(seconds=30)) == dt.datetime(2026, 3, 4, 13, 47, tzinfo=UTC)
    assert truncate(t, dt.timedelta(0)) == t


def f(level: int, lo: int, hi: int, sec: float | None = None) -> FileInfo:
    return FileInfo(level, lo, hi, 100, BASE + dt.timedelta(seconds=hi if sec is None else sec))


IV = dt.timedelta(seconds=30)


def test_litestream_examples() -> None:
    # L0 {1,2} -> L1 1-2; then L0 3 -> (single input: waits); then L0 4 -> L1 3-4; L2 merges 1-4.
    now = BASE + dt.timedelta(hours=1)
    p = plan_level(1, [f(0, 1, 1), f(0, 2, 2)], [], now, IV)
    assert [(j.min_txid, j.max_txid) for j in p.jobs] == [(1, 2)]
    l1 = [f(1, 1, 2)]
    p = plan_level(1, [f(0, 1, 1), f(0, 2, 2), f(0, 3, 3)], l1, now, IV)
    assert p.skipped and p.reason == "single input"
    p = plan_level(1, [f(0, 3, 3), f(0, 4, 4)], l1, now, IV)
    assert [(j.min_txid, j.max_txid) for j in p.jobs] == [(3, 4)]
    p = plan_level(2, [f(1, 1, 2), f(1, 3, 4)], [], now, IV)
    assert [(j.min_txid, j.max_txid) for j in p.jobs] == [(1, 4)]


def test_too_early_when_the_newest_output_is_in_the_current_window() -> None:
    now = BASE + dt.timedelta(seconds=45)
    src = [f(0, 3, 3), f(0, 4, 4)]
    assert plan_level(1, src, [f(1, 1, 2, sec=31)], now, IV).reason == "too early"
    assert not plan_level(1, src, [f(1, 1, 2, sec=29)], now, IV).skipped


def test_runs_split_at_gaps_and_skip_contained_files() -> None:
    files = [f(0, 5, 5), f(0, 6, 6), f(1, 6, 7), f(0, 9, 9), f(0, 10, 10), f(0, 3, 3)]
    runs = contiguous_runs(files, 4)
    assert [[(x.min_txid, x.max_txid) for x in r] for r in runs] == [
        [(5, 5), (6, 6), (6, 7)],
        [(9, 9), (10, 10)],
    ]
    assert contiguous_runs([f(0, 1, 100), f(0, 50, 60)], 0) == [[f(0, 1, 100)]]
    # a lone file after a gap is copied: the level must not stay behind it forever
    p = plan_level(1, [f(0, 5, 5), f(0, 6, 6), f(0, 9, 9)], [f(1, 1, 4)], BASE + dt.timedelta(hours=1), IV)
    assert [(j.min_txid, j.max_txid) for j in p.jobs] == [(5, 6), (9, 9)]


@pytest.mark.parametrize("force", [False, True])
def test_snapshot_plan(force: bool) -> None:
    now = BASE + dt.timedelta(days=2)
    day = dt.timedelta(days=1)
    listing = {9: [f(9, 1, 10)], 1: [f(1, 11, 20)], 0: [f(0, 21, 21)]}
    p = plan_snapshot(listing, now, day, force=force)
    assert [(x.level, x.max_txid) for x in p.inputs] == [(9, 10), (1, 20), (0, 21)] and p.txid == 21
    up_to_date = {9: [f(9, 1, 21)], 0: [f(0, 21, 21)]}
    assert plan_snapshot(up_to_date, now, day, force=force).skipped != force
    assert plan_snapshot({}, now, day, force=force).reason == "replica is empty"
