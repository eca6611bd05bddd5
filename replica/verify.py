"""``verify``: check that a replica is whole, consistent and restorable.

Works on any Litestream 0.5 replica, whoever wrote it (this project or the Go
``litestream``), through the ordinary replica clients. Nothing is written to the
replica. :func:`verify_replica` runs the checks and returns a :class:`VerifyReport`;
:func:`run` is the command line's half (open the URL, print, exit code).

The checks, in order (each problem becomes one :class:`Finding`; ``code`` names the check):

1. **Listing** every level 0..9 (``storage``/``empty``): a store that cannot be
   listed, a missing bucket, or a replica with no LTX file at all stop the check
   with status ``unreachable`` / ``not-a-replica`` (exit 2).
2. **Every file** is read in full and decoded with :class:`ltx.decoder.Decoder`,
   which verifies the page order, the lock page's absence, LZ4 payloads, the page
   index and the file checksum (``decode``; a read failure is ``read``). Then:
   the header's TXID range must equal the file name's (``name``: a renamed or
   misplaced file); level-9 files must be snapshots ``1-<TXID>`` and level-0 files
   should cover one TXID (``level``); the bytes read must equal the listed size
   (``size``); the listed creation time (file mtime, S3 metadata), which
   point-in-time restores go by, should equal the header timestamp (``timestamp``,
   a warning).
3. **Each level 0..8 is a chain** (``gap``/``overlap``): sorted by TXID, every file
   must start right after the previous one ends. A hole is an error, unless the
   file after it is a *full image* (holds every page; a restart point our
   replicator writes after losing files it never uploaded), which makes it a
   warning: those states are lost, later ones restore. Litestream's retention only
   ever removes the oldest files of a level, so a hole in the middle means files
   were lost; a hole in level 1+ that lower levels still bridge is an error too,
   because Litestream's retention will delete the lower files on the strength of
   the higher level's maximum. A file wholly inside another of its level is a
   redundant warning; a partial overlap (two histories, TXID reuse) is an error.
4. **Files that end at the same TXID agree** (``consistency``): same page size and
   database size, or they come from different histories. Header timestamps that go
   backwards within a level are a warning (``timestamp``). **Level 0 follows one WAL**
   (``chain``): every L0 file written from a WAL records where its read started and
   how much it read (header ``wal_offset``/``wal_size``/salts); an incremental file
   must start where the file of the TXID before it ended, in the same WAL generation,
   or at the start of a new generation (offset 32). Anything else means the two
   files were read from different WALs: two writers (two databases, or two
   replicators of one database) wrote this replica. Full images, and files that
   record no WAL position, restart the chain.
5. **Levels cover each other** (``coverage``): from the oldest retained restore
   point (the earliest full image: a snapshot, a chain start at TXID 1 or a full
   "snapshot L0") every TXID up to the replica's maximum must be in some file of
   some level, except holes that a later full image makes restores skip
   (warnings). The restore planner (:func:`replica.restore.plan_restore`, told
   which files are full images) must find a contiguous plan for the latest state
   (``plan``); if only this implementation can restore it (the plan does not start
   with Litestream's snapshot chain), that is a warning (``compat``).
6. **A real restore** of the latest state into a temporary directory with
   ``PRAGMA integrity_check`` (``restore``/``integrity``). With ``deep``, a restore
   at every file boundary (every distinct max TXID from the oldest restore point
   on) too; a boundary the planner cannot reach (retention removed what it needs)
   is a warning, a restore that fails or does not pass the check an error.

The owner record our replicator writes (:mod:`replica.ownership`), when present, is
shown in the report; one that cannot be read is a warning (``owner``).

Exit codes: 0 healthy (warnings allowed), 1 damaged (at least one error), 2
unreachable or not a replica. A store that fails midway makes the report
``unreachable``: it says what was checked before.

Verifying a replica that is being written to is allowed, but files deleted by
retention while the check runs are reported (``vanished``, a warning).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import enum
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

import attrs

from ltx.decoder import Decoder, IndexedFile
from ltx.errors import LTXError
from ltx.fileinfo import FileInfo
from ltx.header import Header
from ltx.names import format_filename
from replica.errors import (
    FileNotFoundInReplicaError,
    OwnershipError,
    StorageAccessDeniedError,
    StorageError,
    StorageUnavailableError,
)
from replica.ownership import OWNER_OBJECT, decode_record, record_to_json
from replica.restore import (
    IntegrityCheckError,
    NoBackupError,
    NonContiguousError,
    RestorePlan,
    RestorePlanError,
    RestoreTarget,
    is_full_image,
    plan_restore,
    restore,
)
from replica.storage import ReplicaClient, open_replica_client

__all__ = [
    "EXIT_DAMAGED",
    "EXIT_HEALTHY",
    "EXIT_UNREACHABLE",
    "Finding",
    "Progress",
    "Severity",
    "Status",
    "VerifyReport",
    "run",
    "verify_replica",
]

EXIT_HEALTHY = 0
EXIT_DAMAGED = 1
EXIT_UNREACHABLE = 2

SNAPSHOT_LEVEL = 9
LEVELS = range(10)
CHAIN_LEVELS = range(9)
"""Levels whose files must form a contiguous chain (0 and the compaction levels)."""
TIMESTAMP_TOLERANCE = dt.timedelta(milliseconds=1)
"""Listed creation time vs header timestamp: the header has millisecond precision."""
DEFAULT_PARALLELISM = 8
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``; ``phase`` is ``"read"`` (files decoded) or
``"restore"`` (restores done). Called from the verifying thread."""


