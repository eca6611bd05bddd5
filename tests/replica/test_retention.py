"""Retention never breaks a restore inside the retained window: a Hypothesis property over histories.

A history is a random sequence of events at increasing (simulated) times:

* a *write* makes the next TXID: some pages of a small database change (and it may
  grow or shrink); its L0 file, a real LTX file, is uploaded to an in-memory replica;
* a *compaction* of a random level, a *snapshot* (sometimes forced) and a *retention
  run*, each carried out by the production :class:`~replica.compaction.Compactor`
  (planning from its :class:`~replica.index.ReplicaIndex`, merging real files with
  the LTX compactor, deleting from the replica) at the event's time, with random
  levels, intervals and retention settings.

The database is modelled as a page map per TXID. At the end, with ``now`` the time of
the last retention run, ``W = now - snapshot.retention`` and ``exact = max(W, now -
l0-retention)``:

* for every moment ``T >= W`` at which the database existed, the restore planner
  (:func:`replica.restore.plan_restore`) finds a Litestream-compatible plan, and
  applying its files gives exactly the model's state at the plan's TXID, a TXID at
  or before ``T``; for ``T >= exact`` it is the state at ``T`` itself;
* for every TXID committed inside the window that is still some file's boundary
  (every TXID committed after ``exact`` is), a restore to it gives its state;
* the latest restore gives the latest state;
* every file's ``created_at`` equals its header timestamp, which is the timestamp of
  the L0 file of its max TXID (compaction keeps the last input's), and every output
  is NoChecksum; the index agrees with a fresh listing of the replica.
"""

from __future__ import annotations

import bisect
import datetime as dt
import io
import struct
from collections.abc import Sequence

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ltx.decoder import Decoder
from ltx.encoder import Encoder
from ltx.fileinfo import FileInfo
from ltx.header import FLAG_NO_CHECKSUM, Header
from replica.compaction import CompactionOptions, Compactor
from replica.index import ReplicaIndex
from replica.restore import RestorePlan, RestoreTarget, plan_restore
from replica.retention import RetentionSettings, check_retention, plan_retention
from replica.storage.timestamps import from_millis
from tests.support.memstore import MemoryReplicaClient

PAGE_SIZE = 512
MAX_PAGES = 6
BASE_MS = 1_780_000_000_000
US = dt.timedelta(microseconds=1)
MS = dt.timedelta(milliseconds=1)
State = tuple[int, dict[int, bytes]]


