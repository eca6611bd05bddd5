"""One error root: every exception class the project defines derives from PyLitestreamError.

The only exceptions are not errors of the project: stand-ins for other people's errors
(a simulated crash, a network fault injected into a store, a short read that must look
like a connection error to the retry loop) and control flow that never reaches a caller
(a walk told to skip a folder, SIGTERM unwinding like Ctrl-C, a write abandoned inside
one client call, a verification stopping on a store error it carries). Catching those as
the project's own errors would hide what they stand for.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import ltx
import model
import replica
from ltx.errors import LTXError, PyLitestreamError
from replica.cli.errors import CommandError, UsageError
from replica.config import ConfigError, parse_config
from replica.errors import ReplicaError

NOT_ERRORS = {
    "model.adapters.SimulatedCrash",
    "model.stores.InjectedFault",
    "replica.storage.s3._ShortReadError",
    "replica._go.walk.SkipDir",
    "replica.cli.entry.Terminated",
    "replica.storage.local._Changed",
    "replica.verify.read.Abort",
}


def project_exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for pkg in (ltx, replica, model):
        names = [pkg.__name__] + [
            m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=pkg.__name__ + ".")
        ]
        for name in names:
            if name.endswith("__main__"):
                continue
            mod = importlib.import_module(name)
            for obj in vars(mod).values():
                if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == name:
                    found[f"{name}.{obj.__qualname__}"] = obj
    return found


def test_every_project_error_derives_from_the_root() -> None:
    classes = project_exception_classes()
    assert len(classes) > 40  # the walk found the hierarchy, not an empty set
    outside = sorted(n for n, c in classes.items() if not issubclass(c, PyLitestreamError))
    assert outside == sorted(NOT_ERRORS)


def test_ltx_replica_and_command_errors_are_siblings_under_the_root() -> None:
    for cls in (LTXError, ReplicaError, CommandError):
        assert cls.__mro__[1] is PyLitestreamError
    assert not issubclass(ReplicaError, LTXError)
    assert issubclass(UsageError, CommandError) and issubclass(ConfigError, ReplicaError)


def test_location_is_carried_and_printed() -> None:
    e = PyLitestreamError("bad", path="/r/ltx/0/a.ltx", level=0, txid=3)
    assert str(e) == "/r/ltx/0/a.ltx (level 0, txid 0000000000000003): bad"
    e2 = PyLitestreamError("bad", path="cfg.yml", line=4, key="dbs")
    assert str(e2) == "cfg.yml:4: dbs: bad"
    e3 = PyLitestreamError("bad").located(txid=5, level=1)
    assert (e3.txid, e3.level) == (5, 1) and e3.located(txid=9).txid == 5


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("dbs:\n  - path: /a.db\n    bogus: 1\n", "bogus", 3),
        ("logging:\n  level: 1\naddr: [1]\n", None, 3),
    ],
)
def test_config_errors_carry_key_and_line_but_print_litestreams_text(
    text: str, key: str | None, line: int
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert (info.value.key, info.value.line) == (key, line)
    assert str(info.value) == info.value.message  # Litestream's exact text, no location prefix


def test_load_config_records_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from replica.config import load_config

    cfg = tmp_path / "litestream.yml"
    cfg.write_text("dbs:\n  - path: /a.db\n    nope: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(cfg))
    assert info.value.path == str(cfg) and info.value.line == 3
