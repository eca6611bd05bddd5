"""Streaming LTX decoder and random-access page reader.

:class:`Decoder` reads a file front to back from any binary file object,
yielding ``(pgno, page)`` pairs; when the last page has been yielded it reads
the page index and trailer and verifies the file checksum (and, for snapshots
with checksums, the post-apply checksum) before the iteration ends. A caller
that stops early has verified nothing.

:func:`read_page_index` and :func:`read_page` give random access: the header,
the index and the trailer from the file's ends, then any single page frame.

No exception other than :class:`~ltx.errors.LTXError` (and ``OSError`` from the
file object itself) escapes this module, whatever the input bytes.
"""

from __future__ import annotations

import os
import struct
from array import array
from collections.abc import Iterator
from typing import BinaryIO

import attrs
import numpy as np

from ltx.checksum import CRC_INIT, crc64, page_checksum
from ltx.errors import (
    FileChecksumMismatchError,
    LTXError,
    PageError,
    PageIndexError,
    PageOrderError,
    PostApplyChecksumMismatchError,
    TruncatedError,
)
from ltx.header import Header
from ltx.index import INDEX_SIZE_FIELD, PageIndex, index_size
from ltx.layout import HEADER_SIZE, PAGE_HEADER_SIZE, PAGE_SIZE_PREFIX_SIZE, TRAILER_SIZE
from ltx.page import FLAG_MASK as PAGE_FLAG_MASK
from ltx.page import PageHeader, decode_frame_bytes, decompress_block, read_frame
from ltx.pos import CHECKSUM_FLAG
from ltx.trailer import DELETION_POST_APPLY, Trailer

_TAIL = INDEX_SIZE_FIELD + TRAILER_SIZE
_MAX_VARINT = 10
_CHUNK = 1 << 20
_PAGE_HEAD = struct.Struct(">IH")
_U32 = struct.Struct(">I")
_BLOCK_HEAD = PAGE_HEADER_SIZE + PAGE_SIZE_PREFIX_SIZE


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    buf = f.read(n)
    if len(buf) == n:
        return buf
    parts = [buf]
    got = len(buf)
    while got < n:
        more = f.read(n - got)
        if not more:
            raise TruncatedError(f"file ends inside the {what} ({got} of {n} bytes)")
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def read_header(f: BinaryIO) -> Header:
    """Read and validate the 100-byte header at the current position."""
    h = Header.from_bytes(_read_exact(f, HEADER_SIZE, "header"))
    h.validate()
    return h


