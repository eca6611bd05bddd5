"""The restore's output side with real processes (issue 8, items 3, 6 and 7).

* A file that appears at the output (or beside it) while a restore runs is never
  replaced without ``-force``; two restores of one output never share a file.
* A flipped bit in the last file's Commit field cannot make ``restore`` allocate
  gigabytes: under a 1 GiB address-space limit it ends with the checksum error.
* Every OS failure at the output (a full disk, a parent that is a file, a read-only
  folder, ``/proc``) ends ``restore`` and ``ltx apply`` with exit status 1 and one line
  on stderr naming the path: never a traceback, never a silently short file.

The replica is written by ``python -m replica replicate -once`` from a database that a
writer process filled; the "application" that creates a database during a restore is
another process too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ltx.names import format_filename
from replica.restore import OutputExistsError, restore
from replica.restore.errors import RestoreOutputError
from replica.storage import open_replica_client
from tests.conftest import REPO
from tests.support.workload import make_db, start_writer

MiB = 1 << 20
COMMIT_OFFSET = 12
"""Where an LTX header's Commit field (u32, big-endian) starts."""

APP = r"""
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("CREATE TABLE app(v TEXT)")
con.execute("INSERT INTO app VALUES ('the application''s data')")
con.close()
"""


# --- fixtures and helpers --------------------------------------------------------------


def run(
    module: str, *args: str, env: dict[str, str] | None = None, limits: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        preexec_fn=limits,
        check=False,
    )


@pytest.fixture(scope="module")
def built_replica(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A replica of a ~2 MB database in two L0 files (TXIDs 1 and 2), written by our replicator."""
    root = tmp_path_factory.mktemp("source")
    db = root / "app.db"
    make_db(db)
    rep = root / "replica"
    for first, last in ((1, 1500), (1501, 1600)):
        assert start_writer(db, first, last, every=0).wait(60) == 0
        r = run("replica", "replicate", "-once", str(db), f"file://{rep}")
        assert r.returncode == 0, r.stderr + r.stdout
    assert sorted(p.name for p in (rep / "ltx" / "0").iterdir()) == [
        format_filename(1, 1),
        format_filename(2, 2),
    ]
    return rep


@pytest.fixture
def replica(built_replica: Path, tmp_path: Path) -> Path:
    rep = tmp_path / "replica"
    shutil.copytree(built_replica, rep)
    return rep


@pytest.fixture
def restored(built_replica: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes a successful restore of the replica produces."""
    out = tmp_path_factory.mktemp("reference") / "db"
    restore(open_replica_client(f"file://{built_replica}"), out)
    return out.read_bytes()


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.glob(out.name + "*")) if out.parent.is_dir() else []


