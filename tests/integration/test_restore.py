"""The restore executor against real replicas: written by the real ``litestream`` 0.5.17
(file and S3 on a moto server), the Go golden vectors, random histories, and bad cases.

The oracle for replicas litestream wrote is ``litestream restore`` itself: for every
TXID (and for timestamps between the files) our output must be byte-identical to its
output, hold a prefix of the rows the writer committed (a whole number of
transactions, never fewer as the TXID grows), and pass ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import io
import itertools
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import replica.restore.execute as execute
from ltx.compactor import compact
from ltx.decoder import Decoder, IndexedFile
from ltx.errors import LTXError
from ltx.fileinfo import FileInfo
from ltx.header import FLAG_NO_CHECKSUM, Header
from ltx.index import PageIndex
from ltx.names import format_filename, lock_pgno
from ltx.pos import CHECKSUM_FLAG
from ltx.trailer import Trailer
from replica.restore import (
    CorruptBackupError,
    IntegrityCheckError,
    NoBackupError,
    NonContiguousError,
    OutputExistsError,
    RestoreOptionsError,
    RestorePlanError,
    RestoreTarget,
    TxNotAvailableError,
    calc_restore_plan,
    list_replica,
    plan_restore,
    restore,
)
from replica.restore.output import OutputState, TempOutput
from replica.storage import ReplicaClient, open_replica_client
from tests.support import litestream, s3server
from tests.support.ltxgen import chain_files, database_bytes, encode, histories

# --- helpers ---------------------------------------------------------------------------


def place(root: Path, level: int, lo: int, hi: int, data: bytes) -> Path:
    d = root / "ltx" / str(level)
    d.mkdir(parents=True, exist_ok=True)
    p = d / format_filename(lo, hi)
    p.write_bytes(data)
    return p


def leftovers(out: Path) -> list[str]:
    """Anything restore may have left next to ``out``."""
    return sorted(p.name for p in out.parent.glob(out.name + "*")) if out.parent.exists() else []


def rows(db: Path) -> list[int]:
    """Row ids of a restored file, read as immutable so no -wal/-shm appear beside it."""
    con = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        return [r[0] for r in con.execute("SELECT id FROM t ORDER BY id")]
    finally:
        con.close()


def integrity(db: Path) -> str:
    con = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Session:
    """A source database, a writer, and ``litestream replicate`` running over it."""

    def __init__(self, tmp: Path, name: str = "src.db") -> None:
        self.db = tmp / name
        self.tmp = tmp
        con = sqlite3.connect(self.db, isolation_level=None)
        con.execute("PRAGMA journal_mode=wal")
        con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        con.close()
        self.next_id = 1
        self.boundaries = [0]
        """Row counts the source had after each committed transaction."""

    def run(
        self,
        args: list[str],
        *,
        transactions: int,
        pause: float,
        rows_per_txn: int = 25,
        extra_env: dict[str, str] | None = None,
        log_name: str = "litestream.log",
    ) -> None:
        log = self.tmp / log_name
        con = sqlite3.connect(self.db, isolation_level=None)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [litestream.binary(), "replicate", *args],
                env=litestream.env(extra_env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            try:
                time.sleep(pause)
                for _ in range(transactions):
                    assert proc.poll() is None, log.read_text()
                    con.execute("BEGIN")
                    con.executemany(
                        "INSERT INTO t(id, v) VALUES (?, ?)",
                        ((i, f"row {i} " * 12) for i in range(self.next_id, self.next_id + rows_per_txn)),
                    )
                    con.execute("COMMIT")
                    self.next_id += rows_per_txn
                    self.boundaries.append(self.next_id - 1)
                    time.sleep(pause)
                time.sleep(pause + 0.5)  # the last transaction reaches the replica
            finally:
                con.close()
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        assert proc.returncode == 0, log.read_text()


def check_rows(db: Path, session: Session) -> int:
    ids = rows(db)
    assert ids == list(range(1, len(ids) + 1)), "rows are not a prefix of what the writer inserted"
    assert len(ids) in session.boundaries, f"{len(ids)} rows is not a transaction boundary"
    return len(ids)


def compare_with_litestream(
    client: ReplicaClient, url: str, session: Session, work: Path, *, timestamps: bool = True
) -> None:
    """Ours vs ``litestream restore`` at latest, at every TXID, and between files in time."""
    listing = list_replica(client, use_metadata=True)
    top = max(f.max_txid for files in listing.values() for f in files)
    seen = 0
    for txid in range(1, top + 1):
        theirs = work / f"ls-{txid}.db"
        litestream.restore(url, theirs, "-txid", f"{txid:016x}")
        ours = work / f"ours-{txid}.db"
        result = restore(client, ours, txid=txid, integrity_check="full")
        assert result.txid == txid
        assert ours.read_bytes() == theirs.read_bytes(), f"txid {txid}"
        assert integrity(ours) == "ok"
        n = check_rows(ours, session)
        assert n >= seen
        seen = n
    latest = work / "ours-latest.db"
    result = restore(client, latest, integrity_check="quick")
    assert result.txid == top and latest.read_bytes() == (work / f"ls-{top}.db").read_bytes()
    assert check_rows(latest, session) == session.boundaries[-1]
    assert leftovers(latest) == [latest.name]
    if not timestamps:
        return
    # Litestream's CLI refuses a time past the newest file ("timestamp does not exist"), and
    # on S3 it sees upload times (LastModified, whole seconds), which trail the header times
    # by as much as the machine's load makes them. Compare the two restores only at moments
    # where both views hold the same files: ours (header times, a file counts when created
    # before the moment) and the store's (a file counts when uploaded by then).
    newest = max(f.created_at for files in listing.values() for f in files)
    uploaded = list_replica(client)

    def same_files(ts: dt.datetime) -> bool:
        for lvl, files in listing.items():
            by_header = {(f.min_txid, f.max_txid) for f in files if f.created_at < ts}
            by_upload = {(f.min_txid, f.max_txid) for f in uploaded.get(lvl, []) if f.created_at <= ts}
            if by_header != by_upload:
                return False
        return True

    times = sorted(
        {
            f.created_at
            for f in listing[0]
            if f.created_at + dt.timedelta(milliseconds=1) < newest
            and same_files(f.created_at + dt.timedelta(microseconds=500))
        }
    )
    assert times
    for i, at in enumerate(times[:: max(1, len(times) // 5)]):
        ts = at + dt.timedelta(microseconds=500)
        theirs = work / f"ls-ts-{i}.db"
        litestream.restore(url, theirs, "-timestamp", rfc3339(ts))
        ours = work / f"ours-ts-{i}.db"
        result = restore(client, ours, timestamp=ts)
        assert ours.read_bytes() == theirs.read_bytes(), f"timestamp {rfc3339(ts)}"
        assert all(f.created_at < ts for f in result.files)


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server() -> Iterator[s3server.S3Server]:
    with s3server.running_s3_server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: s3server.S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for k, v in s3server.s3_env().items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(k, raising=False)
    yield s3_server.new_bucket()
    s3_server.reset()


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut every file into many ranged reads."""
    monkeypatch.setattr(execute, "CHUNK_SIZE", 777)


