"""Which storage failures are worth retrying, and how long to wait between tries.

:func:`classify` sorts any exception raised by fsspec, s3fs/aiobotocore, aiohttp or
the OS into an :class:`ErrorKind`; it looks at the whole ``__cause__``/``__context__``
chain (s3fs wraps botocore errors in ``OSError``) and recognises library types by
name, so it needs none of those optional packages installed. :class:`RetryPolicy`
is the bounded exponential back-off the clients apply to ``TRANSIENT`` failures
only; the other kinds are raised at once.
"""

from __future__ import annotations

import enum
import errno
import random
from collections.abc import Iterator

import attrs


class ErrorKind(enum.Enum):
    """How a storage failure should be treated."""

    NOT_FOUND = "not found"
    ACCESS_DENIED = "access denied"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


_NOT_FOUND_CODES = frozenset(
    {"NoSuchKey", "NotFound", "NoSuchBucket", "404", "BlobNotFound", "ContainerNotFound"}
)
_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "AccountProblem",
        "403",
        "AuthorizationFailure",
        "AuthenticationFailed",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "RequestCanceled",
        "InternalError",
        "ServiceUnavailable",
        "PriorRequestNotComplete",
        "OperationAborted",
        "IDPCommunicationError",
        "EC2ThrottledException",
        "ServerBusy",
        "OperationTimedOut",
        "ConditionalRequestConflict",  # 409: a concurrent conditional write to the key; S3 says retry
    }
)
_TRANSIENT_STATUS = frozenset({408, 425, 429})
# Library exception class names that mean "the connection or the transfer failed".
_TRANSIENT_TYPES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ProxyConnectionError",
        "HTTPClientError",
        "ResponseStreamingError",
        "IncompleteReadError",
        "IncompleteRead",
        "ClientConnectorError",
        "ClientConnectionError",
        "ClientOSError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
        "ClientPayloadError",
        "ContentLengthError",
        "TransferEncodingError",
        "SSHException",
        "RemoteDisconnected",
    }
)
_TRANSIENT_ERRNOS = frozenset(
    {
        errno.EAGAIN,
        errno.EINTR,
        errno.EBUSY,
        errno.ETIMEDOUT,
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
    }
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _service_error(exc: BaseException) -> tuple[str, int] | None:
    """(error code, HTTP status) of a botocore ``ClientError``-like exception."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    err = response.get("Error") or {}
    meta = response.get("ResponseMetadata") or {}
    code = str(err.get("Code") or "")
    try:
        status = int(meta.get("HTTPStatusCode") or 0)
    except (TypeError, ValueError):
        status = 0
    return code, status


def classify(exc: BaseException) -> ErrorKind:
    """Sort a failure into an :class:`ErrorKind` (see the module docstring).

    A service error code/status found anywhere in the chain decides first; then
    connection-type exceptions; then ``FileNotFoundError``/``PermissionError``;
    then transient ``errno`` values. Everything else is ``PERMANENT``.
    """
    chain = list(_chain(exc))
    for e in chain:
        svc = _service_error(e)
        if svc is None:
            continue
        code, status = svc
        if code in _NOT_FOUND_CODES or status == 404:
            return ErrorKind.NOT_FOUND
        if code in _DENIED_CODES or status in (401, 403):
            return ErrorKind.ACCESS_DENIED
        if code in _TRANSIENT_CODES or status in _TRANSIENT_STATUS or status >= 500:
            return ErrorKind.TRANSIENT
        return ErrorKind.PERMANENT
    for e in chain:
        names = {cls.__name__ for cls in type(e).__mro__}
        if names & _TRANSIENT_TYPES:
            return ErrorKind.TRANSIENT
        if isinstance(e, ConnectionError | TimeoutError):
            return ErrorKind.TRANSIENT
    for e in chain:
        if isinstance(e, FileNotFoundError):
            return ErrorKind.NOT_FOUND
        if isinstance(e, PermissionError):
            return ErrorKind.ACCESS_DENIED
        if isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNOS:
            return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT


@attrs.frozen
class RetryPolicy:
    """Bounded exponential back-off for transient failures.

    ``attempts`` is the total number of tries (1 = never retry). The wait before
    try ``n+1`` is ``min(max_delay, initial_delay * multiplier**(n-1))``, scaled by a
    random factor in ``[1 - jitter, 1]`` so that many clients do not retry in step.
    With the defaults the waits are about 0.2, 0.4, 0.8, 1.6, 3.2 s (≈6 s in all).
    """

    attempts: int = attrs.field(default=6, validator=attrs.validators.ge(1))
    initial_delay: float = attrs.field(default=0.2, validator=attrs.validators.ge(0.0))
    max_delay: float = attrs.field(default=5.0, validator=attrs.validators.ge(0.0))
    multiplier: float = attrs.field(default=2.0, validator=attrs.validators.ge(1.0))
    jitter: float = attrs.field(default=0.2, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** max(0, failures - 1))
        if self.jitter == 0.0:
            return base
        r = (rng or random).random()
        return base * (1.0 - self.jitter * r)


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1)
