"""Building L0 files: scan the committed frames of the WAL, then encode pages from the WAL or the database.

I/O here is positional reads (``os.pread``) on descriptors the caller keeps open for
the life of the replication (closing any descriptor of a database file would drop
the POSIX locks SQLite holds on it in this process). A scan keeps only a map from
page number to the WAL offset of its newest committed frame, never page data, so
memory does not grow with the size of a transaction.

An L0 file is written under a temporary name beside its final one (the names
:func:`is_l0_temp` recognises) and renamed into place only after ``before_publish``
has agreed, so a caller can refuse to publish pages it read from a file that has
been replaced in the meantime.
"""

from __future__ import annotations

import os
import re
import struct
import time
from collections.abc import Callable, Iterator

import attrs
import numpy as np

from ltx.database import SQLITE_HEADER_SIZE
from ltx.encoder import Encoder
from ltx.fsutil import atomic_write
from ltx.header import FLAG_NO_CHECKSUM, Header
from ltx.names import format_filename, lock_pgno
from replica.syncplan import NO_SALTS, LastSync
from replica.wal import (
    WAL_FRAME_HEADER_SIZE,
    WAL_HEADER_SIZE,
    WALCursor,
    WALFrameHeader,
    WALHeader,
    WALReader,
)

_L0_TEMP = re.compile(r"[0-9a-f]{16}-[0-9a-f]{16}\.ltx(\.[0-9a-f]{8})?\.tmp")
"""Staging names of L0 files: ``atomic_write``'s ``<name>.<8 hex>.tmp`` and Litestream's ``<name>.tmp``."""


def is_l0_temp(name: str) -> bool:
    """Whether ``name`` (in the L0 directory) is a leftover of an L0 file being written."""
    return _L0_TEMP.fullmatch(name) is not None


