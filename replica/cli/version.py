"""``litestream version``: print this implementation's version."""

from __future__ import annotations

import argparse

from ltx import __version__

VERSION = f"v{__version__}-py"
"""The version ``version`` prints and ``replicate`` logs (``-py`` marks this implementation)."""


def run(_args: argparse.Namespace) -> int:
    """Print :data:`VERSION`."""
    print(VERSION)
    return 0
