"""Replication lag and idle CPU of one database: our replicator against ``litestream replicate``.

For each replicator in turn (ours, ``python -m replica replicate DB file://REPLICA``,
then ``litestream replicate DB file://REPLICA``; default settings; never both at
once), on a fresh WAL database with one table ``t``:

1. The replicator is started in its own process group; the harness waits for its
   first L0 file on the replica, then 2 s.
2. **(c) idle CPU**: no writes for ``--idle-seconds`` (30); the replicator's CPU time
   (user+sys of its process group, from ``/proc``) over that time, as % of one core.
3. **(a) sporadic commits**: ``--commits`` (40) single-row INSERTs (autocommit,
   ``synchronous=NORMAL``), each after at least 1 s without commits (1 s plus a random
   0..1 s, so commits fall at random phases of the replicator's 1 s timers) and only
   once the previous commit is on the replica. The lag of a commit is the time from
   its COMMIT returning to the harness seeing, polling the replica's ``ltx/0`` folder
   every ``--poll`` (2 ms), a new L0 file that holds it. Each row's text is a marker
   with the commit's number; a new L0 file is decoded with this repository's ``ltx``
   decoder and the largest marker in its pages tells which commits it holds (the
   file names cannot: a Litestream 0.5 TXID counts syncs, not SQLite commits).
   Reported: p50, p99 (nearest rank) and max.
4. **(b) sustained**: 20 commits/s (``--rate``) for ``--sustained-seconds`` (30), on an
   absolute schedule, polling in between; lag per commit as in (a) (the harness waits
   up to 10 s after the last commit); reported: p50, p99, max, and uploads per minute
   (new L0 files that appeared during the window, per minute of window).

Also shown: the replicator's peak thread count and peak RSS (``VmHWM``) over the run.
Then a table for both and the ratios ours/Litestream.

    python bench/lag.py                       # about 4 to 5 minutes
    python bench/lag.py --commits 10 --sustained-seconds 10 --idle-seconds 10   # quicker

The poll loop runs in the harness while the replicator works (a few % of a core on a
2-core machine); detection adds up to one poll interval plus the decode of the new
file (well under a millisecond for these files) to each lag.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import (
    MIB,
    Incomplete,
    Replicator,
    Sampler,
    cleanup_on_sigterm,
    list_l0,
    marker,
    max_marker,
    ours_replicate,
    percentile,
    ratio,
    require_litestream,
)

NAMES = ("ours", "litestream")


class Watcher:
    """Polls a replica's L0 folder; records when each new file was seen and the commits it holds."""

    def __init__(self, replica: Path) -> None:
        self.replica = replica
        self.seen: set[str] = set()
        self.confirmed = 0  # highest commit number seen on the replica
        self.events: list[tuple[float, int]] = []  # (time seen, confirmed after it), confirmed increasing
        self.arrivals: list[float] = []  # time each new L0 file was seen

    def poll(self) -> None:
        files = list_l0(self.replica)
        now = time.monotonic()
        for f in files:
            if f.name in self.seen:
                continue
            try:
                got = max_marker(self.replica / "ltx" / "0" / f.name)
            except Incomplete:
                continue  # not complete yet: next poll
            self.seen.add(f.name)
            self.arrivals.append(now)
            if got is not None and got > self.confirmed:
                self.confirmed = got
                self.events.append((now, got))

    def seen_at(self, k: int) -> float | None:
        """When commit ``k`` was first seen on the replica."""
        for t, c in self.events:
            if c >= k:
                return t
        return None


@dataclass
class Result:
    name: str
    idle_cpu: float = 0.0
    idle_seconds: float = 0.0
    sporadic: list[float] = field(default_factory=list)
    sporadic_missing: int = 0
    sustained: list[float] = field(default_factory=list)
    sustained_commits: int = 0
    sustained_missing: int = 0
    sustained_window: float = 0.0
    uploads: int = 0
    peak_threads: int = 0
    hwm: int = 0
    rc: int | None = None
    failure: str = ""
    log_tail: str = ""


