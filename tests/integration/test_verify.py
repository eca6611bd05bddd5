"""``verify`` on real replicas: healthy ones (written by Litestream and by us) pass; damaged
copies fail with a finding that names the damaged file; unreachable stores and empty
replicas exit 2."""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from ltx.compactor import compact
from ltx.decoder import Decoder, read_page_index
from ltx.encoder import Encoder
from ltx.header import FLAG_NO_CHECKSUM, Header
from ltx.names import format_filename, parse_filename
from replica import verify
from replica.restore import calc_restore_plan, is_full_image
from replica.storage import RetryPolicy, open_replica_client
from tests.conftest import REPO
from tests.support import litestream
from tests.support.processes import Target
from tests.support.s3server import s3_env
from tests.support.workload import Replicator, make_db, start_writer

WRITE_ROWS = 1500  # about 6 s of commits at the pace below: 6-8 TXIDs (both replicators sync every second)


@attrs.frozen
class Healthy:
    """Two healthy file replicas of the same workload: one per replicator."""

    litestream: Path
    ours: Path

    def of(self, who: str) -> Path:
        return self.litestream if who == "litestream" else self.ours


def _start_litestream(db: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [litestream.binary(), "replicate", str(db), url],
        env=litestream.env(),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0, log.read_text()


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Healthy]:
    """Both replicas, built side by side while a writer inserts rows into each database."""
    root = tmp_path_factory.mktemp("verify")
    go_db, py_db = root / "go.db", root / "py.db"
    make_db(go_db)
    make_db(py_db)
    go_rep, py_rep = root / "go-replica", root / "py-replica"
    go = _start_litestream(go_db, f"file://{go_rep}", root / "litestream.log")
    ours = Replicator(str(py_db), f"file://{py_rep}", log=root / "replicate.log")
    writers = [start_writer(db, 1, WRITE_ROWS, every=10, pause=0.03) for db in (go_db, py_db)]
    try:
        assert [w.wait(120) for w in writers] == [0, 0]
        time.sleep(1.5)  # one more sync each
    finally:
        go.send_signal(signal.SIGINT)
        codes = (go.wait(60), ours.interrupt())
    assert codes == (0, 0), (root / "litestream.log").read_text() + (root / "replicate.log").read_text()
    yield Healthy(go_rep, py_rep)


def _verify(url: str, *, deep: bool = False, as_json: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    code = verify.run(url, deep=deep, as_json=as_json, out=out)
    return code, out.getvalue()


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)  # copy2: the mtimes (the listed creation times) come along
    return dst


def _l0(replica: Path) -> list[Path]:
    return sorted((replica / "ltx" / "0").iterdir())


def _full(path: Path) -> bool:
    with path.open("rb") as f:
        return is_full_image(read_page_index(f))


def _middle_incremental(replica: Path) -> Path:
    """The last level-0 file but one whose successor is not a full image (losing it is damage).

    Late in the history, so the latest state's restore plan needs it (level 9 holds an
    early snapshot in Litestream's replicas).
    """
    files = _l0(replica)
    assert len(files) >= 4, [f.name for f in files]
    for f, nxt in reversed(list(itertools.pairwise(files[1:]))):
        if not _full(nxt):
            return f
    pytest.fail(f"every level-0 file after the first is a full image: {[f.name for f in files]}")


def _report(url: str, *, deep: bool = False) -> verify.VerifyReport:
    client = open_replica_client(url)
    try:
        return verify.verify_replica(client, deep=deep)
    finally:
        client.close()


def _errors(report: verify.VerifyReport) -> list[tuple[str, int | None, str | None]]:
    return [(f.code, f.level, f.file) for f in report.errors]


# --- healthy ------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["litestream", "ours"])
def test_healthy_replica_passes_deep(healthy: Healthy, who: str) -> None:
    url = f"file://{healthy.of(who)}"
    code, text = _verify(url, deep=True)
    assert code == 0, text
    assert text.startswith("healthy: "), text
    report = _report(url)
    assert report.status is verify.Status.HEALTHY
    assert report.findings == (), report.to_text()
    assert report.files_checked == report.file_count >= 4
    client = open_replica_client(url)
    top = max(f.max_txid for lv in range(10) for f in client.list_files(lv))
    assert report.latest_txid == report.restored_txid == top
    assert report.oldest_restore_txid == 1


