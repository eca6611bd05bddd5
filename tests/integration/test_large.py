"""A database larger than 1 GiB (4 KiB pages): the lock page at 1 GiB is skipped and zeroed.

Slow (it writes over 2 GiB): run on demand with ``pytest -m slow``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ltx.checksum import database_checksum
from ltx.names import lock_pgno
from replica.daemon import Replication
from replica.restore import restore
from replica.storage import open_replica_client
from tests.support import litestream
from tests.support.workload import integrity

pytestmark = pytest.mark.slow


def _checksum(path: Path) -> int:
    with path.open("rb") as f:
        return database_checksum(f, 4096)


def test_replicate_and_restore_past_the_lock_page(tmp_path: Path) -> None:
    db = tmp_path / "big.db"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode = wal")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)")
    con.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 290000) "
        "INSERT INTO t(id, body) SELECT i, randomblob(3900) FROM n"
    )
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    assert pages > lock_pgno(4096) + 1000
    url = f"file://{tmp_path / 'replica'}"
    rep = Replication(str(db), open_replica_client(url))
    rep.sync_once()  # a snapshot across the lock page
    con.execute("UPDATE t SET body = randomblob(3900) WHERE id % 5000 = 0")  # pages on both sides
    con.execute("DELETE FROM t WHERE id > 285000")
    rep.sync_once()
    assert rep.stop()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    ours = tmp_path / "ours.db"
    restore(open_replica_client(url), str(ours))
    theirs = tmp_path / "theirs.db"
    litestream.restore(url, theirs)
    expected = _checksum(db)
    assert _checksum(ours) == expected == _checksum(theirs)
    assert ours.read_bytes()[: 4096 * 2] == db.read_bytes()[: 4096 * 2]
    with ours.open("rb") as f:
        f.seek((lock_pgno(4096) - 1) * 4096)
        assert f.read(4096) == bytes(4096)
    assert integrity(ours) == "ok"
