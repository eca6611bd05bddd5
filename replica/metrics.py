"""Prometheus metrics: Litestream 0.5's names, plus replication lag and bytes stored.

A deliberately small registry (counters and gauges with labels, rendered in the
Prometheus text format) served over HTTP at ``<addr>/metrics``; nothing else is
exposed on that port (Litestream also serves Go's profiler there).

Names follow Litestream (``db`` labels hold the database's full path; counters have
no ``_total`` suffix except where Litestream has one). Ours in addition:

* ``litestream_replication_lag_seconds{db}``: age of the oldest committed change not
  yet in the replica (0 when everything is uploaded);
* ``litestream_replica_bytes{db}``: bytes the replica holds for the database, as far as
  this process has seen them;
* ``litestream_replica_objects{db}``: the number of files it holds.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterable

_HELP = {
    "litestream_db_size": ("gauge", "Database file size in bytes after the last sync."),
    "litestream_wal_size": ("gauge", "Logical end of the WAL data synced, in bytes."),
    "litestream_total_wal_bytes": ("counter", "WAL bytes copied into L0 files."),
    "litestream_txid": ("gauge", "Current local TXID."),
    "litestream_sync_count": ("counter", "Sync attempts."),
    "litestream_sync_error_count": ("counter", "Failed syncs."),
    "litestream_sync_seconds": ("counter", "Time spent syncing."),
    "litestream_checkpoint_count": ("counter", "Checkpoints run, by mode."),
    "litestream_checkpoint_error_count": ("counter", "Failed checkpoints, by mode."),
    "litestream_checkpoint_seconds": ("counter", "Time spent checkpointing, by mode."),
    "litestream_replica_operation_total": ("counter", "Replica operations, by type."),
    "litestream_replica_operation_bytes": ("counter", "Bytes moved by replica operations."),
    "litestream_replication_lag_seconds": ("gauge", "Age of the oldest change not yet in the replica."),
    "litestream_replica_bytes": ("gauge", "Bytes stored in the replica for the database."),
    "litestream_replica_objects": ("gauge", "Files stored in the replica for the database."),
}

Labels = tuple[tuple[str, str], ...]


class Registry:
    """Thread-safe metric values keyed by (name, labels)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[Labels, float]] = {}
        self._collectors: list[Callable[[], None]] = []

    def add_collector(self, collect: Callable[[], None]) -> None:
        """Have ``collect`` update its gauges before every :meth:`render` (a scrape)."""
        with self._lock:
            self._collectors.append(collect)

    def remove_collector(self, collect: Callable[[], None]) -> None:
        with self._lock:
            if collect in self._collectors:
                self._collectors.remove(collect)

    def _key(self, labels: dict[str, str]) -> Labels:
        return tuple(sorted(labels.items()))

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        with self._lock:
            series = self._values.setdefault(name, {})
            k = self._key(labels)
            series[k] = series.get(k, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._values.setdefault(name, {})[self._key(labels)] = float(value)

    def get(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get(name, {}).get(self._key(labels), 0.0)

    def render(self) -> str:
        """The Prometheus text exposition of every series (the collectors run first)."""
        with self._lock:
            collectors = list(self._collectors)
        for collect in collectors:
            collect()
        out: list[str] = []
        with self._lock:
            for name in sorted(self._values):
                kind, help_text = _HELP.get(name, ("untyped", ""))
                out.append(f"# HELP {name} {help_text}")
                out.append(f"# TYPE {name} {kind}")
                for labels, value in sorted(self._values[name].items()):
                    out.append(f"{name}{_fmt_labels(labels)} {_fmt_value(value)}")
        return "\n".join(out) + "\n"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt_labels(labels: Iterable[tuple[str, str]]) -> str:
    items = [f'{k}="{_escape(v)}"' for k, v in labels]
    return "{" + ",".join(items) + "}" if items else ""


def _fmt_value(v: float) -> str:
    return str(int(v)) if v.is_integer() else repr(v)


REGISTRY = Registry()
"""The registry the replicator reports to unless it is given another (the one served)."""


class DatabaseMetrics:
    """The observer one database's monitor reports to: one method per event, the metric
    names and labels in one place. Tests and embedders pass their own :class:`Registry`."""

    def __init__(self, path: str, registry: Registry | None = None) -> None:
        self.registry = registry or REGISTRY
        self.path = path

    def sync_attempted(self) -> None:
        self.registry.inc("litestream_sync_count", db=self.path)

    def sync_failed(self) -> None:
        self.registry.inc("litestream_sync_error_count", db=self.path)

    def sync_took(self, seconds: float) -> None:
        self.registry.inc("litestream_sync_seconds", seconds, db=self.path)

    def synced(self, txid: int, db_size: int, wal_size: int, wal_bytes: int) -> None:
        """An L0 file was written: the new TXID, the sizes after it and the WAL bytes it took."""
        r, db = self.registry, self.path
        r.set("litestream_txid", txid, db=db)
        r.set("litestream_db_size", db_size, db=db)
        r.set("litestream_wal_size", wal_size, db=db)
        r.inc("litestream_total_wal_bytes", wal_bytes, db=db)

    def checkpoint_failed(self, mode: str) -> None:
        self.registry.inc("litestream_checkpoint_error_count", db=self.path, mode=mode)

    def checkpointed(self, mode: str, seconds: float) -> None:
        self.registry.inc("litestream_checkpoint_count", db=self.path, mode=mode)
        self.registry.inc("litestream_checkpoint_seconds", seconds, db=self.path, mode=mode)

    def replica_state(self, lag: float, stored_bytes: int | None, objects: int | None) -> None:
        """The lag and, once the replica's listing is known, what it stores."""
        self.registry.set("litestream_replication_lag_seconds", lag, db=self.path)
        if stored_bytes is not None and objects is not None:
            self.registry.set("litestream_replica_bytes", stored_bytes, db=self.path)
            self.registry.set("litestream_replica_objects", objects, db=self.path)


def serve(addr: str, registry: Registry = REGISTRY) -> http.server.ThreadingHTTPServer:
    """Serve ``/metrics`` on ``host:port`` in a daemon thread; ``shutdown()`` on the result stops it."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port:
        raise ValueError("must specify port for bind address")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = registry.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((host or "", int(port)), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
