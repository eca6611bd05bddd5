"""Replica storage: URLs, the per-scheme layout, and synchronous clients over fsspec.

The public names are re-exported here; see :mod:`replica.storage.client` for the
client contract, :mod:`replica.storage.layout` for where files live, and
:mod:`replica.storage.url` for the accepted URL forms.
"""

from replica.storage.client import (
    TIMESTAMP_METADATA_KEY,
    FsspecReplicaClient,
    LocalReplicaClient,
    ReplicaClient,
    S3ReplicaClient,
    build_s3_filesystem,
    open_replica_client,
)
from replica.storage.layout import LEVELS, SNAPSHOT_LEVEL, layout_style, level_dir, ltx_key, parse_key
from replica.storage.retry import DEFAULT_RETRY, NO_RETRY, ErrorKind, RetryPolicy, classify
from replica.storage.timestamps import format_rfc3339nano, parse_rfc3339
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
