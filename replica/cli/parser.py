"""The command line's shape as data: every subcommand, its flags and their help texts.

Flags are spelled the Go ``flag`` way: ``-name`` and ``--name`` both work, and every
flag comes before the positional arguments. :data:`COMMANDS` is the table;
:func:`build_parser` turns it into an ``argparse`` parser whose errors are raised as
:class:`~replica.cli.errors.UsageError` instead of exiting.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any, Final, NoReturn

import attrs

from replica.cli.errors import UsageError
from replica.defaults import DEFAULT_RESTORE_PARALLELISM

Run = Callable[[argparse.Namespace], int]
"""A subcommand's implementation: the parsed arguments in, the exit code out."""


@attrs.frozen
class Flag:
    """One ``-name`` flag; ``options`` are ``add_argument``'s keywords (``action``, ``type``, ``default``)."""

    name: str
    help: str
    options: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Positional:
    """The positional argument(s) of a subcommand, stored as ``dest``."""

    dest: str
    metavar: str | None
    nargs: str = "?"
    help: str | None = None


@attrs.frozen
class Command:
    """One subcommand: its name, help line, flags and positional arguments.

    ``config`` adds the ``-config`` and ``-no-expand-env`` flags every configured
    command shares.
    """

    name: str
    help: str
    flags: tuple[Flag, ...] = ()
    positional: Positional | None = None
    aliases: tuple[str, ...] = ()
    config: bool = True


def _switch(name: str, help: str) -> Flag:
    return Flag(name, help, {"action": "store_true"})


def _value(name: str, help: str, default: Any = None, **options: Any) -> Flag:
    return Flag(name, help, {"default": default, **options})


CONFIG_FLAGS: Final = (
    _value("config", "configuration file"),
    _switch("no-expand-env", "do not expand $VARIABLES in the configuration"),
)
"""The flags of every command that can read a configuration file."""

_TARGET: Final = Positional("target", "DB_PATH|REPLICA_URL")
_JSON: Final = _switch("json", "print JSON")

COMMANDS: Final = (
    Command(
        "replicate",
        "replicate databases continuously",
        (
            _value("exec", "run this command as a child and stop when it exits"),
            _switch("once", "sync every database once, then exit"),
            _switch("force-snapshot", "with -once: also write a level-9 snapshot"),
            _switch("enforce-retention", "with -once: also apply retention"),
            _value("log-level", "trace, debug, info, warn or error"),
        ),
        Positional("positional", "DB_PATH [REPLICA_URL]", nargs="*"),
    ),
    Command(
        "restore",
        "restore a database from its replica",
        (
            _value("o", "output path"),
            _value("txid", "restore up to and including this TXID (16 hex digits)"),
            _value("timestamp", "restore the state as of this RFC 3339 time"),
            _value("parallelism", "files fetched at once", DEFAULT_RESTORE_PARALLELISM, type=int),
            _switch("if-db-not-exists", "do nothing if the output exists"),
            _switch("if-replica-exists", "exit 0 if there is no backup"),
            _value("integrity-check", "none, quick or full", "none"),
            _switch("force", "overwrite an existing output"),
            _switch("json", "print a JSON summary"),
            _switch("dry-run", "print the plan; write nothing"),
        ),
        _TARGET,
    ),
    Command(
        "ltx",
        "list a replica's LTX files",
        (_value("level", 'level 0-9 or "all"', "0"), _JSON),
        _TARGET,
        aliases=("wal",),
    ),
    Command(
        "databases",
        "list the databases in the configuration",
        (_JSON,),
        Positional("extra", None, nargs="*", help=argparse.SUPPRESS),
    ),
    Command(
        "verify",
        "check that a replica is complete and restorable",
        (
            _switch("deep", "also restore at every file boundary"),
            _switch("json", "print the report as JSON"),
        ),
        _TARGET,
    ),
    Command(
        "status",
        "show local replication state of the configured databases",
        (_JSON,),
        Positional("path", "DB_PATH"),
    ),
    Command(
        "reset",
        "remove a database's local replication state",
        (_switch("dry-run", "show what would be removed"),),
        Positional("path", "DB_PATH"),
    ),
    Command("version", "print the version", config=False),
)
"""Every subcommand, in the order ``help`` lists them."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _add_flag(p: argparse.ArgumentParser, flag: Flag) -> None:
    p.add_argument(
        f"-{flag.name}", f"--{flag.name}", dest=flag.name.replace("-", "_"), help=flag.help, **flag.options
    )


def build_parser(runs: Mapping[str, Run]) -> argparse.ArgumentParser:
    """The ``litestream`` parser for :data:`COMMANDS`; ``runs[name]`` becomes ``args.run``.

    Errors raise :class:`~replica.cli.errors.UsageError`; ``args.command`` is ``None``
    when no subcommand was given.
    """
    p = _Parser(prog="litestream", add_help=True)
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    for cmd in COMMANDS:
        s = sub.add_parser(cmd.name, help=cmd.help, aliases=list(cmd.aliases))
        for flag in (*CONFIG_FLAGS, *cmd.flags) if cmd.config else cmd.flags:
            _add_flag(s, flag)
        if cmd.positional is not None:
            pos = cmd.positional
            extra: dict[str, Any] = {} if pos.help is None else {"help": pos.help}
            s.add_argument(pos.dest, nargs=pos.nargs, metavar=pos.metavar, **extra)
        s.set_defaults(run=runs[cmd.name])
    return p
