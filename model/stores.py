"""Replica stores for conformance runs: a local directory, fsspec's memory store (with faults), S3.

A :class:`Store` is where one state-machine run replicates to: a URL for replicators
run as processes (with the environment they need), and a
:class:`~replica.storage.ReplicaClient` the harness (and an in-process replicator)
uses. Every run gets its own root: fsspec's memory store is one global dictionary
per process, and S3 runs get their own bucket.

:class:`FaultyMemoryFileSystem` is fsspec's memory filesystem that can be told to
fail the next few writes or reads *transiently* (``ConnectionResetError``, which
the replica clients retry), either before the operation takes effect or after it
(the write landed but the caller saw an error). It also keeps the ``metadata=`` a
writer passes (as gcsfs and adlfs do), so listings can report the LTX timestamp.
"""

from __future__ import annotations

import abc
import contextlib
import enum
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import attrs
from fsspec.implementations.memory import MemoryFileSystem

from model._extra import require
from replica.storage import ReplicaClient, RetryPolicy, open_replica_client

FAST_RETRY = RetryPolicy(attempts=3, initial_delay=0.0, max_delay=0.0, jitter=0.0)
"""What the harness and in-process replicators use: three tries, no waiting."""

S3_ACCESS_KEY = "testing"
S3_SECRET_KEY = "testing"
S3_REGION = "us-east-1"


class FaultKind(enum.Enum):
    WRITE_BEFORE = "write-before"
    """A write fails and nothing is stored."""
    WRITE_AFTER = "write-after"
    """A write is stored, then the caller gets an error anyway."""
    READ = "read"
    """A read fails."""


class InjectedFault(ConnectionResetError):
    """A transient storage failure injected by the harness."""


