"""Replica ownership with real processes: a second writer is refused at start-up, or
detected later and never overwritten; restore-then-replicate takes a replica over;
Litestream ignores the owner object (see ``docs/spec/ownership.md``)."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ltx.database import encode_db
from replica.dblock import lock_database
from replica.errors import DatabaseLockedError, ForeignFileError, OwnershipError
from replica.ownership import (
    OWNER_OBJECT,
    Identity,
    OwnerRecord,
    Verdict,
    decode_record,
    encode_record,
    judge,
    new_record,
)
from replica.storage import SNAPSHOT_LEVEL, open_replica_client
from tests.conftest import REPO
from tests.support import litestream
from tests.support.processes import Target
from tests.support.workload import Replicator, ids, make_db, start_writer, wait_for

HOST = socket.gethostname()


def _rows(db: Path, start: int, end: int) -> None:
    assert start_writer(db, start, end, every=20, pause=0.02).wait(60) == 0


def _max_txid(url: str) -> int:
    client = open_replica_client(url)
    return max((f.max_txid for lv in range(SNAPSHOT_LEVEL + 1) for f in client.list_files(lv)), default=0)


def _owner(url: str) -> dict[str, object] | None:
    found = open_replica_client(url).read_object(OWNER_OBJECT)
    return None if found is None else dict(json.loads(found[0]))


def _error_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith("Error:")]


def _our_restore(url: str, out: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "replica", "restore", "-o", str(out), url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr


def _refused(db: Path, url: str, log: Path) -> str:
    """Start a replicator of ``db`` on ``url``; it must exit non-zero at once with one error line."""
    rep = Replicator(str(db), url, log=log)
    code = rep.proc.wait(60)
    text = log.read_text()
    assert code != 0, text
    assert "Traceback" not in text, text
    errors = _error_lines(log)
    assert len(errors) == 1, text
    return errors[0]


# --- two databases, one replica ------------------------------------------------------------


def test_a_second_database_is_refused_at_start(tmp_path: Path, target: Target) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    make_db(a)
    make_db(b)
    ra = Replicator(str(a), target.url, log=tmp_path / "a.log")
    _rows(a, 1, 200)
    wait_for(lambda: _max_txid(target.url) >= 1, what="the first replicator's uploads")
    _rows(b, 1, 50)  # another database, with other contents

    line = _refused(b, target.url, tmp_path / "b.log")
    replica = open_replica_client(target.url).name
    assert f"replica {replica} belongs to database {a} on host {HOST}" in line, line
    assert OWNER_OBJECT in line and "refusing" in line and str(b) in line, line

    _rows(a, 201, 400)  # the owner carries on undisturbed
    assert ra.interrupt() == 0, (tmp_path / "a.log").read_text()
    out = tmp_path / "out.db"
    litestream.restore(target.url, out)
    assert ids(out) == list(range(1, 401))


def test_a_second_database_is_refused_by_replicate_once(tmp_path: Path) -> None:
    """``-once`` reports the refusal itself, not a generic "not every file was shipped"."""
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    url = f"file://{tmp_path / 'replica'}"
    for db in (a, b):
        make_db(db)
        _rows(db, 1, 20)

    def once(db: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "replica", "replicate", "-once", str(db), url],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )

    assert once(a).returncode == 0
    r = once(b)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and f"belongs to database {a}" in errors[0], r.stderr


def test_a_second_replicator_of_one_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    url = f"file://{tmp_path / 'replica'}"
    configs = []
    for n in (1, 2):
        cfg = tmp_path / f"c{n}.yml"
        cfg.write_text(
            f"dbs:\n  - path: {db}\n    meta-path: {tmp_path / f'meta{n}'}\n    replica:\n      url: {url}\n"
        )
        configs.append(cfg)
    first = Replicator("-config", str(configs[0]), log=tmp_path / "1.log")
    _rows(db, 1, 100)
    wait_for(lambda: _max_txid(url) >= 1, what="the first replicator's uploads")

    second = Replicator("-config", str(configs[1]), log=tmp_path / "2.log")
    assert second.proc.wait(60) != 0, (tmp_path / "2.log").read_text()
    errors = _error_lines(tmp_path / "2.log")
    assert len(errors) == 1 and str(db) in errors[0] and "another replicator process" in errors[0], errors
    assert not (tmp_path / "meta2" / "ltx").exists(), "the second one never synced"

    _rows(db, 101, 200)
    assert first.interrupt() == 0
    out = tmp_path / "out.db"
    litestream.restore(url, out)
    assert ids(out) == list(range(1, 201))


# --- a writer appearing later --------------------------------------------------------------


def _foreign_l0(db: Path, txid: int) -> bytes:
    """Another database's contents as a level-0 file for ``txid``."""
    out = io.BytesIO()
    with db.open("rb") as f:
        encode_db(f, out, timestamp=int(time.time() * 1000), no_checksum=True, min_txid=txid, max_txid=txid)
    return out.getvalue()


