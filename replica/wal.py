"""Reading SQLite WAL files the way Litestream does, and writing them for tests and tools.

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
* A frame is valid iff its salts equal the header's and its checksum matches. Reading
  stops, without an error, at the first short read, salt mismatch or checksum mismatch.
  A frame with ``commit != 0`` ends a transaction; ``commit`` is then the database size
  in pages.

The WAL checksum over 8-byte units ``(w0, w1)`` is ``s0 += w0 + s1; s1 += w1 + s0`` modulo
2**32. It is linear: ``(s0', s1') = M (s0, s1) + (w0, w0 + w1)`` with ``M = [[1, 1], [1, 2]]``,
so over ``n`` units the result is ``M**n s + sum_k M**(n-1-k) v_k``. This module precomputes
the powers of ``M`` once and evaluates the sum as one integer matrix product per batch of
frames (``uint64`` arithmetic wraps modulo 2**64, which keeps the value modulo 2**32); no
Python loop runs per byte, per unit or per page. :func:`wal_checksum_py` is the plain loop,
kept as the reference the fast path is tested against.

Errors: a header that is not a WAL header (bad magic or version) raises
:class:`~replica.errors.WALMagicError` / :class:`~replica.errors.WALVersionError`; everything
about frames only ends the iteration, and :attr:`WALReader.stop` says why.
"""

from __future__ import annotations

import enum
import functools
import struct
from collections.abc import Generator, Iterable, Iterator
from typing import ClassVar, Final, Literal, Protocol

import attrs
import numpy as np
import numpy.typing as npt

from ltx.header import MAX_PAGE_SIZE as _MAX_PAGE_SIZE
from ltx.header import MIN_PAGE_SIZE as _MIN_PAGE_SIZE
from ltx.header import is_valid_page_size
from replica.errors import WALError, WALMagicError, WALPageSizeError, WALVersionError
from replica.wal_format import (
    WAL_FRAME_HEADER_SIZE,
    WAL_HEADER_SIZE,
    WAL_MAGIC_BE,
    WAL_MAGIC_LE,
    WAL_VERSION,
)

__all__ = [
    "WAL_FRAME_HEADER_SIZE",
    "WAL_HEADER_SIZE",
    "WAL_MAGIC_BE",
    "WAL_MAGIC_LE",
    "WAL_VERSION",
    "Buffer",
    "ReadSeekable",
    "WALChecksum",
    "WALCursor",
    "WALFrame",
    "WALFrameHeader",
    "WALHeader",
    "WALReader",
    "WALStop",
    "WALTransaction",
    "encode_frame",
    "encode_wal",
    "group_transactions",
    "wal_checksum",
    "wal_checksum_py",
]

MIN_PAGE_SIZE: Final = _MIN_PAGE_SIZE
MAX_PAGE_SIZE: Final = _MAX_PAGE_SIZE

Buffer = bytes | bytearray | memoryview
"""Anything whose raw bytes we can read (a memoryview is read as its underlying bytes)."""

WALChecksum = tuple[int, int]
"""A WAL checksum state ``(s0, s1)``, each a ``u32``."""

_MASK32: Final = 0xFFFFFFFF
_U64_MASK32: Final = np.uint64(_MASK32)
_HEADER: Final = struct.Struct(">8I")
_FRAME_HEADER: Final = struct.Struct(">6I")
_FRAME_PREFIX: Final = struct.Struct(">2I")

_MAX_UNITS: Final = 1 + MAX_PAGE_SIZE // 8
"""Units covered by one frame checksum at the largest page size (8-byte prefix + page)."""
_CHUNK_UNITS: Final = 8192
""":func:`wal_checksum` processes arbitrary input in chunks of this many units."""
_CHUNKS_PER_MATMUL: Final = 32
"""Chunks per matrix product in :func:`wal_checksum` (bounds the ``uint64`` temporary at 2 MiB)."""


# --------------------------------------------------------------------------------------------
# The checksum


