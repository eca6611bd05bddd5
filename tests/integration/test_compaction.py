"""Compaction, snapshots and retention on real replicas, checked with the real ``litestream``.

* (a) we replicate a live database with short intervals; ``litestream restore`` gives
  the latest state and the states at compacted boundaries, by TXID and by timestamp,
  byte-for-byte equal to applying the original L0 files;
* (b) Litestream writes and compacts a replica, we take over the same database and
  replica, compact further and keep replicating; both restores give every row;
* (c) steady state costs no LIST request per sync (S3, counted at a proxy), and
  level-1 compaction reads the L0 files from the meta directory, not the store;
* (d) with retention on, the replica and the meta directory stay bounded.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ltx.database import apply_files
from ltx.fileinfo import FileInfo
from ltx.header import Header
from ltx.layout import HEADER_SIZE
from replica.daemon import Replication, ReplicationOptions
from replica.l0 import L0File
from replica.monitor import DBOptions
from replica.restore import restore
from replica.storage import ReplicaClient, open_replica_client
from replica.storage.timestamps import from_millis
from tests.support import litestream
from tests.support.processes import Target
from tests.support.s3server import CountingProxy, S3Server
from tests.support.workload import ids, integrity, make_db, start_writer, track, wait_for

S = dt.timedelta(seconds=1)
FAST_DB = DBOptions(monitor_interval=0.2, checkpoint_interval=5.0)


def _options(**kw: Any) -> ReplicationOptions:
    base: dict[str, Any] = {
        "db": FAST_DB,
        "sync_interval": 0.2,
        "levels": (S, 3 * S),
        "snapshot_interval": 4 * S,
        "snapshot_retention": dt.timedelta(minutes=10),
        "l0_retention": S,
        "l0_retention_check_interval": 0.5 * S,
        "shutdown_timeout": 10.0,
    }
    base.update(kw)
    return ReplicationOptions(**base)


def _listing(client: ReplicaClient, use_metadata: bool = False) -> dict[int, list[FileInfo]]:
    return {lvl: client.list_files(lvl, use_metadata=use_metadata) for lvl in range(10)}


def _size(listing: dict[int, list[FileInfo]]) -> tuple[int, int]:
    files = [f for fs in listing.values() for f in fs]
    return len(files), sum(f.size for f in files)


def _local_l0(db: Path) -> int:
    return len(list((db.parent / f".{db.name}-litestream" / "ltx" / "0").glob("*.ltx")))


class L0Archive:
    """Copies of every L0 file the database writes: the oracle for every state (TXID -> pages)."""

    def __init__(self, rep: Replication, folder: Path) -> None:
        self.folder = folder
        folder.mkdir()
        self.timestamps: dict[int, int] = {}
        inner = rep.db.on_l0

        def on_l0(f: L0File) -> None:
            shutil.copy(f.path, folder / os.path.basename(f.path))
            with open(f.path, "rb") as fh:
                self.timestamps[f.txid] = Header.from_bytes(fh.read(HEADER_SIZE)).timestamp
            if inner is not None:
                inner(f)

        rep.db.on_l0 = on_l0

    def database_at(self, txid: int, out: Path) -> bytes:
        paths = sorted(str(p) for p in self.folder.glob("*.ltx"))[:txid]
        assert len(paths) == txid and paths[-1].endswith(f"{txid:016x}.ltx")
        apply_files(str(out), paths)
        return out.read_bytes()


def _restored(target: Target, out: Path, *flags: str) -> bytes:
    litestream.restore(target.url, out, *flags)
    assert integrity(out) == "ok"
    return out.read_bytes()


# -- (a) ------------------------------------------------------------------------------------


def test_litestream_restores_every_state_of_our_compacted_replica(tmp_path: Path, target: Target) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    client = open_replica_client(target.url)
    rep = Replication(str(db), client, _options())
    archive = L0Archive(rep, tmp_path / "l0")
    assert rep.open()
    rep.start()
    writer = start_writer(db, 1, 450, every=10, pause=0.17)  # about 8 s
    meta = []
    while writer.poll() is None:
        time.sleep(0.5)
        meta.append(_local_l0(db))
    assert writer.returncode == 0
    time.sleep(4.5)  # one more L2 and snapshot round
    assert rep.stop()
    stats = rep.compactor.stats
    listing = _listing(client, use_metadata=True)
    top = max(f.max_txid for fs in listing.values() for f in fs)
    assert top == rep.db.txid and set(archive.timestamps) == set(range(1, top + 1))
    assert len(listing[1]) >= 3 and len(listing[2]) >= 2 and len(listing[9]) >= 2, listing
    assert len(listing[0]) < top / 2, "L0 retention deleted the compacted L0 files"
    assert stats.errors == 0 and stats.skipped.get("single input", 0) >= 0
    assert max(meta) <= 12, meta  # local L0 files wait for L1 (1 s) only

    # latest
    got = _restored(target, tmp_path / "latest.db")
    assert got == archive.database_at(top, tmp_path / "want-latest.db")
    assert ids(tmp_path / "latest.db") == list(range(1, 451))

    # earlier states: every snapshot, the L2 boundaries, the oldest L1 boundary, the newest L0
    txids = sorted(
        {f.max_txid for f in listing[9]}
        | {f.max_txid for f in listing[2]}
        | {listing[1][0].max_txid, listing[0][-1].max_txid}
    )
    for t in txids:
        got = _restored(target, tmp_path / f"txid-{t}.db", "-txid", f"{t:016x}")
        assert got == archive.database_at(t, tmp_path / f"want-{t}.db"), f"txid {t}"

    # ... and by timestamp, just after each compacted boundary was committed
    # (Litestream refuses a timestamp after the newest file's, so not for the latest TXID.)
    for t in sorted(({f.max_txid for f in listing[2]} | {listing[9][0].max_txid}) - {top}):
        when = from_millis(archive.timestamps[t] + 1)
        assert archive.timestamps[t + 1] > archive.timestamps[t] + 1
        ts = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        got = _restored(target, tmp_path / f"ts-{t}.db", "-timestamp", ts)
        assert got == archive.database_at(t, tmp_path / f"want-ts-{t}.db"), f"timestamp {ts} (txid {t})"


# -- (b) ------------------------------------------------------------------------------------


LITESTREAM_CONFIG = """\
levels:
  - interval: 1s
  - interval: 2s
