"""Hand-over between Litestream and us on one replica, databases behind their replica,
a bounded meta directory, and a replica that lost its history."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

from replica.storage import SNAPSHOT_LEVEL, open_replica_client
from tests.support import litestream
from tests.support.processes import Target
from tests.support.workload import Replicator, ids, integrity, make_db, start_writer, track, wait_for


def _litestream_replicate(db: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    return track(
        subprocess.Popen(
            [litestream.binary(), "replicate", str(db), url],
            env=litestream.env(),
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
    )


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGINT)
    return proc.wait(60)


def _max_txid(url: str) -> int:
    client = open_replica_client(url)
    return max((f.max_txid for lv in range(SNAPSHOT_LEVEL + 1) for f in client.list_files(lv)), default=0)


def _our_restore(url: str, out: Path, *flags: str) -> None:
    r = subprocess.run(
        ["python", "-m", "replica", "restore", *flags, "-integrity-check", "full", "-o", str(out), url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr


def test_litestream_then_us_then_litestream_restores(tmp_path: Path, target: Target) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    logf = tmp_path / "replicate.log"
    ls = _litestream_replicate(db, target.url, logf)
    assert start_writer(db, 1, 600, every=20, pause=0.02).wait(120) == 0
    wait_for(lambda: _max_txid(target.url) >= 1, what="litestream uploads")
    time.sleep(1.5)
    assert _stop(ls) == 0
    theirs = _max_txid(target.url)
    ours = Replicator(str(db), target.url, log=logf)
    assert start_writer(db, 601, 1200, every=20, pause=0.02).wait(120) == 0
    assert ours.interrupt() == 0, logf.read_text()
    assert _max_txid(target.url) > theirs, "we continued the TXID chain"
    out = tmp_path / "restored.db"
    litestream.restore(target.url, out)
    assert integrity(out) == "ok"
    assert ids(out) == list(range(1, 1201))


def test_us_then_litestream_then_our_restore(tmp_path: Path, target: Target) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    logf = tmp_path / "replicate.log"
    ours = Replicator(str(db), target.url, log=logf)
    assert start_writer(db, 1, 600, every=20, pause=0.02).wait(120) == 0
    assert ours.interrupt() == 0, logf.read_text()
    mine = _max_txid(target.url)
    ls = _litestream_replicate(db, target.url, logf)
    assert start_writer(db, 601, 1200, every=20, pause=0.02).wait(120) == 0
    wait_for(lambda: _max_txid(target.url) > mine, what="litestream uploads")
    time.sleep(1.5)
    assert _stop(ls) == 0
    out = tmp_path / "restored.db"
    _our_restore(target.url, out)
    assert ids(out) == list(range(1, 1201))


def _tables(db: Path) -> list[tuple[str]]:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return list(con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    finally:
        con.close()


def test_we_never_write_into_the_users_database(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    url = f"file://{tmp_path / 'replica'}"
    rep = Replicator(str(db), url, log=tmp_path / "log")
    assert start_writer(db, 1, 300, every=10, checkpoint="PASSIVE", pause=0.01).wait(60) == 0
    assert rep.interrupt() == 0
    out = tmp_path / "restored.db"
    _our_restore(url, out)
    assert _tables(out) == [("t",)]
    assert _tables(db) == [("t",)]


def test_a_database_behind_its_replica_continues_the_chain(tmp_path: Path, target: Target) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    rep = Replicator(str(db), target.url, log=tmp_path / "log")
    assert start_writer(db, 1, 400, every=20, pause=0.02).wait(60) == 0
    assert rep.interrupt() == 0
    before = _max_txid(target.url)
    # Restore elsewhere (no meta directory there) and replicate the restored copy onward.
    restored = tmp_path / "elsewhere" / "app.db"
    _our_restore(target.url, restored)
    rep = Replicator(str(restored), target.url, log=tmp_path / "log")
    # The copy may take the replica over while it is still the replica's latest state
    # (docs/spec/ownership.md): the application writes once the replicator has claimed it.
    wait_for(lambda: "taking over replica" in (tmp_path / "log").read_text(), what="the take-over")
    assert start_writer(restored, 401, 700, every=20, pause=0.02).wait(60) == 0
    assert rep.interrupt() == 0
    client = open_replica_client(target.url)
    l0 = [f.max_txid for f in client.list_files(0)]
    assert l0 == list(range(1, len(l0) + 1)), "contiguous, nothing reused"
    assert max(l0) > before
    out = tmp_path / "final.db"
    litestream.restore(target.url, out)
    assert ids(out) == list(range(1, 701))


def test_meta_directory_stays_bounded(tmp_path: Path) -> None:
    """Local L0 files live until L1 compaction (every 2 s here) has read them, then go."""
    db = tmp_path / "app.db"
    make_db(db)
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        f"levels:\n  - interval: 2s\ndbs:\n  - path: {db}\n    monitor-interval: 200ms\n"
        f"    replica:\n      url: file://{tmp_path / 'replica'}\n      sync-interval: 200ms\n"
    )
    rep = Replicator("-config", str(cfg), log=tmp_path / "log")
    writer = start_writer(db, 1, 3000, every=10, pause=0.02)
    counts = []
    while writer.poll() is None:
        time.sleep(0.25)
        counts.append(len(list((tmp_path / ".app.db-litestream" / "ltx" / "0").glob("*.ltx"))))
    assert rep.interrupt() == 0
    assert len(list((tmp_path / "replica" / "ltx" / "0").glob("*.ltx"))) >= 10
    # 2 s of syncs at 5 a second, plus the newest, plus slack for a compaction in flight.
    assert max(counts) <= 16, counts


def test_an_emptied_replica_gets_a_snapshot_it_can_restore_from(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    replica = tmp_path / "replica"
    url = f"file://{replica}"
    rep = Replicator(str(db), url, log=tmp_path / "log")
    rep.wait_started()
    # two syncs at least, so that the newest local L0 file is not a full image
    for n, (first, last) in enumerate([(1, 150), (151, 300)], 1):
        assert start_writer(db, first, last, every=20, pause=0.02).wait(60) == 0
        wait_for(lambda n=n: len(list((replica / "ltx" / "0").glob("*.ltx"))) > n, what=f"L0 file {n + 1}")
    assert rep.interrupt() == 0
    shutil.rmtree(replica)
    # As after compaction consumed them: only the newest local L0 file is left.
    for f in sorted((tmp_path / ".app.db-litestream" / "ltx" / "0").glob("*.ltx"))[:-1]:
        f.unlink()
    rep = Replicator(str(db), url, log=tmp_path / "log")
    assert start_writer(db, 301, 600, every=20, pause=0.02).wait(60) == 0
    assert rep.interrupt() == 0
    assert list((replica / "ltx" / "9").glob("0000000000000001-*.ltx")), "the gap is closed by a snapshot"
    out = tmp_path / "out.db"
    litestream.restore(url, out)
    assert ids(out) == list(range(1, 601))
