"""The page index: where each page frame sits, for random access.

Stored after the page block as unsigned LEB128 varint triples
``(pgno, offset, size)`` in ascending page order, a varint ``0``, then a u64
giving the byte length of the varints (terminator included). ``offset`` is the
absolute file offset of the frame's page header; ``size`` is the whole frame.

The index is held as three numpy ``uint64`` columns and coded with vectorised
varint arithmetic: a 200 MB database has ~50,000 entries, too many for one
Python object each on the hot path.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from ltx.errors import PageIndexError, TruncatedError

INDEX_SIZE_FIELD = 8
_U64 = struct.Struct(">Q")
_MAX_VARINT = 10
_SMALL_INDEX = 64
"""Indexes up to this many entries are encoded in plain Python (same bytes)."""

U64Array = npt.NDArray[np.uint64]


@attrs.frozen
class PageIndexEntry:
    pgno: int
    offset: int
    size: int


def _empty() -> U64Array:
    return np.zeros(0, dtype=np.uint64)


@attrs.frozen(eq=False)
class PageIndex:
    """Columns ``pgnos``, ``offsets``, ``sizes`` (``uint64``), pages ascending."""

    pgnos: U64Array = attrs.field(factory=_empty)
    offsets: U64Array = attrs.field(factory=_empty)
    sizes: U64Array = attrs.field(factory=_empty)

    @classmethod
    def from_columns(
        cls, pgnos: Sequence[int] | Any, offsets: Sequence[int] | Any, sizes: Sequence[int] | Any
    ) -> PageIndex:
        return cls(
            np.asarray(pgnos, dtype=np.uint64),
            np.asarray(offsets, dtype=np.uint64),
            np.asarray(sizes, dtype=np.uint64),
        )

    def __len__(self) -> int:
        return len(self.pgnos)

    def __iter__(self) -> Iterator[PageIndexEntry]:
        for p, o, s in zip(self.pgnos.tolist(), self.offsets.tolist(), self.sizes.tolist(), strict=True):
            yield PageIndexEntry(p, o, s)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PageIndex):
            return NotImplemented
        return bool(
            np.array_equal(self.pgnos, other.pgnos)
            and np.array_equal(self.offsets, other.offsets)
            and np.array_equal(self.sizes, other.sizes)
        )

    def entry(self, pgno: int) -> PageIndexEntry | None:
        """The entry for ``pgno``, or None when the file does not hold that page."""
        i = int(np.searchsorted(self.pgnos, np.uint64(pgno)))
        if i < len(self.pgnos) and int(self.pgnos[i]) == pgno:
            return PageIndexEntry(pgno, int(self.offsets[i]), int(self.sizes[i]))
        return None

    def to_bytes(self) -> bytes:
        """The stored form: varint triples, a zero varint, and the u64 length of those."""
        n = len(self.pgnos)
        if n <= _SMALL_INDEX:  # numpy's per-call cost dominates a few entries (an L0 file's)
            out = bytearray()
            for triple in zip(self.pgnos.tolist(), self.offsets.tolist(), self.sizes.tolist(), strict=True):
                for v in triple:
                    while v >= 0x80:
                        out.append((v & 0x7F) | 0x80)
                        v >>= 7
                    out.append(v)
            out.append(0)
            return bytes(out) + _U64.pack(len(out))
        vals = np.empty(3 * n, dtype=np.uint64)
        vals[0::3], vals[1::3], vals[2::3] = self.pgnos, self.offsets, self.sizes
        body = _encode_uvarints(vals) + b"\x00"
        return body + _U64.pack(len(body))

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview) -> PageIndex:
        """Decode exactly an index's bytes (varints, terminator, size field).

        Raises :class:`PageIndexError` unless the varints end with a lone zero
        varint and fill exactly the length the size field records, with pages
        strictly ascending and non-zero.
        """
        if len(buf) < INDEX_SIZE_FIELD + 1:
            raise TruncatedError("page index is too short")
        body_len = len(buf) - INDEX_SIZE_FIELD
        recorded = _U64.unpack_from(buf, body_len)[0]
        if recorded != body_len:
            raise PageIndexError(f"page index size field says {recorded} bytes, found {body_len}")
        vals = _decode_uvarints(np.frombuffer(buf, dtype=np.uint8, count=body_len))
        if len(vals) % 3 != 1 or vals[-1] != 0:
            raise PageIndexError("page index does not end with its terminator")
        triples = vals[:-1]
        pgnos, offsets, sizes = triples[0::3].copy(), triples[1::3].copy(), triples[2::3].copy()
        if len(pgnos) and (pgnos[0] == 0 or np.any(pgnos[1:] <= pgnos[:-1])):
            raise PageIndexError("page index page numbers are not strictly ascending")
        return cls(pgnos, offsets, sizes)


def _encode_uvarints(vals: U64Array) -> bytes:
    if len(vals) == 0:
        return b""
    lengths = np.ones(len(vals), dtype=np.int64)
    for k in range(1, _MAX_VARINT):
        lengths += vals >= np.uint64(1 << (7 * k))
    starts = np.zeros(len(vals), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    out = np.empty(int(lengths.sum()), dtype=np.uint8)
    for k in range(int(lengths.max())):
        m = lengths > k
        chunk = (vals[m] >> np.uint64(7 * k)) & np.uint64(0x7F)
        cont = np.where(lengths[m] > k + 1, np.uint64(0x80), np.uint64(0))
        out[starts[m] + k] = (chunk | cont).astype(np.uint8)
    return out.tobytes()


def _decode_uvarints(data: npt.NDArray[np.uint8]) -> U64Array:
    """All varints in ``data``, which must end at a varint boundary."""
    if len(data) == 0:
        return _empty()
    ends = np.flatnonzero(data < 0x80)
    if len(ends) == 0 or ends[-1] != len(data) - 1:
        raise PageIndexError("page index ends inside a varint")
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if int(lengths.max()) > _MAX_VARINT:
        raise PageIndexError("page index varint overflows u64")
    vals = np.zeros(len(ends), dtype=np.uint64)
    for k in range(int(lengths.max())):
        m = lengths > k
        vals[m] |= (data[starts[m] + k].astype(np.uint64) & np.uint64(0x7F)) << np.uint64(7 * k)
    if np.any((lengths == _MAX_VARINT) & (data[ends] > 1)):
        raise PageIndexError("page index varint overflows u64")
    return vals


def index_size(tail: bytes | bytearray | memoryview) -> int:
    """From the 8 bytes before the trailer, the length of the varint part of the index."""
    return int(_U64.unpack_from(tail)[0])