@pytest.mark.parametrize("target", ["file", pytest.param("s3", marks=pytest.mark.slow)], indirect=True)
def test_a_writer_appearing_later_is_detected_and_never_overwritten(tmp_path: Path, target: Target) -> None:
    a, other = tmp_path / "a.db", tmp_path / "other.db"
    make_db(a)
    make_db(other)
    _rows(other, 1, 30)
    log = tmp_path / "a.log"
    ra = Replicator(str(a), target.url, log=log)
    _rows(a, 1, 100)
    wait_for(lambda: _max_txid(target.url) >= 1, what="uploads")
    # Another writer puts its file where A's next one goes (retrying if A gets there first).
    for _ in range(20):
        txid = _max_txid(target.url) + 1
        data = _foreign_l0(other, txid)
        client = open_replica_client(target.url)
        try:
            client.write_file(0, txid, txid, data)
            break
        except ForeignFileError:
            continue
    else:
        pytest.fail("could not place the foreign file")
    key = client.location(client.key(0, txid, txid))

    _rows(a, 101, 200)  # A's next upload is TXID txid
    wait_for(lambda: f"level=ERROR msg={key}" in log.read_text(), what="A to report the foreign file")
    assert client.read_file(0, txid, txid) == data, "A never overwrote it"
    assert ra.interrupt() != 0
    assert client.read_file(0, txid, txid) == data
    assert "Traceback" not in log.read_text()


# --- restore, then replicate elsewhere ------------------------------------------------------


@pytest.mark.parametrize("target", ["file", pytest.param("s3", marks=pytest.mark.slow)], indirect=True)
def test_restore_then_replicate_on_a_new_host_takes_over(tmp_path: Path, target: Target) -> None:
    old = tmp_path / "app.db"
    make_db(old)
    r = Replicator(str(old), target.url, log=tmp_path / "old.log")
    _rows(old, 1, 200)
    assert r.interrupt() == 0
    # Pretend the replica was written on another machine.
    client = open_replica_client(target.url)
    found = client.read_object(OWNER_OBJECT)
    assert found is not None
    record = json.loads(found[0])
    assert (record["host"], record["database"]) == (HOST, str(old))
    record["host"] = "old-host"
    assert client.replace_object(OWNER_OBJECT, json.dumps(record).encode(), found[1])

    new = tmp_path / "new" / "app.db"
    _our_restore(target.url, new)
    log = tmp_path / "new.log"
    rn = Replicator(str(new), target.url, log=log)
    wait_for(lambda: "taking over replica" in log.read_text(), what="the take-over")
    assert "old-host" in log.read_text()
    _rows(new, 201, 400)
    assert rn.interrupt() == 0, log.read_text()
    assert (_owner(target.url) or {}).get("database") == str(new)
    out = tmp_path / "out.db"
    litestream.restore(target.url, out)
    assert ids(out) == list(range(1, 401))

    # Another database is still refused; so is the old copy, which is behind the replica now.
    other = tmp_path / "other.db"
    make_db(other)
    _rows(other, 1, 10)
    line = _refused(other, target.url, tmp_path / "other.log")
    assert f"belongs to database {new} on host {HOST}" in line, line
    line = _refused(old, target.url, tmp_path / "old2.log")
    assert f"belongs to database {new} on host {HOST}" in line, line


def test_a_restored_copy_written_to_before_the_replicator_starts_takes_over(tmp_path: Path) -> None:
    """New transactions still in the WAL (no checkpoint yet) do not hide the lineage."""
    old = tmp_path / "app.db"
    make_db(old)
    url = f"file://{tmp_path / 'replica'}"
    r = Replicator(str(old), url, log=tmp_path / "old.log")
    _rows(old, 1, 200)
    assert r.interrupt() == 0
    new = tmp_path / "new" / "app.db"
    _our_restore(url, new)
    app = sqlite3.connect(new, isolation_level=None)
    try:
        app.execute("PRAGMA wal_autocheckpoint = 0")
        app.executemany(
            "INSERT INTO t(id, body) VALUES (?, randomblob(700))", [(i,) for i in range(201, 301)]
        )
        log = tmp_path / "new.log"
        rn = Replicator(str(new), url, log=log)
        wait_for(lambda: "taking over replica" in log.read_text(), what="the take-over")
        app.executemany(
            "INSERT INTO t(id, body) VALUES (?, randomblob(700))", [(i,) for i in range(301, 401)]
        )
    finally:
        app.close()
    assert rn.interrupt() == 0, log.read_text()
    out = tmp_path / "out.db"
    litestream.restore(url, out)
    assert ids(out) == list(range(1, 401))


