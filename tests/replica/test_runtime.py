"""The runtime's contract (``replica/runtime.py``), on private runtimes with real threads.

* a job's step never runs twice at once; a ``set`` during a round causes exactly one more
  round after it;
* ``cancel`` waits (up to its timeout) for a running round, and no round begins after it
  returned, not even one that was handed to a worker but had not begun;
* a step that raises is logged and retried after ``ESCAPED_RETRY``: the job lives on;
* ``when_set`` decides when a set-triggered round runs, and a set never delays a planned round;
* the number of threads is fixed whatever the number of jobs, and the background pool
  cannot hold up the sync pool;
* ``submit`` returns a future with the value or the exception.

Every test builds its own :class:`Runtime` (never the shared one) through the
``harness`` fixture, which releases every gate and cancels every job at the end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from replica import runtime as runtime_module
from replica.runtime import Job, Pool, Runtime
from tests.support.workload import wait_for

WAIT = 5.0
"""The longest wait for something that must happen (seconds)."""


class Probe:
    """A step that records its rounds: when each began and ended, and how many ran at once.

    ``body(n)`` runs inside round ``n`` (1-based); ``result(n)`` is what round ``n``
    returns (the monotonic time of the next round, None: only when set).
    """

    def __init__(
        self,
        body: Callable[[int], None] | None = None,
        result: Callable[[int], float | None] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._body = body
        self._result = result
        self.active = 0
        self.max_active = 0
        self.began: list[float] = []
        self.ended: list[float] = []
        self.returned: list[float | None] = []

    def __call__(self) -> float | None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.began.append(time.monotonic())
            n = len(self.began)
        try:
            if self._body is not None:
                self._body(n)
        finally:
            with self._lock:
                self.active -= 1
                self.ended.append(time.monotonic())
        nxt = self._result(n) if self._result is not None else None
        with self._lock:
            self.returned.append(nxt)
        return nxt

    @property
    def rounds(self) -> int:
        with self._lock:
            return len(self.began)

    @property
    def finished(self) -> int:
        """Rounds whose step returned (or raised)."""
        with self._lock:
            return len(self.ended)


class Harness:
    """Private runtimes, and the jobs and gates to clean up after a test."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.gates: list[threading.Event] = []

    def runtime(self, sync_workers: int = 2, background_workers: int = 1, upload_workers: int = 1) -> Runtime:
        return Runtime(
            sync_workers=sync_workers, background_workers=background_workers, upload_workers=upload_workers
        )

    def job(
        self,
        rt: Runtime,
        name: str,
        step: Callable[[], float | None],
        *,
        pool: Pool = "sync",
        when_set: Callable[[float], float] | None = None,
    ) -> Job:
        job = rt.job(name, step, pool=pool, when_set=when_set)
        self.jobs.append(job)
        return job

    def gate(self) -> threading.Event:
        ev = threading.Event()
        self.gates.append(ev)
        return ev

    def close(self) -> None:
        for ev in self.gates:
            ev.set()
        stuck = [job.name for job in self.jobs if not job.cancel(timeout=WAIT)]
        assert not stuck, f"jobs still running after the test: {stuck}"


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    try:
        yield h
    finally:
        h.close()


def blocking(entered: threading.Event, gate: threading.Event, rounds: int = 1) -> Callable[[int], None]:
    """A probe body whose first ``rounds`` rounds say they began, then wait for ``gate``."""

    def body(n: int) -> None:
        if n <= rounds:
            entered.set()
            assert gate.wait(WAIT * 2), "the test never released the gate"

    return body


