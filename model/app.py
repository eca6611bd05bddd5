"""The application: a SQLite writer in its own long-lived process, driven over a pipe.

Why a separate process: POSIX advisory locks belong to a process, and closing *any*
descriptor of a file drops all of that process's locks on it. A replicator running
in the test process (which must close its descriptors when it stops or "crashes")
would silently drop the application's locks if the application lived in the same
process. So the application lives here, in a child (``python -m model.app DB``),
and the test process never opens the database file itself.

Protocol: one JSON object per line each way. Requests have an ``op``:

* ``tx`` ``stmts=[[sql, params], ...]``: ``BEGIN IMMEDIATE``, the statements,
  ``UPDATE app_meta SET v = v + 1`` (so every commit is logically distinct),
  ``COMMIT``. A parameter ``{"blob": [seed, size]}`` becomes ``size`` pseudo-random
  bytes from ``seed``.
* ``rollback`` ``stmts``: the same, ending in ``ROLLBACK`` (large ones spill
  uncommitted frames into the WAL: the page cache is kept small on purpose).
* ``vacuum``: ``VACUUM``.
* ``checkpoint`` ``mode``: ``PRAGMA wal_checkpoint(<mode>)`` on a second connection
  whose busy timeout is short (``checkpoint_timeout``); returns ``busy``, ``log``,
  ``checkpointed``.
* ``restart``: close both connections and open them again (if nobody else has the
  database open, SQLite checkpoints and deletes the WAL on close).
* ``image``: the database as the application sees it.
* ``quit``.

Replies: ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. Every reply to a
request that may have committed (``tx``, ``vacuum``) carries the new database
image as changes since the last image sent (``page_size``, ``page_count``,
``pages`` = ``{pgno: base64}``) and the wall-clock times ``t0``/``t1`` (seconds)
around the commit.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

import attrs

from ltx.errors import PyLitestreamError

SCHEMA = (
    "CREATE TABLE app_meta (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)",
    "INSERT INTO app_meta (k, v) VALUES (1, 0)",
    "CREATE TABLE t0 (id INTEGER PRIMARY KEY, n INTEGER, body BLOB)",
)


class AppError(PyLitestreamError, RuntimeError):
    """The application process failed or died (a harness problem, not the replicator's)."""


# -- the child ----------------------------------------------------------------------------


def _blob(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _params(raw: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for p in raw:
        if isinstance(p, dict) and "blob" in p:
            seed, size = p["blob"]
            out.append(_blob(int(seed), int(size)))
        else:
            out.append(p)
    return out


class _Child:
    def __init__(self, path: str, page_size: int, checkpoint_timeout: float, autocheckpoint: int) -> None:
        self.path = path
        self.page_size = page_size
        self.checkpoint_timeout = checkpoint_timeout
        self.autocheckpoint = autocheckpoint
        self.sent: list[bytes] = []
        self._open()

    def _open(self) -> None:
        fresh = not os.path.exists(self.path)
        self.con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        if fresh:
            self.con.execute(f"PRAGMA page_size = {self.page_size}")
        mode = self.con.execute("PRAGMA journal_mode = wal").fetchone()[0]
        if str(mode).lower() != "wal":
            raise AppError(f"cannot put {self.path} in WAL mode ({mode})")
        self.con.execute("PRAGMA cache_size = 16")
        self.con.execute(f"PRAGMA wal_autocheckpoint = {self.autocheckpoint}")
        if fresh:
            self.con.execute("BEGIN IMMEDIATE")
            for s in SCHEMA:
                self.con.execute(s)
            self.con.execute("COMMIT")
        self.ck = sqlite3.connect(self.path, timeout=self.checkpoint_timeout, isolation_level=None)

    def _close(self) -> None:
        self.ck.close()
        self.con.close()

    def image_reply(self, t0: float, t1: float) -> dict[str, Any]:
        img = self.con.serialize()
        ps = int(self.con.execute("PRAGMA page_size").fetchone()[0])
        n = len(img) // ps
        changed: dict[str, str] = {}
        for i in range(n):
            p = img[i * ps : (i + 1) * ps]
            if i >= len(self.sent) or self.sent[i] != p:
                changed[str(i + 1)] = base64.b64encode(p).decode("ascii")
        self.sent = [img[i * ps : (i + 1) * ps] for i in range(n)]
        return {"ok": True, "page_size": ps, "page_count": n, "pages": changed, "t0": t0, "t1": t1}

    def run_stmts(self, stmts: Sequence[Sequence[Any]], commit: bool) -> None:
        self.con.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in stmts:
                self.con.execute(sql, _params(params))
            if commit:
                self.con.execute("UPDATE app_meta SET v = v + 1 WHERE k = 1")
                self.con.execute("COMMIT")
            else:
                self.con.execute("ROLLBACK")
        except BaseException:
            if self.con.in_transaction:
                self.con.execute("ROLLBACK")
            raise

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req["op"]
        if op == "tx":
            t0 = time.time()
            self.run_stmts(req["stmts"], commit=True)
            return self.image_reply(t0, time.time())
        if op == "rollback":
            self.run_stmts(req["stmts"], commit=False)
            return {"ok": True}
        if op == "vacuum":
            t0 = time.time()
            self.con.execute("VACUUM")
            return self.image_reply(t0, time.time())
        if op == "checkpoint":
            mode = str(req["mode"]).upper()
            if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
                raise ValueError(f"bad checkpoint mode {mode}")
            row = self.ck.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            return {"ok": True, "busy": row[0], "log": row[1], "checkpointed": row[2]}
        if op == "restart":
            self._close()
            self._open()
            return {"ok": True}
        if op == "image":
            self.sent = []
            t = time.time()
            return self.image_reply(t, t)
        raise ValueError(f"unknown op {op!r}")


def child_main(argv: Sequence[str]) -> int:
    path, page_size, ck_timeout, autockpt = argv[0], int(argv[1]), float(argv[2]), int(argv[3])
    try:
        child = _Child(path, page_size, ck_timeout, autockpt)
        ready: dict[str, Any] = {"ok": True, "pid": os.getpid()}
    except Exception as e:  # reported, then exit
        ready = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(ready), flush=True)
        return 1
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("op") == "quit":
            child._close()
            print(json.dumps({"ok": True}), flush=True)
            return 0
        try:
            reply = child.handle(req)
        except Exception as e:
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)
    return 0


# -- the parent's handle ------------------------------------------------------------------


@attrs.frozen
class Image:
    """The database as the application saw it after a request, and when."""

    page_size: int
    pages: tuple[bytes, ...]
    t0: float
    t1: float

    def image(self) -> bytes:
        return b"".join(self.pages)


class Application:
    """The application process: start it, send it work, stop it.

    Every method raises :class:`AppError` if the process died or answered nonsense;
    SQL errors come back as :class:`AppError` too (the harness never sends SQL that
    should fail).
    """

    def __init__(
        self,
        db_path: str,
        *,
        page_size: int = 4096,
        checkpoint_timeout: float = 0.1,
        autocheckpoint: int = 1000,
        python: str = sys.executable,
        timeout: float = 120.0,
    ) -> None:
        self.db_path = db_path
        self.timeout = timeout
        self.proc = subprocess.Popen(
            [python, "-m", "model.app", db_path, *map(str, (page_size, checkpoint_timeout, autocheckpoint))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._pages: list[bytes] = []
        self._lock = threading.Lock()
        ready = self._read()
        if not ready.get("ok"):
            self.kill()
            raise AppError(f"application did not start: {ready.get('error')}")

    def _read(self) -> dict[str, Any]:
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        line = out.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AppError(f"application process exited (code {self.proc.poll()}): {err[-2000:]}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            inp = self.proc.stdin
            if inp is None or self.proc.poll() is not None:
                raise AppError("application process is not running")
            try:
                inp.write(json.dumps({"op": op, **fields}) + "\n")
                inp.flush()
            except OSError as e:
                raise AppError(f"application process is gone: {e}") from e
            reply = self._read()
        if not reply.get("ok"):
            raise AppError(f"{op} failed: {reply.get('error')}")
        return reply

    def _image(self, reply: dict[str, Any]) -> Image:
        n = int(reply["page_count"])
        pages = self._pages[:n]
        pages.extend(b"" for _ in range(n - len(pages)))
        for k, v in reply["pages"].items():
            pages[int(k) - 1] = base64.b64decode(v)
        self._pages = pages
        return Image(int(reply["page_size"]), tuple(pages), float(reply["t0"]), float(reply["t1"]))

    def transaction(self, stmts: Sequence[tuple[str, Sequence[Any]]]) -> Image:
        """Run ``stmts`` in one committed transaction; the image after the commit."""
        return self._image(self.request("tx", stmts=[[s, list(p)] for s, p in stmts]))

    def rollback(self, stmts: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run ``stmts`` in a transaction that is rolled back."""
        self.request("rollback", stmts=[[s, list(p)] for s, p in stmts])

    def vacuum(self) -> Image:
        return self._image(self.request("vacuum"))

    def checkpoint(self, mode: str) -> tuple[int, int, int]:
        r = self.request("checkpoint", mode=mode)
        return int(r["busy"]), int(r["log"]), int(r["checkpointed"])

    def restart(self) -> None:
        self.request("restart")

    def image(self) -> Image:
        self._pages = []
        return self._image(self.request("image"))

    def close(self) -> None:
        """Ask the process to quit (closing its connections), then reap it."""
        if self.proc.poll() is None:
            with contextlib.suppress(AppError):
                self.request("quit")
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_pipes()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close_pipes()

    def _close_pipes(self) -> None:
        for s in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
