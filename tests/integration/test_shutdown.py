"""Shutdown of ``python -m replica replicate`` is bounded, on real processes and a real S3 server.

The contract (``replica/cli/replicate.py``, ``replica/supervisor.py``, ``replica/daemon.py``):

* after SIGINT or SIGTERM every database makes its last sync and upload at once, each
  bounded by its ``shutdown-sync-timeout`` (plus the supervisor's one-second grace),
  whatever the store does: a store that refuses connections and one that accepts them
  and never answers (a black hole, which only the S3 client's timeouts would end) both
  stop the process in time;
* the exit status is 0 only if every L0 file reached the replica, otherwise 1 with a
  message naming the databases; the L0 files not uploaded stay in the meta directory
  and the next start ships them, so nothing committed is lost;
* a second signal during shutdown ends the process at once, status 128 + the signal;
* many databases stop in parallel, not one after the other, and a store that hangs
  does not hold up the local syncs meanwhile;
* the bound holds from the moment the signal handlers are installed, start-up included;
* a running compaction (here a level-9 snapshot) is cancelled by shutdown at its next
  write of the staged output, and leaves no staging file behind.

Where a test leaves files unsent, a restart with the store reachable must ship them, and
a restore of the replica must then hold every committed row.

The stores: :class:`~tests.support.s3server.FaultProxy` in front of the moto server,
``refuse()`` (connections refused) or ``black_hole()`` (accepted, never answered).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ltx.decoder import read_header
from tests.conftest import REPO
from tests.support.s3server import FaultProxy, S3Server, s3_env
from tests.support.workload import Replicator, ids, make_db, start_writer, wait_for

TIMEOUT = 2.0
"""The ``shutdown-sync-timeout`` of the bounded tests, in seconds."""

_LTX = re.compile(r"([0-9a-f]{16})-([0-9a-f]{16})\.ltx$")


def _max_txid(names: list[str]) -> int:
    """The highest TXID among LTX file names or keys (0 when there are none)."""
    return max((int(m.group(2), 16) for n in names if (m := _LTX.search(n))), default=0)


def _local_l0(db: Path) -> list[str]:
    """Names of the L0 files in the database's meta directory."""
    return sorted(p.name for p in (db.parent / f".{db.name}-litestream" / "ltx" / "0").glob("*.ltx"))


def _synced(db: Path) -> bool:
    """Whether the newest local L0 file ends where the WAL ends: every commit made so far
    is in the meta directory (true once no one writes and the replicator has synced)."""
    names = _local_l0(db)
    if not names:
        return False
    try:
        with open(db.parent / f".{db.name}-litestream" / "ltx" / "0" / names[-1], "rb") as f:
            h = read_header(f)
    except FileNotFoundError:  # removed since it was listed: look again
        return False
    wal = db.parent / f"{db.name}-wal"
    return h.wal_offset + h.wal_size == (wal.stat().st_size if wal.exists() else 0)


def _s3_url(bucket: str, endpoint: str, path: str = "db") -> str:
    return f"s3://{bucket}/{path}?endpoint={endpoint}&region=us-east-1"


def _one_db_config(tmp_path: Path, db: Path, url: str, timeout: str, name: str = "c.yml") -> Path:
    cfg = tmp_path / name
    cfg.write_text(
        f"shutdown-sync-timeout: {timeout}\ndbs:\n  - path: {db}\n    replica:\n      url: {url}\n"
    )
    return cfg


