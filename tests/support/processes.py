"""Fixtures for suites that run real processes and servers (integration, interop, conformance).

A suite's ``conftest.py`` imports the ones it uses; they are not global, so unit tests
never start a server or pay for the process sweep.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.support.s3server import S3Server, running_s3_server, s3_env
from tests.support.workload import kill_leftovers


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    """Writers and replicators a test started never outlive it, even when it fails."""
    yield
    kill_leftovers()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One moto S3 server on 127.0.0.1 for the session; each test takes a new bucket."""
    with running_s3_server() as server:
        yield server


@attrs.frozen
class Target:
    """Where a test replicates to: a URL both we and the ``litestream`` binary understand."""

    kind: str
    url: str
    env: dict[str, str]


@pytest.fixture(params=["file", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Target:
    """A ``file://`` directory, then an S3 bucket on the session's moto server."""
    if request.param == "file":
        return Target("file", f"file://{tmp_path / 'replica'}", {})
    server: S3Server = request.getfixturevalue("s3_server")
    env = s3_env()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    bucket = server.new_bucket()
    url = f"s3://{bucket}/db?endpoint={server.endpoint}&region=us-east-1&force-path-style=true"
    return Target("s3", url, {**{k: v for k, v in os.environ.items()}, **env})
