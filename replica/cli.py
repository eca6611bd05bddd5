"""``python -m replica``: the ``litestream`` command line, subcommand for subcommand.

Spellings follow Litestream 0.5 (Go ``flag``: ``-o`` and ``--o`` both work, flags go
before positional arguments). Errors print one line, ``Error: <message>``, to stderr and
exit 1: the project's own errors name their file, level and TXID; an ``OSError`` or a
``sqlite3.Error`` that reaches the top is printed as ``Error: <path>: <reason>``, never
as a traceback.

Deliberate differences, each for the user's benefit:

* ``replicate DB`` with no replica URL replicates to the directory ``<DB>-replica``
  beside the database instead of failing.
* ``replicate`` exits 0 after a signal only if every L0 file it wrote reached the
  replica; otherwise 1, naming how many files wait in the meta directory (they are
  uploaded on the next start).
* ``restore`` shows progress on a terminal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ltx import __version__
from ltx.errors import LTXError
from ltx.names import is_filename, parse_filename
from replica import metrics
from replica.daemon import Replication, ReplicationOptions
from replica.monitor import DBOptions, default_meta_path
from replica.storage import SNAPSHOT_LEVEL, ReplicaClient, build_s3_filesystem, open_replica_client
from replica.supervisor import Supervisor

log = logging.getLogger("replica")

VERSION = f"v{__version__}-py"


class UsageError(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _flag(p: argparse.ArgumentParser, name: str, **kw: Any) -> None:
    p.add_argument(f"-{name}", f"--{name}", dest=name.replace("-", "_"), **kw)


def is_url(s: str) -> bool:
    import re

    return re.match(r"^\w+://", s) is not None


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")
        return json.dumps(
            {"time": when.replace("+00:00", "Z"), "level": record.levelname, "msg": record.getMessage()}
        )


def _setup_logging(level: str = "INFO", kind: str = "text", stderr: bool = False) -> None:
    """Logging as Litestream does it: text (or JSON) on stdout (or stderr), INFO by default."""
    levels = {"TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "WARN": logging.WARNING}
    levels.update({"WARNING": logging.WARNING, "ERROR": logging.ERROR})
    lvl = levels.get(level.upper(), logging.INFO)
    handler = logging.StreamHandler(sys.stderr if stderr else sys.stdout)
    if kind == "json":
        handler.setFormatter(_JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("time=%(asctime)s level=%(levelname)s msg=%(message)s"))
    logging.basicConfig(level=lvl, handlers=[handler], force=True)


# -- replicate ----------------------------------------------------------------------------


def _db_options_from(dbc: Any) -> DBOptions:
    def secs(v: Any, default: float) -> float:
        return default if v is None else (v.total_seconds() if isinstance(v, dt.timedelta) else float(v))

    return DBOptions(
        meta_path=getattr(dbc, "meta_path", None),
        monitor_interval=secs(getattr(dbc, "monitor_interval", None), 1.0),
        checkpoint_interval=secs(getattr(dbc, "checkpoint_interval", None), 60.0),
        busy_timeout=secs(getattr(dbc, "busy_timeout", None), 1.0),
        min_checkpoint_page_count=int(getattr(dbc, "min_checkpoint_page_count", None) or 1000),
        truncate_page_n=int(getattr(dbc, "truncate_page_n", None) or 121359),
    )


def client_for(rc: Any) -> ReplicaClient:
    """A replica client for a configured replica, with credentials from the config when given."""
    url = rc.to_replica_url()
    if url.scheme == "s3" and rc.access_key_id and url.s3 is not None:
        fs = build_s3_filesystem(
            url.s3, connect_timeout=10.0, read_timeout=60.0, key=rc.access_key_id, secret=rc.secret_access_key
        )
        return open_replica_client(url, fs=fs)
    return open_replica_client(url)


def _configured_dbs(cfg: Any) -> list[Any]:
    from replica import config as cfgmod

    dbs = cfgmod.expand_dir_entries(cfg)
    for d in dbs:
        if d.replica is None:
            raise LTXError(f"must specify replica for database: {d.path}")
    return dbs


def _options(cfg: Any, dbc: Any) -> ReplicationOptions:
    rc = dbc.replica
    return ReplicationOptions(
        db=_db_options_from(dbc),
        sync_interval=rc.sync_interval.total_seconds(),
        max_batch=rc.max_sync_ltx_files,
        shutdown_timeout=cfg.shutdown_sync_timeout.total_seconds(),
        shutdown_interval=cfg.shutdown_sync_interval.total_seconds(),
        levels=tuple(lv.interval for lv in cfg.levels),
        snapshot_interval=cfg.snapshot_interval,
        snapshot_retention=cfg.snapshot_retention,
        l0_retention=cfg.l0_retention,
        l0_retention_check_interval=cfg.l0_retention_check_interval,
        retention_enabled=cfg.retention_enabled,
    )


def cmd_replicate(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level or os.environ.get("LOG_LEVEL", "INFO"))
    exec_cmd = args.exec
    addr = ""
    watch = False
    discover: Callable[[], dict[str, Callable[[], Replication]]]
    if args.positional:
        if args.config:
            raise UsageError("cannot specify a replica URL and the -config flag")
        for a in args.positional[2:]:
            if a.startswith("-"):
                raise UsageError(f'flag "{a}" must be positioned before DB_PATH and REPLICA_URL arguments')
        if len(args.positional) > 2:
            raise UsageError("multiple replicas on a single database are no longer supported")
        db = os.path.abspath(args.positional[0])
        url = args.positional[1] if len(args.positional) == 2 else f"file://{db}-replica"
        client = open_replica_client(url)

        def discover() -> dict[str, Callable[[], Replication]]:
            return {db: lambda: Replication(db, client, ReplicationOptions())}

    else:
        from replica import config as cfgmod

        cfg = cfgmod.load_config(args.config, expand_env=not args.no_expand_env)
        _setup_logging(args.log_level or cfg.logging.level, cfg.logging.type, cfg.logging.stderr)
        exec_cmd = exec_cmd or cfg.exec or None
        addr = cfg.addr
        watch = any(d.watch for d in cfg.dbs)

        def build(dbc: Any) -> Callable[[], Replication]:
            return lambda: Replication(dbc.path, client_for(dbc.replica), _options(cfg, dbc))

        def discover() -> dict[str, Callable[[], Replication]]:
            return {d.path: build(d) for d in _configured_dbs(cfg)}

        if not cfg.dbs:
            log.info("no databases specified in configuration")
    if args.once and exec_cmd:
        raise UsageError("cannot specify -once flag with -exec")
    if (args.force_snapshot or args.enforce_retention) and not args.once:
        flag = "-force-snapshot" if args.force_snapshot else "-enforce-retention"
        raise UsageError(f"cannot specify {flag} flag without -once")
    log.info("litestream version=%s", VERSION)
    if args.once:
        for _path, make in sorted(discover().items()):
            r = make()
            try:
                r.sync_once(force_snapshot=args.force_snapshot, enforce_retention=args.enforce_retention)
            except BaseException:
                r.stop()  # the first error is the one to report
                raise
            if not r.stop():
                raise LTXError(f"{r.db.path}: not every L0 file reached the replica (see the log above)")
        log.info("one-shot replication complete")
        return 0
    if addr:
        metrics.serve(addr)
        shown = "localhost" + addr if addr.startswith(":") else addr
        log.info("serving metrics on http://%s/metrics", shown)
    return _run_until_signal(Supervisor(discover, watch=watch), exec_cmd)


def _run_until_signal(sup: Supervisor, exec_cmd: str | None) -> int:
    stop = threading.Event()
    signals: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        if signals:
            return
        signals.append(signum)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    child: subprocess.Popen[bytes] | None = None
    child_rc = 0
    try:
        sup.start()  # each database opens in its own thread, retrying while its replica is unreachable
        if exec_cmd:
            child = subprocess.Popen(shlex.split(exec_cmd))

            def wait_child(proc: subprocess.Popen[bytes] = child) -> None:
                proc.wait()
                stop.set()

            threading.Thread(target=wait_child, daemon=True).start()
        while not stop.wait(0.5):
            pass
        if child is not None:
            if child.poll() is None:
                child.send_signal(signals[0] if signals else signal.SIGTERM)
            child_rc = child.wait()
            log.info("subprocess exited, litestream shutting down")
        else:
            log.info("signal received, litestream shutting down")
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    complete = sup.stop()
    log.info("litestream shut down")
    if child is not None and child_rc != 0 and not (signals and child_rc < 0):
        raise LTXError(f"exit status {child_rc}")
    if not complete:
        raise LTXError(
            "not every L0 file reached the replica before shutdown for "
            + ", ".join(sup.incomplete)
            + " (see the log above); files not uploaded stay in the meta directory"
        )
    return 0


# -- restore ------------------------------------------------------------------------------


def _parse_timestamp(s: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            "invalid -timestamp, must specify in ISO 8601 format (e.g. 2000-01-01T00:00:00Z)"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _parse_txid(s: str) -> int:
    if len(s) != 16:
        raise UsageError(f'invalid value "{s}" for flag -txid: invalid txid format')
    try:
        return int(s, 16)
    except ValueError:
        raise UsageError(f'invalid value "{s}" for flag -txid: invalid txid format') from None


def _resolve_source(args: argparse.Namespace) -> tuple[ReplicaClient, str | None]:
    """(replica client, database path from the config or None) for restore, ltx and verify."""
    target = args.target
    if is_url(target):
        if args.config:
            raise UsageError("cannot specify a replica URL and the -config flag")
        return open_replica_client(target), None
    from replica import config as cfgmod

    cfg = cfgmod.load_config(args.config, expand_env=not args.no_expand_env)
    path = cfgmod.expand_path(target)
    for dbc in _configured_dbs(cfg):
        if dbc.path == path:
            return client_for(dbc.replica), path
    raise LTXError(f"database not found in config: {path}")


def _progress_printer() -> Any:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        pct = 100.0 * done / total if total else 100.0
        sys.stderr.write(f"\rrestoring: {done >> 20} / {total >> 20} MiB ({pct:5.1f}%)")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def cmd_restore(args: argparse.Namespace) -> int:
    _setup_logging(stderr=args.json)  # with -json, stdout holds only the summary
    if not args.target:
        raise UsageError(
            "database path or replica URL required", "litestream restore -o /path/to/db s3://bucket/prefix"
        )
    txid = _parse_txid(args.txid) if args.txid else None
    ts = _parse_timestamp(args.timestamp) if args.timestamp else None
    if args.integrity_check not in ("none", "quick", "full"):
        raise UsageError(f"invalid -integrity-check value: {args.integrity_check}")
    if txid is not None and ts is not None:
        raise UsageError("cannot specify index & timestamp to restore")
    client, db_path = _resolve_source(args)
    output = args.o or db_path
    if output is None:
        raise UsageError(
            "-o is required when restoring from a replica URL",
            f"litestream restore -o /path/to/db {args.target}",
        )
    from replica import restore as restore_mod

    if args.dry_run:
        plan = restore_mod.calc_restore_plan(client, txid=txid, timestamp=ts, parallelism=args.parallelism)
        _print_plan(args, client, output, plan)
        return 0
    if args.if_db_not_exists and os.path.exists(output):
        log.info("database already exists, skipping")
        return 0

    started = dt.datetime.now(dt.UTC)
    try:
        result = restore_mod.restore(
            client,
            output,
            txid=txid,
            timestamp=ts,
            integrity_check=args.integrity_check,
            force=args.force,
            parallelism=args.parallelism,
            progress=_progress_printer(),
        )
    except restore_mod.TxNotAvailableError:
        if args.if_replica_exists:
            log.info("no matching backups found")
            return 0
        raise
    if args.json:
        took = (dt.datetime.now(dt.UTC) - started).total_seconds()
        summary = {"db_path": output, "replica": client.type, "txid": f"{result.txid:016x}"}
        summary.update({"duration_ms": int(took * 1000), "integrity_check": args.integrity_check})
        print(json.dumps(summary, indent=2))
    return 0


def _print_plan(args: argparse.Namespace, client: ReplicaClient, output: str, plan: Any) -> None:
    files = [
        {"level": f.level, "name": f.name, "min_txid": f"{f.min_txid:016x}", "max_txid": f"{f.max_txid:016x}",
         "size": f.size, "timestamp": _iso(f.created_at)}
        for f in plan.files
    ]  # fmt: skip
    lo, hi = f"{plan.files[0].min_txid:016x}", f"{plan.txid:016x}"
    if args.json:
        print(json.dumps({"source": args.target, "target_path": output, "replica": client.type,
                          "min_txid": lo, "max_txid": hi, "files": files}, indent=2))  # fmt: skip
        return
    print("Restore plan:")
    print(f"  source: {args.target}\n  target: {output}\n  replica: {client.type}")
    print(f"  txid range: {lo} - {hi}\n")
    print("Files to fetch:")
    table = [["level", "file", "min_txid", "max_txid", "size", "timestamp"]]
    table += [[str(f["level"]), str(f["name"]), str(f["min_txid"]), str(f["max_txid"]), str(f["size"]),
               str(f["timestamp"])] for f in files]  # fmt: skip
    _print_table(table)


# -- ltx, databases, version --------------------------------------------------------------


def cmd_ltx(args: argparse.Namespace) -> int:
    if not args.target:
        raise UsageError("database path or replica URL required", "litestream ltx /path/to/db")
    if args.level == "all":
        levels = list(range(SNAPSHOT_LEVEL + 1))
    else:
        try:
            lv = int(args.level)
        except ValueError:
            raise UsageError('invalid level: must be 0-9 or "all"') from None
        if not 0 <= lv <= SNAPSHOT_LEVEL:
            raise UsageError("level must be between 0 and 9")
        levels = [lv]
    client, _ = _resolve_source(args)
    rows = [f for lv in levels for f in client.list_files(lv)]
    if args.json:
        items = [
            {"level": f.level, "min_txid": f"{f.min_txid:016x}", "max_txid": f"{f.max_txid:016x}",
             "size": f.size, "timestamp": _iso(f.created_at)}
            for f in rows
        ]  # fmt: skip
        print(json.dumps(items, indent=2))
        return 0
    table = [["level", "min_txid", "max_txid", "size", "created"]]
    table += [
        [str(f.level), f"{f.min_txid:016x}", f"{f.max_txid:016x}", str(f.size), _iso(f.created_at)]
        for f in rows
    ]
    _print_table(table)
    return 0


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def cmd_databases(args: argparse.Namespace) -> int:
    if args.extra:
        raise UsageError("too many arguments")
    from replica import config as cfgmod

    cfg = cfgmod.load_config(args.config, expand_env=not args.no_expand_env)
    rows = [(d.path, d.replica.replica_type if d.replica else "") for d in cfgmod.expand_dir_entries(cfg)]
    if args.json:
        print(json.dumps([{"path": p, "replica": t} for p, t in rows], indent=2))
        return 0
    _print_table([["path", "replica"], *[[p, t] for p, t in rows]])
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    if not args.target:
        raise UsageError("replica URL required", "litestream verify s3://bucket/prefix")
    from replica import verify as verify_mod

    _setup_logging("ERROR", stderr=True)  # the report is the output; retries are not news here
    return int(verify_mod.run(args.target, deep=args.deep, as_json=args.json, out=sys.stdout))


def _si_bytes(n: int) -> str:
    """go-humanize's SI byte format: ``0 B``, ``999 B``, ``32 kB``, ``1.2 MB``."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB", "EB"):
        value /= 1000
        if value < 1000:
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{value:.0f} EB"


