"""The machine's restore rule: restores to TXIDs, to moments and to the latest state, checked.

Every restore must return exactly one of the states the model allows -- byte for byte,
or logically for replicators that write to the database -- and pass
``PRAGMA integrity_check``. A restore the model says is possible (the replica holds a
plan for it) must not fail, unless an injected storage fault fired during it; one to a
moment before every file must not succeed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Sequence

from model._checks import CheckingMachine
from model._hypothesis import precondition, rule, st
from model._machine_base import Discrepancy
from model.adapters import HarnessError, Target
from model.app import AppError
from model.replica import reachable
from model.retention import time_target
from model.sqlite import explain_difference, fingerprint, integrity_check
from model.state import Commit, DatabaseState, Sync


class RestoreRules(CheckingMachine):
    """The ``restore`` rule and the checks of what a restore returns."""

    @precondition(lambda self: self._fresh("restore", 4))
    @precondition(lambda self: self.options.restores)
    @rule(
        kind=st.sampled_from(["txid", "time", "latest"]),
        pick=st.integers(0, 2**16),
        where=st.sampled_from(["at", "after", "between"]),
    )
    def restore(self, kind: str, pick: int, where: str) -> None:
        """Restore to a recorded TXID, to a moment near one (``where``), or to the latest state
        (nothing while no TXID is recorded: the precondition must not depend on timing)."""
        self._step("restore", kind=kind, pick=pick, where=where)
        syncs = self.model.syncs
        if not syncs:
            return
        s = syncs[pick % len(syncs)]
        infos = self.observer.listing.all()
        if kind == "txid":
            self._restore(Target(txid=s.txid), [self.model.commits[s.seq]], s.txid in reachable(infos))
        elif kind == "time":
            self._restore_time(s, where)
        else:
            before = syncs[-1]

            def candidates() -> list[Commit]:
                if not self.explicit:
                    self._observe()
                return [self.model.commits[x.seq] for x in self.model.syncs if x.txid >= before.txid]

            self._restore(Target(), candidates, before.txid in reachable(infos))

    def _restore_time(self, s: Sync, where: str) -> None:
        syncs = self.model.syncs
        half_ms = dt.timedelta(microseconds=500)
        if where == "at":
            when = s.created_at
        else:
            later = sorted(x.created_at for x in syncs if x.created_at > s.created_at)
            if where == "after" or not later:
                when = s.created_at + half_ms
            else:
                when = s.created_at + (later[0] - s.created_at) / 2
        infos = self.observer.listing.all()
        target = time_target(infos, when)
        times = [i.created_at for i in infos]
        if target is not None:
            # The plan's end, as the listing stands (the newest TXID before ``when`` unless
            # retention coarsened it: the invariant checks that it did so only where allowed).
            # Litestream refuses moments outside the files' time span: not required then.
            expected = self.model.state_at_txid(target)
            must = bool(times) and min(times) <= when <= max(times)
            if must and self.options.listing_time_bounds:
                listed = self.observer.listing_times()
                must = bool(listed) and min(listed) <= when <= max(listed)
            self._restore(Target(time=when), [expected] if expected is not None else [], must)
        elif self.model.sync_at_time(when) is None:
            self._restore(Target(time=when), [], False)  # nothing was made before it
        else:
            # retention took the plan away (allowed before the reach window): anything the
            # database was at some TXID before ``when`` is acceptable
            older = [self.model.commits[x.seq] for x in syncs if x.created_at < when]
            self._restore(Target(time=when), older, False)

    def _restore(
        self, target: Target, expected: Sequence[Commit] | Callable[[], Sequence[Commit]], must: bool
    ) -> None:
        assert self.workdir is not None
        self.restores += 1
        out = os.path.join(self.workdir, f"restore-{self.restores}.db")
        fired = self._fired()
        try:
            self.adapter.restore(out, target)
        except (HarnessError, AppError, NotImplementedError):
            raise
        except Exception as e:
            if must and self._fired() == fired:
                raise Discrepancy(f"restore to {target} failed, but the replica holds it: {e}") from e
            return
        finally:
            data = b""
            if os.path.exists(out):
                with open(out, "rb") as f:
                    data = f.read()
            for suffix in ("", "-wal", "-shm", "-journal", "-txid", ".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(out + suffix)
        options = expected() if callable(expected) else expected
        if not options:
            raise Discrepancy(f"restore to {target} succeeded, but no file was created before that moment")
        ic = integrity_check(data)
        if ic != "ok":
            raise Discrepancy(f"restore to {target}: integrity_check says {ic}")
        ps = _page_size(data)
        fp = fingerprint(data)
        for c in options:
            try:
                state = DatabaseState.from_image(data, ps, like=c.state)
            except ValueError:  # not a whole number of pages of a valid size
                break
            if c.matches(state, fp, self.how):
                return
        best = options[-1]
        raise Discrepancy(
            f"restore to {target} returned a database that is not the model's commit {best.seq} "
            f"({best.label}): {explain_difference(best.state.image(), data)}"
        )


def _page_size(image: bytes) -> int:
    if len(image) < 100:
        return 0
    raw = int.from_bytes(image[16:18], "big")
    return 65536 if raw == 1 else raw
