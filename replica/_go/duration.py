"""Go's ``time.ParseDuration`` and ``time.Duration.String``.

Every duration in ``litestream.yml`` is read by ``ParseDuration`` and every duration in
a Litestream message is printed by ``Duration.String``. Python has no parser for this
format, and the details users see are Go's: ``us``, ``µs`` and ``μs`` all mean
microseconds, fractions beyond nanoseconds are truncated the way Go's float arithmetic
does, the value must fit a signed 64-bit count of nanoseconds, printing drops trailing
zeros (``1h0m0s``, ``1.5s``, ``1µs``), and each error has Go's wording.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from replica._go.errors import GoError
from replica._go.strconv import INT64_MAX, quote

UNITS: Final[dict[str, int]] = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}


def parse_go_duration(s: str) -> int:
    """Go's ``time.ParseDuration``: the number of nanoseconds, or :class:`GoError` with Go's text.

    Accepts ``[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+`` with units ns, us/µs/μs, ms, s, m, h, and a
    bare ``"0"``; the result must fit a signed 64-bit integer.
    """
    orig = s
    invalid = GoError("time: invalid duration " + quote(orig))
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid
        # Integer part.
        i = 0
        v = 0
        while i < len(s) and "0" <= s[i] <= "9":
            if v > (1 << 63) // 10:
                raise invalid
            v = v * 10 + ord(s[i]) - 48
            if v > 1 << 63:
                raise invalid
            i += 1
        pre = i > 0
        s = s[i:]
        # Fraction.
        frac = 0
        scale = 1.0
        post = False
        if s and s[0] == ".":
            s = s[1:]
            i = 0
            overflow = False
            while i < len(s) and "0" <= s[i] <= "9":
                if not overflow:
                    if frac > INT64_MAX // 10:
                        overflow = True
                    else:
                        y = frac * 10 + ord(s[i]) - 48
                        if y > 1 << 63:
                            overflow = True
                        else:
                            frac = y
                            scale *= 10
                i += 1
            post = i > 0
            s = s[i:]
        if not pre and not post:
            raise invalid
        # Unit.
        i = 0
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        if i == 0:
            raise GoError("time: missing unit in duration " + quote(orig))
        unit_name, s = s[:i], s[i:]
        unit = UNITS.get(unit_name)
        if unit is None:
            raise GoError(f"time: unknown unit {quote(unit_name)} in duration {quote(orig)}")
        if v > (1 << 63) // unit:
            raise invalid
        v *= unit
        if frac > 0:
            v += int(float(frac) * (float(unit) / scale))
            if v > 1 << 63:
                raise invalid
        total += v
        if total > 1 << 63:
            raise invalid
    if neg:
        return -total
    if total > INT64_MAX:
        raise invalid
    return total


def ns_to_timedelta(ns: int) -> dt.timedelta:
    """Nanoseconds to a timedelta; a remainder below 1 µs rounds away from zero (so it stays non-zero)."""
    q, r = divmod(abs(ns), 1000)
    us = q + (1 if r else 0)
    return dt.timedelta(microseconds=-us if ns < 0 else us)


def timedelta_ns(d: dt.timedelta) -> int:
    """A timedelta as a whole number of nanoseconds."""
    return ((d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds) * 1000


def parse_duration(s: str) -> dt.timedelta:
    """A Go duration string as a :class:`~datetime.timedelta` (see :func:`parse_go_duration`)."""
    return ns_to_timedelta(parse_go_duration(s))


def _frac_str(value: int, prec: int) -> str:
    """``value / 10**prec`` with the fraction's trailing zeros (and a bare point) dropped."""
    whole, frac = divmod(value, 10**prec)
    digits = f"{frac:0{prec}d}".rstrip("0") if prec else ""
    return f"{whole}.{digits}" if digits else str(whole)


def format_go_duration(d: dt.timedelta | int) -> str:
    """Go's ``time.Duration.String``: ``1h0m0s``, ``1m30s``, ``1.5s``, ``500ms``, ``1µs``, ``0s``.

    ``d`` is a timedelta or a number of nanoseconds.
    """
    ns = d if isinstance(d, int) else timedelta_ns(d)
    u = abs(ns)
    if u < 1_000_000_000:
        if u == 0:
            return "0s"
        if u < 1_000:
            text = f"{u}ns"
        elif u < 1_000_000:
            text = _frac_str(u, 3) + "\u00b5s"
        else:
            text = _frac_str(u, 6) + "ms"
    else:
        secs, frac = divmod(u, 1_000_000_000)
        text = _frac_str((secs % 60) * 1_000_000_000 + frac, 9) + "s"
        minutes = secs // 60
        if minutes:
            text = f"{minutes % 60}m" + text
            if minutes // 60:
                text = f"{minutes // 60}h" + text
    return "-" + text if ns < 0 else text
