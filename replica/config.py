"""The ``litestream.yml`` configuration, read the way Litestream 0.5 reads it (reference §7).

Loading (:func:`load_config` / :func:`parse_config`) follows Litestream's steps in order:

1. find the file (``-config``, else ``$LITESTREAM_CONFIG``, else ``/etc/litestream.yml``);
2. expand ``$NAME`` / ``${NAME}`` in the *whole raw text* with Go ``os.Expand`` rules
   (:func:`expand_env`), unless told not to;
3. parse YAML the way ``gopkg.in/yaml.v2`` does: YAML 1.1 scalars (``yes``/``no``/``on``/
   ``off``/``y``/``n`` booleans, ``0600`` octal), string fields keep the scalar's original
   text, an explicit ``null``/empty value means the field's zero value except for the
   pointer-typed keys (which keep their default), and type errors are collected into
   one ``yaml: unmarshal errors:`` message with line numbers. Unlike Litestream, which
   ignores keys it does not know (so a misspelt ``retention:`` silently keeps the
   default), an unknown key is an error naming the key and its line; keys starting
   with ``x-`` are left for the user (e.g. to hold YAML anchors);
4. post-process: per-DB snapshot settings, ``dbs[].path`` expansion, global replica
   settings copied into each replica, validation with Litestream's messages
   (``<field>: <error> (got <value>)``), then the per-database replica rules that
   Litestream checks when it builds the databases.

The result is a tree of frozen attrs classes (:class:`Config`, :class:`DBConfig`,
:class:`ReplicaConfig`, ...) structured with cattrs. Durations are
:class:`datetime.timedelta` (Go durations are nanoseconds: a non-zero value below one
microsecond is rounded away from zero so that it stays non-zero). ``dir:`` entries are
expanded into databases by :func:`expand_dir_entries`; a replica turns into a URL for
:func:`replica.storage.url.parse_replica_url` with :meth:`ReplicaConfig.to_url` /
:meth:`ReplicaConfig.to_replica_url`.

Every failure is a :class:`ConfigError` whose text is Litestream's.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import math
import os
import posixpath
import re
import stat
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, get_args, get_origin

import attrs
import cattrs
import yaml
from cattrs.gen import make_dict_structure_fn, override

from replica.errors import ReplicaError, ReplicaURLError
from replica.storage.url import (
    ReplicaURL,
    S3Options,
    endpoint_with_scheme,
    go_clean,
    go_join,
    parse_bool,
    parse_replica_url,
)

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "DEFAULT_CHECKPOINT_INTERVAL",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_LEVELS",
    "DEFAULT_MAX_SYNC_LTX_FILES",
    "DEFAULT_MAX_SYNC_WAL_BYTES",
    "DEFAULT_MIN_CHECKPOINT_PAGE_COUNT",
    "DEFAULT_MONITOR_INTERVAL",
    "DEFAULT_SOCKET_PATH",
    "DEFAULT_SYNC_INTERVAL",
    "DEFAULT_TRUNCATE_PAGE_N",
    "META_DIR_SUFFIX",
    "AgeConfig",
    "Config",
    "ConfigError",
    "DBConfig",
    "DBSnapshotConfig",
    "LevelConfig",
    "LoggingConfig",
    "ReplicaConfig",
    "ReplicaSettings",
    "RetentionConfig",
    "SnapshotConfig",
    "SocketConfig",
    "ValidationConfig",
    "config_from_args",
    "db_from_dir_entry",
    "default_meta_path",
    "expand_dir_entries",
    "expand_env",
    "expand_path",
    "find_sqlite_databases",
    "format_go_duration",
    "go_expand",
    "go_match",
    "is_sqlite_database",
    "load_config",
    "parse_byte_size",
    "parse_config",
    "parse_duration",
    "parse_go_duration",
    "replica_url",
    "strip_sqlite_prefix",
]


class ConfigError(ReplicaError):
    """The configuration cannot be read, parsed or validated, or a database from it cannot be built.

    ``str(err)`` is exactly Litestream's message. For validation errors of the form
    ``<field>: <error> (got <value>)``, ``field`` names the key and ``value`` is the
    offending value (a :class:`~datetime.timedelta` for durations).
    """

    def __init__(self, message: str, *, field: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


# --------------------------------------------------------------------------------------------
# Defaults (reference Appendix A)

DEFAULT_CONFIG_PATH: Final = "/etc/litestream.yml"
DEFAULT_SOCKET_PATH: Final = "/var/run/litestream.sock"
META_DIR_SUFFIX: Final = "-litestream"

DEFAULT_MONITOR_INTERVAL: Final = dt.timedelta(seconds=1)
DEFAULT_CHECKPOINT_INTERVAL: Final = dt.timedelta(minutes=1)
DEFAULT_BUSY_TIMEOUT: Final = dt.timedelta(seconds=1)
DEFAULT_MIN_CHECKPOINT_PAGE_COUNT: Final = 1000
DEFAULT_TRUNCATE_PAGE_N: Final = 121359
DEFAULT_MAX_SYNC_WAL_BYTES: Final = 64 * 1024 * 1024
DEFAULT_SYNC_INTERVAL: Final = dt.timedelta(seconds=1)
DEFAULT_MAX_SYNC_LTX_FILES: Final = 256
DEFAULT_SNAPSHOT_INTERVAL: Final = dt.timedelta(hours=24)
DEFAULT_SNAPSHOT_RETENTION: Final = dt.timedelta(hours=24)
DEFAULT_L0_RETENTION: Final = dt.timedelta(minutes=5)
DEFAULT_L0_RETENTION_CHECK_INTERVAL: Final = dt.timedelta(seconds=15)
DEFAULT_HEARTBEAT_INTERVAL: Final = dt.timedelta(minutes=5)
MIN_HEARTBEAT_INTERVAL: Final = dt.timedelta(minutes=1)
DEFAULT_SHUTDOWN_SYNC_TIMEOUT: Final = dt.timedelta(seconds=30)
DEFAULT_SHUTDOWN_SYNC_INTERVAL: Final = dt.timedelta(milliseconds=500)
S3_DEFAULT_R2_CONCURRENCY: Final = 2

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1

_SQLITE_MAGIC: Final = b"SQLite format 3\x00"


# --------------------------------------------------------------------------------------------
# Environment expansion: Go's os.Expand


def _is_shell_special(c: str) -> bool:
    return c in "*#$@!?-0123456789"


def _is_alnum(c: str) -> bool:
    return c == "_" or ("0" <= c <= "9") or ("a" <= c <= "z") or ("A" <= c <= "Z")


def _shell_name(s: str, start: int) -> tuple[str, int]:
    """Go's ``getShellName`` on ``s[start:]``: the name and how many characters it consumed."""
    n = len(s)
    c = s[start]
    if c == "{":
        if n - start > 2 and _is_shell_special(s[start + 1]) and s[start + 2] == "}":
            return s[start + 1], 3
        close = s.find("}", start + 1)
        if close == -1:
            return "", 1  # bad syntax: "${" is eaten
        if close == start + 1:
            return "", 2  # bad syntax: "${}" is eaten
        return s[start + 1 : close], close - start + 1
    if _is_shell_special(c):
        return c, 1
    i = start
    while i < n and _is_alnum(s[i]):
        i += 1
    return s[start:i], i - start


def go_expand(s: str, mapping: Callable[[str], str]) -> str:
    """Go's ``os.Expand``: replace ``$NAME`` and ``${NAME}`` with ``mapping(NAME)``.

    Names are runs of ASCII letters, digits and ``_``, or one of the special characters
    ``*#$@!?-0123456789``; ``${...}`` takes everything up to the first ``}``. ``${}`` and
    an unclosed ``${`` are removed; a ``$`` followed by any other character, or at the
    very end, is kept as is.
    """
    out: list[str] = []
    i = 0
    j = 0
    n = len(s)
    while j < n:
        if s[j] == "$" and j + 1 < n:
            out.append(s[i:j])
            name, width = _shell_name(s, j + 1)
            if name:
                out.append(mapping(name))
            elif width == 0:
                out.append("$")
            j += width
            i = j + 1
        j += 1
    if not out:
        return s
    return "".join(out) + s[i:]


