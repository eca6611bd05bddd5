"""Which database file is being replicated, and how to tell that it is no longer there.

The replicator reads a database through descriptors and connections it opened once.
If the file at the database's path is deleted, recreated, renamed over or restored
over, those descriptors keep reading the old file, and nothing in SQLite says so.
An :class:`Identity` names the files by device and inode number (the database file
and its ``-wal`` file) together with the page size; :func:`compare` says what makes
the files seen at the paths now another database than the ones held.

Two identities are compared in practice:

* live, before every sync and again before an L0 file is published: the identity
  of the descriptors held against the files at the paths (:func:`of_descriptors`, :func:`at_paths`);
* at start-up: the identity recorded in the meta directory (:func:`load_record`,
  :func:`write_record`) against the database now. WAL files come and go between runs
  (SQLite deletes the WAL when its last connection closes), so the record holds
  only the database file and its page size.

A field that is unknown on the held side (``wal`` None, ``page_size`` 0) is not
compared. An inode number cannot be reused while a descriptor of the file is open,
so the live comparison cannot be fooled by a file recreated with the same number.
"""

from __future__ import annotations

import enum
import json
import os
import re
from typing import Any

import attrs

from ltx.fsutil import atomic_write
from replica.errors import ReplicaError

RECORD_NAME = "identity.json"
"""The record's file name in the meta directory."""

_RECORD_TEMP = re.compile(re.escape(RECORD_NAME) + r"\.[0-9a-f]{8}\.tmp")
"""Temporary names :func:`ltx.fsutil.atomic_write` uses while writing the record."""

_RECORD_VERSION = 1


class IdentityRecordError(ReplicaError):
    """The identity record in the meta directory cannot be read or is not one we wrote."""


@attrs.frozen
class FileId:
    """A file as the kernel knows it: device and inode number."""

    dev: int
    ino: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileId:
        return cls(st.st_dev, st.st_ino)

    def __str__(self) -> str:
        return f"{self.dev}:{self.ino}"


class ChangeKind(enum.Enum):
    DELETED = "deleted"
    """No database file at the path."""
    REPLACED = "replaced"
    """Another file at the path: recreated, renamed over, restored over."""
    PAGE_SIZE = "page size"
    """The same file with another page size (a VACUUM in rollback mode)."""
    WAL_REPLACED = "wal replaced"
    """The database file is the same, the ``-wal`` file at its path is not the one held."""


@attrs.frozen
class Change:
    """Why the files at the paths are not the database held; :attr:`detail` is for logs."""

    kind: ChangeKind
    detail: str

    def __str__(self) -> str:
        return self.detail


@attrs.frozen
class Identity:
    """The database file, its WAL file and its page size; None or 0 where unknown or absent."""

    db: FileId | None
    wal: FileId | None = None
    page_size: int = 0


def compare(held: Identity, seen: Identity) -> Change | None:
    """What makes ``seen`` another database than ``held``; None when it is the same one.

    Checked in this order: the database file is gone, it is another file, its page
    size differs, its WAL file is another one or gone. Fields unknown in ``held`` are
    not compared, nor is a page size unknown in ``seen``.
    """
    if seen.db is None:
        return Change(ChangeKind.DELETED, "database file deleted")
    if held.db is not None and seen.db != held.db:
        return Change(ChangeKind.REPLACED, f"database file replaced (file {held.db} is now {seen.db})")
    if held.page_size and seen.page_size and held.page_size != seen.page_size:
        return Change(ChangeKind.PAGE_SIZE, f"page size changed from {held.page_size} to {seen.page_size}")
    if held.wal is not None and seen.wal != held.wal:
        what = "deleted" if seen.wal is None else f"replaced (file {held.wal} is now {seen.wal})"
        return Change(ChangeKind.WAL_REPLACED, f"wal file {what}")
    return None


# -- reading identities -------------------------------------------------------------------


def _file_id(path: str) -> FileId | None:
    try:
        return FileId.of(os.stat(path))
    except FileNotFoundError:
        return None


def at_paths(db_path: str, page_size: int = 0) -> Identity:
    """The files at ``db_path`` and ``db_path + "-wal"`` now (``page_size`` as the caller knows it)."""
    return Identity(_file_id(db_path), _file_id(db_path + "-wal"), page_size)


def of_descriptors(db_fd: int, wal_fd: int, page_size: int) -> Identity:
    """The files behind the descriptors the replicator reads."""
    return Identity(FileId.of(os.fstat(db_fd)), FileId.of(os.fstat(wal_fd)), page_size)


# -- the record in the meta directory -----------------------------------------------------


def record_path(meta_path: str) -> str:
    return os.path.join(meta_path, RECORD_NAME)


def is_record_temp(name: str) -> bool:
    """Whether ``name`` (in the meta directory) is a leftover of :func:`write_record`."""
    return _RECORD_TEMP.fullmatch(name) is not None


def encode_record(ident: Identity) -> bytes:
    """The stored form: the database file and the page size (never the WAL)."""
    if ident.db is None:
        raise ValueError("an identity without a database file cannot be recorded")
    doc = {"version": _RECORD_VERSION, "dev": ident.db.dev, "ino": ident.db.ino, "page_size": ident.page_size}
    return json.dumps(doc, sort_keys=True).encode() + b"\n"


def decode_record(raw: bytes, *, path: str | None = None) -> Identity:
    """Parse :func:`encode_record`'s output; :class:`IdentityRecordError` for anything else."""
    try:
        doc: Any = json.loads(raw)
        if doc["version"] != _RECORD_VERSION:
            raise IdentityRecordError(f"unknown identity record version {doc['version']!r}", path=path)
        fields = (doc["dev"], doc["ino"], doc["page_size"])
    except (ValueError, KeyError, TypeError) as e:
        raise IdentityRecordError(f"unreadable identity record: {e}", path=path) from None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in fields):
        raise IdentityRecordError("identity record fields must be non-negative integers", path=path)
    return Identity(FileId(fields[0], fields[1]), None, fields[2])


def load_record(meta_path: str) -> Identity | None:
    """The recorded identity; None when there is no record (a first run, or state Litestream left)."""
    path = record_path(meta_path)
    try:
        with open(path, "rb") as f:
            raw = f.read(4096)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise IdentityRecordError(f"cannot read identity record: {e}", path=path) from None
    return decode_record(raw, path=path)


def write_record(meta_path: str, ident: Identity) -> None:
    """Record ``ident`` durably (temporary file, fsync, rename, fsync of the directory)."""
    with atomic_write(record_path(meta_path)) as f:
        f.write(encode_record(ident))
