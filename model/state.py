"""The reference model of a replicated database: its commits, and what each replica position holds.

Pure values, no I/O. A :class:`History` is what should be true of any Litestream
0.5-compatible replicator, whatever it does internally:

* the database is a sequence of :class:`Commit` s, each a full page map
  (:class:`DatabaseState`) with the moment the application saw the commit return;
* a TXID is one *sync*: it covers every commit since the previous TXID (possibly
  none, e.g. a snapshot after a restart, possibly many), and a restore to it must
  give the database exactly as it was at the commit the sync captured
  (:meth:`History.state_at_txid`);
* a restore to a moment ``T`` must give the state of the newest sync whose file was
  created strictly before ``T`` (:meth:`History.state_at_time`).

The model never guesses which commit a sync captured: whoever drives it says so
with :meth:`History.record_sync`, which checks that the claim is consistent with
what was recorded before (TXIDs are never reused, a later TXID never holds an
older state). Every method returns a new value; nothing is mutated.
"""

from __future__ import annotations

import bisect
import datetime as dt
import enum
from collections.abc import Iterator, Mapping, Sequence

import attrs

from ltx.errors import PyLitestreamError
from ltx.names import lock_pgno


class ModelError(PyLitestreamError, ValueError):
    """A claim made to the model contradicts what it already holds (a replica discrepancy)."""


def _zero_page(page_size: int) -> bytes:
    return bytes(page_size)


@attrs.frozen
class DatabaseState:
    """A database image as a page map: ``pages[i]`` is page ``i + 1``.

    ``commit`` (the number of pages) is ``len(pages)``. The lock page, if the
    database reaches it, is held as zeros, the way a restore writes it. Pages are
    shared (by identity) between states derived from one another, so a long
    history of small commits costs little memory.
    """

    page_size: int
    pages: tuple[bytes, ...]

    def __attrs_post_init__(self) -> None:
        ps = self.page_size
        if ps < 512 or ps > 65536 or ps & (ps - 1):
            raise ValueError(f"invalid page size {ps}")
        for i, p in enumerate(self.pages):
            if len(p) != ps:
                raise ValueError(f"page {i + 1} is {len(p)} bytes, expected {ps}")

    @property
    def commit(self) -> int:
        """Database size in pages."""
        return len(self.pages)

    def page(self, pgno: int) -> bytes:
        """Page ``pgno`` (1-based); raises ``IndexError`` past ``commit``."""
        if pgno < 1:
            raise IndexError(f"page numbers start at 1, got {pgno}")
        return self.pages[pgno - 1]

    def image(self) -> bytes:
        """The database file's bytes: ``commit * page_size`` of them."""
        return b"".join(self.pages)

    @classmethod
    def from_image(cls, image: bytes, page_size: int, *, like: DatabaseState | None = None) -> DatabaseState:
        """The state whose file is ``image``; pages equal to ``like``'s are shared with it."""
        if len(image) % page_size:
            raise ValueError(f"image of {len(image)} bytes is not a whole number of {page_size}-byte pages")
        n = len(image) // page_size
        old = like.pages if like is not None and like.page_size == page_size else ()
        out: list[bytes] = []
        for i in range(n):
            p = image[i * page_size : (i + 1) * page_size]
            if i < len(old) and old[i] == p:
                out.append(old[i])
            else:
                out.append(p)
        return cls(page_size, tuple(out))

    def with_pages(self, changes: Mapping[int, bytes], commit: int) -> DatabaseState:
        """This state with ``changes`` written and its size set to ``commit`` pages.

        Pages added by growth that ``changes`` does not give are zero (as in a
        sparse file); the lock page is always zero.
        """
        zero = _zero_page(self.page_size)
        pages = list(self.pages[:commit])
        pages.extend(zero for _ in range(commit - len(pages)))
        for pgno, data in changes.items():
            if not 1 <= pgno <= commit:
                raise ValueError(f"page {pgno} is outside 1..{commit}")
            pages[pgno - 1] = data
        lock = lock_pgno(self.page_size)
        if lock <= commit:
            pages[lock - 1] = zero
        return DatabaseState(self.page_size, tuple(pages))

    def differing_pages(self, other: DatabaseState) -> list[int]:
        """Page numbers whose bytes differ (pages present in only one state count)."""
        n = max(self.commit, other.commit)
        out = []
        for pgno in range(1, n + 1):
            a = self.pages[pgno - 1] if pgno <= self.commit else None
            b = other.pages[pgno - 1] if pgno <= other.commit else None
            if a is not b and a != b:
                out.append(pgno)
        return out


