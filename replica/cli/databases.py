"""``litestream databases``: list the configured databases and their replica types."""

from __future__ import annotations

import argparse
import json

from replica import config as cfgmod
from replica.cli.errors import UsageError
from replica.cli.output import print_table
from replica.cli.source import load


def run(args: argparse.Namespace) -> int:
    """Print every database of the configuration (``dir:`` entries expanded); the exit code."""
    if args.extra:
        raise UsageError("too many arguments")
    cfg = load(args)
    rows = [(d.path, d.replica.replica_type if d.replica else "") for d in cfgmod.expand_dir_entries(cfg)]
    if args.json:
        print(json.dumps([{"path": p, "replica": t} for p, t in rows], indent=2))
        return 0
    print_table([["path", "replica"], *[[p, t] for p, t in rows]])
    return 0
