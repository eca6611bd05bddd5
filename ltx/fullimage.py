"""The one rule for a full image: an LTX file that holds a whole database by itself.

A file is a full image when its pages are exactly ``1..commit`` less the SQLite lock
page (which is never stored). A restore can start from such a file alone, and the
uploader can publish it as a snapshot. A file whose ``commit`` is 0 describes an
empty database: it is *not* a full image, because there is no page to start a
database from (Litestream never writes a snapshot of zero pages, and a restore that
started from one would produce no file at all).
"""

from __future__ import annotations

import os

from ltx.decoder import IndexedFile, read_page_index


def is_full_image(indexed: IndexedFile) -> bool:
    """Whether a file's page index holds every page ``1..commit`` except the lock page.

    The index is strictly ascending with every page at most ``commit`` (checked by
    :func:`ltx.decoder.read_page_index`), so the right count without the lock page
    means exactly that set.
    """
    h = indexed.header
    if h.commit == 0:
        return False
    lock = h.lock_pgno
    expected = h.commit - (1 if h.commit >= lock else 0)
    return len(indexed.index) == expected and indexed.index.entry(lock) is None


def is_full_image_file(path: str | os.PathLike[str]) -> bool:
    """:func:`is_full_image` for the local LTX file at ``path`` (header, trailer and index read only).

    Raises :class:`~ltx.errors.LTXError` for a damaged file and ``OSError`` for an unreadable one.
    """
    where = os.fspath(path)
    with open(where, "rb") as f:
        return is_full_image(read_page_index(f, path=where))
