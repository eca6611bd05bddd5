"""Tests for :mod:`replica.wal`: golden WAL vectors, the vectorised checksum against the
plain loop, hand-built WALs in both byte orders, and real WALs written by SQLite."""

from __future__ import annotations

import io
import os
import sqlite3
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ltx.errors import LTXError, PyLitestreamError
from replica.errors import ReplicaError, WALError, WALMagicError, WALPageSizeError, WALVersionError
from replica.wal import (
    WAL_MAGIC_BE,
    WAL_MAGIC_LE,
    WAL_VERSION,
    WALChecksum,
    WALCursor,
    WALFrame,
    WALFrameHeader,
    WALHeader,
    WALReader,
    WALStop,
    WALTransaction,
    encode_frame,
    encode_wal,
    group_transactions,
    wal_checksum,
    wal_checksum_py,
)

VECTORS = (
    Path(os.environ.get("LTX_VECTORS") or Path(__file__).resolve().parents[3] / "shared" / "vectors") / "wal"
)
PAGE_SIZES = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
U32 = st.integers(0, 0xFFFFFFFF)

Frame = tuple[int, int, bytes]


# --------------------------------------------------------------------------------------------
# Helpers independent of the module's writer: struct + the pure-Python checksum only.


def ref_build_wal(
    page_size: int,
    frames: Sequence[Frame],
    *,
    salt1: int = 0x01020304,
    salt2: int = 0xA0B0C0D0,
    checkpoint_seq: int = 0,
    big_endian: bool = False,
) -> bytes:
    """A WAL built with struct and :func:`wal_checksum_py`, the way SQLite's wal.c does it."""
    magic = WAL_MAGIC_BE if big_endian else WAL_MAGIC_LE
    head = struct.pack(">6I", magic, WAL_VERSION, page_size, checkpoint_seq, salt1, salt2)
    ck = wal_checksum_py(head, big_endian=big_endian)
    out = [head, struct.pack(">2I", *ck)]
    for pgno, commit, page in frames:
        assert len(page) == page_size
        ck = wal_checksum_py(struct.pack(">2I", pgno, commit) + page, ck, big_endian=big_endian)
        out.append(struct.pack(">6I", pgno, commit, salt1, salt2, *ck) + page)
    return b"".join(out)


def read_all(data: bytes, batch_bytes: int = 1 << 20) -> tuple[WALReader, list[WALFrame]]:
    reader = WALReader(io.BytesIO(data), batch_bytes=batch_bytes)
    return reader, list(reader.frames())


def pages_for(seed: int, page_size: int, n: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.bytes(page_size) for _ in range(n)]


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


# --------------------------------------------------------------------------------------------
# Golden vectors (vectors/README.md, `wal/` row)

OK_SALTS = (0x4875A40B, 0xA38DE4F5)


def test_ok_wal_three_valid_frames() -> None:
    data = vector("ok.wal")
    reader, frames = read_all(data)
    h = reader.header
    assert h is not None
    assert (h.magic, h.version, h.page_size) == (0x377F0682, 3007000, 4096)
    assert not h.big_endian and h.byte_order == "little"
    assert h.salts == OK_SALTS
    assert h.checksum_valid()
    assert [(f.header.pgno, f.header.commit) for f in frames] == [(1, 0), (2, 2), (2, 2)]
    assert all((f.header.salt1, f.header.salt2) == OK_SALTS for f in frames)
    assert [f.offset for f in frames] == [32, 32 + 4120, 32 + 2 * 4120]
    for f in frames:
        assert f.data == data[f.offset + 24 : f.offset + 4120]
        assert f.header == WALFrameHeader.parse(data[f.offset : f.offset + 24])
    assert reader.stop is WALStop.END
    assert reader.cursor == WALCursor(len(data), *frames[-1].header.checksum, *OK_SALTS)
    assert reader.last_frame_offset == frames[-1].offset
    # Both the fast checksum and the reference agree with what SQLite stored.
    ck = h.checksum
    for f in frames:
        covered = data[f.offset : f.offset + 8] + f.data
        assert wal_checksum(covered, ck) == wal_checksum_py(covered, ck) == f.header.checksum
        ck = f.header.checksum


