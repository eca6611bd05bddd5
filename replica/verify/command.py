"""The command line's half of ``verify``: open the URL, verify, print, return the exit code."""

from __future__ import annotations

import json
import time
from typing import Any, TextIO

from replica.errors import StorageError
from replica.storage import open_replica_client
from replica.verify.progress import stderr_progress
from replica.verify.report import Finding, Severity, Status, VerifyReport
from replica.verify.verifier import verify_replica


def run(url: str, *, deep: bool, as_json: bool, out: TextIO, **client_options: Any) -> int:
    """Verify the replica at ``url``, print the report to ``out``, return the exit code.

    Text: one line per finding, then a summary line. JSON (``as_json``): one object,
    :meth:`VerifyReport.to_json`. Exit code 0 healthy, 1 damaged, 2 unreachable or not a
    replica (including a URL that cannot be parsed). ``client_options`` go to
    :func:`replica.storage.open_replica_client` (e.g. ``retry``). Progress goes to
    stderr when it is a terminal.
    """
    started = time.monotonic()
    try:
        client = open_replica_client(url, **client_options)
    except StorageError as e:
        report = VerifyReport(
            url,
            Status.NOT_A_REPLICA,
            (Finding(Severity.ERROR, None, None, None, f"not a replica URL: {e}", "storage"),),
            duration=time.monotonic() - started,
        )
    else:
        try:
            report = verify_replica(client, deep=deep, progress=None if as_json else stderr_progress())
        finally:
            client.close()
    if as_json:
        out.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        out.write(report.to_text())
    out.flush()
    return report.exit_code
