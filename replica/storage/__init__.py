"""Replica storage: URLs, the per-scheme layout, and synchronous clients over fsspec.

The public names are re-exported here. One module per concept:
:mod:`replica.storage.base` (the client contract and its retry loop),
:mod:`replica.storage.retry` (which failures are retried, and how long to wait),
:mod:`replica.storage.failures` (the typed error a failure becomes),
:mod:`replica.storage.local`, :mod:`replica.storage.s3` and
:mod:`replica.storage.generic` (one client per family of stores),
:mod:`replica.storage.open` (the client for a URL), :mod:`replica.storage.layout`
(where files live) and :mod:`replica.storage.url` (the accepted URL forms).
"""

from replica.storage.base import ReplicaClient
from replica.storage.generic import FsspecReplicaClient
from replica.storage.layout import LEVELS, SNAPSHOT_LEVEL, layout_style, level_dir, ltx_key, parse_key
from replica.storage.local import LocalReplicaClient
from replica.storage.open import open_replica_client
from replica.storage.retry import DEFAULT_RETRY, NO_RETRY, ErrorKind, RetryPolicy, classify
from replica.storage.s3 import S3ReplicaClient, build_s3_filesystem
from replica.storage.timestamps import TIMESTAMP_METADATA_KEY, format_rfc3339nano, parse_rfc3339
from replica.storage.url import ReplicaURL, S3Options, parse_replica_url

__all__ = [
    "DEFAULT_RETRY",
    "LEVELS",
    "NO_RETRY",
    "SNAPSHOT_LEVEL",
    "TIMESTAMP_METADATA_KEY",
    "ErrorKind",
    "FsspecReplicaClient",
    "LocalReplicaClient",
    "ReplicaClient",
    "ReplicaURL",
    "RetryPolicy",
    "S3Options",
    "S3ReplicaClient",
    "build_s3_filesystem",
    "classify",
    "format_rfc3339nano",
    "layout_style",
    "level_dir",
    "ltx_key",
    "open_replica_client",
    "parse_key",
    "parse_replica_url",
    "parse_rfc3339",
]