def _local_state(path: str, meta_path: str) -> tuple[str, str, str]:
    """(status, local txid, wal size) as ``status`` reports them, from local files only."""
    if not os.path.exists(path):
        return "no database", "-", "-"
    try:
        wal = _si_bytes(os.path.getsize(path + "-wal"))
    except FileNotFoundError:
        wal = "0 B"
    except OSError:
        wal = "-"
    try:
        names = [n for n in os.listdir(os.path.join(meta_path, "ltx", "0")) if is_filename(n)]
    except FileNotFoundError:
        names = []
    except OSError:
        return "error", "-", wal
    if not names:
        return "not initialized", "-", wal
    return "ok", f"{max(parse_filename(n)[1] for n in names):016x}", wal


def cmd_status(args: argparse.Namespace) -> int:
    from replica import config as cfgmod

    cfg = cfgmod.load_config(args.config, expand_env=not args.no_expand_env)
    rows = []
    for d in cfgmod.expand_dir_entries(cfg):
        if args.path and d.path != os.path.abspath(args.path):
            continue
        status, txid, wal = _local_state(d.path, d.meta_path or default_meta_path(d.path))
        rows.append({"database": d.path, "status": status, "local_txid": txid, "wal_size": wal})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    _print_table([["database", "status", "local txid", "wal size"],
                  *[[r["database"], r["status"], r["local_txid"], r["wal_size"]] for r in rows]])  # fmt: skip
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    if not args.path:
        raise UsageError("database path required", "litestream reset /path/to/db")
    path = os.path.abspath(args.path)
    meta = default_meta_path(path)
    if args.config:
        from replica import config as cfgmod

        cfg = cfgmod.load_config(args.config, expand_env=not args.no_expand_env)
        for d in cfgmod.expand_dir_entries(cfg):
            if d.path == path and d.meta_path:
                meta = d.meta_path
    if not os.path.exists(path):
        raise LTXError(f"database does not exist: {path}")
    if not os.path.isdir(meta):
        print(f"No local state to reset for {path}")
        print(f"Meta directory does not exist: {meta}")
        return 0
    ltx_dir = os.path.join(meta, "ltx")
    if args.dry_run:
        print(f"Dry run: local Litestream state would be reset for: {path}")
        print(f"Would remove: {ltx_dir}")
        files = sorted(os.path.join(r, n) for r, _d, ns in os.walk(ltx_dir) for n in ns)
        for f in files:
            print(f"  {f}")
        if not files:
            print("No local LTX files would be removed.")
        print("No files were removed.")
        return 0
    print(f"Resetting local Litestream state for: {path}")
    print(f"Removing: {ltx_dir}")
    shutil.rmtree(ltx_dir, ignore_errors=True)
    print("Reset complete. Next replication sync will create a fresh snapshot.")
    return 0


