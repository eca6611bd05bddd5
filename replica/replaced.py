"""Leaving a database file that is no longer at its path, without harming the file that is.

SQLite names a database's ``-wal`` and ``-shm`` files after the database's *path*, so
after the file at the path was deleted, recreated or renamed over, those names may
belong to either file. Two rules keep the new file safe (Linux and other POSIX
systems, SQLite's unix VFS):

* :func:`no_exclusive_lock`: while our connections to the old file close, the last
  one must not checkpoint and delete the files at those names (SQLite does that
  when it gets an EXCLUSIVE lock), unless they are the old file's.
* :func:`remove_orphaned_wal`: when the old file's WAL is still at the WAL path
  (SQLite leaves it there when the database file has moved), any connection that
  opens the new file would read the old file's frames as its own. Once no connection
  in any process is attached to it any more, it is moved aside to
  ``<db>-wal.replaced-<inode>`` beside it (never deleted: it is not ours, and its
  frames may be commits of the old file that only it holds).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
from collections.abc import Iterator

from ltx.fsutil import rename_noreplace
from replica.identity import FileId, at_paths

log = logging.getLogger("replica.monitor")

_SHARED_FIRST = 0x40000000 + 2
_SHARED_SIZE = 510
"""The byte range of SQLite's SHARED locks in a database file."""
_SHM_DMS = 128
"""The byte of the ``-shm`` file every attached connection holds a read lock on."""


@contextlib.contextmanager
def no_exclusive_lock(db_fd: int) -> Iterator[None]:
    """Keep SQLite in this process from taking an EXCLUSIVE lock on the file behind ``db_fd``.

    An open-file-description read lock on the SHARED range conflicts with SQLite's
    own (process-associated) locks even inside this process, so a closing connection
    gives up its checkpoint quietly and deletes nothing. The lock belongs to
    ``db_fd``'s open file description: it goes when the caller closes ``db_fd``.
    Where such locks do not exist, nothing is held.
    """
    op = getattr(fcntl, "F_OFD_SETLK", None)
    if op is not None:
        flock = struct.pack("hh4xqqi4x", fcntl.F_RDLCK, os.SEEK_SET, _SHARED_FIRST, _SHARED_SIZE, 0)
        try:
            fcntl.fcntl(db_fd, op, flock)
        except OSError as e:
            log.warning("cannot lock a replaced database file before closing it: %s", e)
    yield


def remove_orphaned_wal(db_path: str, wal: FileId) -> bool:
    """Move the WAL file ``wal`` away from ``db_path + "-wal"`` if no connection is attached to it.

    True when that WAL is no longer at the path (moved now, or gone already); False
    while a connection in another process is still attached (it holds the ``-shm``
    file's DMS lock), in which case nothing is touched. The ``-shm`` file stays: the
    next connection rebuilds it from the (now absent) WAL. The DMS lock is held while
    the WAL is moved, so no connection can attach in between. It is renamed, never
    deleted or put over an existing file: ``<db>-wal.replaced-<inode>``.
    """
    wal_path, shm_path = db_path + "-wal", db_path + "-shm"
    try:
        shm_fd = os.open(shm_path, os.O_RDWR)
    except FileNotFoundError:
        shm_fd = -1  # without a -shm file no connection uses the WAL
    try:
        if shm_fd >= 0:
            try:
                fcntl.lockf(shm_fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _SHM_DMS)
            except OSError:
                return False
        if at_paths(db_path).wal != wal:
            return True
        aside = f"{wal_path}.replaced-{wal.ino}"
        rename_noreplace(wal_path, aside)
        log.warning(
            "%s: moved the replaced database's wal file, which no connection used any more, "
            "to %s (SQLite would have read its frames as the new file's)",
            db_path,
            aside,
        )
        return True
    finally:
        if shm_fd >= 0:
            os.close(shm_fd)  # releases the DMS lock
