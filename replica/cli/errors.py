"""How a command reports failure: usage errors, and one-line texts for the errors that reach the top.

A command raises :class:`UsageError` for a mistake on its command line; the entry point
prints it as ``Error: <message>`` (and ``Try: <hint>``). The project's own errors, an
``OSError`` or a ``sqlite3.Error`` are printed on one line with the helpers here.
"""

from __future__ import annotations

import sqlite3


class UsageError(Exception):
    """A command line that cannot be run; ``hint`` is an example of a correct one."""

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
