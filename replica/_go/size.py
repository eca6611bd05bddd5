"""go-humanize's ``ParseBytes``, which Litestream's ``ParseByteSize`` calls for ``part-size``.

The accepted forms are go-humanize's, not those of any Python size parser: SI (``kb`` =
1000) and IEC (``kib`` = 1024) names with or without the ``b``, any case, an optional
space, digits with ``.`` and ``,`` read by Go's ``strconv.ParseFloat``, fractions
truncated; its errors (``strconv.ParseFloat: parsing "…": invalid syntax``,
``unhandled size name: …``, ``too large: …``) reach users inside Litestream's messages.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from replica._go.errors import GoError
from replica._go.strconv import num_syntax_error

_BYTE_UNITS: Final[dict[str, int]] = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "ki": 1024,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mi": 1024**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gi": 1024**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ti": 1024**4,
    "tib": 1024**4,
    "p": 1000**5,
    "pb": 1000**5,
    "pi": 1024**5,
    "pib": 1024**5,
    "e": 1000**6,
    "eb": 1000**6,
    "ei": 1024**6,
    "eib": 1024**6,
}
# What strconv.ParseFloat accepts among texts made only of digits and points.
_GO_DECIMAL: Final = re.compile(r"[0-9]+\.?[0-9]*|\.[0-9]+")


def parse_bytes(s: str) -> int:
    """go-humanize ``ParseBytes``: ``"5MiB"`` → 5242880, ``"1.5GB"``, ``"1,024KB"``, ``"10"``.

    The leading run of digits, ``.`` and ``,`` is the number (commas dropped); the rest,
    trimmed and lower-cased, is the unit. The result is below 2**64. Raises
    :class:`GoError` with go-humanize's text.
    """
    end = 0
    for ch in s:
        if not (unicodedata.category(ch) == "Nd" or ch in ".,"):
            break
        end += 1
    num = s[:end].replace(",", "")
    if not _GO_DECIMAL.fullmatch(num):
        raise GoError(num_syntax_error("ParseFloat", num))
    value = float(num)
    extra = s[end:].strip().lower()
    mult = _BYTE_UNITS.get(extra)
    if mult is None:
        raise GoError(f"unhandled size name: {extra}")
    value *= mult
    if value >= 2.0**64:
        raise GoError(f"too large: {s}")
    return int(value)
