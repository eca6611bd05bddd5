"""An in-memory replica client for tests: the real :class:`ReplicaClient` API over a dict."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ltx.fileinfo import FileInfo
from ltx.names import is_filename, parse_filename
from replica.storage import NO_RETRY, ReplicaClient, parse_replica_url
from replica.storage.client import _Source, _Target


class MemoryReplicaClient(ReplicaClient):
    """Objects live in :attr:`objects` (``key -> (bytes, created_at)``); ``created_at`` is what
    ``write_file`` was given (the LTX header timestamp), as the ``file`` backend records it.

    :attr:`ops` counts calls per operation (``list``, ``write``, ``read``, ``delete``).
    """

    def __init__(self, root: str = "/memory") -> None:
        super().__init__(parse_replica_url(f"file://{root}"), retry=NO_RETRY)
        self.objects: dict[str, tuple[bytes, dt.datetime]] = {}
        self.ops: dict[str, int] = {}

    def _count(self, op: str) -> None:
        self.ops[op] = self.ops.get(op, 0) + 1

    def _make_fs(self) -> Any:
        raise NotImplementedError("the memory client has no filesystem")

    def _list(self, level: int, use_metadata: bool) -> list[FileInfo]:
        self._count("list")
        prefix = self.level_dir(level) + "/"
        out = []
        for key, (data, created) in self.objects.items():
            name = key[len(prefix) :]
            if key.startswith(prefix) and is_filename(name):
                lo, hi = parse_filename(name)
                out.append(FileInfo(level, lo, hi, len(data), created))
        return out

    def _get(self, key: str) -> tuple[bytes, dt.datetime]:
        try:
            return self.objects[key]
        except KeyError:
            raise FileNotFoundError(key) from None

    def _stat(self, level: int, min_txid: int, max_txid: int, key: str, use_metadata: bool) -> FileInfo:
        data, created = self._get(key)
        return FileInfo(level, min_txid, max_txid, len(data), created)

    def _write(self, target: _Target, key: str, source: _Source, created_at: dt.datetime) -> None:
        self._count("write")
        data = source.in_memory()
        if data is None:
            with source.open() as f:
                data = f.read()
        self.objects[key] = (data, created_at)

    def _read(self, key: str, offset: int, size: int | None) -> bytes:
        self._count("read")
        data = self._get(key)[0]
        return data[offset:] if size is None else data[offset : offset + size]

    def _delete_one(self, key: str) -> None:
        self._count("delete")
        self.objects.pop(key, None)

    def _delete_all(self) -> None:
        self.objects.clear()

    def data(self, info: FileInfo) -> bytes:
        return self.objects[self.key(info.level, info.min_txid, info.max_txid)][0]
