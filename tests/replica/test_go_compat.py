"""The Go reproductions of :mod:`replica._go` against outputs of the Go functions themselves.

Each table below is copied from the Go (or go-humanize) test file or documentation named
in its comment, so an expected value is what Go returns, not what we think it should.
Inputs are Go string literals rewritten in Python syntax; durations are nanoseconds.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from replica._go.duration import format_go_duration, parse_duration, parse_go_duration
from replica._go.errors import GoError
from replica._go.expand import go_expand
from replica._go.match import BadPatternError, match
from replica._go.oserror import path_error
from replica._go.size import parse_bytes
from replica._go.strconv import parse_int, quote
from replica._go.url import parse_url
from replica._go.walk import SkipDir, walk
from replica.errors import ReplicaError

NS = 1
US = 1000 * NS
MS = 1000 * US
S = 1000 * MS
MIN = 60 * S
H = 60 * MIN
MAX_DURATION = (1 << 63) - 1
MIN_DURATION = -(1 << 63)


# --------------------------------------------------------------------------------------------
# os.Expand: src/os/env_test.go (testGetenv and expandTests)


def _test_getenv(name: str) -> str:
    return {
        "*": "all the args",
        "#": "NARGS",
        "$": "PID",
        "1": "ARGUMENT1",
        "HOME": "/usr/gopher",
        "H": "(Value of H)",
        "home_1": "/usr/foo",
        "_": "underscore",
    }.get(name, "")


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("", ""),
        ("$*", "all the args"),
        ("$$", "PID"),
        ("${*}", "all the args"),
        ("$1", "ARGUMENT1"),
        ("${1}", "ARGUMENT1"),
        ("now is the time", "now is the time"),
        ("$HOME", "/usr/gopher"),
        ("$home_1", "/usr/foo"),
        ("${HOME}", "/usr/gopher"),
        ("${H}OME", "(Value of H)OME"),
        ("A$$$#$1$H$home_1*B", "APIDNARGSARGUMENT1(Value of H)/usr/foo*B"),
        ("start$+middle$^end$", "start$+middle$^end$"),
        ("mixed$|bag$$$", "mixed$|bagPID$"),
        ("$", "$"),
        ("$}", "$}"),
        ("${", ""),  # invalid syntax; Go eats the characters
        ("${}", ""),  # invalid syntax; Go eats the characters
    ],
)
def test_expand_matches_go(text: str, expanded: str) -> None:
    assert go_expand(text, _test_getenv) == expanded


# --------------------------------------------------------------------------------------------
# time.ParseDuration: src/time/time_test.go (parseDurationTests, parseDurationErrorTests)
# and the time package documentation (ExampleParseDuration).


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        # simple
        ("0", 0),
        ("5s", 5 * S),
        ("30s", 30 * S),
        ("1478s", 1478 * S),
        # sign
        ("-5s", -5 * S),
        ("+5s", 5 * S),
        ("-0", 0),
        ("+0", 0),
        # decimal
        ("5.0s", 5 * S),
        ("5.6s", 5 * S + 600 * MS),
        ("5.s", 5 * S),
        (".5s", 500 * MS),
        ("1.0s", 1 * S),
        ("1.00s", 1 * S),
        ("1.004s", 1 * S + 4 * MS),
        ("1.0040s", 1 * S + 4 * MS),
        ("100.00100s", 100 * S + 1 * MS),
        # different units
        ("10ns", 10 * NS),
        ("11us", 11 * US),
        ("12\u00b5s", 12 * US),  # U+00B5
        ("12\u03bcs", 12 * US),  # U+03BC
        ("13ms", 13 * MS),
        ("14s", 14 * S),
        ("15m", 15 * MIN),
        ("16h", 16 * H),
        # composite durations
        ("3h30m", 3 * H + 30 * MIN),
        ("10.5s4m", 4 * MIN + 10 * S + 500 * MS),
        ("-2m3.4s", -(2 * MIN + 3 * S + 400 * MS)),
        ("1h2m3s4ms5us6ns", 1 * H + 2 * MIN + 3 * S + 4 * MS + 5 * US + 6 * NS),
        ("39h9m14.425s", 39 * H + 9 * MIN + 14 * S + 425 * MS),
        # large value
        ("52763797000ns", 52763797000 * NS),
        # more than 9 digits after decimal point, see https://golang.org/issue/6617
        ("0.3333333333333333333h", 20 * MIN),
        # 9007199254740993 = 1<<53+1 cannot be stored precisely in a float64
        ("9007199254740993ns", ((1 << 53) + 1) * NS),
        # largest duration that can be represented by int64 in nanoseconds
        ("9223372036854775807ns", MAX_DURATION),
        ("9223372036854775.807us", MAX_DURATION),
        ("9223372036s854ms775us807ns", MAX_DURATION),
        ("-9223372036854775808ns", MIN_DURATION),
        ("-9223372036854775.808us", MIN_DURATION),
        ("-9223372036s854ms775us808ns", MIN_DURATION),
        # largest negative round trip value, see https://golang.org/issue/48629
        ("-2562047h47m16.854775808s", MIN_DURATION),
        # huge string; issue 15011.
        ("0.100000000000000000000h", 6 * MIN),
        # This value tests the first overflow check in leadingFraction.
        ("0.830103483285477580700h", 49 * MIN + 48 * S + 372539827 * NS),
        # ExampleParseDuration: "1h10m10s" is 4210 seconds; "1µs" and "1us" are 1000 ns.
        ("1h10m10s", 4210 * S),
        ("1\u00b5s", 1000 * NS),
        ("1us", 1000 * NS),
        ("10h", 10 * H),
    ],
)
def test_parse_duration_matches_go(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        # invalid
        ("", '""'),
        ("3", '"3"'),
        ("-", '"-"'),
        ("s", '"s"'),
        (".", '"."'),
        ("-.", '"-."'),
        (".s", '".s"'),
        ("+.s", '"+.s"'),
        ("1d", '"1d"'),
        # overflow
        ("9223372036854775810ns", '"9223372036854775810ns"'),
        ("9223372036854775808ns", '"9223372036854775808ns"'),
        ("-9223372036854775809ns", '"-9223372036854775809ns"'),
        ("9223372036854776us", '"9223372036854776us"'),
        ("3000000h", '"3000000h"'),
        ("9223372036854775.808us", '"9223372036854775.808us"'),
        ("9223372036854ms775us808ns", '"9223372036854ms775us808ns"'),
    ],
)
def test_parse_duration_errors_match_go(text: str, quoted: str) -> None:
    with pytest.raises(GoError) as info:
        parse_go_duration(text)
    assert quoted in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ReplicaError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # The three texts of src/time/format.go's ParseDuration.
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        ("3", 'time: missing unit in duration "3"'),
        ("-", 'time: invalid duration "-"'),
        ("3000000h", 'time: invalid duration "3000000h"'),
    ],
)
def test_parse_duration_error_texts(text: str, message: str) -> None:
    with pytest.raises(GoError) as info:
        parse_go_duration(text)
    assert str(info.value) == message


def test_parse_duration_as_timedelta() -> None:
    assert parse_duration("1h2m3.5s") == dt.timedelta(hours=1, minutes=2, seconds=3.5)
    assert parse_duration("1.5h") == dt.timedelta(minutes=90)
    assert parse_duration("-1.5h") == -dt.timedelta(minutes=90)
    assert parse_duration("1ns") == dt.timedelta(microseconds=1)  # kept non-zero
    assert parse_duration("-1ns") == -dt.timedelta(microseconds=1)


# --------------------------------------------------------------------------------------------
# time.Duration.String: src/time/time_test.go (durationTests, TestDurationString) and the
# time package documentation (ExampleDuration_String).


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0s", 0),
        ("1ns", 1 * NS),
        ("1.1\u00b5s", 1100 * NS),
        ("2.2ms", 2200 * US),
        ("3.3s", 3300 * MS),
        ("4m5s", 4 * MIN + 5 * S),
        ("4m5.001s", 4 * MIN + 5001 * MS),
        ("5h6m7.001s", 5 * H + 6 * MIN + 7001 * MS),
        ("8m0.000000001s", 8 * MIN + 1 * NS),
        ("2562047h47m16.854775807s", MAX_DURATION),
        ("-2562047h47m16.854775808s", MIN_DURATION),
        # ExampleDuration_String
        ("1h2m0.3s", 1 * H + 2 * MIN + 300 * MS),
        ("300ms", 300 * MS),
        # time.Duration(1500) * time.Millisecond
        ("1.5s", 1500 * MS),
    ],
)
def test_duration_string_matches_go(text: str, ns: int) -> None:
    assert format_go_duration(ns) == text
    if ns > 0:  # TestDurationString also checks the negation
        assert format_go_duration(-ns) == "-" + text


def test_duration_string_of_timedelta() -> None:
    assert format_go_duration(dt.timedelta(hours=1)) == "1h0m0s"
    assert format_go_duration(dt.timedelta(milliseconds=1500)) == "1.5s"
    assert format_go_duration(dt.timedelta(microseconds=1)) == "1\u00b5s"


def test_duration_round_trip_of_extremes() -> None:
    # TestParseDurationRoundTrip (https://golang.org/issue/48629)
    for ns in (MAX_DURATION, MIN_DURATION):
        assert parse_go_duration(format_go_duration(ns)) == ns


# --------------------------------------------------------------------------------------------
# filepath.Match: src/path/filepath/match_test.go (matchTests); ErrBadPattern's text is
# "syntax error in pattern" (src/path/filepath/match.go).


@pytest.mark.parametrize(
    ("pattern", "name", "matched"),
    [
        ("abc", "abc", True),
        ("*", "abc", True),
        ("*c", "abc", True),
        ("a*", "a", True),
        ("a*", "abc", True),
        ("a*", "ab/c", False),
        ("a*/b", "abc/b", True),
        ("a*/b", "a/c/b", False),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
        ("a*b?c*x", "abxbbxdbxebxczzx", True),
        ("a*b?c*x", "abxbbxdbxebxczzy", False),
        ("ab[c]", "abc", True),
        ("ab[b-d]", "abc", True),
        ("ab[e-g]", "abc", False),
        ("ab[^c]", "abc", False),
        ("ab[^b-d]", "abc", False),
        ("ab[^e-g]", "abc", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "ab", False),
        ("a?b", "a\u263ab", True),
        ("a[^a]b", "a\u263ab", True),
        ("a???b", "a\u263ab", False),
        ("a[^a][^a][^a]b", "a\u263ab", False),
        ("[a-\u03b6]*", "\u03b1", True),
        ("*[a-\u03b6]", "A", False),
        ("a?b", "a/b", False),
        ("a*b", "a/b", False),
        ("[\\]a]", "]", True),
        ("[\\-]", "-", True),
        ("[x\\-]", "x", True),
        ("[x\\-]", "-", True),
        ("[x\\-]", "z", False),
        ("[\\-x]", "x", True),
        ("[\\-x]", "-", True),
        ("[\\-x]", "a", False),
        ("*x", "xxx", True),
    ],
)
def test_match_matches_go(pattern: str, name: str, matched: bool) -> None:
    assert match(pattern, name) is matched


@pytest.mark.parametrize(
    ("pattern", "name"),
    [
        ("[]a]", "]"),
        ("[-]", "-"),
        ("[x-]", "x"),
        ("[x-]", "-"),
        ("[x-]", "z"),
        ("[-x]", "x"),
        ("[-x]", "-"),
        ("[-x]", "a"),
        ("\\", "a"),
        ("[a-b-c]", "a"),
        ("[", "a"),
        ("[^", "a"),
        ("[^bc", "a"),
        ("a[", "a"),
        ("a[", "ab"),
        ("a[", "x"),
        ("a/b[", "x"),
    ],
)
def test_match_bad_patterns_match_go(pattern: str, name: str) -> None:
    with pytest.raises(BadPatternError) as info:
        match(pattern, name)
    assert str(info.value) == "syntax error in pattern"


# --------------------------------------------------------------------------------------------
# go-humanize ParseBytes: bytes_test.go (TestByteParsing, TestByteErrors) and bytes.go
# for the error texts.

E_BYTE = 1000**6
EI_BYTE = 1024**6


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("42", 42),
        ("42MB", 42000000),
        ("42MiB", 44040192),
        ("42mb", 42000000),
        ("42mib", 44040192),
        ("42MIB", 44040192),
        ("42 MB", 42000000),
        ("42 MiB", 44040192),
        ("42 mb", 42000000),
        ("42 mib", 44040192),
        ("42 MIB", 44040192),
        ("42.5MB", 42500000),
        ("42.5MiB", 44564480),
        ("42.5 MB", 42500000),
        ("42.5 MiB", 44564480),
        # No need to say B
        ("42M", 42000000),
        ("42Mi", 44040192),
        ("42m", 42000000),
        ("42mi", 44040192),
        ("42MI", 44040192),
        ("42 M", 42000000),
        ("42 Mi", 44040192),
        ("42 m", 42000000),
        ("42 mi", 44040192),
        ("42 MI", 44040192),
        ("42.5M", 42500000),
        ("42.5Mi", 44564480),
        ("42.5 M", 42500000),
        ("42.5 Mi", 44564480),
        # Large values: Go computes uint64(12.5 * float64(EByte)), i.e. in float64.
        ("12.5 EB", int(12.5 * float(E_BYTE))),
        ("12.5 E", int(12.5 * float(E_BYTE))),
        ("12.5 EiB", int(12.5 * float(EI_BYTE))),
    ],
)
def test_parse_bytes_matches_go_humanize(text: str, size: int) -> None:
    assert parse_bytes(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("84 JB", "unhandled size name: jb"),
        ("", 'strconv.ParseFloat: parsing "": invalid syntax'),
        ("16 EiB", "too large: 16 EiB"),
    ],
)
def test_parse_bytes_errors_match_go_humanize(text: str, message: str) -> None:
    with pytest.raises(GoError) as info:
        parse_bytes(text)
    assert str(info.value) == message


# --------------------------------------------------------------------------------------------
# strconv: ParseInt(s, 0, 64) from src/strconv/atoi_test.go (parseInt64BaseTests, base 0,
# in range; parseUint64BaseTests for "0b") and the ParseInt documentation for the 0b/0o
# prefixes; Quote for printable text.


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("", None),
        ("0", 0),
        ("-0", 0),
        ("1", 1),
        ("-1", -1),
        ("12345", 12345),
        ("-12345", -12345),
        ("012345", 0o12345),
        ("-012345", -0o12345),
        ("0x12345", 0x12345),
        ("-0X12345", -0x12345),
        ("12345x", None),
        ("-12345x", None),
        ("98765432100", 98765432100),
        ("-98765432100", -98765432100),
        ("9223372036854775807", (1 << 63) - 1),
        ("-9223372036854775807", -((1 << 63) - 1)),
        ("-9223372036854775808", -(1 << 63)),
        ("0b", None),
        ("0b101", 5),
        ("0o17", 15),
        ("08", None),
    ],
)
def test_parse_int_base_0_matches_go(text: str, value: int | None) -> None:
    assert parse_int(text) == value


@pytest.mark.parametrize(
    ("text", "quoted"),
    [("abc", '"abc"'), ("", '""'), ('a"b', '"a\\"b"'), ("a\\b", '"a\\\\b"'), ("sftp", '"sftp"')],
)
def test_quote_matches_go_for_printable_text(text: str, quoted: str) -> None:
    assert quote(text) == quoted


# --------------------------------------------------------------------------------------------
# url.Parse: url.Error is "<op> <quoted URL>: <err>" and EscapeError is
# "invalid URL escape <quoted>" with at most three characters (src/net/url/url.go;
# unescapeTests in src/net/url/url_test.go for the cut: "%zzzzz" -> "%zz", "%" -> "%").


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://bucket/%zzzzz", 'parse "s3://bucket/%zzzzz": invalid URL escape "%zz"'),
        ("s3://bucket/a%", 'parse "s3://bucket/a%": invalid URL escape "%"'),
        ("s3://bucket/a%1", 'parse "s3://bucket/a%1": invalid URL escape "%1"'),
        ("s3://b%zz/x", 'parse "s3://b%zz/x": invalid URL escape "%zz"'),
    ],
)
def test_parse_url_escape_errors_match_go(url: str, message: str) -> None:
    with pytest.raises(GoError) as info:
        parse_url(url)
    assert str(info.value) == message


def test_parse_url_fields() -> None:
    u = parse_url("S3://us%40er:p%3Ass@bucket.example:9000/a%20b/c?region=x&endpoint=&region=y")
    assert (u.scheme, u.user, u.password, u.host, u.path) == (
        "s3",
        "us@er",
        "p:ss",
        "bucket.example:9000",
        "/a b/c",
    )
    # url.Values.Get: the first value of a key; "" for a missing key.
    assert (u.get("region"), u.get("endpoint"), u.get("nope")) == ("x", "", "")
    assert parse_url("s3://bucket/p?q=%zz").get("q") == "%zz"  # the query is not checked by Parse
    bare = parse_url("dir/a%20b")
    assert (bare.scheme, bare.host, bare.path) == ("", "", "dir/a b")


# --------------------------------------------------------------------------------------------
# filepath.Walk, as its documentation (src/path/filepath/path.go) describes it: lexical
# order, symbolic links not followed, SkipDir skips a directory (or, returned for a file,
# the rest of that file's directory), errors as *PathError texts.


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for rel in ("b", "a", "sub/z", "sub/y", "sub/deep/x", "zz/w"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    (root / "link").symlink_to(root / "sub", target_is_directory=True)
    return root


def _visits(root: Path, skip: str | None = None) -> list[str]:
    seen: list[str] = []

    def fn(path: str, st: os.stat_result | None, err: GoError | None) -> None:
        assert err is None and st is not None
        rel = os.path.relpath(path, root)
        seen.append(rel)
        if rel == skip:
            raise SkipDir

    walk(str(root), fn)
    return seen


def test_walk_lexical_order_without_following_links(tree: Path) -> None:
    assert _visits(tree) == [
        ".",
        "a",
        "b",
        "link",
        "sub",
        "sub/deep",
        "sub/deep/x",
        "sub/y",
        "sub/z",
        "zz",
        "zz/w",
    ]


def test_walk_skip_dir(tree: Path) -> None:
    assert _visits(tree, skip="sub") == [".", "a", "b", "link", "sub", "zz", "zz/w"]
    # For a file, SkipDir skips the remaining entries of its directory.
    assert _visits(tree, skip="sub/y") == [
        ".",
        "a",
        "b",
        "link",
        "sub",
        "sub/deep",
        "sub/deep/x",
        "sub/y",
        "zz",
        "zz/w",
    ]
    assert _visits(tree, skip=".") == ["."]


def test_walk_symlinked_root_is_a_file(tree: Path) -> None:
    seen: list[tuple[str, bool]] = []

    def fn(path: str, st: os.stat_result | None, err: GoError | None) -> None:
        assert st is not None and err is None
        seen.append((path, os.path.isdir(path) and not os.path.islink(path)))

    walk(str(tree / "link"), fn)
    assert seen == [(str(tree / "link"), False)]


def test_walk_missing_root_reports_lstat_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    calls: list[tuple[str, object, str]] = []

    def fn(path: str, st: os.stat_result | None, err: GoError | None) -> None:
        calls.append((path, st, str(err)))

    walk(missing, fn)
    assert calls == [(missing, None, f"lstat {missing}: no such file or directory")]


def test_walk_stops_with_the_callbacks_error(tree: Path) -> None:
    class Stop(Exception):
        pass

    seen: list[str] = []

    def fn(path: str, st: os.stat_result | None, err: GoError | None) -> None:
        seen.append(os.path.relpath(path, tree))
        if path.endswith("/b"):
            raise Stop

    with pytest.raises(Stop):
        walk(str(tree), fn)
    assert seen == [".", "a", "b"]


def test_path_error_text(tmp_path: Path) -> None:
    missing = str(tmp_path / "x")
    with pytest.raises(OSError) as info:
        open(missing, "rb")  # noqa: SIM115 - only the error matters
    assert path_error("open", missing, info.value) == f"open {missing}: no such file or directory"
