"""We replicate a live database under write load; the real Litestream restores it."""

from __future__ import annotations

import datetime as dt
import random
import time
from pathlib import Path

import pytest

from replica.storage import open_replica_client
from tests.support import litestream
from tests.support.processes import Target
from tests.support.workload import (
    Replicator,
    assert_prefix,
    ids,
    integrity,
    make_db,
    start_writer,
    wait_for,
)


def _restore(target: Target, out: Path, *flags: str) -> list[int]:
    litestream.restore(target.url, out, *flags)
    assert integrity(out) == "ok"
    return ids(out)


def _level0(target: Target) -> list[tuple[int, dt.datetime]]:
    client = open_replica_client(target.url)
    return [(f.max_txid, f.created_at) for f in client.list_files(0, use_metadata=True)]


def test_litestream_restores_what_we_replicate(tmp_path: Path, target: Target) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    rep = Replicator(str(db), target.url, log=tmp_path / "replicate.log")
    writer = start_writer(db, 1, 1500, every=10, pause=0.03)  # about 5 s of commits
    assert writer.wait(120) == 0
    wait_for(lambda: len(_level0(target)) >= 3, what="uploads")
    assert rep.interrupt() == 0, (tmp_path / "replicate.log").read_text()
    source = ids(db)
    assert source == list(range(1, 1501))
    assert _restore(target, tmp_path / "latest.db") == source

    files = _level0(target)
    txid, created = files[len(files) // 2]
    at_txid = _restore(target, tmp_path / "at-txid.db", "-txid", f"{txid:016x}")
    assert_prefix(at_txid)
    assert 0 < len(at_txid) <= len(source)
    # A timestamp just after that file was made restores exactly the same state.
    later = files[len(files) // 2 + 1][1]
    assert later > created
    ts = (created + (later - created) / 2).isoformat().replace("+00:00", "Z")
    assert _restore(target, tmp_path / "at-time.db", "-timestamp", ts) == at_txid


@pytest.mark.parametrize("mode", ["PASSIVE", "FULL", "RESTART", "TRUNCATE"])
def test_checkpoints_by_the_application_lose_nothing(tmp_path: Path, target: Target, mode: str) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    url = target.url
    rep = Replicator(str(db), url, log=tmp_path / "replicate.log")
    writer = start_writer(db, 1, 1200, every=40, checkpoint=mode, pause=0.02)
    assert writer.wait(120) == 0
    assert rep.interrupt() == 0, (tmp_path / "replicate.log").read_text()
    out = tmp_path / "restored.db"
    litestream.restore(url, out)
    assert integrity(out) == "ok"
    assert ids(out) == list(range(1, 1201))


def test_sigkill_at_random_moments_never_loses_a_commit(tmp_path: Path, target: Target) -> None:
    """Killed and restarted while the application writes with SQLite's default
    auto-checkpoint; every restore in between is a prefix of the rows written, and the
    final one has every row."""
    db = tmp_path / "app.db"
    make_db(db)
    url = target.url
    logf = tmp_path / "replicate.log"
    rnd = random.Random(20261125)
    total = 10000
    writer = start_writer(db, 1, total, every=25, pause=0.005)
    restores = 0
    cycles = 0
    while writer.poll() is None or cycles < 6:  # enough kills even if the writer is quick
        cycles += 1
        opened = logf.read_text().count("initialized db") if logf.exists() else 0
        rep = Replicator(str(db), url, log=logf)
        # killed at random moments of its work, not of its start-up (slow on a loaded machine)
        wait_for(lambda n=opened: logf.read_text().count("initialized db") > n, 60, "the database opened")
        time.sleep(rnd.uniform(0.3, 1.5))
        rep.kill()
        time.sleep(rnd.uniform(0.0, 1.2))  # dead time: the application checkpoints and restarts the WAL
        out = tmp_path / f"mid-{restores}.db"
        r = litestream.run("restore", "-o", str(out), url)
        if r.returncode == 0:
            assert integrity(out) == "ok"
            assert_prefix(ids(out))
            restores += 1
    assert writer.returncode == 0
    rep = Replicator(str(db), url, log=logf)
    time.sleep(2)
    assert rep.interrupt() == 0, logf.read_text()
    assert restores >= 3
    # The hazard was really exercised: the WAL restarted (or was checkpointed away by the
    # application's last connection) while no replicator watched.
    log = logf.read_text()
    assert "restarted while not replicating" in log or "wal has no header" in log
    out = tmp_path / "final.db"
    litestream.restore(url, out)
    assert integrity(out) == "ok"
    assert ids(out) == list(range(1, total + 1))
