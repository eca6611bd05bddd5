"""Errors of restore: planning, the output path, and the restored image.

All are :class:`RestoreError`, a :class:`replica.errors.ReplicaError` (and so an
:class:`ltx.errors.LTXError`). Errors found while reading the backup files are not
wrapped: a damaged file raises the decoder's own type (for example
:class:`ltx.errors.FileChecksumMismatchError`) located at the replica file, and a
storage failure raises :class:`replica.errors.StorageError`.

Planning errors mirror Litestream's: ``ErrTxNotAvailable`` is
:class:`TxNotAvailableError`, of which :class:`NoBackupError` ("no matching backup
files available") is the special case "nothing to start from"; a chain with a hole
is :class:`NonContiguousError`. A CLI that maps ``ErrTxNotAvailable`` to
``-if-replica-exists`` should catch :class:`TxNotAvailableError`.
"""

from __future__ import annotations

from typing import Unpack

from ltx.errors import Location
from replica.errors import ReplicaError


class RestoreError(ReplicaError):
    """A restore cannot be planned or carried out."""


class RestoreOptionsError(RestoreError):
    """The restore was asked for something contradictory or invalid (both a TXID and a time)."""


class RestorePlanError(RestoreError):
    """No chain of backup files leads to the requested state."""


class TxNotAvailableError(RestorePlanError):
    """The requested state is not in the replica (Litestream's ``ErrTxNotAvailable``).

    For example a TXID past the replica's end, or one that only exists inside a
    compacted file whose own boundaries do not include it.
    """


class NoBackupError(TxNotAvailableError):
    """Nothing to restore from: the replica is empty, or holds no full database image
    (snapshot) at or before the target."""

    def __init__(
        self, message: str = "no matching backup files available", **where: Unpack[Location]
    ) -> None:
        super().__init__(message, **where)


class NonContiguousError(RestorePlanError):
    """The files that would lead to the target leave a gap in the TXID sequence.

    ``have`` is the TXID the chain reaches, ``next_min`` the first TXID of the next
    file (0 when there is none).
    """

    def __init__(self, message: str, *, have: int = 0, next_min: int = 0, **where: Unpack[Location]) -> None:
        super().__init__(message, **where)
        self.have = have
        self.next_min = next_min


class PageSizeChangeError(RestorePlanError):
    """Only a chain across a page-size change reaches the goal: no full image of the new
    page size, at or after the change, starts a plan to it. The database changed its page
    size and the file that should hold all of its pages at the new size is missing or is
    not complete. ``level`` and ``txid`` locate the first file of the new size in that
    chain; ``old_size`` and ``new_size`` are the two page sizes.
    """

    def __init__(
        self, message: str, *, old_size: int = 0, new_size: int = 0, **where: Unpack[Location]
    ) -> None:
        super().__init__(message, **where)
        self.old_size = old_size
        self.new_size = new_size


class OutputExistsError(RestoreError):
    """The output path (or one of its SQLite sidecars) exists and ``force`` was not given,
    or it is a directory, or one of them appeared while the restore ran (then the restored
    file is discarded and what appeared is left untouched)."""


class RestoreOutputError(RestoreError):
    """The output cannot be written: its folder cannot be created, the temporary file
    cannot be created or written (a full disk, a read-only file system, a parent that
    is a file), or the finished file cannot be put in place.

    ``path`` is the output path the user asked for; the message says which operation
    failed on which file and the system's reason; ``errno`` is the OS error number
    when an OS call failed. Nothing is left at the output path.
    """

    def __init__(self, message: str, *, errno: int | None = None, **where: Unpack[Location]) -> None:
        super().__init__(message, **where)
        self.errno = errno


class CorruptBackupError(RestoreError):
    """The backup files disagree with their listing or with each other: a header whose
    TXIDs differ from the file name, mixed page sizes, a file shorter than listed, or
    pages of the database that no file in the plan holds."""


class IntegrityCheckError(RestoreError):
    """SQLite's ``quick_check``/``integrity_check`` of the restored database did not say ``ok``.

    ``results`` holds the (first) rows SQLite returned. The output has been removed.
    """

    def __init__(self, message: str, *, results: tuple[str, ...] = (), **where: Unpack[Location]) -> None:
        super().__init__(message, **where)
        self.results = results
