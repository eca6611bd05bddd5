"""``describe_os_error``: an OS error as the one line a user reads."""

from __future__ import annotations

import errno
import os
import resource

from ltx.errors import describe_os_error


def test_a_path_and_its_reason() -> None:
    e = OSError(errno.ENOENT, os.strerror(errno.ENOENT), "/nowhere/app.db")
    assert describe_os_error(e) == f"/nowhere/app.db: {os.strerror(errno.ENOENT)}"


def test_running_out_of_descriptors_names_the_limit_to_raise() -> None:
    """The 10,000-database run of bench/scale.py ended with a bare "Too many open files":
    the line now says what the limit is and how to raise it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    line = describe_os_error(OSError(errno.EMFILE, os.strerror(errno.EMFILE)))
    assert line.startswith(os.strerror(errno.EMFILE))
    assert f"the open-file limit is {soft}, at most {hard}" in line and "ulimit" in line
