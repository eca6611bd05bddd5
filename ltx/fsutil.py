"""Durable local file writes: write a temporary file, fsync, rename, fsync the folder."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_NO_RENAMEAT2 = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}
_NO_LINK = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}


def _load_renameat2() -> Callable[..., int] | None:
    try:
        fn: Any = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


_renameat2 = _load_renameat2()


def fsync_dir(path: str) -> None:
    """fsync the directory ``path`` so a rename inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_temp(folder: str, base: str, mode: int, created: list[str]) -> tuple[int, str]:
    """Create ``<base>.<random>.tmp`` in ``folder`` with ``O_EXCL``; returns its descriptor and path.

    The name is appended to ``created`` *before* the file is created (and taken back if
    another file has it), so a caller whose ``try`` encloses this call can remove what
    it made whenever an exception (a signal's, say) arrives: removing a name that was
    not created yet finds nothing. Raises ``OSError`` as ``os.open`` does.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f"{base}.{secrets.token_hex(4)}.tmp")
        created.append(tmp)
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            created.remove(tmp)  # another file has the name: never to be removed by us
        except OSError:
            created.remove(tmp)  # nothing was created
            raise
    raise FileExistsError(17, "could not create a unique temporary file", os.path.join(folder, base))


def rename_noreplace(src: str, dst: str) -> None:
    """Move ``src`` to ``dst`` atomically, failing with ``FileExistsError`` if ``dst`` exists.

    Uses ``renameat2(RENAME_NOREPLACE)``; where the system or file system does not offer
    it, ``link(src, dst)`` then ``unlink(src)``. Raises ``OSError`` (``EXDEV`` and the
    like) as the calls do, and ``OSError(EOPNOTSUPP)`` when neither way is available.
    """
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in _NO_RENAMEAT2:
            raise OSError(err, os.strerror(err), dst)
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno in _NO_LINK:
            raise OSError(
                errno.EOPNOTSUPP,
                "the file system supports neither renameat2(RENAME_NOREPLACE) nor hard links, "
                "so the file cannot be created without the risk of replacing another",
                dst,
            ) from None
        raise
    os.unlink(src)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], *, mtime: float | None = None, mode: int = 0o666, replace: bool = True
) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for writing; on success make it ``path``.

    On a clean exit the data is fsynced, the file renamed over ``path`` and the
    directory fsynced; ``mtime`` (seconds) is set before the rename. The file is
    created with ``mode`` less the process umask, as ``open()`` would. On an
    exception the temporary file is removed and ``path`` is untouched. With
    ``replace=False`` a file that exists at ``path`` when the rename comes (one that
    appeared while we wrote) is never replaced: ``FileExistsError``, temporary removed.
    """
    final = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(final))
    if not os.path.isdir(folder):
        raise FileNotFoundError(2, "directory does not exist", final)
    created: list[str] = []
    f: BinaryIO | None = None
    fd = -1
    try:
        fd, tmp = create_temp(folder, os.path.basename(final), mode, created)
        f = os.fdopen(fd, "wb")
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        if replace:
            os.replace(tmp, final)
        else:
            rename_noreplace(tmp, final)
    except BaseException:
        if fd >= 0 and f is None:
            os.close(fd)
        for name in created:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
        raise
    fsync_dir(folder)