def test_ok_wal_reproduced_by_reference_writer_and_module_writer() -> None:
    data = vector("ok.wal")
    h = WALHeader.parse(data[:32])
    _, frames = read_all(data)
    triples = [(f.header.pgno, f.header.commit, f.data) for f in frames]
    assert ref_build_wal(4096, triples, salt1=h.salt1, salt2=h.salt2) == data
    made = WALHeader.create(4096, salt1=h.salt1, salt2=h.salt2, checkpoint_seq=h.checkpoint_seq)
    assert made == h
    assert encode_wal(made, triples) == data


@pytest.mark.parametrize(
    ("name", "stop"),
    [
        ("salt-mismatch.wal", WALStop.SALT_MISMATCH),
        ("frame-checksum-mismatch.wal", WALStop.CHECKSUM_MISMATCH),
    ],
)
def test_bad_second_frame_stops_after_frame_one(name: str, stop: WALStop) -> None:
    data = vector(name)
    reader, frames = read_all(data)
    assert [(f.header.pgno, f.header.commit, f.offset) for f in frames] == [(1, 0, 32)]
    assert reader.stop is stop
    assert reader.cursor is not None and reader.cursor.offset == 32 + 4120
    assert list(group_transactions(frames)) == []
    # Reading again from the cursor finds nothing new and stops the same way.
    assert list(reader.frames()) == []
    assert reader.stop is stop


def test_frame_salts_wal_only_current_generation() -> None:
    data = vector("frame-salts.wal")
    assert len(data) == 32 + 10 * 4120
    reader, frames = read_all(data)
    h = reader.header
    assert h is not None
    assert h.checkpoint_seq == 2
    assert h.salts == (0x1B9A294B, 0x37F91916)
    assert len(frames) == 2
    assert all((f.header.salt1, f.header.salt2) == h.salts for f in frames)
    assert reader.stop is WALStop.SALT_MISMATCH
    stale = [WALFrameHeader.parse(data[32 + i * 4120 : 56 + i * 4120]) for i in range(10)]
    assert [(s.salt1, s.salt2) for s in stale[2:5]] == [(0x1B9A294A, 0x031F195E)] * 3
    assert [(s.salt1, s.salt2) for s in stale[5:]] == [(0x1B9A2949, 0x13B3DD67)] * 5


# --------------------------------------------------------------------------------------------
# The checksum: numpy path == plain loop


@given(data=st.binary(max_size=4096), state=st.tuples(U32, U32), big_endian=st.booleans())
def test_checksum_matches_reference_small(data: bytes, state: WALChecksum, big_endian: bool) -> None:
    data = data[: len(data) - len(data) % 8]
    expected = wal_checksum_py(data, state, big_endian=big_endian)
    assert wal_checksum(data, state, big_endian=big_endian) == expected
    assert wal_checksum(bytearray(data), state, big_endian=big_endian) == expected
    assert wal_checksum(memoryview(data), state, big_endian=big_endian) == expected


@given(
    n_units=st.integers(0, 3 * 8192 + 17),
    seed=st.integers(0, 2**32 - 1),
    state=st.tuples(U32, U32),
    big_endian=st.booleans(),
)
@example(n_units=8191, seed=1, state=(0xFFFFFFFF, 1), big_endian=False)
@example(n_units=8192, seed=2, state=(3, 0xFFFFFFFF), big_endian=True)
@example(n_units=8193, seed=3, state=(0, 0), big_endian=False)
@example(n_units=3 * 8192 + 17, seed=4, state=(12345, 67890), big_endian=True)
def test_checksum_matches_reference_large(
    n_units: int, seed: int, state: WALChecksum, big_endian: bool
) -> None:
    """Lengths across the 8192-unit chunking of :func:`wal_checksum`."""
    data = np.random.default_rng(seed).bytes(8 * n_units)
    assert wal_checksum(data, state, big_endian=big_endian) == wal_checksum_py(
        data, state, big_endian=big_endian
    )


