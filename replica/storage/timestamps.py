"""LTX creation timestamps as the stores record them.

Litestream stores the LTX header timestamp (milliseconds since the epoch) as
``litestream-timestamp`` object metadata in Go's ``time.RFC3339Nano`` form, in UTC
(``2026-04-24T12:00:00.123Z``; trailing zeros of the fraction dropped, no fraction
at all when it is zero), and as the file mtime for ``file``/``sftp`` replicas.
"""

from __future__ import annotations

import datetime as dt
import re
import struct
from typing import Any

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)

_HEADER_MAGIC = b"LTX1"
_TIMESTAMP = struct.Struct(">q")
_TIMESTAMP_OFFSET = 32
HEADER_PREFIX = _TIMESTAMP_OFFSET + _TIMESTAMP.size
"""How many leading bytes of an LTX file :func:`header_timestamp` needs."""

TIMESTAMP_METADATA_KEY = "litestream-timestamp"
"""S3/GCS user-metadata key holding the LTX header timestamp (RFC 3339 nano, UTC)."""
ABS_TIMESTAMP_METADATA_KEY = "litestreamtimestamp"
"""Azure Blob metadata key (Azure forbids hyphens)."""


def format_rfc3339nano(t: dt.datetime) -> str:
    """Go ``t.UTC().Format(time.RFC3339Nano)`` for an aware datetime (naive = UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    t = t.astimezone(UTC)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{t.microsecond:06d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


def parse_rfc3339(s: str) -> dt.datetime | None:
    """Parse an RFC 3339 timestamp (up to 9 fraction digits, truncated to µs) into UTC.

    Returns ``None`` when ``s`` is not one, as Litestream falls back to
    LastModified when the metadata does not parse.
    """
    m = _RFC3339.match(s.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    micro = int((m.group(7) or "0").ljust(6, "0")[:6])
    if m.group(8):
        tz: dt.tzinfo = UTC
    else:
        sign = 1 if m.group(9) == "+" else -1
        tz = dt.timezone(sign * dt.timedelta(hours=int(m.group(10)), minutes=int(m.group(11))))
    try:
        return dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=tz).astimezone(UTC)
    except ValueError:
        return None


def from_millis(ms: int) -> dt.datetime:
    """An LTX header timestamp (ms since the epoch) as an aware UTC datetime."""
    return EPOCH + dt.timedelta(milliseconds=ms)


def to_nanos(t: dt.datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime (naive = UTC), exactly."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    delta = t - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def from_nanos(ns: int) -> dt.datetime:
    """An aware UTC datetime from nanoseconds since the epoch (truncated to µs)."""
    return EPOCH + dt.timedelta(microseconds=ns // 1_000)


def header_timestamp(head: bytes | bytearray | memoryview) -> dt.datetime | None:
    """The Timestamp field of an LTX header, or ``None`` if ``head`` is not one."""
    if len(head) < HEADER_PREFIX or bytes(head[:4]) != _HEADER_MAGIC:
        return None
    (ms,) = _TIMESTAMP.unpack_from(head, _TIMESTAMP_OFFSET)
    return from_millis(ms)


def as_utc(t: Any) -> dt.datetime:
    """A store's time value (datetime, epoch seconds or RFC 3339 text) in UTC; the epoch if unknown."""
    if isinstance(t, dt.datetime):
        return (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(t, int | float):
        return dt.datetime.fromtimestamp(t, UTC)
    if isinstance(t, str):
        return parse_rfc3339(t) or EPOCH
    return EPOCH


def metadata_timestamp(metadata: dict[str, str]) -> dt.datetime | None:
    """The LTX timestamp recorded in object metadata (any key case), or ``None``."""
    for k, v in metadata.items():
        if k.lower() in (TIMESTAMP_METADATA_KEY, ABS_TIMESTAMP_METADATA_KEY):
            return parse_rfc3339(v)
    return None