def run_one(name: str, args: argparse.Namespace, litestream: str, work: Path) -> Result:
    res = Result(name)
    root = work / name
    root.mkdir()
    db, replica = root / "lag.db", root / "replica"
    con = sqlite3.connect(db, isolation_level=None, timeout=5.0)
    con.execute("PRAGMA journal_mode = wal")
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    url = f"file://{replica}"
    cmd = ours_replicate(str(db), url) if name == "ours" else [litestream, "replicate", str(db), url]
    rng = random.Random(args.seed)
    seq = 0

    def commit() -> float:
        nonlocal seq
        seq += 1
        con.execute("INSERT INTO t (body) VALUES (?)", (marker(seq),))
        return time.monotonic()

    rep = Replicator(name, cmd, root / "replicator.log")
    try:
        with rep:
            sampler = Sampler(rep.pid).start()
            try:
                if _wait_first(replica, rep) is None:
                    res.failure = "no first sync within 60 s"
                    return res
                time.sleep(2.0)
                w = Watcher(replica)
                w.poll()
                # (c) idle
                print(f"[{name}] idle {args.idle_seconds:g} s", file=sys.stderr, flush=True)
                u0 = sampler.sample()
                time.sleep(args.idle_seconds)
                u1 = sampler.sample()
                res.idle_cpu, res.idle_seconds = u1.cpu - u0.cpu, args.idle_seconds
                # (a) sporadic
                print(f"[{name}] {args.commits} sporadic commits", file=sys.stderr, flush=True)
                w.poll()
                for _ in range(args.commits):
                    t_c = commit()
                    k = seq
                    while w.confirmed < k and time.monotonic() - t_c < args.timeout:
                        time.sleep(args.poll)
                        w.poll()
                    seen = w.seen_at(k)
                    if seen is None:
                        res.sporadic_missing += 1
                    else:
                        res.sporadic.append(seen - t_c)
                    next_at = t_c + 1.0 + rng.random()
                    while time.monotonic() < next_at:
                        time.sleep(args.poll)
                        w.poll()
                # (b) sustained
                print(
                    f"[{name}] {args.rate:g} commits/s for {args.sustained_seconds:g} s",
                    file=sys.stderr,
                    flush=True,
                )
                first = seq + 1
                n_before = len(w.arrivals)
                commits: list[tuple[int, float]] = []
                t0 = time.monotonic()
                end = t0 + args.sustained_seconds
                tick = t0
                while tick < end:
                    if time.monotonic() >= tick:
                        commits.append((seq + 1, commit()))
                        tick += 1.0 / args.rate
                    w.poll()
                    time.sleep(args.poll)
                res.sustained_window = time.monotonic() - t0
                res.uploads = sum(1 for t in w.arrivals[n_before:] if t < t0 + args.sustained_seconds)
                t_last = time.monotonic()
                while w.confirmed < seq and time.monotonic() - t_last < args.timeout:
                    time.sleep(args.poll)
                    w.poll()
                res.sustained_commits = seq - first + 1
                for k, t_c in commits:
                    seen = w.seen_at(k)
                    if seen is None:
                        res.sustained_missing += 1
                    else:
                        res.sustained.append(seen - t_c)
                sampler.sample()
            finally:
                sampler.stop()
                res.peak_threads, res.hwm = sampler.peak_threads, sampler.hwm
    finally:
        con.close()
        res.rc = rep.returncode
        res.log_tail = rep.log_tail()
    return res


def _wait_first(replica: Path, rep: Replicator, timeout: float = 60.0) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if list_l0(replica):
            return time.monotonic() - t0
        if not rep.alive():
            return None
        time.sleep(0.01)
    return None


