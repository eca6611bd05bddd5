"""What only a file's bytes tell the planner: page sizes and full images, read with ranged reads.

The planner (:mod:`replica.restore.plan`) is pure and works from a listing, which says
neither a file's page size nor whether it holds every page. This module finds out,
reading as little as it can, and runs the plan-probe loop that restores and level-9
snapshots use:

* a file's **page size** is in its 100-byte header (one ranged read);
* whether it is a **full image** is in its page index (header, tail and index: three
  ranged reads, :func:`probe_full_image`).

A :class:`FileFacts` made with ``keep_headers=True`` also keeps the raw header bytes it
read (either way): a page-index probe of a file whose header is kept does not read it
again, and a restore hands them to its fetcher instead of reading them again
(:mod:`replica.restore.fetch`), so each plan file's header is read once.

:func:`plan_with_probes` reads the page sizes of the files ending at the goal, then
plans with what it knows; it reads the headers of the plan's files whose size it does
not know yet, and plans again, until every file of the plan has a known size (the
planner keeps each plan to one page size, so the final plan is single-size). When no
plan exists it reads the page indexes of the files
:func:`~replica.restore.plan.probe_candidates` proposes, best first, a batch at a time,
at most ``max_probes`` of them. Only files that some candidate plan involves are ever
read, and every fact is cached in a :class:`FileFacts` (keyed by level, TXIDs and size:
LTX files are immutable), which a long-lived caller keeps across runs.
"""

from __future__ import annotations

import concurrent.futures
import io
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import BinaryIO, TypeVar, cast

import attrs

from ltx.decoder import IndexedFile, read_header, read_page_index
from ltx.errors import LTXError
from ltx.fileinfo import FileInfo
from ltx.fullimage import is_full_image as is_full_image
from ltx.header import Header
from ltx.layout import HEADER_SIZE
from replica.errors import FileNotFoundInReplicaError, StorageError
from replica.restore.errors import CorruptBackupError, RestorePlanError
from replica.restore.plan import (
    RestorePlan,
    RestoreTarget,
    goal_files,
    plan_restore,
    probe_candidates,
)
from replica.storage.client import ReplicaClient

log = logging.getLogger(__name__)

MAX_PROBES = 256
"""At most this many page indexes are read looking for a full image to start from."""
_PROBE_BUFFER = 32 * 1024

_Key = tuple[int, int, int, int]


def _key(info: FileInfo) -> _Key:
    return (info.level, info.min_txid, info.max_txid, info.size)


@attrs.frozen
class IndexRead:
    """A file's page index and the raw header bytes read with it."""

    indexed: IndexedFile
    raw_header: bytes


class _KnownHead:
    """A file whose first bytes were read already: reading them again does not reach ``rest``.

    Enough of a binary file for :func:`~ltx.decoder.read_page_index` (``read``, ``seek``,
    ``tell``); positions are ``rest``'s, and a read of the known bytes may be short.
    """

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._rest.seek(offset, whence)

    def tell(self) -> int:
        return self._rest.tell()

    def read(self, size: int = -1) -> bytes:
        pos = self._rest.tell()
        if pos >= len(self._head):
            return self._rest.read(size)
        end = len(self._head) if size < 0 else min(len(self._head), pos + size)
        self._rest.seek(end)
        return self._head[pos:end] + (self._rest.read() if size < 0 else b"")


def _read_index(client: ReplicaClient, info: FileInfo, head: bytes | None = None) -> IndexRead | None:
    """The header and page index of ``info``, or None if it is missing, damaged or misnamed.

    ``head``: the file's header bytes when they were read already (they are not read again).
    """
    where = client.location(client.key(info.level, info.min_txid, info.max_txid))
    try:
        with client.open_file(
            info.level, info.min_txid, info.max_txid, size=info.size or None, buffer_size=_PROBE_BUFFER
        ) as f:
            src = f if head is None else cast(BinaryIO, _KnownHead(head, f))
            if head is None:
                head = f.read(HEADER_SIZE)
                f.seek(0)  # back into the reader's first buffer: the header is not fetched again
            indexed = read_page_index(src, path=where, level=info.level)
    except FileNotFoundInReplicaError:
        return None
    except StorageError:
        raise
    except LTXError as e:
        log.debug("probe %s: not usable as a full image: %s", where, e)
        return None
    h = indexed.header
    if (h.min_txid, h.max_txid) != (info.min_txid, info.max_txid):
        return None
    return IndexRead(indexed, head)


