"""Many databases in one process: start, keep and stop one :class:`Replication` per database.

The set of databases is re-read every ``rescan_interval`` for configurations with
``dir:`` entries marked ``watch: true``: a database that appears is picked up, one
that vanishes is stopped (after a last upload of what it wrote). Everything else
about a database lives in its :class:`~replica.daemon.Replication`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from replica.daemon import Replication

log = logging.getLogger("replica")

Factory = Callable[[], dict[str, Callable[[], Replication]]]
"""Returns, for every database that should be replicated now, a way to build its Replication."""


class Supervisor:
    """Reconciles running replications with the databases a configuration names."""

    def __init__(self, discover: Factory, *, watch: bool, rescan_interval: float = 1.0) -> None:
        self.discover = discover
        self.watch = watch
        self.rescan_interval = rescan_interval
        self.running: dict[str, Replication] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.incomplete: list[str] = []
        """Databases whose last files did not all reach the replica when they were stopped."""

    def reconcile(self) -> None:
        """Start replications for new databases and stop those that are gone."""
        wanted = self.discover()
        with self._lock:
            for path in sorted(set(self.running) - set(wanted)):
                log.info("database removed, stopping replication path=%s", path)
                if not self.running.pop(path).stop():
                    self.incomplete.append(path)
            for path in sorted(set(wanted) - set(self.running)):
                rep = wanted[path]()
                rep.start()
                self.running[path] = rep
                log.info("replicating path=%s replica=%s", path, rep.client)

    def start(self) -> None:
        self.reconcile()
        if self.watch:
            self._thread = threading.Thread(target=self._loop, name="dir-watch", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.rescan_interval):
            try:
                self.reconcile()
            except Exception as e:  # a transient discovery error must not stop replication
                log.error("rescanning databases failed: %s", e)

    def stop(self) -> bool:
        """Stop everything; True if every database's files all reached its replica."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            for path, rep in sorted(self.running.items()):
                if not rep.stop():
                    self.incomplete.append(path)
            self.running.clear()
        return not self.incomplete
