"""A seekable reader over a remote LTX file, one ranged, retried read per buffer refill."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from replica.errors import StorageIntegrityError

if TYPE_CHECKING:
    from replica.storage.base import ReplicaClient


class RangedReader(io.RawIOBase):
    """Random access to a remote file through ranged :meth:`ReplicaClient.read_file` calls."""

    def __init__(self, client: ReplicaClient, level: int, min_txid: int, max_txid: int, size: int) -> None:
        super().__init__()
        self._client = client
        self._args = (level, min_txid, max_txid)
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        level, lo, hi = self._args
        data = self._client.read_file(level, lo, hi, self._pos, want)
        if not data:
            raise StorageIntegrityError(
                f"file ended at byte {self._pos}, expected {self._size} bytes",
                path=self._client.location(self._client.key(level, lo, hi)),
                level=level,
                op="read",
                min_txid=lo,
                max_txid=hi,
            )
        n = len(data)
        view[:n] = data
        self._pos += n
        return n
