"""SQLite WAL files: read the way Litestream does, and written for tests and tools.

Modules, one concept each:

* :mod:`replica.wal_format` (outside this package, pure): the magic numbers, version
  and fixed sizes.
* :mod:`replica.wal.checksum`: SQLite's WAL checksum, evaluated with numpy as a linear
  recurrence (:func:`wal_checksum`), and the plain loop it is tested against
  (:func:`wal_checksum_py`).
* :mod:`replica.wal.header`: :class:`WALHeader` and :class:`WALFrameHeader`, the format
  as it is laid out, parsing and packing.
* :mod:`replica.wal.writer`: :func:`encode_frame` and :func:`encode_wal`.
* :mod:`replica.wal.reader`: :class:`WALReader`, which yields the valid frames
  (:class:`WALFrame`) or committed transactions (:class:`WALTransaction`) from a
  :class:`WALCursor` and says why it stopped (:class:`WALStop`).

Importing this package loads none of them; each name comes from its module on first
use, so ``from replica.wal import WAL_HEADER_SIZE`` does not load numpy.
"""

from typing import TYPE_CHECKING

from ltx.lazy import lazy_exports

if TYPE_CHECKING:
    from replica.wal.checksum import Buffer, WALChecksum, wal_checksum, wal_checksum_py
    from replica.wal.header import WALFrameHeader, WALHeader
    from replica.wal.reader import (
        ReadSeekable,
        WALCursor,
        WALFrame,
        WALReader,
        WALStop,
        WALTransaction,
        group_transactions,
    )
    from replica.wal.writer import encode_frame, encode_wal
    from replica.wal_format import (
        WAL_FRAME_HEADER_SIZE,
        WAL_HEADER_SIZE,
        WAL_MAGIC_BE,
        WAL_MAGIC_LE,
        WAL_VERSION,
    )

_HOMES = {
    "Buffer": "replica.wal.checksum",
    "ReadSeekable": "replica.wal.reader",
    "WALChecksum": "replica.wal.checksum",
    "WALCursor": "replica.wal.reader",
    "WALFrame": "replica.wal.reader",
    "WALFrameHeader": "replica.wal.header",
    "WALHeader": "replica.wal.header",
    "WALReader": "replica.wal.reader",
    "WALStop": "replica.wal.reader",
    "WALTransaction": "replica.wal.reader",
    "WAL_FRAME_HEADER_SIZE": "replica.wal_format",
    "WAL_HEADER_SIZE": "replica.wal_format",
    "WAL_MAGIC_BE": "replica.wal_format",
    "WAL_MAGIC_LE": "replica.wal_format",
    "WAL_VERSION": "replica.wal_format",
    "encode_frame": "replica.wal.writer",
    "encode_wal": "replica.wal.writer",
    "group_transactions": "replica.wal.reader",
    "wal_checksum": "replica.wal.checksum",
    "wal_checksum_py": "replica.wal.checksum",
}


__getattr__ = lazy_exports(__name__, _HOMES, globals())


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
