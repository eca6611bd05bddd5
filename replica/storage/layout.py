"""Where LTX files live in a replica, as pure functions of (scheme, root, level, TXIDs).

Two layouts exist (reference §1.2), and a compatible writer must use the one the
real Litestream uses for the same URL:

* ``dir`` (``file``, ``gs``, ``abs``, ``sftp``, ``webdav``/``webdavs``, ``nats``):
  ``path.Join(root, "ltx", "<level in decimal>", "<min>-<max>.ltx")``.
* ``hex`` (``s3``, ``oss``): plain concatenation
  ``root + "/" + "<level as %04x>" + "/" + "<min>-<max>.ltx"``; a root of ``"."``
  (``s3://bucket`` with no path) really gives keys ``./0000/…``.

``root`` is the replica path as :func:`replica.storage.url.parse_replica_url`
computes it (for object stores: relative to the bucket/container).
"""

from __future__ import annotations

from typing import Literal

from ltx.errors import FilenameError
from ltx.names import SNAPSHOT_LEVEL as SNAPSHOT_LEVEL
from ltx.names import format_filename, parse_filename
from replica._go.path import go_join
from replica.errors import StorageError

LEVELS = range(10)
"""Valid levels: 0 (one file per sync) … 8 (compactions), 9 (snapshots)."""

LayoutStyle = Literal["dir", "hex"]

_HEX_SCHEMES = frozenset({"s3", "oss"})
_DIR_SCHEMES = frozenset({"file", "gs", "abs", "sftp", "webdav", "webdavs", "nats"})


def layout_style(scheme: str) -> LayoutStyle:
    """The layout a scheme uses; raises :class:`StorageError` for an unknown scheme."""
    if scheme in _HEX_SCHEMES:
        return "hex"
    if scheme in _DIR_SCHEMES:
        return "dir"
    raise StorageError(f"no storage layout for scheme {scheme!r}")


def check_level(level: int) -> int:
    """Return ``level`` if it is in 0..9, else raise :class:`StorageError`."""
    if not isinstance(level, int) or level not in LEVELS:
        raise StorageError(f"invalid level {level!r}: must be 0..9")
    return level


def level_dir(scheme: str, root: str, level: int) -> str:
    """The directory/prefix (no trailing ``/``) holding one level's files."""
    check_level(level)
    if layout_style(scheme) == "hex":
        return f"{root}/{level:04x}"
    return go_join(root, "ltx", str(level))


def ltx_key(scheme: str, root: str, level: int, min_txid: int, max_txid: int) -> str:
    """The object key / path of the LTX file ``(level, min_txid, max_txid)``."""
    return f"{level_dir(scheme, root, level)}/{format_filename(min_txid, max_txid)}"


def root_object_key(scheme: str, root: str, name: str) -> str:
    """The key of ``name``, an object that is not an LTX file, directly under the replica root.

    It sits beside the level directories (``<root>/<name>``), where neither this
    implementation nor Litestream lists LTX files, so both ignore it.
    """
    if "/" in name or not name or name in (".", ".."):
        raise StorageError(f"invalid replica object name {name!r}")
    if layout_style(scheme) == "hex":
        return f"{root}/{name}"
    return go_join(root, name)


def parse_key(scheme: str, root: str, key: str) -> tuple[int, int, int] | None:
    """Inverse of :func:`ltx_key`: ``(level, min, max)`` if ``key`` is an LTX key under ``root``."""
    for level in LEVELS:
        prefix = level_dir(scheme, root, level) + "/"
        if key.startswith(prefix):
            name = key[len(prefix) :]
            try:
                lo, hi = parse_filename(name)
            except FilenameError:
                return None
            return level, lo, hi
    return None