snapshot:
  interval: 3s
  retention: 10m
l0-retention: 2s
l0-retention-check-interval: 1s
dbs:
  - path: {db}
    monitor-interval: 200ms
    replica:
      url: {url}
      sync-interval: 200ms
"""


def test_we_take_over_a_replica_litestream_compacted(tmp_path: Path, target: Target) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(LITESTREAM_CONFIG.format(db=db, url=target.url))
    log = tmp_path / "litestream.log"
    proc = track(
        subprocess.Popen(
            [litestream.binary(), "replicate", "-config", str(cfg)],
            env=litestream.env(target.env),
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
    )
    assert start_writer(db, 1, 250, every=10, pause=0.2).wait(60) == 0
    client = open_replica_client(target.url)
    wait_for(
        lambda: len(client.list_files(2)) >= 2 and len(client.list_files(9)) >= 1, 20, "litestream L2/L9"
    )
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0, log.read_text()
    theirs = _listing(client, use_metadata=True)
    assert not theirs[3], "Litestream was configured with two levels"
    # a state Litestream compacted into L2 (and its creation time), restored before we start
    boundary = theirs[2][-1]
    before = _restored(target, tmp_path / "before.db", "-txid", f"{boundary.max_txid:016x}")

    rep = Replication(str(db), client, _options(levels=(S, 2 * S, 4 * S), snapshot_interval=3 * S))
    assert rep.open()
    rep.start()
    assert start_writer(db, 251, 500, every=10, pause=0.2).wait(60) == 0
    wait_for(lambda: rep.index.max_txid(3) > 0, 15, "our L3")
    their_snap = max(f.max_txid for f in theirs[9])
    wait_for(lambda: rep.index.max_txid(9) > their_snap, 15, "our snapshot")
    time.sleep(1)
    assert rep.stop()
    assert rep.compactor.stats.errors == 0

    ours = _listing(client)
    assert ours[3] and ours[3][0].min_txid <= max(f.max_txid for f in theirs[2]), (
        "we compacted their L2 into L3"
    )
    ls_out = tmp_path / "ls.db"
    litestream.restore(target.url, ls_out)
    our_out = tmp_path / "ours.db"
    restore(client, our_out, integrity_check="full")
    assert ids(ls_out) == ids(our_out) == list(range(1, 501))
    assert ls_out.read_bytes() == our_out.read_bytes()
    # that earlier state, by TXID and by time, through our compaction and retention
    t = boundary.max_txid
    when = boundary.created_at + dt.timedelta(milliseconds=1)
    ts = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert _restored(target, tmp_path / "then-ls.db", "-txid", f"{t:016x}") == before
    assert _restored(target, tmp_path / "then-ls-ts.db", "-timestamp", ts) == before
    restore(client, tmp_path / "then-ours.db", txid=t)
    restore(client, tmp_path / "then-ours-ts.db", timestamp=when)
    assert (tmp_path / "then-ours.db").read_bytes() == (tmp_path / "then-ours-ts.db").read_bytes() == before


# -- (c) ------------------------------------------------------------------------------------


@pytest.fixture
def counting_s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CountingProxy, str]]:
    from tests.support.s3server import s3_env

    for k, v in s3_env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    bucket = s3_server.new_bucket()
    proxy = CountingProxy(s3_server.endpoint, bucket)
    try:
        yield proxy, f"s3://{bucket}/db?endpoint={proxy.endpoint}&region=us-east-1&force-path-style=true"
    finally:
        proxy.close()


def _row_writer(
    db: Path, stop: threading.Event, pause: float, first: int = 1, update: int = 0
) -> threading.Thread:
    """Insert rows ``first..`` (or, with ``update`` > 0, rewrite random rows ``1..update``) until stopped."""

    def run() -> None:
        con = sqlite3.connect(db, timeout=30, isolation_level=None)
        rnd = random.Random(first)
        i = first
        while not stop.is_set():
            if update:
                con.execute("UPDATE t SET body = randomblob(1000) WHERE id = ?", (rnd.randint(1, update),))
            else:
                con.execute("INSERT INTO t(id, body) VALUES (?, randomblob(?))", (i, 600 + (i * 7919) % 1500))
            i += 1
            stop.wait(pause)
        con.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_steady_state_lists_nothing_and_reads_l0_locally(
    tmp_path: Path, counting_s3: tuple[CountingProxy, str]
) -> None:
    proxy, url = counting_s3
    db = tmp_path / "app.db"
    make_db(db)
    rep = Replication(str(db), open_replica_client(url), _options(snapshot_interval=3 * S))
    stop = threading.Event()
    writer = _row_writer(db, stop, 0.05)
    assert rep.open()
    rep.start()
    time.sleep(3)  # warm up: start-up listing, first compactions and snapshot
    mark = len(proxy.log)
    runs0 = sum(rep.compactor.stats.runs.values())
    written0 = dict(rep.compactor.stats.written)
    uploads0 = rep.uploader.uploaded
    time.sleep(9)
    counts = proxy.counts(mark)
    runs = sum(rep.compactor.stats.runs.values()) - runs0
    written = {lv: n - written0.get(lv, 0) for lv, n in rep.compactor.stats.written.items()}
    uploads = rep.uploader.uploaded - uploads0
    l0_gets = sum(1 for kind, level in proxy.log[mark:] if kind == "GET" and level == 0)
    stop.set()
    writer.join()
    assert rep.stop()
    assert rep.compactor.stats.errors == 0
    print(f"steady state over 9 s: {counts}, {uploads} L0 uploads, {runs} compaction runs, written {written}")
    assert uploads >= 20 and written.get(1, 0) >= 6 and written.get(2, 0) >= 2 and written.get(9, 0) >= 2
    assert counts.get("LIST", 0) <= 2, counts  # a small constant, not one per sync or per run
    assert counts.get("HEAD", 0) <= 2, counts
    assert l0_gets == 0, "level-1 compaction must read the L0 files from the meta directory"
    assert counts.get("PUT", 0) <= uploads + sum(written.values()) + 2


# -- (d) ------------------------------------------------------------------------------------


def test_replica_and_meta_directory_stay_bounded(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    con = sqlite3.connect(db, isolation_level=None)
    con.executemany("INSERT INTO t(id, body) VALUES (?, randomblob(1000))", [(i,) for i in range(1, 301)])
    con.close()
    client = open_replica_client(f"file://{tmp_path / 'replica'}")
    opts = _options(snapshot_interval=2 * S, snapshot_retention=0.5 * S, l0_retention=0.5 * S)
    rep = Replication(str(db), client, opts)
    stop = threading.Event()
    writer = _row_writer(db, stop, 0.04, update=300)
    assert rep.open()
    rep.start()
    samples: list[tuple[int, int, int, int]] = []
    for _ in range(22):
        time.sleep(0.5)
        count, size = _size(_listing(client))
        samples.append((count, size, db.stat().st_size, _local_l0(db)))
    stop.set()
    writer.join()
    time.sleep(2.5)  # compaction and retention catch up with the last writes
    count, size = _size(_listing(client))
    assert rep.stop()
    db_size = db.stat().st_size
    print(f"final: {count} objects, {size} bytes, database {db_size} bytes; samples {samples}")
    assert rep.compactor.stats.errors == 0 and rep.compactor.stats.deleted > 50
    assert size <= 2.2 * db_size, (size, db_size)
    late = samples[len(samples) // 2 :]
    assert max(s[0] for s in late) <= 40, samples
    assert max(s[1] for s in late) <= 5 * db_size, samples  # two snapshots, an L2 file, L1 files
    assert max(s[3] for s in samples) <= 12, samples
    out = tmp_path / "out.db"
    litestream.restore(f"file://{tmp_path / 'replica'}", out)
    assert integrity(out) == "ok"
    assert len(ids(out)) == 300