class Compare(enum.Enum):
    """How a restored or replayed database is compared with the model's state."""

    PAGES = "pages"
    """Byte-identical page images: for replicators that never write to the database."""
    LOGICAL = "logical"
    """Same schema and rows, ignoring the replicator's own tables (``_litestream_*``):
    for replicators that write to the database (Litestream does)."""


@attrs.frozen
class Commit:
    """The database after one application commit (``seq`` 0 is the state replication began from)."""

    seq: int
    state: DatabaseState
    fingerprint: str
    """Logical digest of the state (schema and rows); see :mod:`model.sqlite`."""
    time: dt.datetime
    """When the commit had returned to the application (timezone-aware)."""
    label: str = ""

    def matches(self, state: DatabaseState, fingerprint: str, how: Compare) -> bool:
        """Whether ``state`` (with its logical ``fingerprint``) is this commit's state under ``how``."""
        if how is Compare.PAGES:
            return state.page_size == self.state.page_size and state.pages == self.state.pages
        return fingerprint == self.fingerprint


@attrs.frozen(order=True)
class Sync:
    """One replica position: TXID ``txid`` holds the state of commit ``seq``.

    ``created_at`` is when its file was created (the LTX header timestamp), the
    time point-in-time restores compare against.
    """

    txid: int
    seq: int = attrs.field(order=False)
    created_at: dt.datetime = attrs.field(order=False)


def _aware(t: dt.datetime) -> dt.datetime:
    if t.tzinfo is None:
        raise ValueError(f"naive datetime {t!r}: the model needs timezone-aware times")
    return t


