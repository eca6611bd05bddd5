"""The WAL header and the frame header: value types, parsing and packing.

Format (see ``docs``/reference section 0.5 and https://www.sqlite.org/fileformat2.html#walformat):

* A 32-byte header, every field a big-endian ``u32``: magic, format version, page size,
  checkpoint sequence, salt1, salt2, checksum1, checksum2. The magic selects the byte
  order in which the *checksum* reads 32-bit words: ``0x377f0682`` little-endian,
  ``0x377f0683`` big-endian. The version must be ``3007000``. The page size is stored
  as its real value, 65536 included (the database header is the one that writes 1).
* The header checksum is the WAL checksum of header bytes 0..23 from state ``(0, 0)``.
* Then frames: a 24-byte frame header (pgno, commit, salt1, salt2, checksum1, checksum2,
  all big-endian) and one page. Frame ``i`` (0-based) starts at ``32 + i * (24 + page_size)``.
  A frame's checksum is cumulative: it continues from the previous frame's checksum (the
  header's for the first frame) over frame-header bytes 0..7 and then the page.
* A frame is valid iff its salts equal the header's and its checksum matches. A frame
  with ``commit != 0`` ends a transaction; ``commit`` is then the database size in pages.

Errors: parsing a header that is not a WAL header (bad magic or version) raises
:class:`~replica.errors.WALMagicError` / :class:`~replica.errors.WALVersionError`, a
buffer of the wrong size :class:`~replica.errors.WALError`, an impossible page size
(:func:`check_page_size`) :class:`~replica.errors.WALPageSizeError`. The constants live
in :mod:`replica.wal_format`.
"""

from __future__ import annotations

import functools
import struct
from typing import ClassVar, Final, Literal

import attrs

from ltx.header import is_valid_page_size
from replica.errors import WALError, WALMagicError, WALPageSizeError, WALVersionError
from replica.wal.checksum import Buffer, WALChecksum, wal_checksum
from replica.wal_format import (
    WAL_FRAME_HEADER_SIZE,
    WAL_HEADER_SIZE,
    WAL_MAGIC_BE,
    WAL_MAGIC_LE,
    WAL_VERSION,
)

__all__ = ["WALFrameHeader", "WALHeader", "check_page_size"]

_HEADER: Final = struct.Struct(">8I")
_FRAME_HEADER: Final = struct.Struct(">6I")


def check_page_size(page_size: int) -> None:
    """Raise :class:`~replica.errors.WALPageSizeError` unless ``page_size`` is a SQLite page size."""
    if not is_valid_page_size(page_size):
        raise WALPageSizeError(f"invalid wal page size: {page_size}")


