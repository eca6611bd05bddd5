"""What Litestream checks and fills in when it builds a database from a ``dbs[]`` path entry.

Litestream's ``NewDBFromConfig`` runs after validation: exactly one replica, no
``meta-dir`` outside a directory entry, and the replica's own checks. Then paths are
made absolute, the default meta path is filled in, and a one-element ``replicas:``
list becomes ``replica``.
"""

from __future__ import annotations

import attrs

from replica.config.backends import check_replica, is_url
from replica.config.errors import ConfigError
from replica.config.paths import expand_path
from replica.config.schema import DBConfig, ReplicaConfig
from replica.defaults import default_meta_path


def _single_replica(db: DBConfig) -> ReplicaConfig:
    if db.replica is None and not db.replicas:
        raise ConfigError("must specify replica for database")
    if db.replica is not None and db.replicas:
        raise ConfigError("cannot specify 'replica' and 'replicas' on a database")
    if len(db.replicas) > 1:
        raise ConfigError("multiple replicas on a single database are no longer supported")
    return db.replica if db.replica is not None else db.replicas[0]


def check_db(db: DBConfig) -> None:
    """Litestream's ``NewDBFromConfig`` checks for a path entry; raises :class:`ConfigError`."""
    if db.meta_dir is not None:
        raise ConfigError("'meta-dir' can only be used with a directory")
    check_replica(_single_replica(db))


def finish_db(db: DBConfig, base_dir: str | None) -> DBConfig:
    """Expanded meta paths and directory; the single replica moved into ``replica``."""
    meta_path = expand_path(db.meta_path, base_dir) if db.meta_path is not None else None
    meta_dir = expand_path(db.meta_dir, base_dir) if db.meta_dir is not None else None
    if db.path and meta_path is None:
        meta_path = default_meta_path(db.path)
    replica = db.replica
    replicas = db.replicas
    if replica is None and len(replicas) == 1:
        replica, replicas = replicas[0], ()
    replica = _finish_replica(replica, base_dir) if replica is not None else None
    replicas = tuple(_finish_replica(r, base_dir) for r in replicas)
    return attrs.evolve(
        db,
        dir=expand_path(db.dir, base_dir) if db.dir else "",
        meta_path=meta_path,
        meta_dir=meta_dir,
        replica=replica,
        replicas=replicas,
    )


def _finish_replica(rc: ReplicaConfig, base_dir: str | None) -> ReplicaConfig:
    if rc.replica_type == "file" and rc.path and not rc.url and not is_url(rc.path):
        return attrs.evolve(rc, path=expand_path(rc.path, base_dir))
    return rc
