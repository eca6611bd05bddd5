"""Go's ``filepath.Match`` on Unix, which Litestream applies to file names under a ``dir:`` entry.

Python's :mod:`fnmatch` is a different dialect: its ``[!...]`` is Go's ``[^...]``, it has
no ``\\`` escapes, its ``*`` crosses ``/``, and it accepts malformed patterns that Go
rejects with ``ErrBadPattern`` (``syntax error in pattern``). A pattern is translated
here to an anchored regular expression following Go's grammar, which checks the whole
pattern, as Go does since it reports a bad pattern even after a mismatch.
"""

from __future__ import annotations

import functools
import re

from replica._go.errors import GoError


class BadPatternError(GoError):
    """Go's ``filepath.ErrBadPattern``: the pattern is malformed."""

    def __init__(self) -> None:
        super().__init__("syntax error in pattern")


def _pattern_char(pattern: str, i: int) -> tuple[str, int]:
    """Go's ``getEsc``: one (possibly escaped) character of a class, and the next index."""
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise BadPatternError
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            raise BadPatternError
    c = pattern[i]
    i += 1
    if i >= n:
        raise BadPatternError
    return c, i


@functools.lru_cache(maxsize=64)
def _compile(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            parts.append("[^/]*")
            i += 1
        elif c == "?":
            parts.append("[^/]")
            i += 1
        elif c == "\\":
            if i + 1 >= n:
                raise BadPatternError
            parts.append(re.escape(pattern[i + 1]))
            i += 2
        elif c == "[":
            i += 1
            negated = i < n and pattern[i] == "^"
            if negated:
                i += 1
            ranges: list[tuple[str, str]] = []
            while True:
                if i < n and pattern[i] == "]" and ranges:
                    i += 1
                    break
                lo, i = _pattern_char(pattern, i)
                hi = lo
                if pattern[i] == "-":
                    hi, i = _pattern_char(pattern, i + 1)
                ranges.append((lo, hi))
            body = "".join(f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in ranges if lo <= hi)
            if body:
                parts.append(f"[{'^' if negated else ''}{body}]")
            else:
                parts.append("(?s:.)" if negated else "(?!)")
        else:
            parts.append(re.escape(c))
            i += 1
    return re.compile("".join(parts), re.DOTALL)


def match(pattern: str, name: str) -> bool:
    """Go's ``filepath.Match`` on Unix: ``*``, ``?``, ``[a-z]``, ``[^...]``, ``\\`` escapes.

    ``*`` and ``?`` do not match ``/``. Raises :class:`BadPatternError` for a malformed pattern.
    """
    return _compile(pattern).fullmatch(name) is not None
