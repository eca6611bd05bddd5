"""Every default of replication, in one place and one unit (reference Appendix A).

Durations are :class:`datetime.timedelta`, counts and sizes are ``int``. A class that
keeps float seconds internally converts at its boundary with :func:`seconds`; nothing
else restates these values. Each docstring names the Litestream 0.5 setting (or Go
constant) the value mirrors. A default that depends on a database's path is a function
here (:func:`default_meta_path`). Pure: importing this module loads no storage, SQLite
or numpy module.
"""

from __future__ import annotations

import datetime as dt
import posixpath
from typing import Final

from replica._go.path import go_join

# -- files and names ---------------------------------------------------------------------

DEFAULT_CONFIG_PATH: Final = "/etc/litestream.yml"
"""Litestream's ``DefaultConfigPath``: read when neither ``-config`` nor ``$LITESTREAM_CONFIG`` is set."""

DEFAULT_SOCKET_PATH: Final = "/var/run/litestream.sock"
"""``socket.path``: the control socket's default location."""

META_DIR_SUFFIX: Final = "-litestream"
"""Litestream's ``MetaDirSuffix``: the meta directory is ``.<db name>-litestream`` beside the database."""


def default_meta_path(db_path: str) -> str:
    """The default meta directory of a database: ``<dir>/.<base>-litestream`` (reference §2.1)."""
    head, base = posixpath.split(db_path)
    return go_join(head, "." + base + META_DIR_SUFFIX) if head else "." + base + META_DIR_SUFFIX


# -- one database (Litestream's DB fields) -------------------------------------------------

DEFAULT_MONITOR_INTERVAL: Final = dt.timedelta(seconds=1)
"""``DB.MonitorInterval`` (``monitor-interval``): how often the WAL is synced into L0 files."""

DEFAULT_CHECKPOINT_INTERVAL: Final = dt.timedelta(minutes=1)
"""``DB.CheckpointInterval`` (``checkpoint-interval``): idleness before a time-based PASSIVE checkpoint."""

DEFAULT_BUSY_TIMEOUT: Final = dt.timedelta(seconds=1)
"""``DB.BusyTimeout`` (``busy-timeout``): SQLite's busy timeout on our connections."""

DEFAULT_MIN_CHECKPOINT_PAGE_COUNT: Final = 1000
"""``DB.MinCheckpointPageN`` (``min-checkpoint-page-count``): WAL pages before a PASSIVE checkpoint."""

DEFAULT_TRUNCATE_PAGE_N: Final = 121359
"""``DB.TruncatePageN`` (``truncate-page-n``): WAL pages before an emergency TRUNCATE checkpoint."""

DEFAULT_MAX_SYNC_WAL_BYTES: Final = 64 * 1024 * 1024
"""``DB.MaxSyncWALBytes`` (``max-sync-wal-bytes``): WAL bytes read per sync chunk."""

# -- the replica (Litestream's Replica fields) ---------------------------------------------

DEFAULT_SYNC_INTERVAL: Final = dt.timedelta(seconds=1)
"""``Replica.SyncInterval`` (``sync-interval``): how often new L0 files are uploaded."""

DEFAULT_MAX_SYNC_LTX_FILES: Final = 256
"""``max-sync-ltx-files``: L0 files uploaded per batch."""

DEFAULT_UPLOAD_CONCURRENCY: Final = 8
"""Uploads running at once in this process (Litestream uploads one file at a time per replica)."""

DEFAULT_SHUTDOWN_SYNC_TIMEOUT: Final = dt.timedelta(seconds=30)
"""``shutdown-sync-timeout``: how long the last uploads are retried on shutdown."""

DEFAULT_SHUTDOWN_SYNC_INTERVAL: Final = dt.timedelta(milliseconds=500)
"""``shutdown-sync-interval``: the pause between those retries."""

# -- compaction, snapshots and retention (Litestream's Store fields) -----------------------

DEFAULT_LEVEL_INTERVALS: Final[tuple[dt.timedelta, ...]] = (
    dt.timedelta(seconds=30),
    dt.timedelta(minutes=5),
    dt.timedelta(hours=1),
)
"""``levels``: the compaction intervals of L1, L2 and L3 (``DefaultCompactionLevels``)."""

DEFAULT_SNAPSHOT_INTERVAL: Final = dt.timedelta(hours=24)
"""``snapshot.interval`` (``DefaultSnapshotInterval``): how often a level-9 snapshot is written."""

DEFAULT_SNAPSHOT_RETENTION: Final = dt.timedelta(hours=24)
"""``snapshot.retention`` (``DefaultSnapshotRetention``): how long snapshots are kept."""

DEFAULT_L0_RETENTION: Final = dt.timedelta(minutes=5)
"""``l0-retention`` (``DefaultL0Retention``): how long compacted L0 files stay; 0 keeps them."""

DEFAULT_L0_RETENTION_CHECK_INTERVAL: Final = dt.timedelta(seconds=15)
"""``l0-retention-check-interval`` (``DefaultL0RetentionCheckInterval``): how often retention runs."""

# -- errors and waiting --------------------------------------------------------------------

MAX_ERROR_BACKOFF: Final = dt.timedelta(minutes=5)
"""The longest pause between retries after an error (Litestream doubles up to 5 min)."""

ERROR_LOG_EVERY: Final = dt.timedelta(seconds=30)
"""A repeating error is logged at most this often."""

SYNC_WORKERS: Final = 3
"""Threads that sync databases (local work: the WAL, the meta directory, checkpoints),
shared by every database of the process (``replica/runtime.py``)."""

UPLOAD_WORKERS: Final = 6
"""Threads that upload L0 files, shared by every database of the process: a store that hangs
holds these, never the threads that sync."""

BACKGROUND_WORKERS: Final = 2
"""Threads that compact, snapshot and enforce retention, shared by every database of the process."""

QUIET_RECHECK: Final = dt.timedelta(seconds=30)
"""How often a database whose changes the kernel notifies is checked anyway, and how often
its uploader looks for local files nothing announced: the safety net under notifications."""

NOT_READY_RETRY: Final = dt.timedelta(seconds=1)
"""How often compaction waits again for a database that is not ready yet."""

NOT_READY_TIMEOUT: Final = dt.timedelta(seconds=30)
"""How long compaction waits for a database that is not ready yet."""

# -- heartbeat ------------------------------------------------------------------------------

DEFAULT_HEARTBEAT_INTERVAL: Final = dt.timedelta(minutes=5)
"""``heartbeat-interval``: how often the heartbeat URL is pinged."""

MIN_HEARTBEAT_INTERVAL: Final = dt.timedelta(minutes=1)
"""The smallest ``heartbeat-interval`` Litestream accepts."""

# -- storage and restore -----------------------------------------------------------------

S3_DEFAULT_R2_CONCURRENCY: Final = 2
"""The S3 upload concurrency Litestream uses for Cloudflare R2 endpoints."""

DEFAULT_S3_CONNECT_TIMEOUT: Final = dt.timedelta(seconds=10)
"""Connecting to an S3 endpoint gives up after this long."""

DEFAULT_S3_READ_TIMEOUT: Final = dt.timedelta(seconds=60)
"""An S3 response that stalls this long fails (and is retried)."""

DEFAULT_RESTORE_PARALLELISM: Final = 8
"""``restore -parallelism``: files fetched at once (Litestream accepts the flag and ignores it)."""


def seconds(d: dt.timedelta) -> float:
    """``d`` as float seconds, for the classes that keep times that way internally."""
    return d.total_seconds()
