"""Every golden vector written by the Go reference decodes exactly as its JSON records."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ltx.checksum import page_checksum
from ltx.compactor import compact
from ltx.database import apply_files, db_checksum_of_path
from ltx.decoder import Decoder, read_page, read_page_index
from ltx.errors import (
    BadMagicError,
    FileChecksumMismatchError,
    HeaderFlagsError,
    LTXError,
    PageError,
    PostApplyChecksumMismatchError,
    PreApplyChecksumMismatchError,
    TruncatedError,
)
from ltx.pos import CHECKSUM_FLAG
from tests.conftest import VECTORS

GOOD = sorted(
    p for p in VECTORS.glob("**/*.ltx") if p.parent.name != "bad" and "bad-snapshot-postapply" not in p.name
)
BAD = sorted(VECTORS.glob("bad/*.ltx")) + sorted(VECTORS.glob("special/bad-snapshot-postapply-*.ltx"))


def _meta(p: Path) -> dict[str, Any]:
    return json.loads(p.with_suffix(".json").read_text())  # type: ignore[no-any-return]


def _id(p: Path) -> str:
    return str(p.relative_to(VECTORS))


def test_vectors_present() -> None:
    assert len(GOOD) >= 25 and len(BAD) >= 8, (len(GOOD), len(BAD))


@pytest.mark.parametrize("path", GOOD, ids=_id)
def test_decodes_to_recorded_fields_pages_and_checksums(path: Path) -> None:
    meta = _meta(path)
    assert meta["decoder_error"] == ""
    with path.open("rb") as f:
        dec = Decoder(f, path=str(path))
        pages = list(dec)
    h, mh = dec.header, meta["header"]
    assert h.to_bytes().hex() == mh["raw_hex"]
    assert (h.flags, h.page_size, h.commit, h.min_txid, h.max_txid) == (
        mh["flags"], mh["page_size"], mh["commit"], mh["min_txid"], mh["max_txid"]
    )  # fmt: skip
    assert (h.timestamp, h.wal_offset, h.wal_size, h.wal_salt1, h.wal_salt2, h.node_id) == (
        mh["timestamp_ms"], mh["wal_offset"], mh["wal_size"], mh["wal_salt1"], mh["wal_salt2"], mh["node_id"]
    )  # fmt: skip
    assert f"{h.pre_apply_checksum:016x}" == mh["pre_apply_checksum"]
    assert (h.is_snapshot, h.no_checksum, h.lock_pgno) == (
        mh["is_snapshot"],
        mh["no_checksum"],
        mh["lock_pgno"],
    )
    recorded = meta["pages"] or []
    assert [p for p, _ in pages] == [r["pgno"] for r in recorded]
    blob = path.with_suffix(".pages").read_bytes() if recorded else b""
    for (pgno, data), r in zip(pages, recorded, strict=True):
        assert hashlib.sha256(data).hexdigest() == r["sha256"]
        assert data == blob[r["pages_file_offset"] : r["pages_file_offset"] + h.page_size]
        assert f"{page_checksum(pgno, data):016x}" == r["page_checksum"]
    assert [(e.pgno, e.offset, e.size) for e in dec.page_index] == [
        (e["pgno"], e["offset"], e["size"]) for e in (meta["page_index"] or [])
    ]
    assert [(e.offset, e.size) for e in dec.page_index] == [
        (r["frame_offset"], r["frame_size"]) for r in recorded
    ]
    assert dec.trailer is not None
    assert f"{dec.trailer.post_apply_checksum:016x}" == meta["post_apply_checksum"]
    assert f"{dec.trailer.file_checksum:016x}" == meta["file_checksum"] == meta["recomputed"]["file_checksum"]
    assert dec.bytes_read == meta["size"] == path.stat().st_size


@pytest.mark.parametrize("path", GOOD, ids=_id)
def test_random_access_reads_every_page(path: Path) -> None:
    meta = _meta(path)
    recorded = meta["pages"] or []
    with path.open("rb") as f:
        info = read_page_index(f, path=str(path))
        assert len(info.index) == len(recorded)
        for r in recorded:
            data = read_page(f, info, r["pgno"])
            assert data is not None and hashlib.sha256(data).hexdigest() == r["sha256"]
        missing = next(n for n in range(1, info.header.commit + 2) if info.index.entry(n) is None)
        assert read_page(f, info, missing) is None
    assert f"{info.trailer.file_checksum:016x}" == meta["file_checksum"]


EXPECTED_BAD = {
    "bad-magic.ltx": BadMagicError,
    "bad-header-flags.ltx": HeaderFlagsError,
    "bad-file-checksum.ltx": FileChecksumMismatchError,
    "bad-payload-byte.ltx": LTXError,
    "bad-page-flags.ltx": PageError,
    "truncated.ltx": TruncatedError,
    "header-only.ltx": TruncatedError,
}


@pytest.mark.parametrize("path", BAD, ids=_id)
def test_bad_vectors_are_rejected_with_a_typed_error(path: Path) -> None:
    meta = _meta(path)
    assert meta["decoder_error"], "the reference rejected this file too"
    expected = EXPECTED_BAD.get(path.name, PostApplyChecksumMismatchError)
    with path.open("rb") as f, pytest.raises(expected) as info:
        Decoder(f, path=str(path)).verify()
    assert str(path) in str(info.value)


def _chain(n: int) -> list[str]:
    return [str(VECTORS / "chain" / f"{i:016x}-{i:016x}.ltx") for i in range(1, n + 1)]


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_applying_the_chain_reproduces_each_database(tmp_path: Path, n: int) -> None:
    out = tmp_path / "db"
    result = apply_files(str(out), _chain(n))
    expected = VECTORS / "dbs" / f"chain_db{n}.db"
    assert out.read_bytes() == expected.read_bytes()
    info = {d["file"]: d for d in json.loads((VECTORS / "dbs" / "dbinfo.json").read_text())}
    assert result is not None and f"{result:016x}" == info[f"dbs/chain_db{n}.db"]["ltx_checksum"]


def test_applying_incrementals_to_an_existing_database_in_place(tmp_path: Path) -> None:
    out = tmp_path / "db"
    shutil.copyfile(VECTORS / "dbs" / "chain_db1.db", out)
    apply_files(str(out), _chain(4)[1:])
    assert out.read_bytes() == (VECTORS / "dbs" / "chain_db4.db").read_bytes()


@pytest.mark.parametrize("name", ["0000000000000001-0000000000000003", "0000000000000001-0000000000000004",
                                  "0000000000000002-0000000000000004"])  # fmt: skip
def test_reference_compactions_apply_to_the_same_database(tmp_path: Path, name: str) -> None:
    lo, hi = (int(x, 16) for x in name.split("-"))
    files = [*_chain(lo - 1), str(VECTORS / "chain" / "compact" / f"{name}.ltx")]
    out = tmp_path / "db"
    apply_files(str(out), files)
    assert out.read_bytes() == (VECTORS / "dbs" / f"chain_db{hi}.db").read_bytes()


@pytest.mark.parametrize("lo,hi", [(1, 3), (1, 4), (2, 4)])
def test_our_compaction_matches_the_reference_compaction(tmp_path: Path, lo: int, hi: int) -> None:
    inputs = [open(p, "rb") for p in _chain(hi)[lo - 1 :]]  # noqa: SIM115
    try:
        buf = io.BytesIO()
        res = compact(buf, inputs)
    finally:
        for f in inputs:
            f.close()
    ref_path = VECTORS / "chain" / "compact" / f"{lo:016x}-{hi:016x}.ltx"
    with ref_path.open("rb") as f:
        ref = Decoder(f)
        ref_pages = list(ref)
    buf.seek(0)
    ours = Decoder(buf)
    assert list(ours) == ref_pages
    assert ours.header == ref.header == res.header
    assert ours.trailer is not None and ref.trailer is not None
    # The file checksums differ legitimately: payload sizes and index offsets are hashed, and
    # they depend on the LZ4 implementation's output.
    assert ours.trailer.post_apply_checksum == ref.trailer.post_apply_checksum


def test_checksum_matches_dbinfo_for_every_database() -> None:
    infos = json.loads((VECTORS / "dbs" / "dbinfo.json").read_text())
    assert len(infos) >= 10
    for d in infos:
        assert f"{db_checksum_of_path(str(VECTORS / d['file'])):016x}" == d["ltx_checksum"], d["file"]


@pytest.mark.parametrize("path", sorted(VECTORS.glob("snapshot/*.ltx")), ids=_id)
def test_snapshots_apply_to_their_source_database(tmp_path: Path, path: Path) -> None:
    out = tmp_path / "db"
    apply_files(str(out), [str(path)])
    assert out.read_bytes() == (VECTORS / "dbs" / f"{path.stem}.db").read_bytes()


def test_legacy_chain_and_mixed_chains_apply(tmp_path: Path) -> None:
    legacy = sorted(str(p) for p in (VECTORS / "legacy-v0.5.1").glob("*.ltx"))
    apply_files(str(tmp_path / "a"), legacy)
    assert (tmp_path / "a").read_bytes() == (VECTORS / "dbs" / "chain_db3.db").read_bytes()
    mixed = [legacy[0], _chain(2)[1], legacy[2], _chain(4)[3]]
    apply_files(str(tmp_path / "b"), mixed)
    assert (tmp_path / "b").read_bytes() == (VECTORS / "dbs" / "chain_db4.db").read_bytes()


def test_wrong_preapply_fails_and_leaves_the_database_untouched(tmp_path: Path) -> None:
    out = tmp_path / "db"
    apply_files(str(out), _chain(1))
    before = out.read_bytes()
    wrong = next((VECTORS / "special").glob("wrong-preapply-*.ltx"))
    with pytest.raises(PreApplyChecksumMismatchError):
        apply_files(str(out), [str(wrong)])
    assert out.read_bytes() == before


def test_a_failed_apply_of_a_new_database_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "db"
    with pytest.raises(FileChecksumMismatchError):
        apply_files(str(out), [_chain(1)[0], str(VECTORS / "bad" / "bad-file-checksum.ltx")])
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_file_never_touches_an_existing_database(tmp_path: Path) -> None:
    out = tmp_path / "db"
    shutil.copyfile(VECTORS / "dbs" / "chain_db1.db", out)
    before = out.read_bytes()
    with pytest.raises(LTXError):
        apply_files(str(out), [str(VECTORS / "bad" / "bad-payload-byte.ltx")])
    assert out.read_bytes() == before


def test_deletion_file_has_the_empty_database_checksum() -> None:
    path = next((VECTORS / "special").glob("delete-commit0-*.ltx"))
    with path.open("rb") as f:
        dec = Decoder(f)
        assert list(dec) == []
    assert dec.header.commit == 0 and dec.trailer is not None
    assert dec.trailer.post_apply_checksum == CHECKSUM_FLAG
