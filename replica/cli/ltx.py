"""``litestream ltx`` (formerly ``wal``): list a replica's LTX files, one level or all."""

from __future__ import annotations

import argparse
import json

from ltx.names import SNAPSHOT_LEVEL
from replica.cli.errors import UsageError
from replica.cli.output import iso, print_table
from replica.cli.source import resolve_source


def _levels(level: str) -> list[int]:
    if level == "all":
        return list(range(SNAPSHOT_LEVEL + 1))
    try:
        lv = int(level)
    except ValueError:
        raise UsageError('invalid level: must be 0-9 or "all"') from None
    if not 0 <= lv <= SNAPSHOT_LEVEL:
        raise UsageError("level must be between 0 and 9")
    return [lv]


def run(args: argparse.Namespace) -> int:
    """Print the files of ``-level`` as a table (or JSON); the exit code."""
    if not args.target:
        raise UsageError("database path or replica URL required", "litestream ltx /path/to/db")
    levels = _levels(args.level)
    client, _ = resolve_source(args)
    rows = [f for lv in levels for f in client.list_files(lv)]
    if args.json:
        items = [
            {"level": f.level, "min_txid": f"{f.min_txid:016x}", "max_txid": f"{f.max_txid:016x}",
             "size": f.size, "timestamp": iso(f.created_at)}
            for f in rows
        ]  # fmt: skip
        print(json.dumps(items, indent=2))
        return 0
    table = [["level", "min_txid", "max_txid", "size", "created"]]
    table += [
        [str(f.level), f"{f.min_txid:016x}", f"{f.max_txid:016x}", str(f.size), iso(f.created_at)]
        for f in rows
    ]
    print_table(table)
    return 0
