"""``python -m model conformance``: run the state machines against an implementation and report.

Implementations (``--impl``):

* ``python``: ours, in process (synced on demand, virtual clock, storage faults) and as a
  process (``python -m replica``);
* ``litestream``: the ``litestream`` binary on ``PATH``;
* anything else: a command template speaking Litestream's command line
  (:class:`model.adapters.CommandAdapter`): ``CMD replicate DB URL`` and
  ``CMD restore [-txid X | -timestamp T] -o OUT URL``; a word ``{args}`` in it marks
  where those arguments go.

Each implementation runs a few *suites* (option sets of the machine, from plain
replication to crashes around WAL restarts) on each store it supports (``file``,
``s3`` on a moto server started here, ``memory`` in process only). A suite passes when
Hypothesis finds no discrepancy in ``--examples`` runs; otherwise the report shows the
discrepancy and the shortest failing example Hypothesis found.

Exit status: 0 when every suite passed, 1 when a discrepancy was found, 2 when the
harness itself could not run (missing binary or package, a dead helper, a bug here).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import sys
import time
import traceback
from collections.abc import Iterator, Sequence

import attrs

from model._extra import missing

try:
    from hypothesis import HealthCheck, Phase, seed, settings
    from hypothesis.errors import Flaky, FlakyFailure
    from hypothesis.stateful import run_state_machine_as_test
except ModuleNotFoundError as e:
    raise missing(e, "python -m model conformance") from e

from model.adapters import (
    AdapterFactory,
    HarnessError,
    LitestreamAdapter,
    OursProcessAdapter,
    command,
    in_process,
    litestream_binary,
)
from model.app import AppError
from model.state import Compare
from model.stores import moto_server, s3_env
from model.testing import (
    Discrepancy,
    MachineOptions,
    StoreFactory,
    file_store,
    make_machine,
    memory_store,
    s3_store,
)

SUITES: dict[str, MachineOptions] = {
    "replication": MachineOptions(crashes=False, lose_meta=False, lose_replica=False, min_uptime=1.5),
    "quick-stops": MachineOptions(crashes=False, lose_meta=False, lose_replica=False),
    "lost-state": MachineOptions(crashes=False, min_uptime=1.5),
    "crashes": MachineOptions(wal_restart_after_crash=False, app_autocheckpoint=0, min_uptime=1.5),
    "crashes-and-checkpoints": MachineOptions(min_uptime=1.5),
}
"""What each suite lets the machine do.

* ``replication``: writes, schema changes, checkpoints of every mode, syncs, graceful
  stops and starts (after at least 1.5 s of uptime), restores (and, where the adapter
  supports them, compaction, retention, time passing and storage faults);
* ``quick-stops``: the same, but a stop may come right after a start;
* ``lost-state``: also starts after the meta directory or the replica's contents were lost;
* ``crashes``: also kills at arbitrary points, but the WAL never restarts while the
  replicator is dead (no application checkpoint then, no auto-checkpoint);
