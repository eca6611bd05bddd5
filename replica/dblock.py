"""One replicator process per database file on a host: a lock held for the whole run.

Two replicators on one database (for instance with two meta directories) would each
number their own TXIDs and write states that were never committed, so the second is
refused. The lock is not taken on the database file (SQLite's own locks there must
stay untouched) but on names derived from it:

* on Linux, an abstract Unix socket bound to a name derived from the database's
  real path (symlinks resolved). The kernel releases it when the process dies, and
  nothing is left on disk;
* elsewhere, ``flock`` on files named the same way in the system temporary folder.

Abstract sockets are per network namespace: containers with their own network see
each other's database as unlocked. They also see each other as other hosts, which
the owner record (:mod:`replica.ownership`) catches.

Within one process the lock is re-entrant (counted): the same process may open a
database twice (a restart of a replication object, tests), which is not the danger
this guards against.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import tempfile
import threading
from typing import IO

from replica.errors import DatabaseLockedError

_PREFIX = "pylitestream-db"
_ABSTRACT_SOCKETS: bool = sys.platform.startswith("linux")

_held: dict[str, tuple[socket.socket | IO[bytes], int]] = {}
_held_lock = threading.Lock()


def lock_names(db_path: str) -> list[str]:
    """The lock names of the database at ``db_path``: one, from its real path.

    Not from the file's device and inode numbers: a replicator keeps its lock while
    its database file is replaced or deleted, and the file system may then give the
    same inode number to an unrelated new file, which would be refused.
    """
    real = os.path.realpath(db_path)
    return [hashlib.sha256(f"path:{real}".encode()).hexdigest()[:40]]


def _acquire(name: str) -> socket.socket | IO[bytes] | None:
    """Take one named lock for this process; None if another process holds it."""
    if _ABSTRACT_SOCKETS:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind(f"\0{_PREFIX}:{name}")
        except OSError:
            s.close()
            return None
        return s
    import fcntl

    path = os.path.join(tempfile.gettempdir(), f"{_PREFIX}-{name}.lock")
    f = open(path, "ab")  # noqa: SIM115 (held until released)
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


class DatabaseLock:
    """This process's lock on one database file; :meth:`release` once (or use ``with``)."""

    def __init__(self, db_path: str, names: list[str]) -> None:
        self.db_path = db_path
        self._names = names
        self._released = False

    def release(self) -> None:
        """Give the lock back (the last holder in the process releases the names)."""
        with _held_lock:
            if self._released:
                return
            self._released = True
            for name in self._names:
                handle, count = _held[name]
                if count > 1:
                    _held[name] = (handle, count - 1)
                else:
                    del _held[name]
                    handle.close()

    def __enter__(self) -> DatabaseLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_database(db_path: str, *, replica: str) -> DatabaseLock:
    """Lock the database at ``db_path`` for this process, for as long as the lock is held.

    Raises :class:`~replica.errors.DatabaseLockedError` (naming the database and
    ``replica``, the replica it was to be replicated to) when another process holds it.
    """
    names = lock_names(db_path)
    with _held_lock:
        taken: list[str] = []
        for name in names:
            if name in _held:
                handle, count = _held[name]
                _held[name] = (handle, count + 1)
                taken.append(name)
                continue
            handle2 = _acquire(name)
            if handle2 is None:
                for t in taken:  # undo what this call took
                    h, c = _held[t]
                    if c > 1:
                        _held[t] = (h, c - 1)
                    else:
                        del _held[t]
                        h.close()
                real = os.path.realpath(db_path)
                raise DatabaseLockedError(
                    f"another replicator process on this host already replicates this database "
                    f"(perhaps with another meta directory); refusing to start a second one "
                    f"for replica {replica}",
                    replica=replica,
                    path=real,
                )
            _held[name] = (handle2, 1)
            taken.append(name)
    return DatabaseLock(db_path, names)
