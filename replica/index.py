"""An in-memory index of a replica's LTX files, kept current by our own writes and deletes.

The replicator is the only writer of its replica (:mod:`replica.ownership` makes sure
of it, and a write that meets another writer's file stops replication rather than
trusting this index), so after one listing of every level
the index can follow the replica exactly: the uploader adds each L0 file it writes,
compaction adds its outputs, retention removes what it deletes. Steady state then
needs no LIST request at all; the store is listed again only at start-up and after a
failure (:meth:`ReplicaIndex.invalidate`), when a write or delete may or may not
have happened.

Timestamps: the listing asks for the recorded LTX timestamps (``use_metadata``: one
HEAD per object on S3, at start-up only), and the :class:`~ltx.fileinfo.FileInfo`
returned by ``write_file`` carries the header timestamp, so every ``created_at``
here is the LTX header timestamp, the time a point-in-time restore compares with.

Thread-safe. A refresh lists without holding the lock; adds and removes made while
it runs are replayed onto the fresh listing before it is installed, so a concurrent
write or delete is never lost or resurrected.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from ltx.fileinfo import FileInfo
from replica.storage import LEVELS, ReplicaClient

_Key = tuple[int, int, int]


def _key(f: FileInfo) -> _Key:
    return (f.level, f.min_txid, f.max_txid)


class ReplicaIndex:
    """Every LTX file of one replica, by level; loaded on first use.

    ``lists`` counts the LIST calls made (one per level per refresh).
    """

    def __init__(self, client: ReplicaClient, *, use_metadata: bool = True) -> None:
        self.client = client
        self.use_metadata = use_metadata
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._files: dict[_Key, FileInfo] | None = None
        self._journal: list[tuple[bool, FileInfo]] | None = None
        self.lists = 0
        self.refreshes = 0

    @property
    def loaded(self) -> bool:
        return self._files is not None

    def refresh(self) -> None:
        """List every level of the replica and replace the index with the result."""
        with self._refresh_lock:
            with self._lock:
                self._journal = []
            try:
                found: dict[_Key, FileInfo] = {}
                for level in LEVELS:
                    self.lists += 1
                    for f in self.client.list_files(level, use_metadata=self.use_metadata):
                        found[_key(f)] = f
            except BaseException:
                with self._lock:
                    self._journal = None
                raise
            with self._lock:
                for added, f in self._journal or []:
                    if added:
                        found[_key(f)] = f
                    else:
                        found.pop(_key(f), None)
                self._journal = None
                self._files = found
                self.refreshes += 1

    def ensure(self) -> None:
        """Load the index if it is not loaded (after start-up or :meth:`invalidate`)."""
        if self._files is None:
            self.refresh()

    def invalidate(self) -> None:
        """Forget everything: the next use lists the replica again."""
        with self._lock:
            self._files = None

    def add(self, info: FileInfo) -> None:
        """Record a file we have just written (replacing one with the same name)."""
        with self._lock:
            if self._journal is not None:
                self._journal.append((True, info))
            if self._files is not None:
                self._files[_key(info)] = info

    def remove(self, infos: Iterable[FileInfo]) -> None:
        """Record files we have just deleted."""
        with self._lock:
            for info in infos:
                if self._journal is not None:
                    self._journal.append((False, info))
                if self._files is not None:
                    self._files.pop(_key(info), None)

    def listing(self) -> dict[int, list[FileInfo]]:
        """A copy of every level (0..9), each sorted by (min, max) TXID; loads if needed."""
        self.ensure()
        with self._lock:
            files = list((self._files or {}).values())
        out: dict[int, list[FileInfo]] = {lvl: [] for lvl in LEVELS}
        for f in files:
            out[f.level].append(f)
        for lvl in out:
            out[lvl].sort(key=lambda i: (i.min_txid, i.max_txid))
        return out

    def files(self, level: int) -> list[FileInfo]:
        """One level's files, sorted by (min, max) TXID."""
        return self.listing()[level]

    def max_txid(self, level: int | None = None) -> int:
        """The highest max TXID in ``level`` (or in any level), 0 if none; loads if needed."""
        self.ensure()
        with self._lock:
            return max(
                (f.max_txid for f in (self._files or {}).values() if level is None or f.level == level),
                default=0,
            )

    def count(self) -> int:
        with self._lock:
            return len(self._files or {})