def probe_full_image(client: ReplicaClient, info: FileInfo) -> bool:
    """Read a file's header and page index (ranged reads) and tell whether it is a full image.

    A file that is missing, damaged, or whose header TXIDs differ from its name is
    not (it cannot start a plan); storage failures other than "not found" propagate.
    """
    read = _read_index(client, info)
    return read is not None and is_full_image(read.indexed)


def read_header_bytes(client: ReplicaClient, info: FileInfo) -> bytes:
    """The first :data:`~ltx.layout.HEADER_SIZE` bytes of ``info`` (one ranged read)."""
    return client.read_file(info.level, info.min_txid, info.max_txid, 0, HEADER_SIZE)


def read_file_header(client: ReplicaClient, info: FileInfo) -> Header:
    """The validated header of ``info`` (one ranged read of its first 100 bytes).

    Raises the decoder's error or :class:`CorruptBackupError` (header TXIDs differ from
    the name), located at the file; storage errors propagate.
    """
    return check_file_header(client, info, read_header_bytes(client, info))


def check_file_header(client: ReplicaClient, info: FileInfo, raw: bytes) -> Header:
    """Decode ``raw``, the header bytes of ``info``, and check its TXIDs against the name.

    Raises the decoder's error or :class:`CorruptBackupError`, located at the file.
    """
    where = client.location(client.key(info.level, info.min_txid, info.max_txid))
    try:
        h = read_header(io.BytesIO(raw))
    except LTXError as e:
        raise e.located(path=where, level=info.level, txid=info.min_txid) from None
    if (h.min_txid, h.max_txid) != (info.min_txid, info.max_txid):
        raise CorruptBackupError(
            f"header says TXIDs {h.min_txid:016x}-{h.max_txid:016x}, the file name {info.name}",
            path=where,
            level=info.level,
            txid=info.min_txid,
        )
    return h


class FileFacts:
    """What has been read about replica files: page sizes, and which are full images.

    Keyed by (level, min TXID, max TXID, size). Thread-safe. :meth:`page_size` and
    :meth:`is_full` are the ``page_sizes`` and ``full_images`` the planner takes. With
    ``keep_headers`` the validated headers read from the replica are kept too, raw
    bytes included (:meth:`header`, :meth:`header_bytes`): a restore's facts do, so
    that each plan file's header is read once; a long-lived cache does not.
    """

    def __init__(self, *, keep_headers: bool = False) -> None:
        self._sizes: dict[_Key, int] = {}
        self._full: dict[_Key, bool] = {}
        self._headers: dict[_Key, tuple[Header, bytes]] | None = {} if keep_headers else None
        self._lock = threading.Lock()

    def page_size(self, info: FileInfo) -> int | None:
        """The file's page size, or None when not read yet."""
        return self._sizes.get(_key(info))

    def is_full(self, info: FileInfo) -> bool:
        """Whether the file is known to be a full image (False when unknown)."""
        return self._full.get(_key(info), False)

    def probed(self, info: FileInfo) -> bool:
        """Whether the file's page index has been read (so :meth:`is_full` is known)."""
        return _key(info) in self._full

    def header(self, info: FileInfo) -> Header | None:
        """The file's validated header, when kept (``keep_headers``) and read."""
        kept = None if self._headers is None else self._headers.get(_key(info))
        return None if kept is None else kept[0]

    def header_bytes(self, info: FileInfo) -> bytes | None:
        """The raw bytes of the file's validated header, when kept (``keep_headers``) and read."""
        kept = None if self._headers is None else self._headers.get(_key(info))
        return None if kept is None else kept[1]

    def add_size(self, info: FileInfo, page_size: int) -> None:
        """Record the file's page size (read from a header that is not kept)."""
        with self._lock:
            self._sizes[_key(info)] = page_size

    def add_header(self, info: FileInfo, header: Header, raw: bytes) -> None:
        """Record the file's validated header: its page size, and (``keep_headers``) the header."""
        with self._lock:
            self._sizes[_key(info)] = header.page_size
            if self._headers is not None:
                self._headers[_key(info)] = (header, raw)

    def add_index(self, info: FileInfo, read: IndexRead | None) -> None:
        """Record a page-index probe: whether the file is a full image, and its header if usable."""
        if read is None:
            with self._lock:
                self._full[_key(info)] = False
            return
        self.add_header(info, read.indexed.header, read.raw_header)
        with self._lock:
            self._full[_key(info)] = is_full_image(read.indexed)

    def retain(self, listing: Mapping[int, Iterable[FileInfo]]) -> None:
        """Forget files that are not in ``listing`` any more (keeps a long-lived cache bounded)."""
        keep = {_key(f) for files in listing.values() for f in files}
        with self._lock:
            self._sizes = {k: v for k, v in self._sizes.items() if k in keep}
            self._full = {k: v for k, v in self._full.items() if k in keep}
            if self._headers is not None:
                self._headers = {k: v for k, v in self._headers.items() if k in keep}

    def __len__(self) -> int:
        return len(self._sizes.keys() | self._full.keys())


