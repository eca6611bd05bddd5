"""Pieces of Go's ``strconv`` package: ``Quote`` for error texts and ``ParseInt`` with base 0.

Go error texts quote values with ``strconv.Quote`` (``%q``) and integer literals are
read by ``ParseInt(s, 0, 64)``, whose prefix rules (``0x``, ``0o``, ``0b`` and a bare
leading ``0`` for octal) differ from Python's ``int(s, 0)``, which rejects ``012``.
"""

from __future__ import annotations

from typing import Final

INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1

_DIGITS_BY_BASE: Final = {2: "01", 8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


def quote(s: str) -> str:
    """``strconv.Quote`` for printable text: ``s`` in double quotes, ``\\`` and ``"`` escaped.

    Control and other non-printable characters are left as they are (Go would escape them);
    every text quoted by this project is printable in practice.
    """
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def num_syntax_error(func: str, num: str) -> str:
    """Go's ``*strconv.NumError`` text for a syntax error: ``strconv.F: parsing "x": invalid syntax``."""
    return f"strconv.{func}: parsing {quote(num)}: invalid syntax"


def parse_int(s: str) -> int | None:
    """``strconv.ParseInt(s, 0, 64)`` without its range check: the value, or ``None`` for a syntax error.

    An optional sign, then ``0x``/``0X`` (hex), ``0o``/``0O`` (octal), ``0b``/``0B`` (binary),
    a leading ``0`` (octal) or decimal digits. ``s`` must not contain ``_`` separators (the
    caller removes them, as yaml.v2 does); range checks are left to the caller.
    """
    body = s
    neg = False
    if body[:1] in ("+", "-"):
        neg = body[0] == "-"
        body = body[1:]
    if not body:
        return None
    base = 10
    if len(body) > 1 and body[0] == "0":
        prefix = body[1].lower()
        base, body = {"x": (16, body[2:]), "o": (8, body[2:]), "b": (2, body[2:])}.get(prefix, (8, body[1:]))
    if not body or any(c not in _DIGITS_BY_BASE[base] for c in body):
        return None
    value = int(body, base)
    return -value if neg else value
