"""Go's ``path.Clean`` and ``path.Join``: slash-separated paths cleaned the way Litestream's are.

Litestream builds meta directories, replica keys and ``dir:`` paths with Go's ``path``
package. Python's nearest equivalents differ in what users see: :func:`posixpath.normpath`
keeps a leading ``//`` (POSIX leaves its meaning open) where ``path.Clean`` gives ``/``,
and :func:`posixpath.join` keeps empty parts and restarts at an absolute one, where
``path.Join`` drops empty parts, concatenates the rest, and gives ``""`` when all are
empty. Pure: no I/O.
"""

from __future__ import annotations

import posixpath


def go_clean(p: str) -> str:
    """Go's ``path.Clean``: lexical cleanup, ``""`` becomes ``"."``, no trailing slash."""
    if p == "":
        return "."
    out = posixpath.normpath(p)
    if out.startswith("//"):
        out = "/" + out.lstrip("/")
    return out


def go_join(*parts: str) -> str:
    """Go's ``path.Join``: join the non-empty parts with ``/`` and clean; ``""`` if all empty."""
    kept = [p for p in parts if p]
    if not kept:
        return ""
    return go_clean("/".join(kept))
