"""Looking inside a database image without touching any file: fingerprints, integrity, differences.

An image is deserialized into a private in-memory SQLite connection. A WAL-mode
image (header bytes 18-19 = 2) cannot be opened in memory, so those two bytes are
set to 1 in the copy; nothing else is changed.

The *logical fingerprint* is a digest of the schema and every row of every table
except SQLite's internal ones and the replicator's own (``_litestream_*``): two
images with the same fingerprint hold the same data, whatever their page layout.
A database that cannot be read has a fingerprint starting with ``unreadable:``,
which equals no readable database's.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Iterator

IGNORED_PREFIXES = ("sqlite_", "_litestream")


def _readable(image: bytes) -> bytes:
    if len(image) >= 20 and (image[18] == 2 or image[19] == 2):
        b = bytearray(image)
        b[18] = b[19] = 1
        return bytes(b)
    return image


@contextlib.contextmanager
def open_image(image: bytes) -> Iterator[sqlite3.Connection]:
    """A read-only in-memory connection holding ``image``."""
    con = sqlite3.connect(":memory:", isolation_level=None)
    try:
        con.deserialize(_readable(image))
        con.execute("PRAGMA query_only = 1")
        yield con
    finally:
        con.close()


def _user_tables(con: sqlite3.Connection) -> list[str]:
    rows = con.execute("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").fetchall()
    return [str(r[0]) for r in rows if not str(r[0]).startswith(IGNORED_PREFIXES)]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def fingerprint(image: bytes) -> str:
    """The logical digest of ``image`` (see the module docstring)."""
    if not image:
        return "empty"
    try:
        with open_image(image) as con:
            d = hashlib.sha256()
            schema = con.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")
            for row in schema:
                if not str(row[1]).startswith(IGNORED_PREFIXES):
                    d.update(repr(row).encode())
            for t in _user_tables(con):
                d.update(f"table {t}\n".encode())
                for row in con.execute(f"SELECT * FROM {_quote(t)} ORDER BY rowid"):
                    d.update(repr(row).encode())
            return d.hexdigest()
    except sqlite3.Error as e:
        return f"unreadable: {e}"


def integrity_check(image: bytes) -> str:
    """SQLite's ``PRAGMA integrity_check`` of ``image``: ``"ok"`` or the problems it lists."""
    try:
        with open_image(image) as con:
            rows = [str(r[0]) for r in con.execute("PRAGMA integrity_check(8)").fetchall()]
    except sqlite3.Error as e:
        return f"error: {e}"
    lines = [ln.strip() for r in rows for ln in r.splitlines() if ln.strip()]
    return "; ".join(lines) if lines else "error: no result"


def summary(image: bytes) -> dict[str, tuple[int, ...]]:
    """Each user table's rowids (for explaining a difference); ``{"<error>": ()}`` if unreadable."""
    try:
        with open_image(image) as con:
            return {
                t: tuple(int(r[0]) for r in con.execute(f"SELECT rowid FROM {_quote(t)} ORDER BY rowid"))
                for t in _user_tables(con)
            }
    except sqlite3.Error as e:
        return {f"<unreadable: {e}>": ()}


def _ranges(ids: list[int]) -> str:
    if not ids:
        return "none"
    parts: list[str] = []
    start = prev = ids[0]
    for i in [*ids[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ", ".join(parts[:8]) + (" ..." if len(parts) > 8 else "")


def explain_difference(expected: bytes, actual: bytes) -> str:
    """A short human account of how ``actual`` differs from ``expected`` (tables and rowids)."""
    e, a = summary(expected), summary(actual)
    notes: list[str] = []
    for t in sorted(set(e) | set(a)):
        if t not in a:
            notes.append(f"table {t} missing")
            continue
        if t not in e:
            notes.append(f"unexpected table {t}")
            continue
        lost = sorted(set(e[t]) - set(a[t]))
        extra = sorted(set(a[t]) - set(e[t]))
        if lost:
            notes.append(f"{t}: rows {_ranges(lost)} missing")
        if extra:
            notes.append(f"{t}: unexpected rows {_ranges(extra)}")
        if not lost and not extra and len(e[t]) == len(a[t]):
            continue
    if not notes:
        notes.append("same tables and rowids; row contents, schema or pages differ")
    return "; ".join(notes)