def cmd_version(_args: argparse.Namespace) -> int:
    print(VERSION)
    return 0


# -- entry point --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="litestream", add_help=True)
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    def config_flags(s: argparse.ArgumentParser) -> None:
        _flag(s, "config", default=None, help="configuration file")
        _flag(s, "no-expand-env", action="store_true", help="do not expand $VARIABLES in the configuration")

    s = sub.add_parser("replicate", help="replicate databases continuously")
    config_flags(s)
    _flag(s, "exec", default=None, help="run this command as a child and stop when it exits")
    _flag(s, "once", action="store_true", help="sync every database once, then exit")
    _flag(s, "force-snapshot", action="store_true", help="with -once: also write a level-9 snapshot")
    _flag(s, "enforce-retention", action="store_true", help="with -once: also apply retention")
    _flag(s, "log-level", default=None, help="trace, debug, info, warn or error")
    s.add_argument("positional", nargs="*", metavar="DB_PATH [REPLICA_URL]")
    s.set_defaults(run=cmd_replicate)

    s = sub.add_parser("restore", help="restore a database from its replica")
    config_flags(s)
    _flag(s, "o", default=None, help="output path")
    _flag(s, "txid", default=None, help="restore up to and including this TXID (16 hex digits)")
    _flag(s, "timestamp", default=None, help="restore the state as of this RFC 3339 time")
    _flag(s, "parallelism", type=int, default=8, help="files fetched at once")
    _flag(s, "if-db-not-exists", action="store_true", help="do nothing if the output exists")
    _flag(s, "if-replica-exists", action="store_true", help="exit 0 if there is no backup")
    _flag(s, "integrity-check", default="none", help="none, quick or full")
    _flag(s, "force", action="store_true", help="overwrite an existing output")
    _flag(s, "json", action="store_true", help="print a JSON summary")
    _flag(s, "dry-run", action="store_true", help="print the plan; write nothing")
    s.add_argument("target", nargs="?", metavar="DB_PATH|REPLICA_URL")
    s.set_defaults(run=cmd_restore)

    s = sub.add_parser("ltx", help="list a replica's LTX files", aliases=["wal"])
    config_flags(s)
    _flag(s, "level", default="0", help='level 0-9 or "all"')
    _flag(s, "json", action="store_true", help="print JSON")
    s.add_argument("target", nargs="?", metavar="DB_PATH|REPLICA_URL")
    s.set_defaults(run=cmd_ltx)

    s = sub.add_parser("databases", help="list the databases in the configuration")
    config_flags(s)
    _flag(s, "json", action="store_true", help="print JSON")
    s.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    s.set_defaults(run=cmd_databases)

    s = sub.add_parser("verify", help="check that a replica is complete and restorable")
    config_flags(s)
    _flag(s, "deep", action="store_true", help="also restore at every file boundary")
    _flag(s, "json", action="store_true", help="print the report as JSON")
    s.add_argument("target", nargs="?", metavar="DB_PATH|REPLICA_URL")
    s.set_defaults(run=cmd_verify)

    s = sub.add_parser("status", help="show local replication state of the configured databases")
    config_flags(s)
    _flag(s, "json", action="store_true", help="print JSON")
    s.add_argument("path", nargs="?", metavar="DB_PATH")
    s.set_defaults(run=cmd_status)

    s = sub.add_parser("reset", help="remove a database's local replication state")
    config_flags(s)
    _flag(s, "dry-run", action="store_true", help="show what would be removed")
    s.add_argument("path", nargs="?", metavar="DB_PATH")
    s.set_defaults(run=cmd_reset)

    s = sub.add_parser("version", help="print the version")
    s.set_defaults(run=cmd_version)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM: unwinds a command like Ctrl-C, so what it was writing is cleaned up."""


def _terminate(_signum: int, _frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; SIGTERM unwinds it like Ctrl-C (`replicate` has its own handler)."""
    if threading.current_thread() is not threading.main_thread():
        return _main(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:
        parser.print_help(sys.stdout)
        return 1
    if argv[0] == "help":
        parser.print_help(sys.stdout)
        return 0
    if argv[0] == "wal":
        print("Warning: 'wal' command is deprecated, please use 'ltx' instead", file=sys.stderr)
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stdout)
            return 1
        return int(args.run(args))
    except UsageError as e:
        if str(e).startswith("argument command: invalid choice"):
            print(f"litestream {argv[0]}: unknown command", file=sys.stderr)
            return 1
        print(f"Error: {e}", file=sys.stderr)
        if e.hint:
            print(f"Try: {e.hint}", file=sys.stderr)
        return 1
    except LTXError as e:
        print(f"Error: {one_line(str(e))}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"Error: {one_line(describe_os_error(e))}", file=sys.stderr)
        return 1
    except sqlite3.Error as e:
        print(f"Error: {one_line(describe_sqlite_error(e))}", file=sys.stderr)
        return 1
    except Terminated:
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        return 130


def one_line(message: str) -> str:
    """``message`` with its line breaks folded into spaces: an error is one line on stderr."""
    return " ".join(message.split()) if "\n" in message or "\r" in message else message


def describe_os_error(e: OSError) -> str:
    """``<path>: <reason>`` (``<path> -> <path2>`` for a rename), or the reason alone."""
    reason = e.strerror or str(e) or type(e).__name__
    if e.filename is None:
        return reason
    where = os.fsdecode(e.filename)
    if e.filename2 is not None:
        where += f" -> {os.fsdecode(e.filename2)}"
    return f"{where}: {reason}"


def describe_sqlite_error(e: sqlite3.Error) -> str:
    """SQLite's message with its error name (``SQLITE_FULL``...) when Python knows it."""
    name = getattr(e, "sqlite_errorname", None)
    return f"sqlite: {e} ({name})" if name else f"sqlite: {e}"