# --- Litestream and the owner object --------------------------------------------------------


def _litestream_config(db: Path, url: str, path: Path) -> Path:
    path.write_text(
        "levels:\n  - interval: 1s\n"
        f"dbs:\n  - path: {db}\n    replica:\n      url: {url}\n      sync-interval: 200ms\n"
    )
    return path


def test_litestream_replicates_restores_and_compacts_beside_the_owner_object(
    tmp_path: Path, target: Target
) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    ours = Replicator(str(db), target.url, log=tmp_path / "ours.log")
    _rows(db, 1, 200)
    assert ours.interrupt() == 0
    record = _owner(target.url)
    assert record is not None and record["database"] == str(db)

    cfg = _litestream_config(db, target.url, tmp_path / "ls.yml")
    ls = subprocess.Popen(
        [litestream.binary(), "replicate", "-config", str(cfg)],
        env=litestream.env(target.env),
        stdout=(tmp_path / "ls.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        before = _max_txid(target.url)
        _rows(db, 201, 400)
        wait_for(lambda: _max_txid(target.url) > before, what="Litestream's uploads")
        wait_for(
            lambda: any(
                f.min_txid > 1 or f.max_txid > before for f in open_replica_client(target.url).list_files(1)
            ),
            what="Litestream's level-1 compaction",
        )
    finally:
        ls.send_signal(2)
        assert ls.wait(60) == 0, (tmp_path / "ls.log").read_text()
    assert _owner(target.url) == record, "Litestream left the owner object alone"
    out = tmp_path / "ls-out.db"
    litestream.restore(target.url, out)
    assert ids(out) == list(range(1, 401))

    # And we continue after Litestream: same database, same host, no refusal.
    ours = Replicator(str(db), target.url, log=tmp_path / "ours2.log")
    _rows(db, 401, 500)
    assert ours.interrupt() == 0, (tmp_path / "ours2.log").read_text()
    out2 = tmp_path / "out2.db"
    litestream.restore(target.url, out2)
    assert ids(out2) == list(range(1, 501))


# --- pure parts -----------------------------------------------------------------------------


def test_record_round_trip_and_rules() -> None:
    me = Identity("h1", "/data/a.db")
    now = dt.datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
    rec = new_record(me, "w1", now)
    data = encode_record(rec)
    assert json.loads(data)["claimed_at"] == "2026-05-01T12:00:00.123456Z"
    assert decode_record(data, replica="r", path="p") == rec
    extra = json.dumps({**json.loads(data), "future": 1}).encode()
    assert decode_record(extra, replica="r", path="p") == rec  # unknown keys are ignored
    assert judge(rec, me, "w1") is Verdict.MINE
    assert judge(rec, me, "w2") is Verdict.OURS
    assert judge(rec, Identity("h2", "/data/a.db"), "w1") is Verdict.FOREIGN
    assert judge(rec, Identity("h1", "/data/b.db"), "w1") is Verdict.FOREIGN
    for bad in (b"", b"[]", b'{"version": 1}', b"\xff"):
        with pytest.raises(OwnershipError, match="not a readable owner record"):
            decode_record(bad, replica="r", path="p")
    newer = json.dumps({**json.loads(data), "version": 99}).encode()
    with pytest.raises(OwnershipError, match="newer"):
        decode_record(newer, replica="r", path="p")
    assert isinstance(rec, OwnerRecord)


def test_database_lock_is_per_process_and_released(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    db.write_bytes(b"")
    link = tmp_path / "y.db"
    os.symlink(db, link)
    held = lock_database(str(db), replica="r")
    again = lock_database(str(link), replica="r")  # re-entrant within the process
    code = (
        "import sys; from replica.dblock import lock_database\n"
        "try:\n    lock_database(sys.argv[1], replica='r')\nexcept Exception as e:\n"
        "    print(type(e).__name__); sys.exit(3)\n"
    )

    def other_process(path: Path) -> int:
        return subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, check=False).returncode

    assert other_process(link) == 3
    assert other_process(tmp_path / "z.db") == 0  # another database
    again.release()
    assert other_process(db) == 3
    held.release()
    assert other_process(db) == 0
    assert DatabaseLockedError.__mro__[1] is OwnershipError