def test_cli_json(healthy: Healthy) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "replica", "verify", "-json", f"file://{healthy.litestream}"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "healthy" and doc["exit_code"] == 0 and doc["errors"] == 0
    assert doc["latest_txid"] == doc["restored_txid"] and len(doc["latest_txid"]) == 16
    assert doc["files"] == sum(doc["files_per_level"].values()) >= 4


# --- damaged copies -----------------------------------------------------------------------


@pytest.mark.parametrize("who", ["litestream", "ours"])
def test_missing_middle_file(healthy: Healthy, tmp_path: Path, who: str) -> None:
    rep = _copy(healthy.of(who), tmp_path / "r")
    victim = _middle_incremental(rep)
    victim.unlink()
    code, text = _verify(f"file://{rep}")
    assert code == 1, text
    report = _report(f"file://{rep}")
    assert ("gap", 0, victim.name) in _errors(report), text
    assert victim.name in text


@pytest.mark.parametrize("who", ["litestream", "ours"])
def test_flipped_byte(healthy: Healthy, tmp_path: Path, who: str) -> None:
    rep = _copy(healthy.of(who), tmp_path / "r")
    url = f"file://{rep}"
    client = open_replica_client(url)
    last = calc_restore_plan(client).files[-1]  # the latest state needs it
    victim = rep / "ltx" / str(last.level) / last.name
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    code, text = _verify(url)
    assert code == 1, text
    report = _report(url)
    assert _errors(report) == [("decode", last.level, last.name), ("restore", last.level, last.name)], text


@pytest.mark.parametrize("who", ["litestream", "ours"])
def test_truncated_file(healthy: Healthy, tmp_path: Path, who: str) -> None:
    rep = _copy(healthy.of(who), tmp_path / "r")
    victim = _middle_incremental(rep)
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - 40])  # loses the index end and the trailer
    code, text = _verify(f"file://{rep}")
    assert code == 1, text
    decode = [f for f in _report(f"file://{rep}").errors if f.code == "decode"]
    assert [(f.level, f.file) for f in decode] == [(0, victim.name)], text


@pytest.mark.parametrize("who", ["litestream", "ours"])
def test_file_renamed_to_wrong_range(healthy: Healthy, tmp_path: Path, who: str) -> None:
    rep = _copy(healthy.of(who), tmp_path / "r")
    last = _l0(rep)[-1]
    txid = parse_filename(last.name)[1] + 1
    moved = last.rename(last.with_name(format_filename(txid, txid)))
    code, text = _verify(f"file://{rep}")
    assert code == 1, text
    report = _report(f"file://{rep}")
    names = [f for f in report.errors if f.code == "name"]
    assert [(f.level, f.file) for f in names] == [(0, moved.name)], text
    assert last.name in names[0].message  # says what the header claims


def _add_compacted_level(client_url: str, replica: Path, groups: int = 3) -> tuple[int, list[Path]]:
    """Compact level-0 files into ``groups`` consecutive files of a compaction level.

    Level 1 from its end on, as Litestream does; when level 1 already holds nearly all of
    level 0 (Litestream compacted late in the run), the empty level 2, from the start.
    Returns the level and the files written.
    """
    client = open_replica_client(client_url)
    for level in (1, 2):
        start = max((f.max_txid for f in client.list_files(level)), default=0)
        files = [f for f in _l0(replica) if parse_filename(f.name)[0] > start]
        if len(files) >= groups:
            break
    assert len(files) >= groups, [f.name for f in files]
    size = len(files) // groups
    chunks = [files[i * size : (i + 1) * size] for i in range(groups - 1)] + [files[(groups - 1) * size :]]
    written = []
    for chunk in chunks:
        out = io.BytesIO()
        handles = [p.open("rb") for p in chunk]
        try:
            res = compact(out, handles)
        finally:
            for h in handles:
                h.close()
        info = client.write_file(level, res.header.min_txid, res.header.max_txid, out.getvalue())
        written.append(replica / "ltx" / str(level) / info.name)
    return level, written


@pytest.mark.parametrize("who", ["litestream", "ours"])
def test_level_with_a_gap(healthy: Healthy, tmp_path: Path, who: str) -> None:
    """A compaction level missing a file is damage even while level 0 still bridges the hole."""
    rep = _copy(healthy.of(who), tmp_path / "r")
    url = f"file://{rep}"
    level, written = _add_compacted_level(url, rep)
    code, text = _verify(url)
    assert code == 0, text  # well-formed compaction output is healthy
    written[1].unlink()
    code, text = _verify(url)
    assert code == 1, text
    report = _report(url)
    assert _errors(report) == [("gap", level, written[2].name)], text
    lo = parse_filename(written[1].name)[0]
    assert report.errors[0].txid == lo


