"""``replicate DB_PATH REPLICA_URL`` is a one-database configuration: same checks, same messages.

Litestream builds the replica of a command-line URL with the same code as a ``replica:``
entry of a config file, so a URL it cannot use fails before anything starts. Ours, the
binary and ours with the equivalent config file are run on a real database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support import litestream
from tests.support.workload import make_db


def ours(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replica", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [("sftp://backup-host/app", "user required for sftp replica")],
)
def test_command_line_url_is_checked_like_a_config_entry(tmp_path: Path, url: str, message: str) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(f"dbs:\n  - path: {db}\n    replica:\n      url: {url}\n")

    from_args = ours("replicate", "-once", str(db), url)
    from_file = ours("replicate", "-once", "-config", str(cfg))
    theirs = litestream.run("replicate", "-once", str(db), url, timeout=60)

    expected = f"Error: {message}"
    assert (from_args.returncode, from_args.stderr.strip()) == (1, expected), from_args.stderr
    assert (from_file.returncode, from_file.stderr.strip()) == (1, expected), from_file.stderr
    assert theirs.returncode == 1 and theirs.stderr.strip() == expected, theirs.stderr
    assert not any(p.name.endswith("-litestream") for p in tmp_path.iterdir())  # nothing was started
