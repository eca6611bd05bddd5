"""From a configuration to running replications: the one binding ``replicate`` uses.

``replicate -config FILE`` and ``replicate DB_PATH [REPLICA_URL]`` both end here with a
:class:`~replica.config.Config`: the second gets it from
:func:`~replica.config.config_from_args`, so its defaults and validation are those of a
one-database configuration file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import attrs

from replica import config as cfgmod
from replica.cli.source import client_for, configured_dbs, is_url
from replica.daemon import Replication, ReplicationOptions
from replica.defaults import DEFAULT_MIN_CHECKPOINT_PAGE_COUNT, DEFAULT_TRUNCATE_PAGE_N, seconds
from replica.monitor import DBOptions
from replica.storage import ReplicaClient, open_replica_client
from replica.storage.url import parse_replica_url

Factories = dict[str, Callable[[], Replication]]
"""For every database to replicate now, a way to build its :class:`Replication`."""

OpenClient = Callable[[cfgmod.DBConfig], ReplicaClient]
"""The replica client of a configured database."""


def db_options(dbc: cfgmod.DBConfig) -> DBOptions:
    """The monitor settings of one configured database (0 page counts mean the default)."""
    return DBOptions(
        meta_path=dbc.meta_path,
        monitor_interval=seconds(dbc.monitor_interval),
        checkpoint_interval=seconds(dbc.checkpoint_interval),
        busy_timeout=seconds(dbc.busy_timeout),
        min_checkpoint_page_count=dbc.min_checkpoint_page_count or DEFAULT_MIN_CHECKPOINT_PAGE_COUNT,
        truncate_page_n=dbc.truncate_page_n or DEFAULT_TRUNCATE_PAGE_N,
    )


def replication_options(cfg: cfgmod.Config, dbc: cfgmod.DBConfig) -> ReplicationOptions:
    """Every setting of one database's replication, from its entry and the global settings."""
    rc = dbc.replica
    if rc is None:
        raise cfgmod.ConfigError("must specify replica for database")
    return ReplicationOptions(
        db=db_options(dbc),
        sync_interval=seconds(rc.sync_interval),
        max_batch=rc.max_sync_ltx_files,
        shutdown_timeout=seconds(cfg.shutdown_sync_timeout),
        shutdown_interval=seconds(cfg.shutdown_sync_interval),
        levels=tuple(lv.interval for lv in cfg.levels),
        snapshot_interval=cfg.snapshot_interval,
        snapshot_retention=cfg.snapshot_retention,
        l0_retention=cfg.l0_retention,
        l0_retention_check_interval=cfg.l0_retention_check_interval,
        retention_enabled=cfg.retention_enabled,
    )


def _configured_client(dbc: cfgmod.DBConfig) -> ReplicaClient:
    if dbc.replica is None:
        raise cfgmod.ConfigError("must specify replica for database")
    return client_for(dbc.replica)


def discoverer(cfg: cfgmod.Config, open_client: OpenClient = _configured_client) -> Callable[[], Factories]:
    """What the supervisor calls to learn the databases of ``cfg`` (re-read for ``dir:`` entries)."""

    def build(dbc: cfgmod.DBConfig) -> Callable[[], Replication]:
        return lambda: Replication(dbc.path, open_client(dbc), replication_options(cfg, dbc))

    def discover() -> Factories:
        return {d.path: build(d) for d in configured_dbs(cfg)}

    return discover


def config_from_command_line(
    db_path: str, replica_url: str | None, environ: Mapping[str, str] | None = None
) -> tuple[cfgmod.Config, OpenClient]:
    """The configuration of ``replicate DB_PATH [REPLICA_URL]`` and how it opens its replica.

    No URL means the directory ``<DB_PATH>-replica``; a bare path is a ``file`` replica.
    The URL is parsed first by the replica URL parser, so a bad one fails with the same
    message as anywhere else a replica URL is given; then the one-database configuration
    is built and validated like a configuration file, with ``$LOG_LEVEL`` applied as a
    file's would be. The client is opened at once, from the URL as given (the configuration
    layer rewrites some URLs the Go way, e.g. escaping spaces in ``file`` paths).
    """
    env = os.environ if environ is None else environ
    db = os.path.abspath(db_path)
    url = replica_url if replica_url is not None else f"file://{db}-replica"
    parsed = parse_replica_url(url)
    cfg = cfgmod.config_from_args(db, url if is_url(url) else f"file://{parsed.path}")
    client = open_replica_client(parsed)
    logging = attrs.evolve(cfg.logging, level=env.get("LOG_LEVEL") or cfg.logging.level)
    return attrs.evolve(cfg, logging=logging), lambda _dbc: client
