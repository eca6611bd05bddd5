"""``gs``, ``abs``, ``sftp``, ``webdav``/``webdavs`` replicas (or an injected filesystem), through fsspec."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
from typing import Any, ClassVar, cast

from ltx.fileinfo import FileInfo
from ltx.names import is_filename, parse_filename
from replica.errors import StorageBackendMissingError
from replica.storage.base import ReplicaClient
from replica.storage.failures import Target
from replica.storage.source import Source
from replica.storage.timestamps import (
    ABS_TIMESTAMP_METADATA_KEY,
    EPOCH,
    TIMESTAMP_METADATA_KEY,
    as_utc,
    format_rfc3339nano,
    metadata_timestamp,
    to_nanos,
)


class FsspecReplicaClient(ReplicaClient):
    """Any other store, through a generic fsspec filesystem, with the ``ltx/<level>`` layout.

    For ``gs``/``abs`` the bucket/container is the first path component; the
    timestamp is stored as object metadata where the implementation accepts a
    ``metadata=`` argument (gcsfs, adlfs), and read back from it when listing with
    ``use_metadata``. SFTP writes go through a temporary name and a rename, and the
    mtime is set to the LTX timestamp when the filesystem exposes a paramiko client.
    Only tested with fsspec's in-memory filesystem: the backend packages are optional.
    """

    _PROTOCOLS: ClassVar[dict[str, str]] = {
        "gs": "gs",
        "abs": "abfs",
        "sftp": "sftp",
        "webdav": "webdav",
        "webdavs": "webdav",
    }

    def _make_fs(self) -> Any:
        import fsspec

        u = self.url
        kwargs: dict[str, Any] = {"skip_instance_cache": True}
        if u.scheme == "abs":
            account = u.username or os.environ.get("AZURE_STORAGE_ACCOUNT")
            if account:
                kwargs["account_name"] = account
            key = os.environ.get("LITESTREAM_AZURE_ACCOUNT_KEY") or os.environ.get("AZURE_STORAGE_KEY")
            if key:
                kwargs["account_key"] = key
        elif u.scheme == "sftp":
            kwargs.update(host=u.host, port=u.port or 22)
            if u.username:
                kwargs["username"] = u.username
            if u.password:
                kwargs["password"] = u.password
        elif u.scheme in ("webdav", "webdavs"):
            http = "https" if u.scheme == "webdavs" else "http"
            kwargs["base_url"] = f"{http}://{u.host}" + (f":{u.port}" if u.port else "")
            if u.username:
                kwargs["auth"] = (u.username, u.password or "")
        try:
            return fsspec.filesystem(self._PROTOCOLS[u.scheme], **kwargs)
        except (ImportError, ValueError) as e:
            raise StorageBackendMissingError(
                f"no fsspec implementation usable for {u.scheme}:// ({e})", path=str(u)
            ) from e

    def fs_path(self, key: str) -> str:
        if self.url.scheme in ("gs", "abs"):
            return f"{self.url.host}/{key}"
        return key

    def location(self, key: str) -> str:
        return f"{self.url.scheme}://{self.url.host}/{key}"

    def _list(self, level: int, use_metadata: bool) -> list[FileInfo]:
        fs = self.fs
        folder = self.fs_path(self.level_dir(level))
        try:
            entries = fs.ls(folder, detail=True, refresh=True)
        except FileNotFoundError:
            return []
        out = []
        for e in entries:
            name = str(e["name"]).rstrip("/").rsplit("/", 1)[-1]
            if e.get("type") not in (None, "file") or not is_filename(name):
                continue
            lo, hi = parse_filename(name)
            created = _info_time(e, use_metadata or self.url.scheme in ("gs", "abs"))
            out.append(FileInfo(level, lo, hi, int(e.get("size") or 0), created))
        return out

    def _stat(self, level: int, min_txid: int, max_txid: int, key: str, use_metadata: bool) -> FileInfo:
        e = self.fs.info(self.fs_path(key))
        created = _info_time(e, use_metadata or self.url.scheme in ("gs", "abs"))
        return FileInfo(level, min_txid, max_txid, int(e.get("size") or 0), created)

    def _write(self, target: Target, key: str, source: Source, created_at: dt.datetime) -> None:
        self._run(target, lambda: self._write_once(key, source, created_at))

    def _write_once(self, key: str, source: Source, created_at: dt.datetime) -> None:
        fs = self.fs
        path = self.fs_path(key)
        stamp = format_rfc3339nano(created_at)
        kwargs: dict[str, Any] = {}
        if self.url.scheme == "gs":
            kwargs["metadata"] = {TIMESTAMP_METADATA_KEY: stamp}
        elif self.url.scheme == "abs":
            kwargs["metadata"] = {ABS_TIMESTAMP_METADATA_KEY: stamp}
        if self.url.scheme in ("sftp", "webdav", "webdavs"):
            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        dest = path
        if self.url.scheme == "sftp":
            dest = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        data = source.in_memory()
        local = source.local_path()
        if data is None and local is not None:
            fs.put_file(local, dest, **kwargs)
        else:
            if data is None:
                with source.open() as f:
                    data = f.read()
            fs.pipe_file(dest, data, **kwargs)
        if dest != path:
            ftp = getattr(fs, "ftp", None)
            if ftp is not None and hasattr(ftp, "utime"):
                ts = to_nanos(created_at) / 1e9
                ftp.utime(dest, (ts, ts))
            fs.mv(dest, path)
        fs.invalidate_cache(path)

    def _read(self, key: str, offset: int, size: int | None) -> bytes:
        path = self.fs_path(key)
        if size == 0:
            self.fs.info(path)
            return b""
        end = None if size is None else offset + size
        return cast(bytes, self.fs.cat_file(path, start=offset or None, end=end))

    def _delete_one(self, key: str) -> None:
        path = self.fs_path(key)
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)
        self.fs.invalidate_cache(path)

    def _delete_all(self) -> None:
        # With no replica path ("."), only the layout's own "ltx" tree is ours to remove.
        root = self.fs_path(self.root if self.root not in (".", "") else "ltx")
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(root, recursive=True)
        self.fs.invalidate_cache(root)


def _info_time(info: dict[str, Any], use_metadata: bool) -> dt.datetime:
    """A creation time from an fsspec ``info`` dict: metadata timestamp, else mtime-like fields."""
    if use_metadata:
        meta = info.get("metadata") or {}
        if isinstance(meta, dict):
            ts = metadata_timestamp({str(k): str(v) for k, v in meta.items()})
            if ts is not None:
                return ts
    for field in (
        "mtime",
        "LastModified",
        "last_modified",
        "updated",
        "modified",
        "created",
        "creation_time",
    ):
        value = info.get(field)
        if value:
            return as_utc(value)
    return EPOCH
