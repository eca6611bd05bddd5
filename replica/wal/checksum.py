"""SQLite's WAL checksum, evaluated with numpy as a linear recurrence.

The checksum over 8-byte units ``(w0, w1)`` is ``s0 += w0 + s1; s1 += w1 + s0`` modulo
2**32, each word read in the byte order the WAL magic names. It is linear:
``(s0', s1') = M (s0, s1) + (w0, w0 + w1)`` with ``M = [[1, 1], [1, 2]]``, so over ``n``
units the result is ``M**n s + sum_k M**(n-1-k) v_k``. This module precomputes the
powers of ``M`` once and evaluates the sum as one integer matrix product per batch
(``uint64`` arithmetic wraps modulo 2**64, which keeps the value modulo 2**32); no
Python loop runs per byte, per unit or per page. :func:`wal_checksum_py` is the plain
loop, kept as the reference the fast path is tested against.

Contract: every function here takes input whose length is a multiple of 8 bytes
(:class:`~replica.errors.WALError` otherwise) and returns the state ``(s0, s1)``, each a
``u32``, equal to what the plain loop gives.
"""

from __future__ import annotations

import functools
import struct
from typing import Final

import numpy as np
import numpy.typing as npt

from ltx.header import MAX_PAGE_SIZE
from replica.errors import WALError
from replica.wal_format import WAL_FRAME_HEADER_SIZE

__all__ = ["Buffer", "WALChecksum", "frame_checksums", "wal_checksum", "wal_checksum_py"]

Buffer = bytes | bytearray | memoryview
"""Anything whose raw bytes we can read (a memoryview is read as its underlying bytes)."""

WALChecksum = tuple[int, int]
"""A WAL checksum state ``(s0, s1)``, each a ``u32``."""

_MASK32: Final = 0xFFFFFFFF
_U64_MASK32: Final = np.uint64(_MASK32)

_MAX_UNITS: Final = 1 + MAX_PAGE_SIZE // 8
"""Units covered by one frame checksum at the largest page size (8-byte prefix + page)."""
_CHUNK_UNITS: Final = 8192
""":func:`wal_checksum` processes arbitrary input in chunks of this many units."""
_CHUNKS_PER_MATMUL: Final = 32
"""Chunks per matrix product in :func:`wal_checksum` (bounds the ``uint64`` temporary at 2 MiB)."""


def _units(data: Buffer) -> memoryview:
    """``data`` as raw bytes, checked to be whole 8-byte units."""
    raw = memoryview(data).cast("B")
    if raw.nbytes % 8:
        raise WALError(f"wal checksum input must be a multiple of 8 bytes, got {raw.nbytes}")
    return raw


def wal_checksum_py(data: Buffer, checksum: WALChecksum = (0, 0), *, big_endian: bool = False) -> WALChecksum:
    """Reference implementation: SQLite's WAL checksum of ``data``, continuing from ``checksum``.

    ``len(data)`` must be a multiple of 8. Slow (one Python iteration per 8 bytes); it exists
    to cross-check :func:`wal_checksum` and must not be used on hot paths.
    """
    raw = _units(data)
    s0, s1 = checksum
    for w0, w1 in struct.iter_unpack(">II" if big_endian else "<II", raw):
        s0 = (s0 + w0 + s1) & _MASK32
        s1 = (s1 + w1 + s0) & _MASK32
    return s0, s1


