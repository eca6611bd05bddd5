"""Rewriting a full-image LTX file as a snapshot (``min_txid`` 1)."""

from __future__ import annotations

from typing import BinaryIO

import attrs

from ltx.decoder import Decoder
from ltx.encoder import Encoder


def rewrite_as_snapshot(src: BinaryIO, out: BinaryIO) -> None:
    """Copy the full-image LTX file ``src`` to ``out`` as a snapshot: the same pages, ``min_txid`` 1.

    Only the header changes (and the pre-apply checksum, which a snapshot has none
    of), but the file checksum covers the header, so the file is re-encoded. The
    caller makes sure ``src`` is a full image (:func:`ltx.fullimage.is_full_image`).
    Raises :class:`~ltx.errors.LTXError` if ``src`` does not decode.
    """
    dec = Decoder(src)
    enc = Encoder(out, attrs.evolve(dec.header, min_txid=1, pre_apply_checksum=0))
    for pgno, page in dec:
        enc.write_page(pgno, page)
    assert dec.trailer is not None
    enc.close(None if dec.header.no_checksum else dec.trailer.post_apply_checksum)
