"""The format spec and the code declare the same byte layouts."""

from __future__ import annotations

import re

import pytest

from ltx.layout import TABLES, markdown_table
from tests.conftest import REPO

SPEC = REPO / "docs" / "spec" / "ltx.md"


@pytest.mark.parametrize("name", sorted(TABLES))
def test_spec_table_matches_layout_declaration(name: str) -> None:
    text = SPEC.read_text()
    m = re.search(rf"<!-- layout:{name} -->\n(.*?)\n<!-- /layout:{name} -->", text, re.S)
    assert m is not None, f"docs/spec/ltx.md lacks the {name} table"
    assert m.group(1) == markdown_table(TABLES[name]), (
        f"the {name} table in docs/spec/ltx.md disagrees with ltx/layout.py; "
        "regenerate it with: python -m ltx.layout"
    )


def test_every_spec_table_is_declared() -> None:
    names = set(re.findall(r"<!-- layout:([\w-]+) -->", SPEC.read_text()))
    assert names == set(TABLES)
