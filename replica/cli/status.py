"""``litestream status``: each configured database's local replication state, from local files only."""

from __future__ import annotations

import argparse
import json
import os

from ltx.names import is_filename, parse_filename
from replica import config as cfgmod
from replica.cli.output import print_table, si_bytes
from replica.cli.source import load
from replica.defaults import default_meta_path


def local_state(path: str, meta_path: str) -> tuple[str, str, str]:
    """(status, local txid, wal size) as ``status`` reports them."""
    if not os.path.exists(path):
        return "no database", "-", "-"
    try:
        wal = si_bytes(os.path.getsize(path + "-wal"))
    except FileNotFoundError:
        wal = "0 B"
    except OSError:
        wal = "-"
    try:
        names = [n for n in os.listdir(os.path.join(meta_path, "ltx", "0")) if is_filename(n)]
    except FileNotFoundError:
        names = []
    except OSError:
        return "error", "-", wal
    if not names:
        return "not initialized", "-", wal
    return "ok", f"{max(parse_filename(n)[1] for n in names):016x}", wal


def run(args: argparse.Namespace) -> int:
    """Print the state of every configured database (or only ``DB_PATH``); the exit code."""
    cfg = load(args)
    rows = []
    for d in cfgmod.expand_dir_entries(cfg):
        if args.path and d.path != os.path.abspath(args.path):
            continue
        status, txid, wal = local_state(d.path, d.meta_path or default_meta_path(d.path))
        rows.append({"database": d.path, "status": status, "local_txid": txid, "wal_size": wal})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print_table([["database", "status", "local txid", "wal size"],
                 *[[r["database"], r["status"], r["local_txid"], r["wal_size"]] for r in rows]])  # fmt: skip
    return 0