class _FdReader:
    """A seekable reader over a descriptor that is never closed here."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pos = 0

    def seek(self, offset: int, whence: int = 0, /) -> int:
        if whence == os.SEEK_END:
            self.pos = os.fstat(self.fd).st_size + offset
        elif whence == os.SEEK_CUR:
            self.pos += offset
        else:
            self.pos = offset
        return self.pos

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            size = max(0, os.fstat(self.fd).st_size - self.pos)
        data = os.pread(self.fd, size, self.pos)
        self.pos += len(data)
        return data


def read_wal_header(wal_fd: int) -> WALHeader | None:
    """The WAL header if the file has a valid one (right magic, version and checksum)."""
    raw = os.pread(wal_fd, WAL_HEADER_SIZE, 0)
    if len(raw) < WAL_HEADER_SIZE:
        return None
    try:
        h = WALHeader.parse(raw)
    except Exception:
        return None
    return h if h.checksum_valid() else None


@attrs.frozen
class WALScan:
    """The committed frames of one WAL generation from ``start`` on."""

    header: WALHeader | None
    start: int
    end: int
    """Offset just past the last commit frame read (``start`` if none)."""
    commit: int
    """Database size in pages after the last commit read; 0 if none."""
    pages: dict[int, int]
    """Page number -> WAL offset of the frame with its newest committed version."""


def cursor_at(wal_fd: int, header: WALHeader, offset: int) -> WALCursor | None:
    """A reader cursor at ``offset``, seeded from the checksum stored in the frame before it.

    None when that frame does not belong to ``header``'s generation.
    """
    if offset <= WAL_HEADER_SIZE:
        return WALCursor.start(header)
    raw = os.pread(wal_fd, WAL_FRAME_HEADER_SIZE, offset - header.frame_size)
    if len(raw) < WAL_FRAME_HEADER_SIZE:
        return None
    fh = WALFrameHeader.parse(raw)
    if (fh.salt1, fh.salt2) != header.salts:
        return None
    return WALCursor(offset, fh.checksum1, fh.checksum2, fh.salt1, fh.salt2)


def scan_wal(wal_fd: int, header: WALHeader | None, start: int) -> WALScan:
    """Map the committed frames of the current generation from ``start`` (a frame boundary)."""
    if header is None:
        return WALScan(None, WAL_HEADER_SIZE, WAL_HEADER_SIZE, 0, {})
    cursor = cursor_at(wal_fd, header, start)
    if cursor is None:
        return WALScan(header, start, start, 0, {})
    reader = WALReader(_FdReader(wal_fd), cursor)
    offsets: list[np.ndarray] = []
    pgnos: list[np.ndarray] = []
    commits: list[np.ndarray] = []
    for base, fields in reader.frame_headers():
        offsets.append(base + np.arange(len(fields), dtype=np.int64) * header.frame_size)
        pgnos.append(fields[:, 0])
        commits.append(fields[:, 1])
    if not offsets:
        return WALScan(header, start, start, 0, {})
    offset, pgno, commit = np.concatenate(offsets), np.concatenate(pgnos), np.concatenate(commits)
    committed = np.flatnonzero(commit)
    if not len(committed):
        return WALScan(header, start, start, 0, {})
    n = int(committed[-1]) + 1  # the frames up to the last commit; a trailing uncommitted run is not
    # each page's last frame: the first occurrence in the reversed run
    last_pgnos, first_rev = np.unique(pgno[:n][::-1], return_index=True)
    pages = dict(zip(last_pgnos.tolist(), offset[:n][::-1][first_rev].tolist(), strict=True))
    end = int(offset[n - 1]) + header.frame_size
    return WALScan(header, start, end, int(commit[n - 1]), pages)


def last_frame_matches(
    wal_fd: int, header: WALHeader, last: LastSync, l0_page: bytes | None, pgno: int
) -> bool:
    """Whether the frame before ``last.end_offset`` is still the one the last L0 file took ``pgno`` from."""
    off = last.end_offset - header.frame_size
    raw = os.pread(wal_fd, header.frame_size, off)
    if len(raw) < header.frame_size or l0_page is None:
        return False
    fh = WALFrameHeader.parse(raw[:WAL_FRAME_HEADER_SIZE])
    return (fh.salt1, fh.salt2) == last.salts and fh.pgno == pgno and raw[WAL_FRAME_HEADER_SIZE:] == l0_page


def frame_pgno(wal_fd: int, header: WALHeader, offset: int) -> int | None:
    raw = os.pread(wal_fd, WAL_FRAME_HEADER_SIZE, offset)
    return WALFrameHeader.parse(raw).pgno if len(raw) == WAL_FRAME_HEADER_SIZE else None


def db_page_count(db_fd: int, page_size: int, page1: bytes | None = None) -> int:
    """Pages in the database file: from the page-1 header when valid, else the file size."""
    size = os.fstat(db_fd).st_size
    hdr = page1 if page1 is not None else os.pread(db_fd, SQLITE_HEADER_SIZE, 0)
    if len(hdr) >= SQLITE_HEADER_SIZE:
        change, count = struct.unpack_from(">II", hdr, 24)
        if count and struct.unpack_from(">I", hdr, 92)[0] == change:
            return int(count)
    return size // page_size


@attrs.frozen
class L0File:
    path: str
    txid: int
    size: int
    page_count: int
    snapshot: bool
    last: LastSync


def write_l0(
    directory: str,
    txid: int,
    *,
    wal_fd: int,
    db_fd: int,
    page_size: int,
    scan: WALScan,
    snapshot: bool,
    prev_commit: int,
    now_ms: int | None = None,
    before_publish: Callable[[], None] | None = None,
) -> L0File | None:
    """Write ``<directory>/<txid>-<txid>.ltx`` from a scan; None for an incremental with no commits.

    ``before_publish`` runs once every page has been read and written to the
    temporary file, just before the rename; if it raises, the temporary file is
    removed, nothing is published, and the exception propagates.

    Header fields as Litestream 0.5 writes them: NoChecksum, ``wal_offset`` = where
    the read started, ``wal_size`` = committed bytes read, the generation's salts,
    Commit = the last commit's database size (or the file's page count when a
    snapshot finds no frames). A snapshot holds every page ``1..commit`` except the
    lock page; an incremental holds the pages of the committed frames plus pages the
    database grew by. Pages past Commit are dropped.
    """
    if not snapshot and scan.end == scan.start:
        return None
    h = scan.header

    def wal_page(off: int) -> bytes:
        return os.pread(wal_fd, page_size, off + WAL_FRAME_HEADER_SIZE)

    if scan.commit:
        commit = scan.commit
    else:
        p1 = scan.pages.get(1)
        commit = db_page_count(
            db_fd, page_size, wal_page(p1)[:SQLITE_HEADER_SIZE] if p1 is not None else None
        )
    lock = lock_pgno(page_size)
    salts = h.salts if h is not None else NO_SALTS
    header = Header(
        page_size=page_size,
        commit=commit,
        min_txid=txid,
        max_txid=txid,
        timestamp=now_ms if now_ms is not None else int(time.time() * 1000),
        flags=FLAG_NO_CHECKSUM,
        wal_offset=scan.start,
        wal_size=scan.end - scan.start,
        wal_salt1=salts[0],
        wal_salt2=salts[1],
    )

    def db_page(pgno: int) -> bytes:
        data = os.pread(db_fd, page_size, (pgno - 1) * page_size)
        return data if len(data) == page_size else data + bytes(page_size - len(data))

    def pages() -> Iterator[tuple[int, bytes]]:
        if snapshot:
            numbers: Iterator[int] = iter(range(1, commit + 1))
        else:
            wanted = {p for p in scan.pages if p <= commit}
            wanted.update(range(prev_commit + 1, commit + 1))
            numbers = iter(sorted(wanted))
        for pgno in numbers:
            if pgno == lock:
                continue
            off = scan.pages.get(pgno)
            yield pgno, (wal_page(off) if off is not None else db_page(pgno))

    path = os.path.join(directory, format_filename(txid, txid))
    with atomic_write(path) as f:
        enc = Encoder(f, header)
        for pgno, data in pages():
            enc.write_page(pgno, data)
        enc.close()
        size, count = enc.bytes_written, enc.page_count
        if before_publish is not None:
            before_publish()
    last = LastSync(txid=txid, end_offset=scan.end, salts=salts, commit=commit, page_size=page_size)
    return L0File(path, txid, size, count, snapshot, last)
