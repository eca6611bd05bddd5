"""Read, write, compact and apply LTX files, byte-compatible with the Go ``ltx`` package.

Modules, one concept each: :mod:`ltx.layout` (byte layouts as data),
:mod:`ltx.header`, :mod:`ltx.page`, :mod:`ltx.index`, :mod:`ltx.trailer`,
:mod:`ltx.checksum`, :mod:`ltx.encoder`, :mod:`ltx.decoder`,
:mod:`ltx.compactor`, :mod:`ltx.database` (SQLite files: snapshot and apply),
:mod:`ltx.names`, :mod:`ltx.pos`, :mod:`ltx.fileinfo`, :mod:`ltx.errors`.
"""

from ltx.checksum import crc64, database_checksum, page_checksum
from ltx.compactor import CompactResult, compact
from ltx.database import DBInfo, apply_files, encode_db, read_db_info
from ltx.decoder import Decoder, IndexedFile, read_page, read_page_index
from ltx.encoder import Encoder
from ltx.errors import LTXError
from ltx.fileinfo import FileInfo, is_contiguous
from ltx.header import FLAG_NO_CHECKSUM, Header
from ltx.index import PageIndexEntry
from ltx.names import format_filename, lock_pgno, parse_filename
from ltx.page import PageHeader
from ltx.pos import CHECKSUM_FLAG, TXID, Checksum, Pos
from ltx.trailer import Trailer

__version__ = "0.1.0"

__all__ = [
    "CHECKSUM_FLAG",
    "FLAG_NO_CHECKSUM",
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
    "lock_pgno",
    "page_checksum",
    "parse_filename",
    "read_db_info",
    "read_page",
    "read_page_index",
]
