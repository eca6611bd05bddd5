"""The error raised by the Go reproductions of :mod:`replica._go`."""

from __future__ import annotations

from replica.errors import ReplicaError


class GoError(ReplicaError, ValueError):
    """A Go function returned an error; ``str(err)`` is that error's ``Error()`` text.

    It is also a :class:`ValueError`, which is what the duration parser has always raised.
    Callers wrap it into an error that names what was being read.
    """
