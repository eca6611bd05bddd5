"""The names this module used to define, kept importable from here.

The clients now live one per module: :mod:`replica.storage.base` (the contract and
its retry loop), :mod:`replica.storage.local`, :mod:`replica.storage.s3`,
:mod:`replica.storage.generic`, and :mod:`replica.storage.open` to pick one for a URL.
"""

from __future__ import annotations

from replica.storage.base import ReplicaClient
from replica.storage.failures import Target
from replica.storage.failures import Target as _Target
from replica.storage.generic import FsspecReplicaClient
from replica.storage.local import LocalReplicaClient
from replica.storage.open import open_replica_client
from replica.storage.s3 import S3ReplicaClient, build_s3_filesystem
from replica.storage.source import Data, Source
from replica.storage.source import Source as _Source
from replica.storage.timestamps import ABS_TIMESTAMP_METADATA_KEY, TIMESTAMP_METADATA_KEY

__all__ = [
    "ABS_TIMESTAMP_METADATA_KEY",
    "TIMESTAMP_METADATA_KEY",
    "Data",
    "FsspecReplicaClient",
    "LocalReplicaClient",
    "ReplicaClient",
    "S3ReplicaClient",
    "Source",
    "Target",
    "_Source",
    "_Target",
    "build_s3_filesystem",
    "open_replica_client",
]
