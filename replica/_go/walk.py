"""Go's ``filepath.Walk``, which Litestream uses to discover the databases of a ``dir:`` entry.

:func:`os.walk` differs in what users can observe: Go visits names in lexical order,
``lstat``\\ s everything (a symlink, even to a directory and even as the root, is visited
as a file and never descended into), lists a directory *before* the callback decides to
skip it (so an unreadable directory is an error even when skipped), and reports errors
as Go ``*PathError`` texts.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable

from replica._go.errors import GoError
from replica._go.oserror import path_error
from replica._go.path import go_join


class SkipDir(Exception):
    """Raised by a walk callback: do not descend into this directory (for a file: skip the
    rest of its directory), as returning Go's ``filepath.SkipDir`` does."""


WalkFunc = Callable[[str, os.stat_result | None, GoError | None], None]
"""``fn(path, st, err)``: ``st`` is the ``lstat`` result (``None`` when ``err`` says why it
failed); ``err`` is also set when a directory could not be listed. The callback raises
:class:`SkipDir` to skip, or any other exception to stop the walk with it."""


def walk(root: str, fn: WalkFunc) -> None:
    """Go's ``filepath.Walk(root, fn)``: ``fn`` for ``root`` and everything under it, in lexical order."""
    try:
        try:
            st = os.lstat(root)
        except OSError as e:
            fn(root, None, GoError(path_error("lstat", root, e)))
            return
        _walk(root, st, fn)
    except SkipDir:
        return


def _walk(path: str, st: os.stat_result, fn: WalkFunc) -> None:
    if not stat.S_ISDIR(st.st_mode):
        fn(path, st, None)
        return
    err: GoError | None = None
    names: list[str] = []
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        err = GoError(path_error("open", path, e))
    fn(path, st, err)
    if err is not None:
        return
    for name in names:
        child = go_join(path, name)
        try:
            child_st = os.lstat(child)
        except OSError as e:
            with contextlib.suppress(SkipDir):
                fn(child, None, GoError(path_error("lstat", child, e)))
            continue
        try:
            _walk(child, child_st, fn)
        except SkipDir:
            if not stat.S_ISDIR(child_st.st_mode):
                raise
