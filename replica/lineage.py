"""Is this database a restore of that replica? Compare its state with the replica's latest.

The usual way to move a database to a new host is to restore it there from its
replica and replicate the restored copy onward. The new host's replicator finds the
replica owned by the old host; it may take it over only if the database it starts on
continues the replica's latest state. :func:`is_latest_state` decides that: the
database holds exactly that state, or its *file* does and the transactions since are
all still in its WAL (the application started writing right after the restore, before
any checkpoint).

A database's *state* is what a reader sees: the database file with every committed
transaction of its WAL applied (the frames of the WAL's current generation, up to its
last commit frame), cut to the last commit's size. It is summarised by page size,
page count and the LTX database checksum of its pages (lock page excluded).

The replica's latest state is restored into a temporary folder (the database's meta
directory by default) and summarised the same way; a cheap check of page size and
page count, from the last file's header, comes first, so a different database rarely
costs a download.
"""

from __future__ import annotations

import logging
import os
import tempfile

import attrs

from ltx.checksum import page_checksum
from ltx.database import read_db_info
from ltx.errors import PyLitestreamError
from ltx.header import Header
from ltx.layout import HEADER_SIZE
from ltx.names import lock_pgno
from ltx.pos import CHECKSUM_FLAG
from replica.errors import WALError
from replica.restore import RestorePlanError, calc_restore_plan, restore
from replica.storage import ReplicaClient
from replica.wal import WAL_FRAME_HEADER_SIZE, WALReader

log = logging.getLogger("replica.lineage")


@attrs.frozen
class State:
    """A database state: page size, page count, database checksum."""

    page_size: int
    page_count: int
    checksum: int


def database_states(db_path: str) -> tuple[State, State | None]:
    """The state of the database file alone, and (if its WAL holds commits) the state a reader sees.

    The second is the file plus the committed frames of its WAL; ``None`` when there is
    no WAL or no committed frame in it. Raises :class:`ltx.errors.DatabaseError` (not a
    SQLite file) or ``OSError``.
    """
    wal_path = db_path + "-wal"
    with open(db_path, "rb") as db:
        info = read_db_info(db, os.fstat(db.fileno()).st_size, path=db_path)
        ps = info.page_size
        file_state = State(ps, info.page_count, _checksum(db.fileno(), -1, ps, info.page_count, {}))
        count = info.page_count
        latest: dict[int, int] = {}  # pgno -> WAL offset of its newest committed frame
        try:
            wal = open(wal_path, "rb")  # noqa: SIM115 (closed below)
        except FileNotFoundError:
            return file_state, None
        with wal:
            try:
                reader = WALReader(wal)
                if reader.usable and reader.header is not None and reader.header.page_size == ps:
                    for txn in reader.transactions():
                        for frame in txn.frames:
                            latest[frame.header.pgno] = frame.offset
                        count = txn.commit
            except WALError as e:
                log.debug("%s: WAL not readable, using the database file alone: %s", wal_path, e)
            if not latest:
                return file_state, None
            return file_state, State(ps, count, _checksum(db.fileno(), wal.fileno(), ps, count, latest))


def database_state(db_path: str) -> State:
    """The state a reader of ``db_path`` sees: the file plus the committed frames of its WAL."""
    file_state, with_wal = database_states(db_path)
    return with_wal or file_state


def _checksum(db_fd: int, wal_fd: int, page_size: int, count: int, latest: dict[int, int]) -> int:
    lock = lock_pgno(page_size)
    acc = 0
    for pgno in range(1, count + 1):
        if pgno == lock:
            continue
        off = latest.get(pgno)
        if off is not None:
            page = os.pread(wal_fd, page_size, off + WAL_FRAME_HEADER_SIZE)
        else:
            page = os.pread(db_fd, page_size, (pgno - 1) * page_size)
        if len(page) < page_size:
            page += bytes(page_size - len(page))
        acc ^= page_checksum(pgno, page)
    return CHECKSUM_FLAG | acc


def is_latest_state(client: ReplicaClient, db_path: str, workdir: str | None = None) -> bool:
    """Whether the database at ``db_path`` continues the replica's latest state.

    True when the database holds exactly that state, or when its file does and newer
    transactions are only in its WAL. False when the database does not exist or is not
    a SQLite file, when the replica has no restorable state, or otherwise. Storage
    errors propagate. ``workdir`` holds the temporary restore (created if missing;
    default: beside the database).
    """
    try:
        file_state, with_wal = database_states(db_path)
    except (PyLitestreamError, OSError) as e:
        log.debug("%s: no database state to compare: %s", db_path, e)
        return False
    candidates = {file_state} | ({with_wal} if with_wal is not None else set())
    try:
        plan = calc_restore_plan(client)
    except RestorePlanError as e:
        log.debug("%s: replica has no latest state: %s", client.name, e)
        return False
    last = plan.files[-1]
    head = Header.from_bytes(client.read_file(last.level, last.min_txid, last.max_txid, 0, HEADER_SIZE))
    if (head.page_size, head.commit) not in {(c.page_size, c.page_count) for c in candidates}:
        return False
    folder = workdir or os.path.dirname(os.path.abspath(db_path))
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".lineage-", dir=folder) as tmp:
        out = os.path.join(tmp, "latest.db")
        try:
            restore(client, out, force=True)
            remote = database_state(out)
        except RestorePlanError as e:
            log.debug("%s: replica has no latest state: %s", client.name, e)
            return False
    return remote in candidates