def _restore(url: str, out: Path) -> list[int]:
    """``python -m replica restore`` of ``url`` into ``out``; the restored row ids."""
    r = subprocess.run(
        [sys.executable, "-m", "replica", "restore", "-o", str(out), url],
        cwd=REPO,
        env={**os.environ, **s3_env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return ids(out)


def _signal_and_time(rep: Replicator, sig: int, limit: float = 60) -> tuple[int, float]:
    """Send ``sig`` to a running replicator; its exit status and the seconds it took to exit."""
    rep.wait_started()
    t0 = time.monotonic()
    rep.proc.send_signal(sig)
    rc = rep.proc.wait(limit)
    return rc, time.monotonic() - t0


def _ship_after_restart(
    tmp_path: Path, db: Path, s3_server: S3Server, bucket: str, last: int, log: Path
) -> None:
    """Replicate again with the store reachable, until the replica holds TXID ``last`` (the
    newest local L0 file); a clean stop then exits 0 (every L0 file reached the replica)."""
    url = _s3_url(bucket, s3_server.endpoint)
    cfg = _one_db_config(tmp_path, db, url, "10s", name="restart.yml")
    rep = Replicator("-config", str(cfg), env=s3_env(), log=log)
    wait_for(lambda: _max_txid(s3_server.list_keys(bucket)) >= last, 60, "the restart to ship every L0 file")
    rc = rep.interrupt()
    assert rc == 0, log.read_text()


def _replicate_through(
    tmp_path: Path, proxy: FaultProxy, s3_server: S3Server, timeout: str
) -> tuple[Path, str, Path, Replicator]:
    """A fresh database replicated to a new bucket through ``proxy`` with that
    ``shutdown-sync-timeout``: the database, the bucket, the log, the replicator."""
    db = tmp_path / "app.db"
    make_db(db)
    bucket = s3_server.new_bucket()
    log = tmp_path / "replicate.log"
    cfg = _one_db_config(tmp_path, db, _s3_url(bucket, proxy.endpoint), timeout)
    return db, bucket, log, Replicator("-config", str(cfg), env=s3_env(), log=log)


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    p = FaultProxy(s3_server.endpoint)
    try:
        yield p
    finally:
        p.close()


def _cut(proxy: FaultProxy, how: str) -> None:
    if how == "refused":
        proxy.refuse()
    else:
        proxy.black_hole()


@pytest.mark.parametrize("how", ["refused", "black_hole"])
def test_sigterm_with_an_unreachable_store_is_bounded_and_loses_nothing(
    tmp_path: Path, s3_server: S3Server, proxy: FaultProxy, how: str
) -> None:
    """SIGTERM while the store is unreachable: exit 1 within shutdown-sync-timeout + 2 s,
    naming the database; its L0 files stay; the next start ships them and a restore holds
    every committed row."""
    db, bucket, log, rep = _replicate_through(tmp_path, proxy, s3_server, f"{TIMEOUT:g}s")
    wait_for(lambda: _max_txid(s3_server.list_keys(bucket)) >= 1, 60, "the first upload")
    _cut(proxy, how)
    assert start_writer(db, 1, 200, every=0).wait(60) == 0
    wait_for(lambda: _synced(db), 30, "every commit to be in a local L0 file")
    last = _max_txid(_local_l0(db))

    rc, took = _signal_and_time(rep, signal.SIGTERM)

    text = log.read_text()
    assert took <= TIMEOUT + 2, f"took {took:.1f}s to stop\n{text}"
    assert rc == 1, text
    assert re.search(
        rf"not every L0 file reached the replica before shutdown for .*{re.escape(str(db))}", text
    ), text
    remote = _max_txid(s3_server.list_keys(bucket))
    assert remote < last, "nothing could have been uploaded after the cut"
    assert _max_txid(_local_l0(db)) == last, "the L0 files not uploaded stay in the meta directory"

    proxy.close()
    _ship_after_restart(tmp_path, db, s3_server, bucket, last, tmp_path / "restart.log")
    assert _restore(_s3_url(bucket, s3_server.endpoint), tmp_path / "out.db") == list(range(1, 201))


def test_sigterm_during_start_up_with_a_black_holed_store_is_bounded(
    tmp_path: Path, s3_server: S3Server, proxy: FaultProxy
) -> None:
    """The store black-holed before the replicator starts (it cannot even read the owner
    record): a SIGTERM as soon as the replicator handles it still ends it within
    shutdown-sync-timeout + 2 s, status 1, naming the database."""
    db = tmp_path / "app.db"
    make_db(db)
    assert start_writer(db, 1, 50, every=0).wait(60) == 0
    bucket = s3_server.new_bucket()
    proxy.black_hole()
    log = tmp_path / "replicate.log"
    cfg = _one_db_config(tmp_path, db, _s3_url(bucket, proxy.endpoint), f"{TIMEOUT:g}s")
    rep = Replicator("-config", str(cfg), env=s3_env(), log=log)
    wait_for(lambda: proxy.held > 0, 30, "the replicator to ask the store")

    try:
        rc, took = _signal_and_time(rep, signal.SIGTERM, limit=TIMEOUT + 4)
    except subprocess.TimeoutExpired:
        rep.kill()
        pytest.fail(f"still running {TIMEOUT + 4:g}s after SIGTERM\n{log.read_text()}")

    text = log.read_text()
    assert took <= TIMEOUT + 2, f"took {took:.1f}s to stop\n{text}"
    assert rc == 1, text
    assert f"for {db}" in text, text
    assert s3_server.list_keys(bucket) == [], "the store answered nothing: nothing reached it"


def test_a_second_signal_exits_at_once(tmp_path: Path, s3_server: S3Server, proxy: FaultProxy) -> None:
    """A long shutdown-sync-timeout and a black-holed store: the second SIGTERM ends the
    process within 2 s, status 128 + 15; the L0 files stay and the next start ships them."""
    db, bucket, log, rep = _replicate_through(tmp_path, proxy, s3_server, "60s")
    wait_for(lambda: _max_txid(s3_server.list_keys(bucket)) >= 1, 60, "the first upload")
    proxy.black_hole()
    assert start_writer(db, 1, 150, every=0).wait(60) == 0
    wait_for(lambda: _synced(db), 30, "every commit to be in a local L0 file")
    last = _max_txid(_local_l0(db))

    rep.wait_started()
    rep.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # the scenario: a user who waits half a second, then insists
    assert rep.proc.poll() is None, "still shutting down: the store does not answer, the timeout is 60 s"
    t0 = time.monotonic()
    rep.proc.send_signal(signal.SIGTERM)
    rc = rep.proc.wait(30)
    took = time.monotonic() - t0

    text = log.read_text()
    assert took <= 2, f"took {took:.1f}s after the second signal\n{text}"
    assert rc == 128 + signal.SIGTERM, text
    assert "second signal received" in text
    assert _max_txid(s3_server.list_keys(bucket)) < last
    assert _max_txid(_local_l0(db)) == last, "the L0 files not uploaded stay in the meta directory"

    proxy.close()
    _ship_after_restart(tmp_path, db, s3_server, bucket, last, tmp_path / "restart.log")
    assert _restore(_s3_url(bucket, s3_server.endpoint), tmp_path / "out.db") == list(range(1, 151))


MANY = 16


def test_many_databases_stop_in_parallel(tmp_path: Path, s3_server: S3Server, proxy: FaultProxy) -> None:
    """40 databases of a ``dir:`` entry, the store black-holed after their first uploads, a
    commit in each: SIGINT ends the process within shutdown-sync-timeout + 3 s (one after the
    other would take 40 times the timeout), status 1, naming every database. And while the
    store does not answer, each database's commits still reach its meta directory: uploads
    waiting on the store do not hold up the local syncs."""
    data = tmp_path / "data"
    data.mkdir()
    dbs = [data / f"db{i:02d}.db" for i in range(MANY)]
    for db in dbs:
        make_db(db)
    bucket = s3_server.new_bucket()
    log = tmp_path / "replicate.log"
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        f"shutdown-sync-timeout: {TIMEOUT:g}s\n"
        "dbs:\n"
        f"  - dir: {data}\n"
        "    pattern: '*.db'\n"
        "    replica:\n"
        f"      url: {_s3_url(bucket, proxy.endpoint, 'dbs')}\n"
    )
    rep = Replicator("-config", str(cfg), env=s3_env(), log=log)
    s3 = s3_server.client()

    def uploaded() -> set[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="dbs/")
        return {
            o["Key"].split("/")[1]
            for page in pages
            for o in page.get("Contents", [])
            if o["Key"].endswith(".ltx")
        }

    wait_for(lambda: len(uploaded()) == MANY, 120, "every database's first upload")
    proxy.black_hole()
    for db in dbs:
        con = sqlite3.connect(db, isolation_level=None)
        con.execute("INSERT INTO t(id, body) VALUES (1, randomblob(100))")
        con.close()
    try:
        wait_for(lambda: all(_synced(db) for db in dbs), 10, "every commit in a local L0 file")
        stalled = []
    except AssertionError:
        stalled = [db.name for db in dbs if not _synced(db)]

    rc, took = _signal_and_time(rep, signal.SIGINT)

    text = log.read_text()
    assert took <= TIMEOUT + 3, f"took {took:.1f}s to stop {MANY} databases\n{text}"
    assert rc == 1, text
    lines = [ln for ln in text.splitlines() if "not every L0 file reached the replica" in ln]
    assert len(lines) == 1, text
    line = lines[0]
    missing = [db.name for db in dbs if str(db) not in line]
    assert not missing, f"not named: {missing}\n{line}"
    assert not stalled, f"{len(stalled)} of {MANY} databases made no local sync in 10 s while the store hung"


ROWS = 100_000
"""Rows of the compaction test's database: one 512-byte page each, so that its level-9
snapshot takes seconds to stage (the compactor's cost is per page)."""


def _compaction_temps(meta: Path) -> list[str]:
    return sorted(p.name for p in meta.glob("compact-*.tmp"))


def test_shutdown_cancels_a_running_snapshot(tmp_path: Path) -> None:
    """SIGINT while a level-9 snapshot is being staged: the snapshot is cancelled at its next
    write (no L9 file, no staging file left), the process exits at once with status 0, and
    a restore holds every committed row; the next start finds no staging file either."""
    db = tmp_path / "big.db"
    make_db(db, page_size=512)
    con = sqlite3.connect(db, isolation_level=None)
    con.execute(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
        "INSERT INTO t(id, body) SELECT x, randomblob(200) FROM c",
        (ROWS,),
    )
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    replica = tmp_path / "replica"
    meta = tmp_path / ".big.db-litestream"
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        f"snapshot:\n  interval: 1s\ndbs:\n  - path: {db}\n    replica:\n      url: file://{replica}\n"
    )
    log = tmp_path / "replicate.log"
    rep = Replicator("-config", str(cfg), log=log)
    wait_for(lambda: any(n.startswith("compact-L9-") for n in _compaction_temps(meta)), 60, "the snapshot")
    con = sqlite3.connect(db, isolation_level=None)
    for i in range(ROWS + 1, ROWS + 21):
        con.execute("INSERT INTO t(id, body) VALUES (?, randomblob(200))", (i,))
    con.close()
    staging = _compaction_temps(meta)
    assert staging and not list((replica / "ltx" / "9").glob("*.ltx")), "the snapshot is still being staged"

    rc, took = _signal_and_time(rep, signal.SIGINT)

    text = log.read_text()
    assert rc == 0, text
    assert took <= 2.0, f"took {took:.1f}s to stop\n{text}"
    assert not list((replica / "ltx" / "9").glob("*.ltx")), "the snapshot was cancelled, not finished"
    assert "snapshot complete" not in text
    assert _compaction_temps(meta) == [], "a cancelled compaction removes its staging file"
    assert _restore(f"file://{replica}", tmp_path / "out.db") == list(range(1, ROWS + 21))

    rep = Replicator("-config", str(cfg), log=tmp_path / "restart.log")
    wait_for(lambda: "initialized db" in (tmp_path / "restart.log").read_text(), 60, "the restart")
    assert not set(staging) & set(_compaction_temps(meta)), "the next start finds no old staging file"
    assert rep.interrupt() == 0, (tmp_path / "restart.log").read_text()
    assert _compaction_temps(meta) == []