def stays(pred: Callable[[], bool], seconds: float = 0.3) -> bool:
    """``pred`` holds at every check for ``seconds`` (an absence can only be shown over a window)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not pred():
            return False
        time.sleep(0.01)
    return pred()


def hammer(job: Job, threads: int, *, until: threading.Event | None = None, times: int = 0) -> None:
    """Call ``job.set()`` from ``threads`` threads, ``times`` times each or until ``until`` is set."""

    def run() -> None:
        i = 0
        while (until is not None and not until.is_set()) or i < times:
            job.set()
            i += 1

    ts = [threading.Thread(target=run, name=f"hammer-{i}") for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(WAIT * 2)
        assert not t.is_alive()


# -- one round at a time, and a set is never lost ----------------------------------------------


def test_a_step_never_runs_twice_at_once_while_set_is_hammered(harness: Harness) -> None:
    rt = harness.runtime(sync_workers=4)
    probe = Probe(body=lambda n: time.sleep(0.002))  # long enough for a second entry to overlap
    job = harness.job(rt, "hammered", probe)
    job.start()
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    hammer(job, threads=4, until=stop)
    timer.join()
    wait_for(lambda: not job.running, timeout=WAIT, what="the last round to end")
    assert job.cancel(timeout=WAIT)
    assert probe.rounds > 10, "sets during rounds must cause further rounds"
    assert probe.max_active == 1
    # rounds follow one another: each began after the previous one ended
    assert all(b >= e for b, e in zip(probe.began[1:], probe.ended, strict=False))


@pytest.mark.parametrize("sets", [0, 200])
def test_sets_during_a_round_cause_exactly_one_more_round(harness: Harness, sets: int) -> None:
    rt = harness.runtime(sync_workers=4)
    entered, gate = harness.gate(), harness.gate()
    probe = Probe(body=blocking(entered, gate))  # returns None: a round only when set
    job = harness.job(rt, "set while running", probe)
    job.start()
    assert entered.wait(WAIT)
    hammer(job, threads=4, times=sets // 4)  # every one of them arrives during round 1
    gate.set()
    expected = 1 + (sets > 0)
    wait_for(lambda: probe.finished >= expected, timeout=WAIT, what=f"{expected} rounds")
    assert stays(lambda: probe.rounds == expected), f"{probe.rounds} rounds, expected {expected}"
    assert probe.max_active == 1


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_waits_for_the_running_round_and_no_round_begins_after(harness: Harness) -> None:
    rt = harness.runtime(sync_workers=2)
    entered, gate = harness.gate(), harness.gate()
    probe = Probe(body=blocking(entered, gate), result=lambda n: time.monotonic())  # always due again
    job = harness.job(rt, "cancelled while running", probe)
    job.start()
    assert entered.wait(WAIT)
    job.set()  # a further round is owed after this one
    outcome: dict[str, object] = {}

    def cancel() -> None:
        outcome["result"] = job.cancel(timeout=None)
        outcome["ended"] = probe.finished

    canceller = threading.Thread(target=cancel)
    canceller.start()
    canceller.join(0.2)
    assert canceller.is_alive(), "cancel(None) returned while the round was still running"
    gate.set()
    canceller.join(WAIT)
    assert not canceller.is_alive()
    assert outcome == {"result": True, "ended": 1}  # the round had ended when cancel returned
    assert not job.running
    job.set()
    job.start()
    assert stays(lambda: probe.rounds == 1), "a round began after cancel returned"


def test_a_round_queued_but_not_begun_never_begins_after_cancel(harness: Harness) -> None:
    rt = harness.runtime(sync_workers=1)
    entered, gate = harness.gate(), harness.gate()
    blocker = harness.job(rt, "blocker", Probe(body=blocking(entered, gate)))
    blocker.start()
    assert entered.wait(WAIT)  # the pool's only worker is busy
    victim_probe = Probe(result=lambda n: time.monotonic())
    victim = harness.job(rt, "victim", victim_probe)
    victim.start()
    # the scheduler hands the round to the pool: queued behind the blocker, not begun
    wait_for(lambda: victim._queued, timeout=WAIT, what="the victim's round to be queued")
    assert not victim.running
    t0 = time.monotonic()
    assert victim.cancel(timeout=None) is True
    assert time.monotonic() - t0 < 1.0, "cancel waited for a round that had not begun"
    gate.set()
    # one worker, first in first out: once this has run, the victim's queued round came off the queue
    assert rt.submit(lambda: "after", pool="sync").result(WAIT) == "after"
    assert victim_probe.rounds == 0
    assert not victim._queued


def test_cancel_with_a_timeout_returns_false_while_the_round_runs_then_true(harness: Harness) -> None:
    rt = harness.runtime()
    entered, gate = harness.gate(), harness.gate()
    probe = Probe(body=blocking(entered, gate))
    job = harness.job(rt, "blocked", probe)
    job.start()
    assert entered.wait(WAIT)
    t0 = time.monotonic()
    assert job.cancel(timeout=0.05) is False
    took = time.monotonic() - t0
    assert 0.04 <= took < 1.0, f"cancel(timeout=0.05) took {took:.3f} s"
    still_running = job.running
    gate.set()
    assert job.cancel(timeout=WAIT) is True
    assert (still_running, job.running) == (True, False)
    assert probe.finished == 1


# -- a step that raises -----------------------------------------------------------------------


def test_a_step_that_raises_is_logged_and_retried_after_escaped_retry(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    retry = 0.2
    monkeypatch.setattr(runtime_module, "ESCAPED_RETRY", retry)
    caplog.set_level(logging.ERROR, logger="replica")

    def body(n: int) -> None:
        if n <= 2:
            raise RuntimeError(f"boom {n}")

    probe = Probe(body=body)  # returns None once it works: a round only when set
    rt = harness.runtime()
    job = harness.job(rt, "flaky", probe)
    job.start()
    wait_for(lambda: probe.finished >= 3, timeout=WAIT, what="two retries")
    for i in (1, 2):
        pause = probe.began[i] - probe.ended[i - 1]
        assert retry <= pause < retry + 2.0, f"retry {i} after {pause:.3f} s"
    messages = [r for r in caplog.records if r.name == "replica" and r.levelno == logging.ERROR]
    assert [r.getMessage() for r in messages] == [
        "flaky: unexpected error: boom 1",
        "flaky: unexpected error: boom 2",
    ]
    assert all(r.exc_info is not None for r in messages)  # the traceback is logged
    # the job is alive: a set still runs it, and nothing runs without one
    assert stays(lambda: probe.rounds == 3, seconds=retry + 0.1)
    job.set()
    wait_for(lambda: probe.finished == 4, timeout=WAIT, what="a round after the errors")


# -- when a round runs -------------------------------------------------------------------------


def test_when_set_decides_the_time_of_a_set_triggered_round(harness: Harness) -> None:
    asked: list[float] = []

    def when_set(now: float) -> float:
        asked.append(now)
        return now + 0.3

    probe = Probe()
    rt = harness.runtime()
    job = harness.job(rt, "paced", probe, when_set=when_set)
    job.start()
    wait_for(lambda: probe.finished == 1 and not job.running, timeout=WAIT, what="the first round")
    t = time.monotonic()
    job.set()
    wait_for(lambda: probe.rounds == 2, timeout=WAIT, what="the set-triggered round")
    assert len(asked) == 1 and asked[0] >= t
    assert asked[0] + 0.3 <= probe.began[1] < t + 0.3 + 2.0


def test_start_at_runs_the_first_round_then(harness: Harness) -> None:
    probe = Probe()
    rt = harness.runtime()
    job = harness.job(rt, "later", probe)
    at = time.monotonic() + 0.2
    job.start(at)
    wait_for(lambda: probe.rounds == 1, timeout=WAIT, what="the first round")
    assert at <= probe.began[0] < at + 2.0


def test_a_set_never_moves_a_planned_round_later(harness: Harness) -> None:
    planned: list[float] = []

    def result(n: int) -> float | None:
        if n == 1:
            planned.append(time.monotonic() + 0.3)
            return planned[0]
        return None

    probe = Probe(result=result)
    rt = harness.runtime()
    job = harness.job(rt, "planned", probe, when_set=lambda now: now + 30.0)
    job.start()
    wait_for(lambda: probe.finished == 1 and not job.running, timeout=WAIT, what="the first round")
    job.set()  # would be 30 s from now: the round planned in 0.3 s stays
    wait_for(lambda: probe.rounds == 2, timeout=WAIT, what="the planned round")
    assert planned[0] <= probe.began[1] < planned[0] + 2.0


def test_a_set_during_a_round_does_not_delay_the_round_it_plans(harness: Harness) -> None:
    entered, gate = harness.gate(), harness.gate()
    planned: list[float] = []

    def result(n: int) -> float | None:
        if n == 1:
            planned.append(time.monotonic() + 0.2)
            return planned[0]
        return None

    probe = Probe(body=blocking(entered, gate), result=result)
    rt = harness.runtime()
    job = harness.job(rt, "planned while running", probe, when_set=lambda now: now + 30.0)
    job.start()
    assert entered.wait(WAIT)
    job.set()  # during the round: min(what the step planned, when_set) = the step's plan
    gate.set()
    wait_for(lambda: probe.rounds == 2, timeout=WAIT, what="the planned round")
    assert planned[0] <= probe.began[1] < planned[0] + 2.0


def test_a_set_brings_a_later_planned_round_forward(harness: Harness) -> None:
    probe = Probe(result=lambda n: time.monotonic() + 30.0 if n == 1 else None)
    rt = harness.runtime()
    job = harness.job(rt, "brought forward", probe, when_set=lambda now: now + 0.1)
    job.start()
    wait_for(lambda: probe.finished == 1 and not job.running, timeout=WAIT, what="the first round")
    t = time.monotonic()
    job.set()
    wait_for(lambda: probe.rounds == 2, timeout=WAIT, what="the set-triggered round")
    assert t + 0.1 <= probe.began[1] < t + 2.0


# -- threads and pools -------------------------------------------------------------------------


def test_the_number_of_threads_does_not_grow_with_the_number_of_jobs(harness: Harness) -> None:
    rt = harness.runtime(sync_workers=4, background_workers=2, upload_workers=3)
    assert rt.threads == 1 + 4 + 3 + 2  # the scheduler and the workers
    baseline = threading.active_count()
    jobs = 2000
    rounds = [0] * jobs

    def step_of(i: int) -> Callable[[], float | None]:
        def step() -> float | None:
            rounds[i] += 1  # never twice at once: no lock needed
            return time.monotonic() + 0.01 if rounds[i] < 3 else None

        return step

    made = [
        harness.job(rt, f"db-{i}", step_of(i), pool=("background", "upload", "sync", "sync")[i % 4])
        for i in range(jobs)
    ]
    assert threading.active_count() <= baseline  # a job is not a thread
    for job in made:
        job.start()
    peak = baseline

    def all_ran() -> bool:
        nonlocal peak
        peak = max(peak, threading.active_count())
        return min(rounds) >= 3

    wait_for(all_ran, timeout=20.0, what="three rounds of every job")
    assert peak <= baseline, f"{peak} threads while running, {baseline} before"
    assert rt.threads == 10
    assert stays(lambda: max(rounds) == 3, seconds=0.1)  # every job ran exactly its three rounds


def test_a_long_background_step_does_not_delay_sync_jobs(harness: Harness) -> None:
    rt = harness.runtime(sync_workers=1, background_workers=1)
    entered, gate = harness.gate(), harness.gate()
    compaction = harness.job(rt, "compaction", Probe(body=blocking(entered, gate)), pool="background")
    compaction.start()
    assert entered.wait(WAIT)  # the only background worker is busy
    behind = rt.submit(lambda: "late", pool="background")
    sync_probe = Probe(result=lambda n: time.monotonic() + 0.01)
    sync = harness.job(rt, "sync", sync_probe)
    sync.start()
    wait_for(lambda: sync_probe.finished >= 10, timeout=WAIT, what="ten sync rounds")
    assert compaction.running and not gate.is_set()  # all of them while the background pool was held
    assert not behind.done()
    assert rt.submit(lambda: "now", pool="sync").result(WAIT) == "now"
    gate.set()
    assert behind.result(WAIT) == "late"


# -- submit ------------------------------------------------------------------------------------


@pytest.mark.parametrize("pool", ["sync", "background"])
def test_submit_returns_a_future_with_the_value_or_the_exception(harness: Harness, pool: Pool) -> None:
    rt = harness.runtime(sync_workers=1, background_workers=1)
    assert rt.submit(lambda: 42, pool=pool).result(WAIT) == 42
    error = ValueError("boom")

    def fail() -> int:
        raise error

    failed = rt.submit(fail, pool=pool)
    with pytest.raises(ValueError, match="boom"):
        failed.result(WAIT)
    assert failed.exception() is error
    # the pool's only worker survived the exception, and it is the pool's own thread
    assert rt.submit(lambda: threading.current_thread().name, pool=pool).result(WAIT) == f"{pool}-0"


def test_a_submitted_call_cancelled_before_it_began_never_runs(harness: Harness) -> None:
    rt = harness.runtime(sync_workers=1)
    entered, gate = harness.gate(), harness.gate()
    first = rt.submit(lambda: blocking(entered, gate)(1))
    assert entered.wait(WAIT)
    ran: list[int] = []
    queued = rt.submit(lambda: ran.append(1))
    assert queued.cancel()
    gate.set()
    first.result(WAIT)
    assert rt.submit(lambda: "after").result(WAIT) == "after"  # first in, first out
    assert ran == []
    assert queued.cancelled()


# -- regressions found by review ---------------------------------------------------------------


def test_a_start_during_a_round_runs_one_more_round_and_later_sets_still_work(harness: Harness) -> None:
    """``start`` while a round runs used to leave a stale due time behind: every later ``set``
    compared against it and was dropped, so the job never ran again."""
    rt = harness.runtime(sync_workers=2)
    entered, gate = threading.Event(), harness.gate()
    probe = Probe(body=blocking(entered, gate))
    job = harness.job(rt, "restarted", probe)
    job.start()
    assert entered.wait(WAIT)
    job.start()  # during round 1
    gate.set()
    wait_for(lambda: probe.finished == 2, timeout=WAIT, what="the round the start asked for")
    job.set()
    wait_for(lambda: probe.finished == 3, timeout=WAIT, what="the round a later set asked for")
    assert probe.max_active == 1


def test_a_when_set_that_raises_neither_kills_a_worker_nor_ends_the_job(
    harness: Harness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing ``when_set`` after a round used to escape into the worker loop: the worker
    died, the job never ran again and a ``cancel`` waiting for it could hang."""
    monkeypatch.setattr(runtime_module, "ESCAPED_RETRY", 0.1)
    rt = harness.runtime(sync_workers=1)
    entered, gate = threading.Event(), harness.gate()
    calls: list[float] = []

    def when_set(now: float) -> float:
        calls.append(now)
        raise ValueError("when_set failed")

    probe = Probe(body=blocking(entered, gate))
    job = harness.job(rt, "fragile", probe, when_set=when_set)
    with caplog.at_level(logging.ERROR, logger="replica"):
        job.start()
        assert entered.wait(WAIT)
        job.set()  # during the round: when_set runs after it, and raises
        gate.set()
        wait_for(lambda: probe.finished == 2, timeout=WAIT, what="the retry after when_set failed")
    assert calls and "when_set failed" in caplog.text
    assert rt.submit(lambda: "alive").result(WAIT) == "alive"  # the only worker lives
    assert job.cancel(timeout=WAIT)
