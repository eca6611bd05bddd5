"""Writing WAL frames and whole WAL files, as SQLite would (for tests and tools).

The writer's side of the checksum contract: a frame's checksum continues from the
previous frame's (the header's for the first frame) over frame-header bytes 0..7 and
the page, and the frame carries the header's salts, so :class:`~replica.wal.reader.WALReader`
reads back every frame written here.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

from replica.errors import WALError
from replica.wal.checksum import Buffer, WALChecksum, wal_checksum
from replica.wal.header import WALFrameHeader, WALHeader

__all__ = ["encode_frame", "encode_wal"]

_FRAME_PREFIX: Final = struct.Struct(">2I")
"""Frame-header bytes 0..7 (pgno, commit): the part of the frame header the checksum covers."""


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
    covered = _FRAME_PREFIX.pack(pgno, commit) + raw.tobytes()
    ck = wal_checksum(covered, checksum, big_endian=header.big_endian)
    frame_header = WALFrameHeader(pgno, commit, header.salt1, header.salt2, *ck)
    return frame_header.pack() + covered[_FRAME_PREFIX.size :], ck


def encode_wal(header: WALHeader, frames: Iterable[tuple[int, int, Buffer]]) -> bytes:
    """A whole WAL file: ``header`` then each ``(pgno, commit, page)`` as a valid frame."""
    out = [header.pack()]
    ck = header.checksum
    for pgno, commit, page in frames:
        frame, ck = encode_frame(header, ck, pgno, commit, page)
        out.append(frame)
    return b"".join(out)
