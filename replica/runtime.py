"""One scheduler and three bounded pools of workers for every replicated database.

A database's recurring work (its monitor, its uploader, its compaction) is a
:class:`Job`: a step function that does one round and says when the next round is due.
The :class:`Runtime` keeps one heap of due times, read by one scheduler thread, and
hands due jobs to a fixed number of worker threads, so the number of threads does not
grow with the number of databases: a thousand databases cost a thousand heap entries,
not three thousand sleeping threads. Each kind of work has its own pool, so that one
kind can never hold up another: syncs (local work on the database and its meta
directory) run on the ``sync`` pool, uploads (storage calls, which may hang for as long
as the store does) on the ``upload`` pool, and compaction, which can run for minutes on
a large database, on the small ``background`` pool.

The contract of a job:

* its step never runs twice at once, and never again after :meth:`Job.cancel` returned;
* :meth:`Job.set` (a change was noticed; the name lets a job stand where the watcher
  expects an event) runs the step as soon as the job's ``when_set`` allows; a
  ``set`` that arrives while the step runs is not lost: the step runs again after;
* an exception that escapes a step is logged and the job tried again after
  :data:`ESCAPED_RETRY` seconds: no job dies.

Worker threads are daemon threads: a step still running when the process exits (a
storage call that hangs past the shutdown timeout) does not keep it alive, which is
safe because every write the steps make is atomic (write-temp, rename; one PUT).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Literal, TypeVar

from replica.defaults import BACKGROUND_WORKERS, SYNC_WORKERS, UPLOAD_WORKERS

log = logging.getLogger("replica")

Pool = Literal["sync", "upload", "background"]
Step = Callable[[], "float | None"]
"""One round of a job; returns the monotonic time of its next round (None: only when set)."""

ESCAPED_RETRY = 1.0
"""Seconds before a job whose step raised runs again."""

T = TypeVar("T")


class Job:
    """Recurring work of one database, run by a :class:`Runtime`. Thread-safe."""

    def __init__(
        self, runtime: Runtime, name: str, step: Step, pool: Pool, when_set: Callable[[float], float] | None
    ) -> None:
        self.name = name
        self._runtime = runtime
        self._step = step
        self._pool: Pool = pool
        self._when_set = when_set
        self._cond = threading.Condition(threading.Lock())
        self._due: float | None = None
        self._token = 0
        self._queued = False
        self._running = False
        self._again = False
        self._cancelled = False

    def start(self, at: float | None = None) -> None:
        """Run the first round at ``at`` (monotonic; default now)."""
        with self._cond:
            if not self._cancelled:
                self._schedule(time.monotonic() if at is None else at)

    def set(self) -> None:
        """Something changed: run a round as soon as ``when_set`` allows (never later than planned)."""
        with self._cond:
            if self._cancelled:
                return
            if self._queued:  # the round has not begun: it will see the change
                return
            if self._running:
                self._again = True
                return
            now = time.monotonic()
            at = self._when_set(now) if self._when_set is not None else now
            if self._due is None or at < self._due:
                self._schedule(at)

    def cancel(self, timeout: float | None = None) -> bool:
        """No more rounds; wait up to ``timeout`` (None: for ever) for a running one to end.

        True if no round is running any more. A round handed to a worker but not begun
        does not begin.
        """
        with self._cond:
            self._cancelled = True
            self._due = None
            self._cond.wait_for(lambda: not self._running, timeout)
            return not self._running

    @property
    def running(self) -> bool:
        return self._running

    def _schedule(self, at: float) -> None:  # with self._cond held
        if at <= time.monotonic() and not (self._queued or self._running):
            self._token = next(self._runtime._tokens)  # any entry still in the heap is void
            self._hand_over()  # due now: straight to a worker, no detour through the scheduler
            return
        self._due = at
        self._token = self._runtime._push(at, self)

    def _fire(self, token: int) -> None:
        """The scheduler's call when ``token``'s time has come: hand the step to a worker."""
        with self._cond:
            if token != self._token or self._cancelled:
                return
            if self._queued or self._running:  # started again meanwhile: one more round after this
                self._due = None
                self._again = True
                return
            self._hand_over()

    def _hand_over(self) -> None:  # with self._cond held
        """Queue the step on the job's pool (it begins when a worker takes it)."""
        self._due = None
        self._queued = True
        self._runtime._queues[self._pool].put(self._run)

    def _run(self) -> None:
        with self._cond:
            self._queued = False
            if self._cancelled:
                return
            self._running = True
            self._again = False
        nxt: float | None
        try:
            nxt = self._step()
        except BaseException as e:  # a step must not end its job
            log.exception("%s: unexpected error: %s", self.name, e)
            nxt = time.monotonic() + ESCAPED_RETRY
        with self._cond:
            self._running = False
            try:
                if not self._cancelled:
                    if self._again:
                        now = time.monotonic()
                        try:
                            at = self._when_set(now) if self._when_set is not None else now
                        except Exception as e:
                            log.exception("%s: unexpected error: %s", self.name, e)
                            at = now + ESCAPED_RETRY
                        nxt = at if nxt is None else min(nxt, at)
                    if nxt is not None:
                        self._schedule(nxt)
            finally:
                self._cond.notify_all()