@given(split=st.integers(0, 200), seed=st.integers(0, 2**32 - 1), big_endian=st.booleans())
def test_checksum_is_resumable(split: int, seed: int, big_endian: bool) -> None:
    data = np.random.default_rng(seed).bytes(8 * 200)
    mid = wal_checksum(data[: 8 * split], big_endian=big_endian)
    assert wal_checksum(data[8 * split :], mid, big_endian=big_endian) == wal_checksum(
        data, big_endian=big_endian
    )


def test_checksum_extremes() -> None:
    ones = b"\xff" * 8 * 9000
    for be in (False, True):
        st_ = (0xFFFFFFFF, 0xFFFFFFFF)
        assert wal_checksum(ones, st_, big_endian=be) == wal_checksum_py(ones, st_, big_endian=be)
        assert wal_checksum(b"", st_, big_endian=be) == st_


def test_checksum_rejects_partial_unit() -> None:
    with pytest.raises(WALError):
        wal_checksum(b"1234567")
    with pytest.raises(WALError):
        wal_checksum_py(b"123456789")


# --------------------------------------------------------------------------------------------
# Hand-built WALs: writer contract, both byte orders, batching, corruption


@st.composite
def wal_specs(draw: st.DrawFn) -> tuple[int, list[Frame], bool, int, int]:
    page_size = draw(st.sampled_from(PAGE_SIZES))
    max_frames = max(1, min(12, (192 * 1024) // page_size))
    n = draw(st.integers(1, max_frames))
    pages = pages_for(draw(st.integers(0, 2**32 - 1)), page_size, n)
    frames = [(draw(st.integers(1, 50)), draw(st.sampled_from([0, 0, 7, 50])), p) for p in pages]
    return page_size, frames, draw(st.booleans()), draw(U32), draw(U32)


@given(spec=wal_specs(), batch_frames=st.integers(1, 5))
def test_writer_matches_reference_and_reader_accepts_all(
    spec: tuple[int, list[Frame], bool, int, int], batch_frames: int
) -> None:
    page_size, frames, be, s1, s2 = spec
    data = ref_build_wal(page_size, frames, salt1=s1, salt2=s2, big_endian=be)
    header = WALHeader.create(page_size, salt1=s1, salt2=s2, big_endian=be)
    assert header.pack() == data[:32]
    assert WALHeader.parse(data[:32]) == header
    assert encode_wal(header, frames) == data

    reader, got = read_all(data, batch_bytes=batch_frames * (24 + page_size))
    assert reader.stop is WALStop.END
    assert reader.header == header
    assert header.byte_order == ("big" if be else "little")
    assert [(f.header.pgno, f.header.commit, f.data) for f in got] == frames
    assert [f.offset for f in got] == [header.frame_offset(i) for i in range(len(frames))]


@given(spec=wal_specs(), where=st.floats(0, 1, exclude_max=True), batch_frames=st.integers(1, 5))
def test_corruption_stops_exactly_at_the_damaged_frame(
    spec: tuple[int, list[Frame], bool, int, int], where: float, batch_frames: int
) -> None:
    """Flip one bit anywhere after the WAL header: the reader yields exactly the frames before
    the damaged one (damage to bytes the checksum covers, or to the salts, or to the stored
    checksum, is always detected)."""
    page_size, frames, be, s1, s2 = spec
    data = bytearray(ref_build_wal(page_size, frames, salt1=s1, salt2=s2, big_endian=be))
    pos = 32 + int(where * (len(data) - 32))
    data[pos] ^= 0x10
    damaged = (pos - 32) // (24 + page_size)
    in_frame = (pos - 32) % (24 + page_size)
    reader, got = read_all(bytes(data), batch_bytes=batch_frames * (24 + page_size))
    assert len(got) == damaged
    expected = WALStop.SALT_MISMATCH if 8 <= in_frame < 16 else WALStop.CHECKSUM_MISMATCH
    assert reader.stop is expected


@given(spec=wal_specs(), cut=st.integers(1, 10**6))
def test_truncated_wal_yields_whole_frames_only(
    spec: tuple[int, list[Frame], bool, int, int], cut: int
) -> None:
    page_size, frames, be, s1, s2 = spec
    data = ref_build_wal(page_size, frames, salt1=s1, salt2=s2, big_endian=be)
    cut = cut % (len(data) - 32) + 1  # drop at least 1 byte, keep the header
    short = data[: len(data) - cut]
    reader, got = read_all(short)
    whole = (len(short) - 32) // (24 + page_size)
    assert [(f.header.pgno, f.header.commit, f.data) for f in got] == frames[:whole]
    assert reader.stop is WALStop.END


@given(spec=wal_specs(), chunk=st.integers(1, 4))
def test_tailing_with_saved_cursors_reads_each_frame_once(
    spec: tuple[int, list[Frame], bool, int, int], chunk: int
) -> None:
    """A growing WAL read by a fresh reader per poll, from the previous poll's cursor, sees every
    frame exactly once, and a partially written frame is picked up once it is complete."""
    page_size, frames, be, s1, s2 = spec
    data = ref_build_wal(page_size, frames, salt1=s1, salt2=s2, big_endian=be)
    fs = 24 + page_size
    seen: list[WALFrame] = []
    cursor: WALCursor | None = None
    visible = 32
    while visible < len(data):
        visible = min(len(data), visible + chunk * fs - fs // 2)  # often ends mid-frame
        reader = WALReader(io.BytesIO(data[:visible]), cursor)
        new = list(reader.frames())
        assert all(f.offset >= (cursor.offset if cursor else 32) for f in new)
        seen.extend(new)
        cursor = reader.cursor
        assert cursor is not None and cursor.offset == 32 + len(seen) * fs
    assert [(f.header.pgno, f.header.commit, f.data) for f in seen] == frames


def test_group_transactions_and_uncommitted_tail() -> None:
    ps = 512
    p = pages_for(1, ps, 6)
    frames: list[Frame] = [(1, 0, p[0]), (2, 2, p[1]), (3, 3, p[2]), (1, 0, p[3]), (4, 0, p[4])]
    header = WALHeader.create(ps, salt1=5, salt2=6)
    buf = io.BytesIO(encode_wal(header, frames))
    reader = WALReader(buf)
    txns = list(reader.transactions())
    assert [[f.header.pgno for f in t.frames] for t in txns] == [[1, 2], [3]]
    assert [t.commit for t in txns] == [2, 3]
    assert txns[0].offset == 32 and txns[1].offset == txns[0].end_offset
    assert reader.cursor == txns[1].cursor_after()
    assert reader.cursor is not None and reader.cursor.offset == 32 + 3 * (24 + ps)
    # The writer finishes the transaction: the next call returns it whole, tail included.
    last = WALFrameHeader.parse(buf.getvalue()[-(24 + ps) : -ps])
    frame, _ = encode_frame(header, last.checksum, 5, 5, p[5])
    buf.seek(0, io.SEEK_END)
    buf.write(frame)
    (txn,) = list(reader.transactions())
    assert [(f.header.pgno, f.header.commit) for f in txn.frames] == [(1, 0), (4, 0), (5, 5)]
    assert txn.commit == 5
    # Breaking out early leaves the cursor after the last transaction received.
    reader2 = WALReader(io.BytesIO(buf.getvalue()))
    it = reader2.transactions()
    first = next(it)
    assert reader2.cursor == first.cursor_after()
    it.close()
    assert reader2.cursor == first.cursor_after()


def test_transaction_must_end_in_commit() -> None:
    ps = 512
    header = WALHeader.create(ps, salt1=5, salt2=6)
    _, frames = read_all(encode_wal(header, [(1, 0, bytes(ps))]))
    with pytest.raises(WALError):
        WALTransaction(tuple(frames))
    with pytest.raises(WALError):
        WALTransaction(())


# --------------------------------------------------------------------------------------------
# Header errors and empty WALs


def test_bad_magic_and_version_are_typed_errors() -> None:
    good = WALHeader.create(4096, salt1=1, salt2=2).pack()
    bad_magic = struct.pack(">I", 0x377F0684) + good[4:]
    with pytest.raises(WALMagicError, match="invalid wal header magic: 377f0684") as exc:
        WALReader(io.BytesIO(bad_magic + bytes(4120)))
    assert isinstance(exc.value, WALError) and isinstance(exc.value, PyLitestreamError)
    bad_version = good[:4] + struct.pack(">I", 3007001) + good[8:]
    with pytest.raises(WALVersionError, match="unsupported wal version: 3007001"):
        WALHeader.parse(bad_version)
    with pytest.raises(WALError):
        WALHeader.parse(good[:31])
    with pytest.raises(WALError):
        WALFrameHeader.parse(bytes(23))
    assert issubclass(WALMagicError, WALError) and issubclass(WALError, ReplicaError)
    assert issubclass(ReplicaError, PyLitestreamError) and not issubclass(ReplicaError, LTXError)


def test_short_file_and_bad_header_checksum_mean_no_frames() -> None:
    for data in (b"", vector("ok.wal")[:31]):
        reader, frames = read_all(data)
        assert frames == [] and reader.header is None and reader.stop is WALStop.NO_HEADER
        assert reader.cursor is None and not reader.usable
    damaged = bytearray(vector("ok.wal"))
    damaged[31] ^= 1
    reader, frames = read_all(bytes(damaged))
    assert frames == [] and reader.stop is WALStop.HEADER_CHECKSUM and reader.cursor is None
    assert reader.header is not None and not reader.header.checksum_valid()


def test_bad_page_size_with_valid_checksum_is_an_error() -> None:
    head = struct.pack(">6I", WAL_MAGIC_LE, WAL_VERSION, 1000, 0, 1, 2)
    data = head + struct.pack(">2I", *wal_checksum_py(head))
    with pytest.raises(WALPageSizeError):
        WALReader(io.BytesIO(data))
    with pytest.raises(WALPageSizeError):
        WALHeader.create(1, salt1=0, salt2=0)


def test_cursor_checks() -> None:
    data = vector("ok.wal")
    h = WALHeader.parse(data[:32])
    with pytest.raises(WALError, match="frame boundary"):
        WALReader(io.BytesIO(data), WALCursor(33, *h.checksum, *h.salts))
    other = WALCursor(32, *h.checksum, h.salt1 + 1, h.salt2)
    reader = WALReader(io.BytesIO(data), other)
    assert reader.stop is WALStop.RESTARTED and list(reader.frames()) == [] and reader.cursor is None


# --------------------------------------------------------------------------------------------
# Real WALs written by SQLite


def open_wal_db(path: Path, page_size: int = 4096) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size={page_size}")
    assert conn.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    return conn


def write_txns(conn: sqlite3.Connection, count: int, start: int, rows: int = 40) -> None:
    for i in range(start, start + count):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO t(k, v) VALUES (?, ?)",
            [(i * 1000 + j, bytes([j % 251]) * (50 + i * 7)) for j in range(rows)],
        )
        conn.execute("COMMIT")


def wal_frames(path: Path, cursor: WALCursor | None = None) -> tuple[WALReader, list[WALTransaction]]:
    with open(f"{path}-wal", "rb") as f:
        reader = WALReader(f, cursor)
        return reader, list(reader.transactions())


def rebuild(db_file: bytes, txns: Iterator[WALTransaction] | list[WALTransaction], page_size: int) -> bytes:
    """The database as SQLite sees it: the db file overlaid with every committed frame."""
    pages = {i + 1: db_file[i * page_size : (i + 1) * page_size] for i in range(len(db_file) // page_size)}
    commit = len(pages)
    for t in txns:
        for f in t.frames:
            pages[f.header.pgno] = f.data
        commit = t.commit
    return b"".join(pages[i] for i in range(1, commit + 1))


@pytest.mark.parametrize("page_size", [4096, 65536])
def test_real_sqlite_wal(tmp_path: Path, page_size: int) -> None:
    path = tmp_path / "db.sqlite"
    conn = open_wal_db(path, page_size)
    try:
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
        write_txns(conn, 5, 0)
        reader, txns = wal_frames(path)
        h = reader.header
        assert h is not None and h.page_size == page_size and h.checksum_valid()
        assert len(txns) == 6  # CREATE TABLE + 5 inserts, one commit frame each
        assert sum(f.header.is_commit for t in txns for f in t.frames) == 6
        (page_count,) = conn.execute("PRAGMA page_count").fetchone()
        assert txns[-1].commit == page_count
        assert reader.stop is WALStop.END
        assert (
            reader.cursor is not None
            and reader.cursor.offset == (path.parent / "db.sqlite-wal").stat().st_size
        )
        assert rebuild(path.read_bytes(), txns, page_size) == conn.serialize()

        # Resume: only the new frames are read, starting exactly at the saved cursor.
        saved = reader.cursor
        write_txns(conn, 3, 5)
        reader2, new = wal_frames(path, saved)
        assert len(new) == 3 and new[0].offset == saved.offset
        (page_count,) = conn.execute("PRAGMA page_count").fetchone()
        assert new[-1].commit == page_count
        _, everything = wal_frames(path)
        assert [f for t in everything for f in t.frames][-sum(len(t.frames) for t in new) :] == [
            f for t in new for f in t.frames
        ]
        assert rebuild(path.read_bytes(), everything, page_size) == conn.serialize()

        # A RESTART checkpoint makes the next writer start a new WAL generation (new salts):
        # the old cursor is recognised as stale, and a fresh read sees the new generation.
        assert conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0] == 0
        write_txns(conn, 1, 8)
        reader3, none = wal_frames(path, reader2.cursor)
        assert none == [] and reader3.stop is WALStop.RESTARTED
        reader4, fresh = wal_frames(path)
        assert reader4.header is not None and reader4.header.checkpoint_seq == h.checkpoint_seq + 1
        assert reader4.header.salts != h.salts
        assert len(fresh) == 1 and fresh[0].commit == conn.execute("PRAGMA page_count").fetchone()[0]
    finally:
        conn.close()


def test_real_sqlite_wal_truncated_by_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    conn = open_wal_db(path)
    try:
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
        write_txns(conn, 2, 0)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        reader, txns = wal_frames(path)
        assert txns == [] and reader.stop is WALStop.NO_HEADER
    finally:
        conn.close()


def test_big_endian_wal_round_trip() -> None:
    ps = 1024
    pages = pages_for(7, ps, 5)
    frames: list[Frame] = [
        (1, 0, pages[0]),
        (2, 0, pages[1]),
        (3, 3, pages[2]),
        (2, 0, pages[3]),
        (4, 4, pages[4]),
    ]
    header = WALHeader.create(ps, salt1=0xDEADBEEF, salt2=0x01234567, checkpoint_seq=9, big_endian=True)
    assert header.magic == WAL_MAGIC_BE and header.big_endian and header.byte_order == "big"
    data = encode_wal(header, frames)
    assert data == ref_build_wal(
        ps, frames, salt1=0xDEADBEEF, salt2=0x01234567, checkpoint_seq=9, big_endian=True
    )
    # The same content in little-endian has different checksums (the byte order matters).
    le = WALHeader.create(ps, salt1=0xDEADBEEF, salt2=0x01234567, checkpoint_seq=9)
    assert le.checksum != header.checksum
    reader = WALReader(io.BytesIO(data))
    txns = list(reader.transactions())
    assert [t.commit for t in txns] == [3, 4]
    assert [len(t.frames) for t in txns] == [3, 2]
    # Reading a big-endian WAL as if it were little-endian fails at the header checksum.
    flipped = struct.pack(">I", WAL_MAGIC_LE) + data[4:]
    r2, got = read_all(flipped)
    assert got == [] and r2.stop is WALStop.HEADER_CHECKSUM
