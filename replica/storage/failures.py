"""Turning a classified storage failure into the typed, located error a caller sees.

Every client operation names its :class:`Target` (operation, location, level, TXIDs);
when the retry loop gives up, :func:`storage_error` builds the
:class:`~replica.errors.StorageError` subclass for the failure's
:class:`~replica.storage.retry.ErrorKind`, carrying that target and the attempt count;
:meth:`Target.error` builds the error for a failure the client finds itself.
"""

from __future__ import annotations

import attrs

from replica.errors import (
    FileNotFoundInReplicaError,
    StorageAccessDeniedError,
    StorageError,
    StorageUnavailableError,
)
from replica.storage.retry import ErrorKind


@attrs.frozen
class Target:
    """What an operation is about, for error messages."""

    op: str
    path: str
    level: int | None = None
    min_txid: int | None = None
    max_txid: int | None = None

    def error(self, message: str, cls: type[StorageError] = StorageError, attempts: int = 1) -> StorageError:
        """A ``cls`` error about this target: its operation, location, level and TXIDs."""
        return cls(
            message,
            path=self.path,
            level=self.level,
            op=self.op,
            min_txid=self.min_txid,
            max_txid=self.max_txid,
            attempts=attempts,
        )


ERROR_TYPES: dict[ErrorKind, type[StorageError]] = {
    ErrorKind.NOT_FOUND: FileNotFoundInReplicaError,
    ErrorKind.ACCESS_DENIED: StorageAccessDeniedError,
    ErrorKind.TRANSIENT: StorageUnavailableError,
    ErrorKind.PERMANENT: StorageError,
}
"""The error type raised for each kind of failure."""


def storage_error(kind: ErrorKind, exc: BaseException, target: Target, attempts: int) -> StorageError:
    """The typed error for a failure ``exc`` of ``kind`` on ``target``, after ``attempts`` tries."""
    detail = str(exc) or type(exc).__name__
    if kind is ErrorKind.NOT_FOUND:
        msg = f"not found: {detail}"
    elif kind is ErrorKind.ACCESS_DENIED:
        msg = f"access denied: {detail}"
    elif kind is ErrorKind.TRANSIENT:
        msg = f"store unavailable after {attempts} attempt(s): {detail}"
    else:
        msg = detail
    return target.error(msg, ERROR_TYPES[kind], attempts)