FAST_LEVELS = """\
levels:
  - interval: 2s
snapshot:
  interval: 3s
dbs:
  - path: {db}
    monitor-interval: 100ms
    replica:
      url: {url}
      sync-interval: 100ms
"""


# --- (a) replicas written by the real litestream -------------------------------------------


def test_litestream_file_replica_positional_then_retention_beyond_what_litestream_can_restore(
    tmp_path: Path,
) -> None:
    session = Session(tmp_path)
    rep = tmp_path / "replica"
    url = f"file://{rep}"
    session.run([str(session.db), url], transactions=3, pause=1.1)
    client = open_replica_client(url)
    work = tmp_path / "work"
    work.mkdir()
    compare_with_litestream(client, url, session, work)

    # Lose the meta directory and replicate again: litestream continues the TXIDs with a
    # "snapshot L0", a full image that is not a snapshot in the LTX sense (MinTXID > 1).
    before = max(f.max_txid for f in client.list_files(0))
    shutil.rmtree(tmp_path / ".src.db-litestream")
    con = sqlite3.connect(session.db)  # someone else checkpoints while litestream is down
    assert con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    con.close()
    session.run([str(session.db), url], transactions=2, pause=1.1, log_name="litestream2.log")
    top = max(f.max_txid for f in client.list_files(0))
    assert top > before + 1
    full = work / "full-latest.db"
    litestream.restore(url, full)

    # Retention (or a lifecycle rule) removes everything that covers the first session.
    pruned_root = tmp_path / "pruned"
    shutil.copytree(rep, pruned_root)
    pruned_url = f"file://{pruned_root}"
    pruned = open_replica_client(pruned_url)
    doomed = [f for files in list_replica(pruned).values() for f in files if f.min_txid <= before]
    assert doomed
    pruned.delete_files(doomed)
    r = litestream.run("restore", "-o", str(work / "ls-pruned.db"), pruned_url)
    assert r.returncode != 0 and "no matching backup files available" in r.stderr + r.stdout
    with pytest.raises(NoBackupError):
        plan_restore(list_replica(pruned))  # Litestream's rule alone cannot do it either

    ours = work / "ours-pruned.db"
    result = restore(pruned, ours, integrity_check="full")
    assert result.txid == top
    assert result.plan is not None and not result.plan.litestream_compatible
    assert result.files[0].min_txid == before + 1
    assert ours.read_bytes() == full.read_bytes()
    assert check_rows(ours, session) == session.boundaries[-1]
    for txid in range(before + 1, top + 1):  # every state since the full image
        theirs = work / f"ls-full-{txid}.db"
        litestream.restore(url, theirs, "-txid", f"{txid:016x}")
        mine = work / f"ours-pruned-{txid}.db"
        restore(pruned, mine, txid=txid)
        assert mine.read_bytes() == theirs.read_bytes(), f"txid {txid}"
    with pytest.raises(RestorePlanError):
        restore(pruned, work / "too-old.db", txid=before)
    assert not (work / "too-old.db").exists()


