"""A database's local L0 files in its meta directory: listing, cleaning, where the last sync ended.

The meta directory (``.<name>-litestream`` beside the database by default) holds the L0
files written by :mod:`replica.l0` under ``ltx/0/``, named ``<min>-<max>.ltx`` like
the replica's, until they are uploaded and compacted. Other tasks (uploads, compaction,
the identity record) stage their own temporary files there as well, so each cleaner
removes only names it owns.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from ltx.decoder import Decoder
from ltx.names import is_filename, parse_filename
from replica.syncplan import LastSync


def l0_dir(meta_path: str) -> str:
    """The folder of the local L0 files: ``<meta>/ltx/0``."""
    return os.path.join(meta_path, "ltx", "0")


def local_l0_files(folder: str) -> list[tuple[int, str]]:
    """``(max TXID, path)`` of the L0 files in ``folder``, oldest first; none when it is missing."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        if is_filename(n):
            _lo, hi = parse_filename(n)
            out.append((hi, os.path.join(folder, n)))
    return sorted(out)


def remove_temps(owned: tuple[tuple[str, Callable[[str], bool]], ...]) -> None:
    """For each ``(folder, is_mine)``, delete the names ``is_mine`` accepts; nothing else.

    Errors are ignored: a name gone meanwhile, or a folder not there yet, is fine.
    """
    for folder, mine in owned:
        with contextlib.suppress(OSError):
            for n in os.listdir(folder):
                if mine(n):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(folder, n))


def last_sync(txid: int, path: str) -> LastSync:
    """Where the sync that wrote the L0 file at ``path`` (TXID ``txid``) ended.

    The file is decoded and verified whole first. Raises :class:`~ltx.errors.LTXError`
    or ``OSError`` when it cannot be trusted.
    """
    with open(path, "rb") as f:
        dec = Decoder(f, path=path, level=0)
        dec.verify()
    h = dec.header
    return LastSync(txid, h.wal_offset + h.wal_size, (h.wal_salt1, h.wal_salt2), h.commit, h.page_size)


def remove_l0_files(folder: str, up_to_txid: int, keep: str | None) -> int:
    """Delete the L0 files with TXID <= ``up_to_txid`` except ``keep``; how many were deleted."""
    removed = 0
    for txid, path in local_l0_files(folder):
        if txid <= up_to_txid and path != keep:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed += 1
    return removed
