"""Byte layouts of the fixed-size parts of an LTX file, declared once as data.

Each layout is a tuple of :class:`Field` rows (name, offset, size, struct code,
meaning). The codecs in :mod:`ltx.header`, :mod:`ltx.page` and
:mod:`ltx.trailer` build their ``struct.Struct`` from these rows, and
``docs/spec/ltx.md`` carries the same rows rendered by :func:`markdown_table`;
a test fails when the two disagree. All integers are big-endian.
"""

from __future__ import annotations

import struct

import attrs


@attrs.frozen
class Field:
    """One fixed-size field: where it sits and how it is encoded."""

    name: str
    offset: int
    size: int
    code: str
    """``struct`` code for the field; ``"x"`` marks reserved bytes (written as zeros, ignored)."""
    meaning: str


def _check(fields: tuple[Field, ...], total: int) -> tuple[Field, ...]:
    pos = 0
    for f in fields:
        if f.offset != pos:
            raise AssertionError(f"layout gap before {f.name}")
        width = f.size if f.code in ("x", "s") else struct.calcsize(">" + f.code)
        if width != f.size:
            raise AssertionError(f"{f.name}: code {f.code!r} is {width} bytes, declared {f.size}")
        pos += f.size
    if pos != total:
        raise AssertionError(f"layout is {pos} bytes, declared {total}")
    return fields


HEADER_SIZE = 100
HEADER_FIELDS: tuple[Field, ...] = _check(
    (
        Field("magic", 0, 4, "s", 'ASCII "LTX1"; anything else is not an LTX file'),
        Field("flags", 4, 4, "I", "0x00000002 = NoChecksum; every other bit must be zero"),
        Field("page_size", 8, 4, "I", "database page size: a power of two, 512 to 65536"),
        Field("commit", 12, 4, "I", "database size in pages after the file is applied"),
        Field("min_txid", 16, 8, "Q", "first TXID covered (>= 1); 1 makes the file a snapshot"),
        Field("max_txid", 24, 8, "Q", "last TXID covered (>= min_txid)"),
        Field("timestamp", 32, 8, "q", "creation time, milliseconds since the Unix epoch"),
        Field("pre_apply_checksum", 40, 8, "Q", "database checksum before applying; 0 if absent"),
        Field("wal_offset", 48, 8, "q", "offset in the source WAL of the first frame read; 0 if none"),
        Field("wal_size", 56, 8, "q", "bytes of WAL the file was made from; 0 if wal_offset is 0"),
        Field("wal_salt1", 64, 4, "I", "salt 1 of the source WAL header"),
        Field("wal_salt2", 68, 4, "I", "salt 2 of the source WAL header"),
        Field("node_id", 72, 8, "Q", "writer node ID; 0 when unset (Litestream writes 0)"),
        Field("reserved", 80, 20, "x", "zeros when written, ignored when read"),
    ),
    HEADER_SIZE,
)

PAGE_HEADER_SIZE = 6
PAGE_HEADER_FIELDS: tuple[Field, ...] = _check(
    (
        Field("pgno", 0, 4, "I", "page number (>= 1); 0 ends the page block"),
        Field("flags", 4, 2, "H", "0x0001 = a u32 payload size follows (block encoding); 0 = legacy frame"),
    ),
    PAGE_HEADER_SIZE,
)

PAGE_SIZE_PREFIX_SIZE = 4
"""Block encoding only: a u32 byte count of the LZ4 block that follows."""

TRAILER_SIZE = 16
TRAILER_FIELDS: tuple[Field, ...] = _check(
    (
        Field("post_apply_checksum", 0, 8, "Q", "database checksum after applying; 0 with NoChecksum"),
        Field("file_checksum", 8, 8, "Q", "CRC-64 of the file (see below), bit 63 set"),
    ),
    TRAILER_SIZE,
)


def struct_of(fields: tuple[Field, ...]) -> struct.Struct:
    """The big-endian ``struct`` that packs ``fields`` in order."""
    fmt = ">" + "".join(f"{f.size}{f.code}" if f.code in ("x", "s") else f.code for f in fields)
    return struct.Struct(fmt)


def value_fields(fields: tuple[Field, ...]) -> tuple[str, ...]:
    """Names of the fields that carry a value (reserved padding excluded)."""
    return tuple(f.name for f in fields if f.code != "x")


def markdown_table(fields: tuple[Field, ...]) -> str:
    """Render ``fields`` as the Markdown table used in ``docs/spec/ltx.md``."""
    rows = ["| offset | size | field | meaning |", "|---:|---:|---|---|"]
    rows += [f"| {f.offset} | {f.size} | `{f.name}` | {f.meaning} |" for f in fields]
    return "\n".join(rows)


TABLES: dict[str, tuple[Field, ...]] = {
    "header": HEADER_FIELDS,
    "page-header": PAGE_HEADER_FIELDS,
    "trailer": TRAILER_FIELDS,
}
"""The tables ``docs/spec/ltx.md`` embeds, keyed by the marker name used there."""


def main() -> None:
    """Print each table as ``docs/spec/ltx.md`` embeds it (``python -m ltx.layout``)."""
    for name, fields in TABLES.items():
        print(f"<!-- layout:{name} -->\n{markdown_table(fields)}\n<!-- /layout:{name} -->\n")


if __name__ == "__main__":
    main()
