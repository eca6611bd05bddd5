"""A database that changes its page size while it is replicated (issue 8, item 4).

The change is made as the issue describes: replicator stopped, ``journal_mode=delete``,
``page_size=8192``, ``VACUUM``, back to WAL, replicator restarted. (It cannot be made
while the replicator runs: its read transaction keeps SQLite from leaving WAL mode,
``database is locked``, as with Litestream.) The restarted replicator writes a full
image of the new size as its first L0 file; from then on:

* every restore plan has one page size, and the latest state restores (the old
  planner built on the 4096-byte snapshot and failed);
* every TXID restores exactly the state that applying the L0 files 1..TXID in order
  gives (the oracle), at 4096 bytes before the change and 8192 after;
* level runs whose inputs span the change (L1 and L2 here) and the level-9 snapshot
  succeed, and their outputs are full images of the new size.

The compactor's rule for such runs is also checked on LTX files made with the encoder.
"""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from ltx.compactor import compact
from ltx.database import apply_files
from ltx.decoder import Decoder
from ltx.errors import CompactionError
from ltx.fileinfo import FileInfo
from ltx.header import FLAG_NO_CHECKSUM, Header
from ltx.layout import HEADER_SIZE
from replica.restore import restore
from replica.restore.plan import PageSizeChangeError, RestoreTarget, plan_restore
from replica.restore.probe import FileFacts, plan_with_probes, read_page_sizes
from replica.storage import ReplicaClient, open_replica_client
from tests.conftest import REPO
from tests.support import litestream
from tests.support.ltxgen import database_bytes, encode, make_page
from tests.support.processes import Target
from tests.support.workload import Replicator, ids, integrity, make_db, start_writer, wait_for

NEVER = "10000h"
"""An interval whose next boundary is (almost surely) not during the test: the level runs only at start-up."""


def _config(path: Path, db: Path, url: str, l1: str, l2: str, snapshot: str) -> Path:
    path.write_text(
        f"levels:\n  - interval: {l1}\n  - interval: {l2}\n"
        f"snapshot:\n  interval: {snapshot}\n"
        f"dbs:\n  - path: {db}\n    monitor-interval: 100ms\n"
        f"    replica:\n      url: '{url}'\n      sync-interval: 100ms\n"
    )
    return path


def _files(client: ReplicaClient, level: int) -> list[FileInfo]:
    return client.list_files(level)


def _top(client: ReplicaClient, level: int) -> int:
    return max((f.max_txid for f in _files(client, level)), default=0)


def _header(client: ReplicaClient, f: FileInfo) -> Header:
    return Header.from_bytes(client.read_file(f.level, f.min_txid, f.max_txid, 0, HEADER_SIZE))


def _pending(client: ReplicaClient, level: int) -> int:
    """How many files of ``level - 1`` reach past the newest file of ``level``."""
    top = _top(client, level)
    return sum(1 for f in _files(client, level - 1) if f.max_txid > top)


class _Rows:
    """Rows written one transaction at a time, each waited for until its L0 file is in the replica."""

    def __init__(self, db: Path, client: ReplicaClient) -> None:
        self.db, self.client, self.last = db, client, 0

    def batch(self, n: int) -> None:
        """``n`` rows, one transaction each, over a second or two (several L0 files)."""
        assert start_writer(self.db, self.last + 1, self.last + n, every=4, pause=0.08).wait(60) == 0
        self.last += n

    def one(self) -> None:
        before = _top(self.client, 0)
        self.last += 1
        assert start_writer(self.db, self.last, self.last, every=0).wait(60) == 0
        wait_for(lambda: _top(self.client, 0) > before, what=f"the L0 file of row {self.last}")

    def settle(self, levels: int) -> None:
        """Until levels 1..``levels`` hold everything below them.

        A level merges its new inputs once there are two or more (a lone one waits), so
        a level left with one is given another by writing rows.
        """
        for _ in range(10):
            wait_for(
                lambda: all(_pending(self.client, lvl) <= 1 for lvl in range(1, levels + 1)),
                what="the levels to merge what they can",
            )
            pending = [_pending(self.client, lvl) for lvl in range(1, levels + 1)]
            if not any(pending):
                return
            # a lone file at level L needs one more from level L-1: 2**(L-1) more L0 files
            for _ in range(2 ** (max(i for i, n in enumerate(pending) if n))):
                self.one()
        raise AssertionError("the levels did not settle")