class Runtime:
    """The scheduler thread and the worker pools; see the module docstring."""

    def __init__(
        self,
        sync_workers: int = SYNC_WORKERS,
        background_workers: int = BACKGROUND_WORKERS,
        upload_workers: int = UPLOAD_WORKERS,
    ) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Job]] = []
        self._tokens = itertools.count(1)
        self._queues: dict[Pool, queue.SimpleQueue[Callable[[], None]]] = {
            "sync": queue.SimpleQueue(),
            "upload": queue.SimpleQueue(),
            "background": queue.SimpleQueue(),
        }
        self._threads = [threading.Thread(target=self._schedule_loop, name="scheduler", daemon=True)]
        sizes: tuple[tuple[Pool, int], ...] = (
            ("sync", sync_workers),
            ("upload", upload_workers),
            ("background", background_workers),
        )
        for pool, n in sizes:
            q = self._queues[pool]
            for i in range(max(1, n)):
                t = threading.Thread(target=self._work, args=(q,), name=f"{pool}-{i}", daemon=True)
                self._threads.append(t)
        for t in self._threads:
            t.start()

    @property
    def threads(self) -> int:
        """How many threads the runtime runs (constant for its life)."""
        return len(self._threads)

    def job(
        self, name: str, step: Step, *, pool: Pool = "sync", when_set: Callable[[float], float] | None = None
    ) -> Job:
        """A new job, not yet scheduled (see :meth:`Job.start`)."""
        return Job(self, name, step, pool, when_set)

    def submit(self, fn: Callable[[], T], pool: Pool = "sync") -> Future[T]:
        """Run ``fn`` once on a worker of ``pool``; its result (or exception) in the future."""
        fut: Future[T] = Future()

        def run() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(fn())
            except BaseException as e:
                fut.set_exception(e)

        self._queues[pool].put(run)
        return fut

    def _push(self, at: float, job: Job) -> int:
        token = next(self._tokens)
        with self._cond:
            heapq.heappush(self._heap, (at, token, job))
            if self._heap[0][1] == token:
                self._cond.notify()
        return token

    def _schedule_loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
                due: list[tuple[float, int, Job]] = []
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap))
            for _at, token, job in due:  # outside the heap's lock: a job's lock comes first
                job._fire(token)

    @staticmethod
    def _work(q: queue.SimpleQueue[Callable[[], None]]) -> None:
        while True:
            task = q.get()
            try:
                task()
            except BaseException as e:  # a worker outlives anything a task does
                log.exception("runtime worker: unexpected error: %s", e)


_shared: Runtime | None = None
_shared_lock = threading.Lock()


def shared_runtime() -> Runtime:
    """The process's runtime, started on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Runtime()
        return _shared
