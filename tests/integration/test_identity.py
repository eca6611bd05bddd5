"""Database identity: a deleted, recreated, renamed-over or re-paged database starts a new
history (a snapshot), nothing of two files is ever mixed in one state, and temporary
files in the meta directory are removed only by the task that writes them."""

from __future__ import annotations

import itertools
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from ltx.decoder import Decoder
from ltx.errors import PyLitestreamError
from ltx.header import Header
from replica.compaction import TEMP_PREFIX, TEMP_SUFFIX
from replica.daemon import Replication
from replica.defaults import default_meta_path
from replica.monitor import Database
from replica.restore import restore
from replica.storage import ReplicaClient, open_replica_client
from tests.support import litestream
from tests.support.processes import Target
from tests.support.workload import Replicator, ids, integrity, make_db, start_writer, wait_for

OLD = list(range(1, 101))
"""Rows of the original database."""

_n = itertools.count()


def _restored(client: ReplicaClient, tmp: Path, txid: int | None = None) -> list[int]:
    """Restore (latest, or the state at ``txid``) with our restore; the result must be a sound database."""
    out = tmp / f"restored-{next(_n)}.db"
    restore(client, out, txid=txid)
    try:
        assert integrity(out) == "ok", f"restore at {txid} is not a sound database"
        return ids(out)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{out}{suffix}").unlink(missing_ok=True)


def _wait_restored(client: ReplicaClient, tmp: Path, rows: list[int], what: str) -> None:
    def ready() -> bool:
        try:
            return _restored(client, tmp) == rows
        except PyLitestreamError:  # nothing to restore yet, or a file replaced while we listed
            return False
        except sqlite3.OperationalError as e:  # a real early state: the file made, the table not yet
            assert "no such table" in str(e), e
            return False

    wait_for(ready, timeout=20, what=what)


def _l0(client: ReplicaClient) -> list[int]:
    return sorted(f.max_txid for f in client.list_files(0))


def _l0_pages(client: ReplicaClient, txid: int, tmp: Path) -> tuple[Header, list[int]]:
    """The header of the L0 file ``txid`` in the replica and the page numbers it holds."""
    path = tmp / f"l0-{txid}.ltx"
    with client.open_file(0, txid, txid) as f, open(path, "wb") as out:
        out.write(f.read())
    with open(path, "rb") as f:
        dec = Decoder(f)
        pages = [pgno for pgno, _ in dec]
    return dec.header, pages


def _warned(log: str, path: Path, *words: str) -> bool:
    return any(
        "level=WARNING" in line and str(path) in line and all(w in line for w in words)
        for line in log.splitlines()
    )


def _app(db: Path, *statements: str) -> None:
    """Run statements in another process (the application), which then closes the database."""
    code = "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1],timeout=10,isolation_level=None)\n"
    code += "".join(f"c.execute({s!r}).fetchall()\n" for s in statements)
    subprocess.run([sys.executable, "-c", code, str(db)], check=True, timeout=60)


def test_deleted_and_recreated_database_is_replicated_from_a_snapshot(tmp_path: Path, target: Target) -> None:
    db, logf = tmp_path / "app.db", tmp_path / "replicate.log"
    client = open_replica_client(target.url)
    make_db(db)
    rep = Replicator(str(db), target.url, log=logf)
    assert start_writer(db, 1, 100, every=0).wait(60) == 0
    _wait_restored(client, tmp_path, OLD, "the original database in the replica")
    old_txid = _l0(client)[-1]

    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    wait_for(
        lambda: _warned(logf.read_text(), db, "deleted"), timeout=15, what="a warning about the deletion"
    )
    make_db(db)
    assert start_writer(db, 1001, 1075, every=0).wait(60) == 0
    new = list(range(1001, 1076))
    _wait_restored(client, tmp_path, new, "the recreated database in the replica")
    assert rep.interrupt() == 0, logf.read_text()
    assert "Traceback" not in logf.read_text()

    assert ids(db) == new
    assert _restored(client, tmp_path) == new
    assert _restored(client, tmp_path, old_txid) == OLD
    # The new history is an ordinary chain for Litestream too.
    out = tmp_path / "litestream.db"
    litestream.restore(target.url, out)
    assert integrity(out) == "ok" and ids(out) == new


