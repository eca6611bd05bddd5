"""A restore fetches each plan file's 100-byte header once, on ``file://`` and on S3 (moto).

Planning reads a plan file's header to learn its page size (and a page-index probe
reads it when looking for a full image to start from); the fetcher then reads the
whole file. The header bytes read while planning are handed on, never fetched again.
The replica client here counts, per file, every read that touches bytes
``[0, HEADER_SIZE)``; its ``open_file`` gives a buffered :class:`RangedReader`, as a
remote store's does, so that on ``file://`` too every read goes through the counted
``read_file``.
"""

from __future__ import annotations

import collections
import io
import threading
from pathlib import Path

import pytest

import replica.restore.execute as execute
from ltx.header import FLAG_NO_CHECKSUM, Header
from ltx.layout import HEADER_SIZE
from replica.restore import restore
from replica.storage import ReplicaClient, open_replica_client
from replica.storage.ranged import RangedReader
from tests.support.ltxgen import encode
from tests.support.processes import Target

FileKey = tuple[int, int, int]
"""(level, min TXID, max TXID)."""


def counting_client(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[ReplicaClient, collections.Counter[FileKey]]:
    """A client of ``url`` and the count, per file, of its reads that touch the header bytes."""
    client = open_replica_client(url)
    reads: collections.Counter[FileKey] = collections.Counter()
    lock = threading.Lock()
    read_file = client.read_file

    def counted(level: int, min_txid: int, max_txid: int, offset: int = 0, size: int | None = None) -> bytes:
        if offset < HEADER_SIZE and size != 0:
            with lock:
                reads[(level, min_txid, max_txid)] += 1
        return read_file(level, min_txid, max_txid, offset, size)

    def ranged(
        level: int,
        min_txid: int,
        max_txid: int,
        *,
        offset: int = 0,
        size: int | None = None,
        buffer_size: int = 1024 * 1024,
    ) -> io.BufferedReader:
        if size is None:
            size = client.stat_file(level, min_txid, max_txid).size
        reader = io.BufferedReader(RangedReader(client, level, min_txid, max_txid, size), buffer_size)
        reader.seek(offset)
        return reader

    monkeypatch.setattr(client, "read_file", counted)
    monkeypatch.setattr(client, "open_file", ranged)
    return client, reads


def chain_replica(url: str, vectors: Path) -> None:
    """Golden chain files at L0: the snapshot 1-1, then the incrementals 2-2, 3-3 and 4-4 (a VACUUM)."""
    client = open_replica_client(url)
    for p in sorted((vectors / "chain").glob("*.ltx")):
        lo, hi = (int(x, 16) for x in p.stem.split("-"))
        client.write_file(0, lo, hi, p.read_bytes())


def levels_replica(url: str, vectors: Path) -> None:
    """A level-9 snapshot 1-3 (the reference compactor's) and the L0 file 4-4 after it."""
    client = open_replica_client(url)
    client.write_file(
        9, 1, 3, (vectors / "chain" / "compact" / "0000000000000001-0000000000000003.ltx").read_bytes()
    )
    client.write_file(0, 4, 4, (vectors / "chain" / "0000000000000004-0000000000000004.ltx").read_bytes())


def probed_replica(url: str, vectors: Path) -> None:
    """No snapshot: a full image at L0 2-2, then 3-3 and 4-4; plans start at full images found by probing."""
    db2 = (vectors / "dbs" / "chain_db2.db").read_bytes()
    pages = {i + 1: db2[i * 4096 : (i + 1) * 4096] for i in range(len(db2) // 4096)}
    header = Header(4096, len(pages), 2, 2, timestamp=1_767_225_602_000, flags=FLAG_NO_CHECKSUM)
    client = open_replica_client(url)
    client.write_file(0, 2, 2, encode(header, pages))
    for txid in (3, 4):
        name = f"{txid:016x}-{txid:016x}.ltx"
        client.write_file(0, txid, txid, (vectors / "chain" / name).read_bytes())


REPLICAS = {
    # name: (writer, [(target TXID or None for latest, expected plan as (level, min, max))])
    "chain": (
        chain_replica,
        [
            (None, [(0, 1, 1), (0, 2, 2), (0, 3, 3), (0, 4, 4)]),
            (1, [(0, 1, 1)]),
            (2, [(0, 1, 1), (0, 2, 2)]),
            (3, [(0, 1, 1), (0, 2, 2), (0, 3, 3)]),
        ],
    ),
    "levels": (levels_replica, [(None, [(9, 1, 3), (0, 4, 4)]), (3, [(9, 1, 3)])]),
    "probed": (probed_replica, [(None, [(0, 4, 4)]), (3, [(0, 2, 2), (0, 3, 3)])]),
}


@pytest.mark.parametrize("chunks", ["default", "small"])
@pytest.mark.parametrize("replica", sorted(REPLICAS))
def test_each_plan_file_header_is_fetched_once(
    tmp_path: Path,
    vectors: Path,
    target: Target,
    monkeypatch: pytest.MonkeyPatch,
    replica: str,
    chunks: str,
) -> None:
    if chunks == "small":
        # many ranged reads per file (fewer on S3, where each is a request to the server)
        monkeypatch.setattr(execute, "CHUNK_SIZE", 777 if target.kind == "file" else 8192)
    write, cases = REPLICAS[replica]
    write(target.url, vectors)
    for txid, expected in cases:
        client, reads = counting_client(target.url, monkeypatch)
        out = tmp_path / f"{replica}-{txid}.db"
        progress: list[tuple[int, int]] = []
        result = restore(client, out, txid=txid, progress=lambda *p, seen=progress: seen.append(p))
        plan = [(f.level, f.min_txid, f.max_txid) for f in result.files]
        assert plan == expected
        state = result.txid
        assert out.read_bytes() == (vectors / "dbs" / f"chain_db{state}.db").read_bytes()
        assert {f: reads[f] for f in plan} == dict.fromkeys(plan, 1), f"header reads, restore to {txid}"
        assert max(reads.values()) == 1, f"a header fetched twice: {dict(reads)}"
        size = sum(f.size for f in result.files)
        assert result.bytes == size and progress[-1] == (size, size)  # the handed-on headers counted


def test_a_file_replaced_between_planning_and_fetching_is_refused(
    tmp_path: Path, vectors: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The header kept from planning and the body fetched later come from different files
    of one name: the file checksum, computed over every byte, refuses the mix."""
    import attrs

    from ltx.decoder import Decoder
    from ltx.errors import FileChecksumMismatchError

    url = f"file://{tmp_path / 'replica'}"
    vector = (vectors / "chain" / "0000000000000004-0000000000000004.ltx").read_bytes()
    dec = Decoder(io.BytesIO(vector))
    pages = {pgno: bytes(data) for pgno, data in dec}
    post_apply = dec.trailer.post_apply_checksum
    original = encode(dec.header, pages, post_apply=post_apply)
    later = attrs.evolve(dec.header, timestamp=dec.header.timestamp + 1000)
    other = encode(later, pages, post_apply=post_apply)
    assert len(other) == len(original) and other[:HEADER_SIZE] != original[:HEADER_SIZE]
    client = open_replica_client(url)
    for p in sorted((vectors / "chain").glob("*.ltx"))[:3]:
        lo, hi = (int(x, 16) for x in p.stem.split("-"))
        client.write_file(0, lo, hi, p.read_bytes())
    client.write_file(0, 4, 4, original)
    path = tmp_path / "replica" / "ltx" / "0" / "0000000000000004-0000000000000004.ltx"
    assert path.exists()
    client, _ = counting_client(url, monkeypatch)
    read_file = client.read_file

    def replacing(
        level: int, min_txid: int, max_txid: int, offset: int = 0, size: int | None = None
    ) -> bytes:
        data = read_file(level, min_txid, max_txid, offset, size)
        if (level, min_txid, max_txid) == (0, 4, 4) and offset == 0 and path.read_bytes() == original:
            path.chmod(0o644)
            path.write_bytes(other)  # another writer's file of the same name, after planning read its header
        return data

    monkeypatch.setattr(client, "read_file", replacing)
    out = tmp_path / "out.db"
    with pytest.raises(FileChecksumMismatchError) as info:
        restore(client, out)
    assert "0000000000000004-0000000000000004.ltx" in str(info.value)
    assert not out.exists() and list(tmp_path.glob("out.db*")) == []
