"""The monitor on real databases: L0 header fields, checkpoints, restarts, trust."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from ltx.decoder import Decoder
from replica.monitor import Database, DBOptions
from tests.support.workload import make_db, start_writer


def _header(path: str):  # type: ignore[no-untyped-def]
    with open(path, "rb") as f:
        dec = Decoder(f)
        pages = dict(dec)
    return dec.header, pages


def _sql(db: Path, *statements: str) -> None:
    """Run statements in another process (the application)."""
    code = "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1],timeout=10,isolation_level=None)\n"
    code += "".join(f"c.execute({s!r}).fetchall()\n" for s in statements)
    subprocess.run([sys.executable, "-c", code, str(db)], check=True, timeout=60)


def test_l0_headers_are_litestreams(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    make_db(db)
    d = Database(str(db))
    d.open()
    try:
        assert d.last_path is not None
        h, pages = _header(d.last_path)
        assert h.no_checksum and h.min_txid == h.max_txid == 1 and h.is_snapshot
        assert sorted(pages) == list(range(1, h.commit + 1))
        assert start_writer(db, 1, 50, every=0).wait(60) == 0
        out = d.sync()
        assert out is not None and not out.snapshot
        h, pages = _header(out.path)
        assert (h.min_txid, h.no_checksum, h.pre_apply_checksum) == (2, True, 0)
        wal = (db.parent / "a.db-wal").read_bytes()
        assert (h.wal_salt1, h.wal_salt2) == (
            int.from_bytes(wal[16:20], "big"),
            int.from_bytes(wal[20:24], "big"),
        )
        assert h.wal_offset == 32 and h.wal_offset + h.wal_size == out.last.end_offset
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        assert h.commit == con.execute("PRAGMA page_count").fetchone()[0]
        con.close()
    finally:
        d.close()


def test_our_checkpoint_restarts_the_wal_without_a_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    make_db(db)
    d = Database(str(db), DBOptions(min_checkpoint_page_count=10))
    d.open()
    try:
        snapshots = 0
        first_salt = None
        for start in range(1, 2000, 200):
            assert start_writer(db, start, start + 199, every=0).wait(60) == 0
            out = d.sync()
            snapshots += bool(out and out.snapshot)
            if first_salt is None and out is not None:
                first_salt = out.last.salts[0]
            assert d.maybe_checkpoint() == "PASSIVE"
        assert snapshots == 0
        assert d.last is not None and first_salt is not None
        assert d.last.salts[0] - first_salt == 9, "one restart per checkpoint, each continued"
    finally:
        d.close()


def test_the_application_cannot_restart_the_wal_under_us(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    make_db(db)
    d = Database(str(db))
    d.open()
    try:
        assert start_writer(db, 1, 300, every=0).wait(60) == 0
        d.sync()
        assert d.last is not None
        salts = d.last.salts
        _sql(
            db,
            "PRAGMA busy_timeout = 100",
            "PRAGMA wal_checkpoint(TRUNCATE)",
            "INSERT INTO t(id) VALUES (1000)",
        )
        out = d.sync()
        assert out is not None and not out.snapshot and out.last.salts == salts
    finally:
        d.close()


def test_a_restart_while_nobody_watched_means_a_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    make_db(db)
    d = Database(str(db))
    d.open()
    assert start_writer(db, 1, 300, every=0).wait(60) == 0
    d.sync()
    d.close()
    _sql(
        db,
        "INSERT INTO t(id) VALUES (5000)",
        "PRAGMA wal_checkpoint(TRUNCATE)",
        "INSERT INTO t(id) VALUES (5001)",
    )
    d = Database(str(db))
    d.open(floor_txid=0)
    try:
        assert d.last_path is not None
        h, pages = _header(d.last_path)
        assert h.min_txid == 3 and len(pages) == h.commit  # a full image at the next TXID
    finally:
        d.close()


def test_a_quiet_restart_continues_without_a_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    make_db(db)
    keeper = subprocess.Popen(  # the application stays connected, so the WAL is kept
        [
            sys.executable,
            "-c",
            "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1]); "
            "c.execute('select count(*) from sqlite_master').fetchall(); time.sleep(60)",
            str(db),
        ]
    )
    try:
        d = Database(str(db))
        d.open()
        assert start_writer(db, 1, 300, every=0).wait(60) == 0
        d.sync()
        d.close()
        assert start_writer(db, 301, 400, every=0).wait(60) == 0
        d = Database(str(db))
        d.open()
        try:
            assert d.last_path is not None
            h, pages = _header(d.last_path)
            assert h.min_txid == 3 and not (len(pages) == h.commit and h.wal_offset == 32)
        finally:
            d.close()
    finally:
        keeper.kill()
        keeper.wait()
