"""When a database syncs (``replica/pace.py``): properties of :class:`SyncPace` and :class:`Backoff`.

The pace is driven here the way the runtime drives it (``replica/runtime.py`` with
``replica/daemon.py``'s monitor step), in simulated time:

* the first round runs at 0 (``Job.start()``);
* a change notified at ``c`` while no round runs brings the planned round forward to
  ``when_changed(c)``, never later (``Job.set``);
* a change notified during a round makes the runtime plan the next round at
  ``min(poll, when_changed(ended))`` (the ``again`` rule);
* otherwise the next round is the poll ``after()`` returns.

Hypothesis draws the intervals, the times of the changes, and each round's duration,
outcome and whether the kernel notifies the database. Any outcome can follow a change: a
notification may be for a commit an earlier round already wrote, or for a file touched
without a commit (NOTHING), or the sync may fail. The properties are checked on the
resulting trace, against bookkeeping of the driver's own, not against the pace's state.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from replica.pace import MIN_BACKOFF, Backoff, Outcome, SyncPace

# -- strategies --------------------------------------------------------------------------------

seconds = st.one_of(st.sampled_from([0.001, 0.01, 0.05, 0.1, 1.0, 10.0]), st.floats(0.001, 30.0))
"""An interval: monitor-interval or sync-interval."""
maxima = st.one_of(st.sampled_from([0.0, 0.01, 1.0, 300.0]), st.floats(0.0, 600.0))
"""A maximum backoff (possibly below ``MIN_BACKOFF``)."""
rechecks = st.one_of(st.sampled_from([0.0, 10.0]), st.floats(0.0, 60.0))

paces = st.builds(
    SyncPace.new, monitor_interval=seconds, sync_interval=seconds, recheck=rechecks, max_backoff=maxima
)
durations = st.one_of(st.just(0.0), st.floats(0.0, 0.5), st.floats(0.0, 3.0))
rounds = st.lists(st.tuples(durations, st.sampled_from(Outcome), st.booleans()), min_size=10, max_size=40)
"""Each round: how long it takes (in units of ``min_gap``), what it finds, whether the
database is notified."""
change_gaps = st.lists(
    st.one_of(st.just(0.0), st.floats(0.0, 1.5), st.floats(0.0, 6.0)), min_size=5, max_size=40
)
"""The times between consecutive changes, the first counted from 0 (in units of ``min_gap``)."""


# -- the driver --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    began: float
    ended: float
    outcome: Outcome
    notified: bool
    after: SyncPace
    """The pace after the round."""
    poll: float
    """When ``after()`` put the next poll."""
    failures: int
    """Consecutive failed rounds up to this one (the driver's own count)."""


@dataclass
class Change:
    at: float
    during: int | None
    """The round it arrived during (None: while no round ran)."""
    pace: SyncPace | None = None
    """The pace that decides when it runs: at its arrival, or after the round it arrived during."""
    next_round: int | None = None
    """The first round that begins after it (None: the trace ended first)."""


def simulate(
    pace: SyncPace, gaps: list[float], plan: list[tuple[float, Outcome, bool]]
) -> tuple[list[Round], list[Change]]:
    """Run ``plan``'s rounds with changes at the cumulative sums of ``gaps``, as the runtime would.

    Durations and gaps are in units of ``pace.min_gap``, so that the interesting cases (a
    change just inside or just outside the gap) come up whatever the intervals drawn.
    """
    unit = pace.min_gap
    times = list(itertools.accumulate(g * unit for g in gaps))
    ci = 0
    at = 0.0
    failures = 0
    trace: list[Round] = []
    changes: list[Change] = []
    waiting: list[Change] = []  # changes whose next round has not begun yet
    for k, (duration, outcome, notified) in enumerate(plan):
        # idle until the planned round: a change may bring it forward, never later
        while ci < len(times) and times[ci] <= at:
            c = Change(times[ci], None, pace)
            ci += 1
            at = min(at, pace.when_changed(c.at))
            changes.append(c)
            waiting.append(c)
        began = at
        for c in waiting:
            c.next_round = k
        waiting = []
        ended = began + duration * unit
        during: list[Change] = []
        while ci < len(times) and times[ci] <= ended:
            during.append(Change(times[ci], k))
            ci += 1
        failures = failures + 1 if outcome is Outcome.FAILED else 0
        pace, poll = pace.after(began, ended, outcome, notified=notified)
        at = poll
        if during:  # the runtime's "again": the change may not have been seen
            at = min(at, pace.when_changed(ended))
        for c in during:
            c.pace = pace
        changes.extend(during)
        waiting.extend(during)
        trace.append(Round(began, ended, outcome, notified, pace, poll, failures))
    return trace, changes


def expected_backoff(base: float, maximum: float, failures: int) -> float:
    """The wait after the ``failures``-th failure in a row: doubling from ``max(base, MIN_BACKOFF)``."""
    wait = max(base, MIN_BACKOFF)
    for _ in range(failures - 1):
        wait *= 2
    return min(wait, max(maximum, MIN_BACKOFF))


# -- SyncPace ----------------------------------------------------------------------------------


@given(seconds, seconds, rechecks, maxima)
def test_new_takes_the_gap_recheck_and_backoff_from_the_intervals(
    monitor: float, sync: float, recheck: float, maximum: float
) -> None:
    pace = SyncPace.new(monitor, sync, recheck, maximum)
    assert pace.poll == monitor
    assert pace.min_gap == min(monitor, sync)
    assert pace.recheck == max(recheck, monitor) >= pace.poll
    assert pace.backoff == Backoff(monitor, maximum)
    assert pace.gap == pace.min_gap
    assert pace.last == -math.inf
    assert pace.when_changed(123.0) == 123.0  # nothing was ever synced: at once


@given(paces, change_gaps, rounds)
def test_rounds_that_write_begin_at_least_the_gap_apart(
    pace: SyncPace, gaps: list[float], plan: list[tuple[float, Outcome, bool]]
) -> None:
    trace, _ = simulate(pace, gaps, plan)
    previous: Round | None = None  # the latest round that wrote or failed
    for k, r in enumerate(trace):
        if k and trace[k - 1].outcome is Outcome.FAILED:
            f = trace[k - 1]
            backoff = expected_backoff(pace.poll, pace.backoff.maximum, f.failures)
            assert f.after.gap == backoff
            assert r.began >= f.began + backoff, "a retry came before the backoff was over"
        if r.outcome is Outcome.WROTE and previous is not None and previous.outcome is Outcome.WROTE:
            assert r.began >= previous.began + pace.min_gap, (previous.began, r.began)
        if r.outcome in (Outcome.WROTE, Outcome.FAILED):
            previous = r


@given(paces, change_gaps, rounds)
def test_a_change_is_synced_within_the_gap_when_no_failure_is_pending(
    pace: SyncPace, gaps: list[float], plan: list[tuple[float, Outcome, bool]]
) -> None:
    trace, changes = simulate(pace, gaps, plan)
    cap = max(pace.backoff.maximum, MIN_BACKOFF)
    for c in changes:
        if c.next_round is None:
            continue
        assert c.pace is not None
        begins = trace[c.next_round].began
        assert begins >= c.at
        # the earliest it could begin: at once, or when the round it arrived during ended
        earliest = c.at if c.during is None else trace[c.during].ended
        if c.pace.backoff.failures == 0:
            assert begins <= max(earliest, c.at + pace.min_gap), (c, begins)
        else:  # it waits for the backoff of the failed round before it, and no longer
            failed = trace[c.next_round - 1]
            assert failed.outcome is Outcome.FAILED
            assert begins <= max(earliest, failed.began + cap), (c, begins)


@given(paces, change_gaps, rounds)
def test_without_changes_the_next_poll_is_due_after_the_interval(
    pace: SyncPace, gaps: list[float], plan: list[tuple[float, Outcome, bool]]
) -> None:
    trace, changes = simulate(pace, gaps, plan)
    assert pace.recheck >= pace.poll
    cap = max(pace.backoff.maximum, MIN_BACKOFF)
    for k, r in enumerate(trace):
        if r.outcome is Outcome.FAILED:
            assert r.ended + MIN_BACKOFF <= r.poll <= r.ended + cap
        else:
            assert r.poll == r.ended + (pace.recheck if r.notified else pace.poll)
        if k + 1 < len(trace):
            nxt = trace[k + 1].began
            assert nxt <= r.poll  # changes only bring it forward
            quiet = not any(r.began < c.at <= nxt for c in changes)
            if quiet:
                assert nxt == r.poll


@given(paces, change_gaps, rounds)
def test_polls_that_find_nothing_do_not_delay_the_leading_edge(
    pace: SyncPace, gaps: list[float], plan: list[tuple[float, Outcome, bool]]
) -> None:
    """A change notified a gap or more after the last round that wrote (or failed) runs at once."""
    trace, changes = simulate(pace, gaps, plan)
    for c in changes:
        if c.during is not None or c.next_round is None:
            continue
        assert c.pace is not None
        if c.pace.backoff.failures:
            continue
        counted = [r for r in trace[: c.next_round] if r.outcome in (Outcome.WROTE, Outcome.FAILED)]
        last = counted[-1].began if counted else -math.inf
        if c.at >= last + pace.min_gap:
            assert c.pace.when_changed(c.at) == c.at
            assert trace[c.next_round].began == c.at


@given(
    paces,
    st.floats(0.0, 100.0),
    st.lists(st.tuples(st.floats(0.0, 5.0), st.floats(0.0, 3.0), st.booleans()), max_size=20),
    st.floats(0.0, 2.0),
)
def test_the_leading_edge_after_quiet_polls(
    pace: SyncPace, b0: float, polls: list[tuple[float, float, bool]], fraction: float
) -> None:
    """After a round that wrote at ``b0``, any number of polls finding nothing (however recent)
    leave a change at ``c`` to run at ``max(c, b0 + min_gap)``."""
    pace, t = pace.after(b0, b0, Outcome.WROTE, notified=False)
    for pause, duration, notified in polls:
        began = t + pause
        t = began + duration
        pace, _ = pace.after(began, t, Outcome.NOTHING, notified=notified)
    c = max(t, b0 + fraction * pace.min_gap)
    assert pace.when_changed(c) == max(c, b0 + pace.min_gap)
    if c >= b0 + pace.min_gap:
        assert pace.when_changed(c) == c


@given(paces, st.floats(0.0, 100.0), st.integers(1, 12), st.floats(0.0, 5.0))
def test_a_change_after_failures_waits_for_the_backoff(
    pace: SyncPace, t: float, n: int, duration: float
) -> None:
    for _ in range(n):
        began, t = t, t + duration
        pace, poll = pace.after(began, t, Outcome.FAILED, notified=True)
    backoff = expected_backoff(pace.poll, pace.backoff.maximum, n)
    assert pace.gap == backoff and poll == t + backoff
    assert pace.when_changed(t) == max(t, began + backoff)
    # the first round that works ends the backoff; the gap is counted from the failed round
    ok, _ = pace.after(t, t, Outcome.NOTHING, notified=False)
    assert ok.backoff.failures == 0 and ok.gap == ok.min_gap
    assert ok.when_changed(t) == max(t, began + ok.min_gap)


# -- Backoff -----------------------------------------------------------------------------------


@given(st.floats(0.0, 60.0), maxima, st.integers(1, 80))
def test_backoff_doubles_from_its_base_up_to_the_maximum(base: float, maximum: float, n: int) -> None:
    cap = max(maximum, MIN_BACKOFF)
    b = Backoff(base, maximum)
    assert b.delay() == min(max(base, MIN_BACKOFF), cap)
    delays = []
    for _ in range(n):
        b = b.failed()
        delays.append(b.delay())
    assert b.failures == n
    assert delays[0] == min(max(base, MIN_BACKOFF), cap)
    for before, after in itertools.pairwise(delays):
        assert after == min(2 * before, cap)
    assert delays == [expected_backoff(base, maximum, i + 1) for i in range(n)]
    if n >= 80:
        assert delays[-1] == cap


@given(st.floats(0.0, 60.0), maxima, st.integers(0, 80))
def test_a_failures_wait_stays_between_min_backoff_and_the_maximum(
    base: float, maximum: float, n: int
) -> None:
    b = Backoff(base, maximum)
    for _ in range(n):
        b = b.failed()
    wait = b.failed().delay()
    assert wait >= MIN_BACKOFF
    assert wait <= max(maximum, MIN_BACKOFF)
    if maximum >= MIN_BACKOFF:
        assert wait <= maximum


@given(st.floats(0.0, 60.0), maxima, st.integers(0, 80))
def test_ok_resets_the_backoff(base: float, maximum: float, n: int) -> None:
    fresh = Backoff(base, maximum)
    b = fresh
    for _ in range(n):
        b = b.failed()
    reset = b.ok()
    assert reset.failures == 0
    assert reset == fresh
    assert reset.failed().delay() == fresh.failed().delay()
    assert fresh.ok() is fresh
