"""SQLite database files as the LTX tools see them: header fields, snapshot, apply.

Only the 100-byte SQLite header is interpreted: the page size at offset 16
(big-endian u16, where 1 means 65536) and the in-header page count at offset
28, trusted only when its "version-valid-for" number (offset 92) equals the
change counter (offset 24), as SQLite itself does; otherwise the page count is
the file size divided by the page size.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from typing import BinaryIO

import attrs

from ltx.checksum import database_checksum, page_checksum
from ltx.decoder import Decoder
from ltx.encoder import Encoder
from ltx.errors import (
    DatabaseError,
    LTXError,
    PostApplyChecksumMismatchError,
    PreApplyChecksumMismatchError,
)
from ltx.fsutil import atomic_write
from ltx.header import FLAG_NO_CHECKSUM, Header, is_valid_page_size
from ltx.names import lock_pgno
from ltx.pos import CHECKSUM_FLAG
from ltx.trailer import Trailer

SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_HEADER_SIZE = 100
READ_PAGES = 1024
"""Pages read per call when snapshotting a database."""


@attrs.frozen
class DBInfo:
    page_size: int
    page_count: int


def read_db_info(f: BinaryIO, file_size: int, *, path: str | None = None) -> DBInfo:
    """Page size and page count of the SQLite database in ``f`` (read from offset 0)."""
    f.seek(0)
    hdr = f.read(SQLITE_HEADER_SIZE)
    if len(hdr) < SQLITE_HEADER_SIZE or hdr[:16] != SQLITE_MAGIC:
        raise DatabaseError("not a SQLite database (bad header)", path=path)
    raw_size = struct.unpack_from(">H", hdr, 16)[0]
    page_size = 65536 if raw_size == 1 else raw_size
    if not is_valid_page_size(page_size):
        raise DatabaseError(f"invalid page size {raw_size} in SQLite header", path=path)
    change, count = struct.unpack_from(">II", hdr, 24)
    valid_for = struct.unpack_from(">I", hdr, 92)[0]
    if count == 0 or valid_for != change:
        count = file_size // page_size
    if count * page_size > file_size:
        raise DatabaseError(
            f"header says {count} pages of {page_size} bytes but the file is {file_size} bytes", path=path
        )
    return DBInfo(page_size, count)


def encode_db(
    db: BinaryIO,
    out: BinaryIO,
    *,
    timestamp: int,
    no_checksum: bool = False,
    min_txid: int = 1,
    max_txid: int = 1,
    path: str | None = None,
) -> Trailer:
    """Write a snapshot LTX file of the SQLite database in ``db`` to ``out``.

    The lock page is skipped. With ``no_checksum`` the file carries no database
    checksums (as Litestream 0.5 writes every file); otherwise its post-apply
    checksum is computed from the pages.
    """
    size = os.fstat(db.fileno()).st_size
    info = read_db_info(db, size, path=path)
    header = Header(
        page_size=info.page_size,
        commit=info.page_count,
        min_txid=min_txid,
        max_txid=max_txid,
        timestamp=timestamp,
        flags=FLAG_NO_CHECKSUM if no_checksum else 0,
    )
    enc = Encoder(out, header)
    lock = lock_pgno(info.page_size)
    ps = info.page_size
    buf = bytearray(READ_PAGES * ps)
    view = memoryview(buf)
    db.seek(0)
    pgno = 1
    while pgno <= info.page_count:
        want = min(READ_PAGES, info.page_count - pgno + 1)
        n = db.readinto(view[: want * ps])  # type: ignore[attr-defined]
        if n != want * ps:
            raise DatabaseError(f"database shrank while reading page {pgno}", path=path)
        for i in range(want):
            if pgno != lock:
                enc.write_page(pgno, view[i * ps : (i + 1) * ps])
            pgno += 1
    return enc.close()


def db_checksum_of_path(path: str) -> int:
    """Database checksum of the SQLite file at ``path`` (page size from its header)."""
    with open(path, "rb") as f:
        info = read_db_info(f, os.fstat(f.fileno()).st_size, path=path)
        f.seek(0)
        return database_checksum(f, info.page_size, info.page_count)


class _DBFile:
    """A database file being patched in place, with an optional running checksum."""

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path
        self.checksum: int | None = None
        self.page_size = 0

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def ensure_checksum(self, page_size: int) -> int:
        if self.checksum is None or self.page_size != page_size:
            with open(self.fd, "rb", closefd=False) as f:
                f.seek(0)
                self.checksum = database_checksum(f, page_size) & ~CHECKSUM_FLAG
            self.page_size = page_size
        return self.checksum

    def old_page(self, pgno: int, page_size: int) -> bytes | None:
        data = os.pread(self.fd, page_size, (pgno - 1) * page_size)
        return data if len(data) == page_size else None


def apply_files(db_path: str, ltx_paths: Sequence[str]) -> int | None:
    """Apply LTX files in order to the database at ``db_path``, creating it if absent.

    Guarantees: an existing database is only touched by a file that has been
    decoded and verified in full first; an incremental file with checksums
    applies only if the database's checksum equals its pre-apply checksum;
    after each file the database is truncated to Commit pages and, with
    checksums, must equal the post-apply checksum. A database that did not
    exist is built in a temporary file (one pass per file, nothing verified
    twice) and renamed into place only when every file applied. An ``OSError`` while
    writing the database (a full disk) carries ``db_path`` as its file name.
    Returns the final database checksum when known (None for NoChecksum files).
    """
    if not ltx_paths:
        raise LTXError("no LTX files given")
    if os.path.exists(db_path):
        fd = os.open(db_path, os.O_RDWR)
        try:
            result = _apply_all(_DBFile(fd, db_path), ltx_paths, verify_first=True)
            try:
                os.fsync(fd)
            except OSError as e:
                raise _named(e, db_path) from None
        finally:
            os.close(fd)
        return result
    try:
        with atomic_write(db_path, replace=False) as f:  # a database that appeared meanwhile stays
            return _apply_all(_DBFile(f.fileno(), db_path), ltx_paths, verify_first=False)
    except OSError as e:
        raise _named(e, db_path) from None


def _apply_all(db: _DBFile, ltx_paths: Sequence[str], *, verify_first: bool) -> int | None:
    result: int | None = None
    for p in ltx_paths:
        with open(p, "rb") as f:
            if verify_first:
                Decoder(f, path=p).verify()
                f.seek(0)
            result = _apply_one(db, Decoder(f, path=p))
    return result


def _named(e: OSError, path: str) -> OSError:
    """``e`` with ``path`` as its file name when the failing call (on a descriptor) gave none."""
    if e.filename is not None:
        return e
    named = OSError(e.errno, e.strerror, path)
    named.__cause__ = e
    return named


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int, path: str) -> None:
    """Write all of ``data`` at ``offset``: a short write (a disk filling up) is continued,
    so the error that follows it is raised instead of a silently shorter file."""
    view = memoryview(data)
    try:
        while view:
            n = os.pwrite(fd, view, offset)
            view, offset = view[n:], offset + n
    except OSError as e:
        raise _named(e, path) from None


class _RunWriter:
    """Coalesces writes of consecutive pages into one ``pwrite`` of up to ``limit`` bytes."""

    def __init__(self, fd: int, page_size: int, path: str, limit: int = 4 << 20) -> None:
        self.fd, self.page_size, self.path, self.limit = fd, page_size, path, limit
        self.start = 0
        self.next = 0
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, pgno: int, page: bytes) -> None:
        if pgno != self.next or self.size >= self.limit:
            self.flush()
            self.start = pgno
        self.parts.append(page)
        self.size += len(page)
        self.next = pgno + 1

    def flush(self) -> None:
        if self.parts:
            _pwrite_all(self.fd, b"".join(self.parts), (self.start - 1) * self.page_size, self.path)
            self.parts, self.size = [], 0


def _apply_one(db: _DBFile, dec: Decoder) -> int | None:
    h = dec.header
    ps = h.page_size
    track = not h.no_checksum and not h.is_snapshot
    if track:
        cur = db.ensure_checksum(ps)
        if CHECKSUM_FLAG | cur != h.pre_apply_checksum:
            raise PreApplyChecksumMismatchError(
                h.pre_apply_checksum, CHECKSUM_FLAG | cur, path=dec.path, txid=h.min_txid
            )
    lock = lock_pgno(ps)
    acc = db.checksum if track else None
    out = _RunWriter(db.fd, ps, db.path)
    for pgno, page in dec:
        if acc is not None:
            old = db.old_page(pgno, ps)
            if old is not None:
                acc ^= page_checksum(pgno, old) & ~CHECKSUM_FLAG
            acc ^= page_checksum(pgno, page) & ~CHECKSUM_FLAG
        out.write(pgno, page)
    out.flush()
    old_pages = db.size() // ps
    if acc is not None:
        for pgno in range(h.commit + 1, old_pages + 1):
            old = db.old_page(pgno, ps)
            if old is not None and pgno != lock:
                acc ^= page_checksum(pgno, old) & ~CHECKSUM_FLAG
    if h.is_snapshot and h.commit >= lock:
        _pwrite_all(db.fd, bytes(ps), (lock - 1) * ps, db.path)
    try:
        os.ftruncate(db.fd, h.commit * ps)
    except OSError as e:
        raise _named(e, db.path) from None
    assert dec.trailer is not None
    if h.is_snapshot and dec.db_checksum is not None:
        acc = dec.db_checksum & ~CHECKSUM_FLAG
    db.checksum = acc
    db.page_size = ps
    if h.no_checksum:
        return None
    assert acc is not None
    if CHECKSUM_FLAG | acc != dec.trailer.post_apply_checksum:
        raise PostApplyChecksumMismatchError(
            dec.trailer.post_apply_checksum, CHECKSUM_FLAG | acc, path=dec.path, txid=h.min_txid
        )
    return CHECKSUM_FLAG | acc