@attrs.frozen(slots=True)
class WALHeader:
    """The 32-byte WAL header. All fields are ``u32`` as stored (big-endian on disk)."""

    SIZE: ClassVar[int] = WAL_HEADER_SIZE

    magic: int
    version: int
    page_size: int
    checkpoint_seq: int
    salt1: int
    salt2: int
    checksum1: int
    checksum2: int

    @property
    def big_endian(self) -> bool:
        """True iff the checksum reads words big-endian (magic ``0x377f0683``)."""
        return self.magic == WAL_MAGIC_BE

    @property
    def byte_order(self) -> Literal["little", "big"]:
        """Byte order of the checksum's 32-bit words, as named by :meth:`int.from_bytes`."""
        return "big" if self.big_endian else "little"

    @property
    def checksum(self) -> WALChecksum:
        """The stored header checksum: the state the first frame's checksum continues from."""
        return self.checksum1, self.checksum2

    @property
    def salts(self) -> tuple[int, int]:
        return self.salt1, self.salt2

    @property
    def frame_size(self) -> int:
        """Bytes per frame: 24-byte frame header plus one page."""
        return WAL_FRAME_HEADER_SIZE + self.page_size

    def frame_offset(self, index: int) -> int:
        """File offset of frame ``index`` (0-based)."""
        return WAL_HEADER_SIZE + index * self.frame_size

    @classmethod
    def parse(cls, buf: Buffer) -> WALHeader:
        """Decode exactly 32 bytes. Raises :class:`WALMagicError`, :class:`WALVersionError`,
        or :class:`WALError` for a buffer of the wrong size. Does not check the checksum or
        the page size (see :meth:`checksum_valid`)."""
        raw = memoryview(buf).cast("B")
        if raw.nbytes != WAL_HEADER_SIZE:
            raise WALError(f"wal header must be {WAL_HEADER_SIZE} bytes, got {raw.nbytes}")
        header = cls(*_HEADER.unpack(raw))
        if header.magic not in (WAL_MAGIC_LE, WAL_MAGIC_BE):
            raise WALMagicError(f"invalid wal header magic: {header.magic:x}")
        if header.version != WAL_VERSION:
            raise WALVersionError(f"unsupported wal version: {header.version}")
        return header

    @classmethod
    def create(
        cls,
        page_size: int,
        *,
        salt1: int,
        salt2: int,
        checkpoint_seq: int = 0,
        big_endian: bool = False,
    ) -> WALHeader:
        """A new header with its checksum computed, as SQLite would write it."""
        check_page_size(page_size)
        magic = WAL_MAGIC_BE if big_endian else WAL_MAGIC_LE
        prefix = _HEADER.pack(magic, WAL_VERSION, page_size, checkpoint_seq, salt1, salt2, 0, 0)[:24]
        ck1, ck2 = wal_checksum(prefix, big_endian=big_endian)
        return cls(magic, WAL_VERSION, page_size, checkpoint_seq, salt1, salt2, ck1, ck2)

    def pack(self) -> bytes:
        """The 32 bytes as stored."""
        return _HEADER.pack(
            self.magic,
            self.version,
            self.page_size,
            self.checkpoint_seq,
            self.salt1,
            self.salt2,
            self.checksum1,
            self.checksum2,
        )

    def computed_checksum(self) -> WALChecksum:
        """The checksum of header bytes 0..23 from ``(0, 0)``."""
        return _prefix_checksum(self.pack()[:24], self.big_endian)

    def checksum_valid(self) -> bool:
        """True iff the stored checksum matches; otherwise SQLite treats the WAL as empty."""
        return self.computed_checksum() == self.checksum


@functools.lru_cache(maxsize=4096)
def _prefix_checksum(prefix: bytes, big_endian: bool) -> WALChecksum:
    """A header's checksum (cached: a monitor reads the same header at every sync)."""
    return wal_checksum(prefix, big_endian=big_endian)


@attrs.frozen(slots=True)
class WALFrameHeader:
    """The 24-byte frame header, all ``u32`` (big-endian on disk)."""

    SIZE: ClassVar[int] = WAL_FRAME_HEADER_SIZE

    pgno: int
    commit: int
    """Database size in pages after this frame's transaction if this is a commit frame, else 0."""
    salt1: int
    salt2: int
    checksum1: int
    checksum2: int

    @property
    def is_commit(self) -> bool:
        return self.commit != 0

    @property
    def checksum(self) -> WALChecksum:
        """The cumulative checksum through this frame (the next frame continues from it)."""
        return self.checksum1, self.checksum2

    @classmethod
    def parse(cls, buf: Buffer) -> WALFrameHeader:
        """Decode exactly 24 bytes (raises :class:`WALError` otherwise). No validation."""
        raw = memoryview(buf).cast("B")
        if raw.nbytes != WAL_FRAME_HEADER_SIZE:
            raise WALError(f"wal frame header must be {WAL_FRAME_HEADER_SIZE} bytes, got {raw.nbytes}")
        return cls(*_FRAME_HEADER.unpack(raw))

    def pack(self) -> bytes:
        return _FRAME_HEADER.pack(
            self.pgno, self.commit, self.salt1, self.salt2, self.checksum1, self.checksum2
        )
