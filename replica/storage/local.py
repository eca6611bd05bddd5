"""``file`` replicas: LTX files as plain files in a local directory tree."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
from typing import Any, BinaryIO, Unpack

from ltx.fileinfo import FileInfo
from ltx.fsutil import atomic_write
from ltx.names import is_filename, parse_filename
from replica.errors import FileExistsInReplicaError
from replica.storage.base import ClientOptions, ReplicaClient
from replica.storage.failures import Target
from replica.storage.layout import check_level
from replica.storage.source import COPY_CHUNK, Source
from replica.storage.timestamps import from_nanos, to_nanos
from replica.storage.url import ReplicaURL


class _Changed(Exception):
    """The object to replace is gone or no longer at the expected version: abandon the write."""


def _copy_in(source: Source, f: BinaryIO, created_at: dt.datetime | None) -> None:
    """Write ``source`` into the open temporary file ``f``; with ``created_at``, set its times.

    The data is flushed first, so no later write changes the times (ns exact) and the
    file never has another mtime under its final name; :func:`atomic_write` then
    fsyncs data and times together.
    """
    data = source.in_memory()
    if data is not None:
        f.write(data)
    else:
        with source.open() as src:
            shutil.copyfileobj(src, f, COPY_CHUNK)
    f.flush()
    if created_at is not None:
        ns = to_nanos(created_at)
        os.utime(f.fileno(), ns=(ns, ns))


class LocalReplicaClient(ReplicaClient):
    """``file`` replicas: ``<root>/ltx/<level>/<min>-<max>.ltx`` on a local filesystem.

    Writes go through :func:`ltx.fsutil.atomic_write` with ``replace=False``: a
    temporary file beside the final name (mode ``file_mode``), fsynced, its
    atime/mtime set to the LTX timestamp (ns exact) before it gets the final name,
    which it gets only if that name is free (``renameat2(RENAME_NOREPLACE)``, or a
    hard link: an atomic create-if-absent), then the directory is fsynced. A file
    system offering neither cannot be written to. Directories are created with
    ``dir_mode``.
    """

    conditional_writes = True

    def __init__(
        self,
        url: ReplicaURL,
        *,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(url, **options)
        self._root = os.path.abspath(url.path)
        self.file_mode = file_mode
        self.dir_mode = dir_mode

    @property
    def root(self) -> str:
        return self._root

    def _make_fs(self) -> Any:
        import fsspec

        return fsspec.filesystem("file")

    def _list(self, level: int, use_metadata: bool) -> list[FileInfo]:
        out: list[FileInfo] = []
        try:
            it = os.scandir(self.level_dir(level))
        except (FileNotFoundError, NotADirectoryError):
            return out
        with it:
            for entry in it:
                if not is_filename(entry.name):
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue  # deleted while listing
                if not entry.is_file():
                    continue
                lo, hi = parse_filename(entry.name)
                out.append(FileInfo(level, lo, hi, st.st_size, from_nanos(st.st_mtime_ns)))
        return out

    def _stat(self, level: int, min_txid: int, max_txid: int, key: str, use_metadata: bool) -> FileInfo:
        st = os.stat(key)
        return FileInfo(level, min_txid, max_txid, st.st_size, from_nanos(st.st_mtime_ns))

    def _write(self, target: Target, key: str, source: Source, created_at: dt.datetime) -> None:
        self._run(target, lambda: self._write_once(key, source, created_at))

    def _write_once(self, key: str, source: Source, created_at: dt.datetime) -> None:
        if not self._create(key, source, created_at):
            raise FileExistsInReplicaError("the name is taken", path=key, op="write")

    def _create(self, key: str, source: Source, created_at: dt.datetime | None) -> bool:
        """Write ``source`` to ``key`` if the name is free (False if not); durable and atomic."""
        os.makedirs(os.path.dirname(key), mode=self.dir_mode, exist_ok=True)
        try:
            with atomic_write(key, mode=self.file_mode, replace=False) as f:
                _copy_in(source, f, created_at)
        except FileExistsError:
            return False
        return True

    @staticmethod
    def _version(st: os.stat_result) -> str:
        return f"{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"

    def _read_object(self, key: str) -> tuple[bytes, str]:
        with open(key, "rb") as f:
            data = f.read()
            return data, self._version(os.fstat(f.fileno()))

    def _create_object(self, key: str, data: bytes) -> bool:
        return self._create(key, Source(data), None)

    def _replace_object(self, key: str, data: bytes, version: str) -> bool:
        try:
            with atomic_write(key, mode=self.file_mode) as f:
                _copy_in(Source(data), f, None)
                os.fsync(f.fileno())  # the slow part before the check, not between it and the rename
                try:
                    current = self._version(os.stat(key))
                except FileNotFoundError:
                    raise _Changed from None
                if current != version:
                    raise _Changed
                # Checked just before the rename: not atomic against another writer.
        except _Changed:
            return False
        return True

    def _read(self, key: str, offset: int, size: int | None) -> bytes:
        if size == 0:
            os.stat(key)  # still report a missing file
            return b""
        with open(key, "rb") as f:
            if offset:
                f.seek(offset)
            return f.read(-1 if size is None else size)

    def _open(
        self, level: int, min_txid: int, max_txid: int, offset: int, size: int | None, buffer_size: int
    ) -> BinaryIO:
        """The real file, opened for reading and positioned at ``offset`` (``size`` is not needed)."""
        check_level(level)
        key = self.key(level, min_txid, max_txid)

        def opened() -> BinaryIO:
            f = open(key, "rb", buffering=buffer_size)  # noqa: SIM115
            if offset:
                f.seek(offset)
            return f

        return self._run(self._target("open", level, min_txid, max_txid), opened)

    def _delete_one(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(key)

    def _delete_all(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self._root)