* ``crashes-and-checkpoints``: everything.
"""


@attrs.frozen
class Target:
    """One implementation to check: a name, an adapter factory and the stores it supports."""

    name: str
    factory: AdapterFactory
    stores: tuple[str, ...]


@attrs.frozen
class Outcome:
    """The result of one suite on one store."""

    impl: str
    suite: str
    store: str
    status: str
    """``passed``, ``failed`` (a discrepancy) or ``error`` (the harness could not run)."""
    seconds: float
    message: str = ""
    example: str = ""


def targets(impl: str, compare: Compare) -> list[Target]:
    """The adapters ``--impl`` names (raises :class:`HarnessError` for a missing binary)."""
    if impl == "python":
        return [
            Target("ours-inprocess", in_process(), ("file", "memory", "s3")),
            Target("ours-process", OursProcessAdapter, ("file", "s3")),
        ]
    if impl == "litestream":
        litestream_binary()
        return [Target("litestream", LitestreamAdapter, ("file", "s3"))]
    return [Target(f"command[{impl}]", command(impl, compare=compare), ("file", "s3"))]


def _example(err: BaseException) -> str:
    """The failing example: Hypothesis's (shrunk) one from the exception notes, else the
    steps the machine recorded when it was torn down (a failure Hypothesis could not replay)."""
    notes = getattr(err, "__notes__", None) or []
    lines = [n for n in notes if not n.startswith("You can reproduce")]
    text = "\n".join(lines).strip()
    if "Falsifying example:" in text:
        return text[text.index("Falsifying example:") + len("Falsifying example:") :].strip()
    steps = getattr(err, "steps", None)
    if isinstance(err, Discrepancy) and steps:
        return "\n".join(steps) + "\n(as run; not shrunk: the failure did not replay reliably)"
    return ""


def _classify(err: BaseException) -> tuple[str, str, str]:
    """(status, message, example) of what a suite raised."""
    if isinstance(err, Discrepancy):
        return "failed", str(err), _example(err)
    if isinstance(err, BaseExceptionGroup):
        found = [e for e in err.exceptions if isinstance(e, Discrepancy)]
        if found:
            flaky = " (did not reproduce reliably)" if isinstance(err, FlakyFailure) else ""
            first = min(found, key=lambda e: len(_example(e)) or 10**9)
            return "failed", f"{first}{flaky}", _example(first) or _example(err)
    if isinstance(err, HarnessError | AppError):
        return "error", f"{type(err).__name__}: {err}", _example(err)
    if isinstance(err, Flaky):
        return "flaky", f"{type(err).__name__}: {str(err).splitlines()[0]}", ""
    tb = "".join(traceback.format_exception(err)[-6:])
    return "error", f"{type(err).__name__}: {err}\n{tb}", _example(err)


@contextlib.contextmanager
def _shrink_budget(seconds: float) -> Iterator[None]:
    """Bound Hypothesis's shrinking (an internal knob; ignored if it moved)."""
    try:
        from hypothesis.internal.conjecture import engine
    except ImportError:  # pragma: no cover
        yield
        return
    old = getattr(engine, "MAX_SHRINKING_SECONDS", None)
    if old is None:
        yield
        return
    engine.MAX_SHRINKING_SECONDS = int(seconds)
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = old


def run_suite(
    target: Target,
    suite: str,
    store_kind: str,
    store: StoreFactory,
    *,
    examples: int,
    steps: int,
    seed_value: int | None,
    shrink_seconds: float,
    listing_time_bounds: bool = False,
) -> Outcome:
    """Run one suite; never raises (everything becomes an :class:`Outcome`)."""
    options = attrs.evolve(SUITES[suite], listing_time_bounds=listing_time_bounds)
    words = f"{target.name} {suite} {store_kind}".replace("-", " ").replace("[", " ").split()
    name = "".join(w[:1].upper() + w[1:] for w in words if w.isalnum())
    machine = make_machine(target.factory, store, options, name=name)
    if seed_value is not None:
        machine = seed(seed_value)(machine)
    phases = [Phase.generate, Phase.shrink] if shrink_seconds > 0 else [Phase.generate]
    s = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    started = time.monotonic()
    status, message, example = "passed", "", ""
    for attempt in (1, 2):
        try:
            with _shrink_budget(shrink_seconds):
                run_state_machine_as_test(machine, settings=s)  # type: ignore[no-untyped-call]
            break
        except BaseException as err:
            if isinstance(err, KeyboardInterrupt):
                raise
            status, message, example = _classify(err)
        if status != "flaky" or attempt == 2:
            break
        # A timing-dependent failure broke Hypothesis's replay while shrinking: run the same
        # examples again without shrinking, to report the failure itself.
        s = settings(s, phases=[Phase.generate])
    if status == "flaky":
        status = "error"
        message += " (the implementation behaved differently on a replay, twice; no failure to show)"
    return Outcome(target.name, suite, store_kind, status, time.monotonic() - started, message, example)


