"""Many databases in one process: start, keep and stop one :class:`Replication` per database.

The set of databases is re-read every ``rescan_interval`` (by the ``supervisor`` thread,
which runs only then) for configurations with ``dir:`` entries marked ``watch: true``:
a database that appears is picked up, one that vanishes is stopped (after a last
upload of what it wrote). The lag and size gauges are computed when the metrics are
scraped. Everything else about a database lives in its
:class:`~replica.daemon.Replication`.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from ltx.decoder import read_header
from ltx.errors import LTXError
from replica.daemon import Replication
from replica.metrics import REGISTRY, Registry
from replica.runtime import shared_runtime

log = logging.getLogger("replica")

STOP_GRACE = 1.0
"""Seconds past a database's shutdown deadline that :meth:`Supervisor.stop` still waits for it."""

Factory = Callable[[], dict[str, Callable[[], Replication]]]
"""Returns, for every database that should be replicated now, a way to build its Replication."""


def report_replica_metrics(rep: Replication, now: float | None = None) -> None:
    """Update the lag and bytes-stored gauges of one database (cheap: no store request).

    Lag is the age of the oldest local L0 file not yet in the replica (its header
    timestamp), 0 when everything is uploaded. Bytes and objects come from the
    replication's in-memory index of the replica, once it has been loaded.
    """
    now = time.time() if now is None else now
    lag = 0.0
    try:
        pending = rep.uploader.pending()
    except Exception:  # the replica is unreachable: the position is unknown
        pending = rep.db.local_l0_files()[:1]
    if pending:
        try:
            with open(pending[0][1], "rb") as f:
                lag = max(0.0, now - read_header(f).timestamp / 1000)
        except (OSError, LTXError):
            lag = 0.0
    if rep.index.loaded:
        files = [f for level in rep.index.listing().values() for f in level]
        rep.db.metrics.replica_state(lag, sum(f.size for f in files), len(files))
    else:
        rep.db.metrics.replica_state(lag, None, None)


