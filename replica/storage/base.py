"""The replica client contract, its retry loop and the operations every store shares.

:class:`ReplicaClient` is one API over every store: list, stat, write, read, open
and delete LTX files by (level, min TXID, max TXID), and read or conditionally
write the few objects beside the levels (the owner record). Subclasses, one per
family of stores, supply only the backend hooks (``_list``, ``_stat``, ``_write``,
``_read``, ``_delete_one``/``_delete``, ``_delete_all``, and optionally ``_open`` and
the object hooks) and the constructor options of their own, passing
:class:`ClientOptions` on: :mod:`replica.storage.local`, :mod:`replica.storage.s3`,
:mod:`replica.storage.generic`.

Writes never replace a file: an LTX file or an object is created only if its name is
free, atomically where the store can do it (``file``: a no-replace rename of the
finished temporary file; ``s3``: ``If-None-Match: *``), with a check just before the
write elsewhere. A name found taken is compared with what we meant to write (see
:mod:`replica.storage.compare`): the same file, or the same state, counts as written;
anything else is another writer's, raises :class:`~replica.errors.ForeignFileError`
and *fences* the client, which then refuses every write and delete.

Every operation goes through one retry loop (:meth:`ReplicaClient._run`): failures
:func:`~replica.storage.retry.classify` calls transient are retried with the client's
:class:`~replica.storage.retry.RetryPolicy`; everything else is raised at once as a
typed :class:`~replica.errors.StorageError` (:func:`~replica.storage.failures.storage_error`)
naming the operation, object, level and TXID. The underlying library retries are
turned off so that the policy is the only one.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO, TypedDict, TypeVar, cast

import crc32c

from ltx.fileinfo import FileInfo
from ltx.names import SNAPSHOT_LEVEL
from replica.errors import (
    FileExistsInReplicaError,
    FileNotFoundInReplicaError,
    ForeignFileError,
    OwnershipError,
    StorageError,
)
from replica.storage.compare import Sameness, compare_ltx
from replica.storage.failures import Target, storage_error
from replica.storage.layout import check_level, level_dir, ltx_key, root_object_key
from replica.storage.ranged import RangedReader
from replica.storage.retry import DEFAULT_RETRY, ErrorKind, RetryPolicy, classify
from replica.storage.source import Data, Source
from replica.storage.timestamps import HEADER_PREFIX, UTC, header_timestamp
from replica.storage.url import ReplicaURL

log = logging.getLogger(__name__)

T = TypeVar("T")


class ClientOptions(TypedDict, total=False):
    """The keyword options every client takes (:class:`ReplicaClient`'s own).

    A backend's constructor takes its own options and passes these on untouched
    (``**options: Unpack[ClientOptions]``), so their defaults are :class:`ReplicaClient`'s.
    """

    retry: RetryPolicy
    """The retry policy of :meth:`ReplicaClient._run` (default :data:`DEFAULT_RETRY`)."""
    fs: Any
    """A ready fsspec filesystem to use instead of building one (tests, injected stores)."""
    sleep: Callable[[float], None]
    """How to wait between tries (default :func:`time.sleep`)."""


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
    ) -> Target:
        if min_txid is not None and max_txid is not None:
            path = self.location(self.key(level, min_txid, max_txid))
        else:
            path = self.location(self.level_dir(level))
        return Target(op, path, level, min_txid, max_txid)

    def _run(self, target: Target, fn: Callable[[], T]) -> T:
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
                raise storage_error(kind, exc, target, failures) from exc

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
            source = Source(data)
        except OSError as exc:
            raise target.error(f"cannot read the data to write: {exc}") from exc
        try:
            if created_at is None:
                created_at = header_timestamp(source.head())
                if created_at is None:
                    raise target.error("data does not start with an LTX header; pass created_at")
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
                raise target.error("the name keeps appearing and vanishing while we write it")
        finally:
            source.close()
        return FileInfo(level, min_txid, max_txid, source.size, when)

    def _settle(
        self, level: int, min_txid: int, max_txid: int, source: Source, when: dt.datetime
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
        return self._open(level, min_txid, max_txid, offset, size, buffer_size)

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
        self._run(Target("delete-all", self.location(self.root)), self._delete_all)

    # -- objects beside the levels (the owner record) -----------------------------------

    def read_object(self, name: str) -> tuple[bytes, str] | None:
        """The bytes of object ``name`` (see :meth:`object_key`) and a version tag; None if absent.

        The tag changes whenever the object is rewritten (an ETag on S3); give it to
        :meth:`replace_object`.
        """
        key = self.object_key(name)
        try:
            return self._run(Target("read", self.location(key)), lambda: self._read_object(key))
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
        return self._run(Target("write", self.location(key)), lambda: self._create_object(key, data))

    def replace_object(self, name: str, data: bytes, version: str) -> bool:
        """Overwrite object ``name`` only if it is still at ``version``; False if it changed or vanished.

        Atomic on S3 (``If-Match``); elsewhere the version is checked just before the write.
        """
        self._check_fence()
        key = self.object_key(name)
        return self._run(
            Target("write", self.location(key)), lambda: self._replace_object(key, data, version)
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

    def _write(self, target: Target, key: str, source: Source, created_at: dt.datetime) -> None:
        raise NotImplementedError

    def _read(self, key: str, offset: int, size: int | None) -> bytes:
        raise NotImplementedError

    def _open(
        self, level: int, min_txid: int, max_txid: int, offset: int, size: int | None, buffer_size: int
    ) -> BinaryIO:
        """:meth:`open_file` for remote stores: buffered ranged reads (:class:`RangedReader`)."""
        if size is None:
            size = self.stat_file(level, min_txid, max_txid).size
        raw = RangedReader(self, level, min_txid, max_txid, size)
        reader = io.BufferedReader(raw, buffer_size)
        if offset:
            reader.seek(offset)
        return cast(BinaryIO, reader)

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
        return data, content_version(data)

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
        self._write(Target("write", self.location(key)), key, Source(data), dt.datetime.now(UTC))

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


def content_version(data: bytes) -> str:
    """A version tag for an object read whole, where the store has none: its CRC32C and length."""
    return f"crc32c:{int(crc32c.crc32c(data)):08x}:{len(data)}"
