"""The sync decision: continue only when no commit can have been lost."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from replica.syncplan import NO_SALTS, Action, LastSync, SyncPlan, WALView, plan_sync

u32 = st.integers(0, 2**32 - 1)
salts = st.tuples(u32, u32).filter(lambda s: s != NO_SALTS)


def _last(s: tuple[int, int], end: int = 32 + 5 * 4120) -> LastSync:
    return LastSync(txid=9, end_offset=end, salts=s, commit=10)


def test_first_sync_is_a_snapshot() -> None:
    assert plan_sync(None, WALView((1, 2), 4152), trusted=True).action is Action.SNAPSHOT


@given(salts, st.booleans(), st.booleans())
def test_same_generation_continues_where_the_last_file_ended(
    s: tuple[int, int], trusted: bool, match: bool
) -> None:
    last = _last(s)
    p = plan_sync(last, WALView(s, last.end_offset + 4120), trusted=trusted, last_frame_matches=match)
    if trusted or match:
        assert (p.action, p.offset) == (Action.CONTINUE, last.end_offset)
    else:
        assert p.action is Action.SNAPSHOT


@given(salts, st.booleans())
def test_a_wal_shorter_than_what_we_synced_means_a_snapshot(s: tuple[int, int], trusted: bool) -> None:
    last = _last(s)
    p = plan_sync(last, WALView(s, last.end_offset - 4120), trusted=trusted, last_frame_matches=True)
    assert p.action is Action.SNAPSHOT


@given(salts, u32, st.integers(2, 2**32 - 1))
def test_only_the_next_generation_continues_and_only_when_trusted(
    s: tuple[int, int], salt2: int, jump: int
) -> None:
    last = _last(s)
    nxt = ((s[0] + 1) & 0xFFFFFFFF, salt2)
    p = plan_sync(last, WALView(nxt, 4152), trusted=True)
    assert (p.action, p.offset) == (Action.CONTINUE, 32)
    # The same restart seen after a start-up (nobody watched): snapshot.
    assert plan_sync(last, WALView(nxt, 4152), trusted=False).action is Action.SNAPSHOT
    # More than one restart, or salts that do not follow: snapshot.
    other = ((s[0] + jump) & 0xFFFFFFFF, salt2)
    assert plan_sync(last, WALView(other, 4152), trusted=True).action is Action.SNAPSHOT


@given(salts, st.booleans())
def test_a_wal_without_header(s: tuple[int, int], trusted: bool) -> None:
    view = WALView(None, 0)
    assert plan_sync(_last(s), view, trusted=trusted).action is Action.SNAPSHOT
    p = plan_sync(_last(NO_SALTS, end=32), view, trusted=trusted)
    assert p.action is (Action.CONTINUE if trusted else Action.SNAPSHOT)


@given(salts, st.booleans())
def test_a_wal_that_appeared_after_a_snapshot_of_a_database_without_one(
    s: tuple[int, int], trusted: bool
) -> None:
    p = plan_sync(_last(NO_SALTS, end=32), WALView(s, 4152), trusted=trusted)
    assert p.action is (Action.CONTINUE if trusted else Action.SNAPSHOT)


@given(salts, st.booleans(), st.booleans())
def test_another_database_file_always_means_a_snapshot(
    s: tuple[int, int], trusted: bool, match: bool
) -> None:
    """Whatever the WAL says, even an exact continuation: the file is not the one the last L0 came from."""
    last = _last(s)
    why = "database file replaced (file 1:2 is now 1:3)"
    nxt = ((s[0] + 1) & 0xFFFFFFFF, 7)
    for view in (WALView(s, last.end_offset + 4120), WALView(None, 0), WALView(nxt, 4152)):
        p = plan_sync(last, view, trusted=trusted, last_frame_matches=match, file_change=why)
        assert (p.action, p.reason) == (Action.SNAPSHOT, why)


@given(salts, st.booleans(), st.sampled_from([512, 1024, 2048, 8192, 65536]))
def test_another_page_size_always_means_a_snapshot(s: tuple[int, int], trusted: bool, page_size: int) -> None:
    def plan(known: int, now: int) -> SyncPlan:
        last = LastSync(txid=9, end_offset=32 + 5 * 4120, salts=s, commit=10, page_size=known)
        view = WALView(s, last.end_offset + 4120)
        return plan_sync(last, view, trusted=trusted, last_frame_matches=True, page_size=now)

    p = plan(4096, page_size)
    assert p.action is Action.SNAPSHOT and p.reason == f"page size changed from 4096 to {page_size}"
    # The same page size, or one not known on either side, leaves the decision to the WAL.
    for known, now in ((4096, 4096), (0, page_size), (4096, 0)):
        assert (plan(known, now).action, plan(known, now).offset) == (Action.CONTINUE, 32 + 5 * 4120)
