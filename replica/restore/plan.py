"""The restore planner: which LTX files, in which order, rebuild the database at a target.

Pure: the input is a listing of every level (``level -> [FileInfo]``), a
:class:`RestoreTarget` and, optionally, which files are known to be *full images*;
the output is a :class:`RestorePlan` or a :class:`~replica.restore.errors.RestorePlanError`.
Nothing here reads a file or a clock. ``docs/spec/restore.md`` states the same rules
in prose.

**Litestream's plan first.** For every listing on which Litestream 0.5's
``CalcRestorePlan`` (reference §5.2) succeeds, :func:`plan_restore` returns exactly
its plan:

1. the level-9 snapshot with the highest TXID among those admitted by the target
   (``max_txid <= txid``; ``created_at`` *strictly before* the timestamp);
2. then greedy extension over levels 8..0 from ``cur`` = that snapshot's max TXID
   (0 without one): among admitted files with ``min_txid <= cur + 1`` and
   ``max_txid > cur``, take the one with the larger max TXID, then the smaller min
   TXID, then the higher level, then the earlier ``created_at``; repeat until no file
   qualifies or the target TXID is reached.

**Doing better: any full image can start a plan.** Litestream's chain must start at
TXID 1 (a snapshot), so once retention or a lifecycle rule has deleted the old files
(or for a target older than every remaining snapshot) it fails although the replica
holds what is needed. Here a plan may also start at any *full image*: a file holding
every page ``1..Commit`` except the lock page, at its max TXID. Files with
``min_txid == 1`` are full images by definition of the format; others (a
"snapshot L0" Litestream writes after a checkpoint or a lost meta directory, or a
compaction whose first input was one) can only be recognised from their page index,
which a listing does not carry. So the caller says which ones are, through
``full_images`` (a set of :class:`FileInfo` or a predicate), and
:func:`probe_candidates` tells it which files are worth finding out about (the
executor reads their page index tails: three ranged reads each). When Litestream's
plan does not reach the goal, the planner tries every admitted full image as the
start, the most recent first, extends it with the same greedy rule, and takes the
first that reaches the goal.

**The goal**, the TXID the plan must end at: the target TXID; for "latest" the
highest max TXID in any level; for a timestamp the highest max TXID among files
created strictly before it. A plan never silently stops short: where Litestream
would restore an older state for a timestamp whose chain is broken, this raises
:class:`NonContiguousError`.

**Page sizes.** A database whose page size changed (``VACUUM`` after
``PRAGMA page_size``) starts over with a full image of the new size; files before it
hold pages of the old size, which no later file can be applied on top of. So a plan
never mixes page sizes: when the caller says what it knows of them (``page_sizes``,
read from the headers of the files it was asked about), every file of the plan whose
size is known has the size of the state at the goal (the known size of a file ending
there), and the rules above run on the files of that size and those of unknown size.
When Litestream's plan crosses a change, this falls back to the newest full image of
the right size, as it does for a gap. Nothing known means nothing excluded; a caller
that learns the sizes of a plan's files and plans again until they are all known
ends at the plan full knowledge gives (see :func:`replica.restore.probe.plan_with_probes`).
When only a plan across a change would reach the goal (a change with no full image
of the new size after it), that is damage: :class:`PageSizeChangeError`.

Every plan is checked with :func:`check_contiguous` (each file's min TXID is at most
the previous max + 1 and its max is greater than the previous max), and starts
with a full image.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

import attrs

from ltx.fileinfo import FileInfo, is_contiguous
from ltx.names import SNAPSHOT_LEVEL
from replica.restore.errors import (
    NoBackupError,
    NonContiguousError,
    PageSizeChangeError,
    RestoreOptionsError,
    RestorePlanError,
    TxNotAvailableError,
)

LEVELS = range(10)
EXTENSION_LEVELS = range(9)
"""Levels whose files extend a plan (Litestream's cursors, levels 8..0)."""

Listing = Mapping[int, Iterable[FileInfo]]
"""Every level's files: ``{level: [FileInfo, ...]}``; missing levels are empty."""
FullImages = Callable[[FileInfo], bool] | Collection[FileInfo] | None
"""Which files are known full images (besides ``min_txid == 1``, which always are)."""
PageSizes = Callable[[FileInfo], int | None] | Mapping[FileInfo, int] | None
"""What is known of files' page sizes: a mapping, or a function giving None for "unknown"."""
SizeOf = Callable[[FileInfo], int | None]


def _check_txid(_: object, __: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise RestoreOptionsError(f"invalid txid {value!r}: must be a positive integer")


def _check_timestamp(_: object, __: attrs.Attribute[dt.datetime | None], value: dt.datetime | None) -> None:
    if value is not None and (not isinstance(value, dt.datetime) or value.tzinfo is None):
        raise RestoreOptionsError(f"invalid timestamp {value!r}: must be a timezone-aware datetime")


def _fmt(txid: int) -> str:
    return f"{txid:016x}"


@attrs.frozen
class RestoreTarget:
    """What to restore: the latest state, the state after ``txid``, or the state at ``timestamp``.

    At most one of ``txid`` (>= 1, inclusive) and ``timestamp`` (timezone-aware) is set;
    neither means latest. A file is *admitted* by the target if its max TXID is at most
    ``txid`` and it was created strictly before ``timestamp``.
    """

    txid: int | None = attrs.field(default=None, validator=_check_txid)
    timestamp: dt.datetime | None = attrs.field(default=None, validator=_check_timestamp)

    def __attrs_post_init__(self) -> None:
        if self.txid is not None and self.timestamp is not None:
            raise RestoreOptionsError("cannot specify index & timestamp to restore")

    @classmethod
    def latest(cls) -> RestoreTarget:
        return cls()

    @classmethod
    def at_txid(cls, txid: int) -> RestoreTarget:
        return cls(txid=txid)

    @classmethod
    def at_time(cls, timestamp: dt.datetime) -> RestoreTarget:
        return cls(timestamp=timestamp)

    @property
    def is_latest(self) -> bool:
        return self.txid is None and self.timestamp is None

    def admits(self, info: FileInfo) -> bool:
        """Whether ``info`` may be part of a plan for this target."""
        if self.txid is not None and info.max_txid > self.txid:
            return False
        return self.timestamp is None or info.created_at < self.timestamp

    def __str__(self) -> str:
        if self.txid is not None:
            return f"txid {_fmt(self.txid)}"
        if self.timestamp is not None:
            return f"timestamp {self.timestamp.isoformat()}"
        return "latest"


LATEST = RestoreTarget()


def check_contiguous(files: Sequence[FileInfo]) -> None:
    """Raise :class:`NonContiguousError` unless ``files`` is a non-empty contiguous chain.

    Contiguous: each file's min TXID is at most the previous max + 1 and its max TXID
    is greater than the previous max (overlap allowed, as in Litestream's
    ``IsContiguous``).
    """
    if not files:
        raise NoBackupError("no matching backup files available: the restore plan is empty")
    for prev, cur in itertools.pairwise(files):
        if not is_contiguous(prev.max_txid, cur.min_txid, cur.max_txid):
            raise NonContiguousError(
                f"non-contiguous ltx files: have up to {_fmt(prev.max_txid)} "
                f"but next file is {_fmt(cur.min_txid)}-{_fmt(cur.max_txid)} (level {cur.level})",
                have=prev.max_txid,
                next_min=cur.min_txid,
                level=cur.level,
                txid=cur.min_txid,
            )


def _to_files(files: Iterable[FileInfo]) -> tuple[FileInfo, ...]:
    return tuple(files)


def _check_plan_files(
    _: object, __: attrs.Attribute[tuple[FileInfo, ...]], files: tuple[FileInfo, ...]
) -> None:
    check_contiguous(files)


@attrs.frozen
class RestorePlan:
    """The files to apply, in order, and the TXID the restored database will be at.

    Invariants (checked on construction): ``files`` is non-empty and contiguous, and
    ``txid`` is the last file's max TXID. ``litestream_compatible`` says whether this is
    the plan Litestream 0.5 would make; when false it starts at a full image Litestream
    cannot use.
    """

    files: tuple[FileInfo, ...] = attrs.field(converter=_to_files, validator=_check_plan_files)
    txid: int
    target: RestoreTarget = LATEST
    litestream_compatible: bool = True

    def __attrs_post_init__(self) -> None:
        if self.txid != self.files[-1].max_txid:
            raise RestorePlanError(
                f"plan txid {_fmt(self.txid)} is not its last file's max txid {_fmt(self.files[-1].max_txid)}"
            )

    @property
    def min_txid(self) -> int:
        """The first TXID the plan's files cover."""
        return self.files[0].min_txid

    @property
    def size(self) -> int:
        """Total bytes of the plan's files, as listed."""
        return sum(f.size for f in self.files)

    @property
    def start(self) -> FileInfo:
        """The full image the plan starts from."""
        return self.files[0]


# --- internals ------------------------------------------------------------------------


def _normalize(listing: Listing) -> dict[int, list[FileInfo]]:
    out: dict[int, list[FileInfo]] = {}
    for level, infos in listing.items():
        if level not in LEVELS:
            raise RestoreOptionsError(f"invalid level {level!r} in listing: must be 0..9")
        items = list(infos)
        for info in items:
            if info.level != level:
                raise RestoreOptionsError(
                    f"file {info.name} of level {info.level} listed under level {level}"
                )
        # listing order: ascending (min, max), as every replica client returns
        out[level] = sorted(items, key=lambda i: (i.min_txid, i.max_txid))
    return out


def _full_image_predicate(full_images: FullImages) -> Callable[[FileInfo], bool]:
    if full_images is None:
        return lambda info: info.min_txid == 1
    if callable(full_images):
        pred = full_images
        return lambda info: info.min_txid == 1 or bool(pred(info))
    known = frozenset(full_images)
    return lambda info: info.min_txid == 1 or info in known


def _size_function(page_sizes: PageSizes) -> SizeOf | None:
    if page_sizes is None:
        return None
    if callable(page_sizes):
        return page_sizes
    return dict(page_sizes).get


def _rank(info: FileInfo) -> tuple[int, int, int, dt.datetime]:
    """Sort key, best first: larger max TXID, smaller min TXID, higher level, earlier creation."""
    return (-info.max_txid, info.min_txid, -info.level, info.created_at)


def _extend(start: int, ext: Sequence[FileInfo], target: RestoreTarget) -> list[FileInfo]:
    """Litestream's greedy extension from ``cur = start`` over ``ext`` (admitted, sorted by min).

    Equivalent to the per-level cursors of ``CalcRestorePlan``: every file with
    ``min_txid <= cur + 1`` is considered once; the best by :func:`_rank` among those
    with ``max_txid > cur`` is taken. After a pick every other candidate has a max
    TXID at most the new ``cur`` (the pick has the largest), so none carries over.
    """
    out: list[FileInfo] = []
    cur = start
    i = 0
    while target.txid is None or cur < target.txid:
        candidates: list[FileInfo] = []
        while i < len(ext) and ext[i].min_txid <= cur + 1:
            if ext[i].max_txid > cur:
                candidates.append(ext[i])
            i += 1
        if not candidates:
            break
        best = min(candidates, key=_rank)
        out.append(best)
        cur = best.max_txid
    return out


@attrs.frozen
class _Problem:
    """A listing prepared for one target."""

    levels: dict[int, list[FileInfo]]
    target: RestoreTarget
    is_full: Callable[[FileInfo], bool]
    admitted: list[FileInfo]
    ext: list[FileInfo]
    goal: int

    def end_from(self, start: int) -> int:
        chain = _extend(start, self.ext, self.target)
        return chain[-1].max_txid if chain else start


def _prepare(listing: Listing, target: RestoreTarget, full_images: FullImages) -> _Problem:
    """Check the listing against the target and compute the goal; raise when there is no hope."""
    levels = _normalize(listing)
    files = [f for lvl in sorted(levels) for f in levels[lvl]]
    if not files:
        raise NoBackupError("no matching backup files available: the replica holds no LTX files")
    top = max(f.max_txid for f in files)
    if target.txid is not None and target.txid > top:
        raise TxNotAvailableError(
            f"transaction not available: {_fmt(target.txid)} is past the end of the replica ({_fmt(top)})",
            txid=target.txid,
        )
    admitted = [f for f in files if target.admits(f)]
    if not admitted:
        if target.timestamp is not None:
            raise NoBackupError(
                "no matching backup files available: no file was created before "
                + target.timestamp.isoformat()
            )
        raise TxNotAvailableError(
            f"transaction not available: no backup file ends at or before {_fmt(target.txid or 0)}",
            txid=target.txid,
        )
    goal = target.txid if target.txid is not None else max(f.max_txid for f in admitted)
    ext = sorted((f for f in admitted if f.level in EXTENSION_LEVELS), key=lambda f: (f.min_txid, f.max_txid))
    return _Problem(levels, target, _full_image_predicate(full_images), admitted, ext, goal)


def _litestream_plan(p: _Problem) -> list[FileInfo]:
    """The plan ``CalcRestorePlan`` makes (possibly short of the goal, possibly empty)."""
    plan: list[FileInfo] = []
    snaps = [f for f in p.levels.get(SNAPSHOT_LEVEL, []) if p.target.admits(f) and p.is_full(f)]
    cur = 0
    if snaps:
        # the last in listing order; among full images, the one reaching furthest
        snap = max(enumerate(snaps), key=lambda e: (e[1].max_txid, e[0]))[1]
        plan.append(snap)
        cur = snap.max_txid
        if p.target.txid is not None and cur >= p.target.txid:
            return plan
    plan.extend(_extend(cur, p.ext, p.target))
    return plan


def _starts(p: _Problem) -> list[FileInfo]:
    return sorted((f for f in p.admitted if p.is_full(f)), key=_rank)


def _sizes_to_try(p: _Problem, size_of: SizeOf) -> list[int]:
    """Page sizes the plan may have, most likely first (empty: nothing is known).

    The state at the goal has one page size: the known size of a file ending there
    (the best-ranked one, should two disagree). Without one, every known size, the
    one seen latest first.
    """
    at_goal = sorted((f for f in p.admitted if f.max_txid == p.goal), key=_rank)
    for f in at_goal:
        size = size_of(f)
        if size is not None:
            return [size]
    latest: dict[int, int] = {}
    for f in p.admitted:
        size = size_of(f)
        if size is not None:
            latest[size] = max(latest.get(size, 0), f.max_txid)
    return sorted(latest, key=lambda n: (-latest[n], n))


def _restricted(p: _Problem, size_of: SizeOf, size: int) -> _Problem:
    """The same problem over the files of page size ``size`` or of unknown size."""

    def keep(f: FileInfo) -> bool:
        known = size_of(f)
        return known is None or known == size

    return attrs.evolve(
        p,
        levels={lvl: [f for f in files if keep(f)] for lvl, files in p.levels.items()},
        admitted=[f for f in p.admitted if keep(f)],
        ext=[f for f in p.ext if keep(f)],
    )


def _solve(p: _Problem, litestream: Sequence[FileInfo]) -> RestorePlan:
    """Litestream's rule, then every full image as a start; ``litestream`` is its plan on
    the whole listing (the result is ``litestream_compatible`` when equal to it)."""
    ls = _litestream_plan(p)
    if ls and ls[-1].max_txid == p.goal:
        return RestorePlan(tuple(ls), p.goal, p.target, tuple(ls) == tuple(litestream))
    starts = _starts(p)
    if not starts:
        first = min((f.min_txid for f in p.admitted), default=0)
        raise NoBackupError(
            "no matching backup files available: no snapshot or full database image at or before "
            f"{_fmt(p.goal)} (the earliest file starts at {_fmt(first)})"
        )
    reach = 0
    for s in starts:
        chain = _extend(s.max_txid, p.ext, p.target)
        end = chain[-1].max_txid if chain else s.max_txid
        if end == p.goal:
            return RestorePlan((s, *chain), p.goal, p.target, False)
        reach = max(reach, end)
    raise _failure(p, reach)


def _size_change_error(p: _Problem, size_of: SizeOf, size: int, first: RestorePlanError) -> RestorePlanError:
    """The error when no plan of page size ``size`` exists: a change without a full image
    of the new size if a plan ignoring page sizes exists (it must cross one), else ``first``."""
    try:
        across = _solve(p, ())
    except RestorePlanError:
        return first
    files = across.files
    other = [i for i, f in enumerate(files) if size_of(f) not in (None, size)]
    if not other:  # cannot happen: such a plan would be one of page size ``size``
        return first
    last_old = other[-1]
    old_size = size_of(files[last_old]) or 0
    at = files[min(last_old + 1, len(files) - 1)]
    return PageSizeChangeError(
        f"the page size changes from {old_size} to {size} bytes at L{at.level} {at.name}, and no "
        f"full image of {size}-byte pages at or after the change leads to {_fmt(p.goal)}: "
        "the file that should hold every page at the new size is missing or incomplete",
        old_size=old_size,
        new_size=size,
        level=at.level,
        txid=at.min_txid,
    )


def _failure(p: _Problem, reach: int) -> RestorePlanError:
    """The error for "no start reaches the goal; the best chain ends at ``reach``"."""
    beyond = [f for f in p.admitted if f.min_txid > reach + 1 and f.max_txid > reach]
    if beyond:
        nxt = min(f.min_txid for f in beyond)
        return NonContiguousError(
            f"non-contiguous ltx files: have up to {_fmt(reach)} but next file starts at {_fmt(nxt)}",
            have=reach,
            next_min=nxt,
            txid=nxt,
        )
    if p.target.txid is not None:
        return TxNotAvailableError(
            f"transaction not available: {_fmt(p.target.txid)} is not a file boundary "
            f"(the replica's files reach {_fmt(reach)}, then only past it)",
            txid=p.target.txid,
        )
    return NonContiguousError(
        f"non-contiguous ltx files: have up to {_fmt(reach)} but cannot reach {_fmt(p.goal)}",
        have=reach,
    )


def _candidates(p: _Problem) -> tuple[FileInfo, ...]:
    """Files not known to be full images that would give ``p`` a plan if they were, best first."""
    cands = [f for f in p.admitted if not p.is_full(f)]
    if not cands:
        return ()
    # The end reached from ``cur = t`` never decreases as ``t`` grows, so the useful
    # starts are exactly those whose max TXID is at least the smallest one that works.
    values = sorted({f.max_txid for f in cands})
    lo, hi = 0, len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        if p.end_from(values[mid]) >= p.goal:
            hi = mid
        else:
            lo = mid + 1
    if lo == len(values):
        return ()
    threshold = values[lo]
    return tuple(sorted((f for f in cands if f.max_txid >= threshold), key=_rank))


# --- public ---------------------------------------------------------------------------


def plan_restore(
    listing: Listing,
    target: RestoreTarget = LATEST,
    *,
    full_images: FullImages = None,
    page_sizes: PageSizes = None,
) -> RestorePlan:
    """The files that rebuild the database at ``target``, or a :class:`RestorePlanError`.

    ``listing`` maps levels 0..9 to their files (any order; ``FileInfo.level`` must match).
    ``full_images`` names files known to hold every page (a collection or a predicate);
    files with ``min_txid == 1`` always do. ``page_sizes`` gives the page sizes known
    from file headers (a mapping or a function returning None for unknown); the plan's
    known sizes are then all one, that of the state at the goal. See the module
    docstring for the rules.

    Raises :class:`NoBackupError` (empty replica; nothing created before the timestamp;
    no full image to start from), :class:`TxNotAvailableError` (TXID past the end, or not
    a file boundary), :class:`NonContiguousError` (a gap before the goal),
    :class:`PageSizeChangeError` (only a plan across a page-size change would reach it).
    """
    p = _prepare(listing, target, full_images)
    ls = _litestream_plan(p)
    size_of = _size_function(page_sizes)
    sizes = _sizes_to_try(p, size_of) if size_of is not None else []
    if size_of is None or not sizes:
        return _solve(p, ls)
    first: RestorePlanError | None = None
    for size in sizes:
        try:
            return _solve(_restricted(p, size_of, size), ls)
        except RestorePlanError as e:
            first = first or e
    assert first is not None
    raise _size_change_error(p, size_of, sizes[0], first)


def probe_candidates(
    listing: Listing,
    target: RestoreTarget = LATEST,
    *,
    full_images: FullImages = None,
    page_sizes: PageSizes = None,
) -> tuple[FileInfo, ...]:
    """Files that would let :func:`plan_restore` succeed if they were full images, best first.

    These are the admitted files not already known to be full images from which the
    greedy extension reaches the goal; the order is the order the planner prefers
    starts in (most recent first). With ``page_sizes``, only files of a size the plan
    may have (see :func:`plan_restore`) and extensions over such files count. Empty
    when no such file exists or the target is hopeless. Finding out whether a file is
    a full image needs its page index, so a caller probes these in order and stops at
    the first that is one.
    """
    try:
        p = _prepare(listing, target, full_images)
    except RestorePlanError:
        return ()
    size_of = _size_function(page_sizes)
    sizes = _sizes_to_try(p, size_of) if size_of is not None else []
    if size_of is None or not sizes:
        return _candidates(p)
    out: dict[FileInfo, None] = {}
    for size in sizes:
        out.update(dict.fromkeys(_candidates(_restricted(p, size_of, size))))
    return tuple(out)


def goal_files(listing: Listing, target: RestoreTarget = LATEST) -> tuple[FileInfo, ...]:
    """The admitted files that end at the goal, best first (empty when the target is hopeless).

    Their page size is the size of the state a plan must reach; a caller that reads it
    first lets :func:`plan_restore` choose the right page size from the start.
    """
    try:
        p = _prepare(listing, target, None)
    except RestorePlanError:
        return ()
    return tuple(sorted((f for f in p.admitted if f.max_txid == p.goal), key=_rank))
