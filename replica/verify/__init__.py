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

The package, one concept per module:

* :mod:`replica.verify.report` (pure): :class:`Finding`, :class:`Severity`,
  :class:`Status`, :class:`VerifyReport` and their text and JSON forms.
* :mod:`replica.verify.checks` (pure): the checks of steps 2 to 5 over decoded facts.
* :mod:`replica.verify.read` (I/O): listing, the owner record, reading and decoding files.
* :mod:`replica.verify.restores` (I/O): the trial restores of step 6.
* :mod:`replica.verify.progress`: the :data:`Progress` callback and its terminal form.
* :mod:`replica.verify.verifier`: :func:`verify_replica`, the steps in order.
* :mod:`replica.verify.command`: :func:`run`.

Importing this package loads none of them; each name below comes from its module on
first use, so the pure modules can be imported without the store clients.
"""

from typing import TYPE_CHECKING

from ltx.lazy import lazy_exports

if TYPE_CHECKING:
    from replica.verify.command import run
    from replica.verify.progress import Progress
    from replica.verify.report import (
        EXIT_DAMAGED,
        EXIT_HEALTHY,
        EXIT_UNREACHABLE,
        Finding,
        Severity,
        Status,
        VerifyReport,
    )
    from replica.verify.verifier import verify_replica

_HOMES = {
    "DEFAULT_PARALLELISM": "replica.verify.verifier",
    "EXIT_DAMAGED": "replica.verify.report",
    "EXIT_HEALTHY": "replica.verify.report",
    "EXIT_UNREACHABLE": "replica.verify.report",
    "Finding": "replica.verify.report",
    "Progress": "replica.verify.progress",
    "Severity": "replica.verify.report",
    "Status": "replica.verify.report",
    "VerifyReport": "replica.verify.report",
    "run": "replica.verify.command",
    "verify_replica": "replica.verify.verifier",
}


__getattr__ = lazy_exports(__name__, _HOMES, globals())


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
