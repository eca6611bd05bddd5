"""Durable writes never replace a file they did not create (unless told to)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltx.database import apply_files
from ltx.fsutil import atomic_write
from tests.conftest import VECTORS


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_file_that_appears_while_writing_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "out.db"
    with pytest.raises(FileExistsError), atomic_write(target, replace=False) as f:
        f.write(b"ours")
        target.write_bytes(b"theirs")  # another program creates it meanwhile
    assert target.read_bytes() == b"theirs"
    assert _leftovers(tmp_path) == []


def test_without_a_rival_the_file_is_published(tmp_path: Path) -> None:
    target = tmp_path / "out.db"
    with atomic_write(target, replace=False) as f:
        f.write(b"ours")
    assert target.read_bytes() == b"ours"
    with atomic_write(target) as f:  # the default replaces: for files we own
        f.write(b"again")
    assert target.read_bytes() == b"again"
    assert _leftovers(tmp_path) == []


def test_apply_to_a_new_database_never_replaces_one_that_appeared(tmp_path: Path) -> None:
    """``ltx apply`` builds a new database in a temporary file; if an application created
    the database meanwhile, that database stays and the apply fails."""
    chain = sorted((VECTORS / "chain").glob("*.ltx"))
    db = tmp_path / "app.db"
    rival = b"SQLite format 3\x00" + bytes(4080)

    class Appears:
        def __fspath__(self) -> str:
            db.write_bytes(rival)  # created by someone else as our last file is opened
            return str(chain[-1])

    with pytest.raises(FileExistsError):
        apply_files(str(db), [str(p) for p in chain[:-1]] + [Appears()])  # type: ignore[list-item]
    assert db.read_bytes() == rival
    assert _leftovers(tmp_path) == []
