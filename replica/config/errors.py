"""The one error type of :mod:`replica.config`."""

from __future__ import annotations

from replica.errors import ReplicaError


class ConfigError(ReplicaError):
    """The configuration cannot be read, parsed or validated, or a database from it cannot be built.

    ``str(err)`` is exactly Litestream's message. For validation errors of the form
    ``<field>: <error> (got <value>)``, ``field`` names the key and ``value`` is the
    offending value (a :class:`~datetime.timedelta` for durations).
    """

    def __init__(self, message: str, *, field: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