def expand_env(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Expand environment variables in a config text exactly as Litestream does.

    ``$PID`` is the current process id (whatever the environment says); every other name
    is looked up in ``environ`` (default :data:`os.environ`), unset names becoming ``""``.
    """
    return _expand_env_text(text, os.environ if environ is None else environ)


def _expand_env_text(text: str, env: Mapping[str, str]) -> str:
    def lookup(name: str) -> str:
        if name == "PID":
            return str(os.getpid())
        return env.get(name, "")

    return go_expand(text, lookup)


# --------------------------------------------------------------------------------------------
# Go durations

_UNITS: Final[dict[str, int]] = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_go_duration(s: str) -> int:
    """Go's ``time.ParseDuration``: the number of nanoseconds, or :class:`ValueError` with Go's text.

    Accepts ``[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+`` with units ns, us/µs/μs, ms, s, m, h, and a
    bare ``"0"``; the result must fit a signed 64-bit integer.
    """
    orig = s
    invalid = ValueError("time: invalid duration " + _go_quote(orig))
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
                    if frac > _INT64_MAX // 10:
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
            raise ValueError("time: missing unit in duration " + _go_quote(orig))
        unit_name, s = s[:i], s[i:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise ValueError(f"time: unknown unit {_go_quote(unit_name)} in duration {_go_quote(orig)}")
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
    if total > _INT64_MAX:
        raise invalid
    return total


def _ns_to_timedelta(ns: int) -> dt.timedelta:
    """Nanoseconds to a timedelta; a remainder below 1 µs rounds away from zero."""
    q, r = divmod(abs(ns), 1000)
    us = q + (1 if r else 0)
    return dt.timedelta(microseconds=-us if ns < 0 else us)


def _timedelta_ns(d: dt.timedelta) -> int:
    return ((d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds) * 1000


def parse_duration(s: str) -> dt.timedelta:
    """A Go duration string as a :class:`~datetime.timedelta` (see :func:`parse_go_duration`)."""
    return _ns_to_timedelta(parse_go_duration(s))


def _frac_str(value: int, prec: int) -> str:
    """``value / 10**prec`` with the fraction's trailing zeros (and a bare point) dropped."""
    whole, frac = divmod(value, 10**prec)
    digits = f"{frac:0{prec}d}".rstrip("0") if prec else ""
    return f"{whole}.{digits}" if digits else str(whole)


def format_go_duration(d: dt.timedelta | int) -> str:
    """Go's ``time.Duration.String``: ``1h0m0s``, ``1m30s``, ``1.5s``, ``500ms``, ``1µs``, ``0s``.

    ``d`` is a timedelta or a number of nanoseconds.
    """
    ns = d if isinstance(d, int) else _timedelta_ns(d)
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


# --------------------------------------------------------------------------------------------
# Byte sizes (go-humanize ParseBytes, as used by Litestream's ParseByteSize)

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
_GO_DECIMAL: Final = re.compile(r"[0-9]+\.?[0-9]*|\.[0-9]+")


def parse_byte_size(s: str) -> int:
    """Litestream's ``ParseByteSize``: ``"5MiB"`` → 5242880, ``"1.5GB"``, ``"1,024KB"``, ``"10"``.

    SI (``KB`` = 1000) and IEC (``KiB`` = 1024) units, case-insensitive, with optional
    space; fractions are truncated. Raises :class:`ConfigError` with Litestream's message
    for an empty string, an unparsable number or unit, or a size above 2**63-1.
    """
    s = s.strip()
    if not s:
        raise ConfigError("empty size string")
    end = 0
    for ch in s:
        if not (unicodedata.category(ch) == "Nd" or ch in ".,"):
            break
        end += 1
    num = s[:end].replace(",", "")
    if not _GO_DECIMAL.fullmatch(num):
        raise ConfigError(
            f"invalid size format: strconv.ParseFloat: parsing {_go_quote(num)}: invalid syntax"
        )
    value = float(num)
    extra = s[end:].strip().lower()
    mult = _BYTE_UNITS.get(extra)
    if mult is None:
        raise ConfigError(f"invalid size format: unhandled size name: {extra}")
    value *= mult
    if value >= 2.0**64:
        raise ConfigError(f"invalid size format: too large: {s}")
    size = int(value)
    if size > _INT64_MAX:
        raise ConfigError(f"size {size} exceeds maximum allowed value ({_INT64_MAX})")
    return size


# --------------------------------------------------------------------------------------------
# Paths


def strip_sqlite_prefix(s: str) -> str:
    """Remove a leading ``sqlite3://`` or ``sqlite://`` (connection-string form of a path)."""
    for prefix in ("sqlite3://", "sqlite://"):
        if s.startswith(prefix):
            return s[len(prefix) :]
    return s


def _home_dir() -> str:
    """The current user's home directory as Go's ``os/user.Current`` finds it (passwd first)."""
    try:
        import pwd

        home = pwd.getpwuid(os.getuid()).pw_dir
        if home:
            return home
    except (ImportError, KeyError, OSError):
        pass
    return os.environ.get("HOME", "")


def expand_path(path: str, base_dir: str | None = None) -> str:
    """Litestream's ``expand``: strip a ``sqlite://`` prefix, expand ``~``/``~/``, make absolute.

    Only ``~`` and ``~/...`` are expanded (not ``~user``). Relative paths are resolved
    against ``base_dir`` (default: the current directory, as Litestream does; *not* the
    config file's directory). The result is cleaned like Go's ``filepath.Clean``.
    """
    p = strip_sqlite_prefix(path)
    if p == "~" or p.startswith("~/"):
        home = _home_dir()
        if not home:
            raise ConfigError(f"cannot expand path {p}, no home directory available")
        return go_clean(home) if p == "~" else go_clean(home + "/" + p[2:])
    if p.startswith("/"):
        return go_clean(p)
    return go_clean((base_dir or os.getcwd()) + "/" + p)


def default_meta_path(db_path: str) -> str:
    """The default meta directory of a database: ``<dir>/.<base>-litestream`` (reference §2.1)."""
    head, base = posixpath.split(db_path)
    return go_join(head, "." + base + META_DIR_SUFFIX) if head else "." + base + META_DIR_SUFFIX


def _go_os_error(op: str, path: str, exc: OSError) -> str:
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return f"{op} {path}: {text[:1].lower()}{text[1:]}"


# --------------------------------------------------------------------------------------------
# Go filepath.Match


class _BadPatternError(Exception):
    pass


def _pattern_char(pattern: str, i: int) -> tuple[str, int]:
    """Go's ``getEsc``: one (possibly escaped) character of a class, and the next index."""
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise _BadPatternError
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            raise _BadPatternError
    c = pattern[i]
    i += 1
    if i >= n:
        raise _BadPatternError
    return c, i


@functools.lru_cache(maxsize=64)
def _compile_go_pattern(pattern: str) -> re.Pattern[str]:
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
                raise _BadPatternError
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


def go_match(pattern: str, name: str) -> bool:
    """Go's ``filepath.Match`` on Unix: ``*``, ``?``, ``[a-z]``, ``[^...]``, ``\\`` escapes.

    Raises :class:`ConfigError` ``syntax error in pattern`` for a malformed pattern.
    """
    try:
        return _compile_go_pattern(pattern).fullmatch(name) is not None
    except _BadPatternError:
        raise ConfigError("syntax error in pattern") from None


# --------------------------------------------------------------------------------------------
# YAML, decoded like gopkg.in/yaml.v2


class _Scalar:
    """A non-null YAML scalar: original text, yaml.v2's resolved tag and value, 1-based line."""

    __slots__ = ("line", "tag", "text", "value")

    def __init__(self, text: str, tag: str, value: object, line: int) -> None:
        self.text = text
        self.tag = tag
        self.value = value
        self.line = line


class _Map(dict[str, Any]):
    """A YAML mapping: its line, and the line of each key (kept through copies)."""

    __slots__ = ("key_lines", "line")

    def __init__(self, line: int, *args: Any) -> None:
        super().__init__(*args)
        self.line = line
        self.key_lines: dict[str, int] = {}
        for a in args:
            if isinstance(a, _Map):
                self.key_lines.update(a.key_lines)


class _InlineMap(_Map):
    """The parent's mapping handed to an inline-decoded class: its keys are checked by the parent."""

    __slots__ = ()


class _Seq(list[Any]):
    __slots__ = ("line",)

    def __init__(self, line: int, *args: Any) -> None:
        super().__init__(*args)
        self.line = line


_PLAIN_TAG: Final = "!plain"
_YAML_TAG: Final = "tag:yaml.org,2002:"


class _Loader(yaml.BaseLoader):
    """Composes nodes only; plain scalars are tagged ``!plain`` so we resolve them like yaml.v2."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            return _PLAIN_TAG if implicit[0] else _YAML_TAG + "str"
        return _YAML_TAG + ("seq" if kind is yaml.SequenceNode else "map")


_BOOLS: Final[dict[str, bool]] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
}
_NULLS: Final = frozenset(("", "~", "null", "Null", "NULL"))
_SPECIAL_FLOATS: Final[dict[str, float]] = {
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_YAML_STYLE_FLOAT: Final = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_GO_FLOAT: Final = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_TIMESTAMP: Final = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"([Tt ][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]*)?(Z|[-+][0-9]{1,2}(:[0-9]{2})?)?)?"
)
_DIGITS_BY_BASE: Final = {2: "01", 8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


def _go_parse_int(s: str) -> int | None:
    """Go's ``strconv.ParseInt(s, 0, ...)`` without a range check: prefixes 0x, 0o, 0b, 0."""
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


def _resolve_plain(text: str) -> tuple[str, object]:
    """yaml.v2's ``resolve`` for an untagged plain scalar: (short tag, value)."""
    if text in _NULLS:
        return "!!null", None
    if text in _BOOLS:
        return "!!bool", _BOOLS[text]
    if text in _SPECIAL_FLOATS:
        return "!!float", _SPECIAL_FLOATS[text]
    if text == "<<":
        return "!!merge", text
    first = text[0]
    if first == ".":
        if _GO_FLOAT.fullmatch(text):
            return "!!float", float(text)
    elif first in "+-0123456789":
        if _TIMESTAMP.fullmatch(text):
            return "!!timestamp", text
        plain = text.replace("_", "")
        value = _go_parse_int(plain)
        if value is not None and _INT64_MIN <= value < 1 << 64:
            return "!!int", value
        if _YAML_STYLE_FLOAT.fullmatch(plain):
            return "!!float", float(plain)
    return "!!str", text


class _TreeBuilder:
    """Turns a composed YAML node graph into ``_Map``/``_Seq``/``_Scalar``/``None`` values."""

    _BUDGET: Final = 1_000_000

    def __init__(self) -> None:
        self._visits = 0
        self._active: set[int] = set()

    def build(self, node: yaml.Node) -> Any:
        self._visits += 1
        if self._visits > self._BUDGET:
            raise ConfigError("yaml: document contains excessive aliasing")
        line = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, line)
        if id(node) in self._active:
            raise ConfigError(f"yaml: line {line}: anchor refers to itself")
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return _Seq(line, [self.build(child) for child in node.value])
            return self._mapping(node, line)
        finally:
            self._active.discard(id(node))

    @staticmethod
    def _scalar(node: yaml.ScalarNode, line: int) -> _Scalar | None:
        text = str(node.value)
        if node.tag == _PLAIN_TAG:
            tag, value = _resolve_plain(text)
        elif node.tag == _YAML_TAG + "str" or not node.tag.startswith(_YAML_TAG):
            tag, value = "!!str", text
        elif node.tag == _YAML_TAG + "null":
            tag, value = "!!null", None
        else:  # another explicit standard tag: resolve the text
            tag, value = _resolve_plain(text)
            if tag == "!!null":
                tag, value = "!!str", text
        if tag == "!!null":
            return None
        return _Scalar(text, tag, value, line)

    def _mapping(self, node: yaml.Node, line: int) -> _Map:
        out = _Map(line)
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and (
                (key_node.tag == _PLAIN_TAG and key_node.value == "<<") or key_node.tag == _YAML_TAG + "merge"
            ):
                self._merge(out, value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            out[str(key_node.value)] = self.build(value_node)
            out.key_lines[str(key_node.value)] = key_node.start_mark.line + 1
        return out

    def _merge(self, out: _Map, node: yaml.Node) -> None:
        """yaml.v2 merge: applied where ``<<`` appears; in a list, earlier maps win."""
        value = self.build(node)
        maps = [value] if isinstance(value, _Map) else value if isinstance(value, _Seq) else None
        if maps is None or not all(isinstance(m, _Map) for m in maps):
            raise ConfigError("yaml: map merge requires map or sequence of maps as the value")
        for m in reversed(maps):
            out.update(m)


def _load_yaml(text: str) -> Any:
    """The first YAML document of ``text`` as a tree (``None`` for an empty document)."""
    try:
        docs = yaml.compose_all(text, Loader=_Loader)
        node = next(iter(docs), None)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"yaml: {where}{e.problem or e.context}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"yaml: {e}") from e
    if node is None:
        return None
    return _TreeBuilder().build(node)


# --------------------------------------------------------------------------------------------
# Decoding errors, collected the way yaml.v2 collects them


@attrs.frozen
class _DecodeIssue:
    line: int
    message: str
    fatal: bool = False  # an error from a custom unmarshaler: yaml.v2 stops there


_ISSUES: contextvars.ContextVar[list[_DecodeIssue] | None] = contextvars.ContextVar("_ISSUES", default=None)


def _report(issue: _DecodeIssue) -> None:
    issues = _ISSUES.get()
    if issues is None:
        raise ConfigError(issue.message)
    issues.append(issue)


def _type_error(value: Any, go_type: str) -> None:
    """Record yaml.v2's ``cannot unmarshal !!tag `value` into T`` for ``value``."""
    if isinstance(value, _Map):
        _report(_DecodeIssue(value.line, f"line {value.line}: cannot unmarshal !!map into {go_type}"))
    elif isinstance(value, _Seq):
        _report(_DecodeIssue(value.line, f"line {value.line}: cannot unmarshal !!seq into {go_type}"))
    elif isinstance(value, _Scalar):
        shown = value.text if len(value.text) <= 10 else value.text[:7] + "..."
        _report(
            _DecodeIssue(
                value.line, f"line {value.line}: cannot unmarshal {value.tag} `{shown}` into {go_type}"
            )
        )
    else:  # pragma: no cover - callers only pass tree values
        _report(_DecodeIssue(0, f"cannot unmarshal into {go_type}"))


def _decode(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` collecting decode issues; raise one :class:`ConfigError` like yaml.v2 would."""
    issues: list[_DecodeIssue] = []
    token = _ISSUES.set(issues)
    try:
        result = fn()
    finally:
        _ISSUES.reset(token)
    if issues:
        fatal = [i for i in issues if i.fatal]
        if fatal:
            raise ConfigError(min(fatal, key=lambda i: i.line).message)
        seen: dict[str, None] = {}
        for issue in sorted(issues, key=lambda i: i.line):
            seen.setdefault(issue.message, None)
        raise ConfigError("yaml: unmarshal errors:\n  " + "\n  ".join(seen))
    return result


# --------------------------------------------------------------------------------------------
# Field metadata and helpers for the attrs classes

_KEY: Final = "yaml_key"  # YAML key when it is not the field name with "-" for "_"
_GO: Final = "go_type"  # yaml.v2 target type: "int64", "uint32" or "bytesize"
_NULL_ZERO: Final = "null_zero"  # an explicit null gives the zero value, not the default
_INLINE: Final = "inline"  # decoded from the parent mapping (Go ``yaml:",inline"``)
_SKIP: Final = "skip"  # not read from YAML
_INLINE_KEY: Final = "\x00inline"


def _yaml_key(f: attrs.Attribute[Any]) -> str:
    key = f.metadata.get(_KEY)
    return str(key) if key else f.name.replace("_", "-")


def _tuple(factory: Callable[[], Any] = tuple, **meta: Any) -> Any:
    return attrs.field(factory=factory, metadata=meta, converter=tuple)


# --------------------------------------------------------------------------------------------
# The configuration types


@attrs.frozen
class AgeConfig:
    """``age:`` (encryption). Parsed only so it can be rejected, as Litestream 0.5 does."""

    identities: tuple[str, ...] = _tuple()
    recipients: tuple[str, ...] = _tuple()


@attrs.frozen
class ReplicaSettings:
    """Settings a replica shares with the global inline defaults (every replica key but
    ``type``/``path``/``url``/``name``).

    ``None`` means "not set" for the pointer-typed keys (the backend's default applies);
    ``""`` means not set for strings. ``sync_interval``, ``max_sync_ltx_files`` and
    ``auto_recover`` carry Litestream's defaults. Secrets are kept out of ``repr``.
    """

    sync_interval: dt.timedelta = DEFAULT_SYNC_INTERVAL
    validation_interval: dt.timedelta | None = None
    max_sync_ltx_files: int = DEFAULT_MAX_SYNC_LTX_FILES
    auto_recover: bool = False
    # S3 (and OSS)
    access_key_id: str = attrs.field(default="", repr=False)
    secret_access_key: str = attrs.field(default="", repr=False)
    region: str = ""
    bucket: str = ""
    endpoint: str = ""
    force_path_style: bool | None = None
    sign_payload: bool | None = None
    require_content_md5: bool | None = None
    skip_verify: bool = False
    storage_class: str = ""
    part_size: int | None = attrs.field(default=None, metadata={_GO: "bytesize"})
    concurrency: int | None = None
    sse_customer_algorithm: str = ""
    sse_customer_key: str = attrs.field(default="", repr=False)
    sse_customer_key_path: str = ""
    sse_kms_key_id: str = ""
    # Azure Blob Storage
    account_name: str = ""
    account_key: str = attrs.field(default="", repr=False)
    sas_token: str = attrs.field(default="", repr=False)
    # SFTP
    host: str = ""
    user: str = ""
    password: str = attrs.field(default="", repr=False)
    key_path: str = ""
    concurrent_writes: bool | None = None
    host_key: str = ""
    # WebDAV
    webdav_url: str = ""
    webdav_username: str = ""
    webdav_password: str = attrs.field(default="", repr=False)
    # NATS
    jwt: str = attrs.field(default="", repr=False)
    seed: str = attrs.field(default="", repr=False)
    creds: str = ""
    nkey: str = attrs.field(default="", repr=False)
    username: str = ""
    token: str = attrs.field(default="", repr=False)
    tls: bool | None = None
    root_cas: tuple[str, ...] = attrs.field(factory=tuple, converter=tuple)
    client_cert: str = ""
    client_key: str = ""
    max_reconnects: int | None = None
    reconnect_wait: dt.timedelta | None = None
    timeout: dt.timedelta | None = None
    age: AgeConfig = AgeConfig()


@attrs.frozen
class ReplicaConfig(ReplicaSettings):
    """One ``replica:`` entry: where (``type`` + ``url`` or ``path``) and the settings.

    After :func:`parse_config`, the global inline settings have been copied into every
    setting this replica did not set, and a ``file`` replica's ``path`` is absolute.
    :attr:`replica_type` is the effective type; :meth:`to_url` / :meth:`to_replica_url`
    give the replica URL (explicit YAML keys win over values in ``url``).
    """

    type: str = ""
    name: str = ""  # deprecated; ignored
    path: str = ""
    url: str = ""

    @property
    def replica_type(self) -> str:
        """The effective type: the scheme of ``url`` if it has one (``webdavs`` counts as
        ``webdav``), else ``type``, else ``file``."""
        return _type_from_url(self.url) or self.type or "file"

    def to_url(self) -> str:
        """The replica as a URL string for :func:`~replica.storage.url.parse_replica_url`.

        ``file:///abs/path``, ``s3://bucket/path?endpoint=…&region=…&force-path-style=…``
        (every resolved S3 option is spelled out), ``gs://bucket/path``,
        ``abs://[account@]container/path``, ``sftp://user[:password]@host/path``,
        ``webdav[s]://[user:password@]host/path``. The string can contain secrets
        (passwords, an SSE-C key): do not log it. Credentials that URLs cannot carry
        (``access-key-id``, ``account-key``, ``key-path``, …) stay on this object.

        Raises :class:`ConfigError` with Litestream's message when the replica is not
        usable (e.g. ``bucket required for s3 replica``), or when its type (``nats``,
        ``oss``) is not supported by this implementation.
        """
        return _build_replica(self).url

    def to_replica_url(self) -> ReplicaURL:
        """Like :meth:`to_url`, but already parsed, and exact where a URL string is lossy:
        an S3 ``bucket:`` without ``path:`` keeps the empty key prefix (keys ``/0000/…``,
        as Litestream writes them) and the bucket/path are taken verbatim."""
        return _build_replica(self).parsed()


def replica_url(rc: ReplicaConfig | None) -> str:
    """:meth:`ReplicaConfig.to_url` as a function; ``None`` (a database without a replica)
    raises Litestream's ``must specify replica for database``."""
    if rc is None:
        raise ConfigError("must specify replica for database")
    return rc.to_url()


@attrs.frozen
class LevelConfig:
    """One compaction level above L0 (``levels[i]``)."""

    interval: dt.timedelta = dt.timedelta(0)


DEFAULT_LEVELS: Final = (
    LevelConfig(dt.timedelta(seconds=30)),
    LevelConfig(dt.timedelta(minutes=5)),
    LevelConfig(dt.timedelta(hours=1)),
)


@attrs.frozen
class SnapshotConfig:
    """Store-wide ``snapshot:`` settings (defaults 24 h / 24 h, also when the section is empty)."""

    interval: dt.timedelta = DEFAULT_SNAPSHOT_INTERVAL
    retention: dt.timedelta = DEFAULT_SNAPSHOT_RETENTION


@attrs.frozen
class DBSnapshotConfig:
    """``dbs[].snapshot:``; ``None`` = not set. Promoted to the global values when those are not set."""

    interval: dt.timedelta | None = None
    retention: dt.timedelta | None = None


@attrs.frozen
class SocketConfig:
    """``socket:`` (control socket). An empty ``socket:`` section clears ``path`` and ``permissions``."""

    enabled: bool = False
    path: str = attrs.field(default=DEFAULT_SOCKET_PATH, metadata={_NULL_ZERO: True})
    permissions: int = attrs.field(default=0o600, metadata={_NULL_ZERO: True, _GO: "uint32"})


@attrs.frozen
class RetentionConfig:
    """``retention:``; ``enabled: false`` means no remote deletions."""

    enabled: bool = True


@attrs.frozen
class ValidationConfig:
    """``validation:``; ``interval`` ``None`` = no periodic validation."""

    interval: dt.timedelta | None = None


@attrs.frozen
class LoggingConfig:
    """``logging:``. ``level`` is overridden by a non-empty ``$LOG_LEVEL`` at load time."""

    level: str = "INFO"
    type: str = "text"
    stderr: bool = False
    source: bool = False


@attrs.frozen
class DBConfig:
    """One ``dbs[]`` entry: a database ``path`` or a ``dir`` + ``pattern`` to discover.

    After :func:`parse_config`: ``path`` is absolute (``sqlite://`` stripped, ``~``
    expanded); a path entry has ``meta_path`` set (default ``<dir>/.<base>-litestream``)
    and its single replica in ``replica`` (a one-element ``replicas:`` list is moved
    there). A ``dir`` entry keeps its replica as a template for :func:`expand_dir_entries`;
    ``dir``, ``meta_path`` and ``meta_dir`` are absolute. ``monitor_interval`` 0 turns
    background syncing off, ``checkpoint_interval`` 0 turns time-based checkpoints off,
    ``truncate_page_n`` 0 means the default and ``max_sync_wal_bytes`` 0 means unlimited.
    """

    path: str = ""
    dir: str = ""
    pattern: str = ""
    recursive: bool = False
    watch: bool = False
    snapshot: DBSnapshotConfig = DBSnapshotConfig()
    meta_path: str | None = None
    meta_dir: str | None = None
    monitor_interval: dt.timedelta = DEFAULT_MONITOR_INTERVAL
    checkpoint_interval: dt.timedelta = DEFAULT_CHECKPOINT_INTERVAL
    busy_timeout: dt.timedelta = DEFAULT_BUSY_TIMEOUT
    min_checkpoint_page_count: int = DEFAULT_MIN_CHECKPOINT_PAGE_COUNT
    truncate_page_n: int = DEFAULT_TRUNCATE_PAGE_N
    max_sync_wal_bytes: int = attrs.field(default=DEFAULT_MAX_SYNC_WAL_BYTES, metadata={_GO: "int64"})
    restore_if_db_not_exists: bool = False
    replica: ReplicaConfig | None = None
    replicas: tuple[ReplicaConfig, ...] = _tuple()

    @property
    def identifier(self) -> str:
        """``path``, or ``dir`` for a directory entry (how Litestream names the entry in messages)."""
        return self.path or self.dir


@attrs.frozen
class Config:
    """The whole configuration file (reference §7.2).

    ``replica_settings`` holds the global inline replica settings (already copied into
    each replica by :func:`parse_config`). An empty ``levels:`` means no compaction
    levels; ``l0_retention`` 0 turns L0 deletion off; ``config_path`` is the file read.
    """

    replica_settings: ReplicaSettings = attrs.field(factory=ReplicaSettings, metadata={_INLINE: True})
    addr: str = ""
    socket: SocketConfig = attrs.field(factory=SocketConfig, metadata={_NULL_ZERO: True})
    levels: tuple[LevelConfig, ...] = attrs.field(
        default=DEFAULT_LEVELS, converter=tuple, metadata={_NULL_ZERO: True}
    )
    snapshot: SnapshotConfig = SnapshotConfig()
    validation: ValidationConfig = ValidationConfig()
    l0_retention: dt.timedelta = DEFAULT_L0_RETENTION
    l0_retention_check_interval: dt.timedelta = DEFAULT_L0_RETENTION_CHECK_INTERVAL
    verify_compaction: bool = False
    retention: RetentionConfig = RetentionConfig()
    heartbeat_url: str = ""
    heartbeat_interval: dt.timedelta = DEFAULT_HEARTBEAT_INTERVAL
    dbs: tuple[DBConfig, ...] = _tuple()
    exec: str = ""
    logging: LoggingConfig = LoggingConfig()
    mcp_addr: str = ""
    shutdown_sync_timeout: dt.timedelta = DEFAULT_SHUTDOWN_SYNC_TIMEOUT
    shutdown_sync_interval: dt.timedelta = DEFAULT_SHUTDOWN_SYNC_INTERVAL
    config_path: str | None = attrs.field(default=None, metadata={_SKIP: True})

    @property
    def snapshot_interval(self) -> dt.timedelta:
        """``snapshot.interval`` (after per-database promotion)."""
        return self.snapshot.interval

    @property
    def snapshot_retention(self) -> dt.timedelta:
        """``snapshot.retention`` (after per-database promotion)."""
        return self.snapshot.retention

    @property
    def retention_enabled(self) -> bool:
        """``retention.enabled``: false means nothing is ever deleted from the replica."""
        return self.retention.enabled

    @property
    def validation_interval(self) -> dt.timedelta | None:
        """``validation.interval``; ``None`` when periodic validation is off."""
        return self.validation.interval


_GO_NAMES: Final[dict[type, str]] = {
    Config: "main.Config",
    DBConfig: "main.DBConfig",
    ReplicaConfig: "main.ReplicaConfig",
    ReplicaSettings: "main.ReplicaSettings",
    LevelConfig: "main.CompactionLevelConfig",
    SnapshotConfig: "main.SnapshotConfig",
    DBSnapshotConfig: "main.SnapshotConfig",
    SocketConfig: "litestream.SocketConfig",
    RetentionConfig: "main.RetentionConfig",
    ValidationConfig: "main.ValidationConfig",
    LoggingConfig: "internal.LoggingConfig",
    AgeConfig: 'struct { Identities []string "yaml:\\"identities\\""; '
    'Recipients []string "yaml:\\"recipients\\"" }',
}


for _cls in _GO_NAMES:
    attrs.resolve_types(_cls)


def _go_name(t: Any) -> str:
    if t in _GO_NAMES:
        return _GO_NAMES[t]
    if get_origin(t) is tuple:
        elem = get_args(t)[0]
        return "[]*" + _go_name(elem) if attrs.has(elem) else "[]" + _go_name(elem)
    return {str: "string", bool: "bool", int: "int", dt.timedelta: "time.Duration"}.get(t, str(t))


# --------------------------------------------------------------------------------------------
# cattrs structuring: tree values → attrs instances. Hooks never raise for type errors:
# like yaml.v2 they record the error and leave the zero value.


def _as_scalar(value: Any, go_type: str) -> _Scalar | None:
    if isinstance(value, _Scalar):
        return value
    _type_error(value, go_type)
    return None


def _structure_str(value: Any, _: Any) -> str:
    if value is None:
        return ""
    s = _as_scalar(value, "string")
    return s.text if s is not None else ""


def _structure_bool(value: Any, _: Any) -> bool:
    if value is None:
        return False
    s = _as_scalar(value, "bool")
    if s is not None and type(s.value) is bool:
        return s.value
    if s is not None:
        _type_error(s, "bool")
    return False


_INT_RANGES: Final[dict[str, tuple[int, int]]] = {
    "int": (_INT64_MIN, _INT64_MAX),
    "int64": (_INT64_MIN, _INT64_MAX),
    "uint32": (0, (1 << 32) - 1),
}


def _structure_int(value: Any, _: Any, go_type: str = "int") -> int:
    if value is None:
        return 0
    s = _as_scalar(value, go_type)
    if s is None:
        return 0
    lo, hi = _INT_RANGES[go_type]
    v = s.value
    if type(v) is int and lo <= v <= hi:
        return v
    if type(v) is float and math.isfinite(v) and lo <= math.trunc(v) <= hi:
        return math.trunc(v)
    _type_error(s, go_type)
    return 0


def _structure_duration(value: Any, _: Any) -> dt.timedelta:
    if value is None:
        return dt.timedelta(0)
    s = _as_scalar(value, "time.Duration")
    if s is None:
        return dt.timedelta(0)
    v = s.value
    if type(v) is int and _INT64_MIN <= v <= _INT64_MAX:
        return _ns_to_timedelta(v)
    if type(v) is float and math.isfinite(v) and _INT64_MIN <= math.trunc(v) <= _INT64_MAX:
        return _ns_to_timedelta(math.trunc(v))
    if s.tag == "!!str":
        try:
            return _ns_to_timedelta(parse_go_duration(s.text))
        except ValueError:
            pass
    _type_error(s, "time.Duration")
    return dt.timedelta(0)


def _structure_byte_size(value: Any, _: Any) -> int | None:
    """``part-size``: decoded into a string first, then Litestream's ParseByteSize (fatal on error)."""
    if value is None:
        return None
    s = _as_scalar(value, "string")
    if s is None:
        return None
    try:
        return parse_byte_size(s.text)
    except ConfigError as e:
        _report(_DecodeIssue(s.line, str(e), fatal=True))
        return None


def _is_homogeneous_tuple(t: Any) -> bool:
    args = get_args(t)
    return get_origin(t) is tuple and len(args) == 2 and args[1] is Ellipsis


def _structure_tuple_factory(t: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
    elem = get_args(t)[0]
    go_type = _go_name(t)

    def structure(value: Any, _: Any) -> tuple[Any, ...]:
        if value is None:
            return ()
        if not isinstance(value, _Seq):
            _type_error(value, go_type)
            return ()
        return tuple(_converter.structure(item, elem) for item in value)

    return structure


def _structure_class_factory(cls: type) -> Callable[[Any, Any], Any]:
    """Structure an attrs class from a ``_Map`` with yaml.v2's null semantics and Go key names."""
    fields = attrs.fields(cls)
    overrides: dict[str, Any] = {}
    keys: list[tuple[attrs.Attribute[Any], str]] = []
    for f in fields:
        if f.metadata.get(_SKIP):
            overrides[f.name] = override(omit=True)
            continue
        key = _INLINE_KEY if f.metadata.get(_INLINE) else _yaml_key(f)
        keys.append((f, key))
        go_type = f.metadata.get(_GO)
        if go_type == "bytesize":
            overrides[f.name] = override(rename=key, struct_hook=_structure_byte_size)
        elif go_type:
            overrides[f.name] = override(
                rename=key, struct_hook=functools.partial(_structure_int, go_type=go_type)
            )
        else:
            overrides[f.name] = override(rename=key)
    inner: Callable[[Mapping[str, Any], Any], Any] = make_dict_structure_fn(cls, _converter, **overrides)
    go_type = _go_name(cls)
    known = {key for _f, key in keys if key != _INLINE_KEY}
    for f, key in keys:
        if key == _INLINE_KEY and isinstance(f.type, type) and attrs.has(f.type):
            known.update(_yaml_key(g) for g in attrs.fields(f.type) if not g.metadata.get(_SKIP))

    def structure(value: Any, _: Any) -> Any:
        from_null = value is None
        if not from_null and not isinstance(value, _Map):
            _type_error(value, go_type)
            from_null = True
        mapping: Mapping[str, Any] = {} if from_null else value
        if isinstance(value, _Map) and not isinstance(value, _InlineMap):
            for k in value:
                if k not in known and not k.startswith("x-"):
                    line = value.key_lines.get(k, value.line)
                    raise ConfigError(f"unknown configuration key {k!r} on line {line}")
        data: dict[str, Any] = {}
        for f, key in keys:
            if key == _INLINE_KEY:
                data[key] = _InlineMap(0, mapping)
            elif key in mapping:
                v = mapping[key]
                if v is not None or f.metadata.get(_NULL_ZERO):
                    data[key] = v
            elif from_null and f.metadata.get(_NULL_ZERO):
                data[key] = None
        return inner(data, cls)

    return structure


_converter = cattrs.Converter(detailed_validation=False)
_converter.register_structure_hook(str, _structure_str)
_converter.register_structure_hook(bool, _structure_bool)
_converter.register_structure_hook(int, _structure_int)
_converter.register_structure_hook(dt.timedelta, _structure_duration)
_converter.register_structure_hook_factory(_is_homogeneous_tuple, _structure_tuple_factory)
_converter.register_structure_hook_factory(attrs.has, _structure_class_factory)


# --------------------------------------------------------------------------------------------
# Global replica settings → replicas (on the tree, where "not set" is still visible)


def _inherit_kind(f: attrs.Attribute[Any]) -> str:
    """How a global setting fills a replica's (Litestream's ``SetDefaults``): ``str`` (unset =
    empty string), ``list`` (unset = empty), ``or`` (a global true wins), ``age`` (per
    sub-list) or ``ptr`` (unset = absent or null)."""
    if f.name == "skip_verify":
        return "or"
    if f.name == "age":
        return "age"
    t: Any = f.type
    if t is str:
        return "str"
    if get_origin(t) is tuple:
        return "list"
    return "ptr"


def _unset(value: Any, kind: str) -> bool:
    if value is None:
        return True
    if kind == "str":
        return isinstance(value, _Scalar) and value.text == ""
    if kind == "list":
        return isinstance(value, _Seq) and not value
    return False


def _inherit(replica: _Map, glob: Mapping[str, Any]) -> _Map:
    """A copy of ``replica`` with the global settings filled in (Litestream's ``SetDefaults``)."""
    out = _Map(replica.line, replica)
    for f in attrs.fields(ReplicaSettings):
        key = _yaml_key(f)
        if key not in glob:
            continue
        kind = _inherit_kind(f)
        g = glob[key]
        if kind == "or":
            if isinstance(g, _Scalar) and g.value is True:
                out[key] = g
        elif kind == "age":
            mine = out.get(key)
            if isinstance(g, _Map) and (mine is None or isinstance(mine, _Map)):
                merged = _Map(mine.line if mine is not None else g.line, mine or {})
                for sub in ("identities", "recipients"):
                    if sub in g and _unset(merged.get(sub), "list"):
                        merged[sub] = g[sub]
                out[key] = merged
        elif _unset(out.get(key), kind):
            out[key] = g
    return out


def _propagate(tree: _Map) -> _Map:
    dbs = tree.get("dbs")
    if not isinstance(dbs, _Seq):
        return tree
    new_dbs = _Seq(dbs.line)
    for db in dbs:
        if isinstance(db, _Map):
            db = _Map(db.line, db)
            if isinstance(db.get("replica"), _Map):
                db["replica"] = _inherit(db["replica"], tree)
            replicas = db.get("replicas")
            if isinstance(replicas, _Seq):
                db["replicas"] = _Seq(
                    replicas.line, [_inherit(r, tree) if isinstance(r, _Map) else r for r in replicas]
                )
        new_dbs.append(db)
    out = _Map(tree.line, tree)
    out["dbs"] = new_dbs
    return out


# --------------------------------------------------------------------------------------------
# Loading


def load_config(
    path: str | None = None, *, expand_env: bool = True, environ: Mapping[str, str] | None = None
) -> Config:
    """Read and validate a config file like ``litestream replicate -config PATH``.

    ``path`` defaults to ``$LITESTREAM_CONFIG`` (when non-empty) and then
    ``/etc/litestream.yml``; it is expanded (``~``, absolute). ``expand_env=False`` is
    ``-no-expand-env``. ``environ`` (default :data:`os.environ`) is used for the path
    lookup, the expansion and ``$LOG_LEVEL``. Relative paths inside the file are resolved
    against the current directory, as Litestream does. Raises :class:`ConfigError`
    (``config file not found: <path>`` when the file does not exist).
    """
    env = os.environ if environ is None else environ
    raw = path or env.get("LITESTREAM_CONFIG") or DEFAULT_CONFIG_PATH
    filename = expand_path(raw)
    try:
        with open(filename, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {filename}") from None
    except OSError as e:
        raise ConfigError(_go_os_error("open", filename, e)) from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("yaml: invalid leading UTF-8 octet") from None
    cfg = parse_config(text, expand_env=expand_env, environ=env)
    return attrs.evolve(cfg, config_path=filename)


def parse_config(
    text: str,
    *,
    base_dir: str | None = None,
    expand_env: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Parse and validate config text (Litestream's ``ParseConfig`` plus its per-database checks).

    ``base_dir`` is the directory relative paths are resolved against (default: the
    current directory). See :func:`load_config` for ``expand_env`` and ``environ``.
    Returns a :class:`Config` whose path entries are ready to use and whose ``dir:``
    entries are templates for :func:`expand_dir_entries`. Raises :class:`ConfigError`.
    """
    env = os.environ if environ is None else environ
    if expand_env:
        text = _expand_env_text(text, env)
    tree = _load_yaml(text)
    if isinstance(tree, _Scalar):
        _decode(lambda: _type_error(tree, 'struct { Snapshot *main.SnapshotConfig "yaml:\\"snapshot\\"" }'))
    if not isinstance(tree, _Map):
        tree = _Map(1)  # an empty document, or a sequence (ignored by yaml.v2)

    # yaml.v2 first decodes only `snapshot:` (to learn what was set explicitly).
    raw_snapshot = tree.get("snapshot")
    _decode(lambda: _converter.structure(raw_snapshot, DBSnapshotConfig))
    interval_set = isinstance(raw_snapshot, _Map) and raw_snapshot.get("interval") is not None
    retention_set = isinstance(raw_snapshot, _Map) and raw_snapshot.get("retention") is not None

    tree = _propagate(tree)
    cfg: Config = _decode(lambda: _converter.structure(tree, Config))
    cfg = _apply_db_snapshots(cfg, interval_set, retention_set)
    cfg = attrs.evolve(
        cfg,
        dbs=tuple(attrs.evolve(db, path=expand_path(db.path, base_dir)) if db.path else db for db in cfg.dbs),
    )
    _validate(cfg)
    for db in cfg.dbs:
        if db.path:
            _check_db(db)
    level = env.get("LOG_LEVEL")
    logging = cfg.logging
    logging = attrs.evolve(logging, level=level or logging.level or "INFO", type=logging.type or "text")
    return attrs.evolve(cfg, logging=logging, dbs=tuple(_finish_db(db, base_dir) for db in cfg.dbs))


def config_from_args(
    db_path: str, replica_url: str | Sequence[str] | None, *, base_dir: str | None = None
) -> Config:
    """The ad-hoc configuration of ``litestream replicate DB_PATH REPLICA_URL``.

    Defaults everywhere, one database, its replica from the URL with a 1 s sync interval.
    No URL → ``must specify at least one replica URL for <path>``; several →
    ``multiple replicas on a single database are no longer supported``; a URL without a
    scheme → ``replica url scheme required: <url>``.
    """
    urls = [replica_url] if isinstance(replica_url, str) else list(replica_url or ())
    if not urls:
        raise ConfigError(f"must specify at least one replica URL for {db_path}")
    replicas = tuple(ReplicaConfig(url=u, sync_interval=DEFAULT_SYNC_INTERVAL) for u in urls)
    db = DBConfig(path=expand_path(db_path, base_dir), replicas=replicas)
    _check_db(db)
    return Config(dbs=(_finish_db(db, base_dir),))


def _apply_db_snapshots(cfg: Config, interval_set: bool, retention_set: bool) -> Config:
    """Per-DB ``snapshot:`` values become the global ones unless those were set explicitly."""
    interval: tuple[str, dt.timedelta] | None = None
    retention: tuple[str, dt.timedelta] | None = None
    for db in cfg.dbs:
        ident = db.identifier
        if db.snapshot.interval is not None:
            if interval is not None and interval[1] != db.snapshot.interval:
                raise ConfigError(
                    f"conflicting database snapshot intervals: {interval[0]} has "
                    f"{format_go_duration(interval[1])}, "
                    f"{ident} has {format_go_duration(db.snapshot.interval)}"
                )
            interval = (ident, db.snapshot.interval)
        if db.snapshot.retention is not None:
            if retention is not None and retention[1] != db.snapshot.retention:
                raise ConfigError(
                    f"conflicting database snapshot retentions: {retention[0]} has "
                    f"{format_go_duration(retention[1])}, "
                    f"{ident} has {format_go_duration(db.snapshot.retention)}"
                )
            retention = (ident, db.snapshot.retention)
    snapshot = cfg.snapshot
    if not interval_set and interval is not None:
        snapshot = attrs.evolve(snapshot, interval=interval[1])
    if not retention_set and retention is not None:
        snapshot = attrs.evolve(snapshot, retention=retention[1])
    return attrs.evolve(cfg, snapshot=snapshot)


def _invalid(field: str, error: str, value: object) -> ConfigError:
    shown = format_go_duration(value) if isinstance(value, dt.timedelta) else str(value)
    return ConfigError(f"{field}: {error} (got {shown})", field=field, value=value)


_LOG_TYPES: Final = frozenset(("text", "json", "pretty", ""))


def _validate(cfg: Config) -> None:
    """Litestream's ``Config.Validate``, in its order; raises the first problem."""
    zero = dt.timedelta(0)
    if cfg.snapshot.interval <= zero:
        raise _invalid("snapshot.interval", "snapshot interval must be greater than 0", cfg.snapshot.interval)
    if cfg.snapshot.retention <= zero:
        raise _invalid(
            "snapshot.retention", "snapshot retention must be greater than 0", cfg.snapshot.retention
        )
    if cfg.l0_retention < zero:
        raise _invalid("l0-retention", "l0 retention must not be negative", cfg.l0_retention)
    if cfg.l0_retention_check_interval <= zero:
        raise _invalid(
            "l0-retention-check-interval",
            "l0 retention check interval must be greater than 0",
            cfg.l0_retention_check_interval,
        )
    if cfg.shutdown_sync_timeout < zero:
        raise _invalid(
            "shutdown-sync-timeout", "shutdown-sync-timeout must be >= 0", cfg.shutdown_sync_timeout
        )
    if cfg.shutdown_sync_interval <= zero:
        raise _invalid(
            "shutdown-sync-interval",
            "shutdown sync interval must be greater than 0",
            cfg.shutdown_sync_interval,
        )
    if cfg.heartbeat_url and not cfg.heartbeat_url.startswith(("http://", "https://")):
        raise _invalid("heartbeat-url", "heartbeat URL must be a valid HTTP or HTTPS URL", cfg.heartbeat_url)
    if cfg.heartbeat_interval < MIN_HEARTBEAT_INTERVAL:
        raise _invalid(
            "heartbeat-interval", "heartbeat interval must be at least 1 minute", cfg.heartbeat_interval
        )
    for i, level in enumerate(cfg.levels):
        if level.interval <= zero:
            raise _invalid(
                f"levels[{i}].interval", "compaction interval must be greater than 0", level.interval
            )
    for idx, db in enumerate(cfg.dbs, start=1):
        where = f"database config #{idx}"
        if db.path and db.dir:
            raise ConfigError(f"{where}: cannot specify both 'path' and 'dir'")
        if not db.path and not db.dir:
            raise ConfigError(f"{where}: must specify either 'path' or 'dir'")
        if db.dir and not db.pattern:
            raise ConfigError(f"{where}: 'pattern' is required when using 'dir'")
        if db.watch and not db.dir:
            raise ConfigError(f"{where}: 'watch' can only be enabled with a directory")
        if db.meta_dir is not None and not db.dir:
            raise ConfigError(f"{where}: 'meta-dir' can only be used with a directory")
        if db.meta_path is not None and db.meta_dir is not None:
            raise ConfigError(f"{where}: cannot specify both 'meta-path' and 'meta-dir'")
        ident = db.identifier
        if db.snapshot.interval is not None and db.snapshot.interval <= zero:
            raise _invalid(
                f"dbs[{ident}].snapshot.interval",
                "snapshot interval must be greater than 0",
                db.snapshot.interval,
            )
        if db.snapshot.retention is not None and db.snapshot.retention <= zero:
            raise _invalid(
                f"dbs[{ident}].snapshot.retention",
                "snapshot retention must be greater than 0",
                db.snapshot.retention,
            )
        if db.replica is not None and db.replica.sync_interval <= zero:
            raise _invalid(
                f"dbs[{ident}].replica.sync-interval",
                "sync interval must be greater than 0",
                db.replica.sync_interval,
            )
        for i, rc in enumerate(db.replicas):
            if rc.sync_interval <= zero:
                raise _invalid(
                    f"dbs[{ident}].replicas[{i}].sync-interval",
                    "sync interval must be greater than 0",
                    rc.sync_interval,
                )
    if cfg.logging.type not in _LOG_TYPES:
        raise _invalid("logging.type", "log type must be text, json or pretty", cfg.logging.type)


def _single_replica(db: DBConfig) -> ReplicaConfig:
    if db.replica is None and not db.replicas:
        raise ConfigError("must specify replica for database")
    if db.replica is not None and db.replicas:
        raise ConfigError("cannot specify 'replica' and 'replicas' on a database")
    if len(db.replicas) > 1:
        raise ConfigError("multiple replicas on a single database are no longer supported")
    return db.replica if db.replica is not None else db.replicas[0]


def _check_db(db: DBConfig) -> None:
    """What Litestream checks when it builds a database from a path entry (``NewDBFromConfig``)."""
    if db.meta_dir is not None:
        raise ConfigError("'meta-dir' can only be used with a directory")
    _check_replica(_single_replica(db))


def _check_replica(rc: ReplicaConfig) -> _Built | None:
    """Litestream's ``NewReplicaFromConfig`` checks, in order; the built URL for the types
    this implementation supports, ``None`` for ``nats``/``oss`` (checked only)."""
    if _URL_RE.match(rc.path):
        raise ConfigError(f"replica path cannot be a url, please use the 'url' field instead: {rc.path}")
    if rc.age.identities or rc.age.recipients:
        raise ConfigError(
            "age encryption is not currently supported, "
            "if you need encryption please revert back to Litestream v0.3.x"
        )
    kind = rc.replica_type
    if kind in _BUILDERS:
        return _BUILDERS[kind](rc)
    if kind == "nats":
        _check_nats(rc)
    elif kind == "oss":
        _bucket_and_path(rc, "oss")
    else:
        raise ConfigError(f"unknown replica type in config: {_go_quote(kind)}")
    return None


def _finish_db(db: DBConfig, base_dir: str | None) -> DBConfig:
    """Expanded meta paths and directory; the single replica moved into ``replica``."""
    meta_path = expand_path(db.meta_path, base_dir) if db.meta_path is not None else None
    meta_dir = expand_path(db.meta_dir, base_dir) if db.meta_dir is not None else None
    if db.path and meta_path is None:
        meta_path = default_meta_path(db.path)
    replica = db.replica
    replicas = db.replicas
    if replica is None and len(replicas) == 1:
        replica, replicas = replicas[0], ()
    replica = _finish_replica(replica, base_dir) if replica is not None else None
    replicas = tuple(_finish_replica(r, base_dir) for r in replicas)
    return attrs.evolve(
        db,
        dir=expand_path(db.dir, base_dir) if db.dir else "",
        meta_path=meta_path,
        meta_dir=meta_dir,
        replica=replica,
        replicas=replicas,
    )


def _finish_replica(rc: ReplicaConfig, base_dir: str | None) -> ReplicaConfig:
    if rc.replica_type == "file" and rc.path and not rc.url and not _URL_RE.match(rc.path):
        return attrs.evolve(rc, path=expand_path(rc.path, base_dir))
    return rc


# --------------------------------------------------------------------------------------------
# Replica → URL (Litestream's per-type client builders, reference §7.3 / §7.5)

_URL_RE: Final = re.compile(r"^\w+://")
_SCHEME_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PATH_SAFE: Final = "/$&+,:;=@"
_DECIMAL_INT: Final = re.compile(r"[-+]?[0-9]+")


@attrs.frozen
class _GoURL:
    """What Go's ``url.Parse`` gives for a replica URL (path decoded)."""

    scheme: str
    user: str | None
    password: str | None
    host: str
    path: str
    query: tuple[tuple[str, str], ...]

    def get(self, *names: str) -> str:
        """Go's ``url.Values.Get`` over ``names`` in order: the first non-empty first value."""
        for name in names:
            for k, v in self.query:
                if k == name:
                    if v:
                        return v
                    break
        return ""


def _go_parse_url(s: str) -> _GoURL:
    m = _SCHEME_RE.match(s)
    before_query = s.split("?", 1)[0]
    bad = _BAD_ESCAPE.search(before_query)
    if bad is not None:
        raise ConfigError(
            f"parse {_go_quote(s)}: invalid URL escape {_go_quote(s[bad.start() : bad.start() + 3])}"
        )
    if m is None:
        return _GoURL("", None, None, "", urllib.parse.unquote(before_query), ())
    u = urllib.parse.urlsplit(s)
    userinfo, at, host = u.netloc.rpartition("@")
    user: str | None = None
    password: str | None = None
    if at:
        name, colon, pw = userinfo.partition(":")
        user = urllib.parse.unquote(name)
        password = urllib.parse.unquote(pw) if colon else None
    query = tuple(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
    return _GoURL(m.group(1).lower(), user, password, host, urllib.parse.unquote(u.path), query)


def _go_parse_replica_url(url: str) -> _GoURL:
    """Litestream's ``ParseReplicaURL``: a URL that must have a scheme."""
    u = _go_parse_url(url)
    if not u.scheme:
        raise ConfigError(f"replica url scheme required: {url}")
    return u


def _type_from_url(url: str) -> str:
    if not url:
        return ""
    try:
        scheme = _go_parse_url(url).scheme
    except ConfigError:
        return ""
    return "webdav" if scheme == "webdavs" else scheme


def _object_path(u: _GoURL) -> str:
    """``strings.TrimPrefix(path.Clean(u.Path), "/")``: ``"."`` for an empty path."""
    return go_clean(u.path).removeprefix("/")


def _go_file_url_path(url: str) -> str:
    """Litestream's path for a ``file`` URL: the URL without its scheme, cleaned."""
    u = _go_parse_replica_url(url)
    rest = url[len(u.scheme) + 1 :]
    if rest.startswith("//"):
        split = urllib.parse.urlsplit(url)
        escaped = urllib.parse.quote(u.path, safe=_PATH_SAFE)
        rest = "//" + split.netloc + escaped + (("?" + split.query) if split.query else "")
    return go_clean(rest)


def _check_exclusive(rc: ReplicaConfig, kind: str, other: str, other_value: str) -> None:
    if rc.url and rc.path:
        raise ConfigError(f"cannot specify url & path for {kind} replica")
    if rc.url and other_value:
        raise ConfigError(f"cannot specify url & {other} for {kind} replica")


@attrs.frozen
class _Built:
    """A resolved replica: its URL string and, for exactness, the fields a string can lose."""

    url: str
    host: str | None = None
    path: str | None = None
    s3: S3Options | None = None

    def parsed(self) -> ReplicaURL:
        try:
            u = parse_replica_url(self.url)
        except ReplicaURLError as e:
            raise ConfigError(e.message) from e
        changes: dict[str, Any] = {}
        if self.host is not None:
            changes["host"] = self.host
        if self.path is not None:
            changes["path"] = self.path
        if self.s3 is not None:
            changes["s3"] = self.s3
        return attrs.evolve(u, **changes) if changes else u


def _quote_user(user: str, password: str) -> str:
    if not user and not password:
        return ""
    auth = urllib.parse.quote(user, safe="")
    if password:
        auth += ":" + urllib.parse.quote(password, safe="")
    return auth + "@"


def _build_file(rc: ReplicaConfig) -> _Built:
    if rc.url and rc.path:
        raise ConfigError("cannot specify url & path for file replica")
    path = _go_file_url_path(rc.url) if rc.url else rc.path
    if not path:
        raise ConfigError("file replica path required")
    path = expand_path(path)
    return _Built(f"file://{path}", path=path)


def _endpoint_host(endpoint: str) -> str:
    e = endpoint.strip().lower()
    if not e:
        return ""
    if e.startswith(("http://", "https://")):
        netloc = urllib.parse.urlsplit(e).netloc
        if netloc:
            return "" if "@" in netloc else netloc
    return "" if "@" in e.split("/", 1)[0] else e


_NOT_MINIO: Final = (
    ".amazonaws.com",
    ".digitaloceanspaces.com",
    ".backblazeb2.com",
    ".filebase.com",
    ".scw.cloud",
    ".r2.cloudflarestorage.com",
    "tigris.dev",
    "t3.storage.dev",
    ".supabase.co",
)


def _positive_query_int(u: _GoURL, *names: str) -> int | None:
    for name in names:
        raw = u.get(name)
        if raw:
            n = int(raw) if _DECIMAL_INT.fullmatch(raw) else None
            if n is None or n <= 0 or n > _INT64_MAX:
                raise ConfigError(
                    f"invalid value for query parameter {_go_quote(name)}: {_go_quote(raw)} "
                    "(must be a positive integer)"
                )
            return n
    return None


def _read_sse_key(path: str) -> str:
    key_path = path
    if key_path.startswith("~"):
        home = os.environ.get("HOME", "")
        if not home:
            raise ConfigError("cannot expand home directory for sse-customer-key-path: $HOME is not defined")
        key_path = home + key_path[1:]
    try:
        with open(key_path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read().strip()
    except OSError as e:
        raise ConfigError(
            f"cannot read sse-customer-key-path {_go_quote(path)}: {_go_os_error('open', key_path, e)}"
        ) from e


def _build_s3(rc: ReplicaConfig) -> _Built:
    _check_exclusive(rc, "s3", "bucket", rc.bucket)
    bucket, path, region, endpoint = rc.bucket, rc.path, rc.region, rc.endpoint
    skip_verify, storage_class = rc.skip_verify, rc.storage_class
    sign, md5 = rc.sign_payload, rc.require_content_md5
    force_path_style = bool(endpoint) if rc.force_path_style is None else rc.force_path_style
    url_part_size: int | None = None
    url_concurrency: int | None = None
    if rc.url:
        u = _go_parse_replica_url(rc.url)
        host_only = urllib.parse.urlsplit(rc.url)._replace(query="", fragment="").geturl()
        try:
            hosted = parse_replica_url(host_only).s3
        except ReplicaURLError as e:
            raise ConfigError(e.message) from e
        ubucket = hosted.bucket if hosted is not None else ""
        uregion = (hosted.region or "") if hosted is not None else ""
        uendpoint = (hosted.endpoint or "") if hosted is not None else ""
        upath_style = hosted.force_path_style if hosted is not None else False
        upath = hosted.path if hosted is not None and u.host.startswith("arn:") else _object_path(u)
        if qe := u.get("endpoint"):
            uendpoint = endpoint_with_scheme(qe)
            if u.get("forcePathStyle") != "false":
                upath_style = True
        if qr := u.get("region"):
            uregion = qr
        if qf := u.get("forcePathStyle"):
            upath_style = qf == "true"
        if qs := u.get("skipVerify"):
            skip_verify = qs == "true"
        if sign is None and (raw := u.get("signPayload", "sign-payload")):
            sign = parse_bool(raw)
        if md5 is None and (raw := u.get("requireContentMD5", "require-content-md5")):
            md5 = parse_bool(raw)
        ustorage = u.get("storageClass") or u.get("storage-class")
        url_part_size = _positive_query_int(u, "partSize", "part-size")
        url_concurrency = _positive_query_int(u, "concurrency")
        path = path or upath
        bucket = bucket or ubucket
        region = region or uregion
        endpoint = endpoint or uendpoint
        storage_class = storage_class or ustorage
        force_path_style = force_path_style or upath_style
    if not bucket:
        raise ConfigError("bucket required for s3 replica")
    endpoint = endpoint_with_scheme(endpoint) if endpoint else ""
    ehost = _endpoint_host(endpoint)
    if ehost in ("fly.storage.tigris.dev", "t3.storage.dev") and md5 is None:
        md5 = False
    if rc.force_path_style is None and (
        ehost == "s3.filebase.com"
        or ehost.endswith((".backblazeb2.com", ".supabase.co"))
        or (":" in ehost and not any(p in ehost for p in _NOT_MINIO))
    ):
        force_path_style = True
    concurrency = S3_DEFAULT_R2_CONCURRENCY if ehost.endswith(".r2.cloudflarestorage.com") else None
    concurrency = rc.concurrency if rc.concurrency is not None else url_concurrency or concurrency
    part_size = rc.part_size if rc.part_size is not None else url_part_size
    sse_algorithm = sse_key = ""
    if rc.sse_customer_key or rc.sse_customer_key_path:
        sse_algorithm = rc.sse_customer_algorithm or "AES256"
        sse_key = _read_sse_key(rc.sse_customer_key_path) if rc.sse_customer_key_path else rc.sse_customer_key
    opts = S3Options(
        bucket=bucket,
        path=path,
        endpoint=endpoint or None,
        region=region or None,
        force_path_style=force_path_style,
        skip_verify=skip_verify,
        sign_payload=True if sign is None else sign,
        require_content_md5=True if md5 is None else md5,
        storage_class=storage_class or None,
        part_size=part_size,
        concurrency=concurrency,
        sse_customer_algorithm=sse_algorithm or None,
        sse_customer_key=sse_key or None,
        sse_kms_key_id=rc.sse_kms_key_id or None,
    )
    query: list[tuple[str, str]] = []
    for name, value in (
        ("endpoint", opts.endpoint),
        ("region", opts.region),
        ("force-path-style", str(opts.force_path_style).lower()),
        ("skip-verify", str(opts.skip_verify).lower()),
        ("sign-payload", str(opts.sign_payload).lower()),
        ("require-content-md5", str(opts.require_content_md5).lower()),
        ("storage-class", opts.storage_class),
        ("part-size", None if part_size is None else str(part_size)),
        ("concurrency", None if concurrency is None else str(concurrency)),
        ("sse-customer-algorithm", opts.sse_customer_algorithm),
        ("sse-customer-key", opts.sse_customer_key),
        ("sse-kms-key-id", opts.sse_kms_key_id),
    ):
        if value is not None:
            query.append((name, value))
    tail = "/" + path.lstrip("/") if path not in ("", ".") else ""
    url = f"s3://{bucket}{tail}?{urllib.parse.urlencode(query)}"
    return _Built(url, host=bucket, path=path, s3=opts)


def _bucket_and_path(rc: ReplicaConfig, kind: str) -> tuple[str, str, _GoURL | None]:
    _check_exclusive(rc, kind, "bucket", rc.bucket)
    bucket, path = rc.bucket, rc.path
    u = (_go_parse_url if kind == "abs" else _go_parse_replica_url)(rc.url) if rc.url else None
    if u is not None:
        path = path or _object_path(u)
        bucket = bucket or u.host
    if not bucket:
        raise ConfigError(f"bucket required for {kind} replica")
    return bucket, path, u


def _build_gs(rc: ReplicaConfig) -> _Built:
    bucket, path, _ = _bucket_and_path(rc, "gs")
    tail = "/" + path.lstrip("/") if path not in ("", ".") else ""
    return _Built(f"gs://{bucket}{tail}", host=bucket, path=path)


def _build_abs(rc: ReplicaConfig) -> _Built:
    bucket, path, u = _bucket_and_path(rc, "abs")
    account = rc.account_name or (u.user if u is not None and u.user else "")
    tail = "/" + path.lstrip("/") if path not in ("", ".") else ""
    return _Built(f"abs://{_quote_user(account, '')}{bucket}{tail}", host=bucket, path=path)


def _build_sftp(rc: ReplicaConfig) -> _Built:
    _check_exclusive(rc, "sftp", "host", rc.host)
    host, user, password, path = rc.host, rc.user, rc.password, rc.path
    if rc.url:
        u = _go_parse_url(rc.url)
        host = host or u.host
        user = user or (u.user or "")
        password = password or (u.password or "")
        path = path or u.path
    if not host:
        raise ConfigError("host required for sftp replica")
    if not user:
        raise ConfigError("user required for sftp replica")
    tail = "/" + path if path else ""
    return _Built(f"sftp://{_quote_user(user, password)}{host}{tail}")


def _build_webdav(rc: ReplicaConfig) -> _Built:
    _check_exclusive(rc, "webdav", "webdav-url", rc.webdav_url)
    server, username, password, path = rc.webdav_url, rc.webdav_username, rc.webdav_password, rc.path
    if rc.url:
        u = _go_parse_url(rc.url)
        if not server and u.host:
            server = ("https" if u.scheme == "webdavs" else "http") + "://" + u.host
        username = username or (u.user or "")
        password = password or (u.password or "")
        path = path or u.path
    if not server:
        raise ConfigError("webdav-url required for webdav replica")
    s = urllib.parse.urlsplit(server if "://" in server else "http://" + server)
    scheme = "webdavs" if s.scheme == "https" else "webdav"
    full = go_join(s.path, path) if s.path.strip("/") else path
    tail = "/" + full.lstrip("/") if full else ""
    return _Built(f"{scheme}://{_quote_user(username, password)}{s.netloc.rpartition('@')[2]}{tail}")


_BUILDERS: Final[dict[str, Callable[[ReplicaConfig], _Built]]] = {
    "file": _build_file,
    "s3": _build_s3,
    "gs": _build_gs,
    "abs": _build_abs,
    "sftp": _build_sftp,
    "webdav": _build_webdav,
}


def _check_nats(rc: ReplicaConfig) -> None:
    bucket = ""
    if rc.url:
        try:
            u = _go_parse_replica_url(rc.url)
        except ConfigError as e:
            raise ConfigError(f"invalid NATS URL: {e}") from e
        if u.scheme != "nats":
            raise ConfigError(f"invalid scheme for NATS replica: {u.scheme}")
        bucket = _object_path(u).strip("/")  # Go quirk: "nats://host" gives bucket "."
    if not (bucket or rc.bucket):
        raise ConfigError("bucket required for NATS replica")
    if bool(rc.client_cert) != bool(rc.client_key):
        raise ConfigError("client-cert and client-key must both be specified for mutual TLS authentication")


def _build_replica(rc: ReplicaConfig) -> _Built:
    built = _check_replica(rc)
    if built is None:
        raise ConfigError(
            f"replica type {_go_quote(rc.replica_type)} is not supported by this implementation"
        )
    return built


# --------------------------------------------------------------------------------------------
# Directory entries (reference §7.4)


def is_sqlite_database(path: str) -> bool:
    """Whether the file starts with the 16-byte header ``SQLite format 3\\0`` (unreadable → False)."""
    try:
        with open(path, "rb") as f:
            return f.read(16) == _SQLITE_MAGIC
    except OSError:
        return False


def find_sqlite_databases(dir_path: str, pattern: str, recursive: bool) -> list[str]:
    """Litestream's ``FindSQLiteDatabases``: SQLite files under ``dir_path`` whose base name matches.

    Walks like Go's ``filepath.Walk`` (lexical order, symlinks not followed, a symlinked
    ``dir_path`` is not descended into) and only into subdirectories when ``recursive``.
    Raises :class:`ConfigError` with Go's text for a walk error or a bad pattern.
    """
    found: list[str] = []

    def lstat(path: str) -> os.stat_result:
        try:
            return os.lstat(path)
        except OSError as e:
            raise ConfigError(_go_os_error("lstat", path, e)) from e

    def visit(path: str, st: os.stat_result) -> None:
        if stat.S_ISDIR(st.st_mode):
            try:
                names = sorted(os.listdir(path))
            except OSError as e:
                raise ConfigError(_go_os_error("open", path, e)) from e
            if not recursive and path != dir_path:
                return
            for name in names:
                child = go_join(path, name)
                visit(child, lstat(child))
        elif go_match(pattern, posixpath.basename(path)) and is_sqlite_database(path):
            found.append(path)

    visit(dir_path, lstat(dir_path))
    return found


def _append_url_path(url: str, rel: str) -> str:
    """Go: parse ``url``, ``path.Join`` ``rel`` onto its path (kept rooted), ``u.String()``."""
    rel = rel.removeprefix("/")
    if rel in ("", "."):
        return url
    u = urllib.parse.urlsplit(url)
    base = urllib.parse.unquote(u.path)
    joined = go_join(base, rel) if base else rel
    joined = "/" + joined.removeprefix("/")
    return urllib.parse.urlunsplit(u._replace(path=urllib.parse.quote(joined, safe=_PATH_SAFE)))


def _replica_for_rel(rc: ReplicaConfig, rel: str) -> ReplicaConfig:
    if rel in ("", "."):
        return rc
    if rc.url:
        try:
            _go_parse_url(rc.url)
        except ConfigError as e:
            raise ConfigError(f"parse replica url: {e}") from e
        return attrs.evolve(rc, url=_append_url_path(rc.url, rel))
    # file: filepath.Join; other types: path.Join on slashes (the same thing on POSIX).
    return attrs.evolve(rc, path=go_join(rc.path, rel) if rc.path else rel)


def _meta_path_for_rel(base: str, rel: str) -> str:
    rel = go_clean(rel)
    if rel in (".", ""):
        return base
    rel_dir, rel_file = posixpath.split(rel)
    return go_join(base, rel_dir, "." + rel_file + META_DIR_SUFFIX)


def db_from_dir_entry(entry: DBConfig, db_path: str) -> DBConfig:
    """The database a ``dir:`` entry gives for the discovered file ``db_path`` (absolute).

    With ``rel`` = ``db_path`` relative to ``entry.dir``: the replica URL path or replica
    path gets ``/rel`` appended; the meta path is ``<meta-dir>/<rel>-litestream``, or
    ``<meta-path>/<dir of rel>/.<base>-litestream``, or the default next to the database.
    The replica is checked as Litestream does when it builds the database; errors are
    wrapped as ``failed to create DB for <db_path>: …``.
    """
    rel = posixpath.relpath(db_path, entry.dir)
    try:
        if entry.meta_dir is not None:
            meta_path = go_join(entry.meta_dir, rel + META_DIR_SUFFIX)
        elif entry.meta_path is not None:
            meta_path = _meta_path_for_rel(entry.meta_path, rel)
        else:
            meta_path = default_meta_path(db_path)
        replica = _replica_for_rel(entry.replica, rel) if entry.replica is not None else None
        replicas = tuple(_replica_for_rel(r, rel) for r in entry.replicas)
        db = attrs.evolve(
            entry,
            path=db_path,
            dir="",
            pattern="",
            recursive=False,
            watch=False,
            meta_path=meta_path,
            meta_dir=None,
            replica=replica,
            replicas=replicas,
        )
        _check_db(db)
    except ConfigError as e:
        raise ConfigError(f"failed to create DB for {db_path}: {e}") from e
    return _finish_db(db, None)


def _expand_dir_entry(entry: DBConfig) -> Iterator[DBConfig]:
    try:
        paths = find_sqlite_databases(entry.dir, entry.pattern, entry.recursive)
    except ConfigError as e:
        raise ConfigError(f"failed to scan directory {entry.dir}: {e}") from e
    if not paths and not entry.watch:
        raise ConfigError(f"no SQLite databases found in directory {entry.dir} with pattern {entry.pattern}")
    owners: dict[str, str] = {}
    for path in paths:
        db = db_from_dir_entry(entry, path)
        assert db.meta_path is not None
        if db.meta_path in owners:
            raise ConfigError(
                f"meta-path collision: databases {owners[db.meta_path]} and {path} would share meta-path "
                f"{db.meta_path}, causing replication state corruption"
            )
        owners[db.meta_path] = path
        yield db


def expand_dir_entries(config: Config) -> list[DBConfig]:
    """Every database of ``config``: path entries as they are, ``dir:`` entries discovered now.

    Discovery keeps files whose base name matches ``pattern`` (Go ``filepath.Match``) and
    that start with the SQLite header, recursing only with ``recursive: true``; each
    becomes :func:`db_from_dir_entry`. An empty result is an error unless ``watch: true``
    (``no SQLite databases found in directory D with pattern P``); two databases of one
    entry with the same meta path give ``meta-path collision: …``.
    """
    out: list[DBConfig] = []
    for db in config.dbs:
        if db.dir:
            out.extend(_expand_dir_entry(db))
        else:
            out.append(db)
    return out
