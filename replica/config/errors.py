"""The one error type of :mod:`replica.config`."""

from __future__ import annotations

from replica.errors import ReplicaError


class ConfigError(ReplicaError):
    """The configuration cannot be read, parsed or validated, or a database from it cannot be built.

    ``str(err)`` is exactly Litestream's message; the location is carried beside it, not
    in it: ``path`` the configuration file when it came from one, ``key`` the offending
    key, ``line`` its 1-based line when the YAML reader knew it. For validation errors of
    the form ``<key>: <error> (got <value>)``, ``value`` is the offending value (a
    :class:`~datetime.timedelta` for durations).
    """

    def __init__(
        self, message: str, *, key: str | None = None, line: int | None = None, value: object = None
    ) -> None:
        super().__init__(message, key=key, line=line)
        self.value = value

    @property
    def field(self) -> str | None:
        """The offending key (the name validation errors have always used)."""
        return self.key

    def __str__(self) -> str:
        return self.message