def wal_checksum_py(data: Buffer, checksum: WALChecksum = (0, 0), *, big_endian: bool = False) -> WALChecksum:
    """Reference implementation: SQLite's WAL checksum of ``data``, continuing from ``checksum``.

    ``len(data)`` must be a multiple of 8. Slow (one Python iteration per 8 bytes); it exists
    to cross-check :func:`wal_checksum` and must not be used on hot paths.
    """
    raw = memoryview(data).cast("B")
    if raw.nbytes % 8:
        raise WALError(f"wal checksum input must be a multiple of 8 bytes, got {raw.nbytes}")
    s0, s1 = checksum
    for w0, w1 in struct.iter_unpack(">II" if big_endian else "<II", raw):
        s0 = (s0 + w0 + s1) & _MASK32
        s1 = (s1 + w1 + s0) & _MASK32
    return s0, s1


def _mat_mul(x: tuple[int, int, int, int], y: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Product of two 2x2 matrices ``(a, b, c, d) = [[a, b], [c, d]]`` modulo 2**32."""
    a, b, c, d = x
    e, f, g, h = y
    return (
        (a * e + b * g) & _MASK32,
        (a * f + b * h) & _MASK32,
        (c * e + d * g) & _MASK32,
        (c * f + d * h) & _MASK32,
    )


@functools.lru_cache(maxsize=64)
def _m_pow(n: int) -> tuple[int, int, int, int]:
    """``M**n`` modulo 2**32 as ``(a, b, c, d)``, by repeated squaring."""
    result = (1, 0, 0, 1)
    base = (1, 1, 1, 2)
    while n:
        if n & 1:
            result = _mat_mul(result, base)
        base = _mat_mul(base, base)
        n >>= 1
    return result


@functools.cache
def _coef_table() -> npt.NDArray[np.uint64]:
    """Coefficients of every unit position, shape ``(_MAX_UNITS, 2, 2)``, in *descending* power.

    Row ``i`` belongs to the power ``j = _MAX_UNITS - 1 - i`` of ``M = [[1, 1], [1, 2]]``;
    writing ``M**j = [[a, b], [b, d]]`` (powers of a symmetric matrix are symmetric), a unit
    ``(w0, w1)`` multiplied by ``M**j`` contributes ``w0 * (a + b) + w1 * b`` to ``s0`` and
    ``w0 * (b + d) + w1 * d`` to ``s1``; so row ``i`` is ``[[a + b, b + d], [b, d]]``.
    For an input of ``n`` units, unit ``k`` takes power ``n - 1 - k``: the coefficients are
    the contiguous tail ``table[_MAX_UNITS - n:]``, which reshapes to ``(2n, 2)`` so that
    ``words @ coef`` is the whole sum.
    """
    rows: list[tuple[int, int, int, int]] = []
    a, b, d = 1, 0, 1  # M**0
    for _ in range(_MAX_UNITS):
        rows.append(((a + b) & _MASK32, (b + d) & _MASK32, b, d))
        # M**(j+1) = M**j @ M = [[a + b, a + 2b], [b + d, b + 2d]], and a + 2b == b + d.
        a, b, d = (a + b) & _MASK32, (b + d) & _MASK32, (b + 2 * d) & _MASK32
    rows.reverse()
    table = np.array(rows, dtype=np.uint64).reshape(_MAX_UNITS, 2, 2)
    table.flags.writeable = False
    return table


def _coef(n_units: int) -> npt.NDArray[np.uint64]:
    """Coefficient matrix ``(2 * n_units, 2)`` for an input of ``n_units`` units (a view, no copy)."""
    if not 0 < n_units <= _MAX_UNITS:
        raise AssertionError(f"unit count out of range: {n_units}")
    return _coef_table()[_MAX_UNITS - n_units :].reshape(2 * n_units, 2)


def _advance(checksum: WALChecksum, n_units: int, c0: int, c1: int) -> WALChecksum:
    """``M**n_units @ checksum + (c0, c1)`` modulo 2**32."""
    a, b, c, d = _m_pow(n_units)
    s0, s1 = checksum
    return (a * s0 + b * s1 + c0) & _MASK32, (c * s0 + d * s1 + c1) & _MASK32


def wal_checksum(data: Buffer, checksum: WALChecksum = (0, 0), *, big_endian: bool = False) -> WALChecksum:
    """SQLite's WAL checksum of ``data``, continuing from ``checksum``; vectorised with numpy.

    ``len(data)`` must be a multiple of 8. ``big_endian`` selects how 32-bit words are read
    (the WAL magic's choice). Equal to :func:`wal_checksum_py` for every input.
    """
    raw = memoryview(data).cast("B")
    if raw.nbytes % 8:
        raise WALError(f"wal checksum input must be a multiple of 8 bytes, got {raw.nbytes}")
    words = np.frombuffer(raw, dtype=">u4" if big_endian else "<u4")
    n_units = raw.nbytes // 8
    state = checksum
    full, rest = divmod(n_units, _CHUNK_UNITS)
    if full:
        coef = _coef(_CHUNK_UNITS)
        chunks = words[: full * 2 * _CHUNK_UNITS].reshape(full, 2 * _CHUNK_UNITS)
        for start in range(0, full, _CHUNKS_PER_MATMUL):
            part = chunks[start : start + _CHUNKS_PER_MATMUL].astype(np.uint64) @ coef
            for c0, c1 in part.tolist():
                state = _advance(state, _CHUNK_UNITS, c0, c1)
    if rest:
        c0, c1 = (words[full * 2 * _CHUNK_UNITS :].astype(np.uint64) @ _coef(rest)).tolist()
        state = _advance(state, rest, c0, c1)
    return state


@functools.lru_cache(maxsize=16)
def _frame_coef(page_size: int) -> npt.NDArray[np.uint64]:
    """Coefficients ``(6 + page_size // 4, 2)`` for the words of one whole frame as stored.

    Words 0..1 (frame-header bytes 0..7) are the first checksum unit, words 2..5 (salts and
    checksum) are not covered (coefficient 0), words 6.. are the page. So a frame's
    contribution to the checksum is ``frame_words @ _frame_coef(page_size)``, with no copy
    of the page out of the frame.
    """
    n_units = 1 + page_size // 8
    base = _coef(n_units)
    out = np.zeros((6 + page_size // 4, 2), dtype=np.uint64)
    out[0:2] = base[0:2]
    out[6:] = base[2:]
    out.flags.writeable = False
    return out


# --------------------------------------------------------------------------------------------
# Headers


def _check_page_size(page_size: int) -> None:
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
        _check_page_size(page_size)
        magic = WAL_MAGIC_BE if big_endian else WAL_MAGIC_LE
        prefix = _HEADER.pack(magic, WAL_VERSION, page_size, checkpoint_seq, salt1, salt2, 0, 0)[:24]
        ck1, ck2 = wal_checksum(prefix, big_endian=big_endian)
        return cls(magic, WAL_VERSION, page_size, checkpoint_seq, salt1, salt2, ck1, ck2)

    def pack(self) -> bytes:
        """The 32 bytes as stored."""
        return _HEADER.pack(*attrs.astuple(self))

    def computed_checksum(self) -> WALChecksum:
        """The checksum of header bytes 0..23 from ``(0, 0)``."""
        return wal_checksum(self.pack()[:24], big_endian=self.big_endian)

    def checksum_valid(self) -> bool:
        """True iff the stored checksum matches; otherwise SQLite treats the WAL as empty."""
        return self.computed_checksum() == self.checksum


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
        return _FRAME_HEADER.pack(*attrs.astuple(self))


# --------------------------------------------------------------------------------------------
# Writing (tests, tools; it also states the checksum contract from the writer's side)


def encode_frame(
    header: WALHeader, checksum: WALChecksum, pgno: int, commit: int, page: Buffer
) -> tuple[bytes, WALChecksum]:
    """Encode one frame that follows a frame (or header) whose cumulative checksum is ``checksum``.

    Returns the ``24 + page_size`` bytes and the frame's checksum, which the next frame
    continues from. ``commit`` is the database size in pages for a commit frame, else 0.
    """
    raw = memoryview(page).cast("B")
    if raw.nbytes != header.page_size:
        raise WALError(f"page is {raw.nbytes} bytes, wal page size is {header.page_size}")
    prefix = _FRAME_PREFIX.pack(pgno, commit)
    covered = prefix + raw.tobytes()
    ck = wal_checksum(covered, checksum, big_endian=header.big_endian)
    return _FRAME_HEADER.pack(pgno, commit, header.salt1, header.salt2, *ck) + covered[8:], ck


def encode_wal(header: WALHeader, frames: Iterable[tuple[int, int, Buffer]]) -> bytes:
    """A whole WAL file: ``header`` then each ``(pgno, commit, page)`` as a valid frame."""
    out = [header.pack()]
    ck = header.checksum
    for pgno, commit, page in frames:
        frame, ck = encode_frame(header, ck, pgno, commit, page)
        out.append(frame)
    return b"".join(out)


# --------------------------------------------------------------------------------------------
# Reading


class ReadSeekable(Protocol):
    """What :class:`WALReader` needs from a file: a binary ``read`` and ``seek``."""

    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


class WALStop(enum.Enum):
    """Why a :class:`WALReader` stopped yielding frames."""

    END = "end of file or a partial frame"
    SALT_MISMATCH = "frame salts differ from the header's"
    CHECKSUM_MISMATCH = "frame checksum mismatch"
    NO_HEADER = "file shorter than the 32-byte wal header"
    HEADER_CHECKSUM = "wal header checksum mismatch"
    RESTARTED = "wal header salts differ from the cursor's (the wal was restarted)"

    @property
    def is_header(self) -> bool:
        """True for stops decided by the header: this reader will never yield a frame."""
        return self in (WALStop.NO_HEADER, WALStop.HEADER_CHECKSUM, WALStop.RESTARTED)


@attrs.frozen(slots=True)
class WALCursor:
    """A point to (re)start reading a WAL: just after a valid frame, or just after the header.

    ``offset`` is the file offset of the next frame, ``checksum1``/``checksum2`` the
    cumulative checksum there, and ``salt1``/``salt2`` identify the WAL generation it
    belongs to (SQLite picks new salts whenever it restarts the WAL from the top).
    """

    offset: int
    checksum1: int
    checksum2: int
    salt1: int
    salt2: int

    @property
    def checksum(self) -> WALChecksum:
        return self.checksum1, self.checksum2

    @classmethod
    def start(cls, header: WALHeader) -> WALCursor:
        """The cursor before the first frame of ``header``'s WAL."""
        return cls(WAL_HEADER_SIZE, header.checksum1, header.checksum2, header.salt1, header.salt2)


@attrs.frozen(slots=True)
class WALFrame:
    """One valid frame: its header, its file offset and its page."""

    header: WALFrameHeader
    offset: int
    data: bytes

    @property
    def end_offset(self) -> int:
        """File offset just past this frame."""
        return self.offset + WAL_FRAME_HEADER_SIZE + len(self.data)

    def cursor_after(self) -> WALCursor:
        """The cursor to resume reading just after this frame."""
        h = self.header
        return WALCursor(self.end_offset, h.checksum1, h.checksum2, h.salt1, h.salt2)


def _frames_nonempty_ending_in_commit(
    _inst: WALTransaction, _attr: attrs.Attribute[tuple[WALFrame, ...]], frames: tuple[WALFrame, ...]
) -> None:
    if not frames or not frames[-1].header.is_commit:
        raise WALError("a wal transaction must be a non-empty run of frames ending in a commit frame")


@attrs.frozen(slots=True)
class WALTransaction:
    """A committed transaction: consecutive frames, the last (and only the last) a commit frame."""

    frames: tuple[WALFrame, ...] = attrs.field(validator=_frames_nonempty_ending_in_commit)

    @property
    def commit(self) -> int:
        """Database size in pages after this transaction."""
        return self.frames[-1].header.commit

    @property
    def offset(self) -> int:
        """File offset of the first frame."""
        return self.frames[0].offset

    @property
    def end_offset(self) -> int:
        """File offset just past the commit frame."""
        return self.frames[-1].end_offset

    def cursor_after(self) -> WALCursor:
        """The cursor to resume reading just after this transaction."""
        return self.frames[-1].cursor_after()


def group_transactions(frames: Iterable[WALFrame]) -> Iterator[WALTransaction]:
    """Group consecutive frames into committed transactions; a trailing uncommitted run is dropped."""
    pending: list[WALFrame] = []
    for frame in frames:
        pending.append(frame)
        if frame.header.is_commit:
            yield WALTransaction(tuple(pending))
            pending = []


def _read_full(f: ReadSeekable, n: int) -> bytes:
    """Read up to ``n`` bytes, fewer only at end of file."""
    data = f.read(n)
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = f.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _verify_batch(
    buf: bytes, n_frames: int, header: WALHeader, checksum: WALChecksum
) -> tuple[WALStop | None, list[list[int]]]:
    """Validate the ``n_frames`` whole frames at the start of ``buf``, which continue from ``checksum``.

    Returns why the run of valid frames ended inside the batch (``None`` if every frame is
    valid) and the six header fields of each leading valid frame.

    Frame ``i``'s expected checksum is ``M**u @ prev_i + contrib_i`` where ``u`` is the units
    per frame, ``contrib_i`` comes from one matrix product over all frames, and ``prev_i`` is
    the *stored* checksum of frame ``i - 1`` (``checksum`` for ``i = 0``): the chain only
    matters up to the first invalid frame, and up to there stored and computed agree.
    """
    page_size = header.page_size
    n_words = (WAL_FRAME_HEADER_SIZE + page_size) // 4
    count = n_frames * n_words
    fields_be = np.frombuffer(buf, dtype=">u4", count=count).reshape(n_frames, n_words)
    words = (
        fields_be
        if header.big_endian
        else np.frombuffer(buf, dtype="<u4", count=count).reshape(n_frames, n_words)
    )
    fields = fields_be[:, :6].astype(np.uint64)
    contrib = words.astype(np.uint64) @ _frame_coef(page_size)

    prev = np.empty((n_frames, 2), dtype=np.uint64)
    prev[0] = checksum
    prev[1:] = fields[:-1, 4:6]
    a, b, c, d = (np.uint64(x) for x in _m_pow(1 + page_size // 8))
    expect0 = (a * prev[:, 0] + b * prev[:, 1] + contrib[:, 0]) & _U64_MASK32
    expect1 = (c * prev[:, 0] + d * prev[:, 1] + contrib[:, 1]) & _U64_MASK32

    salt_ok = (fields[:, 2] == np.uint64(header.salt1)) & (fields[:, 3] == np.uint64(header.salt2))
    ok = salt_ok & (expect0 == fields[:, 4]) & (expect1 == fields[:, 5])
    if bool(ok.all()):
        return None, fields.tolist()
    n_valid = int(np.argmin(ok))
    reason = WALStop.CHECKSUM_MISMATCH if bool(salt_ok[n_valid]) else WALStop.SALT_MISMATCH
    return reason, fields[:n_valid].tolist()


class WALReader:
    """Reads the valid frames of a WAL file, verifying salts and checksums in batches.

    Construction reads the header (at offset 0) and raises :class:`WALMagicError` /
    :class:`WALVersionError` if it is not a WAL header, :class:`WALPageSizeError` if a
    header with a valid checksum has an impossible page size, and :class:`WALError` if
    ``cursor`` is not on a frame boundary. A file shorter than the header, a header whose
    checksum does not match, or a ``cursor`` from another WAL generation (different salts)
    are not errors: the reader then yields no frames and :attr:`stop` says why.

    :meth:`frames` yields valid frames from :attr:`cursor` on, advancing :attr:`cursor` past
    each frame as it is yielded, and stops at the first short read, salt mismatch or
    checksum mismatch. Calling it again continues from :attr:`cursor`, re-reading the file,
    so a live WAL can be tailed; so can a new reader given a saved :attr:`cursor`, without
    rereading earlier frames. The header is read once: to notice that SQLite restarted the
    WAL (new salts), make a new reader with the saved cursor.

    Only frames up to a commit are stable in a live WAL (SQLite may rewrite uncommitted
    frames in place), so replication should resume from transaction boundaries:
    :meth:`transactions` leaves :attr:`cursor` just after the last commit it returned.
    """

    def __init__(
        self, f: ReadSeekable, cursor: WALCursor | None = None, *, batch_bytes: int = 1 << 20
    ) -> None:
        self._f = f
        self._batch_bytes = batch_bytes
        self._header: WALHeader | None = None
        self._stop: WALStop | None = None
        self._offset = 0
        self._checksum: WALChecksum = (0, 0)

        f.seek(0)
        raw = _read_full(f, WAL_HEADER_SIZE)
        if len(raw) < WAL_HEADER_SIZE:
            self._stop = WALStop.NO_HEADER
            return
        header = WALHeader.parse(raw)
        self._header = header
        if not header.checksum_valid():
            self._stop = WALStop.HEADER_CHECKSUM
            return
        _check_page_size(header.page_size)
        if cursor is None:
            cursor = WALCursor.start(header)
        elif (cursor.salt1, cursor.salt2) != header.salts:
            self._stop = WALStop.RESTARTED
            return
        elif cursor.offset < WAL_HEADER_SIZE or (cursor.offset - WAL_HEADER_SIZE) % header.frame_size:
            raise WALError(f"wal cursor offset {cursor.offset} is not on a frame boundary")
        self._offset = cursor.offset
        self._checksum = cursor.checksum

    @property
    def header(self) -> WALHeader | None:
        """The header as read at construction; ``None`` if the file was shorter than 32 bytes."""
        return self._header

    @property
    def usable(self) -> bool:
        """False when the header rules out reading any frame (see :attr:`WALStop.is_header`)."""
        return not (self._stop is not None and self._stop.is_header)

    @property
    def cursor(self) -> WALCursor | None:
        """Where the next :meth:`frames` call starts; ``None`` when not :attr:`usable`."""
        if not self.usable or self._header is None:
            return None
        return WALCursor(self._offset, *self._checksum, *self._header.salts)

    @property
    def last_frame_offset(self) -> int:
        """Offset of the frame just before :attr:`cursor` (Litestream's ``Offset()``), or 0 if none."""
        if self._header is None or self._offset <= WAL_HEADER_SIZE:
            return 0
        return self._offset - self._header.frame_size

    @property
    def stop(self) -> WALStop | None:
        """Why the last :meth:`frames` run ended (``None`` before one ended)."""
        return self._stop

    def frames(self) -> Generator[WALFrame, None, None]:
        """Yield the valid frames from :attr:`cursor` on, in file order (see the class docstring)."""
        header = self._header
        if header is None or not self.usable:
            return
        self._stop = None
        frame_size = header.frame_size
        per_batch = max(1, self._batch_bytes // frame_size)
        salt1, salt2 = header.salts
        while True:
            base = self._offset
            self._f.seek(base)
            buf = _read_full(self._f, per_batch * frame_size)
            n_frames = len(buf) // frame_size
            if n_frames == 0:
                self._stop = WALStop.END
                return
            reason, fields = _verify_batch(buf, n_frames, header, self._checksum)
            for i, (pgno, commit, _s1, _s2, ck1, ck2) in enumerate(fields):
                start = i * frame_size
                frame = WALFrame(
                    WALFrameHeader(pgno, commit, salt1, salt2, ck1, ck2),
                    base + start,
                    buf[start + WAL_FRAME_HEADER_SIZE : start + frame_size],
                )
                self._offset = base + start + frame_size
                self._checksum = (ck1, ck2)
                yield frame
            if reason is not None:
                self._stop = reason
                return
            if n_frames < per_batch:
                self._stop = WALStop.END
                return

    __iter__ = frames

    def transactions(self) -> Generator[WALTransaction, None, None]:
        """Yield committed transactions from :attr:`cursor` on (a trailing uncommitted run is not).

        Whenever a transaction is yielded, and after the iteration ends, :attr:`cursor` is
        just past the last commit frame returned (or where it was, if none), so the next
        call starts with the frames that were not yet committed.
        """
        committed = (self._offset, self._checksum)
        try:
            for txn in group_transactions(self.frames()):
                last = txn.frames[-1]
                committed = (last.end_offset, last.header.checksum)
                yield txn
        finally:
            self._offset, self._checksum = committed
