""":func:`verify_replica`: the steps of ``verify`` in order, from listing to trial restores.

Each step is a function of :mod:`replica.verify.read` (listing, owner, files),
:mod:`replica.verify.checks` (the pure checks) or :mod:`replica.verify.restores`
(trial restores); this module runs them and builds the
:class:`~replica.verify.report.VerifyReport`, turning a store that stops answering
midway into an ``unreachable`` report of what was checked before.
"""

from __future__ import annotations

import time
from typing import Any

from replica.errors import FileNotFoundInReplicaError, StorageError
from replica.storage import ReplicaClient
from replica.verify.checks import (
    Checked,
    PlanInputs,
    collapse_timestamps,
    coverage_findings,
    latest_plan,
    oldest_restore_point,
    restore_targets,
    structure_findings,
)
from replica.verify.progress import Progress
from replica.verify.read import Abort, list_levels, read_files, read_owner
from replica.verify.report import (
    LEVELS,
    Finding,
    Severity,
    Status,
    VerifyReport,
    has_error,
    sort_findings,
)
from replica.verify.restores import RestoreTally, run_restores

DEFAULT_PARALLELISM = 8


def verify_replica(
    client: ReplicaClient,
    *,
    deep: bool = False,
    progress: Progress | None = None,
    parallelism: int = DEFAULT_PARALLELISM,
    workdir: str | None = None,
) -> VerifyReport:
    """Check every file and the structure of the replica behind ``client``; see :mod:`replica.verify`.

    Read-only on the replica. Restores go to a temporary directory under ``workdir``
    (default: the system's), which is removed afterwards; it needs room for one
    database. ``parallelism`` files are read at once. ``deep`` adds a restore and
    integrity check at every file boundary (one full restore each: slow on big
    replicas). Never raises for a problem of the replica or the store: those are
    findings, and the report's status says whether the check ran to the end.
    """
    started = time.monotonic()
    url = url_of(client)
    if parallelism < 1:
        raise ValueError(f"parallelism must be at least 1, got {parallelism}")

    # 1. listing
    try:
        listing = list_levels(client, parallelism)
    except StorageError as e:
        return storage_report(url, e, started)
    infos = [i for lv in LEVELS for i in sorted(listing.get(lv, []), key=lambda i: (i.min_txid, i.max_txid))]
    per_level = tuple(len(listing.get(lv, [])) for lv in LEVELS)
    if not infos:
        return _empty_report(url, per_level, started)
    latest = max(i.max_txid for i in infos)
    owner, owner_findings = read_owner(client)
    common: dict[str, Any] = {
        "files_per_level": per_level,
        "latest_txid": latest,
        "deep": deep,
        "owner": owner,
    }

    # 2. every file
    checked: list[Checked] = []
    try:
        read_files(client, infos, parallelism=parallelism, progress=progress, into=checked)
    except Abort as a:
        return storage_report(
            url,
            a.error,
            started,
            findings=[f for c in checked for f in c.findings],
            files_checked=sum(c.header is not None for c in checked),
            bytes=sum(c.bytes_read for c in checked),
            **common,
        )
    findings: list[Finding] = owner_findings + collapse_timestamps([f for c in checked for f in c.findings])
    present = [c for c in checked if not c.vanished]
    damaged = frozenset(c.info for c in present if not c.ok)

    # 3-4. structure
    findings += structure_findings(present)

    # 5. coverage and the latest plan
    oldest = oldest_restore_point(present)
    coverage = coverage_findings(present, oldest, latest) if oldest is not None else []
    findings += coverage
    inputs = PlanInputs.of(present)
    plan, plan_findings = latest_plan(inputs, present, hole=has_error(coverage))
    findings += plan_findings

    # 6. restores
    result_kw: dict[str, Any] = {
        "files_checked": sum(c.header is not None for c in present),
        "bytes": sum(c.bytes_read for c in checked),
        "oldest_restore_txid": oldest.info.max_txid if oldest is not None else None,
        **common,
    }
    tally = RestoreTally(findings)
    if plan is not None:
        try:
            run_restores(
                client,
                restore_targets(plan, oldest, present, deep),
                checked=present,
                damaged=damaged,
                inputs=inputs,
                latest_plan=plan,
                workdir=workdir,
                progress=progress,
                tally=tally,
            )
        except Abort as a:
            return storage_report(
                url, a.error, started, findings=tally.findings, restores=tally.restores, **result_kw
            )

    status = Status.DAMAGED if has_error(tally.findings) else Status.HEALTHY
    return VerifyReport(
        url,
        status,
        sort_findings(tally.findings),
        restored_txid=tally.restored,
        restores=tally.restores,
        duration=time.monotonic() - started,
        **result_kw,
    )


def url_of(client: ReplicaClient) -> str:
    """The URL the report names: the client's, or its ``repr`` when it has none."""
    url = getattr(client, "url", None)
    return str(url) if url is not None else repr(client)


def storage_report(url: str, e: StorageError, started: float, **kw: Any) -> VerifyReport:
    """The report of a check the store stopped: ``not-a-replica`` or ``unreachable``, with
    the findings (``kw["findings"]``) and counts of what was checked before."""
    status = Status.NOT_A_REPLICA if isinstance(e, FileNotFoundInReplicaError) else Status.UNREACHABLE
    what = "the replica does not exist" if status is Status.NOT_A_REPLICA else "the store is unreachable"
    finding = Finding(Severity.ERROR, e.level, None, None, f"{what}: {e}", "storage")
    findings = sort_findings((*kw.pop("findings", ()), finding))
    return VerifyReport(url, status, findings, duration=time.monotonic() - started, **kw)


def _empty_report(url: str, per_level: tuple[int, ...], started: float) -> VerifyReport:
    return VerifyReport(
        url,
        Status.NOT_A_REPLICA,
        (Finding(Severity.ERROR, None, None, None, "no LTX files in any level: not a replica", "empty"),),
        per_level,
        duration=time.monotonic() - started,
    )