def test_history_gap_closed_by_a_full_image_is_a_warning(healthy: Healthy, tmp_path: Path) -> None:
    """The shape our replicator leaves after losing unsent files: level 0 resumes at a full image
    (also written as the snapshot ``1-<txid>``). States in the hole are lost, later ones restore."""
    rep = _copy(healthy.ours, tmp_path / "r")
    url = f"file://{rep}"
    files = _l0(rep)
    merged = io.BytesIO()
    handles = [p.open("rb") for p in files]
    try:
        compact(merged, handles)
    finally:
        for h in handles:
            h.close()
    merged.seek(0)
    dec = Decoder(merged)
    txid = parse_filename(files[-1].name)[1] + 3
    h = dec.header
    image = io.BytesIO()
    enc = Encoder(
        image,
        Header(h.page_size, h.commit, txid, txid, timestamp=h.timestamp + 1000, flags=FLAG_NO_CHECKSUM),
    )
    for pgno, page in dec:
        enc.write_page(pgno, page)
    enc.close()
    client = open_replica_client(url)
    client.write_file(0, txid, txid, image.getvalue())
    report = _report(url)
    assert report.status is verify.Status.HEALTHY, report.to_text()
    # the hole in level 0 and in every level; only we can restore the latest state
    assert [(f.code, f.level, f.file) for f in report.warnings] == [
        ("gap", 0, format_filename(txid, txid)),
        ("coverage", 0, format_filename(txid, txid)),
        ("compat", 0, format_filename(txid, txid)),
    ], report.to_text()
    assert report.latest_txid == report.restored_txid == txid

    client.write_file(9, 1, txid, _as_snapshot(image.getvalue(), txid))
    report = _report(url)
    assert report.status is verify.Status.HEALTHY, report.to_text()
    # the snapshot covers the hole, and Litestream can restore from it
    assert [f.code for f in report.warnings] == ["gap"], report.to_text()
    assert report.latest_txid == report.restored_txid == txid


def _as_snapshot(data: bytes, txid: int) -> bytes:
    """The same pages as a snapshot ``1-<txid>`` (what our uploader writes to level 9)."""
    dec = Decoder(io.BytesIO(data))
    h = dec.header
    out = io.BytesIO()
    enc = Encoder(out, Header(h.page_size, h.commit, 1, txid, timestamp=h.timestamp, flags=FLAG_NO_CHECKSUM))
    for pgno, page in dec:
        enc.write_page(pgno, page)
    enc.close()
    return out.getvalue()


def test_deep_catches_a_bad_intermediate_state(healthy: Healthy, tmp_path: Path) -> None:
    """A file with a valid checksum but a garbled page that the next file overwrites: the
    latest state is fine, the state the file itself produces is not. Only ``-deep`` sees it."""
    rep = _copy(healthy.ours, tmp_path / "r")
    url = f"file://{rep}"
    files = _l0(rep)
    victim = None
    for a, b in itertools.pairwise(files[1:]):
        pages, later = _pages(a), _pages(b)
        shared = sorted(set(pages) & set(later) - {1})  # page 1 changes in every file: too easy
        if shared and not _full(b):
            victim, pgno = a, shared[0]
            break
    assert victim is not None, "no two consecutive incremental files share a page"
    page = pages[pgno]
    pages[pgno] = page[:12] + bytes(len(page) - 12)  # keep the b-tree page header, zero the cell pointers
    with victim.open("rb") as f:
        h = Decoder(f).header
    out = io.BytesIO()
    enc = Encoder(out, h)
    for n in sorted(pages):
        enc.write_page(n, pages[n])
    enc.close()
    stat = victim.stat()
    victim.write_bytes(out.getvalue())
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    code, text = _verify(url)
    assert code == 0, text  # every file is well-formed and the latest state is fine
    code, text = _verify(url, deep=True)
    assert code == 1, text
    report = _report(url, deep=True)
    txid = parse_filename(victim.name)[1]
    assert [(f.code, f.level, f.file, f.txid) for f in report.errors] == [
        ("integrity", 0, victim.name, txid)
    ], text


def _pages(path: Path) -> dict[int, bytes]:
    with path.open("rb") as f:
        return dict(Decoder(f))


# --- not a replica, unreachable -----------------------------------------------------------


