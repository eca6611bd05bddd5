"""Package attributes imported from their modules on first use (PEP 562).

A package's ``__init__`` that re-exports names from heavy modules (numpy, the codecs,
storage clients) would load all of them on any import of the package, even of one
light module inside it. :func:`lazy_exports` gives the package a ``__getattr__`` that
imports a name's home module only when the name is first used, and caches the value.
Type checkers see the names through imports under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, homes: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], object]:
    """The ``__getattr__`` for ``package``: ``homes`` maps each exported name to its module."""

    def __getattr__(name: str) -> object:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value
        return value

    return __getattr__
