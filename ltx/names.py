"""LTX file names, the level that holds snapshots, and the SQLite lock page.

A file name is ``<min>-<max>.ltx`` with both TXIDs as exactly 16 lowercase hex
digits. Parsing accepts only that spelling, so temporary files and foreign
names never pass for LTX files in a listing. Litestream files them by level:
0 (one file per sync), 1..8 (compactions) and :data:`SNAPSHOT_LEVEL`.
"""

from __future__ import annotations

import re

from ltx.errors import FilenameError

SNAPSHOT_LEVEL = 9
"""The level of Litestream's snapshots: every file there is ``1-<TXID>``, a full image."""

PENDING_BYTE = 0x40000000
"""Byte offset of SQLite's lock range; the page holding it is never stored."""

_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.ltx$")


def format_filename(min_txid: int, max_txid: int) -> str:
    """Return the file name for the TXID range ``min_txid..max_txid``."""
    return f"{min_txid:016x}-{max_txid:016x}.ltx"


def parse_filename(name: str) -> tuple[int, int]:
    """Return ``(min_txid, max_txid)`` of a base file name, or raise :class:`FilenameError`."""
    m = _NAME.match(name)
    if m is None:
        raise FilenameError(f"not an LTX file name: {name!r}", path=name)
    return int(m.group(1), 16), int(m.group(2), 16)


def is_filename(name: str) -> bool:
    """Whether ``name`` is a well-formed LTX file name."""
    return _NAME.match(name) is not None


def lock_pgno(page_size: int) -> int:
    """The page number of the lock page for ``page_size`` (never stored in LTX)."""
    return PENDING_BYTE // page_size + 1