def test_database_renamed_over_the_original_is_never_mixed_with_it(tmp_path: Path) -> None:
    db, logf = tmp_path / "app.db", tmp_path / "replicate.log"
    url = f"file://{tmp_path / 'replica'}"
    client = open_replica_client(url)
    make_db(db)
    rep = Replicator(str(db), url, log=logf)
    assert start_writer(db, 1, 100, every=0).wait(60) == 0
    _wait_restored(client, tmp_path, OLD, "the original database in the replica")

    other = tmp_path / "new.db"
    make_db(other)
    assert start_writer(other, 1001, 1075, every=0).wait(60) == 0
    assert not Path(f"{other}-wal").exists()  # closed cleanly: everything is in new.db
    os.rename(other, db)
    _wait_restored(client, tmp_path, list(range(1001, 1076)), "the renamed-over database in the replica")
    # The application goes on writing to the new file.
    assert start_writer(db, 1076, 1100, every=0).wait(60) == 0
    new = list(range(1001, 1101))
    _wait_restored(client, tmp_path, new, "the later commits in the replica")
    assert rep.interrupt() == 0, logf.read_text()
    log = logf.read_text()
    assert "Traceback" not in log
    assert _warned(log, db, "replaced")
    # The old file's WAL, orphaned at the WAL path, was moved aside, not deleted.
    assert [p.name for p in tmp_path.glob("app.db-wal.replaced-*")], log

    assert ids(db) == new and integrity(db) == "ok"
    assert _restored(client, tmp_path) == new
    # Every state in the replica is a state of one file or of the other, old ones first.
    seen_new = False
    for txid in range(1, _l0(client)[-1] + 1):
        rows = _restored(client, tmp_path, txid)
        if rows and rows[0] == 1001:
            seen_new = True
            assert rows == list(range(1001, 1001 + len(rows))) and len(rows) >= 75, f"txid {txid}"
        else:
            assert not seen_new, f"txid {txid}: the old database after the new one"
            assert rows == list(range(1, 1 + len(rows))), f"txid {txid}: not a state of the old database"
    assert seen_new


def test_page_size_changed_while_stopped_starts_a_new_history(tmp_path: Path) -> None:
    db, logf = tmp_path / "app.db", tmp_path / "replicate.log"
    url = f"file://{tmp_path / 'replica'}"
    client = open_replica_client(url)
    make_db(db, page_size=4096)
    rep = Replicator(str(db), url, log=logf)
    assert start_writer(db, 1, 100, every=0).wait(60) == 0
    _wait_restored(client, tmp_path, OLD, "the original database in the replica")
    assert rep.interrupt() == 0, logf.read_text()
    old_txid = _l0(client)[-1]

    _app(db, "PRAGMA journal_mode = delete", "PRAGMA page_size = 8192", "VACUUM", "PRAGMA journal_mode = wal")
    assert start_writer(db, 101, 120, every=0).wait(60) == 0
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA page_size").fetchone()[0] == 8192
    con.close()

    rep = Replicator(str(db), url, log=logf)
    wait_for(lambda: _l0(client)[-1] > old_txid, timeout=20, what="an L0 file after the restart")
    assert rep.interrupt() == 0, logf.read_text()
    log = logf.read_text()
    assert "Traceback" not in log
    assert _warned(log, db, "page size changed from 4096 to 8192")

    first, pages = _l0_pages(client, old_txid + 1, tmp_path)
    assert first.page_size == 8192
    assert pages == list(range(1, first.commit + 1)), "the first file of the new history is not a snapshot"

    assert _restored(client, tmp_path, old_txid) == OLD
    latest = tmp_path / "latest.db"
    restore(client, latest)
    assert integrity(latest) == "ok" and ids(latest) == list(range(1, 121))
    con = sqlite3.connect(latest)
    assert con.execute("PRAGMA page_size").fetchone()[0] == 8192
    con.close()


