"""Properties of the encoder, decoder and compactor over random page sizes and page sets."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ltx.compactor import compact
from ltx.database import apply_files
from ltx.decoder import Decoder, read_page, read_page_index
from ltx.encoder import Encoder
from ltx.errors import EncoderError, HeaderError, LTXError, PageOrderError
from ltx.header import FLAG_NO_CHECKSUM, Header
from ltx.index import PageIndex
from ltx.names import lock_pgno
from tests.support.ltxgen import (
    PAGE_SIZES,
    chain_files,
    db_checksum,
    encode,
    histories,
    make_page,
    page_strategy,
)


@st.composite
def ltx_files(draw: st.DrawFn) -> tuple[Header, dict[int, bytes], bool]:
    page_size = draw(st.sampled_from(PAGE_SIZES))
    snapshot = draw(st.booleans())
    no_checksum = draw(st.booleans())
    max_commit = 6 if page_size >= 32768 else 16
    commit = draw(st.integers(1, max_commit))
    if snapshot:
        pgnos = set(range(1, commit + 1))
        lo = 1
    else:
        pgnos = draw(st.sets(st.integers(1, commit), max_size=commit))
        lo = draw(st.integers(2, 2**40))
    hi = lo + draw(st.integers(0, 1000))
    wal_offset = draw(st.sampled_from([0, 32, 4096 + 32]))
    header = Header(
        page_size=page_size,
        commit=commit,
        min_txid=lo,
        max_txid=hi,
        timestamp=draw(st.integers(0, 2**41)),
        flags=FLAG_NO_CHECKSUM if no_checksum else 0,
        pre_apply_checksum=0 if (snapshot or no_checksum) else (1 << 63) | draw(st.integers(1, 2**63 - 1)),
        wal_offset=wal_offset,
        wal_size=draw(st.integers(0, 2**20)) if wal_offset else 0,
        wal_salt1=draw(st.integers(0, 2**32 - 1)) if wal_offset else 0,
        wal_salt2=draw(st.integers(0, 2**32 - 1)) if wal_offset else 0,
        node_id=draw(st.integers(0, 2**64 - 1)),
    )
    pst = page_strategy(page_size)
    pages = {n: draw(pst) for n in sorted(pgnos)}
    return header, pages, draw(st.booleans())


def _post(header: Header, pages: dict[int, bytes]) -> int | None:
    if header.no_checksum or header.is_snapshot:
        return None
    return db_checksum(pages, header.page_size)


@given(ltx_files())
def test_encode_then_decode_is_the_identity(case: tuple[Header, dict[int, bytes], bool]) -> None:
    header, pages, legacy = case
    raw = encode(header, pages, legacy=legacy, post_apply=_post(header, pages))
    dec = Decoder(io.BytesIO(raw))
    assert dec.header == header
    assert dict(dec) == pages
    assert dec.trailer is not None and dec.bytes_read == len(raw)
    if not header.no_checksum:
        assert dec.trailer.post_apply_checksum == db_checksum(pages, header.page_size)
    info = read_page_index(io.BytesIO(raw))
    assert [e.pgno for e in info.index] == sorted(pages)
    for pgno, data in pages.items():
        assert read_page(io.BytesIO(raw), info, pgno) == data


@given(ltx_files(), st.data())
def test_any_single_byte_change_is_rejected_or_reads_identically(
    case: tuple[Header, dict[int, bytes], bool], data: st.DataObject
) -> None:
    """The file checksum covers every byte except the compressed payloads, which it covers
    through their decompressed pages; so a changed byte is either an error or (only inside
    an LZ4 payload, e.g. a match offset into a run of equal bytes) decodes to the same file."""
    header, pages, legacy = case
    raw = bytearray(encode(header, pages, legacy=legacy, post_apply=_post(header, pages)))
    at = data.draw(st.integers(0, len(raw) - 1), label="offset")
    raw[at] ^= data.draw(st.integers(1, 255), label="xor")
    try:
        dec = Decoder(io.BytesIO(bytes(raw)))
        got = dict(dec)
    except LTXError:
        return
    except Exception as e:  # pragma: no cover - reaching this is the failure being tested for
        pytest.fail(f"foreign exception {type(e).__name__}: {e}")
    assert dec.header == header and got == pages, "a changed byte was accepted with different content"


@given(ltx_files(), st.data())
def test_any_truncation_is_rejected(case: tuple[Header, dict[int, bytes], bool], data: st.DataObject) -> None:
    header, pages, legacy = case
    raw = encode(header, pages, legacy=legacy, post_apply=_post(header, pages))
    n = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(LTXError):
        Decoder(io.BytesIO(raw[:n])).verify()


@given(histories(), st.data(), st.booleans(), st.booleans())
def test_compacting_a_chain_equals_applying_it_file_by_file(
    tmp_path_factory: pytest.TempPathFactory,
    hist: tuple[int, list[tuple[int, dict[int, bytes]]]],
    data: st.DataObject,
    checksums: bool,
    legacy: bool,
) -> None:
    page_size, states = hist
    files = chain_files(page_size, states, checksums=checksums, legacy=legacy)
    lo = data.draw(st.integers(1, len(files)), label="lo")
    hi = data.draw(st.integers(lo, len(files)), label="hi")
    out = io.BytesIO()
    res = compact(out, [io.BytesIO(f) for f in files[lo - 1 : hi]])
    assert (res.header.min_txid, res.header.max_txid) == (lo, hi)
    assert res.header.commit == states[hi - 1][0]
    d = tmp_path_factory.mktemp("c")
    paths = []
    for i, raw in enumerate(files, 1):
        (d / f"{i}.ltx").write_bytes(raw)
        paths.append(str(d / f"{i}.ltx"))
    (d / "compact.ltx").write_bytes(out.getvalue())
    apply_files(str(d / "stepwise.db"), paths[:hi])
    apply_files(str(d / "compacted.db"), [*paths[: lo - 1], str(d / "compact.ltx")])
    commit, pages = states[hi - 1]
    expected = b"".join(pages[n] for n in range(1, commit + 1))
    assert (d / "stepwise.db").read_bytes() == expected
    assert (d / "compacted.db").read_bytes() == expected


def test_noncontiguous_inputs_are_refused_unless_allowed() -> None:
    page = make_page(1, 512, 1)
    files = [
        encode(Header(512, 1, 1, 1, flags=FLAG_NO_CHECKSUM), {1: page}),
        encode(Header(512, 1, 3, 3, flags=FLAG_NO_CHECKSUM), {1: page}),
    ]
    with pytest.raises(LTXError, match="not contiguous"):
        compact(io.BytesIO(), [io.BytesIO(f) for f in files])
    res = compact(io.BytesIO(), [io.BytesIO(f) for f in files], allow_noncontiguous=True)
    assert (res.header.min_txid, res.header.max_txid) == (1, 3)


@given(st.sampled_from(PAGE_SIZES), st.data())
def test_the_lock_page_never_appears(page_size: int, data: st.DataObject) -> None:
    lock = lock_pgno(page_size)
    header = Header(page_size, lock + 2, 5, 5, flags=FLAG_NO_CHECKSUM)
    pst = page_strategy(page_size)
    enc = Encoder(io.BytesIO(), header)
    enc.write_page(lock - 1, data.draw(pst))
    with pytest.raises(PageOrderError, match="lock page"):
        enc.write_page(lock, data.draw(pst))
    enc.write_page(lock + 1, data.draw(pst))
    enc.close()
    # A compaction whose inputs straddle the lock page never writes it either.
    pages = {lock - 1: data.draw(pst), lock + 1: data.draw(pst), lock + 2: data.draw(pst)}
    a = encode(header, {lock - 1: pages[lock - 1]})
    b = encode(
        Header(page_size, lock + 2, 6, 6, flags=FLAG_NO_CHECKSUM),
        {lock + 1: pages[lock + 1], lock + 2: pages[lock + 2]},
    )
    out = io.BytesIO()
    compact(out, [io.BytesIO(a), io.BytesIO(b)])
    out.seek(0)
    assert dict(Decoder(out)) == pages


def test_snapshot_encoder_skips_over_the_lock_page_only() -> None:
    page_size = 65536
    lock = lock_pgno(page_size)
    enc = Encoder(io.BytesIO(), Header(page_size, 3, 1, 1, flags=FLAG_NO_CHECKSUM))
    enc.write_page(1, bytes(page_size))
    with pytest.raises(PageOrderError, match="out of sequence"):
        enc.write_page(3, bytes(page_size))
    assert lock > 3


@given(ltx_files())
def test_header_bytes_round_trip(case: tuple[Header, dict[int, bytes], bool]) -> None:
    header = case[0]
    raw = header.to_bytes()
    assert len(raw) == 100 and Header.from_bytes(raw) == header


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(flags=1), "flags"),
        (dict(page_size=1000), "page size"),
        (dict(min_txid=0), "min TXID"),
        (dict(min_txid=5, max_txid=4, pre_apply_checksum=1 << 63 | 1), "before min"),
        (dict(wal_salt1=7), "salts"),
        (dict(wal_size=7), "WAL size"),
        (dict(pre_apply_checksum=1 << 63 | 5), "snapshot"),
        (dict(min_txid=2, max_txid=2), "pre-apply checksum required"),
        (dict(min_txid=2, max_txid=2, pre_apply_checksum=5), "flag bit"),
        (dict(min_txid=2, max_txid=2, flags=FLAG_NO_CHECKSUM, pre_apply_checksum=1 << 63 | 5), "NoChecksum"),
    ],
)
def test_header_rules(kwargs: dict[str, int], message: str) -> None:
    base = dict(page_size=4096, commit=1, min_txid=1, max_txid=1)
    base.update(kwargs)
    with pytest.raises(HeaderError, match=message):
        Header(**base).validate()


def test_encoder_misuse_is_a_typed_error() -> None:
    h = Header(4096, 2, 2, 2, flags=FLAG_NO_CHECKSUM)
    enc = Encoder(io.BytesIO(), h)
    with pytest.raises(EncoderError, match="bytes"):
        enc.write_page(1, b"short")
    with pytest.raises(PageOrderError):
        enc.write_page(3, bytes(4096))
    enc.write_page(2, bytes(4096))
    with pytest.raises(PageOrderError):
        enc.write_page(1, bytes(4096))
    enc.close()
    with pytest.raises(EncoderError):
        enc.close()
    with pytest.raises(EncoderError, match="commit 0"):
        Encoder(io.BytesIO(), Header(4096, 0, 2, 2, flags=FLAG_NO_CHECKSUM)).close()
    with pytest.raises(EncoderError, match="post-apply"):
        Encoder(io.BytesIO(), Header(4096, 1, 2, 2, pre_apply_checksum=1 << 63 | 1)).close()
    with pytest.raises(LTXError, match="snapshot ends"):
        Encoder(io.BytesIO(), Header(4096, 2, 1, 1)).close()


def _uvarint_reference(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


_COLUMN = st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))


@given(
    st.one_of(  # both encoders: plain Python up to 64 entries, numpy beyond
        st.lists(_COLUMN, max_size=64), st.lists(_COLUMN, min_size=65, max_size=150)
    ),
    st.data(),
)
def test_page_index_varints_round_trip(cols: list[tuple[int, int]], data: st.DataObject) -> None:
    pgnos = sorted(data.draw(st.sets(st.integers(1, 2**32 - 1), min_size=len(cols), max_size=len(cols))))
    offsets = [c[0] for c in cols]
    sizes = [c[1] for c in cols]
    idx = PageIndex.from_columns(pgnos, offsets, sizes)
    raw = idx.to_bytes()
    body = b"".join(_uvarint_reference(v) for t in zip(pgnos, offsets, sizes, strict=True) for v in t) + b"\0"
    assert raw == body + len(body).to_bytes(8, "big")
    assert PageIndex.from_bytes(raw) == idx


def test_apply_rejects_a_database_of_the_wrong_state(tmp_path: Path) -> None:
    page_size = 4096
    states = [(2, {1: make_page(1, page_size, 1), 2: make_page(2, page_size, 1)}),
              (2, {1: make_page(3, page_size, 1), 2: make_page(2, page_size, 1)})]  # fmt: skip
    files = chain_files(page_size, states, checksums=True)
    (tmp_path / "2.ltx").write_bytes(files[1])
    db = tmp_path / "db"
    db.write_bytes(make_page(9, page_size, 1) * 2)
    with pytest.raises(LTXError, match="pre-apply"):
        apply_files(str(db), [str(tmp_path / "2.ltx")])