def app_rows(db: Path) -> list[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [r[0] for r in con.execute("SELECT v FROM app")]
    finally:
        con.close()


def once(action: Callable[[], None]) -> Callable[[int, int], None]:
    """A restore progress callback running ``action`` the first time data has been applied,
    i.e. while the restore is in the middle of writing its temporary file."""
    fired = False

    def progress(done: int, _total: int) -> None:
        nonlocal fired
        if done > 0 and not fired:
            fired = True
            action()

    return progress


def assert_one_line_error(r: subprocess.CompletedProcess[str], *names: str) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[bool]:
    """A small tmpfs mounted at ``where`` (True), or False where mounting is refused."""
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    if r.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def file_size_limit(limit: int) -> Callable[[], None]:
    """For a child process: writes past ``limit`` bytes fail with EFBIG (a disk that is full)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


# --- item 3: nothing that appears at the output is replaced ------------------------------


def test_what_appears_at_the_output_during_a_restore_is_left_alone(
    replica: Path, tmp_path: Path, restored: bytes
) -> None:
    client = open_replica_client(f"file://{replica}")
    out = tmp_path / "out" / "app.db"

    def application() -> None:
        assert subprocess.run([sys.executable, "-c", APP, str(out)], timeout=60).returncode == 0

    # a SQLite sidecar created meanwhile
    side = Path(f"{out}-journal")
    with pytest.raises(OutputExistsError, match="sidecar path already exists"):
        restore(client, out, progress=once(lambda: side.write_bytes(b"hot journal")))
    assert side.read_bytes() == b"hot journal" and leftovers(out) == [side.name]
    side.unlink()

    # an application creates its database at the output path meanwhile
    with pytest.raises(OutputExistsError, match="appeared while the restore ran"):
        restore(client, out, progress=once(application))
    assert app_rows(out) == ["the application's data"]
    assert leftovers(out) == [out.name]

    # an empty file was there at the start (allowed), and the application filled it meanwhile
    out.unlink()
    out.touch()
    with pytest.raises(OutputExistsError, match="appeared while the restore ran"):
        restore(client, out, progress=once(lambda: out.write_bytes(b"application data")))
    assert out.read_bytes() == b"application data" and leftovers(out) == [out.name]

    # still empty at the end: replaced, as Litestream allows
    out.write_bytes(b"")
    restore(client, out)
    assert out.read_bytes() == restored

    # with -force what appeared is replaced
    out.unlink()
    restore(client, out, force=True, progress=once(application))
    assert out.read_bytes() == restored and leftovers(out) == [out.name]


def test_two_restores_of_one_output(replica: Path, tmp_path: Path, restored: bytes) -> None:
    """A second ``restore`` (the CLI, another process) runs while the first is writing: each
    has its own temporary file; the second finishes first and wins; the first must then
    fail rather than replace the finished database."""
    client = open_replica_client(f"file://{replica}")
    out = tmp_path / "app.db"
    second: list[subprocess.CompletedProcess[str]] = []

    def other_restore() -> None:
        second.append(run("replica", "restore", "-o", str(out), f"file://{replica}"))

    with pytest.raises(OutputExistsError, match="appeared while the restore ran"):
        restore(client, out, progress=once(other_restore))
    assert second[0].returncode == 0, second[0].stderr
    assert out.read_bytes() == restored
    assert leftovers(out) == [out.name]


# --- item 6: a damaged Commit field allocates nothing large -------------------------------


def test_flipped_commit_bit_under_a_memory_limit(replica: Path, tmp_path: Path) -> None:
    last = replica / "ltx" / "0" / format_filename(2, 2)
    data = bytearray(last.read_bytes())
    data[COMMIT_OFFSET] ^= 0x80  # + 2^31 pages: 2 GiB of one-byte-per-page bookkeeping
    last.write_bytes(bytes(data))
    out = tmp_path / "app.db"
    out.write_bytes(b"precious")

    def one_gib() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    r = run(
        "replica", "restore", "-force", "-o", str(out), f"file://{replica}",
        env={"MALLOC_ARENA_MAX": "2"}, limits=one_gib,
    )  # fmt: skip
    line = assert_one_line_error(r, str(last), "file checksum mismatch")
    assert "MemoryError" not in line
    assert out.read_bytes() == b"precious" and leftovers(out) == [out.name]


# --- item 7: OS errors at the output are one line naming the path ---------------------------


def test_restore_onto_a_full_disk(replica: Path, tmp_path: Path) -> None:
    small = tmp_path / "small"
    with tmpfs(small, "1m") as mounted:
        out = small / "app.db"
        limits = None if mounted else file_size_limit(MiB)
        r = run("replica", "restore", "-o", str(out), f"file://{replica}", limits=limits)
        line = assert_one_line_error(r, str(out))
        assert os.strerror(errno.ENOSPC if mounted else errno.EFBIG) in line
        assert leftovers(out) == []


def test_restore_under_a_parent_that_is_a_file(replica: Path, tmp_path: Path) -> None:
    parent = tmp_path / "not-a-folder"
    parent.write_bytes(b"a file")
    for out in (parent / "app.db", parent / "deeper" / "app.db"):
        r = run("replica", "restore", "-o", str(out), f"file://{replica}")
        line = assert_one_line_error(r, str(out))
        assert os.strerror(errno.ENOTDIR) in line
    assert parent.read_bytes() == b"a file"


def test_restore_into_a_read_only_folder(replica: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    with tmpfs(folder, "4m") as mounted:
        if mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
            reason = os.strerror(errno.EROFS)
        elif os.geteuid() != 0:
            folder.chmod(0o555)
            reason = os.strerror(errno.EACCES)
        else:
            pytest.skip("root ignores permission bits and mounting a read-only tmpfs is refused here")
        out = folder / "app.db"
        r = run("replica", "restore", "-o", str(out), f"file://{replica}")
        line = assert_one_line_error(r, str(out))
        assert reason in line
        assert leftovers(out) == []


def test_restore_into_proc(replica: Path) -> None:
    r = run("replica", "restore", "-o", "/proc/x.db", f"file://{replica}")
    assert_one_line_error(r, "/proc/x.db")


def test_ltx_apply_onto_a_full_disk(replica: Path, tmp_path: Path) -> None:
    """``ltx apply`` used to ignore a short write: exit 0 with a file of zeros past the full disk."""
    snapshot = replica / "ltx" / "0" / format_filename(1, 1)
    small = tmp_path / "small"
    with tmpfs(small, "1m") as mounted:
        out = small / "app.db"
        limits = None if mounted else file_size_limit(MiB)
        r = run("ltx", "apply", "-db", str(out), str(snapshot), limits=limits)
        assert "Traceback" not in r.stderr and r.returncode == 1, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and str(out) in lines[0], r.stderr
        assert os.strerror(errno.ENOSPC if mounted else errno.EFBIG) in lines[0]
        assert leftovers(out) == []


def test_restore_output_error_is_located(replica: Path, tmp_path: Path) -> None:
    """The library raises the typed error, naming the output (what the CLI line shows)."""
    parent = tmp_path / "file"
    parent.write_bytes(b"")
    with pytest.raises(RestoreOutputError) as info:
        restore(open_replica_client(f"file://{replica}"), parent / "app.db")
    assert info.value.path == str(parent / "app.db") and info.value.errno == errno.ENOTDIR


def test_ltx_dump_into_a_closed_pipe(replica: Path) -> None:
    """``ltx dump | head -1``: the reader leaving is not an error to report (it used to print
    ``ltx dump: : Broken pipe`` and exit 1, its handler shadowed by the OSError one)."""
    snapshot = replica / "ltx" / "0" / format_filename(1, 1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ltx", "dump", str(snapshot)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"# HEADER\n"
    proc.stdout.close()  # megabytes of hex dump are still to come
    err = proc.stderr.read()
    assert proc.wait(60) == 0 and err == b""


def test_sigterm_during_a_restore_leaves_nothing_behind(replica: Path, tmp_path: Path) -> None:
    """A restore stopped by SIGTERM (a container being stopped) unwinds like Ctrl-C: its
    temporary file is removed and the exit status says it was terminated."""
    for attempt in range(5):
        out = tmp_path / f"out{attempt}.db"
        proc = subprocess.Popen(
            [sys.executable, "-m", "replica", "restore", "-o", str(out), f"file://{replica}"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

        # run it in small steps, frozen in between, until its temporary file exists: the
        # signal then lands mid-restore however loaded the machine is
        def has_temp() -> bool:
            return any(n.endswith(".tmp") for n in os.listdir(tmp_path))

        proc.send_signal(signal.SIGSTOP)
        while proc.poll() is None and not has_temp():
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.002)
            proc.send_signal(signal.SIGSTOP)
        if not has_temp():
            proc.send_signal(signal.SIGCONT)
            proc.communicate(timeout=60)
            continue  # it finished first: try again
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGCONT)
        _out, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, err
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert leftovers(out) == []
        return
    pytest.fail("the restore always finished before it could be signalled")