def _mat_mul(x: tuple[int, int, int, int], y: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Product of two 2x2 matrices ``(a, b, c, d) = [[a, b], [c, d]]`` modulo 2**32."""
    a, b, c, d = x
    e, f, g, h = y
    return (
        (a * e + b * g) & _MASK32,
        (a * f + b * h) & _MASK32,
        (c * e + d * g) & _MASK32,
        (c * f + d * h) & _MASK32,
    )


@functools.lru_cache(maxsize=64)
def _m_pow(n: int) -> tuple[int, int, int, int]:
    """``M**n`` modulo 2**32 as ``(a, b, c, d)``, by repeated squaring."""
    result = (1, 0, 0, 1)
    base = (1, 1, 1, 2)
    while n:
        if n & 1:
            result = _mat_mul(result, base)
        base = _mat_mul(base, base)
        n >>= 1
    return result


@functools.cache
def _coef_table() -> npt.NDArray[np.uint64]:
    """Coefficients of every unit position, shape ``(_MAX_UNITS, 2, 2)``, in *descending* power.

    Row ``i`` belongs to the power ``j = _MAX_UNITS - 1 - i`` of ``M = [[1, 1], [1, 2]]``;
    writing ``M**j = [[a, b], [b, d]]`` (powers of a symmetric matrix are symmetric), a unit
    ``(w0, w1)`` multiplied by ``M**j`` contributes ``w0 * (a + b) + w1 * b`` to ``s0`` and
    ``w0 * (b + d) + w1 * d`` to ``s1``; so row ``i`` is ``[[a + b, b + d], [b, d]]``.
    For an input of ``n`` units, unit ``k`` takes power ``n - 1 - k``: the coefficients are
    the contiguous tail ``table[_MAX_UNITS - n:]``, which reshapes to ``(2n, 2)`` so that
    ``words @ coef`` is the whole sum.
    """
    rows: list[tuple[int, int, int, int]] = []
    a, b, d = 1, 0, 1  # M**0
    for _ in range(_MAX_UNITS):
        rows.append(((a + b) & _MASK32, (b + d) & _MASK32, b, d))
        # M**(j+1) = M**j @ M = [[a + b, a + 2b], [b + d, b + 2d]], and a + 2b == b + d.
        a, b, d = (a + b) & _MASK32, (b + d) & _MASK32, (b + 2 * d) & _MASK32
    rows.reverse()
    table = np.array(rows, dtype=np.uint64).reshape(_MAX_UNITS, 2, 2)
    table.flags.writeable = False
    return table


def _coef(n_units: int) -> npt.NDArray[np.uint64]:
    """Coefficient matrix ``(2 * n_units, 2)`` for an input of ``n_units`` units (a view, no copy)."""
    if not 0 < n_units <= _MAX_UNITS:
        raise AssertionError(f"unit count out of range: {n_units}")
    return _coef_table()[_MAX_UNITS - n_units :].reshape(2 * n_units, 2)


def _advance(checksum: WALChecksum, n_units: int, c0: int, c1: int) -> WALChecksum:
    """``M**n_units @ checksum + (c0, c1)`` modulo 2**32."""
    a, b, c, d = _m_pow(n_units)
    s0, s1 = checksum
    return (a * s0 + b * s1 + c0) & _MASK32, (c * s0 + d * s1 + c1) & _MASK32


def wal_checksum(data: Buffer, checksum: WALChecksum = (0, 0), *, big_endian: bool = False) -> WALChecksum:
    """SQLite's WAL checksum of ``data``, continuing from ``checksum``; vectorised with numpy.

    ``len(data)`` must be a multiple of 8. ``big_endian`` selects how 32-bit words are read
    (the WAL magic's choice). Equal to :func:`wal_checksum_py` for every input.
    """
    raw = _units(data)
    words = np.frombuffer(raw, dtype=">u4" if big_endian else "<u4")
    n_units = raw.nbytes // 8
    state = checksum
    full, rest = divmod(n_units, _CHUNK_UNITS)
    if full:
        coef = _coef(_CHUNK_UNITS)
        chunks = words[: full * 2 * _CHUNK_UNITS].reshape(full, 2 * _CHUNK_UNITS)
        for start in range(0, full, _CHUNKS_PER_MATMUL):
            part = chunks[start : start + _CHUNKS_PER_MATMUL].astype(np.uint64) @ coef
            for c0, c1 in part.tolist():
                state = _advance(state, _CHUNK_UNITS, c0, c1)
    if rest:
        c0, c1 = (words[full * 2 * _CHUNK_UNITS :].astype(np.uint64) @ _coef(rest)).tolist()
        state = _advance(state, rest, c0, c1)
    return state


@functools.lru_cache(maxsize=16)
def _frame_coef(page_size: int) -> npt.NDArray[np.uint64]:
    """Coefficients ``(6 + page_size // 4, 2)`` for the words of one whole frame as stored.

    Words 0..1 (frame-header bytes 0..7) are the first checksum unit, words 2..5 (salts and
    checksum) are not covered (coefficient 0), words 6.. are the page. So a frame's
    contribution to the checksum is ``frame_words @ _frame_coef(page_size)``, with no copy
    of the page out of the frame.
    """
    n_units = 1 + page_size // 8
    base = _coef(n_units)
    out = np.zeros((6 + page_size // 4, 2), dtype=np.uint64)
    out[0:2] = base[0:2]
    out[6:] = base[2:]
    out.flags.writeable = False
    return out


def frame_checksums(
    buf: Buffer, n_frames: int, page_size: int, prev: npt.NDArray[np.uint64], *, big_endian: bool
) -> npt.NDArray[np.uint64]:
    """The checksum of each of the ``n_frames`` whole frames at the start of ``buf``.

    Frame ``i`` continues from ``prev[i]`` (shape ``(n_frames, 2)``, ``uint64`` holding
    ``u32`` values); the result has the same shape. Frame ``i``'s checksum is
    ``M**u @ prev[i] + contrib_i``, where ``u`` is the units per frame (8-byte prefix and
    page) and every ``contrib_i`` comes from one matrix product over the whole batch.
    """
    n_words = (WAL_FRAME_HEADER_SIZE + page_size) // 4
    words = np.frombuffer(buf, dtype=">u4" if big_endian else "<u4", count=n_frames * n_words)
    contrib = words.reshape(n_frames, n_words).astype(np.uint64) @ _frame_coef(page_size)
    a, b, c, d = (np.uint64(x) for x in _m_pow(1 + page_size // 8))
    out = np.empty((n_frames, 2), dtype=np.uint64)
    out[:, 0] = (a * prev[:, 0] + b * prev[:, 1] + contrib[:, 0]) & _U64_MASK32
    out[:, 1] = (c * prev[:, 0] + d * prev[:, 1] + contrib[:, 1]) & _U64_MASK32
    return out
