"""The harness's view of a replica: listed, fetched, decoded, and replayed into database states.

:class:`ReplicaObserver` is the I/O half of :mod:`model.replica`: it lists every
level through a :class:`~replica.storage.ReplicaClient`, fetches each file once (again
only if the listing says it changed), decodes and verifies it, remembers every
file's content for good (so a TXID whose content changes, even after a deletion,
is caught), and replays chains of files into :class:`~model.replica.Replayed`
states with the model's own restore step.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import attrs

from ltx.errors import PyLitestreamError
from ltx.fileinfo import FileInfo
from model.replica import LTXFile, Replayed, apply_file, decode_file, describe, key_of
from model.sqlite import fingerprint
from replica.storage import ReplicaClient

LEVELS = range(10)

Key = tuple[int, int, int]


class ReplicaContentError(PyLitestreamError, ValueError):
    """A file in the replica does not decode, or its content changed under the same name."""


@attrs.frozen
class Listing:
    """One listing of every level, with each file's creation time from its LTX header."""

    files: Mapping[int, tuple[FileInfo, ...]]

    def all(self) -> list[FileInfo]:
        return [i for lv in LEVELS for i in self.files.get(lv, ())]

    @property
    def l0_txids(self) -> set[int]:
        return {i.max_txid for i in self.files.get(0, ())}

    @property
    def ends(self) -> set[int]:
        """Every file's max TXID, any level: the TXIDs a restore can end at."""
        return {i.max_txid for lv in LEVELS for i in self.files.get(lv, ())}


class ReplicaObserver:
    """Keeps a decoded copy of a replica up to date; see the module docstring."""

    def __init__(self, client: ReplicaClient) -> None:
        self.client = client
        self.files: dict[Key, LTXFile] = {}
        self._infos: dict[Key, FileInfo] = {}
        self._content: dict[Key, str] = {}
        self._replayed: dict[int, Replayed] = {}
        self._fingerprints: dict[int, str] = {}
        self.listing = Listing({})

    def forget(self) -> None:
        """Forget everything (the replica was deliberately emptied)."""
        self.files.clear()
        self._infos.clear()
        self._content.clear()
        self._replayed.clear()
        self._fingerprints.clear()
        self.listing = Listing({})

    def refresh(self) -> Listing:
        """List every level; fetch and decode new or changed files.

        Raises :class:`ReplicaContentError` for a file that does not decode or verify,
        or whose content differs from what the same name held before.
        """
        raw = {lv: self.client.list_files(lv) for lv in LEVELS}
        seen: set[Key] = set()
        out: dict[int, tuple[FileInfo, ...]] = {}
        for lv, infos in raw.items():
            fixed: list[FileInfo] = []
            for info in infos:
                k = key_of(info)
                seen.add(k)
                old = self._infos.get(k)
                if old is None or old.size != info.size or old.created_at != info.created_at:
                    data = self.client.read_file(*k)
                    try:
                        f = decode_file(*k, data)
                    except ValueError as e:
                        raise ReplicaContentError(str(e)) from None
                    before = self._content.get(k)
                    if before is not None and before != f.content:
                        raise ReplicaContentError(
                            f"{describe(*k)} was rewritten with different content "
                            "(a TXID range must always hold the same data)"
                        )
                    self._content[k] = f.content
                    self.files[k] = f
                self._infos[k] = info
                fixed.append(attrs.evolve(info, created_at=self.files[k].created_at))
            out[lv] = tuple(fixed)
        for k in set(self._infos) - seen:
            del self._infos[k]
            self.files.pop(k, None)
        self.listing = Listing(out)
        return self.listing

    def listing_times(self) -> list[dt.datetime]:
        """The creation times the store's listing reports (S3: upload times), as last listed."""
        return [i.created_at for i in self._infos.values()]

    def created_at(self, txid: int) -> dt.datetime | None:
        """When ``txid``'s state was made: its L0 file's time, else the earliest time of a
        file ending at it (compaction outputs and snapshots take their last input's time)."""
        f = self.files.get((0, txid, txid))
        if f is not None:
            return f.created_at
        times = [f.created_at for (_lv, _lo, hi), f in self.files.items() if hi == txid]
        return min(times) if times else None

    def replay(self, txid: int) -> Replayed | None:
        """The database after ``txid`` as a restore through the current files would build it.

        Prefers the L0 file of ``txid``; otherwise any file ending at ``txid``. A file
        that is a full image (or starts at TXID 1) needs nothing before it; any other
        needs the state after ``min_txid - 1``. None when no chain reaches ``txid``.
        States once computed are kept (a TXID's state never changes).
        """
        if txid in self._replayed:
            return self._replayed[txid]
        # Walk down to something known, then build back up (no recursion).
        pending: list[tuple[int, LTXFile]] = []
        t = txid
        base: Replayed | None = None
        while True:
            f = self._file_ending_at(t)
            if f is None:
                return None
            pending.append((t, f))
            if f.is_full_image or f.min_txid == 1:
                base = None
                break
            prev = f.min_txid - 1
            if prev in self._replayed:
                base = self._replayed[prev]
                break
            t = prev
        for t, f in reversed(pending):
            base = apply_file(base, f)
            self._replayed[t] = base
        return base

    def _file_ending_at(self, txid: int) -> LTXFile | None:
        f = self.files.get((0, txid, txid))
        if f is not None:
            return f
        ends = [f for (lv, _lo, hi), f in self.files.items() if hi == txid and lv != 0]
        if not ends:
            return None
        return max(ends, key=lambda f: (f.is_full_image, -f.min_txid))

    def fingerprint_of(self, txid: int) -> str:
        """Logical fingerprint of :meth:`replay` ``(txid)`` (cached)."""
        if txid not in self._fingerprints:
            r = self.replay(txid)
            self._fingerprints[txid] = fingerprint(r.state.image()) if r is not None else "unreachable"
        return self._fingerprints[txid]
