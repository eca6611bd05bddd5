"""The reference model of Litestream 0.5 replication, and the conformance harness around it.

* :mod:`model.state` (pure): database states as page maps, commits, and what each
  replica position (TXID) and moment must restore to -- :class:`History`.
* :mod:`model.replica` (pure): decoding, shape rules and replay of replica files.
* :mod:`model.sqlite` (pure, in memory): logical fingerprints and integrity checks.
* :mod:`model.app`: the application, a SQLite writer in its own process.
* :mod:`model.stores`, :mod:`model.adapters`, :mod:`model.observe`: the harness's I/O.
* :mod:`model.testing`: the Hypothesis state machines; ``python -m model conformance``.

This module imports only the pure model.
"""

from model.replica import LTXFile, Replayed, apply_file, decode_file, listing_problems, reachable
from model.state import Commit, Compare, DatabaseState, History, ModelError, Sync

__all__ = [
    "Commit",
    "Compare",
    "DatabaseState",
    "History",
    "LTXFile",
    "ModelError",
    "Replayed",
    "Sync",
    "apply_file",
    "decode_file",
    "listing_problems",
    "reachable",
]
