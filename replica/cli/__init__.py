"""``python -m replica``: the ``litestream`` command line, one module per subcommand.

Spellings follow Litestream 0.5 (Go ``flag``: ``-o`` and ``--o`` both work, flags go
before positional arguments). Errors print one line, ``Error: <message>``, to stderr and
exit 1: the project's own errors name their file, level and TXID; an ``OSError`` or a
``sqlite3.Error`` that reaches the top is printed as ``Error: <path>: <reason>``, never
as a traceback.

Modules: ``parser`` (the table of subcommands and flags), ``entry`` (:func:`main`),
``errors`` (usage errors, one-line texts), ``output`` (tables, times, sizes, logging),
``source`` (a replica from a URL or the config), ``binding`` (config to replications),
and one module per subcommand: ``replicate``, ``restore``, ``ltx``, ``databases``,
``verify``, ``status``, ``reset``, ``version``. Differences from Litestream are listed
in the subcommands' modules.
"""

from __future__ import annotations

from ltx.errors import describe_os_error
from replica.cli.entry import Terminated, main
from replica.cli.errors import UsageError, describe_sqlite_error, one_line
from replica.cli.parser import COMMANDS
from replica.cli.source import client_for, is_url
from replica.cli.version import VERSION

__all__ = [
    "COMMANDS",
    "VERSION",
    "Terminated",
    "UsageError",
    "client_for",
    "describe_os_error",
    "describe_sqlite_error",
    "is_url",
    "main",
    "one_line",
]
