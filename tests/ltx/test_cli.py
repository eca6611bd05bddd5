"""``python -m ltx``: subcommands, flags, output and exit codes, on real files."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ltx.cli import main
from ltx.decoder import Decoder
from tests.conftest import VECTORS


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ltx", *args], capture_output=True, text=True, timeout=120)


def _make_db(path: Path, rows: int = 2000) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT)")
    con.executemany("INSERT INTO t(body) VALUES (?)", ((f"row {i} " * 20,) for i in range(rows)))
    con.commit()
    con.close()


@pytest.mark.parametrize("no_checksum", [False, True])
def test_encode_db_then_apply_rebuilds_the_database(tmp_path: Path, no_checksum: bool) -> None:
    db = tmp_path / "src.db"
    _make_db(db)
    out = tmp_path / "snap.ltx"
    flags = ["-no-checksum"] if no_checksum else []
    r = run("encode-db", *flags, "-o", str(out), str(db))
    assert r.returncode == 0, r.stderr
    with out.open("rb") as f:
        dec = Decoder(f)
        dec.verify()
    assert dec.header.no_checksum == no_checksum and dec.header.is_snapshot
    r = run("apply", "-db", str(tmp_path / "copy.db"), str(out))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "copy.db").read_bytes() == db.read_bytes()
    a, b = run("checksum", str(db)), run("checksum", str(tmp_path / "copy.db"))
    assert a.returncode == 0 and a.stdout == b.stdout and len(a.stdout.strip()) == 16
    if not no_checksum:
        assert dec.trailer is not None and a.stdout.strip() == f"{dec.trailer.post_apply_checksum:016x}"
    assert not list(tmp_path.glob("*.tmp"))


def test_encode_db_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    db = tmp_path / "src.db"
    _make_db(db, 10)
    before = db.read_bytes()
    r = run("encode-db", "-o", str(db), str(db))
    assert r.returncode == 1 and "input" in r.stderr
    assert db.read_bytes() == before


def test_encode_db_of_a_non_database_names_the_file(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"hello" * 100)
    r = run("encode-db", "-o", str(tmp_path / "x.ltx"), str(bogus))
    assert r.returncode == 1 and str(bogus) in r.stderr and "not a SQLite database" in r.stderr
    assert not (tmp_path / "x.ltx").exists()


def test_verify_reports_each_bad_file_and_a_count(capsys: pytest.CaptureFixture[str]) -> None:
    good = sorted(str(p) for p in (VECTORS / "chain").glob("*.ltx"))
    bad = sorted(str(p) for p in (VECTORS / "bad").glob("*.ltx"))
    assert main(["verify", *good]) == 0
    assert capsys.readouterr().out.strip() == "ok"
    assert main(["verify", *good, *bad]) == 1
    out = capsys.readouterr().out
    assert out.strip().endswith(f"{len(good)} ok, {len(bad)} invalid")
    for p in bad:
        assert p in out


def test_list_prints_one_row_per_file(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in (VECTORS / "chain").glob("*.ltx"))
    assert main(["list", "-tsv", *files]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["min_txid", "max_txid", "commit", "pages", "preapply", "postapply",
                                    "timestamp", "wal_offset", "wal_size", "wal_salt"]  # fmt: skip
    for line, path in zip(lines[1:], files, strict=True):
        meta = json.loads(Path(path).with_suffix(".json").read_text())
        cols = line.split("\t")
        assert cols[0] == meta["header"]["min_txid_hex"]
        assert cols[2] == str(meta["header"]["commit"]) and cols[3] == str(len(meta["pages"]))
        assert cols[5] == meta["post_apply_checksum"]
        assert cols[6] == meta["header"]["timestamp_iso"].replace(".000Z", "Z")


def test_dump_shows_header_pages_and_trailer(capsys: pytest.CaptureFixture[str]) -> None:
    path = VECTORS / "special" / "walfields-0000000000000002-0000000000000002.ltx"
    meta = json.loads(path.with_suffix(".json").read_text())
    assert main(["dump", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"WAL salt:   {meta['header']['wal_salt1']:08x} {meta['header']['wal_salt2']:08x}" in out
    assert out.count("# PAGE FRAME") == len(meta["pages"])
    assert f"File checksum: {meta['file_checksum']}" in out
    assert "53 51 4c 69 74 65 20 66" in out  # "SQLite f" on page 1


def test_apply_stops_at_a_bad_file_and_names_it(tmp_path: Path) -> None:
    db = tmp_path / "db"
    r = run("apply", "-db", str(db), str(VECTORS / "chain" / "0000000000000001-0000000000000001.ltx"),
            str(VECTORS / "bad" / "bad-payload-byte.ltx"))  # fmt: skip
    assert r.returncode == 1 and "bad-payload-byte.ltx" in r.stderr
    assert not db.exists()


def test_usage_errors_exit_2() -> None:
    r = run("apply", "x.ltx")
    assert r.returncode == 2 and "-db" in r.stderr
    assert run("frobnicate").returncode == 2
    assert run("version").stdout.startswith("ltx ")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    r = run("checksum", str(tmp_path / "nope.db"))
    assert r.returncode == 1 and "nope.db" in r.stderr
