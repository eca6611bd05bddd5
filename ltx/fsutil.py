"""Durable local file writes: write a temporary file, fsync, rename, fsync the folder."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import BinaryIO


def fsync_dir(path: str) -> None:
    """fsync the directory ``path`` so a rename inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_temp(folder: str, base: str, mode: int) -> tuple[int, str]:
    for _ in range(100):
        tmp = os.path.join(folder, f"{base}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(17, "could not create a unique temporary file", os.path.join(folder, base))


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], *, mtime: float | None = None, mode: int = 0o666
) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for writing; on success make it ``path``.

    On a clean exit the data is fsynced, the file renamed over ``path`` and the
    directory fsynced; ``mtime`` (seconds) is set before the rename. The file is
    created with ``mode`` less the process umask, as ``open()`` would. On an
    exception the temporary file is removed and ``path`` is untouched.
    """
    final = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(final))
    if not os.path.isdir(folder):
        raise FileNotFoundError(2, "directory does not exist", final)
    fd, tmp = _create_temp(folder, os.path.basename(final), mode)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)
