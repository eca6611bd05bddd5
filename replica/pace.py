"""When a database's next sync and upload run: pure values, times in monotonic seconds.

:class:`SyncPace` is the monitor's whole timing rule (the runtime performs it,
``replica/daemon.py`` feeds it what each sync found):

* a change that is notified is synced at once, unless the last sync that wrote an L0
  file began less than ``gap`` ago: then when that gap is over. ``gap`` is the smaller
  of ``sync-interval`` and ``monitor-interval``, so under sustained writes there is one
  L0 file, and one upload, per gap, while the first commit after a quiet gap is synced
  and shipped at once (the "leading edge");
* without a notification, the database is polled ``monitor-interval`` after the last
  sync ended, or every ``recheck`` seconds (at least ``monitor-interval``) while the
  kernel notifies its changes: polling is then only the safety net;
* polls that find nothing do not count toward the gap;
* after a failure the next attempt waits the backoff, which starts at
  ``monitor-interval`` (at least 50 ms) and doubles up to ``max_backoff``; a change
  notified meanwhile waits for it too.

:class:`Backoff` is the uploader's: a failure waits ``base``, doubling up to the maximum.
"""

from __future__ import annotations

import enum
import math

import attrs

MIN_BACKOFF = 0.05
"""The shortest wait after a failure, whatever the interval (seconds)."""


class Outcome(enum.Enum):
    """What one round of the monitor found."""

    WROTE = "wrote"
    """An L0 file was written (or the database was opened, which writes its first one)."""
    NOTHING = "nothing"
    """Nothing new was committed."""
    ABSENT = "absent"
    """The database does not exist (yet)."""
    FAILED = "failed"
    """The round raised."""


@attrs.frozen
class Backoff:
    """Consecutive failures and the wait they earn."""

    base: float
    maximum: float
    failures: int = 0

    def delay(self) -> float:
        """The wait after the latest failure (``base`` when there was none)."""
        doublings = min(max(self.failures - 1, 0), 64)
        return min(max(self.base, MIN_BACKOFF) * 2.0**doublings, max(self.maximum, MIN_BACKOFF))

    def failed(self) -> Backoff:
        return attrs.evolve(self, failures=self.failures + 1)

    def ok(self) -> Backoff:
        return self if not self.failures else attrs.evolve(self, failures=0)


@attrs.frozen
class SyncPace:
    """The monitor's timing state; see the module docstring."""

    poll: float
    """``monitor-interval``: the longest wait for a poll when nothing is notified."""
    min_gap: float
    """The least time between the starts of two syncs that write an L0 file."""
    recheck: float
    """The safety-net poll while the kernel notifies changes (never below ``poll``)."""
    backoff: Backoff
    last: float = -math.inf
    """When the last sync that wrote an L0 file, or failed, began."""

    @classmethod
    def new(
        cls, monitor_interval: float, sync_interval: float, recheck: float, max_backoff: float
    ) -> SyncPace:
        return cls(
            poll=monitor_interval,
            min_gap=min(sync_interval, monitor_interval),
            recheck=max(recheck, monitor_interval),
            backoff=Backoff(monitor_interval, max_backoff),
        )

    @property
    def gap(self) -> float:
        """The current least time between syncs: ``min_gap``, or the backoff after a failure."""
        return self.backoff.delay() if self.backoff.failures else self.min_gap

    def when_changed(self, now: float) -> float:
        """When a change notified at ``now`` is synced."""
        return max(now, self.last + self.gap)

    def after(
        self, began: float, ended: float, outcome: Outcome, *, notified: bool
    ) -> tuple[SyncPace, float]:
        """The state after a round that began and ended then, and when the next poll is due.

        ``notified``: the kernel notifies this database's changes, so the poll is the
        slow safety net.
        """
        if outcome is Outcome.FAILED:
            pace = attrs.evolve(self, last=began, backoff=self.backoff.failed())
            return pace, ended + pace.gap
        last = began if outcome is Outcome.WROTE else self.last
        pace = attrs.evolve(self, last=last, backoff=self.backoff.ok())
        return pace, ended + (self.recheck if notified else self.poll)
