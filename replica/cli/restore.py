"""``litestream restore``: rebuild a database from its replica (or print the plan with ``-dry-run``).

Unlike Litestream, progress is shown when stderr is a terminal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from replica.cli.errors import UsageError
from replica.cli.output import iso, print_table, setup_logging
from replica.cli.source import resolve_source
from replica.storage import ReplicaClient

log = logging.getLogger("replica")


def parse_timestamp(s: str) -> dt.datetime:
    """``-timestamp``: ISO 8601, UTC when no zone is given."""
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            "invalid -timestamp, must specify in ISO 8601 format (e.g. 2000-01-01T00:00:00Z)"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def parse_txid(s: str) -> int:
    """``-txid``: exactly 16 hex digits."""
    if len(s) != 16:
        raise UsageError(f'invalid value "{s}" for flag -txid: invalid txid format')
    try:
        return int(s, 16)
    except ValueError:
        raise UsageError(f'invalid value "{s}" for flag -txid: invalid txid format') from None


def _progress_printer() -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        pct = 100.0 * done / total if total else 100.0
        sys.stderr.write(f"\rrestoring: {done >> 20} / {total >> 20} MiB ({pct:5.1f}%)")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def run(args: argparse.Namespace) -> int:
    """Restore (or plan) as the flags say; the exit code."""
    setup_logging(stderr=args.json)  # with -json, stdout holds only the summary
    if not args.target:
        raise UsageError(
            "database path or replica URL required", "litestream restore -o /path/to/db s3://bucket/prefix"
        )
    txid = parse_txid(args.txid) if args.txid else None
    ts = parse_timestamp(args.timestamp) if args.timestamp else None
    if args.integrity_check not in ("none", "quick", "full"):
        raise UsageError(f"invalid -integrity-check value: {args.integrity_check}")
    if txid is not None and ts is not None:
        raise UsageError("cannot specify index & timestamp to restore")
    client, db_path = resolve_source(args)
    output = args.o or db_path
    if output is None:
        raise UsageError(
            "-o is required when restoring from a replica URL",
            f"litestream restore -o /path/to/db {args.target}",
        )
    from replica import restore as restore_mod  # loaded only for this command

    if args.dry_run:
        plan = restore_mod.calc_restore_plan(client, txid=txid, timestamp=ts, parallelism=args.parallelism)
        _print_plan(args, client, output, plan)
        return 0
    if args.if_db_not_exists and os.path.exists(output):
        log.info("database already exists, skipping")
        return 0

    started = dt.datetime.now(dt.UTC)
    try:
        result = restore_mod.restore(
            client,
            output,
            txid=txid,
            timestamp=ts,
            integrity_check=args.integrity_check,
            force=args.force,
            parallelism=args.parallelism,
            progress=_progress_printer(),
        )
    except restore_mod.TxNotAvailableError:
        if args.if_replica_exists:
            log.info("no matching backups found")
            return 0
        raise
    if args.json:
        took = (dt.datetime.now(dt.UTC) - started).total_seconds()
        summary = {"db_path": output, "replica": client.type, "txid": f"{result.txid:016x}"}
        summary.update({"duration_ms": int(took * 1000), "integrity_check": args.integrity_check})
        print(json.dumps(summary, indent=2))
    return 0


def _print_plan(args: argparse.Namespace, client: ReplicaClient, output: str, plan: Any) -> None:
    files = [
        {"level": f.level, "name": f.name, "min_txid": f"{f.min_txid:016x}", "max_txid": f"{f.max_txid:016x}",
         "size": f.size, "timestamp": iso(f.created_at)}
        for f in plan.files
    ]  # fmt: skip
    lo, hi = f"{plan.files[0].min_txid:016x}", f"{plan.txid:016x}"
    if args.json:
        print(json.dumps({"source": args.target, "target_path": output, "replica": client.type,
                          "min_txid": lo, "max_txid": hi, "files": files}, indent=2))  # fmt: skip
        return
    print("Restore plan:")
    print(f"  source: {args.target}\n  target: {output}\n  replica: {client.type}")
    print(f"  txid range: {lo} - {hi}\n")
    print("Files to fetch:")
    table = [["level", "file", "min_txid", "max_txid", "size", "timestamp"]]
    table += [[str(f["level"]), str(f["name"]), str(f["min_txid"]), str(f["max_txid"]), str(f["size"]),
               str(f["timestamp"])] for f in files]  # fmt: skip
    print_table(table)
