"""Running replication: a monitor thread and an upload thread per database, and a clean shutdown.

The monitor thread syncs every ``monitor_interval`` and applies the checkpoint
policy; the upload thread wakes on every new L0 file (or every ``sync_interval``)
and ships pending files. Errors back off exponentially (from the interval up to
five minutes) and are logged at most every 30 seconds per kind; nothing is lost
by an error, because local L0 files stay until uploaded.

:meth:`Replication.stop` makes the last sync and then keeps uploading, for up to
``shutdown_timeout``, until every local file is in the replica; it reports
whether that was achieved, and the command line turns that into its exit code.
"""

from __future__ import annotations

import logging
import threading
import time

import attrs

from ltx.errors import LTXError
from replica.l0 import L0File
from replica.monitor import Database, DatabaseNotReadyError, DBOptions
from replica.storage import ReplicaClient
from replica.uploader import Uploader

log = logging.getLogger("replica")

MAX_BACKOFF = 300.0
LOG_EVERY = 30.0


@attrs.frozen
class ReplicationOptions:
    db: DBOptions = attrs.field(factory=DBOptions)
    sync_interval: float = 1.0
    max_batch: int = 256
    shutdown_timeout: float = 30.0
    shutdown_interval: float = 0.5


class _Backoff:
    def __init__(self, base: float) -> None:
        self.base = max(base, 0.05)
        self.delay = self.base
        self.last_log = 0.0

    def failed(self, what: str, err: BaseException) -> float:
        now = time.monotonic()
        if now - self.last_log >= LOG_EVERY:
            log.error("%s failed (retrying in %.1fs): %s", what, self.delay, err)
            self.last_log = now
        d = self.delay
        self.delay = min(self.delay * 2, MAX_BACKOFF)
        return d

    def ok(self) -> None:
        if self.delay != self.base:
            log.info("recovered")
        self.delay = self.base


class Replication:
    """One database replicated to one replica, with its two threads."""

    def __init__(
        self, db_path: str, client: ReplicaClient, options: ReplicationOptions | None = None
    ) -> None:
        self.options = options or ReplicationOptions()
        self._wake = threading.Event()
        self.db = Database(db_path, self.options.db, on_l0=self._on_l0)
        self.client = client
        self.uploader = Uploader(self.db, client, max_batch=self.options.max_batch)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.errors = 0

    def _on_l0(self, _f: L0File) -> None:
        self._wake.set()

    def open(self) -> bool:
        """Open the database now if it exists; False when it does not exist yet."""
        try:
            remote = self.uploader.remote_position()
            self.db.open(remote)
        except DatabaseNotReadyError:
            return False
        self.db.remove_local_files(remote)  # e.g. files another replicator left behind
        return True

    def sync_once(self) -> None:
        """One sync, checkpoint policy and upload, in the caller's thread (``-once``, tests)."""
        if not self.db.is_open and not self.open():
            raise DatabaseNotReadyError("database does not exist", path=self.db.path)
        self.db.sync()
        self.db.maybe_checkpoint()
        self.uploader.sync()

    def start(self) -> None:
        for name, target in (("monitor", self._monitor), ("upload", self._upload)):
            t = threading.Thread(target=target, name=f"{name}:{self.db.path}", daemon=True)
            t.start()
            self._threads.append(t)

    def _monitor(self) -> None:
        backoff = _Backoff(self.options.db.monitor_interval)
        delay = self.options.db.monitor_interval
        while not self._stop.wait(delay):
            try:
                if not self.db.is_open:
                    if not self.open():
                        delay = self.options.db.monitor_interval
                        continue
                else:
                    self.db.sync()
                self.db.maybe_checkpoint()
                backoff.ok()
                delay = self.options.db.monitor_interval
            except Exception as e:  # the loop must survive anything
                self.errors += 1
                delay = backoff.failed(f"sync of {self.db.path}", e)

    def _upload(self) -> None:
        backoff = _Backoff(self.options.sync_interval)
        delay = self.options.sync_interval
        while not self._stop.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            if self._stop.is_set() or not self.db.is_open:
                continue
            try:
                self.uploader.sync()
                backoff.ok()
                delay = self.options.sync_interval
            except Exception as e:
                self.errors += 1
                delay = backoff.failed(f"upload of {self.db.path}", e)

    def stop(self) -> bool:
        """Stop the threads, make a last sync, upload everything; True if nothing is left unsent."""
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join()
        self._threads.clear()
        if self.db.is_open:
            try:
                self.db.close(final_sync=True)
            except (LTXError, OSError) as e:
                log.error("final sync of %s failed: %s", self.db.path, e)
                self.db.close(final_sync=False)
        if not self.db.local_l0_files():
            return True
        return self.uploader.sync_with_retry(self.options.shutdown_timeout, self.options.shutdown_interval)