def _change_page_size(db: Path, size: int) -> None:
    con = sqlite3.connect(db, isolation_level=None)
    try:
        assert con.execute("PRAGMA journal_mode=delete").fetchone()[0] == "delete"
        con.execute(f"PRAGMA page_size={size}")
        con.execute("VACUUM")
        assert con.execute("PRAGMA journal_mode=wal").fetchone()[0] == "wal"
        assert con.execute("PRAGMA page_size").fetchone()[0] == size
    finally:
        con.close()


def _oracle(client: ReplicaClient, top: int, work: Path) -> dict[int, bytes]:
    """The database after each TXID 1..top: the replica's L0 files applied in order."""
    l0 = {f.max_txid: f for f in _files(client, 0)}
    assert sorted(l0) == list(range(1, top + 1)), "every L0 file is still in the replica"
    db = work / "oracle.db"
    out: dict[int, bytes] = {}
    for t in range(1, top + 1):
        f = l0[t]
        path = work / f.name
        path.write_bytes(client.read_file(0, t, t))
        apply_files(str(db), [str(path)])
        out[t] = db.read_bytes()
    return out


def _page_size_of(data: bytes) -> int:
    raw = int.from_bytes(data[16:18], "big")
    return 65536 if raw == 1 else raw


def test_page_size_change_while_stopped(tmp_path: Path, target: Target) -> None:
    db = tmp_path / "app.db"
    make_db(db, page_size=4096)
    client = open_replica_client(target.url)
    log = tmp_path / "replicate.log"

    # 1. Replicate at 4096 bytes with L1, L2 and snapshots running often. Stop with one
    #    L1 file not in L2 and one L0 file not in L1, so that after the change both
    #    levels merge a run that spans it.
    rows = _Rows(db, client)
    cfg = _config(tmp_path / "a.yml", db, target.url, "1s", "1s", "2s")
    rep = Replicator("-config", str(cfg), env=target.env, log=log)
    wait_for(lambda: _top(client, 0) >= 1, what="first L0 file")
    rows.batch(40)
    wait_for(lambda: _files(client, 9), what="a snapshot")
    rows.settle(2)
    assert _files(client, 2)
    rows.one()
    rows.one()
    wait_for(lambda: _pending(client, 1) == 0, what="L1 to merge two L0 files")
    rows.one()
    assert rep.interrupt() == 0
    assert (_pending(client, 1), _pending(client, 2)) == (1, 1)
    old_rows = rows.last
    before = _top(client, 0)
    old_snapshot = max(_files(client, 9), key=lambda f: f.max_txid)
    assert _header(client, old_snapshot).page_size == 4096

    # 2. The change, while stopped, exactly as in the issue.
    _change_page_size(db, 8192)

    # 3. Replicate again.
    cfg = _config(tmp_path / "c.yml", db, target.url, "1s", "2s", "3s")
    rep = Replicator("-config", str(cfg), env=target.env, log=log)
    wait_for(lambda: _top(client, 0) > before, what="the L0 file after the change")
    change = before + 1
    first_new = next(f for f in _files(client, 0) if f.max_txid == change)
    assert _header(client, first_new).page_size == 8192
    rows.batch(40)
    rows.settle(1)
    wait_for(
        lambda: _top(client, 2) >= change and _top(client, 9) == _top(client, 0),
        what="L2 and a snapshot past the change",
    )
    assert rep.interrupt() == 0
    final_rows = rows.last
    text = log.read_text()
    assert "failed" not in text and "ERROR" not in text, text

    # The runs that spanned the change wrote full images of 8192 bytes.
    top = _top(client, 0)
    for level in (1, 2):
        across = [f for f in _files(client, level) if f.min_txid < change <= f.max_txid]
        assert across, f"no L{level} file spans the change at {change}"
        for f in across:
            with client.open_file(f.level, f.min_txid, f.max_txid) as fh:
                dec = Decoder(fh)
                pages = [p for p, _ in dec]
            assert dec.header.page_size == 8192 and pages == list(range(1, dec.header.commit + 1))
    # The newest snapshot is past the change, at the new page size (the final sync at
    # shutdown may add an L0 file after it).
    newest = max(_files(client, 9), key=lambda f: f.max_txid)
    assert newest.max_txid >= change and _header(client, newest).page_size == 8192

    # Every TXID restores what applying the L0 files gives; the latest is the new database.
    # (On S3, to keep the test short: the first, those around the change, and the latest.)
    want = _oracle(client, top, tmp_path)
    every = range(1, top + 1) if target.kind == "file" else sorted({1, change - 1, change, change + 1, top})
    for t in every:
        out = tmp_path / f"ours-{t}.db"
        res = restore(client, out, txid=t)
        assert res.txid == t
        assert out.read_bytes() == want[t], f"txid {t}"
        assert _page_size_of(want[t]) == (4096 if t < change else 8192)
    assert ids(tmp_path / f"ours-{change - 1}.db") == list(range(1, old_rows + 1))
    latest = tmp_path / "latest.db"
    r = subprocess.run(
        [sys.executable, "-m", "replica", "restore", "-o", str(latest), target.url],
        cwd=REPO,
        env=target.env or None,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert latest.read_bytes() == want[top]
    assert ids(latest) == list(range(1, final_rows + 1)) and integrity(latest) == "ok"
    live = sqlite3.connect(db)
    try:
        assert live.execute("PRAGMA page_size").fetchone()[0] == 8192
        assert [r[0] for r in live.execute("SELECT id FROM t ORDER BY id")] == ids(latest)
    finally:
        live.close()

    # `verify -deep` restores every file boundary: healthy across the change
    r = subprocess.run(
        [sys.executable, "-m", "replica", "verify", "-deep", target.url],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=target.env or None,
    )
    assert r.returncode == 0, r.stdout + r.stderr

    # Litestream 0.5.17 on the same replica: its plan starts at the newest snapshot at or
    # before the target and never looks at page sizes. The latest state works (our
    # snapshot after the change is 8192 bytes), and so do TXIDs before the change; a
    # TXID after the change but before that snapshot makes it merge the 4096-byte
    # snapshot with 8192-byte files, which it refuses ("mismatched page sizes").
    ls_latest = tmp_path / "ls-latest.db"
    litestream.restore(target.url, ls_latest)
    assert ls_latest.read_bytes() == want[top]
    ls_old = tmp_path / "ls-old.db"
    litestream.restore(target.url, ls_old, "-txid", f"{change - 1:016x}")
    assert ls_old.read_bytes() == want[change - 1]
    snaps_after = [f.max_txid for f in _files(client, 9) if f.max_txid >= change]
    if min(snaps_after) > change:
        r = litestream.run(
            "restore", "-txid", f"{change:016x}", "-o", str(tmp_path / "ls-new.db"), target.url
        )
        assert r.returncode != 0 and "page size" in r.stderr, r.stderr


# --- the planner and the compactor on files made with the encoder -------------------------


PS_OLD, PS_NEW = 4096, 8192


def _pages(seed: int, page_size: int, pgnos: Sequence[int]) -> dict[int, bytes]:
    return {n: make_page(seed * 1000 + n, page_size, 1) for n in pgnos}


def _ltx(lo: int, hi: int, page_size: int, commit: int, pages: dict[int, bytes]) -> bytes:
    header = Header(
        page_size=page_size,
        commit=commit,
        min_txid=lo,
        max_txid=hi,
        timestamp=1_700_000_000_000 + hi,
        flags=FLAG_NO_CHECKSUM,
    )
    return encode(header, pages)


def _history() -> tuple[list[bytes], dict[int, bytes]]:
    """L0 files 1..5: 4096 bytes up to 2, a full image of 8192 bytes at 3, then changes."""
    files = [
        _ltx(1, 1, PS_OLD, 4, _pages(1, PS_OLD, range(1, 5))),
        _ltx(2, 2, PS_OLD, 5, _pages(2, PS_OLD, [2, 5])),
        _ltx(3, 3, PS_NEW, 3, _pages(3, PS_NEW, range(1, 4))),
        _ltx(4, 4, PS_NEW, 4, _pages(4, PS_NEW, [2, 4])),
        _ltx(5, 5, PS_NEW, 4, _pages(5, PS_NEW, [1])),
    ]
    state: dict[int, bytes] = {}
    for i in (3, 4, 5):
        state.update(_pages(i, PS_NEW, {3: range(1, 4), 4: [2, 4], 5: [1]}[i]))
    return files, state


def _compact(files: list[bytes], **kw: object) -> tuple[Header, bytes]:
    out = io.BytesIO()
    res = compact(out, [io.BytesIO(f) for f in files], **kw)  # type: ignore[arg-type]
    return res.header, out.getvalue()


def _image(data: bytes) -> tuple[Header, bytes]:
    dec = Decoder(io.BytesIO(data))
    pages = dict(dec)
    return dec.header, database_bytes(pages, dec.header.commit, dec.header.page_size)


@pytest.mark.parametrize("lo", [1, 2])
def test_compacting_across_a_change_keeps_the_full_image_and_what_follows(lo: int) -> None:
    files, state = _history()
    h, data = _compact(files[lo - 1 :], flags=FLAG_NO_CHECKSUM)
    assert (h.min_txid, h.max_txid, h.page_size, h.commit) == (lo, 5, PS_NEW, 4)
    assert h.pre_apply_checksum == 0 and h.timestamp == 1_700_000_000_005
    got_header, image = _image(data)
    assert got_header == h
    assert image == database_bytes(state, 4, PS_NEW)


def test_compacting_across_a_change_without_a_full_image_names_the_file() -> None:
    files, _ = _history()
    partial = _ltx(3, 3, PS_NEW, 3, _pages(3, PS_NEW, [1, 3]))  # page 2 missing
    grows = _ltx(4, 4, PS_NEW, 4, _pages(4, PS_NEW, [1, 4]))
    with pytest.raises(CompactionError, match="page size changes from 4096 to 8192") as e:
        _compact([files[1], partial, grows], flags=FLAG_NO_CHECKSUM, names=["a", "b", "c"], levels=[0, 0, 0])
    assert (e.value.path, e.value.level, e.value.txid) == ("b", 0, 3)


def test_compacting_across_a_change_with_checksums_needs_no_checksum_or_txid_1() -> None:
    files, _ = _history()
    with pytest.raises(CompactionError, match="NoChecksum") as e:
        _compact(files[1:], flags=0, levels=[0, 0, 0, 0])
    assert e.value.txid == 3


def test_a_snapshot_from_a_full_image_that_is_not_txid_1() -> None:
    files, state = _history()
    h, data = _compact(files[2:], flags=FLAG_NO_CHECKSUM, as_snapshot=True)
    assert (h.min_txid, h.max_txid, h.page_size) == (1, 5, PS_NEW)
    assert _image(data)[1] == database_bytes(state, 4, PS_NEW)
    with pytest.raises(CompactionError, match="not a full image"):
        _compact(files[3:], flags=FLAG_NO_CHECKSUM, as_snapshot=True)


def _file_replica(folder: Path, files: list[bytes]) -> ReplicaClient:
    """A ``file`` replica holding ``files`` as L0 1..n and a snapshot ``1-2`` of the first two."""
    client = open_replica_client(f"file://{folder}")
    for i, data in enumerate(files, 1):
        client.write_file(0, i, i, data)
    client.write_file(9, 1, 2, _compact(files[:2], flags=FLAG_NO_CHECKSUM)[1])
    return client


def test_planner_and_probes_on_a_replica_with_a_change(tmp_path: Path) -> None:
    """Files in a ``file`` replica: an old-size snapshot, then a change; plans use one size."""
    files, state = _history()
    client = _file_replica(tmp_path / "replica", files)
    listing = {lvl: client.list_files(lvl) for lvl in range(10)}
    # without page sizes (Litestream's rule alone) the plan builds on the old snapshot
    assert [f.level for f in plan_restore(listing).files] == [9, 0, 0, 0]
    facts = FileFacts()
    plan = plan_with_probes(client, listing, RestoreTarget(), facts=facts)
    assert [(f.level, f.min_txid) for f in plan.files] == [(0, 3), (0, 4), (0, 5)]
    assert not plan.litestream_compatible
    assert {facts.page_size(f) for f in plan.files} == {PS_NEW}
    fresh = FileFacts()
    old = plan_with_probes(client, listing, RestoreTarget.at_txid(2), facts=fresh)
    assert [f.level for f in old.files] == [9] and old.litestream_compatible
    # only the files ending at the goal and those of the plan were read
    assert [f.max_txid for f in listing[0] if fresh.page_size(f) is not None] == [2]
    assert len(fresh) == 2
    out = tmp_path / "out.db"
    restore(client, out)
    assert out.read_bytes() == database_bytes(state, 4, PS_NEW)


def test_a_change_without_a_full_image_is_damage_named_at_the_change(tmp_path: Path) -> None:
    files, _ = _history()
    files[2] = _ltx(3, 3, PS_NEW, 3, _pages(3, PS_NEW, [1, 3]))  # page 2 missing
    client = _file_replica(tmp_path / "replica", files)
    listing = {lvl: client.list_files(lvl) for lvl in range(10)}
    with pytest.raises(PageSizeChangeError) as e:
        plan_with_probes(client, listing, RestoreTarget())
    assert (e.value.level, e.value.txid, e.value.old_size, e.value.new_size) == (0, 3, PS_OLD, PS_NEW)
    assert "changes from 4096 to 8192 bytes at L0 0000000000000003-0000000000000003.ltx" in str(e.value)
    # the states before the change still restore
    assert plan_with_probes(client, listing, RestoreTarget.at_txid(2)).txid == 2
    facts = FileFacts()
    read_page_sizes(client, facts, listing[9])
    assert facts.page_size(listing[9][0]) == PS_OLD
