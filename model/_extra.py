"""The ``testing`` extra: the harness's third-party dependencies, checked with one clear error.

The pure model (:mod:`model.state`, :mod:`model.replica`, :mod:`model.sqlite`) needs
nothing beyond the project's own dependencies. The state machines and the conformance
command need Hypothesis, and their S3 store needs moto and boto3; these come with
``pip install 'pylitestream[testing]'``. Importing a module that needs them without
the extra raises :class:`MissingExtraError` naming the extra, not a bare ``ImportError``.
"""

from __future__ import annotations

import importlib.util

from ltx.errors import PyLitestreamError

EXTRA = "testing"
INSTALL = f"pip install 'pylitestream[{EXTRA}]'"


class MissingExtraError(PyLitestreamError, ImportError):
    """A dependency of the ``testing`` extra is not installed."""


def require(*modules: str, what: str = "the conformance harness") -> None:
    """Raise :class:`MissingExtraError` unless every module in ``modules`` can be imported."""
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    if absent:
        names = ", ".join(absent)
        raise MissingExtraError(f"{what} needs the '{EXTRA}' extra ({names} missing): {INSTALL}")


def missing(err: ModuleNotFoundError, what: str) -> MissingExtraError:
    """The error to raise when importing a dependency of the extra failed with ``err``."""
    return MissingExtraError(f"{what} needs the '{EXTRA}' extra ({err.name} missing): {INSTALL}")
