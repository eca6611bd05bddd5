"""The restore's output file: checked first, built in a private temporary file, published
without ever replacing a file the restore did not create.

* :func:`check_output` looks at the output path before anything is fetched: a directory
  is refused; a non-empty file or a SQLite sidecar (``-wal``, ``-shm``, ``-journal``)
  is refused unless ``force``. It returns what it saw, so the final step can tell an
  empty file that was already there (which may be replaced, as Litestream allows) from
  one that appeared later.
* :class:`TempOutput` creates ``<output>.<random>.tmp`` beside the output with
  ``O_EXCL``: the name belongs to this restore alone, so two restores of the same
  output never share a file. :meth:`TempOutput.publish` sizes, fsyncs and puts it in
  place, then fsyncs the folder; :meth:`TempOutput.discard` removes it.
* Publishing without ``force`` is race-free: the file is moved with
  ``renameat2(RENAME_NOREPLACE)``, which fails if anything exists at the output, and
  where the file system lacks that call, with ``link`` then ``unlink`` (``link`` fails
  the same way). Only the empty file seen by :func:`check_output`, still the same file
  and still empty, is then replaced. With ``force`` the output is replaced and the
  sidecars are removed.

Every ``OSError`` on the output side is raised as
:class:`~replica.restore.errors.RestoreOutputError` naming the output path, the file
and the operation.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

import attrs

from ltx.fsutil import create_temp, fsync_dir, rename_noreplace
from replica.restore.errors import OutputExistsError, RestoreOutputError

SIDECAR_SUFFIXES = ("-wal", "-shm", "-journal")
"""The files SQLite keeps beside a database; a restore never leaves a stale one next to its output."""


def output_error(output: str, what: str, e: OSError) -> RestoreOutputError:
    """A located error for an OS call on the output side: ``<output>: <what>: <reason>``."""
    return RestoreOutputError(f"{what}: {e.strerror or e}", path=output, errno=e.errno)


@attrs.frozen
class OutputState:
    """What :func:`check_output` saw: the identity of an existing empty output, if any."""

    empty_file: tuple[int, int] | None = None


def check_output(output: str, force: bool) -> OutputState:
    """Refuse an output that must not be replaced (see the module docstring)."""
    try:
        if os.path.isdir(output):
            raise OutputExistsError(f"cannot restore, output path is a directory: {output}", path=output)
        try:
            st = os.stat(output)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if st is not None and st.st_size > 0 and not force:
            raise OutputExistsError(
                f"cannot restore, output path already exists and is not empty: {output}. "
                "Use -force to overwrite",
                path=output,
            )
        if not force:
            _refuse_sidecars(output)
        empty = None
        if st is not None and st.st_size == 0:
            lst = os.lstat(output)
            empty = (lst.st_dev, lst.st_ino)
    except OSError as e:
        raise output_error(output, f"cannot inspect {e.filename or output}", e) from None
    return OutputState(empty)


def _refuse_sidecars(output: str) -> None:
    for suffix in SIDECAR_SUFFIXES:
        side = output + suffix
        if os.path.lexists(side):
            raise OutputExistsError(
                f"cannot restore, SQLite sidecar path already exists: {side}. Use -force to overwrite",
                path=side,
            )


def make_parent(output: str) -> None:
    """Create the output's folder (mode 0700) if it is missing."""
    parent = os.path.dirname(output)
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)
    except OSError as e:
        if isinstance(e, FileExistsError) or (os.path.lexists(parent) and not os.path.isdir(parent)):
            e = NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), parent)
        raise output_error(output, f"cannot create the folder {e.filename or parent}", e) from None


class TempOutput:
    """``<output>.<random>.tmp``, created by this restore alone (see the module docstring)."""

    def __init__(self, output: str, created: list[str]) -> None:
        """Create the file; its name is appended to ``created`` before any signal can be
        handled, so a caller whose ``try`` encloses this call can always remove it."""
        self.output = output
        self.folder = os.path.dirname(output)
        try:
            self.fd, path = create_temp(self.folder, os.path.basename(output), 0o666, created)
        except FileExistsError:
            raise RestoreOutputError(
                f"cannot create a temporary file in {self.folder}", path=output
            ) from None
        except OSError as e:
            raise output_error(output, f"cannot create a temporary file in {self.folder}", e) from None
        self.path = path
        self._open = True

    def error(self, what: str, e: OSError) -> RestoreOutputError:
        """A located error for an OS call on the temporary file (``what``: the operation)."""
        return output_error(self.output, f"{what} {self.path}", e)

    def publish(self, size: int, *, force: bool, seen: OutputState) -> None:
        """Size the file to ``size`` bytes, fsync it and put it at the output path.

        Without ``force``: :class:`OutputExistsError` if a sidecar or anything at the output
        path appeared since :func:`check_output` (other than the empty file it saw, still
        empty); what is there is left untouched and this file is discarded by the caller.
        """
        try:
            os.ftruncate(self.fd, size)
            os.fsync(self.fd)
        except OSError as e:
            raise self.error("cannot write", e) from None
        try:
            if force:
                for suffix in SIDECAR_SUFFIXES:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.output + suffix)
                os.replace(self.path, self.output)
            else:
                self._publish_new(seen)
            fsync_dir(self.folder)
        except OSError as e:
            what = f"cannot put {self.path} in place"
            if e.errno == errno.EOPNOTSUPP and not force:
                what += " (-force replaces instead)"
            raise output_error(self.output, what, e) from None
        os.close(self.fd)
        self._open = False

    def _publish_new(self, seen: OutputState) -> None:
        _refuse_sidecars(self.output)
        try:
            rename_noreplace(self.path, self.output)
            return
        except FileExistsError:
            pass
        if seen.empty_file is not None and _still_empty(self.output, seen.empty_file):
            os.replace(self.path, self.output)  # the empty file that was there at the start
            return
        raise OutputExistsError(
            f"cannot restore, {self.output} appeared while the restore ran and was left untouched. "
            "Use -force to overwrite",
            path=self.output,
        )

    def discard(self) -> None:
        """Remove the temporary file (nothing else); safe to call more than once."""
        if not self._open:
            return
        self._open = False
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self.fd)


def _still_empty(path: str, identity: tuple[int, int]) -> bool:
    try:
        lst = os.lstat(path)
        size = lst.st_size if stat.S_ISREG(lst.st_mode) else os.stat(path).st_size
    except OSError:
        return False
    return (lst.st_dev, lst.st_ino) == identity and size == 0
