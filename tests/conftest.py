"""Shared test configuration: Hypothesis profiles and the location of the golden vectors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "deep", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parent.parent


def _vectors_dir() -> Path:
    env = os.environ.get("LTX_VECTORS")
    if env:
        return Path(env)
    return REPO.parent / "shared" / "vectors"


VECTORS = _vectors_dir()


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The golden vectors written by the Go reference (``../shared/vectors``)."""
    if not (VECTORS / "README.md").exists():
        pytest.fail(f"golden vectors not found at {VECTORS} (set LTX_VECTORS)")
    return VECTORS
