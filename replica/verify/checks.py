"""The pure checks of ``verify``: findings from the decoded facts of a replica's files.

Nothing here reads a store, decodes bytes or opens a database: each check takes the
:class:`Checked` outcome of reading the listed files (:mod:`replica.verify.read` makes
them) and returns :class:`~replica.verify.report.Finding` values. The checks are those
of steps 2 to 5 of :mod:`replica.verify`: one file's name, level, size and timestamp
against its header; the chain of each level 0..8 (gaps, overlaps); files ending at the
same TXID and timestamps within a level (consistency); level 0 following one WAL
(chain); the levels covering every TXID from the oldest restore point (coverage); and
the planner's plan for the latest state (plan, compat).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import attrs

from ltx.fileinfo import FileInfo
from ltx.header import Header
from ltx.names import SNAPSHOT_LEVEL, format_filename
from replica.restore.errors import NoBackupError, NonContiguousError, RestorePlanError
from replica.restore.plan import RestorePlan, RestoreTarget, plan_restore
from replica.verify.report import LEVELS, Finding, Severity, has_error

CHAIN_LEVELS = range(9)
"""Levels whose files must form a contiguous chain (0 and the compaction levels)."""
TIMESTAMP_TOLERANCE = dt.timedelta(milliseconds=1)
"""Listed creation time vs header timestamp: the header has millisecond precision."""
WAL_START = 32
"""The offset of a WAL's first frame: where a read of a new WAL generation starts."""
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def span(lo: int, hi: int) -> str:
    """``TXID x is`` / ``TXIDs x-y are``: the subject of a sentence about missing TXIDs."""
    return f"TXID {lo:016x} is" if lo == hi else f"TXIDs {lo:016x}-{hi:016x} are"


@attrs.frozen
class Checked:
    """The outcome of reading one listed file: its header, whether it is a full image,
    the bytes read and what the single-file checks found (``vanished``: gone when read)."""

    info: FileInfo
    header: Header | None = None
    full_image: bool = False
    bytes_read: int = 0
    findings: tuple[Finding, ...] = ()
    vanished: bool = False

    @property
    def ok(self) -> bool:
        """Decoded without an error (warnings allowed)."""
        return self.header is not None and not self.vanished and not has_error(self.findings)


def err(info: FileInfo, code: str, message: str, txid: int | None = None) -> Finding:
    """An error about file ``info`` (``txid`` defaults to its min TXID)."""
    return Finding(
        Severity.ERROR, info.level, info.name, info.min_txid if txid is None else txid, message, code
    )


def warn(info: FileInfo, code: str, message: str, txid: int | None = None) -> Finding:
    """A warning about file ``info`` (``txid`` defaults to its min TXID)."""
    return Finding(
        Severity.WARNING, info.level, info.name, info.min_txid if txid is None else txid, message, code
    )


# --- one file -----------------------------------------------------------------------------


def file_findings(info: FileInfo, h: Header, bytes_read: int) -> tuple[Finding, ...]:
    """A decoded file's header against its listing: TXID range, level rules, size, timestamp."""
    found: list[Finding] = []
    if (h.min_txid, h.max_txid) != (info.min_txid, info.max_txid):
        found.append(
            err(
                info,
                "name",
                f"the header says TXIDs {h.min_txid:016x}-{h.max_txid:016x} "
                f"({format_filename(h.min_txid, h.max_txid)}): the file was renamed or misplaced",
            )
        )
    if info.level == SNAPSHOT_LEVEL and info.min_txid != 1:
        found.append(
            err(info, "level", "a level-9 file must be a snapshot named 0000000000000001-<txid>.ltx")
        )
    if info.level == 0 and info.min_txid != info.max_txid:
        found.append(warn(info, "level", "a level-0 file should cover exactly one TXID"))
    if info.size and bytes_read != info.size:
        found.append(err(info, "size", f"listed as {info.size} bytes but {bytes_read} bytes were read"))
    listed = info.created_at
    if listed.timestamp() > 0:
        header_time = _EPOCH + dt.timedelta(milliseconds=h.timestamp)
        if abs(listed - header_time) > TIMESTAMP_TOLERANCE:
            found.append(
                warn(
                    info,
                    "timestamp",
                    f"listed creation time {listed.isoformat()} differs from the header timestamp "
                    f"{header_time.isoformat()}; point-in-time restores go by the listed time",
                )
            )
    return tuple(found)


