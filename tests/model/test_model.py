"""The pure reference model: states, history, replica files, reachability, retention, fingerprints."""

from __future__ import annotations

import datetime as dt
import io
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ltx.encoder import Encoder
from ltx.fileinfo import FileInfo
from ltx.header import FLAG_NO_CHECKSUM, Header
from ltx.names import lock_pgno
from model.replica import ReplicaFileError, apply_file, decode_file, listing_problems, reachable
from model.retention import RetentionPolicy, retention_problems, time_target
from model.sqlite import explain_difference, fingerprint, integrity_check
from model.state import Compare, DatabaseState, History, ModelError

PS = 512
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def page(tag: int) -> bytes:
    return bytes([tag % 256]) * PS


def state(*tags: int) -> DatabaseState:
    return DatabaseState(PS, tuple(page(t) for t in tags))


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


# -- DatabaseState ----------------------------------------------------------------------------


def test_state_image_round_trip_shares_pages() -> None:
    a = state(1, 2, 3)
    b = DatabaseState.from_image(page(1) + page(9) + page(3) + page(4), PS, like=a)
    assert b.commit == 4 and b.image() == page(1) + page(9) + page(3) + page(4)
    assert b.pages[0] is a.pages[0] and b.pages[2] is a.pages[2]
    assert a.differing_pages(b) == [2, 4]


def test_state_rejects_bad_pages() -> None:
    with pytest.raises(ValueError):
        DatabaseState(PS, (b"short",))
    with pytest.raises(ValueError):
        DatabaseState(1000, ())
    with pytest.raises(ValueError):
        DatabaseState.from_image(b"x" * (PS + 1), PS)


def test_with_pages_grows_with_zeros_shrinks_and_zeroes_the_lock_page() -> None:
    s = state(1, 2)
    g = s.with_pages({4: page(4)}, 4)
    assert g.pages == (page(1), page(2), bytes(PS), page(4))
    assert s.with_pages({}, 1).pages == (page(1),)
    with pytest.raises(ValueError):
        s.with_pages({3: page(3)}, 2)
    lock = lock_pgno(65536)
    big = DatabaseState(65536, ()).with_pages({lock: b"\x01" * 65536}, lock)
    assert big.page(lock) == bytes(65536)


# -- History ----------------------------------------------------------------------------------


def history(n: int) -> History:
    h = History.start(state(0), "fp0", at(0))
    for i in range(1, n + 1):
        h = h.commit(state(0, i), f"fp{i}", at(i), f"commit {i}")
    return h


def test_record_sync_rules() -> None:
    h = history(5).record_sync(1, 0, at(0.5)).record_sync(3, 4, at(4.5))
    assert h.txids == (1, 3)
    assert h.seq_bounds(2) == (0, 4)
    assert h.seq_bounds(4) == (4, 5)
    with pytest.raises(ModelError, match="already"):
        h.record_sync(3, 4, at(5))
    with pytest.raises(ModelError, match="not happened"):
        h.record_sync(4, 6, at(6))
    with pytest.raises(ModelError, match="disagree"):
        h.record_sync(2, 5, at(5))  # TXID 2 newer than TXID 3's commit
    h = h.record_sync(2, 2, at(2.5))
    assert list(h.covers(1)) == [0]
    assert list(h.covers(2)) == [1, 2]
    assert list(h.covers(3)) == [3, 4]
    assert h.state_at_txid(2) == h.commits[2]
    assert h.state_at_txid(9) is None


def test_a_sync_may_cover_no_commit() -> None:
    h = history(1).record_sync(1, 1, at(1.5)).record_sync(2, 1, at(1.6))
    assert list(h.covers(2)) == []
    assert h.state_at_txid(2) == h.state_at_txid(1)


def test_state_at_time_is_strictly_before() -> None:
    h = history(3).record_sync(1, 1, at(1)).record_sync(2, 3, at(3))
    assert h.state_at_time(at(1)) is None
    assert h.state_at_time(at(1.001)) == h.commits[1]
    assert h.state_at_time(at(3)) == h.commits[1]
    assert h.state_at_time(at(3.0001)) == h.commits[3]
    with pytest.raises(ValueError):
        h.state_at_time(dt.datetime(2026, 1, 1))