def page(txid: int, pgno: int) -> bytes:
    return struct.pack(">II", txid, pgno) * (PAGE_SIZE // 8)


@attrs.frozen
class Config:
    levels: tuple[int, ...]
    snapshot_interval: int
    snapshot_retention: int
    l0_retention: int

    def options(self) -> CompactionOptions:
        return CompactionOptions(
            levels=tuple(ms * MS for ms in self.levels),
            snapshot_interval=self.snapshot_interval * MS,
            snapshot_retention=self.snapshot_retention * MS,
            l0_retention=self.l0_retention * MS,
        )


class World:
    """The model database, the in-memory replica, and the production compactor driving it."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.client = MemoryReplicaClient()
        self.index = ReplicaIndex(self.client)
        self.now_ms = BASE_MS
        self.compactor = Compactor(self.client, self.index, cfg.options(), clock=self.now)
        self.states: dict[int, State] = {}
        self.ts_ms: dict[int, int] = {}
        self.txid = 0
        self.commit = 0
        self.pages: dict[int, bytes] = {}
        self.last_retention: dt.datetime | None = None
        self._decoded: dict[str, tuple[bytes, State]] = {}

    def now(self) -> dt.datetime:
        return from_millis(self.now_ms)

    def write(self, changes: frozenset[int], new_commit: int) -> None:
        t = self.txid + 1
        if t == 1:
            changed = set(range(1, new_commit + 1))
        else:
            changed = {p for p in changes if p <= new_commit} | set(range(self.commit + 1, new_commit + 1))
            if not changed:
                changed = {1}
        self.pages = {p: d for p, d in self.pages.items() if p <= new_commit}
        for p in changed:
            self.pages[p] = page(t, p)
        self.commit = new_commit
        header = Header(PAGE_SIZE, new_commit, t, t, timestamp=self.now_ms, flags=FLAG_NO_CHECKSUM)
        buf = io.BytesIO()
        enc = Encoder(buf, header)
        for p in sorted(changed):
            enc.write_page(p, self.pages[p])
        enc.close()
        info = self.client.write_file(0, t, t, buf.getvalue())
        self.index.add(info)
        self.txid = t
        self.states[t] = (new_commit, dict(self.pages))
        self.ts_ms[t] = self.now_ms

    def run(self, event: tuple[object, ...]) -> None:
        kind = event[0]
        self.now_ms += int(event[1])  # type: ignore[call-overload]
        if kind == "write":
            self.write(event[2], int(event[3]))  # type: ignore[arg-type, call-overload]
        elif self.txid == 0:
            return
        elif kind == "compact":
            n = len(self.cfg.levels)
            if n:
                self.compactor.compact_level(1 + int(event[2]) % n)  # type: ignore[call-overload]
        elif kind == "snapshot":
            self.compactor.snapshot(force=bool(event[2]))
        elif kind == "retain":
            before = self.index.listing()
            self.compactor.enforce_retention()
            self.last_retention = self.now()
            after = self.index.listing()
            # the reference's floors: the newest file of every non-empty level stays
            for lvl in range(10):
                if before[lvl]:
                    assert after[lvl], f"level {lvl} was emptied"
            assert before[0][-1] in after[0], "the newest L0 file was deleted"
            if before[9]:
                assert max(before[9], key=lambda f: f.max_txid) in after[9], "the newest snapshot was deleted"

    # -- checking ---------------------------------------------------------------------------

    def decoded(self, info: FileInfo) -> State:
        data = self.client.data(info)
        key = self.client.key(info.level, info.min_txid, info.max_txid)
        hit = self._decoded.get(key)
        if hit is not None and hit[0] is data:
            return hit[1]
        dec = Decoder(io.BytesIO(data))
        pages = dict(dec)
        h = dec.header
        assert (h.min_txid, h.max_txid) == (info.min_txid, info.max_txid)
        assert h.no_checksum
        assert from_millis(h.timestamp) == info.created_at, "created_at must be the header timestamp"
        assert h.timestamp == self.ts_ms[h.max_txid], "a compaction keeps its last input's timestamp"
        state = (h.commit, pages)
        self._decoded[key] = (data, state)
        return state

    def apply(self, plan: RestorePlan) -> State:
        pages: dict[int, bytes] = {}
        commit = 0
        for f in plan.files:
            commit, p = self.decoded(f)
            pages.update(p)
        return commit, {p: d for p, d in pages.items() if p <= commit}

    def restore(self, listing: dict[int, list[FileInfo]], target: RestoreTarget) -> tuple[RestorePlan, State]:
        plan = plan_restore(listing, target)
        assert plan.litestream_compatible, f"{target}: only our planner finds {plan.files}"
        return plan, self.apply(plan)

    def check(self) -> None:
        listing = {lvl: self.client.list_files(lvl) for lvl in range(10)}
        index = self.index.listing()
        assert {lvl: [f.name for f in fs] for lvl, fs in listing.items()} == {
            lvl: [f.name for f in fs] for lvl, fs in index.items()
        }, "the index disagrees with the replica"
        opts = self.cfg.options()
        first = from_millis(self.ts_ms[1])
        if self.last_retention is None:
            window, exact = first, first
        else:
            window = self.last_retention - opts.snapshot_retention
            exact = window
            if opts.l0_retention:
                exact = max(window, self.last_retention - opts.l0_retention)
        times = sorted(from_millis(ms) for ms in self.ts_ms.values())
        txids_by_time = sorted((from_millis(ms), t) for t, ms in self.ts_ms.items())
        points = {window, exact, *(c + d for c in times for d in (US, MS))}
        for at in sorted(p for p in points if p >= window and p > first):
            true = txids_by_time[bisect.bisect_left(txids_by_time, (at, 0)) - 1][1]
            plan, state = self.restore(listing, RestoreTarget.at_time(at))
            assert plan.txid <= true, f"restore to {at} is in the future: {plan.txid} > {true}"
            assert state == self.states[plan.txid], f"restore to {at}: wrong pages for txid {plan.txid}"
            if at >= exact:
                assert plan.txid == true, f"restore to {at} gave txid {plan.txid}, the state then was {true}"
        bounds = {f.max_txid for fs in listing.values() for f in fs}
        for t, ms in self.ts_ms.items():
            created = from_millis(ms)
            if created < window:
                continue
            if created >= exact:
                assert t in bounds, f"txid {t}, committed after the L0 cutoff, is no longer restorable"
            if t in bounds:
                plan, state = self.restore(listing, RestoreTarget.at_txid(t))
                assert plan.txid == t and state == self.states[t], f"restore to txid {t}"
        plan, state = self.restore(listing, RestoreTarget.latest())
        assert plan.txid == self.txid and state == self.states[self.txid]


configs = st.builds(
    Config,
    levels=st.lists(st.sampled_from([300, 1000, 2500]), max_size=3).map(tuple),
    snapshot_interval=st.sampled_from([1500, 4000, 15000]),
    snapshot_retention=st.sampled_from([800, 2500, 6000, 20000]),
    l0_retention=st.sampled_from([0, 400, 1500, 5000]),
)
_DT = st.integers(0, 1200)
_writes = st.one_of(
    st.tuples(
        st.just("write"), _DT, st.frozensets(st.integers(1, MAX_PAGES), max_size=3), st.integers(1, MAX_PAGES)
    ),
    st.tuples(st.just("write"), _DT, st.frozensets(st.integers(1, MAX_PAGES), max_size=2), st.just(3)),
)
events = st.one_of(
    _writes,
    _writes,
    _writes,
    st.tuples(st.just("compact"), _DT, st.integers(0, 2)),
    st.tuples(st.just("compact"), _DT, st.integers(0, 2)),
    st.tuples(st.just("snapshot"), _DT, st.booleans()),
    st.tuples(st.just("retain"), _DT),
)


@settings(max_examples=max(200, settings().max_examples))
@given(cfg=configs, history=st.lists(events, min_size=20, max_size=120))
def test_retention_keeps_every_restore_in_the_window(
    cfg: Config, history: Sequence[tuple[object, ...]]
) -> None:
    world = World(cfg)
    world.write(frozenset(), 2)
    for ev in history:
        world.run(ev)
    world.run(("retain", 0))
    world.check()


# --- examples -------------------------------------------------------------------------------


BASE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def fi(level: int, lo: int, hi: int, sec: float) -> FileInfo:
    return FileInfo(level, lo, hi, 200, BASE + dt.timedelta(seconds=sec))


def listing_of(*files: FileInfo) -> dict[int, list[FileInfo]]:
    out: dict[int, list[FileInfo]] = {lvl: [] for lvl in range(10)}
    for f in files:
        out[f.level].append(f)
    return out


def test_the_anchor_snapshot_is_kept_where_litestream_deletes_it() -> None:
    """Litestream deletes every expired snapshot but the newest, and the levels below its
    floor, so a restore to a moment between the window start and the next snapshot has
    no snapshot to start from. We keep that snapshot (the anchor)."""
    files = listing_of(
        fi(9, 1, 10, 10),
        fi(9, 1, 20, 20),
        fi(9, 1, 30, 30),
        fi(1, 1, 10, 10),
        fi(1, 11, 20, 20),
        fi(1, 21, 30, 30),
        fi(1, 31, 40, 40),
        fi(0, 40, 40, 40),
    )
    now = BASE + dt.timedelta(seconds=45)
    d = plan_retention(files, now, RetentionSettings(dt.timedelta(seconds=20), dt.timedelta(0)))
    assert d.window_start == BASE + dt.timedelta(seconds=25)
    assert d.floor_txid == 20  # the anchor 1-20, the newest created before the window
    assert [f.name for f in d.snapshots] == [fi(9, 1, 10, 0).name]
    assert [(f.min_txid, f.max_txid) for f in d.levels] == [(1, 10), (11, 20)]
    after = [f for fs in files.values() for f in fs if f not in d.files]
    plan = plan_restore(listing_of(*after), RestoreTarget.at_time(BASE + dt.timedelta(seconds=26)))
    assert [(f.level, f.max_txid) for f in plan.files] == [(9, 20)]
    # Litestream's rule (delete 1-10 and 1-20, and level files below txid 20) breaks it:
    litestream_after = [f for f in after if (f.level, f.max_txid) != (9, 20)]
    before = [f for fs in files.values() for f in fs]
    assert check_retention(before, litestream_after, window_start=d.window_start, floor_txid=20)


def test_l0_files_go_only_up_to_a_level_one_boundary_older_than_the_moments_that_need_them() -> None:
    # L0 1..6 at t=1..6; L1 1-3 (t=3) and 4-6 (t=6); the L0 cutoff falls inside 4-6.
    files = listing_of(*(fi(0, t, t, t) for t in range(1, 7)), fi(1, 1, 3, 3), fi(1, 4, 6, 6))
    now = BASE + dt.timedelta(seconds=10)
    d = plan_retention(files, now, RetentionSettings(dt.timedelta(hours=1), dt.timedelta(seconds=5)))
    # Deleting L0 4 and 5 (older than the cutoff, covered by L1) would make moments in
    # (5, 6] restore to txid 3 although they are after the cutoff: only 2..3 go, and
    # L0 1 stays as the earliest moment's only start.
    assert [f.max_txid for f in d.l0] == [2, 3]


def test_l0_retention_zero_deletes_no_l0_file() -> None:
    files = listing_of(*(fi(0, t, t, t) for t in range(1, 7)), fi(1, 1, 6, 6), fi(9, 1, 6, 6))
    now = BASE + dt.timedelta(days=3)
    d = plan_retention(files, now, RetentionSettings(dt.timedelta(hours=1), dt.timedelta(0)))
    assert d.l0 == ()


def test_check_reports_a_broken_chain() -> None:
    before = [fi(9, 1, 5, 5), fi(0, 6, 6, 6), fi(0, 7, 7, 7), fi(0, 8, 8, 8)]
    after = [f for f in before if f.max_txid != 7]
    problems = check_retention(before, after, window_start=BASE)
    assert any("no plan" in p for p in problems)


@pytest.mark.parametrize("levels", [(), (1000,), (300, 1000, 2500)])
def test_a_quiet_history_is_compacted_without_copies(levels: tuple[int, ...]) -> None:
    """One write then nothing: no level copies a lone file of the level below."""
    world = World(Config(levels, 4000, 20000, 400))
    world.write(frozenset(), 3)
    for _ in range(6):
        world.run(("compact", 3000, 0))
        world.run(("compact", 0, 1))
        world.run(("compact", 0, 2))
    listing = world.index.listing()
    assert all(not listing[lvl] for lvl in range(1, 9))
    world.write(frozenset({1}), 3)
    world.run(("compact", 3000, 0))
    assert [f.name for f in world.index.files(1)] == [FileInfo(1, 1, 2).name] if levels else True
    world.check()
