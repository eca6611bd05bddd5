"""What the commands print: aligned tables, UTC timestamps, SI byte sizes, and the log setup."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys


def print_table(rows: list[list[str]]) -> None:
    """Print ``rows`` (the first is the header) as left-aligned columns two spaces apart."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def iso(t: dt.datetime) -> str:
    """``t`` in UTC to the second, as ``2006-01-02T15:04:05Z``."""
    return t.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def si_bytes(n: int) -> str:
    """go-humanize's SI byte format: ``0 B``, ``999 B``, ``32 kB``, ``1.2 MB``."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB", "EB"):
        value /= 1000
        if value < 1000:
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{value:.0f} EB"


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")
        return json.dumps(
            {"time": when.replace("+00:00", "Z"), "level": record.levelname, "msg": record.getMessage()}
        )


def setup_logging(level: str = "INFO", kind: str = "text", stderr: bool = False) -> None:
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
