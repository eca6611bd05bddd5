"""Litestream's ``ParseByteSize``: a size such as ``5MiB`` for ``part-size``."""

from __future__ import annotations

from replica._go.errors import GoError
from replica._go.size import parse_bytes
from replica._go.strconv import INT64_MAX
from replica.config.errors import ConfigError


def parse_byte_size(s: str) -> int:
    """Litestream's ``ParseByteSize``: ``"5MiB"`` → 5242880, ``"1.5GB"``, ``"1,024KB"``, ``"10"``.

    SI (``KB`` = 1000) and IEC (``KiB`` = 1024) units, case-insensitive, with optional
    space; fractions are truncated. Raises :class:`ConfigError` with Litestream's message
    for an empty string, an unparsable number or unit, or a size above 2**63-1.
    """
    s = s.strip()
    if not s:
        raise ConfigError("empty size string")
    try:
        size = parse_bytes(s)
    except GoError as e:
        raise ConfigError(f"invalid size format: {e}") from None
    if size > INT64_MAX:
        raise ConfigError(f"size {size} exceeds maximum allowed value ({INT64_MAX})")
    return size