def collapse_timestamps(findings: list[Finding], keep: int = 3) -> list[Finding]:
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


# --- structure ----------------------------------------------------------------------------


def structure_findings(present: Sequence[Checked]) -> list[Finding]:
    """Steps 3 and 4: each chain level's chain, consistency, and level 0's WAL chain."""
    out: list[Finding] = []
    for level in CHAIN_LEVELS:
        out += chain_findings(level, [c for c in present if c.info.level == level])
    out += consistency_findings(present)
    out += wal_chain_findings(present)
    return out


def chain_findings(level: int, files: Sequence[Checked]) -> list[Finding]:
    """Gaps and overlaps within one level 0..8 (files sorted by min, max TXID)."""
    out: list[Finding] = []
    reach: Checked | None = None  # the file reaching furthest so far
    for cur in files:
        c = cur.info
        if reach is None:
            reach = cur
            continue
        r = reach.info
        if c.min_txid > r.max_txid + 1:
            out.append(_gap(level, reach.info, cur))
        elif c.min_txid <= r.max_txid:
            if c.max_txid <= r.max_txid:
                out.append(
                    warn(
                        c, "overlap", f"redundant: wholly inside {r.name} of the same level", txid=c.min_txid
                    )
                )
                continue  # reach stays
            out.append(_overlap(r, c))
        reach = cur if c.max_txid > reach.info.max_txid else reach
    return out


def _gap(level: int, r: FileInfo, cur: Checked) -> Finding:
    """The hole between ``r`` (reaching furthest so far) and ``cur`` of the same level."""
    c = cur.info
    lo, hi = r.max_txid + 1, c.min_txid - 1
    missing = span(lo, hi)
    if cur.ok and cur.full_image:
        return warn(
            c,
            "gap",
            f"history gap: {missing} in no level-{level} file after {r.name}; this file "
            "is a full image, so restores resume here but those states are lost",
            txid=lo,
        )
    if level == 0:
        # one file per TXID: the missing files have known names
        names = format_filename(lo, lo) + ("" if lo == hi else f" ... {format_filename(hi, hi)}")
        return Finding(
            Severity.ERROR,
            0,
            format_filename(lo, lo),
            lo,
            f"missing: {missing} in no level-0 file (expected {names} between {r.name} and {c.name})",
            "gap",
        )
    return err(
        c,
        "gap",
        f"{missing} missing from level {level}: no file between {r.name} and this one "
        "(lower levels bridge such a hole only until retention prunes them)",
        txid=lo,
    )


def _overlap(r: FileInfo, c: FileInfo) -> Finding:
    """``c`` starts inside ``r`` and ends after it."""
    if c.min_txid == r.min_txid:
        return warn(c, "overlap", f"redundant: {r.name} of the same level lies wholly inside it")
    return err(
        c,
        "overlap",
        f"overlaps {r.name} (TXIDs {c.min_txid:016x}-{r.max_txid:016x} in both): "
        "two histories or reused TXIDs",
    )


def consistency_findings(checked: Sequence[Checked]) -> list[Finding]:
    """Files ending at the same TXID describe the same database; timestamps grow per level."""
    out: list[Finding] = []
    by_end: dict[int, list[Checked]] = {}
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
                    err(
                        other.info,
                        "consistency",
                        f"ends at the same TXID as L{first.info.level}/{first.info.name} but describes "
                        f"another database (page size {h.page_size}, {h.commit} pages vs "
                        f"{first.header.page_size}, {first.header.commit}): two histories or reused TXIDs",
                        txid=other.info.max_txid,
                    )
                )
    for level in LEVELS:
        prev: Checked | None = None
        for c in checked:
            if c.info.level != level or not c.ok:
                continue
            assert c.header is not None
            if prev is not None and prev.header is not None and c.header.timestamp < prev.header.timestamp:
                out.append(
                    warn(
                        c.info,
                        "timestamp",
                        f"header timestamp is older than that of {prev.info.name} before it "
                        "(clock step, or TXIDs reused by another writer)",
                    )
                )
            prev = c
    return out


