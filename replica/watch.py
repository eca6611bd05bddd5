"""Change notifications for replicated databases: one thread for all of them.

A database's monitor job (:mod:`replica.runtime`) is set as soon as the kernel reports a
change to the database file or its ``-wal``, so the first commit after a quiet period
is synced at once instead of at the next poll. Polling stays as the safety net
(:mod:`replica.pace`): every ``monitor-interval`` where changes are not notified, every
:data:`~replica.defaults.QUIET_RECHECK` where they are. A full event queue wakes every
database; a watched folder that disappears ends its watch, and its databases are polled
every ``monitor-interval`` again until they are reopened.

On Linux the kernel's inotify is used (through ``inotify_simple``, a thin wrapper of
the system calls): one inotify instance and one reader thread per process, one watch
per folder holding databases (not per file, so a file deleted, recreated or renamed
over keeps being watched), the events dispatched by file name. Elsewhere, or when the
kernel refuses (no inotify, out of watches), :func:`shared_watcher` returns None or
:meth:`Watcher.watch` returns False and the databases are polled every ``monitor-interval``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, Protocol

log = logging.getLogger("replica.watch")

_BATCH_MS = 2
"""After the first event, wait this long before reading: the kernel merges repeated
events of one file meanwhile, so a writer committing flat out costs the reader a few
hundred wake-ups a second, not one per write (measured: 40 % of a core without it)."""

_MAX_BATCH_MS = 64
"""While events keep coming (each read finds the next batch already waiting), the wait
doubles up to this: a flat-out writer then costs about 16 wake-ups a second. A quiet
moment brings it back to :data:`_BATCH_MS`, so a commit after a pause is seen in 2 ms."""

_QUIET_S = 0.1
"""A read that comes this long after the previous batch counts as after a quiet moment."""

_MASK_NAMES = ("MODIFY", "CLOSE_WRITE", "CREATE", "DELETE", "MOVED_FROM", "MOVED_TO", "ATTRIB")
"""What counts as a change of a watched file: its bytes, its existence, its name."""


class Waiter(Protocol):
    """What a change is reported to: a :class:`threading.Event`, a runtime job."""

    def set(self) -> None: ...


class Watcher:
    """Sets a database's event whenever its file or WAL changes. Thread-safe.

    ``watch(db_path, event)`` registers; several databases may share a folder and one
    database may be registered by several waiters. The reader thread runs for the life
    of the process (a daemon thread); :meth:`close` stops it (tests).
    """

    def __init__(self) -> None:
        import inotify_simple  # Linux only; the caller handles ImportError and OSError

        self._flags = inotify_simple.flags
        self._mask = 0
        for name in _MASK_NAMES:
            self._mask |= int(getattr(inotify_simple.flags, name))
        self._inotify: Any = inotify_simple.INotify()
        self._lock = threading.Lock()
        self._folders: dict[str, int] = {}
        self._names: dict[int, dict[str, list[Waiter]]] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="watch", daemon=True)
        self._thread.start()

    def watch(self, db_path: str, event: Waiter) -> bool:
        """Set ``event`` on every change of ``db_path`` or ``db_path-wal``; False if not possible.

        Idempotent for the same pair. A folder that is gone (or a kernel out of watches)
        gives False: the caller keeps polling.
        """
        path = os.path.abspath(db_path)
        folder, name = os.path.split(path)
        with self._lock:
            wd = self._folders.get(folder)
            if wd is None:
                try:
                    wd = int(self._inotify.add_watch(folder, self._mask))
                except OSError as e:
                    log.debug("cannot watch %s (%s): polling only", folder, e)
                    return False
                self._folders[folder] = wd
                self._names.setdefault(wd, {})
            names = self._names[wd]
            for n in (name, name + "-wal"):
                waiters = names.setdefault(n, [])
                if event not in waiters:
                    waiters.append(event)
        return True

    def unwatch(self, db_path: str, event: Waiter) -> None:
        """Stop setting ``event`` for ``db_path`` (the folder's watch stays for its other files)."""
        folder, name = os.path.split(os.path.abspath(db_path))
        with self._lock:
            wd = self._folders.get(folder)
            if wd is None:
                return
            names = self._names.get(wd, {})
            for n in (name, name + "-wal"):
                waiters = names.get(n, [])
                if event in waiters:
                    waiters.remove(event)
                if not waiters:
                    names.pop(n, None)

    def watching(self, db_path: str) -> bool:
        """Whether changes of ``db_path`` are being notified now (its folder is watched)."""
        folder = os.path.dirname(os.path.abspath(db_path))
        return folder in self._folders and self._thread.is_alive()

    def close(self) -> None:
        """Stop the reader thread and release the inotify descriptor."""
        self._closed = True
        self._thread.join(5)
        self._inotify.close()

    def _run(self) -> None:
        delay = _BATCH_MS
        last = -float("inf")
        while not self._closed:
            if delay > _BATCH_MS:  # sustained: let the kernel merge (read() waits only when idle)
                time.sleep(delay / 1000)
            try:
                events = self._inotify.read(timeout=500, read_delay=_BATCH_MS)
            except OSError as e:  # the descriptor is unusable: notifications end, polling goes on
                log.warning("change notifications stopped (%s): databases are polled", e)
                return
            if events:
                now = time.monotonic()
                sustained = now - last < _QUIET_S + delay / 1000
                delay = min(delay * 2, _MAX_BATCH_MS) if sustained else _BATCH_MS
                last = now
            else:
                delay = _BATCH_MS
            woken: set[int] = set()
            with self._lock:
                for ev in events:
                    if ev.mask & self._flags.IGNORED:  # the folder is gone: its watch with it
                        for folder, wd in list(self._folders.items()):
                            if wd == ev.wd:
                                del self._folders[folder]
                        waiting = self._names.pop(ev.wd, {})
                    else:
                        waiting = {ev.name: self._names.get(ev.wd, {}).get(ev.name, [])}
                    for waiters in waiting.values():
                        for w in waiters:
                            if id(w) not in woken:
                                woken.add(id(w))
                                w.set()
            if any(ev.mask & self._flags.Q_OVERFLOW for ev in events):  # events lost: wake everyone
                with self._lock:
                    for names in self._names.values():
                        for waiters in names.values():
                            for w in waiters:
                                w.set()


_shared: Watcher | None = None
_shared_failed = False
_shared_lock = threading.Lock()


def shared_watcher() -> Watcher | None:
    """The process's :class:`Watcher`, started on first use; None where notifications are unavailable."""
    global _shared, _shared_failed
    with _shared_lock:
        if _shared is None and not _shared_failed:
            if not sys.platform.startswith("linux"):
                _shared_failed = True
                log.info("change notifications need Linux (inotify): databases are polled")
            else:
                try:
                    _shared = Watcher()
                except (ImportError, OSError) as e:
                    _shared_failed = True
                    log.info("change notifications unavailable (%s): databases are polled", e)
        return _shared
