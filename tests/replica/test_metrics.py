"""Metrics: the text exposition, the HTTP endpoint, and what a real sync reports."""

from __future__ import annotations

import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from replica.metrics import REGISTRY, Registry, serve
from replica.monitor import Database
from tests.support.s3server import free_port


def test_render_is_prometheus_text() -> None:
    r = Registry()
    r.inc("litestream_sync_count", db='/a "b"')
    r.inc("litestream_sync_count", 2, db='/a "b"')
    r.set("litestream_txid", 7, db="/x")
    r.inc("litestream_sync_seconds", 0.25, db="/x")
    text = r.render()
    assert "# TYPE litestream_sync_count counter" in text
    assert 'litestream_sync_count{db="/a \\"b\\""} 3' in text
    assert 'litestream_txid{db="/x"} 7' in text
    assert 'litestream_sync_seconds{db="/x"} 0.25' in text


def test_metrics_endpoint_serves_the_registry() -> None:
    r = Registry()
    r.set("litestream_txid", 42, db="/db")
    port = free_port()
    server = serve(f"127.0.0.1:{port}", r)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'litestream_txid{db="/db"} 42' in body
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
    finally:
        server.shutdown()
    with pytest.raises(ValueError, match="port"):
        serve("localhost", r)


def test_a_sync_reports_txid_sizes_and_counts(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode = wal")
    con.execute("CREATE TABLE t(x)")
    d = Database(str(db))
    d.open()
    try:
        syncs = REGISTRY.get("litestream_sync_count", db=d.path)
        con.execute("INSERT INTO t VALUES (randomblob(5000))")
        out = d.sync()
        assert out is not None
        assert REGISTRY.get("litestream_sync_count", db=d.path) == syncs + 1
        assert REGISTRY.get("litestream_txid", db=d.path) == out.txid
        assert REGISTRY.get("litestream_wal_size", db=d.path) == out.last.end_offset
        assert REGISTRY.get("litestream_db_size", db=d.path) == db.stat().st_size
        assert d.checkpoint("PASSIVE") is not None
        assert REGISTRY.get("litestream_checkpoint_count", db=d.path, mode="PASSIVE") >= 1
    finally:
        d.close()
        con.close()


def test_lag_and_bytes_stored(tmp_path: Path) -> None:
    from replica.daemon import Replication
    from replica.storage import open_replica_client
    from replica.supervisor import report_replica_metrics

    db = tmp_path / "lag.db"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode = wal")
    con.execute("CREATE TABLE t(x)")
    rep = Replication(str(db), open_replica_client(f"file://{tmp_path / 'r'}"))
    try:
        rep.sync_once()
        report_replica_metrics(rep)
        assert REGISTRY.get("litestream_replication_lag_seconds", db=rep.db.path) == 0
        stored = REGISTRY.get("litestream_replica_bytes", db=rep.db.path)
        assert stored == sum(f.stat().st_size for f in (tmp_path / "r").rglob("*.ltx")) > 0
        assert REGISTRY.get("litestream_replica_objects", db=rep.db.path) >= 1
        con.execute("INSERT INTO t VALUES (randomblob(100))")
        out = rep.db.sync()  # written locally, not uploaded yet
        assert out is not None
        report_replica_metrics(rep, now=time.time() + 60)
        assert REGISTRY.get("litestream_replication_lag_seconds", db=rep.db.path) >= 59
    finally:
        rep.stop()
        con.close()


def test_a_scrape_computes_the_gauges_of_every_running_database(tmp_path: Path) -> None:
    """The lag and size gauges are computed when the metrics are rendered (scraped), by the
    supervisor's collector, and no longer once the supervisor is stopped."""
    from replica.daemon import Replication, ReplicationOptions
    from replica.storage import open_replica_client
    from replica.supervisor import Supervisor

    db = tmp_path / "scraped.db"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode = wal")
    con.execute("CREATE TABLE t(x)")
    con.close()
    path = str(db)
    url = f"file://{tmp_path / 'r'}"
    sup = Supervisor(
        lambda: {path: lambda: Replication(path, open_replica_client(url), ReplicationOptions(levels=()))},
        watch=False,
    )
    sup.start()
    try:
        deadline = time.monotonic() + 30
        while not list((tmp_path / "r").rglob("*.ltx")) and time.monotonic() < deadline:
            time.sleep(0.05)
        REGISTRY.set("litestream_replica_bytes", -1, db=path)
        text = REGISTRY.render()
        stored = REGISTRY.get("litestream_replica_bytes", db=path)
        assert stored == sum(f.stat().st_size for f in (tmp_path / "r").rglob("*.ltx")) > 0
        assert f'litestream_replica_bytes{{db="{path}"}}' in text
    finally:
        assert sup.stop()
    REGISTRY.set("litestream_replica_bytes", -1, db=path)
    REGISTRY.render()
    assert REGISTRY.get("litestream_replica_bytes", db=path) == -1


def test_a_replication_reports_to_the_registry_it_is_given(tmp_path: Path) -> None:
    """Metrics go through an observer passed in: a replication built with its own registry
    reports its syncs there and nothing to the served one."""
    from replica.daemon import Replication, ReplicationOptions
    from replica.metrics import Registry
    from replica.storage import open_replica_client

    db = tmp_path / "own.db"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode = wal")
    con.execute("CREATE TABLE t(x)")
    con.execute("INSERT INTO t VALUES (1)")
    mine = Registry()
    rep = Replication(
        str(db), open_replica_client(f"file://{tmp_path / 'r'}"), ReplicationOptions(levels=()), registry=mine
    )
    try:
        rep.sync_once()
    finally:
        assert rep.stop()
        con.close()
    path = rep.db.path
    assert mine.get("litestream_sync_count", db=path) >= 1
    assert mine.get("litestream_txid", db=path) == rep.db.txid >= 1
    assert REGISTRY.get("litestream_sync_count", db=path) == 0
    assert f'litestream_txid{{db="{path}"}}' in mine.render()