def test_litestream_file_replica_with_compaction_and_snapshots(tmp_path: Path, small_chunks: None) -> None:
    session = Session(tmp_path)
    rep = tmp_path / "replica"
    url = f"file://{rep}"
    config = tmp_path / "litestream.yml"
    config.write_text(FAST_LEVELS.format(db=session.db, url=url))
    session.run(["-config", str(config)], transactions=12, pause=0.45)
    client = open_replica_client(url)
    listing = list_replica(client)
    assert listing[1] and listing[9], "litestream should have compacted into L1 and written snapshots"
    plan = calc_restore_plan(client)
    assert plan.litestream_compatible and plan.files[0].level == 9
    work = tmp_path / "work"
    work.mkdir()
    compare_with_litestream(client, url, session, work)
    # a plan that goes through L1 compactions and L0 files
    through_l1 = [
        t
        for t in range(1, plan.txid + 1)
        if any(f.level == 1 for f in plan_restore(listing, RestoreTarget.at_txid(t)).files)
    ]
    assert through_l1


def test_litestream_s3_replica_with_compaction(
    tmp_path: Path, s3_server: s3server.S3Server, s3_bucket: str, small_chunks: None
) -> None:
    session = Session(tmp_path)
    url = f"s3://{s3_bucket}/backups/db?endpoint={s3_server.endpoint}&force-path-style=true"
    config = tmp_path / "litestream.yml"
    config.write_text(FAST_LEVELS.format(db=session.db, url=url))
    session.run(["-config", str(config)], transactions=8, pause=0.45)
    client = open_replica_client(url)
    listing = list_replica(client, use_metadata=True)
    assert listing[0] and listing[1] and listing[9]
    work = tmp_path / "work"
    work.mkdir()
    compare_with_litestream(client, url, session, work)
    progress: list[tuple[int, int]] = []
    result = restore(
        client, work / "progress.db", parallelism=3, progress=lambda d, t: progress.append((d, t))
    )
    assert progress[0] == (0, result.bytes) and progress[-1] == (result.bytes, result.bytes)
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(progress))
    assert result.bytes == sum(f.size for f in result.files)