def test_sigkill_with_a_leading_edge_upload_in_flight_loses_nothing(
    tmp_path: Path, s3_server: S3Server, proxy: FaultProxy
) -> None:
    """A kill point of the runtime: commits after a quiet moment are synced at once and their
    upload is on the wire (held by the black hole) when the process is SIGKILLed. Nothing
    ran after the kill; the next start ships what the meta directory holds and syncs what
    the WAL holds, and a restore has every committed row."""
    db, bucket, _log, rep = _replicate_through(tmp_path, proxy, s3_server, "10s")
    wait_for(lambda: _max_txid(s3_server.list_keys(bucket)) >= 1, 60, "the first upload")
    time.sleep(1.5)  # a quiet moment: the next commit is a leading edge
    proxy.black_hole()
    held = proxy.held
    assert start_writer(db, 1, 120, every=0).wait(60) == 0
    wait_for(lambda: proxy.held > held, 30, "the leading-edge upload to be on the wire")
    rep.kill()
    assert rep.proc.returncode == -signal.SIGKILL
    last = _max_txid(_local_l0(db))
    assert _max_txid(s3_server.list_keys(bucket)) < last or not _synced(db), "the upload was in flight"

    proxy.close()
    _ship_after_restart(tmp_path, db, s3_server, bucket, last, tmp_path / "restart.log")
    assert _restore(_s3_url(bucket, s3_server.endpoint), tmp_path / "out.db") == list(range(1, 121))