@attrs.frozen
class History:
    """Every commit of one database and every replica position recorded so far.

    Invariants (kept by the constructors below): commits are numbered ``0..n-1``
    in order; syncs are sorted by TXID, no TXID twice, and a larger TXID never
    holds an older commit than a smaller one.
    """

    commits: tuple[Commit, ...]
    syncs: tuple[Sync, ...] = ()

    @classmethod
    def start(
        cls, state: DatabaseState, fingerprint: str, time: dt.datetime, label: str = "initial"
    ) -> History:
        """A history whose only commit (seq 0) is ``state``."""
        return cls((Commit(0, state, fingerprint, _aware(time), label),))

    # -- commits -----------------------------------------------------------------------

    @property
    def current(self) -> Commit:
        """The newest commit: what the database holds now."""
        return self.commits[-1]

    def commit(self, state: DatabaseState, fingerprint: str, time: dt.datetime, label: str = "") -> History:
        """This history with one more commit (the next ``seq``)."""
        c = Commit(len(self.commits), state, fingerprint, _aware(time), label)
        return attrs.evolve(self, commits=(*self.commits, c))

    def commit_at(self, seq: int) -> Commit:
        if not 0 <= seq < len(self.commits):
            raise IndexError(f"no commit {seq} (have 0..{len(self.commits) - 1})")
        return self.commits[seq]

    # -- syncs -------------------------------------------------------------------------

    @property
    def txids(self) -> tuple[int, ...]:
        return tuple(s.txid for s in self.syncs)

    @property
    def latest_sync(self) -> Sync | None:
        return self.syncs[-1] if self.syncs else None

    def sync_of(self, txid: int) -> Sync | None:
        i = bisect.bisect_left(self.txids, txid)
        if i < len(self.syncs) and self.syncs[i].txid == txid:
            return self.syncs[i]
        return None

    def seq_bounds(self, txid: int) -> tuple[int, int]:
        """The commits a not-yet-recorded ``txid`` may hold without contradicting recorded syncs.

        ``(lo, hi)``: at least the commit of the largest recorded TXID below it (0 if
        none), at most that of the smallest recorded TXID above it (the current
        commit if none).
        """
        txids = self.txids
        i = bisect.bisect_left(txids, txid)
        lo = self.syncs[i - 1].seq if i > 0 else 0
        hi = self.syncs[i].seq if i < len(self.syncs) else self.current.seq
        if i < len(self.syncs) and self.syncs[i].txid == txid:
            s = self.syncs[i]
            return s.seq, s.seq
        return lo, hi

    def record_sync(self, txid: int, seq: int, created_at: dt.datetime) -> History:
        """Record that TXID ``txid`` holds commit ``seq``; its file was created at ``created_at``.

        Raises :class:`ModelError` if ``txid`` is already recorded (a TXID is never
        reused), if ``seq`` is not a commit, or if ``seq`` is outside
        :meth:`seq_bounds` (a later TXID holding an older state than an earlier one).
        """
        if txid < 1:
            raise ModelError(f"TXID {txid} is not positive")
        if not 0 <= seq <= self.current.seq:
            raise ModelError(f"TXID {txid:016x} claims commit {seq}, which has not happened")
        if self.sync_of(txid) is not None:
            raise ModelError(f"TXID {txid:016x} is already recorded")
        lo, hi = self.seq_bounds(txid)
        if not lo <= seq <= hi:
            raise ModelError(
                f"TXID {txid:016x} holds commit {seq}, but its neighbours hold commits {lo}..{hi}: "
                "TXID order and commit order disagree"
            )
        s = Sync(txid, seq, _aware(created_at))
        i = bisect.bisect_left(self.txids, txid)
        return attrs.evolve(self, syncs=(*self.syncs[:i], s, *self.syncs[i:]))

    def covers(self, txid: int) -> range:
        """The commits first made durable by ``txid``: ``range(prev.seq + 1, seq + 1)``.

        Empty when the sync captured no new commit (a snapshot written after a
        restart, for example). The first TXID also covers commit 0.
        """
        s = self.sync_of(txid)
        if s is None:
            raise KeyError(f"TXID {txid:016x} is not recorded")
        i = self.syncs.index(s)
        first = self.syncs[i - 1].seq + 1 if i > 0 else 0
        return range(first, s.seq + 1) if s.seq >= first else range(first, first)

    def state_at_txid(self, txid: int) -> Commit | None:
        """What a restore to ``txid`` must return (None if ``txid`` is not recorded)."""
        s = self.sync_of(txid)
        return None if s is None else self.commits[s.seq]

    def sync_at_time(self, when: dt.datetime) -> Sync | None:
        """The newest (largest TXID) sync whose file was created strictly before ``when``."""
        _aware(when)
        best: Sync | None = None
        for s in self.syncs:
            if s.created_at < when:
                best = s
        return best

    def state_at_time(self, when: dt.datetime) -> Commit | None:
        """What a restore to the moment ``when`` must return; None if no file is that old."""
        s = self.sync_at_time(when)
        return None if s is None else self.commits[s.seq]

    # -- identification ----------------------------------------------------------------

    def candidates(self, lo: int, hi: int) -> Iterator[Commit]:
        """Commits ``hi`` down to ``lo`` (newest first)."""
        for seq in range(min(hi, self.current.seq), max(lo, 0) - 1, -1):
            yield self.commits[seq]

    def identify(
        self, state: DatabaseState, fingerprint: str, lo: int, hi: int, how: Compare
    ) -> Commit | None:
        """The newest commit in ``lo..hi`` whose state ``state`` is, or None."""
        for c in self.candidates(lo, hi):
            if c.matches(state, fingerprint, how):
                return c
        return None

    def times(self) -> Sequence[dt.datetime]:
        """Creation times of the recorded syncs, in TXID order."""
        return tuple(s.created_at for s in self.syncs)
