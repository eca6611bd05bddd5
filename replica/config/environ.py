"""``$NAME`` / ``${NAME}`` expansion of the configuration text, as Litestream does it."""

from __future__ import annotations

import os
from collections.abc import Mapping

from replica._go.expand import go_expand


def expand_env(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Expand environment variables in a config text exactly as Litestream does (Go ``os.Expand``).

    ``$PID`` is the current process id (whatever the environment says); every other name
    is looked up in ``environ`` (default :data:`os.environ`), unset names becoming ``""``.
    """
    return expand_env_text(text, os.environ if environ is None else environ)


def expand_env_text(text: str, env: Mapping[str, str]) -> str:
    """:func:`expand_env` with the environment given."""

    def lookup(name: str) -> str:
        if name == "PID":
            return str(os.getpid())
        return env.get(name, "")

    return go_expand(text, lookup)