def test_litestream_s3_replica_positional(
    tmp_path: Path, s3_server: s3server.S3Server, s3_bucket: str
) -> None:
    session = Session(tmp_path)
    url = f"s3://{s3_bucket}/db?endpoint={s3_server.endpoint}&force-path-style=true"
    session.run([str(session.db), url], transactions=2, pause=1.1)
    client = open_replica_client(url)
    work = tmp_path / "work"
    work.mkdir()
    compare_with_litestream(client, url, session, work, timestamps=False)


# --- (b) golden vectors -----------------------------------------------------------------------


@pytest.mark.parametrize("group", ["chain", "legacy-v0.5.1"])
@pytest.mark.parametrize("chunks", ["default", "small"])
def test_golden_chain_restores_byte_for_byte(
    tmp_path: Path, vectors: Path, group: str, chunks: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if chunks == "small":
        monkeypatch.setattr(execute, "CHUNK_SIZE", 1000)
    rep = tmp_path / "replica"
    src = sorted((vectors / group).glob("*.ltx"))
    for p in src:
        lo, hi = (int(x, 16) for x in p.stem.split("-"))
        place(rep, 0, lo, hi, p.read_bytes())
    client = open_replica_client(f"file://{rep}")
    for txid in range(1, len(src) + 1):
        out = tmp_path / f"out-{txid}.db"
        result = restore(client, out, txid=txid, integrity_check="full")
        assert result.txid == txid and len(result.files) == txid
        assert out.read_bytes() == (vectors / "dbs" / f"chain_db{txid}.db").read_bytes()
    latest = tmp_path / "latest.db"
    assert restore(client, latest).txid == len(src)
    assert latest.read_bytes() == (vectors / "dbs" / f"chain_db{len(src)}.db").read_bytes()


def test_golden_mixed_encodings_and_compactions(tmp_path: Path, vectors: Path) -> None:
    rep = tmp_path / "replica"
    place(rep, 0, 1, 1, (vectors / "legacy-v0.5.1" / "0000000000000001-0000000000000001.ltx").read_bytes())
    place(rep, 0, 2, 2, (vectors / "legacy-v0.5.1" / "0000000000000002-0000000000000002.ltx").read_bytes())
    place(rep, 0, 3, 3, (vectors / "chain" / "0000000000000003-0000000000000003.ltx").read_bytes())
    place(rep, 0, 4, 4, (vectors / "chain" / "0000000000000004-0000000000000004.ltx").read_bytes())
    place(
        rep, 1, 2, 4, (vectors / "chain" / "compact" / "0000000000000002-0000000000000004.ltx").read_bytes()
    )
    client = open_replica_client(f"file://{rep}")
    out = tmp_path / "out.db"
    result = restore(client, out)
    assert [(f.level, f.min_txid, f.max_txid) for f in result.files] == [(0, 1, 1), (1, 2, 4)]
    assert out.read_bytes() == (vectors / "dbs" / "chain_db4.db").read_bytes()
    for txid in (2, 3):
        o = tmp_path / f"out{txid}.db"
        restore(client, o, txid=txid)
        assert o.read_bytes() == (vectors / "dbs" / f"chain_db{txid}.db").read_bytes()
    # the reference compactor's 1-3 in L2, alone, is a snapshot
    only = tmp_path / "only"
    place(
        only, 2, 1, 3, (vectors / "chain" / "compact" / "0000000000000001-0000000000000003.ltx").read_bytes()
    )
    o = tmp_path / "only.db"
    restore(open_replica_client(f"file://{only}"), o)
    assert o.read_bytes() == (vectors / "dbs" / "chain_db3.db").read_bytes()


# --- (c) bad cases ----------------------------------------------------------------------------


@pytest.fixture
def chain(tmp_path: Path, vectors: Path) -> Path:
    rep = tmp_path / "replica"
    for p in sorted((vectors / "chain").glob("*.ltx")):
        lo, hi = (int(x, 16) for x in p.stem.split("-"))
        place(rep, 0, lo, hi, p.read_bytes())
    return rep


@pytest.mark.parametrize("where", ["payload", "trailer"])
def test_corrupt_file_in_the_plan_leaves_nothing(tmp_path: Path, chain: Path, where: str) -> None:
    victim = chain / "ltx" / "0" / format_filename(3, 3)
    data = bytearray(victim.read_bytes())
    at = len(data) // 2 if where == "payload" else len(data) - 1
    data[at] ^= 0x40
    victim.write_bytes(bytes(data))
    client = open_replica_client(f"file://{chain}")
    out = tmp_path / "out" / "restored.db"
    with pytest.raises(LTXError) as info:
        restore(client, out)
    assert not isinstance(info.value, RestorePlanError)
    assert "0000000000000003-0000000000000003.ltx" in str(info.value)
    assert leftovers(out) == []
    # the state before the damaged file is still fine
    restore(client, out, txid=2)
    assert leftovers(out) == [out.name]


def test_a_gap_fails_before_anything_is_written(tmp_path: Path, chain: Path) -> None:
    (chain / "ltx" / "0" / format_filename(2, 2)).unlink()
    client = open_replica_client(f"file://{chain}")
    out = tmp_path / "not-yet" / "restored.db"
    with pytest.raises(
        NonContiguousError, match="have up to 0000000000000001 but next file starts at 0000000000000003"
    ):
        restore(client, out, txid=3)
    assert not out.parent.exists()
    restore(client, out, txid=1)
    assert out.exists()


def test_a_vacuum_file_bridges_a_gap_as_a_full_image(tmp_path: Path, chain: Path, vectors: Path) -> None:
    """Chain file 4-4 is a VACUUM: it rewrote every page, so it is a full image on its own."""
    (chain / "ltx" / "0" / format_filename(3, 3)).unlink()
    client = open_replica_client(f"file://{chain}")
    with pytest.raises(
        NonContiguousError, match="have up to 0000000000000002 but next file starts at 0000000000000004"
    ):
        plan_restore(list_replica(client))
    out = tmp_path / "restored.db"
    result = restore(client, out, integrity_check="full")
    assert [f.name for f in result.files] == [format_filename(4, 4)]
    assert result.plan is not None and not result.plan.litestream_compatible
    assert out.read_bytes() == (vectors / "dbs" / "chain_db4.db").read_bytes()


def test_existing_output_sidecars_force_and_if_db_not_exists(
    tmp_path: Path, chain: Path, vectors: Path
) -> None:
    client = open_replica_client(f"file://{chain}")
    want = (vectors / "dbs" / "chain_db4.db").read_bytes()
    out = tmp_path / "restored.db"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="already exists and is not empty"):
        restore(client, out)
    assert out.read_bytes() == b"precious"
    skipped = restore(client, out, if_db_not_exists=True)
    assert skipped.skipped and out.read_bytes() == b"precious"
    restore(client, out, force=True)
    assert out.read_bytes() == want

    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert restore(client, empty, if_db_not_exists=True).skipped and empty.read_bytes() == b""
    restore(client, empty)  # an empty file may be replaced without force
    assert empty.read_bytes() == want

    side = tmp_path / "side.db"
    for suffix in ("-wal", "-shm", "-journal"):
        (tmp_path / f"side.db{suffix}").write_bytes(b"stale")
        with pytest.raises(OutputExistsError, match="sidecar path already exists"):
            restore(client, side)
        assert not side.exists()
    restore(client, side, force=True)
    assert side.read_bytes() == want
    assert leftovers(side) == ["side.db"]

    with pytest.raises(OutputExistsError, match="is a directory"):
        restore(client, tmp_path, force=True)


