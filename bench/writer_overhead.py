"""What a replicator costs the application: flat-out commits/s with none, ours and ``litestream``.

A writer in this process commits one single-row INSERT (a 64-byte text, autocommit,
``PRAGMA synchronous`` ``--synchronous``, default NORMAL as Litestream recommends for
WAL) per transaction, as fast as it can, for ``--seconds`` (5), on a fresh WAL
database, in three setups:

* ``none``: no replicator;
* ``ours``: ``python -m replica replicate DB file://REPLICA`` running;
* ``litestream``: ``litestream replicate DB file://REPLICA`` running;

both replicators with default settings, each started in its own process group and
given its first sync (its first L0 file on the replica) plus 1 s before the writer
starts, and stopped with SIGINT afterwards. The setups alternate, ``--rounds`` (3)
times none, ours, litestream, so a drift of the machine's speed hits all three alike.
Reported: each round's commits/s, then per setup the median, and the ratio of that
median to the unreplicated median (1.00 = no overhead); also the replicator's CPU
during the writes (user+sys of its process group, from ``/proc``) as % of one core
(median of the rounds), and how long after the writes the last commit was on the
replica (worst round; rows carry a numbered marker and new L0 files are decoded with
this repository's ``ltx`` decoder, as in ``lag.py``), because a replicator that falls
behind during the writes looks cheap in CPU and light on the writer.

    python bench/writer_overhead.py                # 3 rounds of 3 x 5 s (about a minute)
    python bench/writer_overhead.py --rounds 5 --seconds 10

On a 2-core machine the replicator competes with the writer for the CPUs; that is
part of the overhead being measured, so run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import (
    Incomplete,
    Replicator,
    cleanup_on_sigterm,
    group_usage,
    list_l0,
    marker,
    max_marker,
    median,
    ours_replicate,
    require_litestream,
    wait_for_l0,
)

SETUPS = ("none", "ours", "litestream")


@dataclass
class Run:
    setup: str
    round: int
    commits: int
    seconds: float
    replicator_cpu: float | None = None
    catch_up: float | None = None
    rc: int | None = None
    failure: str = ""

    @property
    def rate(self) -> float:
        return self.commits / self.seconds


def flat_out(db: Path, seconds: float, synchronous: str) -> tuple[int, float]:
    con = sqlite3.connect(db, isolation_level=None, timeout=5.0)
    try:
        con.execute(f"PRAGMA synchronous = {synchronous}")
        n = 0
        pad = "x" * (64 - len(marker(0)))
        t0 = time.monotonic()
        end = t0 + seconds
        while True:
            n += 1
            con.execute("INSERT INTO t (body) VALUES (?)", (marker(n) + pad,))
            now = time.monotonic()
            if now >= end:
                return n, now - t0
    finally:
        con.close()


def catch_up(replica: Path, last: int, timeout: float) -> float | None:
    """Seconds until an L0 file on the replica holds commit ``last`` (None: not within ``timeout``)."""
    t0 = time.monotonic()
    seen: set[str] = set()
    while time.monotonic() - t0 < timeout:
        now = time.monotonic()
        for f in list_l0(replica):
            if f.name in seen:
                continue
            try:
                got = max_marker(replica / "ltx" / "0" / f.name)
            except Incomplete:
                continue
            seen.add(f.name)
            if got is not None and got >= last:
                return now - t0
        time.sleep(0.01)
    return None


def run_one(setup: str, rnd: int, args: argparse.Namespace, litestream: str, work: Path) -> Run:
    root = work / f"{setup}-{rnd}"
    root.mkdir()
    db, replica = root / "w.db", root / "replica"
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode = wal")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    con.commit()
    con.close()
    try:
        if setup == "none":
            time.sleep(1.0)
            n, secs = flat_out(db, args.seconds, args.synchronous)
            return Run(setup, rnd, n, secs)
        url = f"file://{replica}"
        cmd = ours_replicate(str(db), url) if setup == "ours" else [litestream, "replicate", str(db), url]
        rep = Replicator(setup, cmd, root / "replicator.log")
        with rep:
            if wait_for_l0(replica, rep, 60.0) is None:
                run = Run(setup, rnd, 0, 1.0, failure="no first sync within 60 s")
            else:
                time.sleep(1.0)
                u0 = group_usage(rep.pid)
                n, secs = flat_out(db, args.seconds, args.synchronous)
                u1 = group_usage(rep.pid)
                run = Run(setup, rnd, n, secs, replicator_cpu=u1.cpu - u0.cpu)
                run.catch_up = catch_up(replica, n, args.catch_up_timeout)
        run.rc = rep.returncode
        if run.failure or run.rc != 0:
            print(f"{setup} round {rnd}: exit code {run.rc}; log tail:\n{rep.log_tail()}", file=sys.stderr)
        return run
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of none/ours/litestream (default 3)")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each flat-out run (default 5)")
    ap.add_argument(
        "--synchronous",
        choices=("OFF", "NORMAL", "FULL"),
        default="NORMAL",
        help="the writer's PRAGMA synchronous (default NORMAL)",
    )
    ap.add_argument(
        "--catch-up-timeout",
        type=float,
        default=30.0,
        help="how long to wait for the last commit on the replica after a run (default 30 s)",
    )
    ap.add_argument("--litestream", help="the litestream binary (default: beside python, else PATH)")
    args = ap.parse_args()
    cleanup_on_sigterm()
    litestream = require_litestream(args.litestream)
    if litestream is None:
        return 2
    work = Path(tempfile.mkdtemp(prefix="writer-overhead-"))
    runs: list[Run] = []
    try:
        for rnd in range(1, args.rounds + 1):
            for setup in SETUPS:
                r = run_one(setup, rnd, args, litestream, work)
                runs.append(r)
                cpu = "" if r.replicator_cpu is None else f", replicator CPU {r.replicator_cpu:.2f} s"
                if r.replicator_cpu is not None:
                    cpu += ", caught up " + ("never" if r.catch_up is None else f"{r.catch_up:.2f} s after")
                print(f"round {rnd} {setup:<11} {r.rate:>10.0f} commits/s{cpu}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nwriter overhead: one single-row INSERT per transaction, flat out, {args.seconds:g} s per run, "
        f"synchronous={args.synchronous}, {args.rounds} rounds of none/ours/litestream\n"
    )
    print(f"{'setup':<12}" + "".join(f"{'round ' + str(i):>11}" for i in range(1, args.rounds + 1)), end="")
    print(f"{'median/s':>11}{'vs none':>9}{'repl. CPU %':>13}{'caught up s':>13}")
    base = median([r.rate for r in runs if r.setup == "none"])
    for setup in SETUPS:
        mine = [r for r in runs if r.setup == setup]
        med = median([r.rate for r in mine if not r.failure])
        cpus = [r.replicator_cpu / r.seconds * 100 for r in mine if r.replicator_cpu is not None]
        cells = "".join(f"{r.rate:>11.0f}" if not r.failure else f"{'failed':>11}" for r in mine)
        cpu = f"{median(cpus):>13.0f}" if cpus else f"{'-':>13}"
        ups = [r.catch_up for r in mine if r.replicator_cpu is not None]
        up = "-" if not ups else ("never" if None in ups else f"{max(u for u in ups if u is not None):.2f}")
        print(f"{setup:<12}{cells}{med:>11.0f}{med / base:>9.2f}{cpu}{up:>13}")
    ours = median([r.rate for r in runs if r.setup == "ours" and not r.failure])
    theirs = median([r.rate for r in runs if r.setup == "litestream" and not r.failure])
    print(f"\nours/litestream commits/s: {ours / theirs:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
