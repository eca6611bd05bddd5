"""Reading ``litestream.yml``: Litestream's ``ReadConfigFile`` / ``ParseConfig`` steps, in order.

1. find the file (``-config``, else ``$LITESTREAM_CONFIG``, else ``/etc/litestream.yml``);
2. expand ``$NAME`` / ``${NAME}`` in the whole raw text (:mod:`replica.config.environ`);
3. read the YAML like yaml.v2 (:mod:`replica.config.yamlv2`), first only ``snapshot:``
   (to know which snapshot settings were set), then, after copying the global replica
   settings into each replica (:mod:`replica.config.inherit`), the whole document
   (:mod:`replica.config.hooks`);
4. promote per-database ``snapshot:`` values, make database paths absolute, validate
   (:mod:`replica.config.validate`), apply the per-database checks
   (:mod:`replica.config.database`) and ``$LOG_LEVEL``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence

import attrs

from replica._go.duration import format_go_duration
from replica._go.oserror import path_error
from replica.config.database import check_db, finish_db
from replica.config.environ import expand_env_text
from replica.config.errors import ConfigError
from replica.config.hooks import structure
from replica.config.inherit import propagate
from replica.config.paths import expand_path
from replica.config.schema import ROOT_GO_TYPE, Config, DBConfig, DBSnapshotConfig, ReplicaConfig
from replica.config.validate import validate
from replica.config.yamlv2 import DecodeLog, Map, Scalar, load_yaml, type_error
from replica.defaults import DEFAULT_CONFIG_PATH, DEFAULT_SYNC_INTERVAL


def load_config(
    path: str | None = None, *, expand_env: bool = True, environ: Mapping[str, str] | None = None
) -> Config:
    """Read and validate a config file like ``litestream replicate -config PATH``.

    ``path`` defaults to ``$LITESTREAM_CONFIG`` (when non-empty) and then
    ``/etc/litestream.yml``; it is expanded (``~``, absolute). ``expand_env=False`` is
    ``-no-expand-env``. ``environ`` (default :data:`os.environ`) is used for the path
    lookup, the expansion and ``$LOG_LEVEL``. Relative paths inside the file are resolved
    against the current directory, as Litestream does. Raises :class:`ConfigError`
    (``config file not found: <path>`` when the file does not exist).
    """
    env = os.environ if environ is None else environ
    raw = path or env.get("LITESTREAM_CONFIG") or DEFAULT_CONFIG_PATH
    filename = expand_path(raw)
    try:
        with open(filename, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {filename}").located(path=filename) from None
    except OSError as e:
        raise ConfigError(path_error("open", filename, e)).located(path=filename) from e
    try:
        text = data.decode("utf-8")
        cfg = parse_config(text, expand_env=expand_env, environ=env)
    except UnicodeDecodeError:
        raise ConfigError("yaml: invalid leading UTF-8 octet").located(path=filename) from None
    except ConfigError as e:
        e.located(path=filename)
        raise
    return attrs.evolve(cfg, config_path=filename)


def parse_config(
    text: str,
    *,
    base_dir: str | None = None,
    expand_env: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Parse and validate config text (Litestream's ``ParseConfig`` plus its per-database checks).

    ``base_dir`` is the directory relative paths are resolved against (default: the
    current directory). See :func:`load_config` for ``expand_env`` and ``environ``.
    Returns a :class:`Config` whose path entries are ready to use and whose ``dir:``
    entries are templates for :func:`~replica.config.expand_dir_entries`. Raises
    :class:`ConfigError`.
    """
    env = os.environ if environ is None else environ
    if expand_env:
        text = expand_env_text(text, env)
    log = DecodeLog()
    tree = load_yaml(text, log)
    if isinstance(tree, Scalar):
        type_error(tree, ROOT_GO_TYPE)
        log.raise_if_any()
    if not isinstance(tree, Map):
        tree = Map(1, log)  # an empty document, or a sequence (ignored by yaml.v2)

    # yaml.v2 first decodes only `snapshot:` (to learn what was set explicitly).
    raw_snapshot = tree.get("snapshot")
    structure(raw_snapshot, DBSnapshotConfig)
    log.raise_if_any()
    interval_set = isinstance(raw_snapshot, Map) and raw_snapshot.get("interval") is not None
    retention_set = isinstance(raw_snapshot, Map) and raw_snapshot.get("retention") is not None

    tree = propagate(tree)
    cfg = structure(tree, Config)
    log.raise_if_any()
    cfg = _apply_db_snapshots(cfg, interval_set, retention_set)
    cfg = attrs.evolve(
        cfg,
        dbs=tuple(attrs.evolve(db, path=expand_path(db.path, base_dir)) if db.path else db for db in cfg.dbs),
    )
    validate(cfg)
    for db in cfg.dbs:
        if db.path:
            check_db(db)
    level = env.get("LOG_LEVEL")
    logging = cfg.logging
    logging = attrs.evolve(logging, level=level or logging.level or "INFO", type=logging.type or "text")
    return attrs.evolve(cfg, logging=logging, dbs=tuple(finish_db(db, base_dir) for db in cfg.dbs))


def config_from_args(
    db_path: str, replica_url: str | Sequence[str] | None, *, base_dir: str | None = None
) -> Config:
    """The ad-hoc configuration of ``litestream replicate DB_PATH REPLICA_URL``.

    Defaults everywhere, one database, its replica from the URL with a 1 s sync interval.
    No URL → ``must specify at least one replica URL for <path>``; several →
    ``multiple replicas on a single database are no longer supported``; a URL without a
    scheme → ``replica url scheme required: <url>``.
    """
    urls = [replica_url] if isinstance(replica_url, str) else list(replica_url or ())
    if not urls:
        raise ConfigError(f"must specify at least one replica URL for {db_path}")
    replicas = tuple(ReplicaConfig(url=u, sync_interval=DEFAULT_SYNC_INTERVAL) for u in urls)
    db = DBConfig(path=expand_path(db_path, base_dir), replicas=replicas)
    check_db(db)
    return Config(dbs=(finish_db(db, base_dir),))


def _apply_db_snapshots(cfg: Config, interval_set: bool, retention_set: bool) -> Config:
    """Per-DB ``snapshot:`` values become the global ones unless those were set explicitly."""
    interval = _agreed(cfg, "interval", "intervals")
    retention = _agreed(cfg, "retention", "retentions")
    snapshot = cfg.snapshot
    if not interval_set and interval is not None:
        snapshot = attrs.evolve(snapshot, interval=interval[1])
    if not retention_set and retention is not None:
        snapshot = attrs.evolve(snapshot, retention=retention[1])
    return attrs.evolve(cfg, snapshot=snapshot)


def _agreed(cfg: Config, field: str, plural: str) -> tuple[str, dt.timedelta] | None:
    """The one per-database ``snapshot.<field>`` value and the last database naming it.

    Raises Litestream's ``conflicting database snapshot <plural>`` error when two differ.
    """
    found: tuple[str, dt.timedelta] | None = None
    for db in cfg.dbs:
        value = getattr(db.snapshot, field)
        if value is None:
            continue
        if found is not None and found[1] != value:
            raise ConfigError(
                f"conflicting database snapshot {plural}: {found[0]} has "
                f"{format_go_duration(found[1])}, {db.identifier} has {format_go_duration(value)}"
            )
        found = (db.identifier, value)
    return found
