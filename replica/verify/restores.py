"""The trial restores of ``verify``: restore states into a scratch directory and check them.

Each restore goes through :func:`replica.restore.restore` with a full integrity check,
into a temporary directory that is removed afterwards; a failure becomes a finding
that names, when it can, the replica file it is about. A store that stops answering
raises :class:`~replica.verify.read.Abort`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence

import attrs

from ltx.errors import PyLitestreamError
from ltx.fileinfo import FileInfo
from replica.errors import StorageError
from replica.restore import (
    IntegrityCheckError,
    RestorePlan,
    RestorePlanError,
    RestoreTarget,
    restore,
)
from replica.storage import ReplicaClient
from replica.verify.checks import Checked, PlanInputs, plan_failure
from replica.verify.progress import Progress
from replica.verify.read import Abort, is_fatal
from replica.verify.report import Finding, Severity


@attrs.frozen
class RestoreOutcome:
    """One trial restore: a finding, or the TXID reached, or skipped (already reported)."""

    finding: Finding | None = None
    txid: int | None = None
    skipped: bool = False


@attrs.define
class RestoreTally:
    """What the trial restores found so far: kept when the store stops answering midway."""

    findings: list[Finding] = attrs.field(factory=list)
    restores: int = 0
    restored: int | None = None
    """The TXID the latest-state restore reached."""


def run_restores(
    client: ReplicaClient,
    targets: Sequence[int | None],
    *,
    checked: Sequence[Checked],
    damaged: frozenset[FileInfo],
    inputs: PlanInputs,
    latest_plan: RestorePlan,
    workdir: str | None,
    progress: Progress | None,
    tally: RestoreTally,
) -> None:
    """Restore each of ``targets`` (``None``: the latest state) in a scratch directory under
    ``workdir``, recording into ``tally``; raises :class:`~replica.verify.read.Abort`."""
    with tempfile.TemporaryDirectory(prefix="verify-", dir=workdir) as tmp:
        for n, txid in enumerate(targets, 1):
            outcome = restore_target(client, tmp, checked, damaged, inputs, latest_plan, txid)
            if outcome.finding is not None:
                tally.findings.append(outcome.finding)
            elif outcome.txid is not None:
                tally.restores += 1
                if txid is None:
                    tally.restored = outcome.txid
            if progress is not None:
                progress("restore", n, len(targets))


def restore_target(
    client: ReplicaClient,
    workdir: str,
    checked: Sequence[Checked],
    damaged: frozenset[FileInfo],
    inputs: PlanInputs,
    latest_plan: RestorePlan,
    txid: int | None,
) -> RestoreOutcome:
    """Plan (for ``txid``; None: latest) with every full image known, then restore."""
    if txid is None:
        return restore_once(client, workdir, checked, damaged, latest_plan, None)
    try:
        plan = inputs.plan(RestoreTarget.at_txid(txid))
    except RestorePlanError as e:
        return RestoreOutcome(_retained_away(txid, e))
    return restore_once(client, workdir, checked, damaged, plan, txid)


def restore_once(
    client: ReplicaClient,
    workdir: str,
    checked: Sequence[Checked],
    damaged: frozenset[FileInfo],
    plan: RestorePlan,
    txid: int | None,
) -> RestoreOutcome:
    """Restore the state ``txid`` (None: latest) with a full integrity check; raises :class:`Abort`."""
    label = "the latest state" if txid is None else f"the state at TXID {txid:016x}"
    bad = [f for f in plan.files if f in damaged]
    if bad:
        b = bad[0]
        if txid is not None:
            return RestoreOutcome(skipped=True)  # already reported as damaged; don't repeat per state
        return RestoreOutcome(
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
        if is_fatal(e):
            raise Abort(e) from e
        level, name = located(client, e, checked)
        return RestoreOutcome(
            Finding(Severity.ERROR, level, name, txid, f"restore of {label} failed: {e.message}", "restore")
        )
    except RestorePlanError as e:
        if txid is None:
            return RestoreOutcome(plan_failure(e, checked))
        return RestoreOutcome(_retained_away(txid, e))
    except IntegrityCheckError as e:
        return RestoreOutcome(_integrity_failure(e, plan, label, txid))
    except PyLitestreamError as e:
        level, name = located(client, e, checked)
        return RestoreOutcome(
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
    return RestoreOutcome(txid=result.txid)


def _retained_away(txid: int, e: RestorePlanError) -> Finding:
    """The warning for an earlier state that can no longer be planned."""
    return Finding(
        Severity.WARNING,
        None,
        None,
        txid,
        f"the state at TXID {txid:016x} cannot be restored "
        f"(retention may have removed what it needs): {e.message}",
        "plan",
    )


def _integrity_failure(e: IntegrityCheckError, plan: RestorePlan, label: str, txid: int | None) -> Finding:
    """The ``integrity`` error, at the file that brings the database to the failing state."""
    shown = "; ".join(e.results[:5])
    last = plan.files[-1]
    used = ", ".join(f"L{f.level}/{f.name}" for f in plan.files[-5:])
    more = f"{len(plan.files) - 5} more, " if len(plan.files) > 5 else ""
    return Finding(
        Severity.ERROR,
        last.level,
        last.name,
        txid if txid is not None else plan.txid,
        f"{label} restores to a database that fails PRAGMA integrity_check: {shown} "
        f"(restored from {more}{used})",
        "integrity",
    )


def located(
    client: ReplicaClient, e: PyLitestreamError, checked: Sequence[Checked]
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