def render(outcomes: Sequence[Outcome], header: str) -> str:
    """A Markdown report of ``outcomes``."""
    lines = [
        header,
        "",
        "| implementation | suite | store | result | time |",
        "| --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        lines.append(f"| {o.impl} | {o.suite} | {o.store} | {o.status} | {o.seconds:.0f} s |")
    for o in outcomes:
        if o.status == "passed":
            continue
        lines += ["", f"### {o.impl} / {o.suite} / {o.store}: {o.status}", "", "```text", o.message.strip()]
        if o.example:
            lines += ["", "shortest failing example:", o.example]
        lines.append("```")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model conformance", description=__doc__.split("\n\n")[0])
    p.add_argument("--impl", required=True, help="python, litestream, or a command template (see docs)")
    p.add_argument("--examples", type=int, default=10, help="Hypothesis examples per suite and store")
    p.add_argument("--steps", type=int, default=20, help="steps per example")
    p.add_argument("--stores", default=None, help="comma-separated: file,s3,memory (default: all supported)")
    p.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated from {', '.join(SUITES)}")
    p.add_argument("--seed", type=int, default=None, help="fixed Hypothesis seed")
    p.add_argument("--shrink-seconds", type=float, default=180.0, help="shrinking budget per failing suite")
    p.add_argument(
        "--compare", choices=["logical", "pages"], default="logical", help="for a command template"
    )
    p.add_argument(
        "--listing-time-bounds",
        action="store_true",
        help="require restores to moments only inside the span of the store's listing times "
        "(Litestream's bound; on S3 LastModified in whole seconds) instead of the LTX times",
    )
    p.add_argument("--report", default=None, help="also write the Markdown report to this file")
    args = p.parse_args(argv)

    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    for noisy in ("replica", "werkzeug", "moto", "botocore", "s3fs"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    try:
        chosen = targets(args.impl, Compare(args.compare))
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        print(f"error: unknown suite(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    wanted = None if args.stores is None else {s.strip() for s in args.stores.split(",")}

    outcomes: list[Outcome] = []
    with contextlib.ExitStack() as stack:
        endpoint: str | None = None
        if any("s3" in t.stores for t in chosen) and (wanted is None or "s3" in wanted):
            try:
                endpoint = stack.enter_context(moto_server()).endpoint
                os.environ.update(s3_env())
            except Exception as e:
                print(f"error: cannot start the moto S3 server: {e}", file=sys.stderr)
                return 2
        for t in chosen:
            for kind in t.stores:
                if wanted is not None and kind not in wanted:
                    continue
                factory: StoreFactory
                if kind == "file":
                    factory = file_store
                elif kind == "memory":
                    factory = memory_store
                else:
                    assert endpoint is not None
                    factory = s3_store(endpoint)
                for suite in suites:
                    print(f"{t.name} / {suite} / {kind}: running {args.examples} examples ...", flush=True)
                    o = run_suite(
                        t,
                        suite,
                        kind,
                        factory,
                        examples=args.examples,
                        steps=args.steps,
                        seed_value=args.seed,
                        shrink_seconds=args.shrink_seconds,
                        listing_time_bounds=args.listing_time_bounds,
                    )
                    outcomes.append(o)
                    print(f"  {o.status.upper()} in {o.seconds:.0f} s", flush=True)
                    if o.status != "passed":
                        print("  " + o.message.strip().replace("\n", "\n  "), flush=True)
                        if o.example:
                            print(
                                "  shortest failing example:\n    " + o.example.replace("\n", "\n    "),
                                flush=True,
                            )
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"Conformance of `{args.impl}`: {args.examples} examples x {args.steps} steps per suite and store "
        f"({now}{', seed ' + str(args.seed) if args.seed is not None else ''}"
        f"{', listing time bounds' if args.listing_time_bounds else ''})"
    )
    report = render(outcomes, header)
    print()
    print(report)
    if args.report:
        with open(args.report, "w") as f:
            f.write(report)
    if any(o.status == "error" for o in outcomes):
        return 2
    return 1 if any(o.status == "failed" for o in outcomes) else 0
