"""Whether a file already in the replica is the one we were about to write.

A conditional write (create only if absent) that finds the name taken must tell two
cases apart: our own earlier attempt, or the same state written again (a compaction
rerun after a crash gives the same pages, possibly with another header timestamp),
which is fine; and another writer's file, which must never be overwritten.

:func:`compare_ltx` reads both files as streams: first byte for byte, then, if the
bytes differ, as LTX files, comparing the header fields that define the state (page
size, database size, TXID range) and every page. Memory is bounded by the chunk size
and one page, whatever the file sizes.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable
from typing import BinaryIO

from ltx.decoder import Decoder
from ltx.errors import LTXError

_CHUNK = 1024 * 1024

Opener = Callable[[], BinaryIO]
"""Returns a fresh reader positioned at byte 0; the caller closes it."""


class Sameness(enum.Enum):
    """How an existing file relates to the one we meant to write."""

    IDENTICAL = "identical"
    """The same bytes."""
    EQUIVALENT = "equivalent"
    """Other bytes, the same state: same page size, database size, TXIDs and pages."""
    DIFFERENT = "different"
    """Another state, or not a readable LTX file."""


def _same_bytes(a: BinaryIO, b: BinaryIO) -> bool:
    while True:
        x = a.read(_CHUNK)
        y = b.read(_CHUNK)
        # Readers may return short chunks: top up the shorter one before comparing.
        while len(x) != len(y):
            if len(x) < len(y):
                more = a.read(len(y) - len(x))
                if not more:
                    return False
                x += more
            else:
                more = b.read(len(x) - len(y))
                if not more:
                    return False
                y += more
        if x != y:
            return False
        if not x:
            return True


def _same_state(a: BinaryIO, b: BinaryIO) -> bool:
    try:
        da, db = Decoder(a), Decoder(b)
        ha, hb = da.header, db.header
        key_a = (ha.page_size, ha.commit, ha.min_txid, ha.max_txid)
        if key_a != (hb.page_size, hb.commit, hb.min_txid, hb.max_txid):
            return False
        missing = object()
        for pa, pb in itertools.zip_longest(da, db, fillvalue=missing):
            if pa is missing or pb is missing or pa != pb:
                return False
    except LTXError:
        return False
    return True


def compare_ltx(existing: Opener, ours: Opener) -> Sameness:
    """Compare the file in the store (``existing``) with ours; see :class:`Sameness`.

    Both decoders verify their file's checksum as the last page is read, so an
    ``EQUIVALENT`` answer also means the existing file is intact.
    """
    with existing() as a, ours() as b:
        if _same_bytes(a, b):
            return Sameness.IDENTICAL
    with existing() as a, ours() as b:
        return Sameness.EQUIVALENT if _same_state(a, b) else Sameness.DIFFERENT
