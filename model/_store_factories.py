"""Store factories: where each run of a state machine replicates to.

A :data:`StoreFactory` makes a fresh :class:`~model.stores.Store` for one run, given
the run's private working directory; :func:`~model.testing.make_machine` binds one.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from model.stores import FileStore, MemoryStore, S3Store, Store

StoreFactory = Callable[[str], Store]


def file_store(workdir: str) -> Store:
    """A ``file://`` replica in the run's working directory."""
    return FileStore(os.path.join(workdir, "replica"))


def memory_store(_workdir: str) -> Store:
    """fsspec's memory store under a root of the run's own (faults can be injected)."""
    return MemoryStore()


def s3_store(endpoint: str) -> StoreFactory:
    """A fresh bucket per run on the S3 ``endpoint`` (credentials: :func:`model.stores.s3_env`)."""

    def make(_workdir: str) -> Store:
        return S3Store(endpoint)

    return make
