"""How a command reports failure: command errors, and one-line texts for the errors that reach the top.

A command raises :class:`CommandError` when what it was asked to do cannot be done (the
database named is missing, a child process failed, an upload did not finish) and
:class:`UsageError` for a mistake on its command line; the entry point prints either as
``Error: <message>`` (a usage error also as ``Try: <hint>``). The project's other errors,
an ``OSError`` or a ``sqlite3.Error`` are printed on one line with the helpers here.
"""

from __future__ import annotations

import sqlite3

from ltx.errors import PyLitestreamError


class CommandError(PyLitestreamError):
    """A command cannot do what it was asked; ``path`` names the database or file concerned."""


class UsageError(CommandError):
    """A command line that cannot be run; ``hint`` is an example of a correct one.

    It has no location, so ``str(err)`` is the message alone, as Litestream prints it.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def one_line(message: str) -> str:
    """``message`` with its line breaks folded into spaces: an error is one line on stderr."""
    return " ".join(message.split()) if "\n" in message or "\r" in message else message


def describe_sqlite_error(e: sqlite3.Error) -> str:
    """SQLite's message with its error name (``SQLITE_FULL``...) when Python knows it."""
    name = getattr(e, "sqlite_errorname", None)
    return f"sqlite: {e} ({name})" if name else f"sqlite: {e}"
