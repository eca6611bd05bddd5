"""Restore a database from its replica: a pure planner and an executor.

* :mod:`replica.restore.plan` (pure): :func:`plan_restore` turns a listing of every
  level and a :class:`RestoreTarget` into a :class:`RestorePlan`; Litestream 0.5's
  rule first, and any full database image as a start when that rule fails.
* :mod:`replica.restore.execute` (I/O): :func:`restore` lists, plans, fetches in
  parallel, writes ``<output>.tmp`` and renames it; :func:`calc_restore_plan` plans only.
* :mod:`replica.restore.errors`: the :class:`RestoreError` hierarchy.

``docs/spec/restore.md`` describes the algorithm and its guarantees.
"""

from replica.restore.errors import (
    CorruptBackupError,
    IntegrityCheckError,
    NoBackupError,
    NonContiguousError,
    OutputExistsError,
    RestoreError,
    RestoreOptionsError,
    RestorePlanError,
    TxNotAvailableError,
)
from replica.restore.execute import (
    CHUNK_SIZE,
    INTEGRITY_CHECKS,
    MAX_PROBES,
    RestoreResult,
    calc_restore_plan,
    is_full_image,
    list_replica,
    probe_full_image,
    restore,
)
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

__all__ = [
    "CHUNK_SIZE",
    "INTEGRITY_CHECKS",
    "LATEST",
    "MAX_PROBES",
    "CorruptBackupError",
    "FullImages",
    "IntegrityCheckError",
    "Listing",
    "NoBackupError",
    "NonContiguousError",
    "OutputExistsError",
    "RestoreError",
    "RestoreOptionsError",
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