class Severity(enum.Enum):
    """How bad a finding is: errors make the replica *damaged* (exit 1), warnings do not."""

    ERROR = "error"
    WARNING = "warning"


class Status(enum.Enum):
    """The verdict. ``exit_code`` is what ``verify`` exits with."""

    HEALTHY = "healthy"
    DAMAGED = "damaged"
    UNREACHABLE = "unreachable"
    NOT_A_REPLICA = "not-a-replica"

    @property
    def exit_code(self) -> int:
        if self is Status.HEALTHY:
            return EXIT_HEALTHY
        if self is Status.DAMAGED:
            return EXIT_DAMAGED
        return EXIT_UNREACHABLE


def _hex(txid: int | None) -> str | None:
    return None if txid is None else f"{txid:016x}"


def _span(lo: int, hi: int) -> str:
    """``TXID x is`` / ``TXIDs x-y are``: the subject of a sentence about missing TXIDs."""
    return f"TXID {lo:016x} is" if lo == hi else f"TXIDs {lo:016x}-{hi:016x} are"


@attrs.frozen
class Finding:
    """One problem: what (``message``), how bad, where, and which check found it.

    ``level`` and ``file`` (a base name ``<min>-<max>.ltx``) locate it in the replica
    when it concerns one file; ``txid`` is the TXID it is about (a file's min TXID, the
    first missing TXID of a gap, the target of a failed restore). ``code`` is the
    check: ``storage``, ``empty``, ``owner``, ``read``, ``vanished``, ``decode``, ``name``,
    ``level``, ``size``, ``timestamp``, ``gap``, ``overlap``, ``consistency``, ``chain``,
    ``coverage``, ``plan``, ``compat``, ``restore``, ``integrity``.
    """

    severity: Severity
    level: int | None
    file: str | None
    txid: int | None
    message: str
    code: str

    @property
    def location(self) -> str:
        """``L<level>/<file>``, ``L<level>``, or ``replica``."""
        if self.level is not None and self.file is not None:
            return f"L{self.level}/{self.file}"
        if self.level is not None:
            return f"L{self.level}"
        if self.file is not None:
            return self.file
        return "replica"

    def to_text(self) -> str:
        """One line: ``error: L0/0000000000000003-0000000000000003.ltx: <message> [code]``."""
        return f"{self.severity.value}: {self.location}: {self.message} [{self.code}]"

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity.value,
            "code": self.code,
            "level": self.level,
            "file": self.file,
            "txid": _hex(self.txid),
            "message": self.message,
        }


