"""Errors of the ``replica`` package, beneath the project's root :class:`ltx.errors.PyLitestreamError`.

Every failure the replicator can detect is a :class:`ReplicaError`. It is not an
:class:`ltx.errors.LTXError` (that one means an LTX file or its use is wrong); both share
the root, so ``except PyLitestreamError`` catches either, and every error carries the
optional location (``path``, ``level``, ``txid``; ``key`` and ``line`` for configuration).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Unpack

from ltx.errors import Location, PyLitestreamError

if TYPE_CHECKING:
    from replica.identity import Change


class ReplicaError(PyLitestreamError):
    """Something about replication, a replica, or the local database and its WAL is wrong."""


class WALError(ReplicaError):
    """A file is not a SQLite WAL we can read (as opposed to a WAL that simply ends early).

    Invalid or torn *frames* are not errors: a WAL reader stops at them. This is raised for
    a header that is not a WAL header at all, or one in a format this implementation does
    not support, and for buffers of the wrong size handed to a parser.
    """


class WALMagicError(WALError):
    """The WAL header magic is neither ``0x377f0682`` nor ``0x377f0683``."""


class WALVersionError(WALError):
    """The WAL header's format version is not ``3007000``."""


class WALPageSizeError(WALError):
    """A WAL header with a valid checksum gives a page size that is not a power of two in 512..65536."""


# --- The live database: replica/monitor.py -------------------------------------------


class DatabaseNotReadyError(ReplicaError):
    """The database file does not exist yet, or cannot be opened in WAL mode."""


class DatabaseReplacedError(DatabaseNotReadyError):
    """The file at the database's path (or its WAL) is not the one being read; :attr:`change` says how."""

    def __init__(self, change: Change, *, path: str) -> None:
        super().__init__(str(change), path=path)
        self.change = change


class SQLiteError(ReplicaError):
    """SQLite failed on the database (for example: it is malformed, or its file was replaced)."""


# --- Storage (replica client) errors: replica/storage/ -----------------------------------


class StorageError(ReplicaError):
    """A replica store operation failed.

    ``path`` names the object (full URL or local path), ``level``/``txid`` the LTX file
    when there is one (``txid`` is the file's min TXID; ``min_txid``/``max_txid`` carry
    both), ``op`` the operation (``list``, ``stat``, ``read``, ``write``, ``delete``,
    ``delete-all``) and ``attempts`` how many tries were made before giving up.
    """

    def __init__(
        self,
        message: str,
        *,
        op: str | None = None,
        min_txid: int | None = None,
        max_txid: int | None = None,
        attempts: int = 1,
        **where: Unpack[Location],
    ) -> None:
        if where.get("txid") is None:
            where["txid"] = min_txid
        super().__init__(f"{op}: {message}" if op else message, **where)
        self.op = op
        self.min_txid = min_txid
        self.max_txid = max_txid
        self.attempts = attempts


class ReplicaURLError(StorageError):
    """A replica URL or its options cannot be parsed or are not supported."""


class StorageBackendMissingError(StorageError):
    """The fsspec implementation for a URL scheme is not installed (e.g. ``gcsfs``)."""


class FileNotFoundInReplicaError(StorageError):
    """The LTX file (or the bucket/container holding it) does not exist in the replica.

    The counterpart of Litestream's ``os.ErrNotExist`` from ``OpenLTXFile``. Never retried.
    """


class StorageAccessDeniedError(StorageError):
    """The store refused the credentials or the operation (HTTP 403, EACCES). Never retried."""


class StorageUnavailableError(StorageError):
    """A transient failure (connection refused/reset, timeout, 5xx, throttling) persisted
    through every retry attempt; ``attempts`` says how many were made."""


class StorageIntegrityError(StorageError):
    """Bytes read back do not match what the store recorded (CRC32C or length mismatch)."""


# --- Replica ownership: replica/ownership.py, replica/storage/client.py -----------------


class OwnershipError(ReplicaError):
    """A second writer: another database, replicator or host writes (or wants) this replica.

    ``replica`` names the replica (its location without a query string); ``path`` the
    object the error is about (the owner object, an LTX file, the database file).
    """

    def __init__(self, message: str, *, replica: str, **where: Unpack[Location]) -> None:
        super().__init__(message, **where)
        self.replica = replica


class ReplicaOwnedError(OwnershipError):
    """The replica's owner record names another database (or host): we refuse to write it.

    ``owner`` is the record found (a :class:`replica.ownership.OwnerRecord`).
    """

    def __init__(self, message: str, *, replica: str, owner: object, path: str | None = None) -> None:
        super().__init__(message, replica=replica, path=path)
        self.owner = owner


class ForeignFileError(OwnershipError):
    """A file we were about to write is already in the replica with other content.

    Someone else wrote that name; it is never overwritten, and the client that noticed
    refuses every further write (see :meth:`replica.storage.ReplicaClient.fence`).
    """


class DatabaseLockedError(OwnershipError):
    """Another replicator process on this host already replicates this database file."""


class FileExistsInReplicaError(StorageError):
    """A create-if-absent write found the name taken (S3 412 ``PreconditionFailed``, ``EEXIST``).

    :meth:`replica.storage.ReplicaClient.write_file` turns it into success (the same
    file) or :class:`ForeignFileError`; it reaches callers only from the backend hooks.
    """
