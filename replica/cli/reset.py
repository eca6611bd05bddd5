"""``litestream reset``: remove a database's local LTX files, so the next sync starts from a snapshot."""

from __future__ import annotations

import argparse
import os
import shutil

from replica import config as cfgmod
from replica.cli.errors import CommandError, UsageError
from replica.cli.source import load
from replica.defaults import default_meta_path


def run(args: argparse.Namespace) -> int:
    """Remove (or, with ``-dry-run``, list) the meta directory's ``ltx`` tree; the exit code."""
    if not args.path:
        raise UsageError("database path required", "litestream reset /path/to/db")
    path = os.path.abspath(args.path)
    meta = default_meta_path(path)
    if args.config:
        for d in cfgmod.expand_dir_entries(load(args)):
            if d.path == path and d.meta_path:
                meta = d.meta_path
    if not os.path.exists(path):
        raise CommandError(f"database does not exist: {path}")
    if not os.path.isdir(meta):
        print(f"No local state to reset for {path}")
        print(f"Meta directory does not exist: {meta}")
        return 0
    ltx_dir = os.path.join(meta, "ltx")
    if args.dry_run:
        print(f"Dry run: local Litestream state would be reset for: {path}")
        print(f"Would remove: {ltx_dir}")
        files = sorted(os.path.join(r, n) for r, _d, ns in os.walk(ltx_dir) for n in ns)
        for f in files:
            print(f"  {f}")
        if not files:
            print("No local LTX files would be removed.")
        print("No files were removed.")
        return 0
    print(f"Resetting local Litestream state for: {path}")
    print(f"Removing: {ltx_dir}")
    shutil.rmtree(ltx_dir, ignore_errors=True)
    print("Reset complete. Next replication sync will create a fresh snapshot.")
    return 0