def _findings_tuple(value: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(value)


def _levels_tuple(value: Iterable[int]) -> tuple[int, ...]:
    t = tuple(value)
    if len(t) != len(LEVELS):
        raise ValueError(f"files_per_level needs {len(LEVELS)} counts, got {len(t)}")
    return t


@attrs.frozen
class VerifyReport:
    """What ``verify`` found in one replica.

    ``status`` is the verdict (its :attr:`Status.exit_code` the exit code): it is
    ``damaged`` exactly when some finding is an error, unless the check could not
    run to the end (``unreachable``) or found no replica (``not-a-replica``).
    ``files_per_level[L]`` counts the files listed at level L; ``files_checked`` those
    that decoded in full with a valid checksum; ``bytes`` the bytes read. ``latest_txid`` is the
    replica's highest TXID (0 if unknown); ``oldest_restore_txid`` the earliest state a
    restore can produce (the earliest full image), ``None`` if there is none;
    ``restored_txid`` the TXID the latest-state restore reached (``None`` if it did not
    run or failed). ``restores`` counts the restores that passed the integrity check.
    ``owner`` is the replica's owner record (:func:`replica.ownership.record_to_json`),
    ``None`` when there is none (or it cannot be read: then an ``owner`` finding says why).
    """

    url: str
    status: Status
    findings: tuple[Finding, ...] = attrs.field(converter=_findings_tuple)
    files_per_level: tuple[int, ...] = attrs.field(default=(0,) * 10, converter=_levels_tuple)
    files_checked: int = 0
    bytes: int = 0
    latest_txid: int = 0
    oldest_restore_txid: int | None = None
    restored_txid: int | None = None
    restores: int = 0
    deep: bool = False
    duration: float = 0.0
    owner: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        return self.status.exit_code

    @property
    def file_count(self) -> int:
        return sum(self.files_per_level)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    def summary(self) -> str:
        """The last line of the text output."""
        levels = ", ".join(f"L{lv}: {n}" for lv, n in enumerate(self.files_per_level) if n)
        parts = [f"{self.status.value}: {self.url}"]
        if self.owner is not None:
            o = self.owner
            parts.append(
                f"owner: database {o.get('database')} on host {o.get('host')} (claimed {o.get('claimed_at')} "
                f"by {o.get('tool')} {o.get('tool_version')}, writer {o.get('writer_id')})"
            )
        if self.file_count:
            parts.append(
                f"{self.file_count} files ({levels}), {self.files_checked} verified, {self.bytes} bytes"
            )
            parts.append(f"latest txid {_hex(self.latest_txid)}")
            if self.oldest_restore_txid is not None:
                parts.append(f"oldest restore point {_hex(self.oldest_restore_txid)}")
            parts.append(
                f"{self.restores} restore(s) passed integrity_check" + (" (deep)" if self.deep else "")
            )
        parts.append(f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return "; ".join(parts)

    def to_text(self) -> str:
        """One line per finding, then :meth:`summary`; ends with a newline."""
        return "".join(f.to_text() + "\n" for f in self.findings) + self.summary() + "\n"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; TXIDs are 16-hex strings (``null`` when unknown)."""
        return {
            "url": self.url,
            "status": self.status.value,
            "exit_code": self.exit_code,
            "deep": self.deep,
            "latest_txid": _hex(self.latest_txid) if self.latest_txid else None,
            "oldest_restore_txid": _hex(self.oldest_restore_txid),
            "restored_txid": _hex(self.restored_txid),
            "files": self.file_count,
            "files_per_level": {str(lv): n for lv, n in enumerate(self.files_per_level) if n},
            "files_checked": self.files_checked,
            "bytes": self.bytes,
            "restores": self.restores,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "duration_ms": int(self.duration * 1000),
            "owner": self.owner,
            "findings": [f.to_json() for f in self.findings],
        }


# --- per-file checks --------------------------------------------------------------------


@attrs.frozen
class _Checked:
    """The outcome of reading one listed file."""

    info: FileInfo
    header: Header | None = None
    full_image: bool = False
    bytes_read: int = 0
    findings: tuple[Finding, ...] = ()
    vanished: bool = False

    @property
    def ok(self) -> bool:
        """Decoded without an error (warnings allowed)."""
        return (
            self.header is not None
            and not self.vanished
            and not any(f.severity is Severity.ERROR for f in self.findings)
        )


class _Abort(Exception):
    """The store stopped answering: the check cannot go on."""

    def __init__(self, error: StorageError) -> None:
        super().__init__(str(error))
        self.error = error


def _err(info: FileInfo, code: str, message: str, txid: int | None = None) -> Finding:
    return Finding(
        Severity.ERROR, info.level, info.name, info.min_txid if txid is None else txid, message, code
    )


def _warn(info: FileInfo, code: str, message: str, txid: int | None = None) -> Finding:
    return Finding(
        Severity.WARNING, info.level, info.name, info.min_txid if txid is None else txid, message, code
    )


def _is_fatal(e: StorageError) -> bool:
    return isinstance(e, StorageUnavailableError | StorageAccessDeniedError)


def _check_file(client: ReplicaClient, info: FileInfo) -> _Checked:
    """Read and decode one file and apply the single-file checks; raises :class:`_Abort`."""
    where = client.location(client.key(info.level, info.min_txid, info.max_txid))
    try:
        with client.open_file(info.level, info.min_txid, info.max_txid, size=info.size or None) as f:
            dec = Decoder(f, path=where, level=info.level)
            trailer = dec.verify()
    except FileNotFoundInReplicaError:
        return _Checked(
            info,
            findings=(
                _warn(info, "vanished", "listed but gone when read (deleted by retention meanwhile?)"),
            ),
            vanished=True,
        )
    except StorageError as e:
        if _is_fatal(e):
            raise _Abort(e) from e
        return _Checked(info, findings=(_err(info, "read", f"cannot read the file: {e.message}"),))
    except LTXError as e:
        return _Checked(info, findings=(_err(info, "decode", f"does not decode: {e.message}"),))
    h = dec.header
    found: list[Finding] = []
    if (h.min_txid, h.max_txid) != (info.min_txid, info.max_txid):
        found.append(
            _err(
                info,
                "name",
                f"the header says TXIDs {h.min_txid:016x}-{h.max_txid:016x} "
                f"({format_filename(h.min_txid, h.max_txid)}): the file was renamed or misplaced",
            )
        )
    if info.level == SNAPSHOT_LEVEL and info.min_txid != 1:
        found.append(
            _err(info, "level", "a level-9 file must be a snapshot named 0000000000000001-<txid>.ltx")
        )
    if info.level == 0 and info.min_txid != info.max_txid:
        found.append(_warn(info, "level", "a level-0 file should cover exactly one TXID"))
    if info.size and dec.bytes_read != info.size:
        found.append(_err(info, "size", f"listed as {info.size} bytes but {dec.bytes_read} bytes were read"))
    listed = info.created_at
    if listed.timestamp() > 0:
        header_time = _EPOCH + dt.timedelta(milliseconds=h.timestamp)
        if abs(listed - header_time) > TIMESTAMP_TOLERANCE:
            found.append(
                _warn(
                    info,
                    "timestamp",
                    f"listed creation time {listed.isoformat()} differs from the header timestamp "
                    f"{header_time.isoformat()}; point-in-time restores go by the listed time",
                )
            )
    full = is_full_image(IndexedFile(h, dec.page_index, trailer, dec.bytes_read))
    return _Checked(info, h, full, dec.bytes_read, tuple(found))


def _collapse_timestamps(findings: list[Finding], keep: int = 3) -> list[Finding]:
    """At most ``keep`` listed-time warnings per level; the rest become one summary finding.

    A store that does not keep the LTX timestamp (a copy without mtimes, objects without
    metadata) would otherwise give one warning per file.
    """
    out: list[Finding] = []
    per_level: dict[int | None, list[Finding]] = {}
    for f in findings:
        if f.code == "timestamp" and f.severity is Severity.WARNING:
            per_level.setdefault(f.level, []).append(f)
        else:
            out.append(f)
    for level, group in per_level.items():
        out += group[:keep]
        if len(group) > keep:
            out.append(
                Finding(
                    Severity.WARNING,
                    level,
                    None,
                    None,
                    f"{len(group) - keep} more file(s) of this level whose listed creation time differs "
                    "from the header timestamp",
                    "timestamp",
                )
            )
    return out


# --- structure checks -------------------------------------------------------------------


def _chain_findings(level: int, files: Sequence[_Checked]) -> list[Finding]:
    """Gaps and overlaps within one level 0..8 (files sorted by min, max TXID)."""
    out: list[Finding] = []
    reach: _Checked | None = None  # the file reaching furthest so far
    for cur in files:
        c = cur.info
        if reach is None:
            reach = cur
            continue
        r = reach.info
        if c.min_txid > r.max_txid + 1:
            lo, hi = r.max_txid + 1, c.min_txid - 1
            missing = _span(lo, hi)
            if cur.ok and cur.full_image:
                out.append(
                    _warn(
                        c,
                        "gap",
                        f"history gap: {missing} in no level-{level} file after {r.name}; this file "
                        "is a full image, so restores resume here but those states are lost",
                        txid=lo,
                    )
                )
            elif level == 0:
                # one file per TXID: the missing files have known names
                names = format_filename(lo, lo) + ("" if lo == hi else f" ... {format_filename(hi, hi)}")
                out.append(
                    Finding(
                        Severity.ERROR,
                        0,
                        format_filename(lo, lo),
                        lo,
                        f"missing: {missing} in no level-0 file (expected {names} between {r.name} "
                        f"and {c.name})",
                        "gap",
                    )
                )
            else:
                out.append(
                    _err(
                        c,
                        "gap",
                        f"{missing} missing from level {level}: no file between {r.name} and this one "
                        "(lower levels bridge such a hole only until retention prunes them)",
                        txid=lo,
                    )
                )
        elif c.min_txid <= r.max_txid:
            if c.max_txid <= r.max_txid:
                out.append(
                    _warn(
                        c, "overlap", f"redundant: wholly inside {r.name} of the same level", txid=c.min_txid
                    )
                )
                continue  # reach stays
            if c.min_txid == r.min_txid:
                out.append(
                    _warn(c, "overlap", f"redundant: {r.name} of the same level lies wholly inside it")
                )
            else:
                out.append(
                    _err(
                        c,
                        "overlap",
                        f"overlaps {r.name} (TXIDs {c.min_txid:016x}-{r.max_txid:016x} in both): "
                        "two histories or reused TXIDs",
                    )
                )
        reach = cur if c.max_txid > reach.info.max_txid else reach
    return out


def _consistency_findings(checked: Sequence[_Checked]) -> list[Finding]:
    """Files ending at the same TXID describe the same database; timestamps grow per level."""
    out: list[Finding] = []
    by_end: dict[int, list[_Checked]] = {}
    for c in checked:
        if c.ok:
            by_end.setdefault(c.info.max_txid, []).append(c)
    for group in by_end.values():
        first = group[0]
        assert first.header is not None
        for other in group[1:]:
            h = other.header
            assert h is not None
            if (h.page_size, h.commit) != (first.header.page_size, first.header.commit):
                out.append(
                    _err(
                        other.info,
                        "consistency",
                        f"ends at the same TXID as L{first.info.level}/{first.info.name} but describes "
                        f"another database (page size {h.page_size}, {h.commit} pages vs "
                        f"{first.header.page_size}, {first.header.commit}): two histories or reused TXIDs",
                        txid=other.info.max_txid,
                    )
                )
    for level in LEVELS:
        prev: _Checked | None = None
        for c in checked:
            if c.info.level != level or not c.ok:
                continue
            assert c.header is not None
            if prev is not None and prev.header is not None and c.header.timestamp < prev.header.timestamp:
                out.append(
                    _warn(
                        c.info,
                        "timestamp",
                        f"header timestamp is older than that of {prev.info.name} before it "
                        "(clock step, or TXIDs reused by another writer)",
                    )
                )
            prev = c
    return out


WAL_START = 32
"""The offset of a WAL's first frame: where a read of a new WAL generation starts."""


def _wal_chain_findings(checked: Sequence[_Checked]) -> list[Finding]:
    """Level-0 files of consecutive TXIDs must be consecutive reads of one WAL (see check 4).

    Only decoded, incremental files compare; a file recording no WAL position
    (``wal_offset`` 0, as files made by tools rather than by a sync are) is skipped.
    """
    out: list[Finding] = []
    by_txid = {
        c.info.min_txid: c
        for c in checked
        if c.info.level == 0 and c.ok and c.header is not None and c.info.min_txid == c.info.max_txid
    }
    for txid, cur in sorted(by_txid.items()):
        prev = by_txid.get(txid - 1)
        if prev is None or cur.full_image:
            continue
        h, p = cur.header, prev.header
        assert h is not None and p is not None
        if h.wal_offset == 0 or p.wal_offset == 0 or h.wal_offset == WAL_START:
            continue
        end = p.wal_offset + p.wal_size
        salts, prev_salts = (h.wal_salt1, h.wal_salt2), (p.wal_salt1, p.wal_salt2)
        if salts == prev_salts and h.wal_offset == end:
            continue
        out.append(
            _err(
                cur.info,
                "chain",
                f"does not continue the history of {prev.info.name}: its WAL read starts at offset "
                f"{h.wal_offset} (salts {salts[0]:08x}/{salts[1]:08x}) but that file's ended at offset "
                f"{end} (salts {prev_salts[0]:08x}/{prev_salts[1]:08x}): two writers (another database, "
                "or another replicator of this one) wrote this replica",
            )
        )
    return out


def _coverage_findings(files: Sequence[_Checked], start: _Checked, latest: int) -> list[Finding]:
    """Walk every level together from the oldest restore point; report TXIDs in no file."""
    out: list[Finding] = []
    ordered = sorted(files, key=lambda c: (c.info.min_txid, c.info.max_txid))
    fulls = sorted((c for c in files if c.ok and c.full_image), key=lambda c: c.info.max_txid)
    cur = start.info.max_txid
    i = 0
    while cur < latest:
        best = cur
        while i < len(ordered) and ordered[i].info.min_txid <= cur + 1:
            best = max(best, ordered[i].info.max_txid)
            i += 1
        if best > cur:
            cur = best
            continue
        nxt = ordered[i].info if i < len(ordered) else None
        hi = nxt.min_txid - 1 if nxt is not None else latest
        lo = cur + 1
        missing = _span(lo, hi)
        resume = next((f for f in fulls if f.info.max_txid > cur), None)
        if resume is not None:
            out.append(
                Finding(
                    Severity.WARNING,
                    resume.info.level,
                    resume.info.name,
                    lo,
                    f"{missing} in no file of any level: states after {cur:016x} before "
                    f"{resume.info.max_txid:016x} cannot be restored; restores resume at this full image",
                    "coverage",
                )
            )
            cur = resume.info.max_txid
            continue
        out.append(
            Finding(
                Severity.ERROR,
                nxt.level if nxt is not None else None,
                nxt.name if nxt is not None else None,
                lo,
                f"the latest state cannot be restored: {missing} in no file of any level and no full "
                f"image follows, so no state after {cur:016x} can be restored (the replica reaches "
                f"{latest:016x})",
                "coverage",
            )
        )
        break
    return out


def _plan_failure(e: RestorePlanError, checked: Sequence[_Checked]) -> Finding:
    level: int | None = None
    name: str | None = None
    if isinstance(e, NonContiguousError) and e.next_min:
        nxt = min(
            (c.info for c in checked if c.info.min_txid == e.next_min),
            key=lambda i: (i.max_txid, i.level),
            default=None,
        )
        if nxt is not None:
            level, name = nxt.level, nxt.name
    what = "no snapshot or full image to start from" if isinstance(e, NoBackupError) else "no contiguous plan"
    return Finding(
        Severity.ERROR,
        level,
        name,
        e.txid,
        f"the latest state cannot be restored ({what}): {e.message}",
        "plan",
    )


def _located(
    client: ReplicaClient, e: LTXError, checked: Sequence[_Checked]
) -> tuple[int | None, str | None]:
    """(level, base name) of the replica file an error from a restore is about, if any."""
    if e.path is None:
        return e.level, None
    base = e.path.rsplit("/", 1)[-1]
    for c in checked:
        if (
            c.info.name == base
            and (e.level is None or c.info.level == e.level)
            and client.location(client.key(c.info.level, c.info.min_txid, c.info.max_txid)) == e.path
        ):
            return c.info.level, base
    return e.level, None


# --- restores ---------------------------------------------------------------------------


@attrs.frozen
class _RestoreOutcome:
    finding: Finding | None = None
    txid: int | None = None
    skipped: bool = False


def _restore_once(
    client: ReplicaClient,
    workdir: str,
    checked: Sequence[_Checked],
    damaged: frozenset[FileInfo],
    plan: RestorePlan,
    txid: int | None,
) -> _RestoreOutcome:
    """Restore the state ``txid`` (None: latest) with a full integrity check; raises :class:`_Abort`."""
    label = "the latest state" if txid is None else f"the state at TXID {txid:016x}"
    bad = [f for f in plan.files if f in damaged]
    if bad:
        b = bad[0]
        if txid is not None:
            return _RestoreOutcome(skipped=True)  # already reported as damaged; don't repeat per state
        return _RestoreOutcome(
            Finding(
                Severity.ERROR,
                b.level,
                b.name,
                plan.txid,
                f"{label} cannot be restored: its plan needs this damaged file",
                "restore",
            )
        )
    out = os.path.join(workdir, f"restore-{txid or 0:016x}.db")
    try:
        result = restore(client, out, txid=txid, integrity_check="full", force=True)
    except StorageError as e:
        if _is_fatal(e):
            raise _Abort(e) from e
        level, name = _located(client, e, checked)
        return _RestoreOutcome(
            Finding(Severity.ERROR, level, name, txid, f"restore of {label} failed: {e.message}", "restore")
        )
    except RestorePlanError as e:
        if txid is None:
            return _RestoreOutcome(_plan_failure(e, checked))
        return _RestoreOutcome(
            Finding(
                Severity.WARNING,
                None,
                None,
                txid,
                f"{label} cannot be restored (retention may have removed what it needs): {e.message}",
                "plan",
            )
        )
    except IntegrityCheckError as e:
        shown = "; ".join(e.results[:5])
        last = plan.files[-1]  # the file that brings the database to this state
        used = ", ".join(f"L{f.level}/{f.name}" for f in plan.files[-5:])
        more = f"{len(plan.files) - 5} more, " if len(plan.files) > 5 else ""
        return _RestoreOutcome(
            Finding(
                Severity.ERROR,
                last.level,
                last.name,
                txid if txid is not None else plan.txid,
                f"{label} restores to a database that fails PRAGMA integrity_check: {shown} "
                f"(restored from {more}{used})",
                "integrity",
            )
        )
    except LTXError as e:
        level, name = _located(client, e, checked)
        return _RestoreOutcome(
            Finding(
                Severity.ERROR,
                level,
                name,
                txid if txid is not None else (e.txid or plan.txid),
                f"restore of {label} failed: {e.message}",
                "restore",
            )
        )
    finally:
        for suffix in ("", "-wal", "-shm", ".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out + suffix)
    return _RestoreOutcome(txid=result.txid)


def _restore_target(
    client: ReplicaClient,
    workdir: str,
    checked: Sequence[_Checked],
    damaged: frozenset[FileInfo],
    listing: dict[int, list[FileInfo]],
    full_set: frozenset[FileInfo],
    page_sizes: Mapping[FileInfo, int],
    latest_plan: RestorePlan,
    txid: int | None,
) -> _RestoreOutcome:
    """Plan (for ``txid``; None: latest) with every full image known, then restore."""
    if txid is None:
        return _restore_once(client, workdir, checked, damaged, latest_plan, None)
    try:
        plan = plan_restore(listing, RestoreTarget.at_txid(txid), full_images=full_set, page_sizes=page_sizes)
    except RestorePlanError as e:
        return _RestoreOutcome(
            Finding(
                Severity.WARNING,
                None,
                None,
                txid,
                f"the state at TXID {txid:016x} cannot be restored "
                f"(retention may have removed what it needs): {e.message}",
                "plan",
            )
        )
    return _restore_once(client, workdir, checked, damaged, plan, txid)


# --- the entry points -------------------------------------------------------------------


def _owner(client: ReplicaClient) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The replica's owner record as JSON, or a warning saying why it cannot be shown."""
    where = client.location(client.object_key(OWNER_OBJECT))
    try:
        found = client.read_object(OWNER_OBJECT)
        if found is None:
            return None, []
        return record_to_json(decode_record(found[0], replica=client.name, path=where)), []
    except (OwnershipError, StorageError) as e:
        return None, [Finding(Severity.WARNING, None, OWNER_OBJECT, None, f"owner record: {e}", "owner")]


def _url_of(client: ReplicaClient) -> str:
    url = getattr(client, "url", None)
    return str(url) if url is not None else repr(client)


def _storage_report(url: str, e: StorageError, started: float, **kw: Any) -> VerifyReport:
    status = Status.NOT_A_REPLICA if isinstance(e, FileNotFoundInReplicaError) else Status.UNREACHABLE
    what = "the replica does not exist" if status is Status.NOT_A_REPLICA else "the store is unreachable"
    finding = Finding(Severity.ERROR, e.level, None, None, f"{what}: {e}", "storage")
    findings = _sorted((*kw.pop("findings", ()), finding))
    return VerifyReport(url, status, findings, duration=time.monotonic() - started, **kw)


def verify_replica(
    client: ReplicaClient,
    *,
    deep: bool = False,
    progress: Progress | None = None,
    parallelism: int = DEFAULT_PARALLELISM,
    workdir: str | None = None,
) -> VerifyReport:
    """Check every file and the structure of the replica behind ``client``; see the module docstring.

    Read-only on the replica. Restores go to a temporary directory under ``workdir``
    (default: the system's), which is removed afterwards; it needs room for one
    database. ``parallelism`` files are read at once. ``deep`` adds a restore and
    integrity check at every file boundary (one full restore each: slow on big
    replicas). Never raises for a problem of the replica or the store: those are
    findings, and the report's status says whether the check ran to the end.
    """
    started = time.monotonic()
    url = _url_of(client)
    if parallelism < 1:
        raise ValueError(f"parallelism must be at least 1, got {parallelism}")

    # 1. listing: level 0 alone first, so an unreachable store fails once, not ten times
    try:
        first = client.list_files(0, use_metadata=True)
        with concurrent.futures.ThreadPoolExecutor(parallelism, thread_name_prefix="verify-list") as pool:
            rest = {lv: pool.submit(client.list_files, lv, use_metadata=True) for lv in LEVELS if lv != 0}
            listing = {0: first, **{lv: fut.result() for lv, fut in rest.items()}}
    except StorageError as e:
        return _storage_report(url, e, started)
    infos = [i for lv in LEVELS for i in sorted(listing.get(lv, []), key=lambda i: (i.min_txid, i.max_txid))]
    per_level = tuple(len(listing.get(lv, [])) for lv in LEVELS)
    if not infos:
        return VerifyReport(
            url,
            Status.NOT_A_REPLICA,
            (Finding(Severity.ERROR, None, None, None, "no LTX files in any level: not a replica", "empty"),),
            per_level,
            duration=time.monotonic() - started,
        )
    latest = max(i.max_txid for i in infos)
    owner, owner_findings = _owner(client)
    common: dict[str, Any] = {
        "files_per_level": per_level,
        "latest_txid": latest,
        "deep": deep,
        "owner": owner,
    }

    # 2. every file
    checked: list[_Checked] = []
    try:
        with concurrent.futures.ThreadPoolExecutor(parallelism, thread_name_prefix="verify-read") as pool:
            futures = [pool.submit(_check_file, client, i) for i in infos]
            try:
                for n, fut in enumerate(futures, 1):
                    checked.append(fut.result())
                    if progress is not None:
                        progress("read", n, len(futures))
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    except _Abort as a:
        found = [f for c in checked for f in c.findings]
        return _storage_report(
            url,
            a.error,
            started,
            findings=found,
            files_checked=sum(c.header is not None for c in checked),
            bytes=sum(c.bytes_read for c in checked),
            **common,
        )
    findings: list[Finding] = owner_findings + _collapse_timestamps([f for c in checked for f in c.findings])
    present = [c for c in checked if not c.vanished]
    damaged = frozenset(c.info for c in present if not c.ok)

    # 3-4. structure
    for level in CHAIN_LEVELS:
        findings += _chain_findings(level, [c for c in present if c.info.level == level])
    findings += _consistency_findings(present)
    findings += _wal_chain_findings(present)

    # 5. coverage and the latest plan
    fulls = [c for c in present if c.ok and c.full_image]
    oldest = min(fulls, key=lambda c: (c.info.max_txid, -c.info.level)) if fulls else None
    if oldest is not None:
        coverage = _coverage_findings(present, oldest, latest)
        findings += coverage
        hole = any(f.severity is Severity.ERROR for f in coverage)
    else:
        hole = False
    plan_listing = {lv: [c.info for c in present if c.info.level == lv] for lv in LEVELS}
    full_set = frozenset(c.info for c in fulls)
    page_sizes = {c.info: c.header.page_size for c in present if c.header is not None}
    plan: RestorePlan | None = None
    try:
        plan = plan_restore(plan_listing, RestoreTarget.latest(), full_images=full_set, page_sizes=page_sizes)
    except RestorePlanError as e:
        if not hole:  # a hole in the coverage already says why, and where
            findings.append(_plan_failure(e, present))
    if plan is not None and not plan.litestream_compatible:
        s = plan.start
        findings.append(
            Finding(
                Severity.WARNING,
                s.level,
                s.name,
                s.max_txid,
                "Litestream 0.5 cannot restore the latest state (no snapshot chain from TXID 1 reaches it); "
                "this implementation starts from this full image",
                "compat",
            )
        )

    # 6. restores
    restores = 0
    restored: int | None = None
    result_kw: dict[str, Any] = {
        "files_checked": sum(c.header is not None for c in present),
        "bytes": sum(c.bytes_read for c in checked),
        "oldest_restore_txid": oldest.info.max_txid if oldest is not None else None,
        **common,
    }
    if plan is not None:
        targets: list[int | None] = [None]
        if deep and oldest is not None:
            bounds = sorted({c.info.max_txid for c in present if c.info.max_txid >= oldest.info.max_txid})
            targets += [t for t in bounds if t != plan.txid]
        try:
            with tempfile.TemporaryDirectory(prefix="verify-", dir=workdir) as tmp:
                for n, txid in enumerate(targets, 1):
                    outcome = _restore_target(
                        client, tmp, present, damaged, plan_listing, full_set, page_sizes, plan, txid
                    )
                    if outcome.finding is not None:
                        findings.append(outcome.finding)
                    elif outcome.txid is not None:
                        restores += 1
                        if txid is None:
                            restored = outcome.txid
                    if progress is not None:
                        progress("restore", n, len(targets))
        except _Abort as a:
            return _storage_report(url, a.error, started, findings=findings, restores=restores, **result_kw)

    status = Status.DAMAGED if any(f.severity is Severity.ERROR for f in findings) else Status.HEALTHY
    return VerifyReport(
        url,
        status,
        _sorted(findings),
        restored_txid=restored,
        restores=restores,
        duration=time.monotonic() - started,
        **result_kw,
    )


def _sorted(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Errors first, then by level and file; otherwise in the order found (file checks first)."""
    return tuple(
        sorted(
            findings,
            key=lambda f: (
                f.severity is not Severity.ERROR,
                -1 if f.level is None else f.level,
                f.file or "",
            ),
        )
    )


def _stderr_progress() -> Progress | None:
    if not sys.stderr.isatty():
        return None

    def show(phase: str, done: int, total: int) -> None:
        verb = "reading files" if phase == "read" else "restoring"
        sys.stderr.write(f"\r{verb}: {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def run(url: str, *, deep: bool, as_json: bool, out: TextIO, **client_options: Any) -> int:
    """Verify the replica at ``url``, print the report to ``out``, return the exit code.

    Text: one line per finding, then a summary line. JSON (``as_json``): one object,
    :meth:`VerifyReport.to_json`. Exit code 0 healthy, 1 damaged, 2 unreachable or not a
    replica (including a URL that cannot be parsed). ``client_options`` go to
    :func:`replica.storage.open_replica_client` (e.g. ``retry``). Progress goes to
    stderr when it is a terminal.
    """
    started = time.monotonic()
    try:
        client = open_replica_client(url, **client_options)
    except StorageError as e:
        report = VerifyReport(
            url,
            Status.NOT_A_REPLICA,
            (Finding(Severity.ERROR, None, None, None, f"not a replica URL: {e}", "storage"),),
            duration=time.monotonic() - started,
        )
    else:
        try:
            report = verify_replica(client, deep=deep, progress=None if as_json else _stderr_progress())
        finally:
            client.close()
    if as_json:
        out.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        out.write(report.to_text())
    out.flush()
    return report.exit_code
