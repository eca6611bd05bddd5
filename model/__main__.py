"""``python -m model conformance ...`` (see :mod:`model.conformance`)."""

import sys

from model._extra import MissingExtraError


def _run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m model conformance --impl python|litestream|CMD [--examples N] ...")
        print("       python -m model conformance --help")
        return 0 if argv else 2
    if argv[0] != "conformance":
        print(f"unknown command {argv[0]!r} (try: conformance)", file=sys.stderr)
        return 2
    try:
        from model.conformance import main

        return main(argv[1:])
    except MissingExtraError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


sys.exit(_run(sys.argv[1:]))
