"""Streaming LTX encoder: header, pages, then index and trailer on close.

Bytes of an LTX file are produced here and nowhere else. The encoder writes
to any binary file object as it goes; it keeps only the page index in memory.
"""

from __future__ import annotations

from array import array
from typing import BinaryIO

from ltx.checksum import CRC_INIT, crc64, page_checksum
from ltx.errors import EncoderError, LTXError, PageOrderError, PostApplyChecksumMismatchError
from ltx.header import Header
from ltx.index import PageIndex
from ltx.layout import HEADER_SIZE
from ltx.page import ZERO_PAGE_HEADER, compress_block, compress_frame, pack_block_head, pack_frame_head
from ltx.pos import CHECKSUM_FLAG
from ltx.trailer import DELETION_POST_APPLY, Trailer


class Encoder:
    """Write one LTX file to ``f``.

    The header is validated and written at construction. Pages must then be
    given in ascending order with :meth:`write_page`; a snapshot (``min_txid
    == 1``) must give every page ``1..commit`` except the lock page. :meth:`close`
    writes the page index and trailer and returns the trailer.

    The post-apply checksum is supplied to :meth:`close` or, for a snapshot
    with checksums, tracked from the pages (when both, they must agree).
    ``legacy_frames`` writes pages as LZ4 frames with page flag 0, the
    encoding Litestream 0.5.0 to 0.5.15 wrote and read.
    """

    def __init__(self, f: BinaryIO, header: Header, *, legacy_frames: bool = False) -> None:
        try:
            header.validate()
        except LTXError as e:
            raise e.located(txid=header.min_txid) from None
        self._f = f
        self.header = header
        self._legacy = legacy_frames
        raw = header.to_bytes()
        f.write(raw)
        self._crc = crc64(raw, CRC_INIT)
        self._n = HEADER_SIZE
        self._pgnos, self._offsets, self._sizes = array("Q"), array("Q"), array("Q")
        self._prev = 0
        self._lock = header.lock_pgno
        self._track = header.is_snapshot and not header.no_checksum
        self._db_checksum = 0
        self._closed = False
        self.trailer: Trailer | None = None

    @property
    def bytes_written(self) -> int:
        return self._n

    @property
    def page_count(self) -> int:
        return len(self._pgnos)

    def _expected_next(self) -> int:
        nxt = self._prev + 1
        return nxt + 1 if nxt == self._lock else nxt

    def write_page(self, pgno: int, data: bytes | bytearray | memoryview) -> None:
        """Encode one page; raises :class:`PageOrderError` or :class:`EncoderError` on misuse."""
        h = self.header
        if self._closed:
            raise EncoderError("encoder is closed", txid=h.min_txid)
        if len(data) != h.page_size:
            raise EncoderError(
                f"page {pgno} is {len(data)} bytes, page size is {h.page_size}", txid=h.min_txid
            )
        if pgno < 1 or pgno > h.commit:
            raise PageOrderError(f"page {pgno} is outside 1..commit ({h.commit})", txid=h.min_txid)
        if pgno == self._lock:
            raise PageOrderError(f"page {pgno} is the lock page and cannot be stored", txid=h.min_txid)
        if h.is_snapshot:
            if pgno != self._expected_next():
                raise PageOrderError(
                    f"snapshot page {pgno} out of sequence, expected {self._expected_next()}", txid=h.min_txid
                )
        elif pgno <= self._prev:
            raise PageOrderError(f"page {pgno} does not follow page {self._prev}", txid=h.min_txid)
        if self._legacy:
            head = pack_frame_head(pgno)
            payload = compress_frame(data)
        else:
            payload = compress_block(data)
            head = pack_block_head(pgno, len(payload))
        self._crc = crc64(data, crc64(head, self._crc))
        self._f.write(head)
        self._f.write(payload)
        size = len(head) + len(payload)
        self._pgnos.append(pgno)
        self._offsets.append(self._n)
        self._sizes.append(size)
        self._n += size
        self._prev = pgno
        if self._track:
            self._db_checksum ^= page_checksum(pgno, data)

    def close(self, post_apply_checksum: int | None = None) -> Trailer:
        """Finish the file and return its trailer. Does not close ``f``."""
        h = self.header
        if self._closed:
            raise EncoderError("encoder is already closed", txid=h.min_txid)
        if h.is_snapshot and h.commit and self._expected_next() <= h.commit:
            raise PageOrderError(f"snapshot ends at page {self._prev}, commit is {h.commit}", txid=h.min_txid)
        post = self._post_apply(post_apply_checksum)
        index = PageIndex.from_columns(self._pgnos, self._offsets, self._sizes)
        tail = ZERO_PAGE_HEADER + index.to_bytes() + post.to_bytes(8, "big")
        crc = crc64(tail, self._crc)
        trailer = Trailer(post, CHECKSUM_FLAG | crc)
        trailer.validate(h)
        self._f.write(tail)
        self._f.write(trailer.file_checksum.to_bytes(8, "big"))
        self._n += len(tail) + 8
        self._closed = True
        self.trailer = trailer
        return trailer

    def _post_apply(self, supplied: int | None) -> int:
        h = self.header
        if h.no_checksum:
            if h.commit == 0:
                raise EncoderError("a NoChecksum file cannot have commit 0", txid=h.min_txid)
            if supplied:
                raise EncoderError("a NoChecksum file cannot carry a post-apply checksum", txid=h.min_txid)
            return 0
        if h.commit == 0:
            if supplied not in (None, DELETION_POST_APPLY):
                raise EncoderError(
                    "a file with commit 0 must have post-apply checksum 1<<63", txid=h.min_txid
                )
            return DELETION_POST_APPLY
        if self._track:
            tracked = CHECKSUM_FLAG | self._db_checksum
            if supplied is not None and supplied != tracked:
                raise PostApplyChecksumMismatchError(supplied, tracked, txid=h.min_txid)
            return tracked
        if supplied is None:
            raise EncoderError("an incremental file needs its post-apply checksum", txid=h.min_txid)
        return supplied
