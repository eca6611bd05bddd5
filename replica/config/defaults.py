"""Litestream 0.5's default values and fixed names (reference Appendix A)."""

from __future__ import annotations

import datetime as dt
from typing import Final

DEFAULT_CONFIG_PATH: Final = "/etc/litestream.yml"
DEFAULT_SOCKET_PATH: Final = "/var/run/litestream.sock"
META_DIR_SUFFIX: Final = "-litestream"

DEFAULT_MONITOR_INTERVAL: Final = dt.timedelta(seconds=1)
DEFAULT_CHECKPOINT_INTERVAL: Final = dt.timedelta(minutes=1)
DEFAULT_BUSY_TIMEOUT: Final = dt.timedelta(seconds=1)
DEFAULT_MIN_CHECKPOINT_PAGE_COUNT: Final = 1000
DEFAULT_TRUNCATE_PAGE_N: Final = 121359
DEFAULT_MAX_SYNC_WAL_BYTES: Final = 64 * 1024 * 1024
DEFAULT_SYNC_INTERVAL: Final = dt.timedelta(seconds=1)
DEFAULT_MAX_SYNC_LTX_FILES: Final = 256
DEFAULT_SNAPSHOT_INTERVAL: Final = dt.timedelta(hours=24)
DEFAULT_SNAPSHOT_RETENTION: Final = dt.timedelta(hours=24)
DEFAULT_L0_RETENTION: Final = dt.timedelta(minutes=5)
DEFAULT_L0_RETENTION_CHECK_INTERVAL: Final = dt.timedelta(seconds=15)
DEFAULT_HEARTBEAT_INTERVAL: Final = dt.timedelta(minutes=5)
MIN_HEARTBEAT_INTERVAL: Final = dt.timedelta(minutes=1)
DEFAULT_SHUTDOWN_SYNC_TIMEOUT: Final = dt.timedelta(seconds=30)
DEFAULT_SHUTDOWN_SYNC_INTERVAL: Final = dt.timedelta(milliseconds=500)
S3_DEFAULT_R2_CONCURRENCY: Final = 2
