"""Real write load from other processes, and the replicator as a real process."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO

WRITER = r"""
import sqlite3, sys, time
path, mode = sys.argv[1], sys.argv[5]
start, end, every, pause = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[6])
con = sqlite3.connect(path, timeout=30, isolation_level=None)
# The application's own checkpoints wait at most 0.2 s for readers (the replicator holds one).
ck = sqlite3.connect(path, timeout=0.2, isolation_level=None)
for i in range(start, end + 1):
    con.execute("INSERT INTO t(id, body) VALUES (?, randomblob(?))", (i, 600 + (i * 7919) % 1500))
    if every and i % every == 0:
        if mode != "none":
            ck.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        time.sleep(pause)
con.close()
"""


_CHILDREN: list[subprocess.Popen[bytes]] = []


def track(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """Remember a child so a failing test cannot leave it running (see :func:`kill_leftovers`)."""
    _CHILDREN.append(proc)
    return proc


def kill_leftovers() -> None:
    """Kill every tracked child still running; called after each integration test."""
    while _CHILDREN:
        proc = _CHILDREN.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def make_db(path: Path, page_size: int = 4096) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute(f"PRAGMA page_size = {page_size}")
    con.execute("PRAGMA journal_mode = wal")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)")
    con.close()


def start_writer(
    db: Path, start: int, end: int, *, every: int = 50, checkpoint: str = "none", pause: float = 0.01
) -> subprocess.Popen[bytes]:
    """Insert rows ``start..end``, one transaction each, from another process (default auto-checkpoint)."""
    return track(
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), str(start), str(end), str(every), checkpoint, str(pause)]
        )
    )


def ids(db: Path) -> list[int]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [r[0] for r in con.execute("SELECT id FROM t ORDER BY id")]
    finally:
        con.close()


def integrity(db: Path) -> str:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def assert_prefix(got: list[int], first: int = 1) -> None:
    """A state the database really had: rows ``first..k`` for some k, none missing."""
    assert got == list(range(first, first + len(got))), (
        f"not a prefix: {len(got)} rows, gaps near {_gap(got, first)}"
    )


def _gap(got: list[int], first: int) -> int | None:
    for n, v in enumerate(got, first):
        if v != n:
            return n
    return None


class Replicator:
    """``python -m replica replicate ...`` as a child process."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, log: Path | None = None) -> None:
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = track(
            subprocess.Popen(
                [sys.executable, "-m", "replica", "replicate", *args],
                cwd=REPO,
                env={**os.environ, **(env or {}), "PYTHONPATH": str(REPO)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        )

    def wait_started(self, timeout: float = 60) -> None:
        """Until the replicator runs (its signal handlers are installed) or has exited."""
        wait_for(
            lambda: self.proc.poll() is not None or _catches(self.proc.pid, signal.SIGTERM),
            timeout,
            "the replicator to install its signal handlers",
        )

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C, once the replicator handles it (a signal that arrives while the interpreter
        is still starting kills the process before our handler exists: not what is tested)."""
        self.wait_started(timeout)
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(30)


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (Linux: the SigCgt mask in /proc)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    except OSError:
        pass
    return False


def wait_for(pred: object, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
