"""Test helpers: databases as page dictionaries, and LTX files built from them."""

from __future__ import annotations

import io
import random

from hypothesis import strategies as st

from ltx.checksum import page_checksum
from ltx.encoder import Encoder
from ltx.header import FLAG_NO_CHECKSUM, Header
from ltx.names import lock_pgno
from ltx.pos import CHECKSUM_FLAG

PAGE_SIZES = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]

Pages = dict[int, bytes]


def make_page(seed: int, page_size: int, kind: int) -> bytes:
    """A deterministic page: 0 zeros, 1 random, 2 mostly zeros with a random stretch, 3 repeated text."""
    rnd = random.Random(seed)
    if kind == 0:
        return bytes(page_size)
    if kind == 1:
        return rnd.randbytes(page_size)
    if kind == 2:
        n = rnd.randrange(1, page_size // 4)
        at = rnd.randrange(0, page_size - n)
        return bytes(at) + rnd.randbytes(n) + bytes(page_size - at - n)
    word = rnd.randbytes(rnd.randrange(1, 12))
    return (word * (page_size // len(word) + 1))[:page_size]


def page_strategy(page_size: int) -> st.SearchStrategy[bytes]:
    return st.builds(make_page, st.integers(0, 2**32), st.just(page_size), st.integers(0, 3))


def db_checksum(pages: Pages, page_size: int) -> int:
    lock = lock_pgno(page_size)
    acc = 0
    for pgno, data in pages.items():
        if pgno != lock:
            acc ^= page_checksum(pgno, data)
    return CHECKSUM_FLAG | acc


def encode(header: Header, pages: Pages, *, legacy: bool = False, post_apply: int | None = None) -> bytes:
    buf = io.BytesIO()
    enc = Encoder(buf, header, legacy_frames=legacy)
    for pgno in sorted(pages):
        enc.write_page(pgno, pages[pgno])
    enc.close(post_apply)
    return buf.getvalue()


def database_bytes(pages: Pages, commit: int, page_size: int) -> bytes:
    return b"".join(pages.get(n, bytes(page_size)) for n in range(1, commit + 1))


@st.composite
def histories(
    draw: st.DrawFn, max_pages: int = 12, max_steps: int = 5
) -> tuple[int, list[tuple[int, Pages]]]:
    """A page size and a list of database states ``(commit, pages)``; each state is the previous
    with some pages rewritten, and the database grown or shrunk."""
    page_size = draw(st.sampled_from(PAGE_SIZES[:5]))
    pst = page_strategy(page_size)
    commit = draw(st.integers(1, max_pages))
    state = {n: draw(pst) for n in range(1, commit + 1)}
    states = [(commit, dict(state))]
    for _ in range(draw(st.integers(1, max_steps))):
        new_commit = draw(st.integers(1, max_pages))
        changed = draw(st.sets(st.integers(1, new_commit), max_size=new_commit))
        for n in range(commit + 1, new_commit + 1):
            changed.add(n)
        state = {n: d for n, d in state.items() if n <= new_commit}
        for n in changed:
            state[n] = draw(pst)
        commit = new_commit
        states.append((commit, dict(state)))
    return page_size, states


def chain_files(
    page_size: int, states: list[tuple[int, Pages]], *, checksums: bool, legacy: bool = False
) -> list[bytes]:
    """One LTX file per state: a snapshot of the first, then the pages that changed."""
    files = []
    prev: Pages = {}
    prev_sum = 0
    for i, (commit, pages) in enumerate(states):
        txid = i + 1
        changed = pages if i == 0 else {n: d for n, d in pages.items() if prev.get(n) != d}
        post = db_checksum(pages, page_size)
        header = Header(
            page_size=page_size,
            commit=commit,
            min_txid=txid,
            max_txid=txid,
            timestamp=1_700_000_000_000 + txid,
            flags=0 if checksums else FLAG_NO_CHECKSUM,
            pre_apply_checksum=prev_sum if (checksums and i) else 0,
        )
        files.append(encode(header, changed, legacy=legacy, post_apply=post if checksums else None))
        prev, prev_sum = pages, post
    return files
