"""A write's input (bytes, a local file path or a binary file), readable again for every attempt.

:meth:`~replica.storage.base.ReplicaClient.write_file` wraps what it is given in a
:class:`Source` once; each retry of the write re-reads it from byte 0, so a file
object is spooled (to memory, then to a temporary file past 16 MiB) first.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import tempfile
from typing import BinaryIO, cast

import crc32c

from replica.storage.timestamps import HEADER_PREFIX

Data = bytes | bytearray | memoryview | os.PathLike[str] | BinaryIO
"""What :meth:`ReplicaClient.write_file` accepts: bytes, a local file path, or a binary file object."""

COPY_CHUNK = 1024 * 1024
"""Bytes copied per read when streaming a source."""


class Source:
    """A write's input, readable again from the start for every attempt."""

    def __init__(self, data: Data) -> None:
        self._bytes: bytes | None = None
        self._path: str | None = None
        self._spool: BinaryIO | None = None
        if isinstance(data, bytes | bytearray | memoryview):
            self._bytes = bytes(data)
            self.size = len(self._bytes)
        elif isinstance(data, str):
            raise TypeError("write_file takes bytes, an os.PathLike path or a binary file, not str")
        elif isinstance(data, os.PathLike):
            self._path = os.fspath(data)
            self.size = os.stat(self._path).st_size
        else:
            spool = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024))  # noqa: SIM115
            shutil.copyfileobj(data, spool, COPY_CHUNK)
            self.size = spool.tell()
            self._spool = spool

    def in_memory(self) -> bytes | None:
        return self._bytes

    def local_path(self) -> str | None:
        return self._path

    def open(self) -> BinaryIO:
        """A fresh reader positioned at byte 0 (the caller closes it, except for spools)."""
        if self._bytes is not None:
            return io.BytesIO(self._bytes)
        if self._path is not None:
            return open(self._path, "rb")
        assert self._spool is not None
        self._spool.seek(0)
        return cast(BinaryIO, _NoClose(self._spool))

    def read_at(self, offset: int, size: int) -> bytes:
        if self._bytes is not None:
            return self._bytes[offset : offset + size]
        with self.open() as f:
            f.seek(offset)
            return f.read(size)

    def head(self) -> bytes:
        return self.read_at(0, HEADER_PREFIX)

    def crc32c(self) -> int:
        if self._bytes is not None:
            return int(crc32c.crc32c(self._bytes))
        value = 0
        with self.open() as f:
            while chunk := f.read(COPY_CHUNK):
                value = crc32c.crc32c(chunk, value)
        return int(value)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()


class _NoClose(io.BufferedIOBase):
    """A view of a spool file whose ``close`` leaves the spool open for the next attempt."""

    def __init__(self, f: BinaryIO) -> None:
        super().__init__()
        self._f = f

    def read(self, size: int | None = -1, /) -> bytes:
        return self._f.read(-1 if size is None else size)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0, /) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()


def crc32c_b64(value: int) -> str:
    """A CRC32C value as S3 spells it: the 4 big-endian bytes, base64."""
    return base64.b64encode(value.to_bytes(4, "big")).decode("ascii")
