"""The verify report: findings, their severity, the verdict, and its text and JSON forms.

Pure: plain values and their rendering. :class:`Finding` is one problem, located by
level, file and TXID; :class:`VerifyReport` is everything one run of ``verify`` found,
with :meth:`VerifyReport.to_text` (one line per finding, then a summary) and
:meth:`VerifyReport.to_json` (one object, TXIDs as 16-hex strings).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

import attrs

EXIT_HEALTHY = 0
EXIT_DAMAGED = 1
EXIT_UNREACHABLE = 2

LEVELS = range(10)
"""Every level of a replica: 0 (one file per sync), 1..8 (compaction), 9 (snapshots)."""


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


def hex_txid(txid: int | None) -> str | None:
    """A TXID as 16 hex digits, ``None`` when unknown."""
    return None if txid is None else f"{txid:016x}"


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
            "txid": hex_txid(self.txid),
            "message": self.message,
        }


def has_error(findings: Iterable[Finding]) -> bool:
    """Whether any finding is an error."""
    return any(f.severity is Severity.ERROR for f in findings)


def sort_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
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
            parts.append(f"latest txid {hex_txid(self.latest_txid)}")
            if self.oldest_restore_txid is not None:
                parts.append(f"oldest restore point {hex_txid(self.oldest_restore_txid)}")
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
            "latest_txid": hex_txid(self.latest_txid) if self.latest_txid else None,
            "oldest_restore_txid": hex_txid(self.oldest_restore_txid),
            "restored_txid": hex_txid(self.restored_txid),
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
