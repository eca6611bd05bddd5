"""CRC-64 checksums of pages, databases and files.

The hash is CRC-64 with Go's ``crc64.ISO`` table (reflected, init and xorout
all ones; ``"123456789"`` hashes to ``b90956c775a41001``), computed by the
C-backed ``fastcrc`` package, which releases the GIL and continues a running
CRC through ``initial=``.

* page checksum: CRC of ``be32(pgno) || page``, bit 63 set;
* database checksum: bit 63 set on the XOR of the page checksums of every page
  except the lock page; it changes incrementally as pages change;
* file checksum: CRC over the parts of an LTX file listed in ``docs/spec/ltx.md``,
  bit 63 set (see :mod:`ltx.encoder` and :mod:`ltx.decoder`, which feed it).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import BinaryIO

from fastcrc import crc64 as _crc64

from ltx.names import lock_pgno
from ltx.pos import CHECKSUM_FLAG

Buffer = bytes | bytearray | memoryview

_go_iso = _crc64.go_iso
_be32 = struct.Struct(">I").pack

CRC_INIT = 0
"""Value to start a running CRC with (``crc64(b"")``)."""

READ_CHUNK = 8 << 20
"""Bytes read at a time when checksumming a whole database file."""


crc64: Callable[[Buffer, int], int] = _go_iso
"""``crc64(data, crc)`` continues the running CRC-64/GO-ISO ``crc`` over ``data``
(start from :data:`CRC_INIT`). The C function itself: it sits on every hot path."""


def page_checksum(pgno: int, data: Buffer) -> int:
    """Checksum of one page: CRC of its big-endian page number then its bytes, bit 63 set."""
    return CHECKSUM_FLAG | int(_go_iso(data, initial=_go_iso(_be32(pgno))))


def database_checksum(f: BinaryIO, page_size: int, page_count: int | None = None) -> int:
    """Database checksum of the first ``page_count`` pages of ``f`` (all whole pages if None).

    Reads from the current position in large chunks; the lock page is skipped.
    An empty database has checksum ``1 << 63``. Memory is bounded by
    :data:`READ_CHUNK` whatever the database size.
    """
    lock = lock_pgno(page_size)
    per_chunk = max(1, READ_CHUNK // page_size)
    buf = bytearray(per_chunk * page_size)
    view = memoryview(buf)
    acc = 0
    pgno = 1
    remaining = page_count if page_count is not None else -1
    while remaining != 0:
        want = per_chunk if remaining < 0 else min(per_chunk, remaining)
        n = f.readinto(view[: want * page_size])  # type: ignore[attr-defined]
        if not n:
            break
        whole = n // page_size
        for i in range(whole):
            if pgno != lock:
                acc ^= int(_go_iso(view[i * page_size : (i + 1) * page_size], initial=_go_iso(_be32(pgno))))
            pgno += 1
        if remaining > 0:
            remaining -= whole
        if n % page_size or whole < want:
            break
    return CHECKSUM_FLAG | acc
