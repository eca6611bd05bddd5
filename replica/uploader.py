"""Shipping local L0 files to the replica, in TXID order, and keeping the meta directory small.

The replica's position is the highest TXID it holds (over all levels), read once at
start and after any failure; each upload advances it. With a
:class:`~replica.index.ReplicaIndex` the position comes from the index, every file
written is added to it, and a failure invalidates it (the next call lists again).

A local file is deleted once it is uploaded, except the newest, which the next
start-up needs to decide whether it can continue from the WAL. With ``keep_local``
uploaded files stay in the meta directory so that level-1 compaction can read them
locally; the compaction side deletes them once they are merged.

A gap (the replica's newest file is older than our oldest unsent file, e.g. the
replica was emptied, or a local file was lost) would make the replica unrestorable.
It is closed with a snapshot: a local L0 file holding every page is also written to
the snapshot level as ``1-<txid>``, which any restore can start from; if the next
file is not such a file, the database is asked for one and older files are skipped.

Ownership (:mod:`replica.ownership`): :meth:`Uploader.claim` locks the database for
this process and claims the replica (or is refused) before anything is written;
every upload round with something to send first reads the owner record again. A
second writer, found that way or by a write finding its name taken with other content,
fences the client: no write or delete reaches the replica any more, every round
raises the error, and :meth:`Uploader.finish` reports the run as failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path

from ltx.errors import LTXError, PyLitestreamError
from ltx.fullimage import is_full_image_file
from ltx.names import SNAPSHOT_LEVEL
from ltx.snapshot import rewrite_as_snapshot
from replica.defaults import DEFAULT_MAX_SYNC_LTX_FILES, DEFAULT_UPLOAD_CONCURRENCY
from replica.errors import OwnershipError, StorageError
from replica.index import ReplicaIndex
from replica.monitor import Database
from replica.ownership import OwnershipGuard
from replica.storage import ReplicaClient

log = logging.getLogger("replica.uploader")

LEVELS = range(0, SNAPSHOT_LEVEL + 1)

MAX_CONCURRENT_UPLOADS = DEFAULT_UPLOAD_CONCURRENCY
UPLOAD_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT_UPLOADS)
"""Shared by every database in the process: at most this many L0 uploads run at once,
so memory and connections stay bounded however many databases are replicated."""


class Uploader:
    """Uploads one database's L0 files to one replica client."""

    def __init__(
        self,
        db: Database,
        client: ReplicaClient,
        *,
        max_batch: int = DEFAULT_MAX_SYNC_LTX_FILES,
        index: ReplicaIndex | None = None,
        keep_local: bool = False,
    ) -> None:
        self.db = db
        self.client = client
        self.max_batch = max_batch
        self.index = index
        self.keep_local = keep_local
        self.remote_max: int | None = None
        self.lock = threading.Lock()
        self.uploaded = 0
        self._snapshot_written = False
        self.guard = OwnershipGuard(client, db.path)

    @property
    def fenced(self) -> OwnershipError | None:
        """Why nothing may be written to the replica any more (a second writer), if so."""
        return self.client.fenced

    def claim(self, *, at_start: bool = False) -> None:
        """Lock the database and claim the replica (idempotent); raises if refused.

        ``at_start``: a store that cannot be reached now is not fatal (logged; the claim
        is made again before the first upload). Refusals always raise.
        """
        try:
            self.guard.claim()
        except OwnershipError:
            raise
        except StorageError as e:
            if not at_start:
                raise
            log.warning("%s: cannot check who owns replica %s yet: %s", self.db.path, self.client.name, e)

    def finish(self, complete: bool) -> bool:
        """End of the run: a last look at the owner record, release the database lock.

        True if ``complete`` and no second writer was found (now or earlier).
        """
        if self.fenced is None and self.guard.record is not None:
            try:
                self.guard.check()
            except OwnershipError:
                pass  # fenced: reported below
            except StorageError as e:
                log.warning("%s: cannot read the owner record a last time: %s", self.db.path, e)
        self.guard.release()
        if self.fenced is not None:
            log.error("%s: replication stopped: %s", self.db.path, self.fenced)
            return False
        return complete

    def remote_position(self) -> int:
        """The replica's highest TXID over every level (0 when empty); listed, then cached."""
        if self.index is not None:
            return self.index.max_txid()
        if self.remote_max is None:
            best = 0
            for level in LEVELS:
                for info in self.client.list_files(level):
                    best = max(best, info.max_txid)
            self.remote_max = best
        return self.remote_max

    def pending(self) -> list[tuple[int, str]]:
        pos = self.remote_position()
        return [(t, p) for t, p in self.db.local_l0_files() if t > pos]

    def sync(self) -> int:
        """Upload every pending local file in order; returns how many were uploaded.

        Raises the store's error (after its own retries) and forgets the cached
        position, so the next call re-lists the replica.
        """
        with self.lock:
            try:
                return self._sync()
            except BaseException:
                self.remote_max = None
                if self.index is not None:
                    self.index.invalidate()
                raise

    def _sync(self) -> int:
        done = 0
        pending = self.pending()[: self.max_batch or None]
        if pending:
            self.guard.check()
        for txid, path in pending:
            pos = self.remote_position()
            if txid != pos + 1 and not self._close_gap(txid, path, pos):
                continue  # dropped (a snapshot was requested); a later full image may close the gap now
            if not os.path.exists(path):
                break  # removed underneath us; the next round re-lists
            with UPLOAD_SLOTS:
                info = self.client.write_file(0, txid, txid, Path(path))
            if self.index is not None:
                self.index.add(info)
            self.remote_max = txid
            done += 1
            self.uploaded += 1
            if not self.keep_local:
                self.db.remove_local_files(txid)
        if self._snapshot_written:
            self._snapshot_written = False
            done += self._sync()  # the snapshot that closes the gap, and what follows it
        return done

    def _close_gap(self, txid: int, path: str, pos: int) -> bool:
        """Handle a file that does not follow the replica's newest; True if it may be uploaded now."""
        if txid <= pos:
            return False
        try:
            full = is_full_image_file(path)
        except (LTXError, OSError):
            full = False
        if not full:
            log.warning(
                "%s: replica ends at txid %d but the next local file is %d: requesting a snapshot",
                self.db.path, pos, txid,
            )  # fmt: skip
            self.db.request_snapshot()
            self.db.remove_local_files(txid)
            if self.db.is_open:  # write it now rather than at the next sync
                self._snapshot_written = self.db.sync() is not None
            return False
        log.info("%s: replica ends at txid %d: uploading snapshot 1-%d", self.db.path, pos, txid)
        tmp = f"{path}.snapshot.tmp"
        try:
            with open(path, "rb") as src, open(tmp, "wb") as out:
                rewrite_as_snapshot(src, out)
            info = self.client.write_file(SNAPSHOT_LEVEL, 1, txid, Path(tmp))
            if self.index is not None:
                self.index.add(info)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return True

    def sync_with_retry(self, timeout: float, interval: float = 0.5) -> bool:
        """Keep syncing until nothing is pending or ``timeout`` passes; True if all was uploaded."""
        deadline = time.monotonic() + timeout
        while True:
            if self.fenced is not None:
                return False
            try:
                self.sync()
                if not self.pending():
                    return True
            except OwnershipError as e:
                log.error("%s: final upload refused: %s", self.db.path, e)
                return False
            except PyLitestreamError as e:
                log.warning("%s: final upload failed, retrying: %s", self.db.path, e)
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