def test_empty_replica(tmp_path: Path) -> None:
    client = open_replica_client(f"file://{tmp_path / 'nothing'}")
    with pytest.raises(NoBackupError, match="no matching backup files available"):
        restore(client, tmp_path / "out.db")
    with pytest.raises(NoBackupError):
        calc_restore_plan(client, txid=3)
    assert leftovers(tmp_path / "out.db") == []


def test_empty_s3_replica(tmp_path: Path, s3_server: s3server.S3Server, s3_bucket: str) -> None:
    client = open_replica_client(f"s3://{s3_bucket}/none?endpoint={s3_server.endpoint}")
    with pytest.raises(NoBackupError):
        restore(client, tmp_path / "out.db")
    assert leftovers(tmp_path / "out.db") == []


def test_txid_past_the_end_and_bad_options(tmp_path: Path, chain: Path) -> None:
    client = open_replica_client(f"file://{chain}")
    with pytest.raises(TxNotAvailableError):
        restore(client, tmp_path / "out.db", txid=5)
    with pytest.raises(RestoreOptionsError):
        restore(client, tmp_path / "out.db", txid=2, timestamp=dt.datetime.now(dt.UTC))
    with pytest.raises(RestoreOptionsError):
        restore(client, tmp_path / "out.db", integrity_check="thorough")
    with pytest.raises(RestoreOptionsError):
        restore(client, tmp_path / "out.db", parallelism=0)
    assert restore(client, tmp_path / "zero.db", txid=0).txid == 4  # 0 means latest, as in Litestream
    assert leftovers(tmp_path / "out.db") == []


