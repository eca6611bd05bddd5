"""Fetching a restore plan's files: ranged reads in parallel, consumed strictly in order.

The plan's files are cut into ranged reads of :data:`CHUNK_SIZE` bytes, fetched by a
thread pool (so one large snapshot is downloaded in parallel too) and handed out in
plan order; at most ``window`` chunks are in flight or waiting, so memory stays under
``window * CHUNK_SIZE`` whatever the database size, and nothing is copied to disk.
Each ranged read is retried by the replica client. :class:`FileStream` presents one
plan file as a readable stream for the decoder.

Bytes already read while planning (each plan file's header, kept by the probe's
:class:`~replica.restore.probe.FileFacts`) are handed to the :class:`Fetcher` as the
file's ``head``: they are not read again, the file's ranged reads start after them,
and its stream yields them first, so the decoder (and the file checksum it verifies)
sees every byte of the file once.
"""

from __future__ import annotations

import collections
import concurrent.futures
import io
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from ltx.fileinfo import FileInfo
from replica.restore.errors import CorruptBackupError
from replica.storage.client import ReplicaClient

CHUNK_SIZE = 2 * 1024 * 1024
"""Bytes per ranged read of a plan file."""


@attrs.frozen
class Chunk:
    """One ranged read: ``length`` bytes at ``offset`` of plan file ``index``."""

    index: int
    offset: int
    length: int


class Fetcher:
    """The plan's files as one ordered stream of ranged reads, up to ``window`` ahead.

    ``heads``, when given, holds for each plan file the bytes already read at its start
    (its header), or None: those bytes are not read again (see the module docstring).
    """

    def __init__(
        self,
        client: ReplicaClient,
        files: Sequence[FileInfo],
        pool: concurrent.futures.Executor,
        window: int,
        chunk_size: int | None = None,
        heads: Sequence[bytes | None] | None = None,
    ) -> None:
        self._client = client
        self._files = files
        self._pool = pool
        self._window = window
        self._chunk_size = chunk_size or CHUNK_SIZE
        self._heads = [b""] * len(files) if heads is None else [h or b"" for h in heads]
        self._todo = self._chunks()
        self._ahead: collections.deque[tuple[Chunk, concurrent.futures.Future[bytes]]] = collections.deque()

    def _chunks(self) -> Iterator[Chunk]:
        for i, f in enumerate(self._files):
            for off in range(len(self._heads[i]), f.size, self._chunk_size):
                yield Chunk(i, off, min(self._chunk_size, f.size - off))

    def head(self, index: int) -> bytes:
        """The bytes of plan file ``index`` known before fetching (empty when none)."""
        return self._heads[index]

    def chunk_count(self, index: int) -> int:
        """How many ranged reads plan file ``index`` takes (after its head)."""
        return math.ceil(max(0, self._files[index].size - len(self._heads[index])) / self._chunk_size)

    def _fill(self) -> None:
        while len(self._ahead) < self._window:
            c = next(self._todo, None)
            if c is None:
                return
            f = self._files[c.index]
            fut = self._pool.submit(
                self._client.read_file, f.level, f.min_txid, f.max_txid, c.offset, c.length
            )
            self._ahead.append((c, fut))

    def next(self, index: int) -> bytes:
        """The next chunk, which must belong to plan file ``index``."""
        self._fill()
        c, fut = self._ahead.popleft()
        assert c.index == index, "chunks are consumed in plan order"
        data = fut.result()
        self._fill()
        if len(data) != c.length:
            f = self._files[index]
            raise CorruptBackupError(
                f"file is shorter than listed: {len(data)} bytes at offset {c.offset}, expected {c.length} "
                f"(listed size {f.size})",
                path=self._client.location(self._client.key(f.level, f.min_txid, f.max_txid)),
                level=f.level,
                txid=f.min_txid,
            )
        return data

    def cancel(self) -> None:
        for _, fut in self._ahead:
            fut.cancel()
        self._ahead.clear()


class FileStream(io.RawIOBase):
    """One plan file read through the :class:`Fetcher`, front to back: its head, then its chunks.

    ``on_bytes`` is told the size of each part as it is consumed, the head included.
    """

    def __init__(self, fetcher: Fetcher, index: int, on_bytes: Callable[[int], None]) -> None:
        super().__init__()
        self._fetcher = fetcher
        self._index = index
        self._head = fetcher.head(index)
        self._left = fetcher.chunk_count(index)
        self._buf = memoryview(b"")
        self._on_bytes = on_bytes

    def readable(self) -> bool:
        return True

    def _more(self) -> bool:
        if self._head:
            data, self._head = self._head, b""
        elif self._left:
            data = self._fetcher.next(self._index)
            self._left -= 1
        else:
            return False
        self._buf = memoryview(data)
        self._on_bytes(len(data))
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if not self._buf and not self._more():
            return b""
        out = bytes(self._buf[:size])
        self._buf = self._buf[size:]
        return out

    def readall(self) -> bytes:
        parts = [bytes(self._buf)]
        self._buf = memoryview(b"")
        while self._more():
            parts.append(bytes(self._buf))
            self._buf = memoryview(b"")
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer)))
        n = len(data)
        memoryview(buffer).cast("B")[:n] = data
        return n
