"""The 100-byte LTX header: its value type, codec and validation rules."""

from __future__ import annotations

import struct

import attrs

from ltx.errors import BadMagicError, HeaderError, HeaderFlagsError, TruncatedError
from ltx.layout import HEADER_FIELDS, HEADER_SIZE, struct_of
from ltx.names import lock_pgno
from ltx.pos import CHECKSUM_FLAG, TXID, Checksum, Pos

MAGIC = b"LTX1"
VERSION = 3
"""Format version this package reads and writes; it is not stored in the file."""

FLAG_NO_CHECKSUM = 0x00000002
"""Header flag: the file carries no database checksums (pre/post-apply are 0)."""
FLAG_MASK = FLAG_NO_CHECKSUM

MIN_PAGE_SIZE = 512
MAX_PAGE_SIZE = 65536

_HEADER = struct_of(HEADER_FIELDS)
assert _HEADER.size == HEADER_SIZE


def is_valid_page_size(n: int) -> bool:
    """Whether ``n`` is a SQLite page size: a power of two from 512 to 65536."""
    return MIN_PAGE_SIZE <= n <= MAX_PAGE_SIZE and n & (n - 1) == 0


@attrs.frozen
class Header:
    """The fields of an LTX header. Construct freely; :meth:`validate` applies the format rules."""

    page_size: int
    commit: int
    min_txid: int
    max_txid: int
    timestamp: int = 0
    """Milliseconds since the Unix epoch."""
    flags: int = 0
    pre_apply_checksum: int = 0
    wal_offset: int = 0
    wal_size: int = 0
    wal_salt1: int = 0
    wal_salt2: int = 0
    node_id: int = 0

    @property
    def is_snapshot(self) -> bool:
        """A snapshot holds every page of the database: by definition, ``min_txid == 1``."""
        return self.min_txid == 1

    @property
    def no_checksum(self) -> bool:
        return bool(self.flags & FLAG_NO_CHECKSUM)

    @property
    def lock_pgno(self) -> int:
        return lock_pgno(self.page_size)

    @property
    def pre_apply_pos(self) -> Pos:
        """Position a database must be at for this file to apply."""
        return Pos(TXID(self.min_txid - 1), Checksum(self.pre_apply_checksum))

    def validate(self) -> None:
        """Raise :class:`HeaderError` (or a subclass) if the header breaks a format rule."""
        if self.flags & ~FLAG_MASK:
            raise HeaderFlagsError(f"invalid flags: 0x{self.flags:08x}", txid=self.min_txid or None)
        if not is_valid_page_size(self.page_size):
            raise HeaderError(f"invalid page size: {self.page_size}")
        if self.min_txid < 1:
            raise HeaderError("min TXID must be at least 1")
        if self.max_txid < self.min_txid:
            raise HeaderError(
                f"max TXID {self.max_txid:016x} is before min TXID {self.min_txid:016x}", txid=self.min_txid
            )
        if self.wal_offset < 0:
            raise HeaderError(f"negative WAL offset: {self.wal_offset}", txid=self.min_txid)
        if self.wal_size < 0:
            raise HeaderError(f"negative WAL size: {self.wal_size}", txid=self.min_txid)
        if (self.wal_salt1 or self.wal_salt2) and self.wal_offset == 0:
            raise HeaderError("WAL salts are set but the WAL offset is zero", txid=self.min_txid)
        if self.wal_offset == 0 and self.wal_size != 0:
            raise HeaderError("WAL size is set but the WAL offset is zero", txid=self.min_txid)
        if self.is_snapshot:
            if self.pre_apply_checksum != 0:
                raise HeaderError("a snapshot must have no pre-apply checksum", txid=self.min_txid)
        elif self.no_checksum:
            if self.pre_apply_checksum != 0:
                raise HeaderError("a NoChecksum file must have no pre-apply checksum", txid=self.min_txid)
        elif self.pre_apply_checksum == 0:
            raise HeaderError("pre-apply checksum required", txid=self.min_txid)
        elif not self.pre_apply_checksum & CHECKSUM_FLAG:
            raise HeaderError("pre-apply checksum lacks its flag bit", txid=self.min_txid)

    def to_bytes(self) -> bytes:
        """Encode to exactly 100 bytes (reserved bytes zero); does not validate."""
        try:
            return _HEADER.pack(
                MAGIC,
                self.flags,
                self.page_size,
                self.commit,
                self.min_txid,
                self.max_txid,
                self.timestamp,
                self.pre_apply_checksum,
                self.wal_offset,
                self.wal_size,
                self.wal_salt1,
                self.wal_salt2,
                self.node_id,
            )
        except struct.error as e:
            raise HeaderError(f"header field out of range: {e}") from None

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview) -> Header:
        """Decode 100 bytes; checks the magic but not the other rules (see :meth:`validate`)."""
        if len(buf) < HEADER_SIZE:
            raise TruncatedError(f"header is {len(buf)} bytes, need {HEADER_SIZE}")
        (magic, flags, page_size, commit, lo, hi, ts, pre, woff, wsize, s1, s2, node) = _HEADER.unpack_from(
            buf
        )
        if magic != MAGIC:
            raise BadMagicError("invalid LTX file: bad magic")
        return cls(
            page_size=page_size,
            commit=commit,
            min_txid=lo,
            max_txid=hi,
            timestamp=ts,
            flags=flags,
            pre_apply_checksum=pre,
            wal_offset=woff,
            wal_size=wsize,
            wal_salt1=s1,
            wal_salt2=s2,
            node_id=node,
        )
