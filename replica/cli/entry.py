"""The entry point: parse, run one subcommand, and turn every failure into one line and an exit code.

Exit codes: 0 success; 1 for a usage error or a failure (``Error: <message>`` on
stderr, never a traceback); 130 after Ctrl-C; 143 after SIGTERM (which unwinds a
command like Ctrl-C, so what it was writing is cleaned up).
"""

from __future__ import annotations

import signal
import sqlite3
import sys
import threading
from collections.abc import Sequence
from typing import Final

from ltx.errors import PyLitestreamError, describe_os_error
from replica.cli import databases, ltx, replicate, reset, restore, status, verify, version
from replica.cli.errors import UsageError, describe_sqlite_error, one_line
from replica.cli.parser import Run, build_parser

RUNS: Final[dict[str, Run]] = {
    "replicate": replicate.run,
    "restore": restore.run,
    "ltx": ltx.run,
    "databases": databases.run,
    "verify": verify.run,
    "status": status.run,
    "reset": reset.run,
    "version": version.run,
}
"""Each subcommand's implementation, by the name :data:`~replica.cli.parser.COMMANDS` gives it."""


class Terminated(KeyboardInterrupt):
    """SIGTERM: unwinds a command like Ctrl-C, so what it was writing is cleaned up."""


def _terminate(_signum: int, _frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; SIGTERM unwinds it like Ctrl-C.

    Not for ``replicate``: it installs its handlers for both signals together once it
    runs (a final sync, then exit), and until then the default actions stand, so a
    handler seen in place means that the replicator is ready for its signals.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if threading.current_thread() is not threading.main_thread() or args[:1] == ["replicate"]:
        return _main(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(RUNS)
    if not argv:
        parser.print_help(sys.stdout)
        return 1
    if argv[0] == "help":
        parser.print_help(sys.stdout)
        return 0
    if argv[0] == "wal":
        print("Warning: 'wal' command is deprecated, please use 'ltx' instead", file=sys.stderr)
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stdout)
            return 1
        return int(args.run(args))
    except UsageError as e:
        if str(e).startswith("argument command: invalid choice"):
            print(f"litestream {argv[0]}: unknown command", file=sys.stderr)
            return 1
        print(f"Error: {e}", file=sys.stderr)
        if e.hint:
            print(f"Try: {e.hint}", file=sys.stderr)
        return 1
    except PyLitestreamError as e:
        print(f"Error: {one_line(str(e))}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"Error: {one_line(describe_os_error(e))}", file=sys.stderr)
        return 1
    except sqlite3.Error as e:
        print(f"Error: {one_line(describe_sqlite_error(e))}", file=sys.stderr)
        return 1
    except Terminated:
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        return 130
