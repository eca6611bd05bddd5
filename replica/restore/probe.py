"""What only a file's bytes tell the planner: page sizes and full images, read with ranged reads.

The planner (:mod:`replica.restore.plan`) is pure and works from a listing, which says
neither a file's page size nor whether it holds every page. This module finds out,
reading as little as it can, and runs the plan-probe loop that restores and level-9
snapshots use:

* a file's **page size** is in its 100-byte header (one ranged read);
* whether it is a **full image** is in its page index (header, tail and index: three
  ranged reads, :func:`probe_full_image`).

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
from typing import TypeVar

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


def _read_index(client: ReplicaClient, info: FileInfo) -> IndexedFile | None:
    """The header and page index of ``info``, or None if it is missing, damaged or misnamed."""
    where = client.location(client.key(info.level, info.min_txid, info.max_txid))
    try:
        with client.open_file(
            info.level, info.min_txid, info.max_txid, size=info.size or None, buffer_size=_PROBE_BUFFER
        ) as f:
            indexed = read_page_index(f, path=where, level=info.level)
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
    return indexed


def probe_full_image(client: ReplicaClient, info: FileInfo) -> bool:
    """Read a file's header and page index (ranged reads) and tell whether it is a full image.

    A file that is missing, damaged, or whose header TXIDs differ from its name is
    not (it cannot start a plan); storage failures other than "not found" propagate.
    """
    indexed = _read_index(client, info)
    return indexed is not None and is_full_image(indexed)


def read_file_header(client: ReplicaClient, info: FileInfo) -> Header:
    """The validated header of ``info`` (one ranged read of its first 100 bytes).

    Raises the decoder's error or :class:`CorruptBackupError` (header TXIDs differ from
    the name), located at the file; storage errors propagate.
    """
    where = client.location(client.key(info.level, info.min_txid, info.max_txid))
    raw = client.read_file(info.level, info.min_txid, info.max_txid, 0, HEADER_SIZE)
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
    :meth:`is_full` are the ``page_sizes`` and ``full_images`` the planner takes.
    """

    def __init__(self) -> None:
        self._sizes: dict[_Key, int] = {}
        self._full: dict[_Key, bool] = {}
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

    def add_size(self, info: FileInfo, page_size: int) -> None:
        with self._lock:
            self._sizes[_key(info)] = page_size

    def add_index(self, info: FileInfo, indexed: IndexedFile | None) -> None:
        with self._lock:
            self._full[_key(info)] = indexed is not None and is_full_image(indexed)
            if indexed is not None:
                self._sizes[_key(info)] = indexed.header.page_size

    def retain(self, listing: Mapping[int, Iterable[FileInfo]]) -> None:
        """Forget files that are not in ``listing`` any more (keeps a long-lived cache bounded)."""
        keep = {_key(f) for files in listing.values() for f in files}
        with self._lock:
            self._sizes = {k: v for k, v in self._sizes.items() if k in keep}
            self._full = {k: v for k, v in self._full.items() if k in keep}

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
    local copies of L0 files); by default each is a ranged read of the replica.
    """
    todo = list(dict.fromkeys(f for f in infos if facts.page_size(f) is None))
    reader = read_header or (lambda info: read_file_header(client, info))

    def one(info: FileInfo) -> None:
        facts.add_size(info, reader(info).page_size)

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
            indexes = _each(pool, lambda f: _read_index(client, f), cands)
            for f, indexed in zip(cands, indexes, strict=True):
                facts.add_index(f, indexed)
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
