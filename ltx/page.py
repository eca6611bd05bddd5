"""Page frames: the 6-byte page header and the two payload encodings.

* **block** (flag ``0x0001``, written by ltx >= 0.5.2 / Litestream >= 0.5.16):
  a u32 byte count, then a raw LZ4 block that decodes to exactly one page.
* **legacy frame** (flag ``0``, Litestream 0.5.0 to 0.5.15): a complete LZ4
  frame with no length in front of it; a reader finds its end by walking the
  frame's own block headers.

Everything here works on ``bytes``/``memoryview``; one call per page.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import attrs
import lz4.block
import lz4.frame

from ltx.errors import CompressionError, PageError, TruncatedError
from ltx.layout import PAGE_HEADER_FIELDS, PAGE_HEADER_SIZE, PAGE_SIZE_PREFIX_SIZE, struct_of

FLAG_SIZE = 0x0001
"""Page-header flag: a u32 payload size and a raw LZ4 block follow."""
FLAG_MASK = FLAG_SIZE

_PAGE_HEADER = struct_of(PAGE_HEADER_FIELDS)
_U32 = struct.Struct(">I")
_U32LE = struct.Struct("<I")

ZERO_PAGE_HEADER = bytes(PAGE_HEADER_SIZE)
"""The page header that ends the page block."""

_LZ4_FRAME_MAGIC = 0x184D2204
_LZ4_BLOCK_MAX = {4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20}


@attrs.frozen
class PageHeader:
    """The header in front of every page frame."""

    pgno: int
    flags: int = FLAG_SIZE

    @property
    def is_zero(self) -> bool:
        return self.pgno == 0 and self.flags == 0

    def validate(self) -> None:
        if self.pgno == 0:
            raise PageError("page number is zero")
        if self.flags & ~FLAG_MASK:
            raise PageError(f"invalid page header flags: 0x{self.flags:04x}", txid=None)

    def to_bytes(self) -> bytes:
        return _PAGE_HEADER.pack(self.pgno, self.flags)

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview) -> PageHeader:
        if len(buf) < PAGE_HEADER_SIZE:
            raise TruncatedError(f"page header is {len(buf)} bytes, need {PAGE_HEADER_SIZE}")
        pgno, flags = _PAGE_HEADER.unpack_from(buf)
        return cls(pgno, flags)


def compress_block(page: bytes | bytearray | memoryview) -> bytes:
    """LZ4-compress one page as a raw block (no size inside the block)."""
    return bytes(lz4.block.compress(page, store_size=False))


def decompress_block(payload: bytes | bytearray | memoryview, page_size: int) -> bytes:
    """Decode a raw LZ4 block that must hold exactly ``page_size`` bytes."""
    try:
        page = lz4.block.decompress(payload, uncompressed_size=page_size)
    except (lz4.block.LZ4BlockError, ValueError) as e:
        raise CompressionError(f"LZ4 block does not decode: {e}") from None
    if len(page) != page_size:
        raise CompressionError(f"LZ4 block decodes to {len(page)} bytes, want {page_size}")
    return bytes(page)


def compress_frame(page: bytes | bytearray | memoryview) -> bytes:
    """LZ4-compress one page as a legacy LZ4 frame (64 KiB blocks, content checksum)."""
    return bytes(
        lz4.frame.compress(
            page,
            block_size=lz4.frame.BLOCKSIZE_MAX64KB,
            block_linked=False,
            content_checksum=True,
            store_size=False,
        )
    )


def read_frame(read: Callable[[int], bytes], page_size: int) -> tuple[bytes, bytes]:
    """Read one legacy LZ4 frame through ``read`` and decode it.

    ``read(n)`` must return exactly ``n`` bytes or raise :class:`TruncatedError`.
    Only the frame's own bytes are consumed: the frame descriptor, each block
    header and block, and the end mark and optional content checksum.
    Returns ``(frame_bytes, page)``.
    """
    parts = [read(6)]
    magic = _U32LE.unpack_from(parts[0])[0]
    if magic != _LZ4_FRAME_MAGIC:
        raise CompressionError(f"legacy page is not an LZ4 frame (magic 0x{magic:08x})")
    flg, bd = parts[0][4], parts[0][5]
    if flg >> 6 != 1 or flg & 0x02 or bd & 0x8F:
        raise CompressionError(f"unsupported LZ4 frame descriptor 0x{flg:02x}{bd:02x}")
    block_max = _LZ4_BLOCK_MAX.get((bd >> 4) & 0x7)
    if block_max is None:
        raise CompressionError(f"invalid LZ4 block size code in 0x{bd:02x}")
    extra = (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0) + 1  # content size, dict ID, HC
    parts.append(read(extra))
    block_checksum = 4 if flg & 0x10 else 0
    budget = page_size + block_max  # a single page never legitimately needs more input than this
    used = 0
    while True:
        word = read(4)
        parts.append(word)
        size = _U32LE.unpack(word)[0] & 0x7FFFFFFF
        if size == 0:
            break
        used += size + block_checksum
        if size > block_max or used > budget:
            raise CompressionError(f"LZ4 frame block of {size} bytes is too large for one page")
        parts.append(read(size + block_checksum))
    if flg & 0x04:
        parts.append(read(4))
    frame = b"".join(parts)
    try:
        page = lz4.frame.decompress(frame)
    except RuntimeError as e:
        raise CompressionError(f"LZ4 frame does not decode: {e}") from None
    if len(page) != page_size:
        raise CompressionError(f"LZ4 frame decodes to {len(page)} bytes, want {page_size}")
    return frame, bytes(page)


def decode_frame_bytes(hdr: PageHeader, body: bytes | bytearray | memoryview, page_size: int) -> bytes:
    """Decode a page from the bytes that follow its page header in a frame of known size.

    ``body`` is the frame minus its 6-byte header, as the page index sizes it:
    size prefix and block for the block encoding, the whole LZ4 frame for the
    legacy one. Used for random access through the page index.
    """
    if hdr.flags & FLAG_SIZE:
        if len(body) < PAGE_SIZE_PREFIX_SIZE:
            raise TruncatedError("page frame ends inside its size field")
        n = _U32.unpack_from(body)[0]
        if n != len(body) - PAGE_SIZE_PREFIX_SIZE:
            raise PageError(f"page {hdr.pgno}: payload size {n} disagrees with the page index")
        return decompress_block(memoryview(body)[PAGE_SIZE_PREFIX_SIZE:], page_size)
    pos = 0
    mv = memoryview(body)

    def read(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(mv):
            raise TruncatedError(f"page {hdr.pgno}: LZ4 frame runs past its index entry")
        out = bytes(mv[pos : pos + n])
        pos += n
        return out

    _, page = read_frame(read, page_size)
    if pos != len(mv):
        raise PageError(f"page {hdr.pgno}: LZ4 frame is shorter than its index entry")
    return page


_BLOCK_HEAD = struct.Struct(">IHI")


def pack_block_head(pgno: int, payload_size: int) -> bytes:
    """Page header with the size flag, then the u32 payload size: what precedes an LZ4 block."""
    return _BLOCK_HEAD.pack(pgno, FLAG_SIZE, payload_size)


def pack_frame_head(pgno: int) -> bytes:
    """Page header with no flags: what precedes a legacy LZ4 frame."""
    return _PAGE_HEADER.pack(pgno, 0)