def test_header_that_disagrees_with_its_name(tmp_path: Path, chain: Path) -> None:
    two = chain / "ltx" / "0" / format_filename(2, 2)
    three = chain / "ltx" / "0" / format_filename(3, 3)
    three.write_bytes(two.read_bytes())  # a 2-2 file under the name 3-3
    client = open_replica_client(f"file://{chain}")
    out = tmp_path / "out.db"
    with pytest.raises(CorruptBackupError, match="header says TXIDs"):
        restore(client, out)
    assert leftovers(out) == []


def test_integrity_check_failure_removes_the_output(tmp_path: Path, vectors: Path) -> None:
    db = bytearray((vectors / "dbs" / "chain_db1.db").read_bytes())
    page_size = 4096
    db[page_size + 8 : 2 * page_size] = os.urandom(page_size - 8)  # scramble page 2's cells
    pages = {i + 1: bytes(db[i * page_size : (i + 1) * page_size]) for i in range(len(db) // page_size)}
    rep = tmp_path / "replica"
    header = Header(page_size, len(pages), 1, 1, timestamp=1_767_225_600_000, flags=FLAG_NO_CHECKSUM)
    place(rep, 0, 1, 1, encode(header, pages))
    client = open_replica_client(f"file://{rep}")
    out = tmp_path / "out.db"
    restore(client, out)  # without a check the image is restored as it is
    assert out.read_bytes() == bytes(db)
    bad = tmp_path / "checked.db"
    with pytest.raises(IntegrityCheckError) as info:
        restore(client, bad, integrity_check="full")
    assert info.value.results and info.value.results != ("ok",)
    assert leftovers(bad) == []


def test_a_file_claimed_full_that_is_not_fails_the_coverage_check(tmp_path: Path, chain: Path) -> None:
    """The executor never trusts a plan's start blindly: missing pages fail the restore."""
    for lo in (1, 2):
        (chain / "ltx" / "0" / format_filename(lo, lo)).unlink()
    client = open_replica_client(f"file://{chain}")
    listing = list_replica(client)
    three = listing[0][0]  # 3-3 is an incremental: 134 of 149 pages
    lying = plan_restore(listing, RestoreTarget.at_txid(3), full_images={three})
    out = tmp_path / "out.db"
    fetcher_pool = concurrent.futures.ThreadPoolExecutor(2)
    try:
        fetcher = execute._Fetcher(client, lying.files, fetcher_pool, window=4)
        page_size, commit = execute._preflight(client, lying)
        tmp = TempOutput(str(out), [])
        try:
            with pytest.raises(CorruptBackupError, match="pages missing"):
                execute._apply(client, lying, tmp.fd, page_size, commit, fetcher, lambda n: None)
        finally:
            tmp.discard()
    finally:
        fetcher_pool.shutdown()
    assert leftovers(out) == []
    # and the probing executor does not take 3-3 for a full image
    with pytest.raises(NoBackupError):
        restore(client, out, txid=3)


def test_two_restores_cannot_share_the_temporary_file(tmp_path: Path, chain: Path, vectors: Path) -> None:
    client = open_replica_client(f"file://{chain}")
    out = tmp_path / "out.db"
    want = (vectors / "dbs" / "chain_db4.db").read_bytes()
    other = TempOutput(str(out), [])  # another restore of the same output, still writing
    try:
        os.write(other.fd, b"the other restore")
        restore(client, out)  # its own temporary file: no clash, and it is first to finish
        with pytest.raises(OutputExistsError, match="appeared while the restore ran"):
            other.publish(17, force=False, seen=OutputState())
        assert Path(other.path).read_bytes() == b"the other restore"
    finally:
        other.discard()
    assert out.read_bytes() == want and leftovers(out) == [out.name]
    Path(str(out) + ".tmp").write_bytes(b"stale")  # a name Litestream's restore uses: not ours
    restore(client, out, force=True)
    assert out.read_bytes() == want and Path(str(out) + ".tmp").read_bytes() == b"stale"


def test_is_full_image_leaves_out_the_lock_page() -> None:
    lock = lock_pgno(512)  # 2097153: a 1 GiB database, only its index is built here
    trailer = Trailer(0, CHECKSUM_FLAG | 1)

    def indexed(commit: int, pgnos: list[int]) -> IndexedFile:
        header = Header(512, commit, 5, 5, flags=FLAG_NO_CHECKSUM)
        zeros = [0] * len(pgnos)
        return IndexedFile(header, PageIndex.from_columns(pgnos, zeros, zeros), trailer, 0)

    below = list(range(1, lock))
    assert execute.is_full_image(indexed(lock + 1, [*below, lock + 1]))
    assert execute.is_full_image(indexed(lock - 1, below))
    assert not execute.is_full_image(indexed(lock - 1, below[:-1]))
    assert execute.is_full_image(indexed(lock, below))  # the lock page is the last page
    assert not execute.is_full_image(indexed(lock + 1, below))  # page lock+1 missing
    assert not execute.is_full_image(indexed(lock + 2, [*below, lock + 1]))
    assert not execute.is_full_image(indexed(5, [1, 2, 3, 5]))
    assert not execute.is_full_image(indexed(0, []))


# --- random histories through the whole executor ----------------------------------------------


def _pages_of(data: bytes) -> tuple[int, set[int]]:
    dec = Decoder(io.BytesIO(data))
    return dec.header.commit, {pgno for pgno, _ in dec}


@st.composite
def replica_cases(
    draw: st.DrawFn,
) -> tuple[
    int, list[tuple[int, dict[int, bytes]]], dict[tuple[int, int, int], bytes], RestoreTarget, int, int
]:
    page_size, states = draw(histories(max_pages=10, max_steps=7))
    n = len(states)
    l0 = chain_files(page_size, states, checksums=False)
    for k in draw(st.sets(st.integers(2, n), max_size=3)) if n > 1 else set():
        commit, pages = states[k - 1]
        header = Header(page_size, commit, k, k, timestamp=1_700_000_000_000 + k, flags=FLAG_NO_CHECKSUM)
        l0[k - 1] = encode(header, pages)  # a "snapshot L0"
    files: dict[tuple[int, int, int], bytes] = {(0, i, i): l0[i - 1] for i in range(1, n + 1)}

    def merged(lo: int, hi: int) -> bytes:
        out = io.BytesIO()
        compact(out, [io.BytesIO(l0[i - 1]) for i in range(lo, hi + 1)])
        return out.getvalue()

    for level in (1, 2):
        if draw(st.booleans()):
            m = draw(st.integers(1, n))
            cuts = sorted(draw(st.sets(st.integers(1, m - 1), max_size=3))) if m > 1 else []
            for a, b in itertools.pairwise([0, *cuts, m]):
                files[(level, a + 1, b)] = merged(a + 1, b)
    for hi in draw(st.sets(st.integers(1, n), max_size=2)):
        files[(9, 1, hi)] = merged(1, hi)
    # retention: L0 files up to some TXID, or (as a lifecycle rule would) every file up to it
    cut = draw(st.integers(0, n))
    every_level = draw(st.booleans())
    files = {k: v for k, v in files.items() if not ((k[0] == 0 or every_level) and k[2] <= cut)}
    if files:
        for key in draw(st.sets(st.sampled_from(sorted(files)), max_size=3)):
            del files[key]
    kind = draw(st.sampled_from(["latest", "txid", "time"]))
    if kind == "latest":
        target = RestoreTarget.latest()
    elif kind == "txid":
        target = RestoreTarget.at_txid(draw(st.integers(1, n)))
    else:
        k = draw(st.integers(1, n))
        target = RestoreTarget.at_time(
            dt.datetime.fromtimestamp((1_700_000_000_000 + k) / 1000, dt.UTC) + dt.timedelta(microseconds=500)
        )
    return (
        page_size,
        states,
        files,
        target,
        draw(st.sampled_from([1, 2, 8])),
        draw(st.sampled_from([64, 1000, 0])),
    )


@given(replica_cases())
def test_random_histories_restore_to_the_model_state(
    case: tuple[
        int, list[tuple[int, dict[int, bytes]]], dict[tuple[int, int, int], bytes], RestoreTarget, int, int
    ],
) -> None:
    page_size, states, files, target, parallelism, chunk = case
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        rep = root / "replica"
        client = open_replica_client(f"file://{rep}")
        truly_full: set[FileInfo] = set()
        for (level, lo, hi), data in files.items():
            info = client.write_file(level, lo, hi, data)  # mtime := header timestamp
            commit, pgnos = _pages_of(data)
            if commit and pgnos == set(range(1, commit + 1)):
                truly_full.add(info)
        listing = list_replica(client)
        try:
            expected = plan_restore(listing, target, full_images=truly_full)
        except RestorePlanError:
            expected = None
        out = root / "out.db"
        old = execute.CHUNK_SIZE
        execute.CHUNK_SIZE = chunk or old
        try:
            if expected is None:
                with pytest.raises(RestorePlanError):
                    restore(
                        client, out, txid=target.txid, timestamp=target.timestamp, parallelism=parallelism
                    )
                assert leftovers(out) == []
                return
            result = restore(
                client, out, txid=target.txid, timestamp=target.timestamp, parallelism=parallelism
            )
        finally:
            execute.CHUNK_SIZE = old
        assert result.plan == expected
        commit, pages = states[result.txid - 1]
        assert out.read_bytes() == database_bytes(pages, commit, page_size)
        assert leftovers(out) == [out.name]


def test_s3_probing_uses_ranged_reads(
    tmp_path: Path, s3_server: s3server.S3Server, s3_bucket: str, vectors: Path
) -> None:
    """A replica on S3 without a snapshot: a snapshot L0 at TXID 2, then 3-3 and the VACUUM 4-4."""
    chain = vectors / "chain"
    db2 = (vectors / "dbs" / "chain_db2.db").read_bytes()
    pages = {i + 1: db2[i * 4096 : (i + 1) * 4096] for i in range(len(db2) // 4096)}
    snapshot_l0 = encode(
        Header(4096, len(pages), 2, 2, timestamp=1_767_225_602_000, flags=FLAG_NO_CHECKSUM), pages
    )
    url = f"s3://{s3_bucket}/probe?endpoint={s3_server.endpoint}"
    client = open_replica_client(url)
    client.write_file(0, 2, 2, snapshot_l0)
    for txid in (3, 4):
        name = format_filename(txid, txid)
        client.write_file(0, txid, txid, (chain / name).read_bytes())
    out = tmp_path / "out.db"
    result = restore(client, out, integrity_check="full")
    assert [f.min_txid for f in result.files] == [4]  # 4-4 (a VACUUM) is the newest full image
    assert out.read_bytes() == (vectors / "dbs" / "chain_db4.db").read_bytes()
    at3 = tmp_path / "at3.db"
    result = restore(client, at3, txid=3)
    assert [f.min_txid for f in result.files] == [2, 3]
    assert at3.read_bytes() == (vectors / "dbs" / "chain_db3.db").read_bytes()
