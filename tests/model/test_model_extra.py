"""The conformance harness names the ``testing`` extra when its dependencies are missing,
and runs from an installed package without the source tree on ``PYTHONPATH``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# A child interpreter in which importing hypothesis fails as if it were not installed.
_BLOCK = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "hypothesis":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Block())
"""


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("module", ["model.testing", "model.conformance"])
def test_importing_the_harness_without_the_extra_names_it(module: str, tmp_path: Path) -> None:
    r = _run(_BLOCK + f"import {module}", tmp_path)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert "MissingExtraError" in last
    assert "pylitestream[testing]" in last and "hypothesis" in last


def test_the_conformance_command_without_the_extra_is_one_line(tmp_path: Path) -> None:
    code = _BLOCK + "import runpy; runpy.run_module('model', run_name='__main__')"
    r = subprocess.run(
        [sys.executable, "-c", code, "conformance", "--impl", "python"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "pylitestream[testing]" in r.stderr


def test_the_pure_model_needs_no_extra(tmp_path: Path) -> None:
    r = _run(_BLOCK + "import model; import model.state, model.replica, model.sqlite; print('ok')", tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
