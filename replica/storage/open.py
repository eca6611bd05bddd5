"""Choosing the client for a replica URL."""

from __future__ import annotations

import os
from typing import Any

from replica.storage.base import ReplicaClient
from replica.storage.generic import FsspecReplicaClient
from replica.storage.local import LocalReplicaClient
from replica.storage.retry import DEFAULT_RETRY, RetryPolicy
from replica.storage.s3 import S3ReplicaClient
from replica.storage.url import ReplicaURL, parse_replica_url


def open_replica_client(
    url: str | os.PathLike[str] | ReplicaURL,
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
    fs: Any = None,
    **options: Any,
) -> ReplicaClient:
    """The client for a replica URL (or bare path); ``options`` go to the client class.

    ``fs`` injects a ready fsspec filesystem (used by S3 and generic clients; e.g.
    fsspec's ``memory`` filesystem in tests). Raises :class:`ReplicaURLError` for a
    bad URL. Backend packages are imported on first use, not here.
    """
    u = url if isinstance(url, ReplicaURL) else parse_replica_url(url)
    if u.scheme == "file":
        return LocalReplicaClient(u, retry=retry, fs=fs, **options)
    if u.scheme == "s3":
        return S3ReplicaClient(u, retry=retry, fs=fs, **options)
    return FsspecReplicaClient(u, retry=retry, fs=fs, **options)
