"""What a replica listing knows about one LTX file without opening it."""

from __future__ import annotations

import datetime as dt

import attrs

from ltx.names import format_filename, parse_filename


@attrs.frozen(order=True)
class FileInfo:
    """One LTX file in a replica: its level, TXID range, size and creation time.

    Orders by ``(level, min_txid, max_txid)``, the order restores and
    compactions walk a listing in. ``created_at`` is timezone-aware UTC: the
    header timestamp where the store records it, else the object's
    modification time.
    """

    level: int
    min_txid: int
    max_txid: int
    size: int = attrs.field(default=0, order=False)
    created_at: dt.datetime = attrs.field(factory=lambda: dt.datetime.fromtimestamp(0, dt.UTC), order=False)

    @property
    def name(self) -> str:
        return format_filename(self.min_txid, self.max_txid)

    @classmethod
    def from_name(
        cls, level: int, name: str, size: int = 0, created_at: dt.datetime | None = None
    ) -> FileInfo:
        """Build from a base file name; raises ``FilenameError`` for a foreign name."""
        lo, hi = parse_filename(name)
        if created_at is None:
            return cls(level, lo, hi, size)
        return cls(level, lo, hi, size, created_at)


def is_contiguous(prev_max: int, min_txid: int, max_txid: int) -> bool:
    """Whether a file ``min_txid..max_txid`` may follow one ending at ``prev_max``.

    Overlap is allowed as long as the file extends past ``prev_max``.
    """
    return min_txid <= prev_max + 1 and max_txid > prev_max
