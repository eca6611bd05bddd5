"""The text of Go's ``*fs.PathError``: ``op path: error`` with the system's lower-case wording.

Litestream reports failed file operations with Go's text (``open /x: no such file or
directory``); Python's :class:`OSError` prints ``[Errno 2] No such file or directory: '/x'``.
"""

from __future__ import annotations

import os


def path_error(op: str, path: str, exc: OSError) -> str:
    """Go's ``PathError.Error()`` for ``exc`` raised by operation ``op`` (``open``, ``lstat``) on ``path``."""
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return f"{op} {path}: {text[:1].lower()}{text[1:]}"