def test_empty_replica(tmp_path: Path) -> None:
    rep = tmp_path / "empty"
    (rep / "ltx" / "0").mkdir(parents=True)
    (rep / "ltx" / "0" / "0000000000000001-0000000000000001.ltx.tmp").write_bytes(b"partial")
    code, text = _verify(f"file://{rep}")
    assert code == 2, text
    assert text.splitlines()[-1].startswith("not-a-replica: "), text
    assert "[empty]" in text
    code, text = _verify(f"file://{tmp_path / 'nothing-here'}", as_json=True)
    assert code == 2
    assert json.loads(text)["status"] == "not-a-replica"
    code, text = _verify("ftp://host/x")
    assert code == 2, text


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in s3_env().items():
        monkeypatch.setenv(k, v)
    url = f"s3://bucket/db?endpoint=http://127.0.0.1:{_closed_port()}&region=us-east-1"
    out = io.StringIO()
    started = time.monotonic()
    code = verify.run(
        url, deep=False, as_json=True, out=out, retry=RetryPolicy(attempts=2, initial_delay=0.05)
    )
    assert time.monotonic() - started < 30
    assert code == 2, out.getvalue()
    doc = json.loads(out.getvalue())
    assert doc["status"] == "unreachable"
    assert [f["code"] for f in doc["findings"]] == ["storage"]
    assert "unreachable" in doc["findings"][0]["message"]


# --- S3 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["s3"], indirect=True)
def test_litestream_replica_on_s3(tmp_path: Path, target: Target) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    log = tmp_path / "litestream.log"
    proc = _start_litestream(db, target.url, log)
    writer = start_writer(db, 1, 500, every=10, pause=0.03)
    try:
        assert writer.wait(120) == 0
        time.sleep(1.5)
    finally:
        _stop(proc, log)
    code, text = _verify(target.url, deep=True)
    assert code == 0, text
    report = _report(target.url)
    assert report.findings == (), report.to_text()
    assert report.files_per_level[0] >= 2 and report.restored_txid == report.latest_txid
    # the same server, a bucket that does not exist: not a replica
    missing = target.url.replace("s3://", "s3://no-such-bucket-", 1)
    code, text = _verify(missing)
    assert code == 2, text


# --- two writers ---------------------------------------------------------------------------


def test_owner_record_in_the_report(healthy: Healthy) -> None:
    ours = _report(f"file://{healthy.ours}")
    assert ours.owner is not None and ours.owner["database"] == str(healthy.ours.parent / "py.db")
    assert ours.owner["host"] == socket.gethostname() and ours.owner["tool"] == "pylitestream"
    assert f"owner: database {healthy.ours.parent / 'py.db'} on host" in ours.summary()
    assert ours.to_json()["owner"] == ours.owner
    theirs = _report(f"file://{healthy.litestream}")
    assert theirs.owner is None and theirs.to_json()["owner"] is None and "owner" not in theirs.summary()


def _reencoded(path: Path, txid: int) -> bytes:
    """The file at ``path`` as the level-0 file of ``txid``: same pages and WAL position."""
    with path.open("rb") as f:
        dec = Decoder(f)
        out = io.BytesIO()
        enc = Encoder(out, attrs.evolve(dec.header, min_txid=txid, max_txid=txid))
        for pgno, page in dec:
            enc.write_page(pgno, page)
        enc.close()
    return out.getvalue()


def _incremental_from_wal(path: Path) -> bool:
    with path.open("rb") as f:
        h = Header.from_bytes(f.read(100))
    return not _full(path) and h.wal_offset not in (0, 32)


def test_two_writers_break_the_level0_chain(healthy: Healthy, tmp_path: Path) -> None:
    """Another database's level-0 file in our history: it does not continue our WAL."""
    rep = _copy(healthy.ours, tmp_path / "r")
    url = f"file://{rep}"
    files = _l0(rep)
    # an incremental file with a predecessor, followed by another incremental file
    victim = next(f for f, nxt in itertools.pairwise(files[1:]) if not _full(f) and not _full(nxt))
    txid = parse_filename(victim.name)[0]
    foreign = next(f for f in _l0(healthy.litestream) if _incremental_from_wal(f))
    victim.unlink()
    open_replica_client(url).write_file(0, txid, txid, _reencoded(foreign, txid))
    code, text = _verify(url)
    assert code == 1, text
    report = _report(url)
    chain = [f for f in report.errors if f.code == "chain"]
    assert chain and (chain[0].level, chain[0].file, chain[0].txid) == (0, victim.name, txid), text
    assert "two writers" in chain[0].message and "does not continue the history of" in chain[0].message