@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 50)), min_size=1, max_size=12), st.integers(0, 60)
)
def test_state_at_time_matches_brute_force(steps: list[tuple[int, int]], probe: int) -> None:
    """Syncs with increasing TXIDs, non-decreasing commits and arbitrary creation times."""
    h = history(20)
    seq = 0
    for txid, (gap, secs) in enumerate(steps, 1):
        seq = min(20, seq + gap)
        h = h.record_sync(txid, seq, at(secs))
    when = at(probe)
    before = [s for s in h.syncs if s.created_at < when]
    want = h.commits[max(before, key=lambda s: s.txid).seq] if before else None
    assert h.state_at_time(when) == want


def test_identify_prefers_the_newest_match() -> None:
    h = History.start(state(0), "a", at(0)).commit(state(1), "b", at(1)).commit(state(2), "b", at(2))
    assert h.identify(state(9), "b", 0, 2, Compare.LOGICAL) == h.commits[2]
    assert h.identify(state(9), "b", 0, 1, Compare.LOGICAL) == h.commits[1]
    assert h.identify(state(1), "zzz", 0, 2, Compare.PAGES) == h.commits[1]
    assert h.identify(state(1), "b", 2, 2, Compare.PAGES) is None


# -- replica files ------------------------------------------------------------------------------


def ltx(lo: int, hi: int, pages: dict[int, int], commit: int, ts: int = 0) -> bytes:
    out = io.BytesIO()
    enc = Encoder(out, Header(PS, commit, lo, hi, timestamp=ts, flags=FLAG_NO_CHECKSUM))
    for pgno in sorted(pages):
        enc.write_page(pgno, page(pages[pgno]))
    enc.close()
    return out.getvalue()


def test_decode_checks_name_level_and_checksum() -> None:
    data = ltx(1, 1, {1: 1, 2: 2}, 2, ts=1500)
    f = decode_file(0, 1, 1, data)
    assert f.is_full_image and f.created_at == dt.datetime.fromtimestamp(1.5, dt.UTC)
    with pytest.raises(ReplicaFileError, match="header says"):
        decode_file(0, 2, 2, data)
    with pytest.raises(ReplicaFileError, match="exactly one TXID"):
        decode_file(0, 1, 2, ltx(1, 2, {1: 1}, 1))
    broken = bytearray(data)
    broken[-3] ^= 0xFF
    with pytest.raises(ReplicaFileError, match="does not decode"):
        decode_file(0, 1, 1, bytes(broken))
    assert decode_file(1, 1, 1, data).content == f.content  # content ignores the level and timestamp
    assert decode_file(0, 1, 1, ltx(1, 1, {1: 1, 2: 2}, 2, ts=9)).content == f.content


def test_apply_replays_like_a_restore() -> None:
    snap = decode_file(0, 1, 1, ltx(1, 1, {1: 1, 2: 2, 3: 3}, 3))
    inc = decode_file(0, 2, 2, ltx(2, 2, {2: 20, 5: 50}, 5))
    r = apply_file(apply_file(None, snap), inc)
    assert r.state.pages == (page(1), page(20), page(3), bytes(PS), page(50))
    assert r.missing == {4}
    shrink = decode_file(0, 3, 3, ltx(3, 3, {1: 10}, 2))
    r2 = apply_file(r, shrink)
    assert r2.state.pages == (page(10), page(20)) and r2.complete
    orphan = apply_file(None, inc)
    assert orphan.missing == {1, 3, 4}


def info(level: int, lo: int, hi: int, created: float = 0.0) -> FileInfo:
    return FileInfo(level, lo, hi, 100, at(created))


def test_listing_problems() -> None:
    ok = {0: [info(0, 1, 1), info(0, 2, 2), info(0, 3, 3)], 1: [info(1, 1, 2), info(1, 3, 3)]}
    assert listing_problems(ok) == []
    assert "not contiguous" in listing_problems({0: [info(0, 1, 1), info(0, 3, 3)]})[0]
    bridged = {0: [info(0, 1, 1), info(0, 4, 4)], 1: [info(1, 1, 3)]}
    assert listing_problems(bridged) == []
    assert "overlaps" in listing_problems({1: [info(1, 1, 3), info(1, 3, 4)]})[0]
    assert "gap" in listing_problems({2: [info(2, 1, 3), info(2, 5, 6)]})[0]
    assert "snapshot" in listing_problems({9: [info(9, 2, 5)]})[0]
    assert "one TXID" in listing_problems({0: [info(0, 1, 2)]})[0]


