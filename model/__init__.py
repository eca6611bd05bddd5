"""The reference model of Litestream 0.5 replication, and the conformance harness around it.

* :mod:`model.state` (pure): database states as page maps, commits, and what each
  replica position (TXID) and moment must restore to -- :class:`History`.
* :mod:`model.replica` (pure): decoding, shape rules and replay of replica files.
* :mod:`model.sqlite` (pure, in memory): logical fingerprints and integrity checks.
* :mod:`model.app`: the application, a SQLite writer in its own process.
* :mod:`model.stores`, :mod:`model.adapters`, :mod:`model.observe`: the harness's I/O.
* :mod:`model.testing`: the Hypothesis state machines; ``python -m model conformance``.

Importing this package loads nothing; each name below comes from its module on first use.
"""

from typing import TYPE_CHECKING

from ltx.lazy import lazy_exports

if TYPE_CHECKING:
    from model.replica import LTXFile, Replayed, apply_file, decode_file, listing_problems, reachable
    from model.state import Commit, Compare, DatabaseState, History, ModelError, Sync

_HOMES = {
    **dict.fromkeys(
        ["LTXFile", "Replayed", "apply_file", "decode_file", "listing_problems", "reachable"], "model.replica"
    ),
    **dict.fromkeys(["Commit", "Compare", "DatabaseState", "History", "ModelError", "Sync"], "model.state"),
}


__getattr__ = lazy_exports(__name__, _HOMES, globals())


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
