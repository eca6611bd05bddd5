"""Reading the valid frames of a WAL file the way Litestream does.

:class:`WALReader` reads the header once, then yields :class:`WALFrame` values (or
committed :class:`WALTransaction` runs) from a :class:`WALCursor` on, verifying salts
and cumulative checksums a batch of frames at a time with
:func:`~replica.wal.checksum.frame_checksums`. Reading stops, without an error, at the
first short read, salt mismatch or checksum mismatch; :attr:`WALReader.stop` says why
(:class:`WALStop`).

Errors: a header that is not a WAL header (bad magic or version) raises
:class:`~replica.errors.WALMagicError` / :class:`~replica.errors.WALVersionError`; a
header with a valid checksum and an impossible page size
:class:`~replica.errors.WALPageSizeError`; everything about frames only ends the
iteration.
"""

from __future__ import annotations

import enum
from collections.abc import Generator, Iterable, Iterator
from typing import Protocol

import attrs
import numpy as np

from replica.errors import WALError
from replica.wal.checksum import WALChecksum, frame_checksums
from replica.wal.header import WALFrameHeader, WALHeader, check_page_size
from replica.wal_format import WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE

__all__ = [
    "ReadSeekable",
    "WALCursor",
    "WALFrame",
    "WALReader",
    "WALStop",
    "WALTransaction",
    "group_transactions",
]


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
) -> tuple[WALStop | None, np.ndarray]:
    """Validate the ``n_frames`` whole frames at the start of ``buf``, which continue from ``checksum``.

    Returns why the run of valid frames ended inside the batch (``None`` if every frame is
    valid) and the six header fields of each leading valid frame (an ``(n, 6)`` array).

    Frame ``i`` is checked as continuing from the *stored* checksum of frame ``i - 1``
    (``checksum`` for ``i = 0``): the chain only matters up to the first invalid frame,
    and up to there stored and computed agree.
    """
    n_words = header.frame_size // 4
    fields = (
        np.frombuffer(buf, dtype=">u4", count=n_frames * n_words)
        .reshape(n_frames, n_words)[:, :6]
        .astype(np.uint64)
    )
    prev = np.empty((n_frames, 2), dtype=np.uint64)
    prev[0] = checksum
    prev[1:] = fields[:-1, 4:6]
    expect = frame_checksums(buf, n_frames, header.page_size, prev, big_endian=header.big_endian)

    salt_ok = (fields[:, 2] == np.uint64(header.salt1)) & (fields[:, 3] == np.uint64(header.salt2))
    ok = salt_ok & (expect[:, 0] == fields[:, 4]) & (expect[:, 1] == fields[:, 5])
    if bool(ok.all()):
        return None, fields
    n_valid = int(np.argmin(ok))
    reason = WALStop.CHECKSUM_MISMATCH if bool(salt_ok[n_valid]) else WALStop.SALT_MISMATCH
    return reason, fields[:n_valid]


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
        check_page_size(header.page_size)
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

    def _batches(self) -> Generator[tuple[int, bytes, np.ndarray, WALStop | None], None, None]:
        """Read and verify from :attr:`cursor` on: (offset of the batch, its bytes, the header
        fields of its leading valid frames as an ``(n, 6)`` array, why it ended early).

        The caller advances the cursor; :attr:`stop` is set when the run ends.
        """
        header = self._header
        if header is None or not self.usable:
            return
        self._stop = None
        frame_size = header.frame_size
        per_batch = max(1, self._batch_bytes // frame_size)
        while True:
            base = self._offset
            self._f.seek(base)
            buf = _read_full(self._f, per_batch * frame_size)
            n_frames = len(buf) // frame_size
            if n_frames == 0:
                self._stop = WALStop.END
                return
            reason, fields = _verify_batch(buf, n_frames, header, self._checksum)
            yield base, buf, fields, reason
            if reason is not None:
                self._stop = reason
                return
            if n_frames < per_batch:
                self._stop = WALStop.END
                return

    def frames(self) -> Generator[WALFrame, None, None]:
        """Yield the valid frames from :attr:`cursor` on, in file order (see the class docstring)."""
        header = self._header
        if header is None:
            return
        frame_size = header.frame_size
        salt1, salt2 = header.salts
        for base, buf, fields, _reason in self._batches():
            for i, (pgno, commit, _s1, _s2, ck1, ck2) in enumerate(fields.tolist()):
                start = i * frame_size
                frame = WALFrame(
                    WALFrameHeader(pgno, commit, salt1, salt2, ck1, ck2),
                    base + start,
                    buf[start + WAL_FRAME_HEADER_SIZE : start + frame_size],
                )
                self._offset = base + start + frame_size
                self._checksum = (ck1, ck2)
                yield frame

    def frame_headers(self) -> Generator[tuple[int, np.ndarray], None, None]:
        """Like :meth:`frames`, a batch at a time and without the pages: the offset of the
        batch's first valid frame and the ``(n, 6)`` ``uint64`` array of the valid frames'
        header fields (pgno, commit, salt1, salt2, checksum1, checksum2). :attr:`cursor`
        is past a batch once it is yielded."""
        header = self._header
        if header is None:
            return
        for base, _buf, fields, _reason in self._batches():
            if len(fields):
                self._offset = base + len(fields) * header.frame_size
                self._checksum = (int(fields[-1, 4]), int(fields[-1, 5]))
                yield base, fields

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
