"""The root of every error the project raises, and the errors of the ``ltx`` package.

:class:`PyLitestreamError` is the one root: ``ltx``, ``replica`` and ``model`` derive every
error they raise from it, so ``except PyLitestreamError`` catches what the project itself
detected and nothing else. Each instance carries, when known, its location: the file or
object ``path``, the replica ``level``, the ``txid`` it concerns, and for configuration the
``key`` and the 1-based ``line``. A message read in a log says what failed and where.

Beneath the root, :class:`LTXError` covers LTX files and their use; ``replica.errors``
(replication, storage, restore, configuration) and ``replica.cli.errors`` (command lines)
hold the rest.
"""

from __future__ import annotations

from typing import Self, TypedDict, Unpack


class Location(TypedDict, total=False):
    """Where an error is: every field optional, ``None`` when unknown."""

    path: str | None
    """The file, object or configuration file."""
    level: int | None
    """The replica level of the LTX file."""
    txid: int | None
    """The TXID concerned (an LTX file's min TXID)."""
    key: str | None
    """The configuration key."""
    line: int | None
    """The 1-based line in a configuration file."""


class PyLitestreamError(Exception):
    """The root: something the project detected is wrong; ``str()`` is ``location: message``."""

    def __init__(self, message: str, **where: Unpack[Location]) -> None:
        super().__init__(message)
        self.message = message
        self.path = where.get("path")
        self.level = where.get("level")
        self.txid = where.get("txid")
        self.key = where.get("key")
        self.line = where.get("line")

    def where(self) -> str:
        """The location part of the message: ``path (level L, txid T)`` or ``path:line: key``."""
        loc = self.path or ""
        if self.line is not None:
            loc = f"{loc}:{self.line}" if loc else f"line {self.line}"
        parts = []
        if self.level is not None:
            parts.append(f"level {self.level}")
        if self.txid is not None:
            parts.append(f"txid {self.txid:016x}")
        if parts:
            loc = f"{loc} ({', '.join(parts)})" if loc else ", ".join(parts)
        if self.key is not None:
            loc = f"{loc}: {self.key}" if loc else self.key
        return loc

    def located(self, **where: Unpack[Location]) -> Self:
        """Fill in location fields that are still unknown; returns ``self``."""
        if self.path is None:
            self.path = where.get("path")
        if self.level is None:
            self.level = where.get("level")
        if self.txid is None:
            self.txid = where.get("txid")
        if self.key is None:
            self.key = where.get("key")
        if self.line is None:
            self.line = where.get("line")
        return self

    def __str__(self) -> str:
        loc = self.where()
        return f"{loc}: {self.message}" if loc else self.message


class LTXError(PyLitestreamError):
    """Something about an LTX file, a chain of them, or its use is wrong."""


class HeaderError(LTXError):
    """The 100-byte header is malformed or breaks a validation rule."""


class BadMagicError(HeaderError):
    """The file does not start with ``LTX1``."""


class HeaderFlagsError(HeaderError):
    """A header flag other than NoChecksum is set."""


class PageError(LTXError):
    """A page frame is malformed: bad flags, bad order, bad size, undecodable payload."""


class PageOrderError(PageError):
    """Pages are out of order, beyond Commit, missing from a snapshot, or the lock page."""


class CompressionError(PageError):
    """An LZ4 payload could not be decoded to exactly one page."""


class PageIndexError(LTXError):
    """The page index is malformed or disagrees with the page frames."""


class TrailerError(LTXError):
    """The trailer breaks a validation rule."""


class TruncatedError(LTXError):
    """The file ends before a complete LTX file has been read."""


class ChecksumMismatchError(LTXError):
    """A checksum that was recomputed differs from the one recorded."""

    kind = "checksum"

    def __init__(self, expected: int, actual: int, **where: Unpack[Location]) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{self.kind} mismatch: recorded {expected:016x}, computed {actual:016x}",
            **where,
        )


class FileChecksumMismatchError(ChecksumMismatchError):
    """The trailer's file checksum does not match the bytes of the file."""

    kind = "file checksum"


class PreApplyChecksumMismatchError(ChecksumMismatchError):
    """The database an incremental file is applied to is not the one it was made from."""

    kind = "pre-apply checksum"


class PostApplyChecksumMismatchError(ChecksumMismatchError):
    """The database after applying a file is not the one the file promises."""

    kind = "post-apply checksum"


class EncoderError(LTXError):
    """The encoder was used out of order or given data that would make an invalid file."""


class CompactionError(LTXError):
    """Inputs to a compaction cannot be merged (page sizes differ, TXIDs not contiguous)."""


class FilenameError(LTXError):
    """A name is not ``<16 hex>-<16 hex>.ltx``."""


class DatabaseError(LTXError):
    """A SQLite database file is malformed or does not match what an operation needs."""


def describe_os_error(e: OSError) -> str:
    """An OS error as one line for a user: ``<path>: <reason>`` (``<path> -> <path2>`` for
    a rename), or the reason alone when the call named no file."""
    import errno
    import os

    reason = e.strerror or str(e) or type(e).__name__
    if e.errno in (errno.EMFILE, errno.ENFILE):
        reason += _open_file_hint()
    if e.filename is None:
        return reason
    where = os.fsdecode(e.filename)
    if e.filename2 is not None:
        where += f" -> {os.fsdecode(e.filename2)}"
    return f"{where}: {reason}"


def _open_file_hint() -> str:
    """What to do about running out of file descriptors, with this process's limit."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return " (raise the open-file limit: ulimit -n)"
    return f" (the open-file limit is {soft}, at most {hard}: raise it, e.g. ulimit -Hn, LimitNOFILE=)"