def report(results: list[Result], args: argparse.Namespace) -> None:
    by = {r.name: r for r in results}
    cols = [n for n in NAMES if n in by]
    two = len(cols) == 2
    print(
        f"\nlag: one database, default settings, file:// replica, replica polled every "
        f"{args.poll * 1000:g} ms\n"
    )
    print(f"{'':<46}" + "".join(f"{c:>12}" for c in cols) + (f"{'ours/ls':>10}" if two else ""))

    def row(label: str, vals: list[float | None], spec: str = ".3f", with_ratio: bool = True) -> None:
        cells = ["-" if v is None or v != v else format(v, spec) for v in vals]
        line = f"{label:<46}" + "".join(f"{c:>12}" for c in cells)
        if two and with_ratio:
            line += f"{ratio(vals[0], vals[1]):>10}"
        print(line)

    def text(label: str, vals: list[str]) -> None:
        print(f"{label:<46}" + "".join(f"{v:>12}" for v in vals))

    s = [by[c] for c in cols]
    text("(a) sporadic: commits on the replica", [f"{len(r.sporadic)}/{args.commits}" for r in s])
    row("    lag p50, s", [percentile(r.sporadic, 50) for r in s])
    row("    lag p99, s", [percentile(r.sporadic, 99) for r in s])
    row("    lag max, s", [max(r.sporadic, default=None) for r in s])
    text(
        f"(b) {args.rate:g}/s for {args.sustained_seconds:g} s: on the replica",
        [f"{len(r.sustained)}/{r.sustained_commits}" for r in s],
    )
    row("    lag p50, s", [percentile(r.sustained, 50) for r in s])
    row("    lag p99, s", [percentile(r.sustained, 99) for r in s])
    row("    lag max, s", [max(r.sustained, default=None) for r in s])
    row(
        "    uploads (new L0 files) per minute",
        [r.uploads * 60 / args.sustained_seconds for r in s],
        ".1f",
    )
    row(
        f"(c) idle {args.idle_seconds:g} s: CPU, % of one core",
        [r.idle_cpu / r.idle_seconds * 100 if r.idle_seconds else None for r in s],
        ".2f",
    )
    row("    CPU seconds", [r.idle_cpu for r in s], ".2f")
    row("threads (peak)", [float(r.peak_threads) for r in s], ".0f")
    row("peak RSS MiB (VmHWM)", [r.hwm / MIB for r in s], ".1f")
    text("exit code after SIGINT", [str(r.rc) for r in s])
    for r in s:
        if r.failure or r.rc != 0 or r.sporadic_missing or r.sustained_missing:
            print(f"\n{r.name}: {r.failure or 'something went wrong'}; replicator log tail:\n{r.log_tail}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commits", type=int, default=40, help="sporadic commits (default 40)")
    ap.add_argument("--rate", type=float, default=20.0, help="sustained commits per second (default 20)")
    ap.add_argument(
        "--sustained-seconds", type=float, default=30.0, help="length of the sustained phase (default 30)"
    )
    ap.add_argument("--idle-seconds", type=float, default=30.0, help="length of the idle phase (default 30)")
    ap.add_argument("--poll", type=float, default=0.002, help="replica poll interval, s (default 0.002)")
    ap.add_argument(
        "--timeout", type=float, default=10.0, help="give up on a commit after this long (default 10 s)"
    )
    ap.add_argument("--seed", type=int, default=1, help="seed of the random quiet times (default 1)")
    ap.add_argument("--only", choices=NAMES, help="run only one replicator")
    ap.add_argument("--litestream", help="the litestream binary (default: beside python, else PATH)")
    ap.add_argument("--keep", action="store_true", help="keep the databases, replicas and logs")
    args = ap.parse_args()
    cleanup_on_sigterm()
    litestream = require_litestream(args.litestream)
    if litestream is None:
        return 2
    work = Path(tempfile.mkdtemp(prefix="lag-"))
    results = []
    try:
        for name in NAMES:
            if not args.only or name == args.only:
                results.append(run_one(name, args, litestream, work))
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
