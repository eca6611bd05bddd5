"""Read, write, compact and apply LTX files, byte-compatible with the Go ``ltx`` package.

Modules, one concept each: :mod:`ltx.layout` (byte layouts as data),
:mod:`ltx.header`, :mod:`ltx.page`, :mod:`ltx.index`, :mod:`ltx.trailer`,
:mod:`ltx.checksum`, :mod:`ltx.encoder`, :mod:`ltx.decoder`,
:mod:`ltx.compactor`, :mod:`ltx.database` (SQLite files: snapshot and apply),
:mod:`ltx.fullimage` (which files hold a whole database), :mod:`ltx.snapshot`
(rewriting one as a snapshot), :mod:`ltx.names`, :mod:`ltx.pos`, :mod:`ltx.fileinfo`,
:mod:`ltx.errors`.
"""

from typing import TYPE_CHECKING

from ltx.lazy import lazy_exports

if TYPE_CHECKING:
    from ltx.checksum import crc64, database_checksum, page_checksum
    from ltx.compactor import CompactResult, compact
    from ltx.database import DBInfo, apply_files, encode_db, read_db_info
    from ltx.decoder import Decoder, IndexedFile, read_page, read_page_index
    from ltx.encoder import Encoder
    from ltx.errors import LTXError
    from ltx.fileinfo import FileInfo, is_contiguous
    from ltx.fullimage import is_full_image, is_full_image_file
    from ltx.header import FLAG_NO_CHECKSUM, Header
    from ltx.index import PageIndexEntry
    from ltx.names import SNAPSHOT_LEVEL, format_filename, lock_pgno, parse_filename
    from ltx.page import PageHeader
    from ltx.pos import CHECKSUM_FLAG, TXID, Checksum, Pos
    from ltx.snapshot import rewrite_as_snapshot
    from ltx.trailer import Trailer

__version__ = "0.1.0"

# Importing ``ltx`` (or a light module such as ``ltx.names``) loads nothing else: each
# name below is imported from its module on first use, so a pure module that needs
# file names does not pull in numpy, lz4 or the codecs.
_HOMES = {
    "CHECKSUM_FLAG": "ltx.pos",
    "Checksum": "ltx.pos",
    "CompactResult": "ltx.compactor",
    "DBInfo": "ltx.database",
    "Decoder": "ltx.decoder",
    "Encoder": "ltx.encoder",
    "FLAG_NO_CHECKSUM": "ltx.header",
    "FileInfo": "ltx.fileinfo",
    "Header": "ltx.header",
    "IndexedFile": "ltx.decoder",
    "LTXError": "ltx.errors",
    "PageHeader": "ltx.page",
    "PageIndexEntry": "ltx.index",
    "Pos": "ltx.pos",
    "SNAPSHOT_LEVEL": "ltx.names",
    "TXID": "ltx.pos",
    "Trailer": "ltx.trailer",
    "apply_files": "ltx.database",
    "compact": "ltx.compactor",
    "crc64": "ltx.checksum",
    "database_checksum": "ltx.checksum",
    "encode_db": "ltx.database",
    "format_filename": "ltx.names",
    "is_contiguous": "ltx.fileinfo",
    "is_full_image": "ltx.fullimage",
    "is_full_image_file": "ltx.fullimage",
    "lock_pgno": "ltx.names",
    "page_checksum": "ltx.checksum",
    "parse_filename": "ltx.names",
    "read_db_info": "ltx.database",
    "read_page": "ltx.decoder",
    "read_page_index": "ltx.decoder",
    "rewrite_as_snapshot": "ltx.snapshot",
}


__getattr__ = lazy_exports(__name__, _HOMES, globals())


__all__ = [
    "CHECKSUM_FLAG",
    "FLAG_NO_CHECKSUM",
    "SNAPSHOT_LEVEL",
    "TXID",
    "Checksum",
    "CompactResult",
    "DBInfo",
    "Decoder",
    "Encoder",
    "FileInfo",
    "Header",
    "IndexedFile",
    "LTXError",
    "PageHeader",
    "PageIndexEntry",
    "Pos",
    "Trailer",
    "__version__",
    "apply_files",
    "compact",
    "crc64",
    "database_checksum",
    "encode_db",
    "format_filename",
    "is_contiguous",
    "is_full_image",
    "is_full_image_file",
    "lock_pgno",
    "page_checksum",
    "parse_filename",
    "read_db_info",
    "read_page",
    "read_page_index",
    "rewrite_as_snapshot",
]
