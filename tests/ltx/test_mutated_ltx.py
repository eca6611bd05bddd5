"""A fixed-seed corpus of damaged LTX files: only typed errors, nothing silently changed.

Every case is derived from a golden vector (written by the Go encoder) by one seeded
mutation: a flipped bit, a byte set, a zeroed run, a truncation, appended or duplicated
or deleted bytes, or a header field set to a hostile value (a page count near 2**32, a
page size of 2**31, TXIDs at the top of the range). For each case:

* decoding it either fails with an :class:`~ltx.errors.LTXError` that names the file,
  or yields exactly the original's header and pages (an LZ4 payload byte can decode to
  the same page: the format cannot tell, and nothing the reader sees changed);
* the memory it takes is bounded by the file's own size, whatever its fields claim;
* applied on top of the chain before it, it either fails and leaves the database
  byte for byte as it was, or gives exactly what the original gives.

The seeds are fixed, so a failure names the case that reproduces it. ``CI`` runs
``ADVERSARIAL_CASES`` (default 1500) cases; ``HYPOTHESIS_PROFILE=deep`` runs 20000.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from ltx.database import apply_files
from ltx.decoder import Decoder
from ltx.errors import LTXError
from ltx.layout import HEADER_FIELDS
from tests.conftest import VECTORS

DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"
CASES = int(os.environ.get("ADVERSARIAL_CASES", "20000" if DEEP else "1500"))
MiB = 1 << 20


@attrs.frozen
class Decoded:
    header: object
    pages: tuple[tuple[int, bytes], ...]
    post_apply: int


def _decode(data: bytes, name: str) -> Decoded:
    dec = Decoder(io.BytesIO(data), path=name)
    pages = tuple(dec)
    assert dec.trailer is not None
    return Decoded(dec.header, pages, dec.trailer.post_apply_checksum)


def _sources() -> list[Path]:
    groups = ("chain", "snapshot", "nochecksum", "special", "legacy-v0.5.1")
    out = [p for g in groups for p in sorted((VECTORS / g).glob("*.ltx"))]
    return [p for p in out if "bad-snapshot" not in p.name and "wrong-preapply" not in p.name]


def _field(name: str) -> tuple[int, int, str]:
    f = next(f for f in HEADER_FIELDS if f.name == name)
    return f.offset, f.size, f.code


HOSTILE = {
    "commit": [0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, 1 << 24],
    "page_size": [1 << 31, 0xFFFFFFFF, 65536, 512, 1 << 17],
    "min_txid": [0, 1, (1 << 63), 0xFFFFFFFFFFFFFFFF],
    "max_txid": [0, 0xFFFFFFFFFFFFFFFF],
    "wal_size": [-1, 1 << 62],
    "wal_offset": [-1, 1 << 62],
}


def _set_field(data: bytearray, rng: random.Random) -> str:
    name = rng.choice(sorted(HOSTILE))
    off, size, fmt = _field(name)
    value = rng.choice(HOSTILE[name])
    data[off : off + size] = struct.pack(">" + fmt, value)
    return f"{name}={value:#x}"


def _mutate(src: bytes, rng: random.Random) -> tuple[bytes, str]:
    d = bytearray(src)
    n = len(d)
    kind = rng.randrange(8)
    if kind == 0:
        i = rng.randrange(n)
        bit = rng.randrange(8)
        d[i] ^= 1 << bit
        return bytes(d), f"flip bit {bit} of byte {i}"
    if kind == 1:
        i = rng.randrange(n)
        d[i] = rng.choice([0, 0xFF, rng.randrange(256)])
        return bytes(d), f"byte {i} = {d[i]:#x}"
    if kind == 2:
        i = rng.randrange(n)
        k = rng.randint(1, 64)
        d[i : i + k] = bytes(len(d[i : i + k]))
        return bytes(d), f"zero {k} bytes at {i}"
    if kind == 3:
        k = rng.randrange(n)
        return bytes(d[:k]), f"truncate to {k}"
    if kind == 4:
        extra = rng.randbytes(rng.randint(1, 4096))
        return bytes(d) + extra, f"append {len(extra)} bytes"
    if kind == 5:
        i = rng.randrange(n)
        k = rng.randint(1, 512)
        return bytes(d[:i] + d[i : i + k] + d[i:]), f"duplicate {k} bytes at {i}"
    if kind == 6:
        i = rng.randrange(n)
        k = rng.randint(1, 512)
        return bytes(d[:i] + d[i + k :]), f"delete {k} bytes at {i}"
    what = _set_field(d, rng)
    return bytes(d), f"header {what}"


@pytest.fixture(scope="module")
def corpus(vectors: Path) -> list[tuple[Path, bytes, Decoded]]:
    out = []
    for p in _sources():
        data = p.read_bytes()
        out.append((p, data, _decode(data, p.name)))
    assert len(out) >= 20, "the golden vectors are missing"
    return out


def _bound(data: bytes, original: Decoded) -> int:
    """What decoding a file may cost: a few copies of the file and of one page, never what
    its fields merely claim."""
    page_size = getattr(original.header, "page_size", 4096)
    return 4 * MiB + 4 * len(data) + 4 * max(page_size, 65536)


def _peak(fn: Callable[[], object]) -> tuple[int, BaseException | None]:
    tracemalloc.start()
    err: BaseException | None = None
    try:
        fn()
    except BaseException as e:  # judged by the caller
        err = e
    finally:
        _cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, err


@pytest.mark.parametrize("shard", range(5))
def test_damaged_files_decode_identically_or_fail_typed(
    corpus: list[tuple[Path, bytes, Decoded]], shard: int
) -> None:
    changed_but_accepted = 0
    for seed in range(shard, CASES, 5):
        rng = random.Random(seed)
        path, data, original = corpus[rng.randrange(len(corpus))]
        mutated, how = _mutate(data, rng)
        case = f"seed {seed}: {path.parent.name}/{path.name}, {how}"
        got: list[Decoded] = []
        peak, err = _peak(lambda m=mutated, n=path.name, g=got: g.append(_decode(m, n)))
        assert peak <= _bound(mutated, original), f"{case}: decoding took {peak} bytes"
        if err is not None:
            assert isinstance(err, LTXError), f"{case}: foreign exception {type(err).__name__}: {err}"
            assert path.name in str(err), f"{case}: error does not name the file: {err}"
            continue
        if mutated != data:
            changed_but_accepted += 1
        assert got[0] == original, f"{case}: accepted with different content"
    # a corpus that never reached the decoder's checks would prove nothing
    assert changed_but_accepted < CASES // 20


def _chain(vectors: Path) -> list[Path]:
    return sorted((vectors / "chain").glob("*.ltx"))


def test_damaged_chain_files_never_change_a_database(vectors: Path, tmp_path: Path) -> None:
    chain = _chain(vectors)
    # the database after each prefix of the chain, built once
    states = []
    for k in range(len(chain)):
        db = tmp_path / f"state{k}.db"
        apply_files(str(db), [str(p) for p in chain[: k + 1]])
        states.append(db.read_bytes())
    work = tmp_path / "work.db"
    for seed in range(CASES // 10):
        rng = random.Random(10_000 + seed)
        k = rng.randrange(1, len(chain))
        mutated, how = _mutate(chain[k].read_bytes(), rng)
        case = f"seed {10_000 + seed}: {chain[k].name}, {how}"
        bad = tmp_path / chain[k].name
        bad.write_bytes(mutated)
        work.write_bytes(states[k - 1])
        try:
            apply_files(str(work), [str(bad)])
        except LTXError:
            assert work.read_bytes() == states[k - 1], f"{case}: a failed apply changed the database"
        except Exception as e:
            pytest.fail(f"{case}: foreign exception {type(e).__name__}: {e}")
        else:
            assert work.read_bytes() == states[k], f"{case}: applied to a state the chain never had"
        # a database built from nothing: nothing may be left behind on failure
        fresh = tmp_path / "fresh.db"
        shutil.copyfile(chain[0], tmp_path / "first.ltx")
        try:
            apply_files(str(fresh), [str(tmp_path / "first.ltx"), *map(str, chain[1:k]), str(bad)])
        except LTXError:
            assert not fresh.exists(), f"{case}: a failed apply left a database behind"
            assert not [p for p in tmp_path.iterdir() if p.name.startswith("fresh.db")]
        else:
            assert fresh.read_bytes() == states[k], f"{case}: built a state the chain never had"
            fresh.unlink()
