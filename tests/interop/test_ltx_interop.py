"""Files we write are restored by the real Litestream 0.5.17 to byte-identical databases."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

from ltx.compactor import compact
from ltx.database import read_db_info
from ltx.encoder import Encoder
from ltx.header import FLAG_NO_CHECKSUM, Header
from ltx.names import format_filename
from tests.ltx.test_cli import run as run_ltx
from tests.support import litestream


def _write(con: sqlite3.Connection, n: int, start: int) -> None:
    con.executemany("INSERT INTO t(body) VALUES (?)", ((f"row {start + i} " * 30,) for i in range(n)))
    con.commit()


def _pages(path: Path) -> tuple[int, list[bytes]]:
    data = path.read_bytes()
    with path.open("rb") as f:
        info = read_db_info(f, len(data))
    ps = info.page_size
    return ps, [data[i : i + ps] for i in range(0, info.page_count * ps, ps)]


def _incremental(txid: int, before: list[bytes], after: list[bytes], page_size: int) -> bytes:
    """A NoChecksum incremental file holding the pages that differ between two states."""
    buf = io.BytesIO()
    enc = Encoder(buf, Header(page_size, len(after), txid, txid, timestamp=1_767_225_600_000 + txid,
                              flags=FLAG_NO_CHECKSUM))  # fmt: skip
    for i, page in enumerate(after):
        if i >= len(before) or before[i] != page:
            enc.write_page(i + 1, page)
    enc.close()
    return buf.getvalue()


def _place(root: Path, level: int, lo: int, hi: int, data: bytes) -> None:
    d = root / "ltx" / str(level)
    d.mkdir(parents=True, exist_ok=True)
    (d / format_filename(lo, hi)).write_bytes(data)


def test_litestream_restores_our_encode_db_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "src.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT)")
    _write(con, 3000, 0)
    con.close()
    replica = tmp_path / "replica"
    (replica / "ltx" / "0").mkdir(parents=True)
    r = run_ltx(
        "encode-db", "-no-checksum", "-o", str(replica / "ltx" / "0" / format_filename(1, 1)), str(db)
    )
    assert r.returncode == 0, r.stderr
    out = tmp_path / "restored.db"
    litestream.restore(f"file://{replica}", out)
    assert out.read_bytes() == db.read_bytes()


def test_litestream_restores_our_incremental_chain_and_our_compaction(tmp_path: Path) -> None:
    db = tmp_path / "src.db"
    con = sqlite3.connect(db)  # rollback-journal mode: the file always holds the committed state
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT)")
    _write(con, 200, 0)
    states = [_pages(db)]
    _write(con, 500, 200)  # grows
    states.append(_pages(db))
    con.execute("UPDATE t SET body = 'changed' WHERE id % 7 = 0")
    con.commit()
    states.append(_pages(db))
    con.execute("DELETE FROM t WHERE id > 100")
    con.commit()
    con.execute("VACUUM")  # shrinks
    states.append(_pages(db))
    con.close()
    page_size = states[0][0]
    files = [_incremental(1, [], states[0][1], page_size)]
    for i in range(1, len(states)):
        files.append(_incremental(i + 1, states[i - 1][1], states[i][1], page_size))
    final = b"".join(states[-1][1])
    assert final == db.read_bytes()

    chain = tmp_path / "chain"
    for i, raw in enumerate(files, 1):
        _place(chain, 0, i, i, raw)
    for txid, (_, pages) in enumerate(states, 1):
        out = tmp_path / f"chain-{txid}.db"
        litestream.restore(f"file://{chain}", out, "-txid", f"{txid:016x}")
        assert out.read_bytes() == b"".join(pages), f"restore at txid {txid}"

    compacted = io.BytesIO()
    compact(compacted, [io.BytesIO(f) for f in files])
    one = tmp_path / "compacted"
    _place(one, 1, 1, len(files), compacted.getvalue())
    out = tmp_path / "compacted.db"
    litestream.restore(f"file://{one}", out)
    assert out.read_bytes() == final

    partial = io.BytesIO()
    compact(partial, [io.BytesIO(f) for f in files[1:]])
    mixed = tmp_path / "mixed"
    _place(mixed, 0, 1, 1, files[0])
    _place(mixed, 1, 2, len(files), partial.getvalue())
    out = tmp_path / "mixed.db"
    litestream.restore(f"file://{mixed}", out)
    assert out.read_bytes() == final
