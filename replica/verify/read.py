"""Reading a replica for ``verify``: the listing, the owner record and every file, decoded.

Through the ordinary replica client, never writing. A store that stops answering
(unavailable, access denied) raises :class:`Abort`, which ends the check; any other
failure becomes a finding about the file concerned.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from typing import Any

from ltx.decoder import Decoder, IndexedFile
from ltx.errors import LTXError
from ltx.fileinfo import FileInfo
from replica.errors import (
    FileNotFoundInReplicaError,
    OwnershipError,
    StorageAccessDeniedError,
    StorageError,
    StorageUnavailableError,
)
from replica.ownership import OWNER_OBJECT, decode_record, record_to_json
from replica.restore import is_full_image
from replica.storage import ReplicaClient
from replica.verify.checks import Checked, err, file_findings, warn
from replica.verify.progress import Progress
from replica.verify.report import LEVELS, Finding, Severity


class Abort(Exception):
    """The store stopped answering: the check cannot go on."""

    def __init__(self, error: StorageError) -> None:
        super().__init__(str(error))
        self.error = error


def is_fatal(e: StorageError) -> bool:
    """Whether a storage error means the store itself is gone (not just one file)."""
    return isinstance(e, StorageUnavailableError | StorageAccessDeniedError)


def list_levels(client: ReplicaClient, parallelism: int) -> dict[int, list[FileInfo]]:
    """Every level's files, with their recorded timestamps; raises :class:`StorageError`.

    Level 0 is listed alone first, so an unreachable store fails once, not ten times.
    """
    first = client.list_files(0, use_metadata=True)
    with concurrent.futures.ThreadPoolExecutor(parallelism, thread_name_prefix="verify-list") as pool:
        rest = {lv: pool.submit(client.list_files, lv, use_metadata=True) for lv in LEVELS if lv != 0}
        return {0: first, **{lv: fut.result() for lv, fut in rest.items()}}


def read_owner(client: ReplicaClient) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The replica's owner record as JSON, or a warning saying why it cannot be shown."""
    where = client.location(client.object_key(OWNER_OBJECT))
    try:
        found = client.read_object(OWNER_OBJECT)
        if found is None:
            return None, []
        return record_to_json(decode_record(found[0], replica=client.name, path=where)), []
    except (OwnershipError, StorageError) as e:
        return None, [Finding(Severity.WARNING, None, OWNER_OBJECT, None, f"owner record: {e}", "owner")]


def check_file(client: ReplicaClient, info: FileInfo) -> Checked:
    """Read and decode one file and apply the single-file checks; raises :class:`Abort`."""
    where = client.location(client.key(info.level, info.min_txid, info.max_txid))
    try:
        with client.open_file(info.level, info.min_txid, info.max_txid, size=info.size or None) as f:
            dec = Decoder(f, path=where, level=info.level)
            trailer = dec.verify()
    except FileNotFoundInReplicaError:
        return Checked(
            info,
            findings=(warn(info, "vanished", "listed but gone when read (deleted by retention meanwhile?)"),),
            vanished=True,
        )
    except StorageError as e:
        if is_fatal(e):
            raise Abort(e) from e
        return Checked(info, findings=(err(info, "read", f"cannot read the file: {e.message}"),))
    except LTXError as e:
        return Checked(info, findings=(err(info, "decode", f"does not decode: {e.message}"),))
    h = dec.header
    full = is_full_image(IndexedFile(h, dec.page_index, trailer, dec.bytes_read))
    return Checked(info, h, full, dec.bytes_read, file_findings(info, h, dec.bytes_read))


def read_files(
    client: ReplicaClient,
    infos: Sequence[FileInfo],
    *,
    parallelism: int,
    progress: Progress | None,
    into: list[Checked],
) -> None:
    """:func:`check_file` for each of ``infos``, ``parallelism`` at once, appended to ``into``
    in order; raises :class:`Abort`, leaving in ``into`` what was read before."""
    with concurrent.futures.ThreadPoolExecutor(parallelism, thread_name_prefix="verify-read") as pool:
        futures = [pool.submit(check_file, client, i) for i in infos]
        try:
            for n, fut in enumerate(futures, 1):
                into.append(fut.result())
                if progress is not None:
                    progress("read", n, len(futures))
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
