"""Database and meta paths as Litestream writes them: ``sqlite://`` stripped, ``~`` expanded, absolute."""

from __future__ import annotations

import os

from replica._go.path import go_clean
from replica.config.errors import ConfigError


def strip_sqlite_prefix(s: str) -> str:
    """Remove a leading ``sqlite3://`` or ``sqlite://`` (connection-string form of a path)."""
    for prefix in ("sqlite3://", "sqlite://"):
        if s.startswith(prefix):
            return s[len(prefix) :]
    return s


def _home_dir() -> str:
    """The current user's home directory as Go's ``os/user.Current`` finds it (passwd first)."""
    try:
        import pwd

        home = pwd.getpwuid(os.getuid()).pw_dir
        if home:
            return home
    except (ImportError, KeyError, OSError):
        pass
    return os.environ.get("HOME", "")


def expand_path(path: str, base_dir: str | None = None) -> str:
    """Litestream's ``expand``: strip a ``sqlite://`` prefix, expand ``~``/``~/``, make absolute.

    Only ``~`` and ``~/...`` are expanded (not ``~user``). Relative paths are resolved
    against ``base_dir`` (default: the current directory, as Litestream does; *not* the
    config file's directory). The result is cleaned like Go's ``filepath.Clean``.
    """
    p = strip_sqlite_prefix(path)
    if p == "~" or p.startswith("~/"):
        home = _home_dir()
        if not home:
            raise ConfigError(f"cannot expand path {p}, no home directory available")
        return go_clean(home) if p == "~" else go_clean(home + "/" + p[2:])
    if p.startswith("/"):
        return go_clean(p)
    return go_clean((base_dir or os.getcwd()) + "/" + p)
