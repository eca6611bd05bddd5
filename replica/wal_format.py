"""SQLite's WAL file format as constants: the magic numbers, version and fixed sizes.

The one home of these facts; :mod:`replica.wal` (the reader and checksum, with numpy) and the pure
planners import them from here, so a planner that needs a size loads no codec.
"""

from __future__ import annotations

from typing import Final

WAL_MAGIC_LE: Final = 0x377F0682
"""Header magic: checksum words are read little-endian."""
WAL_MAGIC_BE: Final = 0x377F0683
"""Header magic: checksum words are read big-endian."""
WAL_VERSION: Final = 3007000
"""The only WAL format version SQLite has ever written."""
WAL_HEADER_SIZE: Final = 32
"""Bytes of the WAL header, before the first frame."""
WAL_FRAME_HEADER_SIZE: Final = 24
"""Bytes of each frame's header, before its page."""