def test_shutdown_reports_sqlite_errors_without_a_traceback(tmp_path: Path) -> None:
    """SQLite's errors at the last sync are logged, located, and reflected in the exit status;
    the shutdown itself carries on (other databases would still be stopped and shipped)."""
    db, logf = tmp_path / "app.db", tmp_path / "replicate.log"
    db.write_bytes(bytes(range(256)) * 32)  # not a database: SQLite refuses it
    rep = Replicator(str(db), f"file://{tmp_path / 'replica'}", log=logf)
    wait_for(lambda: "file is not a database" in logf.read_text(), timeout=15, what="the sync error")
    assert rep.interrupt() == 1
    log = logf.read_text()
    assert "Traceback" not in log, log
    assert any("level=ERROR" in line and str(db) in line and "last sync" in line for line in log.splitlines())
    assert "litestream shut down" in log, log


def _compaction_temp(meta: str) -> Path:
    """A staging file named the way a compaction run names its output."""
    fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}L1-", suffix=TEMP_SUFFIX, dir=meta)
    os.write(fd, b"half a compaction output")
    os.close(fd)
    return Path(name)


def test_monitor_start_up_removes_only_its_own_temporary_files(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    meta = default_meta_path(str(db))
    l0 = Path(meta, "ltx", "0")
    l0.mkdir(parents=True)
    in_flight = _compaction_temp(meta)
    uploads = l0 / "0000000000000003-0000000000000003.ltx.snapshot.tmp"
    ours = [
        l0 / "0000000000000004-0000000000000004.ltx.0a1b2c3d.tmp",  # our L0 writer's staging name
        l0 / "0000000000000005-0000000000000005.ltx.tmp",  # Litestream's
        Path(meta, "identity.json.00ff00ff.tmp"),  # the identity record's
    ]
    for p in [uploads, *ours]:
        p.write_bytes(b"left behind")

    d = Database(str(db))
    d.open()
    d.close()
    assert in_flight.exists(), "the monitor removed a compaction run's output"
    assert uploads.exists(), "the monitor removed an upload's staging file"
    assert not [p for p in ours if p.exists()], "the monitor's own leftovers are still there"


def test_replication_start_removes_compaction_leftovers_itself(tmp_path: Path) -> None:
    """Compaction's leftovers are removed by compaction's side, when replication starts (here
    before the database even exists, so the monitor never opens it)."""
    db = tmp_path / "app.db"
    meta = default_meta_path(str(db))
    os.makedirs(meta)
    stale = _compaction_temp(meta)
    rep = Replication(str(db), open_replica_client(f"file://{tmp_path / 'replica'}"))
    rep.start()
    try:
        assert not stale.exists()
    finally:
        assert rep.stop()


def test_database_recreated_while_stopped_is_a_new_history(tmp_path: Path) -> None:
    """Stopped; the database is deleted and made again (same page size, rows of its own,
    its WAL checkpointed away); started again: the first sync is a snapshot, the latest
    restore is the new database and the TXIDs before still restore the old one."""
    db, logf = tmp_path / "app.db", tmp_path / "replicate.log"
    url = f"file://{tmp_path / 'replica'}"
    client = open_replica_client(url)
    make_db(db)
    rep = Replicator(str(db), url, log=logf)
    assert start_writer(db, 1, 100, every=0).wait(60) == 0
    _wait_restored(client, tmp_path, OLD, "the original database in the replica")
    assert rep.interrupt() == 0, logf.read_text()
    old_txid = _l0(client)[-1]

    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    make_db(db)
    assert start_writer(db, 2001, 2040, every=0).wait(60) == 0
    _app(db, "PRAGMA wal_checkpoint(TRUNCATE)")
    new = list(range(2001, 2041))

    rep = Replicator(str(db), url, log=logf)
    _wait_restored(client, tmp_path, new, "the recreated database in the replica")
    assert rep.interrupt() == 0, logf.read_text()
    log = logf.read_text()
    assert "Traceback" not in log
    assert _l0(client)[0] == 1 and min(t for t in _l0(client) if t > old_txid) == old_txid + 1
    header, pages = _l0_pages(client, old_txid + 1, tmp_path)
    assert sorted(pages) == list(range(1, header.commit + 1))  # every page: a snapshot
    assert _restored(client, tmp_path) == new
    assert _restored(client, tmp_path, old_txid) == OLD