def wal_chain_findings(checked: Sequence[Checked]) -> list[Finding]:
    """Level-0 files of consecutive TXIDs must be consecutive reads of one WAL (check 4).

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
            err(
                cur.info,
                "chain",
                f"does not continue the history of {prev.info.name}: its WAL read starts at offset "
                f"{h.wal_offset} (salts {salts[0]:08x}/{salts[1]:08x}) but that file's ended at offset "
                f"{end} (salts {prev_salts[0]:08x}/{prev_salts[1]:08x}): two writers (another database, "
                "or another replicator of this one) wrote this replica",
            )
        )
    return out


# --- coverage and the latest plan ---------------------------------------------------------


def oldest_restore_point(present: Sequence[Checked]) -> Checked | None:
    """The earliest full image that decoded (the highest level first among equals)."""
    fulls = [c for c in present if c.ok and c.full_image]
    return min(fulls, key=lambda c: (c.info.max_txid, -c.info.level)) if fulls else None


def coverage_findings(files: Sequence[Checked], start: Checked, latest: int) -> list[Finding]:
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
        missing = span(lo, hi)
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


@attrs.frozen
class PlanInputs:
    """What the restore planner is told about the files that are present: the listing of
    every level, which files are full images, and each decoded file's page size."""

    listing: dict[int, list[FileInfo]]
    full_images: frozenset[FileInfo]
    page_sizes: dict[FileInfo, int]

    @classmethod
    def of(cls, present: Sequence[Checked]) -> PlanInputs:
        return cls(
            {lv: [c.info for c in present if c.info.level == lv] for lv in LEVELS},
            frozenset(c.info for c in present if c.ok and c.full_image),
            {c.info: c.header.page_size for c in present if c.header is not None},
        )

    def plan(self, target: RestoreTarget) -> RestorePlan:
        """The planner's plan for ``target``; raises :class:`RestorePlanError`."""
        return plan_restore(self.listing, target, full_images=self.full_images, page_sizes=self.page_sizes)


def latest_plan(
    inputs: PlanInputs, present: Sequence[Checked], hole: bool
) -> tuple[RestorePlan | None, list[Finding]]:
    """The plan for the latest state, and what is wrong with it (``plan``, ``compat``).

    ``hole``: the coverage check already found why the latest state cannot be
    restored, so a planner failure adds nothing.
    """
    try:
        plan = inputs.plan(RestoreTarget.latest())
    except RestorePlanError as e:
        return None, [] if hole else [plan_failure(e, present)]
    if plan.litestream_compatible:
        return plan, []
    s = plan.start
    return plan, [
        Finding(
            Severity.WARNING,
            s.level,
            s.name,
            s.max_txid,
            "Litestream 0.5 cannot restore the latest state (no snapshot chain from TXID 1 reaches it); "
            "this implementation starts from this full image",
            "compat",
        )
    ]


def plan_failure(e: RestorePlanError, checked: Sequence[Checked]) -> Finding:
    """The ``plan`` error for a planner failure on the latest state, at the file after a hole."""
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


def restore_targets(
    plan: RestorePlan, oldest: Checked | None, present: Sequence[Checked], deep: bool
) -> list[int | None]:
    """The states to restore: the latest (``None``), and with ``deep`` every file boundary
    from the oldest restore point on."""
    targets: list[int | None] = [None]
    if deep and oldest is not None:
        bounds = sorted({c.info.max_txid for c in present if c.info.max_txid >= oldest.info.max_txid})
        targets += [t for t in bounds if t != plan.txid]
    return targets