class Decoder:
    """Decode one LTX file from ``f`` (positioned at its first byte).

    ``path`` and ``level`` only label errors. Iterate to get the pages; after
    the iteration completes, :attr:`trailer` and :attr:`page_index` are set
    and every check has passed. :meth:`verify` does the whole walk.
    """

    def __init__(self, f: BinaryIO, *, path: str | None = None, level: int | None = None) -> None:
        self._f = f
        self.path = path
        self.level = level
        self.trailer: Trailer | None = None
        self.page_index = PageIndex()
        self._leftover = b""
        self.page_count = 0
        self.bytes_read = 0
        self.db_checksum: int | None = None
        """For snapshots: the checksum of the database the pages make (after iteration)."""
        self._started = False
        try:
            raw = _read_exact(f, HEADER_SIZE, "header")
            self.header = Header.from_bytes(raw)
            self.header.validate()
        except LTXError as e:
            raise e.located(path=path, level=level) from None
        self._crc = crc64(raw, CRC_INIT)
        self.bytes_read = HEADER_SIZE

    def _err(self, e: LTXError) -> LTXError:
        return e.located(path=self.path, level=self.level, txid=self.header.min_txid)

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        if self._started:
            raise self._err(LTXError("decoder can only be iterated once"))
        self._started = True
        try:
            yield from self._pages()
            self._finish()
        except LTXError as e:
            raise self._err(e) from None
        except (ValueError, OverflowError, struct.error) as e:  # defensive: never leak a foreign type
            raise self._err(PageError(f"malformed file: {e}")) from None

    def verify(self) -> Trailer:
        """Decode every page and check everything; returns the trailer."""
        for _ in self:
            pass
        assert self.trailer is not None
        return self.trailer

    def _pages(self) -> Iterator[tuple[int, bytes]]:
        h = self.header
        f = self._f
        page_size = h.page_size
        commit = h.commit
        lock = h.lock_pgno
        snapshot = h.is_snapshot
        track = snapshot and not h.no_checksum
        max_payload = page_size + page_size // 255 + 16 + 64  # LZ4's worst case for one page, with slack
        acc = 0
        prev = 0
        pos = self.bytes_read  # file offset of buf[0] is pos - at
        crc = self._crc
        pgnos, offsets, sizes = array("Q"), array("Q"), array("Q")
        buf = b""
        mv = memoryview(buf)
        at = 0

        def refill(n: int) -> None:
            # make at least n bytes available at buf[at:]
            nonlocal buf, mv, at
            parts = [buf[at:]]
            have = len(parts[0])
            while have < n:
                more = f.read(max(_CHUNK, n - have))
                if not more:
                    raise TruncatedError(f"file ends inside the page block at offset {pos + have}")
                parts.append(more)
                have += len(more)
            buf = b"".join(parts)
            mv = memoryview(buf)
            at = 0

        def read(n: int) -> bytes:
            nonlocal at
            if len(buf) - at < n:
                refill(n)
            out = buf[at : at + n]
            at += n
            return out

        while True:
            if len(buf) - at < _BLOCK_HEAD:
                try:
                    refill(_BLOCK_HEAD)
                except TruncatedError:
                    refill(PAGE_HEADER_SIZE)  # the terminator needs only 6 bytes
            pgno, flags = _PAGE_HEAD.unpack_from(buf, at)
            if pgno == 0 and flags == 0:
                crc = crc64(mv[at : at + PAGE_HEADER_SIZE], crc)
                at += PAGE_HEADER_SIZE
                pos += PAGE_HEADER_SIZE
                break
            if pgno == 0 or flags & ~PAGE_FLAG_MASK:
                PageHeader(pgno, flags).validate()
            if pgno > commit:
                raise PageOrderError(f"page {pgno} is past commit {commit}")
            if pgno == lock:
                raise PageOrderError(f"page {pgno} is the lock page")
            if snapshot:
                want = prev + 2 if prev + 1 == lock else prev + 1
                if pgno != want:
                    raise PageOrderError(f"snapshot page {pgno} out of sequence, expected {want}")
            elif pgno <= prev:
                raise PageOrderError(f"page {pgno} does not follow page {prev}")
            if flags:
                n = _U32.unpack_from(buf, at + PAGE_HEADER_SIZE)[0]
                if n > max_payload:
                    raise PageError(f"page {pgno}: payload of {n} bytes is larger than LZ4 can need")
                size = _BLOCK_HEAD + n
                if len(buf) - at < size:
                    refill(size)
                page = decompress_block(mv[at + _BLOCK_HEAD : at + size], page_size)
                crc = crc64(page, crc64(mv[at : at + _BLOCK_HEAD], crc))
                at += size
            else:
                raw_hdr = read(PAGE_HEADER_SIZE)
                frame, page = read_frame(read, page_size)
                crc = crc64(page, crc64(raw_hdr, crc))
                size = PAGE_HEADER_SIZE + len(frame)
            pgnos.append(pgno)
            offsets.append(pos)
            sizes.append(size)
            pos += size
            prev = pgno
            if track:
                acc ^= page_checksum(pgno, page)
            yield pgno, page
        if snapshot and commit and (prev + 2 if prev + 1 == lock else prev + 1) <= commit:
            raise PageOrderError(f"snapshot ends at page {prev}, commit is {commit}")
        self._crc = crc
        self._leftover = buf[at:]
        self.bytes_read = pos
        self.page_index = PageIndex.from_columns(
            np.frombuffer(pgnos, dtype=np.uint64),
            np.frombuffer(offsets, dtype=np.uint64),
            np.frombuffer(sizes, dtype=np.uint64),
        )
        self.page_count = len(pgnos)
        if track:
            self.db_checksum = CHECKSUM_FLAG | acc

    def _finish(self) -> None:
        h = self.header
        rest = self._read_rest(_index_bound(self.page_count) + _TAIL)
        if len(rest) < 1 + _TAIL:
            raise TruncatedError("file ends inside the page index or trailer")
        self.bytes_read += len(rest)
        if index_size(memoryview(rest)[-_TAIL:]) != len(rest) - _TAIL:
            raise TruncatedError("page index and trailer are incomplete: the file is truncated or corrupt")
        crc = crc64(memoryview(rest)[:-8], self._crc)
        trailer = Trailer.from_bytes(memoryview(rest)[-TRAILER_SIZE:])
        if CHECKSUM_FLAG | crc != trailer.file_checksum:
            raise FileChecksumMismatchError(trailer.file_checksum, CHECKSUM_FLAG | crc)
        trailer.validate(h)
        index = PageIndex.from_bytes(memoryview(rest)[:-TRAILER_SIZE])
        if index != self.page_index:
            raise PageIndexError("page index disagrees with the page frames")
        if not h.no_checksum:
            if h.commit == 0 and trailer.post_apply_checksum != DELETION_POST_APPLY:
                raise PostApplyChecksumMismatchError(DELETION_POST_APPLY, trailer.post_apply_checksum)
            if self.db_checksum is not None and self.db_checksum != trailer.post_apply_checksum:
                raise PostApplyChecksumMismatchError(trailer.post_apply_checksum, self.db_checksum)
        self.trailer = trailer

    def _read_rest(self, limit: int) -> bytes:
        """What follows the page block, read in chunks of at most :data:`_CHUNK` bytes.

        At most ``limit`` bytes may follow (the largest index the decoded pages can
        have, and the trailer); a file that goes on past that fails as soon as it does,
        so memory never exceeds ``limit`` plus one chunk, whatever the bytes.
        """
        rest = bytearray(self._leftover)
        self._leftover = b""
        while len(rest) <= limit:
            more = self._f.read(min(_CHUNK, limit + 1 - len(rest)))
            if not more:  # a short read is not the end of every stream: read until b""
                return bytes(rest)
            rest += more
        raise PageIndexError(
            f"more than {limit} bytes follow the page block of {self.page_count} page(s): "
            "too many for its page index and trailer (a damaged page header can end the page block early)"
        )


