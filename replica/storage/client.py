"""Synchronous replica clients: list, write, read, delete LTX files in a replica store.

One class per family of stores, all with the same public API (:class:`ReplicaClient`):

* :class:`LocalReplicaClient` (``file``): plain ``os`` calls for durability — temp
  file, fsync, mtime := LTX timestamp, rename, fsync of the directory.
* :class:`S3ReplicaClient` (``s3``): s3fs/aiobotocore calls; every object carries
  ``litestream-timestamp`` metadata and a CRC32C checksum; whole-object reads are
  verified against the CRC32C the store returns.
* :class:`FsspecReplicaClient` (``gs``, ``abs``, ``sftp``, ``webdav``/``webdavs``, or
  any injected fsspec filesystem): generic fsspec calls with the ``ltx/<level>`` layout.

Writes never replace a file: an LTX file or an object is created only if its name is
free, atomically where the store can do it (``file``: a hard link of the finished
temporary file; ``s3``: ``If-None-Match: *``), with a check just before the write
elsewhere. A name found taken is compared with what we meant to write (see
:mod:`replica.storage.compare`): the same file, or the same state, counts as written;
anything else is another writer's, raises :class:`~replica.errors.ForeignFileError`
and *fences* the client, which then refuses every write and delete.

Every operation goes through one retry loop: failures :func:`~replica.storage.retry.classify`
calls transient are retried with the client's :class:`~replica.storage.retry.RetryPolicy`;
everything else is raised at once as a typed :class:`~replica.errors.StorageError`
naming the operation, object, level and TXID. The underlying library retries are
turned off so that the policy is the only one.

Use :func:`open_replica_client` to get the right client for a URL.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import errno
import io
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO, ClassVar, TypeVar, cast

import attrs
import crc32c

from ltx.fileinfo import FileInfo
from ltx.fsutil import fsync_dir
from ltx.names import is_filename, parse_filename
from replica.errors import (
    FileExistsInReplicaError,
    FileNotFoundInReplicaError,
    ForeignFileError,
    OwnershipError,
    StorageAccessDeniedError,
    StorageBackendMissingError,
    StorageError,
    StorageIntegrityError,
    StorageUnavailableError,
)
from replica.storage.compare import Sameness, compare_ltx
from replica.storage.layout import SNAPSHOT_LEVEL, check_level, level_dir, ltx_key, root_object_key
from replica.storage.retry import DEFAULT_RETRY, ErrorKind, RetryPolicy, classify
from replica.storage.timestamps import (
    EPOCH,
    HEADER_PREFIX,
    UTC,
    format_rfc3339nano,
    from_nanos,
    header_timestamp,
    parse_rfc3339,
    to_nanos,
)
from replica.storage.url import ReplicaURL, S3Options, parse_replica_url

log = logging.getLogger(__name__)

T = TypeVar("T")

Data = bytes | bytearray | memoryview | os.PathLike[str] | BinaryIO
"""What :meth:`ReplicaClient.write_file` accepts: bytes, a local file path, or a binary file object."""

TIMESTAMP_METADATA_KEY = "litestream-timestamp"
"""S3/GCS user-metadata key holding the LTX header timestamp (RFC 3339 nano, UTC)."""
ABS_TIMESTAMP_METADATA_KEY = "litestreamtimestamp"
"""Azure Blob metadata key (Azure forbids hyphens)."""

S3_MAX_DELETE_KEYS = 1000
S3_MIN_PART_SIZE = 5 * 1024 * 1024
S3_DEFAULT_PART_SIZE = 16 * 1024 * 1024
S3_DEFAULT_MULTIPART_THRESHOLD = 64 * 1024 * 1024
S3_HEAD_CONCURRENCY = 50
_COPY_CHUNK = 1024 * 1024


# ----------------------------------------------------------------------------------------
# Data sources: let a write be retried by re-reading its input from the start.


class _Source:
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
            shutil.copyfileobj(data, spool, _COPY_CHUNK)
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
            while chunk := f.read(_COPY_CHUNK):
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


def _crc32c_b64(value: int) -> str:
    return base64.b64encode(value.to_bytes(4, "big")).decode("ascii")


# ----------------------------------------------------------------------------------------
# The public client API.


@attrs.frozen
class _Target:
    """What an operation is about, for error messages."""

    op: str
    path: str
    level: int | None = None
    min_txid: int | None = None
    max_txid: int | None = None


_ERRORS: dict[ErrorKind, type[StorageError]] = {
    ErrorKind.NOT_FOUND: FileNotFoundInReplicaError,
    ErrorKind.ACCESS_DENIED: StorageAccessDeniedError,
    ErrorKind.TRANSIENT: StorageUnavailableError,
    ErrorKind.PERMANENT: StorageError,
}


class ReplicaClient:
    """A replica store holding LTX files keyed by (level, min TXID, max TXID).

    Contract (all subclasses):

    * ``list_files(level)`` is sorted by (min, max) TXID, skips names that are not
      LTX names (``*.tmp`` and anything else), and is empty for a missing level.
    * ``write_file`` is all-or-nothing for readers of the store: a listing never
      shows a partial file. It returns the stored :class:`FileInfo`, whose
      ``created_at`` is the LTX header timestamp (or the ``created_at`` given).
    * ``read_file``/``open_file``/``stat_file`` raise
      :class:`FileNotFoundInReplicaError` for a missing file; ``delete_files`` ignores
      missing files.
    * Transient failures are retried per :attr:`retry`; then
      :class:`StorageUnavailableError` (with ``attempts``). Access problems raise
      :class:`StorageAccessDeniedError` at once, other failures :class:`StorageError`.
    * ``write_file`` never replaces an existing file (see the module docstring);
      :attr:`conditional_writes` says whether the store makes that check atomic.
    * Once :meth:`fence` has been called (by the client itself on finding another
      writer's file, or by the owner of the client), ``write_file``, ``delete_files``,
      ``delete_all`` and the object writes raise the fencing error; reads still work.
    """

    conditional_writes: bool = False
    """Whether create-if-absent is atomic in this store (no other writer can slip in
    between the check and the write)."""

    def __init__(
        self,
        url: ReplicaURL,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        fs: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.retry = retry
        self._fs = fs
        self._fs_lock = threading.Lock()
        self._sleep = sleep
        self.fenced: OwnershipError | None = None
        """The error every write and delete raises once the client is fenced."""

    # -- identity and layout ------------------------------------------------------------

    @property
    def type(self) -> str:
        """The URL scheme: ``file``, ``s3``, ``gs``, ``abs``, ``sftp``, ``webdav``, ``webdavs``."""
        return self.url.scheme

    @property
    def root(self) -> str:
        """The replica path the layout is computed from (relative to the bucket for object stores)."""
        return self.url.path

    @property
    def fs(self) -> Any:
        """The fsspec filesystem this client uses, built on first use."""
        with self._fs_lock:
            if self._fs is None:
                self._fs = self._make_fs()
            return self._fs

    def _make_fs(self) -> Any:
        raise NotImplementedError

    def key(self, level: int, min_txid: int, max_txid: int) -> str:
        """The layout key of a file (reference §1.2); for ``file`` the absolute path."""
        return ltx_key(self.url.scheme, self.root, level, min_txid, max_txid)

    def level_dir(self, level: int) -> str:
        """The directory/prefix of a level, without a trailing ``/``."""
        return level_dir(self.url.scheme, self.root, level)

    def fs_path(self, key: str) -> str:
        """The fsspec path of a layout key (``bucket/key`` for object stores)."""
        return key

    def location(self, key: str) -> str:
        """A human-readable URL of a key, used in error messages."""
        return key

    @property
    def name(self) -> str:
        """The replica, as named in messages: its location, without a query string."""
        return self.location(self.root)

    def object_key(self, name: str) -> str:
        """The key of the object ``name`` (not an LTX file) directly under the replica root."""
        return root_object_key(self.url.scheme, self.root, name)

    # -- fencing -------------------------------------------------------------------------

    def fence(self, error: OwnershipError, *, quiet: bool = False) -> None:
        """From now on refuse every write and delete with ``error`` (the first fence stays).

        Logged once at ERROR level (unless ``quiet``: the caller reports it): it means
        a second writer was found, and this client's owner must stop replicating into
        this replica.
        """
        with self._fs_lock:
            if self.fenced is not None:
                return
            self.fenced = error
        if not quiet:
            log.error("%s", error)

    def _check_fence(self) -> None:
        if self.fenced is not None:
            raise self.fenced

    # -- retry loop ----------------------------------------------------------------------

    def _target(
        self, op: str, level: int, min_txid: int | None = None, max_txid: int | None = None
    ) -> _Target:
        if min_txid is not None and max_txid is not None:
            path = self.location(self.key(level, min_txid, max_txid))
        else:
            path = self.location(self.level_dir(level))
        return _Target(op, path, level, min_txid, max_txid)

    def _run(self, target: _Target, fn: Callable[[], T]) -> T:
        """Call ``fn`` until it succeeds, retrying transient failures per :attr:`retry`."""
        failures = 0
        while True:
            try:
                return fn()
            except StorageError as err:
                err.located(path=target.path, level=target.level, txid=target.min_txid)
                if err.min_txid is None and err.max_txid is None:
                    err.min_txid, err.max_txid = target.min_txid, target.max_txid
                raise
            except Exception as exc:
                failures += 1
                kind = classify(exc)
                if kind is ErrorKind.TRANSIENT and failures < self.retry.attempts:
                    wait = self.retry.delay(failures)
                    log.warning(
                        "%s %s: transient failure (attempt %d of %d), retrying in %.2fs: %s",
                        target.op,
                        target.path,
                        failures,
                        self.retry.attempts,
                        wait,
                        exc,
                    )
                    self._sleep(wait)
                    continue
                raise self._error(kind, exc, target, failures) from exc

    @staticmethod
    def _error(kind: ErrorKind, exc: BaseException, target: _Target, attempts: int) -> StorageError:
        cls = _ERRORS[kind]
        detail = str(exc) or type(exc).__name__
        if kind is ErrorKind.NOT_FOUND:
            msg = f"not found: {detail}"
        elif kind is ErrorKind.ACCESS_DENIED:
            msg = f"access denied: {detail}"
        elif kind is ErrorKind.TRANSIENT:
            msg = f"store unavailable after {attempts} attempt(s): {detail}"
        else:
            msg = detail
        return cls(
            msg,
            path=target.path,
            level=target.level,
            op=target.op,
            min_txid=target.min_txid,
            max_txid=target.max_txid,
            attempts=attempts,
        )

    # -- public operations ----------------------------------------------------------------

    def list_files(self, level: int, *, seek: int = 0, use_metadata: bool = False) -> list[FileInfo]:
        """All LTX files of ``level`` with ``min_txid >= seek``, sorted by (min, max) TXID.

        ``created_at`` is the file mtime (``file``), or for object stores the upload
        time (LastModified) unless ``use_metadata`` asks for the recorded LTX
        timestamp (one HEAD per object on S3; use it for point-in-time restores).
        """
        check_level(level)
        infos = self._run(self._target("list", level), lambda: self._list(level, use_metadata))
        return sorted((i for i in infos if i.min_txid >= seek), key=lambda i: (i.min_txid, i.max_txid))

    def stat_file(self, level: int, min_txid: int, max_txid: int, *, use_metadata: bool = False) -> FileInfo:
        """The :class:`FileInfo` of one file; :class:`FileNotFoundInReplicaError` if missing."""
        check_level(level)
        key = self.key(level, min_txid, max_txid)
        return self._run(
            self._target("stat", level, min_txid, max_txid),
            lambda: self._stat(level, min_txid, max_txid, key, use_metadata),
        )

    def write_file(
        self,
        level: int,
        min_txid: int,
        max_txid: int,
        data: Data,
        created_at: dt.datetime | None = None,
    ) -> FileInfo:
        """Store one LTX file atomically and return its :class:`FileInfo`.

        ``data`` is bytes, a local file path (``os.PathLike``), or a binary file object
        (read once, spooled so retries can re-send it). ``created_at`` defaults to the
        LTX header timestamp read from the data; it becomes the file mtime (``file``)
        and the ``litestream-timestamp`` metadata (object stores).
        """
        check_level(level)
        self._check_fence()
        target = self._target("write", level, min_txid, max_txid)
        try:
            source = _Source(data)
        except OSError as exc:
            raise StorageError(
                f"cannot read the data to write: {exc}",
                path=target.path,
                level=level,
                op="write",
                min_txid=min_txid,
                max_txid=max_txid,
            ) from exc
        try:
            if created_at is None:
                created_at = header_timestamp(source.head())
                if created_at is None:
                    raise StorageError(
                        "data does not start with an LTX header; pass created_at",
                        path=target.path,
                        level=level,
                        op="write",
                        min_txid=min_txid,
                        max_txid=max_txid,
                    )
            elif created_at.tzinfo is None:
                created_at = created_at.replace(tzinfo=UTC)
            when = created_at.astimezone(UTC)
            key = self.key(level, min_txid, max_txid)
            for _attempt in range(3):
                try:
                    self._write(target, key, source, when)
                except FileExistsInReplicaError:
                    settled = self._settle(level, min_txid, max_txid, source, when)
                    if settled is None:
                        continue  # deleted between the write and the comparison: write again
                    return settled
                break
            else:
                raise StorageError(
                    "the name keeps appearing and vanishing while we write it",
                    path=target.path,
                    level=level,
                    op="write",
                    min_txid=min_txid,
                    max_txid=max_txid,
                )
        finally:
            source.close()
        return FileInfo(level, min_txid, max_txid, source.size, when)

    def _settle(
        self, level: int, min_txid: int, max_txid: int, source: _Source, when: dt.datetime
    ) -> FileInfo | None:
        """The write found the name taken: accept the same file, refuse another writer's.

        Returns the stored file's :class:`FileInfo`, or ``None`` if it vanished meanwhile.
        """
        where = self.location(self.key(level, min_txid, max_txid))
        try:
            same = compare_ltx(lambda: self.open_file(level, min_txid, max_txid), source.open)
            if same is Sameness.EQUIVALENT:
                stored = header_timestamp(self.read_file(level, min_txid, max_txid, 0, HEADER_PREFIX))
        except FileNotFoundInReplicaError:
            return None
        if same is Sameness.IDENTICAL:
            log.debug("%s: already written (an earlier attempt succeeded)", where)
            return FileInfo(level, min_txid, max_txid, source.size, when)
        if same is Sameness.EQUIVALENT:
            log.info("%s: already in the replica with the same pages; keeping that copy", where)
            return FileInfo(level, min_txid, max_txid, source.size, stored or when)
        what = (
            "snapshot"
            if level == SNAPSHOT_LEVEL
            else f"level-{level} file for TXID {min_txid:016x}"
            if min_txid == max_txid
            else f"level-{level} file for TXIDs {min_txid:016x}-{max_txid:016x}"
        )
        err = ForeignFileError(
            f"the {what} we were writing is already in replica {self.name} with other content: "
            "another writer wrote it; not overwriting it, and no more writes to this replica",
            replica=self.name,
            path=where,
            level=level,
            txid=min_txid,
        )
        self.fence(err)
        raise err

    def read_file(
        self, level: int, min_txid: int, max_txid: int, offset: int = 0, size: int | None = None
    ) -> bytes:
        """Bytes ``[offset, offset+size)`` of a file (``size=None``: to the end).

        Reads past the end return fewer bytes (possibly none). A whole-object S3 read
        is checked against the store's CRC32C (:class:`StorageIntegrityError`).
        """
        check_level(level)
        if offset < 0 or (size is not None and size < 0):
            raise ValueError("offset and size must be >= 0")
        key = self.key(level, min_txid, max_txid)
        return self._run(
            self._target("read", level, min_txid, max_txid), lambda: self._read(key, offset, size)
        )

    def open_file(
        self,
        level: int,
        min_txid: int,
        max_txid: int,
        *,
        offset: int = 0,
        size: int | None = None,
        buffer_size: int = 1024 * 1024,
    ) -> BinaryIO:
        """A seekable binary reader over a file, positioned at ``offset``.

        ``size`` is the file size if known (e.g. from a listing), saving a stat. For
        remote stores each buffer refill is one ranged, retried read; for ``file`` it
        is the real file. Raises :class:`FileNotFoundInReplicaError` at once if missing.
        """
        if size is None:
            size = self.stat_file(level, min_txid, max_txid).size
        raw = _RangedReader(self, level, min_txid, max_txid, size)
        reader = io.BufferedReader(raw, buffer_size)
        if offset:
            reader.seek(offset)
        return cast(BinaryIO, reader)

    def delete_files(self, infos: Iterable[FileInfo]) -> None:
        """Delete the given files; files already gone are ignored."""
        self._check_fence()
        infos = list(infos)
        for info in infos:
            check_level(info.level)
        if infos:
            self._delete(infos)

    def delete_all(self) -> None:
        """Delete everything under the replica root, LTX or not (missing root: no-op)."""
        self._check_fence()
        self._run(_Target("delete-all", self.location(self.root)), self._delete_all)

    # -- objects beside the levels (the owner record) -----------------------------------

    def read_object(self, name: str) -> tuple[bytes, str] | None:
        """The bytes of object ``name`` (see :meth:`object_key`) and a version tag; None if absent.

        The tag changes whenever the object is rewritten (an ETag on S3); give it to
        :meth:`replace_object`.
        """
        key = self.object_key(name)
        try:
            return self._run(_Target("read", self.location(key)), lambda: self._read_object(key))
        except FileNotFoundInReplicaError:
            return None

    def create_object(self, name: str, data: bytes) -> bool:
        """Store object ``name`` only if it does not exist; False if it does.

        Atomic where :attr:`conditional_writes` holds. After a transient failure the
        write is retried, and may then find its own first attempt: callers that care
        read the object back.
        """
        self._check_fence()
        key = self.object_key(name)
        return self._run(_Target("write", self.location(key)), lambda: self._create_object(key, data))

    def replace_object(self, name: str, data: bytes, version: str) -> bool:
        """Overwrite object ``name`` only if it is still at ``version``; False if it changed or vanished.

        Atomic on S3 (``If-Match``); elsewhere the version is checked just before the write.
        """
        self._check_fence()
        key = self.object_key(name)
        return self._run(
            _Target("write", self.location(key)), lambda: self._replace_object(key, data, version)
        )

    def max_file_info(self, level: int) -> FileInfo | None:
        """The file of ``level`` with the largest max TXID, or ``None`` if the level is empty."""
        infos = self.list_files(level)
        return max(infos, key=lambda i: (i.max_txid, i.min_txid), default=None)

    def close(self) -> None:
        """Release resources (nothing to do for most clients)."""

    def __enter__(self) -> ReplicaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.url)!r})"

    # -- backend hooks (raise library errors; the retry loop types them) ------------------

    def _list(self, level: int, use_metadata: bool) -> list[FileInfo]:
        raise NotImplementedError

    def _stat(self, level: int, min_txid: int, max_txid: int, key: str, use_metadata: bool) -> FileInfo:
        raise NotImplementedError

    def _write(self, target: _Target, key: str, source: _Source, created_at: dt.datetime) -> None:
        raise NotImplementedError

    def _read(self, key: str, offset: int, size: int | None) -> bytes:
        raise NotImplementedError

    def _delete(self, infos: list[FileInfo]) -> None:
        for info in infos:
            key = self.key(info.level, info.min_txid, info.max_txid)
            self._run(
                self._target("delete", info.level, info.min_txid, info.max_txid),
                lambda key=key: self._delete_one(key),  # type: ignore[misc]
            )

    def _delete_one(self, key: str) -> None:
        raise NotImplementedError

    def _delete_all(self) -> None:
        raise NotImplementedError

    # Objects: generic versions over the hooks above (a check, then a plain write).

    def _read_object(self, key: str) -> tuple[bytes, str]:
        data = self._read(key, 0, None)
        return data, _content_version(data)

    def _exists(self, key: str) -> bool:
        try:
            self._read(key, 0, 0)
        except FileNotFoundError:
            return False
        except StorageError as e:
            if isinstance(e, FileNotFoundInReplicaError):
                return False
            raise
        return True

    def _put_object(self, key: str, data: bytes) -> None:
        self._write(_Target("write", self.location(key)), key, _Source(data), dt.datetime.now(UTC))

    def _create_object(self, key: str, data: bytes) -> bool:
        if self._exists(key):
            return False
        self._put_object(key, data)
        return True

    def _replace_object(self, key: str, data: bytes, version: str) -> bool:
        try:
            current = self._read_object(key)[1]
        except FileNotFoundError:
            return False
        if current != version:
            return False
        self._put_object(key, data)
        return True


def _content_version(data: bytes) -> str:
    return f"crc32c:{int(crc32c.crc32c(data)):08x}:{len(data)}"


class _RangedReader(io.RawIOBase):
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


# ----------------------------------------------------------------------------------------
# file://


class LocalReplicaClient(ReplicaClient):
    """``file`` replicas: ``<root>/ltx/<level>/<min>-<max>.ltx`` on a local filesystem.

    Writes go to ``<name>.<pid>.<random>.tmp`` in the target directory (mode
    ``file_mode``), are fsynced, get their atime/mtime set to the LTX timestamp (ns
    exact), are hard-linked to the final name (which fails if the name exists: an
    atomic create-if-absent), the temporary name is removed and the directory is
    fsynced. On a filesystem without hard links the final name is checked, then the
    file renamed into place (not atomic). Directories are created with ``dir_mode``.
    """

    conditional_writes = True

    def __init__(
        self,
        url: ReplicaURL,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        fs: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
    ) -> None:
        super().__init__(url, retry=retry, fs=fs, sleep=sleep)
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

    def _write(self, target: _Target, key: str, source: _Source, created_at: dt.datetime) -> None:
        self._run(target, lambda: self._write_once(key, source, created_at))

    def _write_once(self, key: str, source: _Source, created_at: dt.datetime) -> None:
        if not self._create(key, source, created_at):
            raise FileExistsInReplicaError("the name is taken", path=key, op="write")

    def _create(self, key: str, source: _Source, created_at: dt.datetime | None) -> bool:
        """Write ``source`` to ``key`` if the name is free (False if not); durable and atomic."""
        folder = os.path.dirname(key)
        os.makedirs(folder, mode=self.dir_mode, exist_ok=True)
        tmp = self._write_temp(key, source, created_at)
        try:
            try:
                os.link(tmp, key)
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in _NO_LINK_ERRNOS:
                    raise
                # No hard links here: check, then rename (another writer could slip in between).
                if os.path.lexists(key):
                    return False
                os.replace(tmp, key)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        fsync_dir(folder)
        return True

    def _write_temp(self, key: str, source: _Source, created_at: dt.datetime | None) -> str:
        """A fsynced temporary copy of ``source`` beside ``key`` (mtime ``created_at``); returns its path."""
        tmp = f"{key}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), self.file_mode)
        try:
            with os.fdopen(fd, "wb") as f:
                data = source.in_memory()
                if data is not None:
                    f.write(data)
                else:
                    with source.open() as src:
                        shutil.copyfileobj(src, f, _COPY_CHUNK)
                f.flush()
                os.fsync(f.fileno())
            if created_at is not None:
                ns = to_nanos(created_at)
                # Set the time before the final name exists: it never has another mtime.
                os.utime(tmp, ns=(ns, ns))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp

    @staticmethod
    def _version(st: os.stat_result) -> str:
        return f"{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"

    def _read_object(self, key: str) -> tuple[bytes, str]:
        with open(key, "rb") as f:
            data = f.read()
            return data, self._version(os.fstat(f.fileno()))

    def _create_object(self, key: str, data: bytes) -> bool:
        return self._create(key, _Source(data), None)

    def _replace_object(self, key: str, data: bytes, version: str) -> bool:
        folder = os.path.dirname(key)
        tmp = self._write_temp(key, _Source(data), None)
        try:
            try:
                current = self._version(os.stat(key))
            except FileNotFoundError:
                return False
            if current != version:
                return False
            os.replace(tmp, key)  # checked just before: not atomic against another writer
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        fsync_dir(folder)
        return True

    def _read(self, key: str, offset: int, size: int | None) -> bytes:
        if size == 0:
            os.stat(key)  # still report a missing file
            return b""
        with open(key, "rb") as f:
            if offset:
                f.seek(offset)
            return f.read(-1 if size is None else size)

    def open_file(
        self,
        level: int,
        min_txid: int,
        max_txid: int,
        *,
        offset: int = 0,
        size: int | None = None,
        buffer_size: int = 1024 * 1024,
    ) -> BinaryIO:
        """The real file, opened for reading and positioned at ``offset``."""
        check_level(level)
        key = self.key(level, min_txid, max_txid)

        def _open() -> BinaryIO:
            f = open(key, "rb", buffering=buffer_size)  # noqa: SIM115
            if offset:
                f.seek(offset)
            return f

        return self._run(self._target("open", level, min_txid, max_txid), _open)

    def _delete_one(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(key)

    def _delete_all(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self._root)


_NO_LINK_ERRNOS = frozenset(
    e for e in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS)
)


# ----------------------------------------------------------------------------------------
# s3://


def _s3_credentials() -> tuple[str | None, str | None]:
    """Static keys only when taken from ``LITESTREAM_*`` (as the CLI copies them into AWS_*).

    Otherwise ``(None, None)``: botocore's default chain reads ``AWS_ACCESS_KEY_ID``/
    ``AWS_SECRET_ACCESS_KEY``, profiles and instance roles itself.
    """
    if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_SECRET_ACCESS_KEY"):
        return None, None
    key = os.environ.get("LITESTREAM_ACCESS_KEY_ID")
    secret = os.environ.get("LITESTREAM_SECRET_ACCESS_KEY")
    if key and secret:
        return key, secret
    return None, None


def build_s3_filesystem(
    opts: S3Options,
    *,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    key: str | None = None,
    secret: str | None = None,
) -> Any:
    """An ``s3fs.S3FileSystem`` for ``opts``, with library retries and caches turned off.

    Region: from the URL, else ``us-east-1`` when an endpoint is set, else botocore's
    default (``AWS_REGION``...) with bucket-region discovery. Checksums are computed
    only when required (we send CRC32C ourselves), as Litestream does with endpoints.
    """
    try:
        import s3fs
    except ImportError as e:
        raise StorageBackendMissingError("s3 replicas need the 's3fs' package (pip install s3fs)") from e
    if key is None and secret is None:
        key, secret = _s3_credentials()
    region = opts.region or ("us-east-1" if opts.endpoint else None)
    client_kwargs: dict[str, Any] = {}
    if region:
        client_kwargs["region_name"] = region
    if opts.skip_verify:
        client_kwargs["verify"] = False
    s3_config: dict[str, Any] = {"addressing_style": "path" if opts.force_path_style else "auto"}
    if not opts.sign_payload:
        s3_config["payload_signing_enabled"] = False
    config_kwargs: dict[str, Any] = {
        "retries": {"total_max_attempts": 1, "mode": "standard"},  # no botocore retries
        "connect_timeout": connect_timeout,
        "read_timeout": read_timeout,
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "s3": s3_config,
        "user_agent_extra": "pylitestream",
    }
    extra: dict[str, Any] = {}
    if opts.sse_customer_key:
        extra["SSECustomerAlgorithm"] = opts.sse_customer_algorithm or "AES256"
        try:
            extra["SSECustomerKey"] = base64.b64decode(opts.sse_customer_key, validate=True)
        except ValueError as e:
            raise StorageError("sse-customer-key must be base64") from e
    elif opts.sse_kms_key_id:
        extra["ServerSideEncryption"] = "aws:kms"
        extra["SSEKMSKeyId"] = opts.sse_kms_key_id
    fs = s3fs.S3FileSystem(
        key=key,
        secret=secret,
        endpoint_url=opts.endpoint,
        client_kwargs=client_kwargs,
        config_kwargs=config_kwargs,
        s3_additional_kwargs=extra,
        skip_instance_cache=True,
        use_listings_cache=False,
        cache_regions=region is None,
    )
    fs.retries = 1  # s3fs's own retry loop: one try; ours does the retrying
    return fs


class _ShortReadError(ConnectionError):
    """The body ended before Content-Length: the connection dropped (transient)."""


class S3ReplicaClient(ReplicaClient):
    """``s3`` replicas: ``<path>/<level:04x>/<min>-<max>.ltx`` in a bucket.

    Objects of up to ``multipart_threshold`` bytes go up in one PutObject; larger
    ones in a multipart upload of ``part_size`` parts with a full-object CRC32C.
    Every object carries metadata ``litestream-timestamp`` and ``x-amz-checksum-crc32c``.

    Every PutObject and CompleteMultipartUpload carries ``If-None-Match: *`` (S3 then
    answers 412 if the key exists); the owner record is replaced with ``If-Match``.
    A store that answers ``NotImplemented`` to those headers gets plain writes from
    then on (:attr:`conditional_writes` becomes False, with a warning).
    """

    conditional_writes = True

    def __init__(
        self,
        url: ReplicaURL,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        fs: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        part_size: int | None = None,
        multipart_threshold: int = S3_DEFAULT_MULTIPART_THRESHOLD,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        if url.s3 is None:
            raise StorageError(f"not an s3 URL: {url}")
        super().__init__(url, retry=retry, fs=fs, sleep=sleep)
        self.s3 = url.s3
        self.part_size = max(S3_MIN_PART_SIZE, part_size or url.s3.part_size or S3_DEFAULT_PART_SIZE)
        self.multipart_threshold = multipart_threshold
        self._timeouts = (connect_timeout, read_timeout)

    @property
    def bucket(self) -> str:
        return self.s3.bucket

    @property
    def root(self) -> str:
        return self.s3.path

    def _make_fs(self) -> Any:
        return build_s3_filesystem(self.s3, connect_timeout=self._timeouts[0], read_timeout=self._timeouts[1])

    def fs_path(self, key: str) -> str:
        return f"{self.bucket}/{key}"

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _sync(self, coro_fn: Callable[..., Any], *args: Any) -> Any:
        from fsspec.asyn import sync

        fs = self.fs
        return sync(fs.loop, coro_fn, *args)

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        return cast(dict[str, Any], self.fs.call_s3(method, Bucket=self.bucket, **kwargs))

    # listing

    def _list(self, level: int, use_metadata: bool) -> list[FileInfo]:
        return cast(list[FileInfo], self._sync(self._alist, level, use_metadata))

    async def _alist(self, level: int, use_metadata: bool) -> list[FileInfo]:
        import asyncio

        fs = self.fs
        prefix = self.level_dir(level) + "/"
        found: list[tuple[str, FileInfo]] = []
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "Delimiter": "/"}
            if token:
                kw["ContinuationToken"] = token
            resp = await fs._call_s3("list_objects_v2", **kw)
            for obj in resp.get("Contents", []):
                key = obj["Key"]
                name = key[len(prefix) :]
                if not is_filename(name):
                    continue
                lo, hi = parse_filename(name)
                found.append((key, FileInfo(level, lo, hi, int(obj["Size"]), _utc(obj["LastModified"]))))
            if not resp.get("IsTruncated"):
                break
            token = resp.get("NextContinuationToken")
            if not token:
                break
        if not use_metadata or not found:
            return [info for _, info in found]
        sem = asyncio.Semaphore(S3_HEAD_CONCURRENCY)

        async def head(key: str, info: FileInfo) -> FileInfo:
            async with sem:
                try:
                    h = await fs._call_s3("head_object", Bucket=self.bucket, Key=key)
                except FileNotFoundError:
                    return info  # deleted meanwhile: keep the listing's view
            ts = _metadata_timestamp(h.get("Metadata") or {})
            return attrs.evolve(info, created_at=ts) if ts is not None else info

        return list(await asyncio.gather(*(head(k, i) for k, i in found)))

    def _stat(self, level: int, min_txid: int, max_txid: int, key: str, use_metadata: bool) -> FileInfo:
        h = self._call("head_object", Key=key)
        created = _utc(h["LastModified"])
        if use_metadata:
            created = _metadata_timestamp(h.get("Metadata") or {}) or created
        return FileInfo(level, min_txid, max_txid, int(h["ContentLength"]), created)

    # writing

    def _put_args(self, created_at: dt.datetime) -> dict[str, Any]:
        kw: dict[str, Any] = {"Metadata": {TIMESTAMP_METADATA_KEY: format_rfc3339nano(created_at)}}
        if self.s3.storage_class:
            kw["StorageClass"] = self.s3.storage_class
        return kw

    def _write(self, target: _Target, key: str, source: _Source, created_at: dt.datetime) -> None:
        crc = _crc32c_b64(source.crc32c())
        if source.size <= self.multipart_threshold:
            self._run(target, lambda: self._put(key, source, crc, created_at))
        else:
            self._multipart(target, key, source, crc, created_at)
        self.fs.invalidate_cache(self.fs_path(key))

    def _conditional_call(
        self, method: str, condition: dict[str, str], **kwargs: Any
    ) -> dict[str, Any] | None:
        """Call ``method`` with a conditional header; None when S3 says the condition failed (412).

        A store that does not implement the header (501 ``NotImplemented``) is called
        without it, now and from then on.
        """
        if self.conditional_writes:
            try:
                return self._call(method, **condition, **kwargs)
            except Exception as exc:
                code = _service_code(exc)
                if code in ("PreconditionFailed", "412"):
                    return None
                if code not in ("NotImplemented", "501"):
                    raise
                self.conditional_writes = False
                log.warning(
                    "%s: the store does not support conditional writes (%s): writing without them; "
                    "a second writer is then detected only by the owner record check",
                    self.name,
                    exc,
                )
        # Without conditions: check, then write (another writer may slip in between).
        if "IfNoneMatch" in condition and self._exists(kwargs["Key"]):
            return None
        if "IfMatch" in condition:
            try:
                head = self._call("head_object", Key=kwargs["Key"])
            except FileNotFoundError:
                return None
            if head.get("ETag") != condition["IfMatch"]:
                return None
        return self._call(method, **kwargs)

    def _put(self, key: str, source: _Source, crc: str, created_at: dt.datetime) -> None:
        args: dict[str, Any] = {
            "Key": key,
            "ContentLength": source.size,
            "ChecksumAlgorithm": "CRC32C",
            "ChecksumCRC32C": crc,
            **self._put_args(created_at),
        }
        body = source.in_memory()
        if body is not None:
            resp = self._conditional_call("put_object", {"IfNoneMatch": "*"}, Body=body, **args)
        else:
            with source.open() as f:
                resp = self._conditional_call("put_object", {"IfNoneMatch": "*"}, Body=f, **args)
        if resp is None:
            raise FileExistsInReplicaError("the key is taken (412 PreconditionFailed)", op="write")
        _check_put_response(resp, crc)

    def _multipart(
        self, target: _Target, key: str, source: _Source, crc: str, created_at: dt.datetime
    ) -> None:
        mpu = self._run(
            target,
            lambda: self._call(
                "create_multipart_upload",
                Key=key,
                ChecksumAlgorithm="CRC32C",
                ChecksumType="FULL_OBJECT",
                **self._put_args(created_at),
            ),
        )
        upload_id = mpu["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            for number, offset in enumerate(range(0, source.size, self.part_size), start=1):
                chunk = source.read_at(offset, self.part_size)
                part_crc = _crc32c_b64(int(crc32c.crc32c(chunk)))
                resp = self._run(
                    target,
                    lambda chunk=chunk, number=number, part_crc=part_crc: self._call(  # type: ignore[misc]
                        "upload_part",
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                        ContentLength=len(chunk),
                        ChecksumAlgorithm="CRC32C",
                        ChecksumCRC32C=part_crc,
                    ),
                )
                parts.append({"PartNumber": number, "ETag": resp["ETag"], "ChecksumCRC32C": part_crc})
            done = self._run(
                target,
                lambda: self._conditional_call(
                    "complete_multipart_upload",
                    {"IfNoneMatch": "*"},
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    ChecksumCRC32C=crc,
                    ChecksumType="FULL_OBJECT",
                ),
            )
            if done is None:
                raise FileExistsInReplicaError("the key is taken (412 PreconditionFailed)", op="write")
            _check_put_response(done, crc)
        except BaseException:
            try:
                self._call("abort_multipart_upload", Key=key, UploadId=upload_id)
            except Exception as exc:  # best effort; the original error matters more
                log.warning("abort multipart upload of %s failed: %s", self.location(key), exc)
            raise

    # objects beside the levels

    def _read_object(self, key: str) -> tuple[bytes, str]:
        return cast(tuple[bytes, str], self._sync(self._aget_versioned, key))

    async def _aget_versioned(self, key: str) -> tuple[bytes, str]:
        resp = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=key)
        async with resp["Body"] as body:
            data: bytes = await body.read()
        return data, str(resp.get("ETag") or _content_version(data))

    def _create_object(self, key: str, data: bytes) -> bool:
        resp = self._conditional_call("put_object", {"IfNoneMatch": "*"}, Key=key, Body=data)
        self.fs.invalidate_cache(self.fs_path(key))
        return resp is not None

    def _replace_object(self, key: str, data: bytes, version: str) -> bool:
        try:
            resp = self._conditional_call("put_object", {"IfMatch": version}, Key=key, Body=data)
        except FileNotFoundError:
            return False  # deleted meanwhile (S3 answers 404 to If-Match on a missing key)
        self.fs.invalidate_cache(self.fs_path(key))
        return resp is not None

    # reading

    def _read(self, key: str, offset: int, size: int | None) -> bytes:
        if size == 0:
            self._call("head_object", Key=key)  # still report a missing file
            return b""
        return cast(bytes, self._sync(self._aget, key, offset, size))

    async def _aget(self, key: str, offset: int, size: int | None) -> bytes:
        fs = self.fs
        kw: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        whole = offset == 0 and size is None
        if whole:
            kw["ChecksumMode"] = "ENABLED"
        else:
            end = "" if size is None else str(offset + size - 1)
            kw["Range"] = f"bytes={offset}-{end}"
        try:
            resp = await fs._call_s3("get_object", **kw)
        except OSError as exc:
            if _is_invalid_range(exc):
                # Offset at or past the end: like a local read, nothing to return, but
                # the object exists (a missing one gives NoSuchKey first).
                return b""
            raise
        async with resp["Body"] as body:
            data: bytes = await body.read()
        expected = resp.get("ContentLength")
        if expected is not None and len(data) != int(expected):
            raise _ShortReadError(f"got {len(data)} of {expected} bytes")
        if whole:
            stored = resp.get("ChecksumCRC32C")
            if stored and "-" not in stored:
                actual = _crc32c_b64(int(crc32c.crc32c(data)))
                if actual != stored:
                    raise StorageIntegrityError(
                        f"CRC32C mismatch: store recorded {stored}, data has {actual}",
                        path=self.location(key),
                        op="read",
                    )
        return data

    # deleting

    def _delete(self, infos: list[FileInfo]) -> None:
        for start in range(0, len(infos), S3_MAX_DELETE_KEYS):
            batch = infos[start : start + S3_MAX_DELETE_KEYS]
            keys = [self.key(i.level, i.min_txid, i.max_txid) for i in batch]
            first = batch[0]
            target = _Target("delete", self.location(keys[0]), first.level, first.min_txid, first.max_txid)
            self._run(target, lambda keys=keys: self._delete_keys(keys))  # type: ignore[misc]

    def _delete_keys(self, keys: list[str]) -> None:
        resp = self._call("delete_objects", Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
        errors = [e for e in resp.get("Errors", []) if e.get("Code") != "NoSuchKey"]
        if errors:
            shown = "; ".join(f"{e.get('Key')}: {e.get('Code')} {e.get('Message')}" for e in errors[:5])
            more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
            raise StorageError(
                f"{len(errors)} object(s) not deleted: {shown}{more}",
                path=self.location(keys[0]),
                op="delete",
            )
        for k in keys:
            self.fs.invalidate_cache(self.fs_path(k))

    def _delete_all(self) -> None:
        prefix = self.root + "/"
        keys: list[str] = []
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"Prefix": prefix}
            if token:
                kw["ContinuationToken"] = token
            resp = self._call("list_objects_v2", **kw)
            keys.extend(obj["Key"] for obj in resp.get("Contents", []))
            token = resp.get("NextContinuationToken")
            if not resp.get("IsTruncated") or not token:
                break
        for start in range(0, len(keys), S3_MAX_DELETE_KEYS):
            self._delete_keys(keys[start : start + S3_MAX_DELETE_KEYS])


def _utc(t: Any) -> dt.datetime:
    if isinstance(t, dt.datetime):
        return (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(t, int | float):
        return dt.datetime.fromtimestamp(t, UTC)
    if isinstance(t, str):
        return parse_rfc3339(t) or EPOCH
    return EPOCH


def _metadata_timestamp(metadata: dict[str, str]) -> dt.datetime | None:
    for k, v in metadata.items():
        if k.lower() in (TIMESTAMP_METADATA_KEY, ABS_TIMESTAMP_METADATA_KEY):
            return parse_rfc3339(v)
    return None


def _is_invalid_range(exc: BaseException) -> bool:
    cur: BaseException | None = exc
    while cur is not None:
        response = getattr(cur, "response", None)
        if isinstance(response, dict) and (response.get("Error") or {}).get("Code") == "InvalidRange":
            return True
        cur = cur.__cause__
    return False


def _service_code(exc: BaseException) -> str | None:
    """The S3 error code (or HTTP status as text) anywhere in an exception's cause chain."""
    cur: BaseException | None = exc
    seen: set[int] = set()
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        response = getattr(cur, "response", None)
        if isinstance(response, dict):
            code = (response.get("Error") or {}).get("Code")
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            if code or status:
                return str(code or status)
        cur = cur.__cause__ or cur.__context__
    return None


def _check_put_response(resp: dict[str, Any], crc: str) -> None:
    if not resp.get("ETag"):
        raise StorageError("store returned no ETag for the upload")
    stored = resp.get("ChecksumCRC32C")
    if stored and stored != crc:
        raise StorageIntegrityError(f"store recorded CRC32C {stored}, we sent {crc}")


# ----------------------------------------------------------------------------------------
# gs://, abs://, sftp://, webdav(s):// and injected filesystems


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

    def _write(self, target: _Target, key: str, source: _Source, created_at: dt.datetime) -> None:
        self._run(target, lambda: self._write_once(key, source, created_at))

    def _write_once(self, key: str, source: _Source, created_at: dt.datetime) -> None:
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
            ts = _metadata_timestamp({str(k): str(v) for k, v in meta.items()})
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
            return _utc(value)
    return EPOCH


# ----------------------------------------------------------------------------------------


def open_replica_client(
    url: str | os.PathLike[str] | ReplicaURL,
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
    fs: Any = None,
    **options: Any,
) -> ReplicaClient:
    """The client for a replica URL (or bare path); ``options`` go to the client class.

    ``fs`` injects a ready fsspec filesystem (used by S3 and generic clients; e.g.
    fsspec's ``memory`` filesystem in tests). Raises :class:`ReplicaURLError` for a
    bad URL. Backend packages are imported on first use, not here.
    """
    u = url if isinstance(url, ReplicaURL) else parse_replica_url(url)
    if u.scheme == "file":
        return LocalReplicaClient(u, retry=retry, fs=fs, **options)
    if u.scheme == "s3":
        return S3ReplicaClient(u, retry=retry, fs=fs, **options)
    return FsspecReplicaClient(u, retry=retry, fs=fs, **options)
