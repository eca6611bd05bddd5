"""Hypothesis, for the state machines: imported once, behind the ``testing`` extra's check.

Every module of the machine imports Hypothesis's names from here, so importing any of
them (or :mod:`model.testing`) without the extra raises
:class:`~model._extra.MissingExtraError` naming it, not a bare ``ImportError``.
"""

from __future__ import annotations

from model._extra import missing

try:
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
except ModuleNotFoundError as e:
    raise missing(e, "model.testing") from e

__all__ = ["RuleBasedStateMachine", "initialize", "invariant", "precondition", "rule", "st"]