class FaultyMemoryFileSystem(MemoryFileSystem):  # type: ignore[misc]
    """fsspec's memory filesystem with injectable transient faults and kept write metadata."""

    cachable = False
    protocol = ("memory-faulty",)
    _metadata: ClassVar[dict[str, dict[str, str]]] = {}
    """Write metadata by path: global, like the memory store itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fault_lock = threading.Lock()
        self._faults: dict[FaultKind, int] = dict.fromkeys(FaultKind, 0)
        self.fired = 0

    def arm(self, kind: FaultKind, count: int) -> None:
        """Fail the next ``count`` operations of ``kind``."""
        with self._fault_lock:
            self._faults[kind] += count

    def disarm(self) -> None:
        with self._fault_lock:
            for k in self._faults:
                self._faults[k] = 0

    @property
    def armed(self) -> int:
        with self._fault_lock:
            return sum(self._faults.values())

    def _take(self, kind: FaultKind) -> bool:
        with self._fault_lock:
            if self._faults[kind] > 0:
                self._faults[kind] -= 1
                self.fired += 1
                return True
            return False

    def _write(self, path: str, meta: Any, do: Any) -> Any:
        if self._take(FaultKind.WRITE_BEFORE):
            raise InjectedFault(f"injected failure before writing {path}")
        out = do()
        if isinstance(meta, dict):
            self._metadata[self._strip_protocol(path)] = {str(k): str(v) for k, v in meta.items()}
        if self._take(FaultKind.WRITE_AFTER):
            raise InjectedFault(f"injected failure after writing {path}")
        return out

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> Any:
        meta = kwargs.pop("metadata", None)
        return self._write(path, meta, lambda: MemoryFileSystem.pipe_file(self, path, value, mode))

    def put_file(self, lpath: str, rpath: str, *args: Any, **kwargs: Any) -> Any:
        meta = kwargs.pop("metadata", None)
        return self._write(
            rpath, meta, lambda: MemoryFileSystem.put_file(self, lpath, rpath, *args, **kwargs)
        )

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> Any:
        if self._take(FaultKind.READ):
            raise InjectedFault(f"injected failure reading {path}")
        return super().cat_file(path, start=start, end=end, **kwargs)

    def _with_meta(self, entry: dict[str, Any]) -> dict[str, Any]:
        meta = self._metadata.get(self._strip_protocol(str(entry.get("name", ""))))
        return {**entry, "metadata": meta} if meta else entry

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        out = super().ls(path, detail=detail, **kwargs)
        if detail:
            return [self._with_meta(e) for e in out]
        return out

    def info(self, path: str, **kwargs: Any) -> Any:
        return self._with_meta(super().info(path, **kwargs))

    def rm_file(self, path: str) -> None:
        self._metadata.pop(self._strip_protocol(path), None)
        super().rm_file(path)


class Store(abc.ABC):
    """Where one run replicates to."""

    kind: str
    url: str
    """The replica URL a replicator process is given."""

    @property
    def env(self) -> dict[str, str]:
        """Environment variables a replicator process needs for :attr:`url`."""
        return {}

    @abc.abstractmethod
    def client(self) -> ReplicaClient:
        """A fresh client for the replica (fast retries), subject to injected faults."""

    def observer_client(self) -> ReplicaClient:
        """A client for the harness's own reads: never subject to injected faults."""
        return self.client()

    @property
    def faults(self) -> FaultyMemoryFileSystem | None:
        """The fault injector, when this store has one."""
        return None

    def describe(self) -> str:
        return self.url

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Delete everything the run stored."""


class FileStore(Store):
    kind = "file"

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = f"file://{self.root}"

    def client(self) -> ReplicaClient:
        return open_replica_client(self.url, retry=FAST_RETRY)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class MemoryStore(Store):
    """fsspec's memory store under a root of its own, through the generic fsspec client.

    The replica URL cannot be given to another process (the store lives in this
    one); :attr:`url` is the ``gs://<root>/db`` form the generic client is built
    with, :meth:`describe` says ``memory://<root>/db``.
    """

    kind = "memory"

    def __init__(self) -> None:
        self.root = f"conformance-{os.getpid()}-{secrets.token_hex(6)}"
        self.fs = FaultyMemoryFileSystem()
        self.clean_fs = FaultyMemoryFileSystem()
        self.url = f"gs://{self.root}/db"

    @property
    def faults(self) -> FaultyMemoryFileSystem:
        return self.fs

    def client(self) -> ReplicaClient:
        return open_replica_client(self.url, fs=self.fs, retry=FAST_RETRY)

    def observer_client(self) -> ReplicaClient:
        return open_replica_client(self.url, fs=self.clean_fs, retry=FAST_RETRY)

    def describe(self) -> str:
        return f"memory://{self.root}/db"

    def cleanup(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.clean_fs.rm(f"/{self.root}", recursive=True)
        self.fs.disarm()
        prefix = f"/{self.root}/"
        for k in [k for k in FaultyMemoryFileSystem._metadata if k.startswith(prefix)]:
            del FaultyMemoryFileSystem._metadata[k]


def s3_env() -> dict[str, str]:
    """Credentials for the test S3 server (moto accepts any)."""
    return {
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        "AWS_DEFAULT_REGION": S3_REGION,
        "AWS_REGION": S3_REGION,
    }


class S3Store(Store):
    """A fresh bucket on an S3 endpoint (the moto server in tests); credentials from :func:`s3_env`.

    The in-process client reads credentials from ``os.environ``: whoever creates an
    S3 store must have put :func:`s3_env` there (the test fixture and the
    conformance command do).
    """

    kind = "s3"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.bucket = f"conformance-{os.getpid()}-{secrets.token_hex(4)}"
        self._boto().create_bucket(Bucket=self.bucket)
        self.url = f"s3://{self.bucket}/db?endpoint={endpoint}&region={S3_REGION}&force-path-style=true"

    def _boto(self) -> Any:
        require("boto3", what="the S3 store")
        import boto3  # type: ignore[import-untyped]

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
            region_name=S3_REGION,
        )

    @property
    def env(self) -> dict[str, str]:
        return s3_env()

    def client(self) -> ReplicaClient:
        return open_replica_client(self.url, retry=FAST_RETRY)

    def cleanup(self) -> None:
        s3 = self._boto()
        with contextlib.suppress(Exception):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
            s3.delete_bucket(Bucket=self.bucket)


@attrs.frozen
class MotoServer:
    """A running moto S3 server on 127.0.0.1."""

    endpoint: str
    server: Any


@contextlib.contextmanager
def moto_server() -> Iterator[MotoServer]:
    """Start moto's threaded S3 server on a free port (needs ``moto[server]``); stop it after."""
    require("moto", "flask", what="the S3 server")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield MotoServer(f"http://{host}:{port}", server)
    finally:
        server.stop()
