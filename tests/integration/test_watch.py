"""Change notifications (``replica/watch.py``): a commit is synced when it happens, polling
stays as the safety net, and sustained writes still make one sync per interval.

Where the monitor interval is an hour, a commit that reaches the replica in seconds can
only have been noticed by a notification.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

import replica.daemon as daemon
from ltx.names import parse_filename
from replica.daemon import Replication, ReplicationOptions
from replica.monitor import DBOptions
from replica.restore import restore
from replica.storage import open_replica_client
from replica.watch import Watcher
from tests.support.workload import ids, make_db, start_writer, wait_for

NEVER = 3600.0
"""A poll interval no test outlives."""


def _l0_txids(replica: Path) -> list[int]:
    folder = replica / "ltx" / "0"
    if not folder.exists():
        return []
    return sorted(parse_filename(n)[1] for n in os.listdir(folder) if n.endswith(".ltx"))


def _insert(db: Path, value: int) -> None:
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("INSERT INTO t(id, body) VALUES (?, x'00')", (value,))
    finally:
        con.close()


def _replication(db: Path, replica: Path, monitor_interval: float, sync_interval: float) -> Replication:
    options = ReplicationOptions(
        db=DBOptions(monitor_interval=monitor_interval, checkpoint_interval=0.0),
        sync_interval=sync_interval,
        levels=(),
        shutdown_timeout=10.0,
    )
    return Replication(str(db), open_replica_client(f"file://{replica}"), options)


def test_a_commit_is_synced_and_shipped_without_waiting_for_the_poll(tmp_path: Path) -> None:
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    rep = _replication(db, replica, NEVER, 0.2)
    assert rep.open()
    rep.start()
    try:
        wait_for(lambda: len(_l0_txids(replica)) == 1, what="the first sync", timeout=20)
        for n in range(1, 4):  # each commit after a quiet moment: its own sync, at once
            _insert(db, n)
            wait_for(
                lambda n=n: len(_l0_txids(replica)) == n + 1, what=f"commit {n} on the replica", timeout=20
            )
    finally:
        assert rep.stop()
    out = tmp_path / "restored.db"
    restore(open_replica_client(f"file://{replica}"), out)
    assert ids(out) == [1, 2, 3]


def test_polls_that_find_nothing_do_not_delay_the_next_commit(tmp_path: Path) -> None:
    """Intervals of 4 s: the database is opened (a sync) and polled 4 s later, finding
    nothing. A commit half a second after that poll is more than one gap after the last
    sync that wrote a file: it is synced at once, not 3.5 s later at the next gap."""
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    rep = _replication(db, replica, 4.0, 4.0)
    assert rep.open()
    opened = time.monotonic()
    rep.start()
    try:
        wait_for(lambda: len(_l0_txids(replica)) == 1, what="the first sync", timeout=20)
        time.sleep(max(0.0, opened + 4.5 - time.monotonic()))
        _insert(db, 1)
        wait_for(lambda: len(_l0_txids(replica)) == 2, what="the commit shipped before the gap", timeout=3)
    finally:
        assert rep.stop()


def test_without_notifications_the_database_is_polled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon, "shared_watcher", lambda: None)
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    rep = _replication(db, replica, 0.2, 0.2)
    assert rep.open()
    rep.start()
    try:
        wait_for(lambda: len(_l0_txids(replica)) == 1, what="the first sync", timeout=20)
        _insert(db, 1)
        wait_for(lambda: len(_l0_txids(replica)) == 2, what="the polled commit on the replica", timeout=20)
    finally:
        assert rep.stop()


def test_sustained_writes_make_one_sync_per_interval(tmp_path: Path) -> None:
    """About 20 commits a second for about 4 s, with a 1 s interval: notifications arrive
    for every commit, yet at most one sync (one L0 file, one upload) per interval, plus the
    leading edge and the last sync at shutdown; every row reaches the replica."""
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    make_db(db)
    rep = _replication(db, replica, 1.0, 1.0)
    assert rep.open()
    rep.start()
    try:
        wait_for(lambda: len(_l0_txids(replica)) == 1, what="the first sync", timeout=20)
        writer = start_writer(db, 1, 80, every=1000, pause=0.05)
        started = time.monotonic()
        assert writer.wait(60) == 0
        seconds = time.monotonic() - started
    finally:
        assert rep.stop()
    synced = len(_l0_txids(replica)) - 1
    assert 1 <= synced <= seconds / 1.0 + 2, f"{synced} syncs in {seconds:.1f} s"
    out = tmp_path / "restored.db"
    restore(open_replica_client(f"file://{replica}"), out)
    assert ids(out) == list(range(1, 81))


def test_a_watched_folder_removed_and_recreated_is_watched_again(tmp_path: Path) -> None:
    folder = tmp_path / "dbs"
    folder.mkdir()
    db = folder / "app.db"
    event = threading.Event()
    watcher = Watcher()
    try:
        assert watcher.watch(str(db), event)
        (folder / "other.db-wal").write_bytes(b"x")
        assert not event.wait(0.5)  # another database's file wakes someone else
        (folder / "app.db-wal").write_bytes(b"x")
        assert event.wait(10)
        shutil.rmtree(folder)
        event.clear()
        folder.mkdir()
        assert watcher.watch(str(db), event)  # the monitor does this when it reopens
        db.write_bytes(b"y")
        assert event.wait(10)
    finally:
        watcher.close()


class _Counter:
    """A waiter that counts how often it is woken, and when it was last."""

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0
        self.woken = threading.Event()

    def set(self) -> None:
        self.count += 1
        self.last = time.monotonic()
        self.woken.set()


def test_a_flat_out_writer_costs_few_wake_ups_and_a_pause_restores_the_fast_path(tmp_path: Path) -> None:
    """While events keep coming, the reader batches them longer (up to 64 ms): a file written
    without pause for a second wakes its waiter a few dozen times, not hundreds (a 2 ms batch
    gives about 400). After a quiet moment, the next write is reported within milliseconds."""
    db = tmp_path / "app.db"
    db.write_bytes(b"")
    watcher = Watcher()
    counter = _Counter()
    try:
        assert watcher.watch(str(db), counter)
        stop = time.monotonic() + 1.0
        with open(str(db) + "-wal", "ab") as f:
            while time.monotonic() < stop:
                f.write(b"x" * 64)
                f.flush()
        time.sleep(0.1)
        assert 0 < counter.count <= 60, counter.count
        time.sleep(0.5)  # quiet: the next batch is short again
        counter.woken.clear()
        began = time.monotonic()
        with open(str(db) + "-wal", "ab") as f:
            f.write(b"y")
        assert counter.woken.wait(5)
        assert counter.last - began < 0.05, counter.last - began
    finally:
        watcher.close()