T = TypeVar("T")


def _each(
    pool: concurrent.futures.Executor | None, fn: Callable[[FileInfo], T], infos: list[FileInfo]
) -> list[T]:
    """``fn`` of every file, in order; in parallel on ``pool`` when given (the first error raises)."""
    if pool is None:
        return [fn(f) for f in infos]
    return list(pool.map(fn, infos))


HeaderReader = Callable[[FileInfo], Header]
"""Reads one file's validated header (raising located errors); by default :func:`read_file_header`."""


def read_page_sizes(
    client: ReplicaClient,
    facts: FileFacts,
    infos: Iterable[FileInfo],
    pool: concurrent.futures.Executor | None = None,
    read_header: HeaderReader | None = None,
) -> None:
    """Read the headers of the files in ``infos`` whose page size ``facts`` lacks (on ``pool``).

    ``read_header`` lets a caller read some headers elsewhere (the replicator reads its
    local copies of L0 files; their bytes are not kept); by default each is a ranged
    read of the replica, whose bytes ``facts`` keeps if it keeps headers.
    """
    todo = list(dict.fromkeys(f for f in infos if facts.page_size(f) is None))

    def one(info: FileInfo) -> None:
        if read_header is not None:
            facts.add_size(info, read_header(info).page_size)
            return
        raw = read_header_bytes(client, info)
        facts.add_header(info, check_file_header(client, info, raw), raw)

    _each(pool, one, todo)


def plan_with_probes(
    client: ReplicaClient,
    listing: Mapping[int, Iterable[FileInfo]],
    target: RestoreTarget,
    *,
    facts: FileFacts | None = None,
    pool: concurrent.futures.Executor | None = None,
    batch: int = 8,
    max_probes: int = MAX_PROBES,
    read_header: HeaderReader | None = None,
) -> RestorePlan:
    """Plan a restore of ``listing`` to ``target``, reading what the planner needs to know.

    The returned plan's files all have one page size (read from their headers), that of
    the state at the goal; it starts at a snapshot or at a file whose page index shows
    a full image. Raises the planner's error when no plan exists even with what the
    probes found, and the errors of reading a plan file's header (located at the file).
    ``read_header`` is passed to :func:`read_page_sizes`.
    """
    facts = facts if facts is not None else FileFacts()
    levels = {lvl: list(files) for lvl, files in listing.items()}
    read_page_sizes(client, facts, goal_files(levels, target), pool, read_header)
    probes = 0
    while True:
        try:
            plan = plan_restore(levels, target, full_images=facts.is_full, page_sizes=facts.page_size)
        except RestorePlanError as e:
            proposed = probe_candidates(levels, target, full_images=facts.is_full, page_sizes=facts.page_size)
            cands = [f for f in proposed if not facts.probed(f)][: max(0, min(batch, max_probes - probes))]
            if not cands:
                raise e from None
            probes += len(cands)
            reads = _each(pool, lambda f: _read_index(client, f, facts.header_bytes(f)), cands)
            for f, read in zip(cands, reads, strict=True):
                facts.add_index(f, read)
            continue
        unknown = [f for f in plan.files if facts.page_size(f) is None]
        if not unknown:
            break
        read_page_sizes(client, facts, unknown, pool, read_header)
    if not plan.litestream_compatible:
        log.info(
            "restore plan to %s starts from the full image L%d/%s (no snapshot chain of one "
            "page size reaches it)",
            target,
            plan.start.level,
            plan.start.name,
        )
    return plan
