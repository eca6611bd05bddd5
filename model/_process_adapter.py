"""Replicators run as child processes speaking Litestream's command line.

:class:`ProcessAdapter` runs ``replicate DB URL`` (waiting for the log to say the
replicator is up), stops it with SIGINT (it must ship everything, then exit 0), crashes
it with SIGKILL and restores with ``restore [-txid X | -timestamp T] -o OUT URL``.
:class:`OursProcessAdapter` is ``python -m replica``; :class:`CommandAdapter` any command
template, made by :func:`command`. The ``litestream`` binary's adapter is in
:mod:`model._litestream_adapter`.
"""

from __future__ import annotations

import abc
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from model.adapters import (
    Adapter,
    AdapterFactory,
    Capabilities,
    CrashPoint,
    Environment,
    HarnessError,
    ReplicatorFailure,
    RestoreFailure,
    Target,
)
from model.retention import RetentionPolicy
from model.state import Compare
from replica.defaults import DEFAULT_L0_RETENTION, DEFAULT_SNAPSHOT_RETENTION

DEFAULT_RETENTION = RetentionPolicy(
    l0_retention=DEFAULT_L0_RETENTION, snapshot_retention=DEFAULT_SNAPSHOT_RETENTION
)
"""Litestream 0.5's defaults (``l0-retention`` 5 min, ``snapshot.retention`` 24 h), which
``replica.defaults`` holds for both implementations."""


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


def command(template: str, *, compare: Compare = Compare.LOGICAL) -> AdapterFactory:
    """A factory of :class:`CommandAdapter` for ``template``."""

    def make(env: Environment) -> Adapter:
        return CommandAdapter(env, template, compare=compare)

    return make