def test_reachable_follows_litestreams_plan_rule() -> None:
    # reference 5.2: snapshot 1-5, L1 {6-7, 8-9, 10-12}, L0 {7..11}
    files = [info(9, 1, 5), info(1, 6, 7), info(1, 8, 9), info(1, 10, 12)] + [
        info(0, t, t) for t in range(7, 12)
    ]
    assert reachable(files) == {5, 7, 8, 9, 10, 11, 12}
    assert reachable([info(0, 2, 2), info(0, 3, 3)]) == set()  # no snapshot: nothing
    gap = [info(0, 1, 1), info(1, 2, 3), info(1, 5, 6), info(0, 4, 4)]
    assert reachable(gap) == {1, 3, 4, 6}
    timed = [info(0, 1, 1, 1), info(0, 2, 2, 2), info(1, 1, 2, 2)]
    assert reachable(timed, before=at(1.5)) == {1}
    assert time_target(timed, at(2.5)) == 2
    assert time_target(timed, at(0.5)) is None


@given(st.lists(st.tuples(st.integers(1, 12), st.integers(0, 4)), max_size=10))
def test_reachable_matches_brute_force(spans: list[tuple[int, int]]) -> None:
    files = [info(1, lo, lo + n) for lo, n in spans]
    ends: set[int] = set()
    changed = True
    while changed:
        changed = False
        for f in files:
            ok = f.min_txid == 1 or any(f.min_txid <= r + 1 and f.max_txid > r for r in ends)
            if ok and f.max_txid not in ends:
                ends.add(f.max_txid)
                changed = True
    assert reachable(files) == ends


# -- retention -----------------------------------------------------------------------------


def test_retention_problems() -> None:
    h = history(4)
    for t in range(1, 5):
        h = h.record_sync(t, t, at(10 * t))
    l0 = [info(0, t, t, 10 * t) for t in range(1, 5)]
    keep = RetentionPolicy()
    assert retention_problems(h, l0, at(100), keep) == []
    assert "no longer restorable" in retention_problems(h, l0[1:], at(100), keep)[0]
    # L0 retention of 25 s: at 60, only TXIDs made at or after 35 must stay exact
    policy = RetentionPolicy(l0_retention=dt.timedelta(seconds=25))
    compacted = [info(0, 1, 1, 10), info(1, 2, 3, 30), info(0, 4, 4, 40)]
    assert retention_problems(h, compacted, at(60), policy) == []
    # L0 2 (made at 20) may go once no moment of the window needs it: moments before 30
    # (when L1 2-3 was made) restore to TXID 2 only through it, so not before 30 + 25 = 55
    assert retention_problems(h, compacted, at(56), policy) == []
    assert "not at 0000000000000002" in retention_problems(h, compacted, at(54), policy)[0]
    assert "0000000000000002" in retention_problems(h, compacted, at(44), policy)[0]
    no_l1 = [info(0, 1, 1, 10), info(0, 4, 4, 40)]
    assert any("no plan" in p or "restorable" in p for p in retention_problems(h, no_l1, at(60), policy))
    assert "no longer restorable" in retention_problems(h, l0[:3], at(1000), policy)[0]  # the newest


# -- SQLite images ------------------------------------------------------------------------------


def image(*sql: str, wal: bool = False) -> bytes:
    con = sqlite3.connect(":memory:")
    for s in sql:
        con.execute(s)
    con.commit()
    data = bytearray(con.serialize())
    con.close()
    if wal:
        data[18] = data[19] = 2
    return bytes(data)


def test_fingerprint_is_logical() -> None:
    a = image("CREATE TABLE t (x)", "INSERT INTO t VALUES (1)")
    b = image(
        "CREATE TABLE t (x)", "INSERT INTO t VALUES (1)", "CREATE TABLE _litestream_seq (id, seq)", wal=True
    )
    c = image("CREATE TABLE t (x)", "INSERT INTO t VALUES (2)")
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)
    assert fingerprint(b"garbage" * 100).startswith("unreadable")
    assert integrity_check(b) == "ok"
    assert "rows 1 missing" in explain_difference(a, image("CREATE TABLE t (x)"))