def _index_bound(entries: int) -> int:
    """The most bytes the varints of a page index of ``entries`` entries can take: three
    varints of at most 10 bytes per entry, then the terminator varint."""
    return entries * 3 * _MAX_VARINT + _MAX_VARINT


@attrs.frozen
class IndexedFile:
    """What random access needs from a file: its header, page index and trailer."""

    header: Header
    index: PageIndex
    trailer: Trailer
    size: int


def read_page_index(f: BinaryIO, *, path: str | None = None, level: int | None = None) -> IndexedFile:
    """Read header, page index and trailer of a seekable file without reading its pages.

    Reads three ranges: the header, the 24 bytes before the end, and the
    index. The file checksum is not verified here (it covers every page);
    structural consistency of the index is.
    """
    try:
        header = read_header(f)
    except LTXError as e:
        raise e.located(path=path, level=level) from None
    try:
        size = f.seek(0, os.SEEK_END)
        if size < HEADER_SIZE + PAGE_HEADER_SIZE + 1 + _TAIL:
            raise TruncatedError(f"file is {size} bytes, too short for an LTX file")
        f.seek(size - _TAIL)
        tail = _read_exact(f, _TAIL, "trailer")
        n = index_size(tail)
        start = size - _TAIL - n
        if n < 1 or start < HEADER_SIZE + PAGE_HEADER_SIZE:
            raise PageIndexError(f"page index size {n} does not fit in a {size}-byte file")
        f.seek(start)
        raw = _read_exact(f, n, "page index") + tail[:INDEX_SIZE_FIELD]
        index = PageIndex.from_bytes(raw)
        trailer = Trailer.from_bytes(tail[INDEX_SIZE_FIELD:])
        trailer.validate(header)
        _check_index_layout(index, header, start)
    except LTXError as e:
        raise e.located(path=path, level=level, txid=header.min_txid) from None
    return IndexedFile(header, index, trailer, size)


def _check_index_layout(index: PageIndex, header: Header, block_end: int) -> None:
    """The frames an index describes must tile the page block exactly, within 1..commit."""
    if len(index) == 0:
        if block_end != HEADER_SIZE + PAGE_HEADER_SIZE:
            raise PageIndexError("empty page index but the page block is not empty")
        return
    expect = np.empty(len(index), dtype=np.uint64)
    expect[0] = HEADER_SIZE
    np.cumsum(index.sizes[:-1], out=expect[1:])
    expect[1:] += np.uint64(HEADER_SIZE)
    if not np.array_equal(expect, index.offsets) or np.any(index.sizes <= PAGE_HEADER_SIZE):
        raise PageIndexError("page index entries do not tile the page block")
    if int(index.pgnos[-1]) > header.commit:
        raise PageIndexError(f"page index holds page {int(index.pgnos[-1])}, past commit {header.commit}")
    if int(index.offsets[-1] + index.sizes[-1]) + PAGE_HEADER_SIZE != block_end:
        raise PageIndexError("page index does not end where the page block does")


def read_page(f: BinaryIO, info: IndexedFile, pgno: int, *, path: str | None = None) -> bytes | None:
    """Read and decode page ``pgno`` through the page index; None if the file lacks it."""
    e = info.index.entry(pgno)
    if e is None:
        return None
    try:
        f.seek(e.offset)
        frame = _read_exact(f, e.size, f"frame of page {pgno}")
        ph = PageHeader.from_bytes(frame)
        ph.validate()
        if ph.pgno != pgno:
            raise PageIndexError(f"index points page {pgno} at a frame for page {ph.pgno}")
        return decode_frame_bytes(ph, memoryview(frame)[PAGE_HEADER_SIZE:], info.header.page_size)
    except LTXError as e2:
        raise e2.located(path=path, txid=info.header.min_txid) from None
