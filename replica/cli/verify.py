"""``litestream verify`` (this implementation's own): check that a replica is complete and restorable."""

from __future__ import annotations

import argparse
import sys

from replica.cli.errors import UsageError
from replica.cli.output import setup_logging


def run(args: argparse.Namespace) -> int:
    """Print the verification report; the exit code is the report's."""
    if not args.target:
        raise UsageError("replica URL required", "litestream verify s3://bucket/prefix")
    from replica import verify as verify_mod  # loaded only for this command

    setup_logging("ERROR", stderr=True)  # the report is the output; retries are not news here
    return int(verify_mod.run(args.target, deep=args.deep, as_json=args.json, out=sys.stdout))
