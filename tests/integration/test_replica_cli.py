"""``python -m replica``: config files, subcommands, exit codes, -exec and -once, on real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO
from tests.support import litestream
from tests.support.s3server import FaultProxy, S3Server, s3_env
from tests.support.workload import Replicator, ids, make_db, start_writer, wait_for


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replica", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _config(tmp_path: Path, db: Path, body: str = "") -> Path:
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(
        f"dbs:\n  - path: $APP_DB\n    replica:\n      url: file://{tmp_path / 'replica'}\n" + body
    )
    return cfg


def test_config_file_replicate_once_then_ltx_status_databases(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    assert start_writer(db, 1, 200, every=0).wait(60) == 0
    cfg = _config(tmp_path, db)
    env = {"APP_DB": str(db)}
    r = run("replicate", "-config", str(cfg), "-once", env=env)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "one-shot replication complete" in r.stdout
    r = run("ltx", "-config", str(cfg), "-json", str(db), env=env)
    assert r.returncode == 0, r.stderr
    files = json.loads(r.stdout)
    assert files and files[0]["level"] == 0 and files[0]["min_txid"] == "0000000000000001"
    r = run("databases", "-config", str(cfg), "-json", env=env)
    assert json.loads(r.stdout) == [{"path": str(db), "replica": "file"}]
    r = run("status", "-config", str(cfg), "-json", env=env)
    (row,) = json.loads(r.stdout)
    assert row["status"] == "ok" and row["local_txid"] == files[-1]["max_txid"]
    out = tmp_path / "restored.db"
    r = run("restore", "-config", str(cfg), "-o", str(out), "-json", str(db), env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["txid"] == files[-1]["max_txid"]
    assert ids(out) == list(range(1, 201))
    r = run("restore", "-config", str(cfg), "-if-db-not-exists", "-o", str(out), str(db), env=env)
    assert r.returncode == 0
    r = run("restore", "-config", str(cfg), "-o", str(out), str(db), env=env)
    assert r.returncode == 1 and "Error:" in r.stderr and str(out) in r.stderr


def test_reset_removes_local_state_only(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    cfg = _config(tmp_path, db)
    env = {"APP_DB": str(db)}
    assert run("replicate", "-config", str(cfg), "-once", env=env).returncode == 0
    before = db.read_bytes()
    r = run("reset", "-dry-run", str(db))
    assert "No files were removed." in r.stdout and (tmp_path / ".app.db-litestream" / "ltx").exists()
    r = run("reset", str(db))
    assert r.returncode == 0 and "Reset complete" in r.stdout
    assert not (tmp_path / ".app.db-litestream" / "ltx").exists() and db.read_bytes() == before
    r = run("status", "-config", str(cfg), env=env)
    assert "not initialized" in r.stdout


def test_unknown_config_key_names_the_key_and_line(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    cfg = _config(tmp_path, db, "snapshot:\n  interval: 1h\n  retension: 2h\n")
    r = run("replicate", "-config", str(cfg), "-once", env={"APP_DB": str(db)})
    assert r.returncode == 1 and "retension" in r.stderr and "line 7" in r.stderr


def test_exec_runs_the_application_and_stops_with_it(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    url = f"file://{tmp_path / 'replica'}"
    app = (
        f"{sys.executable} -c \"import sqlite3; c=sqlite3.connect('{db}', isolation_level=None); "
        "[c.execute('insert into t(id) values (?)', (i,)) for i in range(1, 301)]; "
        'import sys; sys.exit(3)"'
    )
    r = run("replicate", "-exec", app, str(db), url)
    assert r.returncode == 1 and "exit status 3" in r.stderr
    out = tmp_path / "out.db"
    litestream.restore(url, out)
    assert ids(out) == list(range(1, 301))
    r = run("replicate", "-exec", "true", "-once", str(db), url)
    assert r.returncode == 1 and "-once" in r.stderr


def test_shutdown_with_uploads_pending_exits_1_and_keeps_the_files(
    tmp_path: Path, s3_server: S3Server
) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    bucket = s3_server.new_bucket()
    proxy = FaultProxy(s3_server.endpoint)
    try:
        url = f"s3://{bucket}/db?endpoint={proxy.endpoint}&region=us-east-1"
        cfg = tmp_path / "c.yml"
        cfg.write_text(f"shutdown-sync-timeout: 1s\ndbs:\n  - path: {db}\n    replica:\n      url: {url}\n")
        proc = subprocess.Popen(
            [sys.executable, "-m", "replica", "replicate", "-config", str(cfg)],
            cwd=REPO,
            env={**os.environ, **s3_env()},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # the first LTX file (the owner record, pylitestream-owner.json, comes before it)
        wait_for(lambda: any(k.endswith(".ltx") for k in s3_server.list_keys(bucket)), what="first upload")
        proxy.fail_always(503, "SlowDown")
        assert start_writer(db, 1, 100, every=0).wait(60) == 0
        time.sleep(2)
        proc.send_signal(2)
        _out, err = proc.communicate(timeout=120)
    finally:
        proxy.close()
    assert proc.returncode == 1, err
    assert "not uploaded" in err
    local = sorted((tmp_path / ".app.db-litestream" / "ltx" / "0").glob("*.ltx"))
    assert local and local[-1].name > "0000000000000001-0000000000000001.ltx"


def test_usage_errors() -> None:
    r = run("restore", "-txid", "5", "file:///nowhere")
    assert r.returncode == 1 and "invalid txid format" in r.stderr
    r = run("restore", "file:///nowhere")
    assert r.returncode == 1 and "-o is required" in r.stderr and r.stderr.count("Try:") == 1
    r = run("ltx", "-level", "12", "file:///nowhere")
    assert r.returncode == 1 and "level must be between 0 and 9" in r.stderr
    r = run("bogus")
    assert r.returncode == 1 and "unknown command" in r.stderr
    assert run("version").stdout.strip().startswith("v")
    r = run("restore", "-o", "/tmp/x.db", "-if-replica-exists", f"file:///{Path('/nonexistent-replica-dir')}")
    assert r.returncode == 0


def test_dir_watch_picks_up_new_databases_and_drops_vanished_ones(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    make_db(data / "a.db")
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        "dbs:\n"
        f"  - dir: {data}\n"
        "    pattern: '*.db'\n"
        "    watch: true\n"
        "    monitor-interval: 200ms\n"
        "    replica:\n"
        f"      url: file://{tmp_path / 'replicas'}\n"
    )
    rep = Replicator("-config", str(cfg), log=tmp_path / "log")
    wait_for(lambda: (tmp_path / "replicas" / "a.db" / "ltx" / "0").exists(), what="a.db replicated")
    make_db(data / "b.db")
    assert start_writer(data / "b.db", 1, 50, every=0).wait(60) == 0
    wait_for(lambda: (tmp_path / "replicas" / "b.db" / "ltx" / "0").exists(), what="b.db picked up")
    (data / "a.db").unlink()
    wait_for(lambda: "stopping replication" in (tmp_path / "log").read_text(), what="a.db dropped")
    assert rep.interrupt() == 0, (tmp_path / "log").read_text()
    out = tmp_path / "b.db"
    litestream.restore(f"file://{tmp_path / 'replicas' / 'b.db'}", out)
    assert ids(out) == list(range(1, 51))


def test_once_with_force_snapshot_writes_a_level_9_file(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    assert start_writer(db, 1, 100, every=0).wait(60) == 0
    cfg = _config(tmp_path, db)
    r = run("replicate", "-config", str(cfg), "-once", "-force-snapshot", env={"APP_DB": str(db)})
    assert r.returncode == 0, r.stderr + r.stdout
    assert list((tmp_path / "replica" / "ltx" / "9").glob("0000000000000001-*.ltx"))
    r = run("replicate", "-config", str(cfg), "-force-snapshot", env={"APP_DB": str(db)})
    assert r.returncode == 1 and "without -once" in r.stderr


def test_restore_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    assert start_writer(db, 1, 100, every=0).wait(60) == 0
    cfg = _config(tmp_path, db)
    env = {"APP_DB": str(db)}
    assert run("replicate", "-config", str(cfg), "-once", env=env).returncode == 0
    out = tmp_path / "out.db"
    url = f"file://{tmp_path / 'replica'}"
    r = run("restore", "-dry-run", "-o", str(out), url)
    assert r.returncode == 0, r.stderr
    assert "Restore plan:" in r.stdout and "0000000000000001-0000000000000001.ltx" in r.stdout
    r = run("restore", "-dry-run", "-json", "-o", str(out), url)
    plan = json.loads(r.stdout)
    assert plan["min_txid"] == "0000000000000001" and plan["files"][0]["level"] == 0
    assert not out.exists()


def _open_file_limits(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no open-file limit in /proc")


def test_replicate_raises_its_open_file_limit_to_the_hard_limit(tmp_path: Path) -> None:
    """Each database holds several descriptors: a soft limit of 256 would stop a dir: entry of
    a few dozen databases with "too many open files". The replicator raises it, as Go does."""
    import resource

    db = tmp_path / "app.db"
    make_db(db)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        rep = Replicator(str(db), f"file://{tmp_path / 'replica'}", log=tmp_path / "log")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert low < hard, "the hard limit is too low for this test to mean anything"
    rep.wait_started()
    wait_for(lambda: _open_file_limits(rep.proc.pid)[0] == hard, 30, "the raised limit")
    assert rep.interrupt() == 0
