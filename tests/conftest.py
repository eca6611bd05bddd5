"""Shared test configuration: Hypothesis profiles, the golden vectors, and the suites' markers.

The tests are laid out by what they test: ``tests/ltx``, ``tests/replica`` and
``tests/model`` hold a package's unit and property tests (module ``replica/wal.py`` is
tested in ``tests/replica/test_wal.py``), ``tests/test_*.py`` the project-wide rules;
``tests/integration`` runs real processes and servers, ``tests/interop`` checks both ways
with the real ``litestream`` binary, ``tests/conformance`` runs the model's state machines
against implementations. Each test gets its suite's marker (``unit``, ``integration``,
``interop``, ``conformance``), so ``pytest -m unit`` runs the fast part alone.
"""

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

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SUITES = {"integration": "integration", "interop": "interop", "conformance": "conformance"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its suite, from the folder it lives in."""
    for item in items:
        rel = Path(item.path).resolve().relative_to(TESTS)
        suite = SUITES.get(rel.parts[0], "unit") if len(rel.parts) > 1 else "unit"
        item.add_marker(getattr(pytest.mark, suite))


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
