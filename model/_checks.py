"""The machine's checks: after every step, the replica is read and compared with the model.

:meth:`CheckingMachine.agrees_with_model` is the machine's invariant. It lists the
replica, decodes and verifies new files, and checks the shape rules; that every new
TXID, replayed from the replica's own files, is a state the application really had
(exactly its state when the file was made for replicators synced on demand, one
between the previous TXID's and the moment the file was first seen for the others),
recording it in the model; that every compacted or snapshot file equals the state of
its last TXID; and the retention rules. The caught-up checks say whether the replica's
latest TXID holds the database's current state (after a sync or a graceful stop).
Every violation raises :class:`~model._machine_base.Discrepancy`.
"""

from __future__ import annotations

import time

from model._hypothesis import invariant
from model._machine_base import Discrepancy, MachineBase
from model.observe import ReplicaContentError
from model.replica import Replayed, apply_file, listing_problems
from model.retention import retention_problems
from model.sqlite import explain_difference, fingerprint, integrity_check
from model.state import Compare, ModelError


class CheckingMachine(MachineBase):
    """The invariant and the checks of the replica against the model."""

    @invariant()
    def agrees_with_model(self) -> None:
        self._check_alive()
        self._observe()

    def _check_alive(self) -> None:
        """A replicator that should be running and exited by itself is a discrepancy."""
        problem = self.adapter.alive_problem()
        if problem is not None:
            raise Discrepancy(f"{problem}\n{self.adapter.log_tail()}")

    def _observe(self) -> None:
        """Read the replica and check it against the model (see the module docstring)."""
        try:
            listing = self.observer.refresh()
        except ReplicaContentError as e:
            raise Discrepancy(str(e)) from None
        problems = listing_problems(listing.files)
        if problems:
            raise Discrepancy("replica layout: " + "; ".join(problems))
        cur = self.model.current.seq
        for t in self.adapter.local_l0_txids() | listing.ends:
            self.first_seen.setdefault(t, cur)
        recorded = set(self.model.txids)
        for t in sorted(listing.ends - recorded):
            self._identify(t)
        self._check_compacted()
        caps = self.adapter.capabilities
        problems = retention_problems(self.model, listing.all(), self.adapter.now(), caps.retention)
        if problems:
            raise Discrepancy("retention: " + "; ".join(problems))

    def _identify(self, txid: int) -> None:
        rep = self.observer.replay(txid)
        if rep is None:
            raise Discrepancy(f"TXID {txid:016x} is in the replica but no chain from a full image reaches it")
        if not rep.complete:
            shown = ", ".join(str(p) for p in sorted(rep.missing)[:8])
            raise Discrepancy(f"TXID {txid:016x}: pages {shown} are in no file of its chain")
        lo, hi = self.model.seq_bounds(txid)
        hi = min(hi, self.first_seen.get(txid, hi))
        if self.explicit:
            lo = max(lo, hi)
        fp = self.observer.fingerprint_of(txid) if self.how is Compare.LOGICAL else ""
        c = self.model.identify(rep.state, fp, lo, hi, self.how)
        if c is None:
            raise Discrepancy(self._explain(txid, rep, lo, hi))
        created = self.observer.created_at(txid)
        assert created is not None
        try:
            self.history = self.model.record_sync(txid, c.seq, created)
        except ModelError as e:
            raise Discrepancy(str(e)) from None

    def _explain(self, txid: int, rep: Replayed, lo: int, hi: int) -> str:
        exp = self.model.commit_at(max(lo, min(hi, self.model.current.seq)))
        window = f"commit {hi}" if lo >= hi else f"commits {lo}..{hi}"
        img = rep.state.image()
        msg = [
            f"TXID {txid:016x} holds a database the application never had at {window}",
            f"compared with commit {exp.seq} ({exp.label}): {explain_difference(exp.state.image(), img)}",
        ]
        if self.how is Compare.PAGES:
            diff = exp.state.differing_pages(rep.state)
            msg.append(f"differing pages: {diff[:12]}{' ...' if len(diff) > 12 else ''}")
        ic = integrity_check(img)
        if ic != "ok":
            msg.append(f"integrity_check of that state: {ic}")
        return "; ".join(msg)

    def _check_compacted(self) -> None:
        for (lv, lo, hi), f in sorted(self.observer.files.items()):
            if lv == 0 or (lv, lo, hi, f.content) in self.checked:
                continue
            expected = self.model.state_at_txid(hi)
            if expected is None:
                continue
            base = None if f.is_full_image or lo == 1 else self.observer.replay(lo - 1)
            if base is None and not (f.is_full_image or lo == 1):
                continue
            rep = apply_file(base, f)
            fp = fingerprint(rep.state.image()) if self.how is Compare.LOGICAL else ""
            if rep.missing or not expected.matches(rep.state, fp, self.how):
                raise Discrepancy(
                    f"{f.name} does not hold the state of TXID {hi:016x} (commit {expected.seq}): "
                    f"{explain_difference(expected.state.image(), rep.state.image())}"
                    + (f"; pages missing: {sorted(rep.missing)[:8]}" if rep.missing else "")
                )
            self.checked.add((lv, lo, hi, f.content))

    def _caught_up(self) -> bool:
        s = self.model.latest_sync
        cur = self.model.current
        return s is not None and self.model.commits[s.seq].matches(cur.state, cur.fingerprint, self.how)

    def _check_caught_up(self, when: str) -> None:
        if not self._caught_up():
            s = self.model.latest_sync
            cur = self.model.current
            if s is None:
                raise Discrepancy(f"{when}: the replica is empty, the database is at commit {cur.seq}")
            held = self.model.commits[s.seq]
            raise Discrepancy(
                f"{when}: the replica's latest TXID {s.txid:016x} holds commit {s.seq}, the database is at "
                f"commit {cur.seq} ({cur.label}): {explain_difference(cur.state.image(), held.state.image())}"
            )

    def _wait_caught_up(self, when: str) -> None:
        deadline = time.monotonic() + self.options.sync_timeout
        while True:
            self._observe()
            if self._caught_up():
                return
            self._check_alive()
            if time.monotonic() > deadline:
                self._check_caught_up(f"{when}: {self.options.sync_timeout:.0f}s later")
                return
            time.sleep(self.options.poll_interval)
