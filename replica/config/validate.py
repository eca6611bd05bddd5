"""Litestream's ``Config.Validate``: the first problem, with Litestream's message.

Messages have the form ``<field>: <error> (got <value>)`` (durations printed the Go way)
or ``database config #N: …`` for the shape of a ``dbs[]`` entry.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from replica._go.duration import format_go_duration
from replica.config.errors import ConfigError
from replica.config.schema import Config
from replica.defaults import MIN_HEARTBEAT_INTERVAL

_LOG_TYPES: Final = frozenset(("text", "json", "pretty", ""))


def _invalid(field: str, error: str, value: object) -> ConfigError:
    shown = format_go_duration(value) if isinstance(value, dt.timedelta) else str(value)
    return ConfigError(f"{field}: {error} (got {shown})", key=field, value=value)


def validate(cfg: Config) -> None:
    """Litestream's ``Config.Validate``, in its order; raises the first problem as :class:`ConfigError`."""
    zero = dt.timedelta(0)
    if cfg.snapshot.interval <= zero:
        raise _invalid("snapshot.interval", "snapshot interval must be greater than 0", cfg.snapshot.interval)
    if cfg.snapshot.retention <= zero:
        raise _invalid(
            "snapshot.retention", "snapshot retention must be greater than 0", cfg.snapshot.retention
        )
    if cfg.l0_retention < zero:
        raise _invalid("l0-retention", "l0 retention must not be negative", cfg.l0_retention)
    if cfg.l0_retention_check_interval <= zero:
        raise _invalid(
            "l0-retention-check-interval",
            "l0 retention check interval must be greater than 0",
            cfg.l0_retention_check_interval,
        )
    if cfg.shutdown_sync_timeout < zero:
        raise _invalid(
            "shutdown-sync-timeout", "shutdown-sync-timeout must be >= 0", cfg.shutdown_sync_timeout
        )
    if cfg.shutdown_sync_interval <= zero:
        raise _invalid(
            "shutdown-sync-interval",
            "shutdown sync interval must be greater than 0",
            cfg.shutdown_sync_interval,
        )
    if cfg.heartbeat_url and not cfg.heartbeat_url.startswith(("http://", "https://")):
        raise _invalid("heartbeat-url", "heartbeat URL must be a valid HTTP or HTTPS URL", cfg.heartbeat_url)
    if cfg.heartbeat_interval < MIN_HEARTBEAT_INTERVAL:
        raise _invalid(
            "heartbeat-interval", "heartbeat interval must be at least 1 minute", cfg.heartbeat_interval
        )
    for i, level in enumerate(cfg.levels):
        if level.interval <= zero:
            raise _invalid(
                f"levels[{i}].interval", "compaction interval must be greater than 0", level.interval
            )
    for idx, db in enumerate(cfg.dbs, start=1):
        where = f"database config #{idx}"
        if db.path and db.dir:
            raise ConfigError(f"{where}: cannot specify both 'path' and 'dir'")
        if not db.path and not db.dir:
            raise ConfigError(f"{where}: must specify either 'path' or 'dir'")
        if db.dir and not db.pattern:
            raise ConfigError(f"{where}: 'pattern' is required when using 'dir'")
        if db.watch and not db.dir:
            raise ConfigError(f"{where}: 'watch' can only be enabled with a directory")
        if db.meta_dir is not None and not db.dir:
            raise ConfigError(f"{where}: 'meta-dir' can only be used with a directory")
        if db.meta_path is not None and db.meta_dir is not None:
            raise ConfigError(f"{where}: cannot specify both 'meta-path' and 'meta-dir'")
        ident = db.identifier
        if db.snapshot.interval is not None and db.snapshot.interval <= zero:
            raise _invalid(
                f"dbs[{ident}].snapshot.interval",
                "snapshot interval must be greater than 0",
                db.snapshot.interval,
            )
        if db.snapshot.retention is not None and db.snapshot.retention <= zero:
            raise _invalid(
                f"dbs[{ident}].snapshot.retention",
                "snapshot retention must be greater than 0",
                db.snapshot.retention,
            )
        if db.replica is not None and db.replica.sync_interval <= zero:
            raise _invalid(
                f"dbs[{ident}].replica.sync-interval",
                "sync interval must be greater than 0",
                db.replica.sync_interval,
            )
        for i, rc in enumerate(db.replicas):
            if rc.sync_interval <= zero:
                raise _invalid(
                    f"dbs[{ident}].replicas[{i}].sync-interval",
                    "sync interval must be greater than 0",
                    rc.sync_interval,
                )
    if cfg.logging.type not in _LOG_TYPES:
        raise _invalid("logging.type", "log type must be text, json or pretty", cfg.logging.type)
