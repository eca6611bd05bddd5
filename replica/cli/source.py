"""Where a command's replica is: a replica URL on the command line, or a database in the config."""

from __future__ import annotations

import argparse
import re

from replica import config as cfgmod
from replica.cli.errors import CommandError, UsageError
from replica.defaults import DEFAULT_S3_CONNECT_TIMEOUT, DEFAULT_S3_READ_TIMEOUT, seconds
from replica.storage import ReplicaClient, build_s3_filesystem, open_replica_client


def is_url(s: str) -> bool:
    """Whether ``s`` starts with ``scheme://`` (a replica URL, not a database path)."""
    return re.match(r"^\w+://", s) is not None


def load(args: argparse.Namespace) -> cfgmod.Config:
    """The configuration named by ``-config`` (and ``-no-expand-env``) of ``args``."""
    return cfgmod.load_config(args.config, expand_env=not args.no_expand_env)


def client_for(rc: cfgmod.ReplicaConfig) -> ReplicaClient:
    """A replica client for a configured replica, with credentials from the config when given."""
    url = rc.to_replica_url()
    if url.scheme == "s3" and rc.access_key_id and url.s3 is not None:
        fs = build_s3_filesystem(
            url.s3,
            connect_timeout=seconds(DEFAULT_S3_CONNECT_TIMEOUT),
            read_timeout=seconds(DEFAULT_S3_READ_TIMEOUT),
            key=rc.access_key_id,
            secret=rc.secret_access_key,
        )
        return open_replica_client(url, fs=fs)
    return open_replica_client(url)


def configured_dbs(cfg: cfgmod.Config) -> list[cfgmod.DBConfig]:
    """The databases of ``cfg`` (``dir:`` entries expanded), each of which must have a replica."""
    dbs = cfgmod.expand_dir_entries(cfg)
    for d in dbs:
        if d.replica is None:
            raise CommandError(f"must specify replica for database: {d.path}")
    return dbs


def resolve_source(args: argparse.Namespace) -> tuple[ReplicaClient, str | None]:
    """(replica client, database path from the config or None) for restore, ltx and verify."""
    target = args.target
    if is_url(target):
        if args.config:
            raise UsageError("cannot specify a replica URL and the -config flag")
        return open_replica_client(target), None
    cfg = load(args)
    path = cfgmod.expand_path(target)
    for dbc in configured_dbs(cfg):
        if dbc.path == path and dbc.replica is not None:
            return client_for(dbc.replica), path
    raise CommandError(f"database not found in config: {path}")