class Supervisor:
    """Reconciles running replications with the databases a configuration names.

    :meth:`start` returns at once: the databases are started on the runtime's upload
    workers (starting one claims its replica, a storage call that may hang for as long as
    the store does), in parallel, by the ``supervisor`` thread, which then rescans the
    configuration's watched ``dir:`` entries. A database that cannot be started at the
    first reconcile sets :attr:`failed` (the command line then stops and reports
    :attr:`error`); later ones are logged and tried again at the next rescan.
    """

    def __init__(
        self, discover: Factory, *, watch: bool, rescan_interval: float = 1.0, registry: Registry = REGISTRY
    ) -> None:
        self.discover = discover
        self.registry = registry
        """Where the lag and size gauges are collected from (the databases' own registries
        are set by whoever builds their replications)."""
        self.watch = watch
        self.rescan_interval = rescan_interval
        self.running: dict[str, Replication] = {}
        self._starting: dict[str, tuple[Replication, Future[None]]] = {}
        """Databases being started: their replication and the start running on a worker."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failed = threading.Event()
        """Set when a database could not be started at the first reconcile."""
        self.error: BaseException | None = None
        """The first such failure."""
        self.incomplete: list[str] = []
        """Databases whose last files did not all reach the replica when they were stopped,
        and those that were still starting."""

    def reconcile(self) -> None:
        """Start replications for new databases (in parallel) and stop those that are gone;
        raises the first start failure after every other database was started."""
        new, first = self._launch()
        self._settle(new, first)

    def _launch(self) -> tuple[list[str], BaseException | None]:
        """Stop the databases that are gone; build the new ones' replications and hand their
        starts to the workers (quick: no store request here). Returns the new paths and the
        first failure to build one."""
        wanted = self.discover()
        with self._lock:
            for path in sorted(set(self.running) - set(wanted)):
                log.info("database removed, stopping replication path=%s", path)
                self._stop_one(path, self.running.pop(path))
            new = sorted(set(wanted) - set(self.running) - set(self._starting))
        first: BaseException | None = None
        runtime = shared_runtime()
        launched: list[str] = []
        for path in new:
            try:
                rep = wanted[path]()
            except Exception as e:
                first = first or e
                continue
            with self._lock:
                if self._stop.is_set():
                    break
                self._starting[path] = (rep, runtime.submit(rep.start, "upload"))
            launched.append(path)
        return launched, first

    def _settle(self, new: list[str], first: BaseException | None) -> None:
        """Wait for the starts of ``new``: each one that worked is running from then on."""
        for path in new:
            with self._lock:
                entry = self._starting.get(path)
            if entry is None:
                continue
            rep, fut = entry
            try:
                fut.result()
            except Exception as e:
                first = first or e
                with self._lock:
                    self._starting.pop(path, None)
                continue
            with self._lock:
                if self._starting.pop(path, None) is None:
                    continue  # the shutdown took it over
                self.running[path] = rep
            log.info("initialized db path=%s replica=%s", path, rep.client)
        if first is not None:
            raise first

    def start(self) -> None:
        """Start replicating (see the class docstring). Every database of the configuration is
        known, and its start under way, when this returns; nothing here waits for a store."""
        self.registry.add_collector(self.report_metrics)
        new, first = self._launch()
        self._thread = threading.Thread(target=self._run, args=(new, first), name="supervisor", daemon=True)
        self._thread.start()

    def _run(self, new: list[str], first: BaseException | None) -> None:
        try:
            self._settle(new, first)
        except Exception as e:
            self.error = e
            self.failed.set()
            return
        if not self.watch:
            return
        while not self._stop.wait(self.rescan_interval):
            try:
                self.reconcile()
            except Exception as e:  # a transient error here must not stop replication
                log.error("rescanning databases failed: %s", e)

    def report_metrics(self) -> None:
        """Update every running database's lag and size gauges (a metrics collector: it runs
        when the metrics are scraped, not on a timer)."""
        with self._lock:
            reps = list(self.running.values())
        for rep in reps:
            try:
                report_replica_metrics(rep)
            except Exception as e:  # a scrape must not fail for one database
                log.warning("metrics of %s: %s", rep.db.path, e)

    def stop(self) -> bool:
        """Stop everything; True if every database's files all reached its replica.

        All databases at once: a database still starting is waited for (until its
        deadline), every replication is halted, then the last syncs run on the runtime's
        workers, then the last uploads, each database until its own ``shutdown_timeout``
        from now. Whatever has not ended by then (plus
        :data:`STOP_GRACE`) is reported incomplete and left behind: its L0 files stay in
        the meta directory and are shipped by the next start.
        """
        self.registry.remove_collector(self.report_metrics)
        with self._lock:
            self._stop.set()
            running = dict(self.running)
            self.running.clear()
            starting = dict(self._starting)
            self._starting.clear()
        now = time.monotonic()
        deadlines = {path: now + rep.options.shutdown_timeout for path, rep in running.items()}
        for path, (rep, fut) in sorted(starting.items()):  # a start in flight is waited for
            deadlines[path] = now + rep.options.shutdown_timeout
            try:
                fut.result(timeout=max(0.0, deadlines[path] - time.monotonic()))
            except FutureTimeout:
                log.error("stopping: %s was still starting at the deadline (its store did not answer)", path)
                self.incomplete.append(path)
                continue
            except Exception as e:
                log.error("%s could not be started: %s", path, e)
                continue
            running[path] = rep
        reps = sorted(running.items())
        for _path, rep in reps:
            rep.halt()
        runtime = shared_runtime()
        synced = self._gather(
            {path: runtime.submit(functools.partial(rep.last_sync, deadlines[path])) for path, rep in reps},
            deadlines,
        )
        shipped = self._gather(
            {
                path: runtime.submit(functools.partial(rep.ship, deadlines[path], synced[path]), "upload")
                for path, rep in reps
                if synced[path] is not None
            },
            deadlines,
        )
        for path, _rep in reps:
            if not shipped.get(path):
                self.incomplete.append(path)
        return not self.incomplete

    @staticmethod
    def _gather(
        futures: Mapping[str, Future[bool | None]] | Mapping[str, Future[bool]], deadlines: dict[str, float]
    ) -> dict[str, bool | None]:
        """Each future's result, None for those that failed or did not end by their deadline."""
        out: dict[str, bool | None] = {}
        for path, fut in futures.items():
            try:
                out[path] = fut.result(timeout=max(0.0, deadlines[path] + STOP_GRACE - time.monotonic()))
            except FutureTimeout:
                log.error("stopping replication of %s: still busy at the shutdown deadline", path)
                out[path] = None
            except Exception as e:  # one database's failure must not keep the others from stopping
                log.error("stopping replication of %s failed: %s", path, e)
                out[path] = None
        return out

    def _stop_one(self, path: str, rep: Replication) -> None:
        """Stop one replication; any failure is logged and counted as incomplete, never raised,
        so the other databases are still stopped and shipped."""
        try:
            complete = rep.stop()
        except Exception as e:  # one database's failure must not keep the others from stopping
            log.error("stopping replication of %s failed: %s", path, e)
            complete = False
        if not complete:
            self.incomplete.append(path)
