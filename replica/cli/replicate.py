"""``litestream replicate``: replicate databases until a signal, or once with ``-once``.

Differences from Litestream, each for the user's benefit: ``replicate DB`` with no
replica URL replicates to the directory ``<DB>-replica``; after a signal the exit code
is 0 only if every L0 file written reached the replica (otherwise 1, naming the
databases whose files wait in the meta directory for the next start). The last sync
and upload of every database run at once, each bounded by its
``shutdown-sync-timeout``; a second SIGINT or SIGTERM ends the process at once (status
128 + the signal), leaving what was not uploaded for the next start.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import shlex
import signal
import subprocess
import threading
from typing import NoReturn

from replica import metrics
from replica.cli.binding import OpenClient, config_from_command_line, discoverer
from replica.cli.errors import CommandError, UsageError
from replica.cli.output import setup_logging
from replica.cli.source import load
from replica.cli.version import VERSION
from replica.config import Config
from replica.supervisor import Supervisor

log = logging.getLogger("replica")


def _from_command_line(args: argparse.Namespace) -> tuple[Config, OpenClient]:
    if args.config:
        raise UsageError("cannot specify a replica URL and the -config flag")
    for a in args.positional[2:]:
        if a.startswith("-"):
            raise UsageError(f'flag "{a}" must be positioned before DB_PATH and REPLICA_URL arguments')
    if len(args.positional) > 2:
        raise UsageError("multiple replicas on a single database are no longer supported")
    url = args.positional[1] if len(args.positional) == 2 else None
    return config_from_command_line(args.positional[0], url)


def run(args: argparse.Namespace) -> int:
    """Replicate the databases of ``-config`` or of ``DB_PATH [REPLICA_URL]``; the exit code."""
    setup_logging(args.log_level or os.environ.get("LOG_LEVEL", "INFO"))
    if args.positional:
        cfg, open_client = _from_command_line(args)
        discover = discoverer(cfg, open_client)
    else:
        cfg = load(args)
        discover = discoverer(cfg)
    setup_logging(args.log_level or cfg.logging.level, cfg.logging.type, cfg.logging.stderr)
    exec_cmd = args.exec or cfg.exec or None
    if not cfg.dbs:
        log.info("no databases specified in configuration")
    if args.once and exec_cmd:
        raise UsageError("cannot specify -once flag with -exec")
    if (args.force_snapshot or args.enforce_retention) and not args.once:
        flag = "-force-snapshot" if args.force_snapshot else "-enforce-retention"
        raise UsageError(f"cannot specify {flag} flag without -once")
    log.info("litestream version=%s", VERSION)
    raise_open_file_limit()
    if args.once:
        for _path, make in sorted(discover().items()):
            r = make()
            try:
                r.sync_once(force_snapshot=args.force_snapshot, enforce_retention=args.enforce_retention)
            except BaseException:
                r.stop()  # the first error is the one to report
                raise
            if not r.stop():
                raise CommandError(f"{r.db.path}: not every L0 file reached the replica (see the log above)")
        log.info("one-shot replication complete")
        return 0
    if cfg.addr:
        metrics.serve(cfg.addr)
        shown = "localhost" + cfg.addr if cfg.addr.startswith(":") else cfg.addr
        log.info("serving metrics on http://%s/metrics", shown)
    watch = any(d.watch for d in cfg.dbs)
    return run_until_signal(Supervisor(discover, watch=watch), exec_cmd)


def raise_open_file_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit; returns the limit.

    Each replicated database holds about eight descriptors (the file, its WAL and shared
    memory, through three connections), so the usual soft limit of 1024 would stop at about
    a hundred databases. Go programs, Litestream included, raise the limit the same way
    when they start.
    """
    try:
        import resource
    except ImportError:  # not on this platform
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft >= hard:
        return int(soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as e:
        log.debug("cannot raise the open-file limit from %d to %d: %s", soft, hard, e)
        return int(soft)
    return int(hard)


def _exit_now(signum: int) -> NoReturn:
    """A second signal during shutdown: leave at once, status 128+signal. Whatever was not
    uploaded stays in the meta directories, and the next start ships it."""
    log.warning("second signal received: exiting now; files not uploaded are shipped on the next start")
    for h in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            h.flush()
    os._exit(128 + signum)


def run_until_signal(sup: Supervisor, exec_cmd: str | None) -> int:
    """Run ``sup`` (and ``exec_cmd`` as a child) until SIGINT/SIGTERM or the child's exit.

    Raises :class:`~replica.cli.errors.CommandError` when the child failed or when some L0 files
    did not reach their replica before shutdown.
    """
    stop = threading.Event()
    signals: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        if signals:
            _exit_now(signum)
        signals.append(signum)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    child: subprocess.Popen[bytes] | None = None
    child_rc = 0
    try:
        sup.start()  # returns at once: the databases start on the runtime's workers
        if exec_cmd:
            child = subprocess.Popen(shlex.split(exec_cmd))

            def wait_child(proc: subprocess.Popen[bytes] = child) -> None:
                proc.wait()
                stop.set()

            threading.Thread(target=wait_child, daemon=True).start()
        while not stop.wait(0.5):
            if sup.failed.is_set():  # a database could not be started: stop, then report it
                break
        if child is not None:
            if child.poll() is None:
                child.send_signal(signals[0] if signals else signal.SIGTERM)
            child_rc = child.wait()
            log.info("subprocess exited, litestream shutting down")
        elif signals:
            log.info("signal received, litestream shutting down")
        if signals:
            log.info("a second signal exits at once (files not uploaded are shipped on the next start)")
        complete = sup.stop()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    log.info("litestream shut down")
    gc.freeze()  # the interpreter's last collection would walk every client's objects: seconds
    if sup.error is not None:
        raise sup.error
    if child is not None and child_rc != 0 and not (signals and child_rc < 0):
        raise CommandError(f"exit status {child_rc}")
    if not complete:
        raise CommandError(
            "not every L0 file reached the replica before shutdown for "
            + ", ".join(sup.incomplete)
            + " (see the log above); files not uploaded stay in the meta directory"
        )
    return 0
