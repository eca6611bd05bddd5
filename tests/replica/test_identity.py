"""Database identity as a value: what counts as another database, its stored form, and
which task owns which temporary file name in the meta directory."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ltx.names import format_filename
from replica.compaction import TEMP_PREFIX, TEMP_SUFFIX, is_compaction_temp
from replica.identity import (
    RECORD_NAME,
    ChangeKind,
    FileId,
    Identity,
    IdentityRecordError,
    compare,
    decode_record,
    encode_record,
    is_record_temp,
)
from replica.l0 import is_l0_temp

u64 = st.integers(0, 2**64 - 1)
file_ids = st.builds(FileId, u64, u64)
page_sizes = st.sampled_from([512, 1024, 2048, 4096, 8192, 16384, 32768, 65536])
held_ids = st.builds(Identity, file_ids, file_ids, page_sizes)


@given(held_ids)
def test_the_same_files_are_the_same_database(held: Identity) -> None:
    assert compare(held, held) is None
    # What the held side does not know is not compared.
    assert compare(Identity(held.db), Identity(held.db, None, 0)) is None
    assert compare(Identity(held.db, None, 0), held) is None


@given(held_ids, st.one_of(st.none(), file_ids), st.one_of(st.none(), file_ids))
def test_no_database_file_at_the_path_is_a_deletion(held: Identity, wal: FileId | None, _: object) -> None:
    change = compare(held, Identity(None, wal, held.page_size))
    assert change is not None and change.kind is ChangeKind.DELETED


@given(held_ids, file_ids, st.one_of(st.none(), file_ids), page_sizes)
def test_another_database_file_is_a_replacement_whatever_else_matches(
    held: Identity, other: FileId, wal: FileId | None, page_size: int
) -> None:
    if other == held.db:
        return
    change = compare(held, Identity(other, wal, page_size))
    assert change is not None and change.kind is ChangeKind.REPLACED
    assert str(held.db) in change.detail and str(other) in change.detail


@given(held_ids, page_sizes)
def test_the_same_file_with_another_page_size_is_another_database(held: Identity, page_size: int) -> None:
    change = compare(held, Identity(held.db, held.wal, page_size))
    if page_size == held.page_size:
        assert change is None
    else:
        assert change is not None and change.kind is ChangeKind.PAGE_SIZE
        assert f"from {held.page_size} to {page_size}" in change.detail
    # A page size the observer does not know is not a change.
    assert compare(held, Identity(held.db, held.wal, 0)) is None


@given(held_ids, st.one_of(st.none(), file_ids))
def test_another_wal_file_is_a_change(held: Identity, wal: FileId | None) -> None:
    change = compare(held, Identity(held.db, wal, held.page_size))
    if wal == held.wal:
        assert change is None
    else:
        assert change is not None and change.kind is ChangeKind.WAL_REPLACED
    # A record (no WAL) never compares WAL files.
    assert compare(Identity(held.db, None, held.page_size), Identity(held.db, wal, held.page_size)) is None


@given(held_ids)
def test_the_record_keeps_the_database_file_and_page_size(ident: Identity) -> None:
    assert decode_record(encode_record(ident)) == Identity(ident.db, None, ident.page_size)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b'{"version": 2, "dev": 1, "ino": 2, "page_size": 4096}',
        b'{"version": 1, "dev": 1, "ino": 2}',
        b'{"version": 1, "dev": -1, "ino": 2, "page_size": 4096}',
        b'{"version": 1, "dev": "1", "ino": 2, "page_size": 4096}',
        b'{"version": 1, "dev": true, "ino": 2, "page_size": 4096}',
    ],
)
def test_anything_else_is_not_a_record(raw: bytes) -> None:
    with pytest.raises(IdentityRecordError):
        decode_record(raw, path="/meta/identity.json")


def test_an_identity_without_a_database_file_is_not_recorded() -> None:
    with pytest.raises(ValueError):
        encode_record(Identity(None))


txids = st.integers(1, 2**63 - 1)


@given(txids, st.integers(1, 9))
def test_each_task_recognises_only_its_own_temporary_names(txid: int, level: int) -> None:
    """The names each writer stages under (built here as each writer builds them) are
    recognised by that writer's owner alone, so no start-up removes another's file."""
    l0 = format_filename(txid, txid)
    by_owner = {
        "l0": [f"{l0}.{secrets.token_hex(4)}.tmp", f"{l0}.tmp"],  # ltx.fsutil.atomic_write; Litestream
        "record": [f"{RECORD_NAME}.{secrets.token_hex(4)}.tmp"],
        "compaction": [f"{TEMP_PREFIX}L{level}-{secrets.token_hex(4)}{TEMP_SUFFIX}"],
        "upload": [f"{l0}.snapshot.tmp"],  # replica.uploader's staging name
    }
    owners = {"l0": is_l0_temp, "record": is_record_temp, "compaction": is_compaction_temp}
    for owner, names in by_owner.items():
        for name in names:
            claimed = {o for o, mine in owners.items() if mine(name)}
            assert claimed == ({owner} if owner in owners else set()), name
    assert not any(mine(l0) for mine in owners.values())  # a published L0 file is nobody's temp
