"""Restore a database from its replica: a pure planner and an executor.

* :mod:`replica.restore.plan` (pure): :func:`plan_restore` turns a listing of every
  level and a :class:`RestoreTarget` into a :class:`RestorePlan`; Litestream 0.5's
  rule first, and any full database image as a start when that rule fails.
* :mod:`replica.restore.execute` (I/O): :func:`restore` lists, plans, fetches in
  parallel (:mod:`replica.restore.fetch`), applies the pages to a temporary file beside
  the output (:mod:`replica.restore.apply`) and publishes it without replacing anything
  that appeared meanwhile (:mod:`replica.restore.output`); :func:`calc_restore_plan`
  plans only.
* :mod:`replica.restore.probe` (I/O): the header and page-index facts the planner needs.
* :mod:`replica.restore.errors`: the :class:`RestoreError` hierarchy.

Importing this package loads none of them; each name comes from its module on first use,
so the pure planner can be imported without the executor's I/O.

``docs/spec/restore.md`` describes the algorithm and its guarantees.
"""

from typing import TYPE_CHECKING

from ltx.lazy import lazy_exports

if TYPE_CHECKING:
    from replica.restore.errors import (
        CorruptBackupError,
        IntegrityCheckError,
        NoBackupError,
        NonContiguousError,
        OutputExistsError,
        PageSizeChangeError,
        RestoreError,
        RestoreOptionsError,
        RestoreOutputError,
        RestorePlanError,
        TxNotAvailableError,
    )
    from replica.restore.execute import (
        INTEGRITY_CHECKS,
        MAX_PROBES,
        RestoreResult,
        calc_restore_plan,
        is_full_image,
        list_replica,
        probe_full_image,
        restore,
    )
    from replica.restore.fetch import CHUNK_SIZE
    from replica.restore.plan import (
        LATEST,
        FullImages,
        Listing,
        RestorePlan,
        RestoreTarget,
        check_contiguous,
        plan_restore,
        probe_candidates,
    )

_HOMES = {
    "CHUNK_SIZE": "replica.restore.fetch",
    "CorruptBackupError": "replica.restore.errors",
    "FullImages": "replica.restore.plan",
    "INTEGRITY_CHECKS": "replica.restore.execute",
    "IntegrityCheckError": "replica.restore.errors",
    "LATEST": "replica.restore.plan",
    "Listing": "replica.restore.plan",
    "MAX_PROBES": "replica.restore.execute",
    "NoBackupError": "replica.restore.errors",
    "NonContiguousError": "replica.restore.errors",
    "OutputExistsError": "replica.restore.errors",
    "PageSizeChangeError": "replica.restore.errors",
    "RestoreError": "replica.restore.errors",
    "RestoreOptionsError": "replica.restore.errors",
    "RestoreOutputError": "replica.restore.errors",
    "RestorePlan": "replica.restore.plan",
    "RestorePlanError": "replica.restore.errors",
    "RestoreResult": "replica.restore.execute",
    "RestoreTarget": "replica.restore.plan",
    "TxNotAvailableError": "replica.restore.errors",
    "calc_restore_plan": "replica.restore.execute",
    "check_contiguous": "replica.restore.plan",
    "is_full_image": "replica.restore.execute",
    "list_replica": "replica.restore.execute",
    "plan_restore": "replica.restore.plan",
    "probe_candidates": "replica.restore.plan",
    "probe_full_image": "replica.restore.execute",
    "restore": "replica.restore.execute",
}


__getattr__ = lazy_exports(__name__, _HOMES, globals())


__all__ = [
    "CHUNK_SIZE",
    "CorruptBackupError",
    "FullImages",
    "INTEGRITY_CHECKS",
    "IntegrityCheckError",
    "LATEST",
    "Listing",
    "MAX_PROBES",
    "NoBackupError",
    "NonContiguousError",
    "OutputExistsError",
    "PageSizeChangeError",
    "RestoreError",
    "RestoreOptionsError",
    "RestoreOutputError",
    "RestorePlan",
    "RestorePlanError",
    "RestoreResult",
    "RestoreTarget",
    "TxNotAvailableError",
    "calc_restore_plan",
    "check_contiguous",
    "is_full_image",
    "list_replica",
    "plan_restore",
    "probe_candidates",
    "probe_full_image",
    "restore",
]
