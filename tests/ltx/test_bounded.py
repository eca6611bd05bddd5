"""Memory stays bounded whatever the bytes of a file say (issue 8, items 6 and 9).

Allocation is measured with :mod:`tracemalloc` (every Python allocation, numpy's
included), so the bounds are assertions on memory, never on time.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ltx.decoder import Decoder
from ltx.encoder import Encoder
from ltx.errors import FileChecksumMismatchError, LTXError
from ltx.header import FLAG_NO_CHECKSUM, Header
from ltx.layout import HEADER_SIZE, PAGE_HEADER_SIZE
from ltx.names import format_filename
from replica.restore import restore
from replica.restore.execute import _Coverage
from replica.storage import open_replica_client
from tests.support.ltxgen import chain_files, make_page

MiB = 1 << 20
COMMIT_OFFSET = 12
"""Where the header's Commit field (u32, big-endian) starts."""


def peak_allocation(fn: Callable[[], object]) -> int:
    """Bytes allocated at the peak while ``fn`` runs (its exception, if any, propagates)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        try:
            fn()
        finally:
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - base


def _incompressible_ltx(path: Path, pages: int, page_size: int = 65536) -> None:
    """A NoChecksum incremental file (TXID 7) of random pages: about ``pages * page_size`` bytes."""
    header = Header(page_size, pages, 7, 7, timestamp=1_700_000_000_000, flags=FLAG_NO_CHECKSUM)
    with open(path, "wb") as f:
        enc = Encoder(f, header)
        for pgno in range(1, pages + 1):
            enc.write_page(pgno, os.urandom(page_size))
        enc.close()


def test_zeroed_first_page_header_does_not_read_the_file_into_memory(tmp_path: Path) -> None:
    """A page header of zeros ends the page block; the tens of MB behind it must not be
    read in one piece to look for the page index and trailer. The intact file is the
    control: decoding it takes a few chunks of memory, not the file."""
    path = tmp_path / "big.ltx"
    _incompressible_ltx(path, 640)  # 40 MiB
    assert path.stat().st_size > 40 * MiB

    def decode_intact() -> None:
        with open(path, "rb") as f:
            dec = Decoder(f, path=str(path))
            for _ in dec:
                pass
            assert dec.page_count == 640

    assert peak_allocation(decode_intact) < 8 * MiB
    with open(path, "r+b") as f:
        f.seek(HEADER_SIZE)
        f.write(bytes(PAGE_HEADER_SIZE))

    def decode_damaged() -> None:
        with open(path, "rb") as f, pytest.raises(LTXError) as info:
            Decoder(f, path=str(path)).verify()
        assert info.value.path == str(path)

    assert peak_allocation(decode_damaged) < 8 * MiB


def test_flipped_commit_bit_in_the_last_file_allocates_nothing_large(tmp_path: Path) -> None:
    """Commit is read from the last file's header before its checksum can be checked: one
    flipped bit (here 2^28 pages more) must not size any allocation."""
    page_size = 4096
    pages1 = {n: make_page(n, page_size, 1 + n % 3) for n in range(1, 41)}
    pages2 = {**pages1, **{n: make_page(1000 + n, page_size, 1) for n in (3, 17, 40, 41)}}
    files = chain_files(page_size, [(40, pages1), (41, pages2)], checksums=False)
    rep = tmp_path / "replica" / "ltx" / "0"
    rep.mkdir(parents=True)
    for txid, data in enumerate(files, 1):
        (rep / format_filename(txid, txid)).write_bytes(data)
    last = rep / format_filename(2, 2)
    damaged = bytearray(last.read_bytes())
    damaged[COMMIT_OFFSET] ^= 0x10  # commit 41 -> 268435497
    last.write_bytes(bytes(damaged))
    client = open_replica_client(f"file://{tmp_path / 'replica'}")
    out = tmp_path / "out.db"

    def run() -> None:
        with pytest.raises(FileChecksumMismatchError) as info:
            restore(client, out, parallelism=2)
        assert info.value.path is not None and info.value.path.endswith(last.name)

    assert peak_allocation(run) < 32 * MiB
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replica"]


@st.composite
def page_sets(draw: st.DrawFn) -> list[list[int]]:
    top = draw(st.integers(1, 300))
    return [sorted(draw(st.sets(st.integers(1, top), max_size=top))) for _ in range(draw(st.integers(0, 6)))]


@given(page_sets(), st.integers(1, 320), st.integers(1, 330))
def test_coverage_runs_agree_with_a_set(sets: list[list[int]], commit: int, skip: int) -> None:
    """The restore's page bookkeeping (runs, not one byte per page) against a plain set."""
    cov = _Coverage()
    seen: set[int] = set()
    for pgnos in sets:
        kept = [p for p in pgnos if p <= commit]
        cov.add(np.array(kept, dtype=np.uint64))
        seen.update(kept)
    assert cov.count() == len(seen)
    missing = [p for p in range(1, commit + 1) if p not in seen and p != skip]
    assert cov.missing(commit, skip, 10) == missing[:10]
