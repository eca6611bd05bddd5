"""Pure modules stay pure: importing one loads no storage, SQLite or numpy module.

The decisions (what to sync, compact, delete or restore) live in modules that take
facts in and give decisions out; the model and the real replicator share them. Each is
imported here in a fresh interpreter, and the modules it dragged in are checked.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

PURE = [
    "ltx.layout",
    "ltx.names",
    "ltx.pos",
    "ltx.fileinfo",
    "ltx.header",
    "replica.syncplan",
    "replica.defaults",
    "replica._go.path",
    "replica.wal_format",
    "replica.wal",
    "replica.levels",
    "replica.retention",
    "replica.restore.plan",
    "replica.verify.report",
    "replica.verify.checks",
    "replica.identity",
    "model.state",
    "model._operations",
]

FORBIDDEN = (
    "numpy",
    "sqlite3",
    "fsspec",
    "s3fs",
    "botocore",
    "lz4",
    "replica.storage",
    "replica.monitor",
    "replica.restore.execute",
)


def _loaded(module: str) -> list[str]:
    code = (
        "import importlib, json, sys; "
        f"importlib.import_module({module!r}); "
        "print(json.dumps(sorted(sys.modules)))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return list(json.loads(r.stdout))


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_loads_no_io_and_no_numpy(module: str) -> None:
    loaded = _loaded(module)
    bad = sorted({f for f in FORBIDDEN for m in loaded if m == f or m.startswith(f + ".")})
    assert bad == [], f"importing {module} loaded {bad}"
