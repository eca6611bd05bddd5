"""Carrying out a restore: list the replica, plan, fetch, write a temporary file, publish it.

:func:`restore` is the entry point (Litestream's ``Replica.Restore`` and the
``litestream restore`` preparation of the output path, reference §5.1/§5.5);
:func:`calc_restore_plan` is the planning half alone (for ``-dry-run`` and for
the CLI's JSON ``txid``).

Design choices:

* **Fetching** (:mod:`replica.restore.fetch`): the plan's files are cut into ranged
  reads of :data:`CHUNK_SIZE` bytes, fetched by ``parallelism`` workers and consumed
  in order, with at most ``2 * parallelism`` chunks in flight or waiting, so memory
  stays under ``2 * parallelism * CHUNK_SIZE`` (32 MiB at the default 8) plus one page
  index, whatever the database size, and no disk space beyond the output is needed.
* **Applying** (:mod:`replica.restore.apply`): file by file in plan order, every page
  written in place, a later copy of a page overwriting an earlier one; every page
  ``1..Commit`` but the lock page must come from some file of the plan, or the restore
  fails (:class:`CorruptBackupError`). The output is then truncated (or extended) to
  exactly ``Commit`` pages, so the lock page reads as zeros.
* **Nothing at the output path on failure, and nothing replaced that the restore
  did not create.** Pages go to ``<output>.<random>.tmp``, created with ``O_EXCL``
  for this restore alone (:mod:`replica.restore.output`); on success it is truncated
  to size, fsynced and moved to the output without replacing anything that appeared
  there meanwhile (unless ``force``), and the directory is fsynced; on any failure,
  Ctrl-C included, it is removed. The plan (including its contiguity) is checked
  before the temporary file is created. OS errors on the output side are raised as
  :class:`~replica.restore.errors.RestoreOutputError` naming the output.
* **Page sizes and full images found by probing** (:mod:`replica.restore.probe`): the
  headers of the plan's files are read (100 bytes each, ``parallelism`` at a time) so
  that a plan never spans a page-size change; when no plan of one page size reaches
  the target, :func:`calc_restore_plan` reads the page index of the files
  :func:`~replica.restore.plan.probe_candidates` proposes (header, tail and index:
  three ranged reads each, at most :data:`MAX_PROBES`) until it finds a full image of
  the right page size to start from.
* **Each header read once**: a restore's probe keeps the header bytes it read; the
  preflight takes the page size and Commit from the last file's, and the fetcher is
  handed them all, so no plan file's header is fetched twice.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Literal

import attrs

from ltx.fileinfo import FileInfo
from ltx.layout import HEADER_SIZE
from replica.restore.apply import Coverage, apply_plan
from replica.restore.errors import (
    CorruptBackupError,
    IntegrityCheckError,
    RestoreOptionsError,
)
from replica.restore.fetch import CHUNK_SIZE as CHUNK_SIZE
from replica.restore.fetch import Fetcher
from replica.restore.output import TempOutput, check_output, make_parent, output_error
from replica.restore.plan import (
    LEVELS,
    RestorePlan,
    RestoreTarget,
    check_contiguous,
)
from replica.restore.probe import MAX_PROBES as MAX_PROBES
from replica.restore.probe import FileFacts, plan_with_probes, read_file_header
from replica.restore.probe import is_full_image as is_full_image
from replica.restore.probe import probe_full_image as probe_full_image
from replica.storage.client import ReplicaClient

log = logging.getLogger(__name__)

IntegrityCheck = Literal["none", "quick", "full"]
INTEGRITY_CHECKS: tuple[str, ...] = ("none", "quick", "full")
Progress = Callable[[int, int], None]
"""``progress(done_bytes, total_bytes)``: called from the restoring thread as file data is applied."""

MIN_LTX_SIZE = HEADER_SIZE
"""A listed file smaller than an LTX header cannot be one (Litestream's check)."""

# The executor's parts under the names the tests that drive them one by one use.
_Fetcher = Fetcher
_Coverage = Coverage
_apply = apply_plan


@attrs.frozen
class RestoreResult:
    """What a restore did.

    ``txid`` is the restored database's TXID; ``files`` the plan's files in apply
    order; ``bytes`` the bytes read from them; ``duration`` wall seconds. With
    ``if_db_not_exists`` and an existing output, ``skipped`` is true and nothing
    else is set.
    """

    output_path: str
    txid: int
    files: tuple[FileInfo, ...]
    bytes: int
    duration: float
    page_size: int = 0
    page_count: int = 0
    plan: RestorePlan | None = None
    skipped: bool = False


# --- listing and planning ---------------------------------------------------------------


def list_replica(
    client: ReplicaClient,
    *,
    use_metadata: bool = False,
    pool: concurrent.futures.Executor | None = None,
) -> dict[int, list[FileInfo]]:
    """Every level's files (levels 0..9), listed concurrently when ``pool`` is given.

    ``use_metadata`` asks object stores for the recorded LTX timestamps (needed for
    point-in-time restores on S3, where the listing's own time is the upload time).
    """
    if pool is None:
        return {lvl: client.list_files(lvl, use_metadata=use_metadata) for lvl in LEVELS}
    futures = {lvl: pool.submit(client.list_files, lvl, use_metadata=use_metadata) for lvl in LEVELS}
    return {lvl: fut.result() for lvl, fut in futures.items()}


def _target(txid: int | None, timestamp: dt.datetime | None) -> RestoreTarget:
    if txid == 0:
        txid = None  # Litestream: 0 means latest
    return RestoreTarget(txid=txid, timestamp=timestamp)


def calc_restore_plan(
    client: ReplicaClient,
    *,
    txid: int | None = None,
    timestamp: dt.datetime | None = None,
    parallelism: int = 8,
    max_probes: int = MAX_PROBES,
) -> RestorePlan:
    """List the replica and plan a restore to ``txid`` / ``timestamp`` / latest (``None``, ``None``).

    Reads the headers of the plan's files (the plan has one page size) and probes page
    indexes for full images when Litestream's rule finds no such plan (see the module
    docstring). Raises :class:`~replica.restore.errors.RestorePlanError` subclasses and
    the errors of reading a plan file's header.
    """
    target = _target(txid, timestamp)
    if parallelism < 1:
        raise RestoreOptionsError(f"invalid parallelism {parallelism}: must be at least 1")
    with concurrent.futures.ThreadPoolExecutor(parallelism, thread_name_prefix="restore-plan") as pool:
        listing = list_replica(client, use_metadata=timestamp is not None, pool=pool)
        return plan_with_probes(client, listing, target, pool=pool, batch=parallelism, max_probes=max_probes)


# --- checking, applying, publishing ----------------------------------------------------


def _preflight(client: ReplicaClient, plan: RestorePlan, facts: FileFacts | None = None) -> tuple[int, int]:
    """Check the plan before anything is written; return (page size, final Commit).

    Both come from the last file's header: the one ``facts`` kept, else read now.
    """
    check_contiguous(plan.files)
    for f in plan.files:
        if f.size < MIN_LTX_SIZE:
            raise CorruptBackupError(
                f"invalid ltx file: level={f.level} min={f.min_txid:016x} max={f.max_txid:016x} "
                f"has size {f.size} bytes (minimum {MIN_LTX_SIZE})",
                path=client.location(client.key(f.level, f.min_txid, f.max_txid)),
                level=f.level,
                txid=f.min_txid,
            )
    last = plan.files[-1]
    header = facts.header(last) if facts is not None else None
    if header is None:
        header = read_file_header(client, last)
    return header.page_size, header.commit


def _integrity_check(path: str, mode: str) -> None:
    pragma = "quick_check" if mode == "quick" else "integrity_check"
    try:
        con = sqlite3.connect(path, isolation_level=None)
        try:
            rows = tuple(str(r[0]) for r in con.execute(f"PRAGMA {pragma}").fetchmany(100))
        finally:
            con.close()
    except sqlite3.Error as e:
        rows = (f"error: {e}",)
    ok = rows == ("ok",)
    for suffix in ("-wal", "-shm") if ok else ("", "-wal", "-shm"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise output_error(path, f"cannot remove {path + suffix}", e) from None
    if ok:
        return
    raise IntegrityCheckError(
        f"{pragma} failed: {'; '.join(rows[:5])}; the restored database was removed", results=rows, path=path
    )


def restore(
    client: ReplicaClient,
    output_path: str | os.PathLike[str],
    *,
    txid: int | None = None,
    timestamp: dt.datetime | None = None,
    integrity_check: str = "none",
    if_db_not_exists: bool = False,
    force: bool = False,
    parallelism: int = 8,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore the database in ``client``'s replica to ``output_path``.

    Target: the latest state, the state after ``txid`` (inclusive; 0 means latest), or
    the state at ``timestamp`` (files created strictly before it). Not both.

    Output: refused if it is a directory, or non-empty, or has ``-wal``/``-shm``/
    ``-journal`` sidecars, unless ``force`` (then they are replaced/removed when the new
    file is renamed into place); an empty file is replaced. Without ``force``, a file or
    sidecar that appears at the output while the restore runs is never replaced: the
    restore fails with :class:`~replica.restore.errors.OutputExistsError` instead. With
    ``if_db_not_exists`` an existing output (even empty) is left alone and the result
    has ``skipped=True``. The parent directory is created (mode 0700) if missing.

    Guarantees on success: the output is the page image of the database at the
    returned TXID, exactly ``Commit`` pages, lock page zeroed; every file used was
    fully read and its checksum verified; the bytes were fsynced and atomically
    renamed, and the directory fsynced. ``integrity_check`` (``none``, ``quick`` or
    ``full``) then runs SQLite's check, removing the output on failure. On any
    failure nothing is left at the output path (a previous file there is untouched,
    except after a failed integrity check).

    Raises :class:`~replica.restore.errors.RestoreError` subclasses (an OS error on the
    output side is a :class:`~replica.restore.errors.RestoreOutputError` naming the
    output), decoder errors (:class:`ltx.errors.LTXError`, e.g. a file checksum
    mismatch) and :class:`~replica.errors.StorageError`.
    """
    started = time.monotonic()
    output = os.path.abspath(os.fspath(output_path))
    if integrity_check not in INTEGRITY_CHECKS:
        raise RestoreOptionsError(f"unsupported integrity check mode: {integrity_check!r}")
    if parallelism < 1:
        raise RestoreOptionsError(f"invalid parallelism {parallelism}: must be at least 1")
    target = _target(txid, timestamp)
    if if_db_not_exists and os.path.lexists(output):
        log.info("database already exists, skipping: %s", output)
        return RestoreResult(output, 0, (), 0, time.monotonic() - started, skipped=True)
    seen = check_output(output, force)

    with concurrent.futures.ThreadPoolExecutor(parallelism, thread_name_prefix="restore") as pool:
        listing = list_replica(client, use_metadata=timestamp is not None, pool=pool)
        facts = FileFacts(keep_headers=True)
        plan = plan_with_probes(
            client, listing, target, facts=facts, pool=pool, batch=parallelism, max_probes=MAX_PROBES
        )
        page_size, commit = _preflight(client, plan, facts)
        log.info(
            "restoring %s to %s: %d file(s), txid %016x-%016x, %d bytes",
            client.location(client.root),  # no query string: it may hold keys
            output,
            len(plan.files),
            plan.min_txid,
            plan.txid,
            plan.size,
        )
        make_parent(output)
        total = plan.size
        done = 0

        def on_bytes(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        if progress is not None:
            progress(0, total)
        # this module's CHUNK_SIZE, read now: setting it shrinks the ranged reads
        heads = [facts.header_bytes(f) for f in plan.files]  # read while planning: not again
        fetcher = Fetcher(
            client, plan.files, pool, window=2 * parallelism, chunk_size=CHUNK_SIZE, heads=heads
        )
        created: list[str] = []
        tmp: TempOutput | None = None
        try:
            tmp = TempOutput(output, created)
            on_error = functools.partial(tmp.error, "cannot write")
            apply_plan(client, plan, tmp.fd, page_size, commit, fetcher, on_bytes, on_error)
            tmp.publish(commit * page_size, force=force, seen=seen)
        except BaseException:
            fetcher.cancel()
            if tmp is not None:
                tmp.discard()
            for name in created:  # created, but a signal came before it was ours to discard
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)
            raise

    if integrity_check != "none":
        _integrity_check(output, integrity_check)
    duration = time.monotonic() - started
    log.info("restored %s at txid %016x in %.3fs", output, plan.txid, duration)
    return RestoreResult(
        output_path=output,
        txid=plan.txid,
        files=plan.files,
        bytes=done,
        duration=duration,
        page_size=page_size,
        page_count=commit,
        plan=plan,
    )
