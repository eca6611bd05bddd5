"""Progress of a ``verify`` run: the callback's contract and its terminal rendering."""

from __future__ import annotations

import sys
from collections.abc import Callable

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``; ``phase`` is ``"read"`` (files decoded) or
``"restore"`` (restores done). Called from the verifying thread."""


def stderr_progress() -> Progress | None:
    """A progress line rewritten in place on stderr, or ``None`` when stderr is no terminal."""
    if not sys.stderr.isatty():
        return None

    def show(phase: str, done: int, total: int) -> None:
        verb = "reading files" if phase == "read" else "restoring"
        sys.stderr.write(f"\r{verb}: {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show
