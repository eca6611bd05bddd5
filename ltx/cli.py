"""``python -m ltx``: the Go ``ltx`` tool's subcommands, flags and output.

Flags are spelled as the Go tool spells them (single dash: ``-db``, ``-o``,
``-tsv``). Exit status is 0 on success, 1 when a file is invalid or an
operation fails, 2 for usage errors; every failure names the file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from ltx import __version__
from ltx.database import apply_files, db_checksum_of_path, encode_db
from ltx.decoder import Decoder
from ltx.errors import LTXError, describe_os_error
from ltx.fsutil import atomic_write


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _rfc3339(ms: int, *, millis: bool) -> str:
    t = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    if millis:
        return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def cmd_version(_: argparse.Namespace, out: TextIO) -> int:
    print(f"ltx {__version__} (format version 3, python)", file=out)
    return 0


def cmd_checksum(args: argparse.Namespace, out: TextIO) -> int:
    print(f"{db_checksum_of_path(args.path):016x}", file=out)
    return 0


def cmd_encode_db(args: argparse.Namespace, out: TextIO) -> int:
    if os.path.exists(args.o) and os.path.samefile(args.o, args.path):
        raise LTXError("output path is the input database", path=args.o)
    with open(args.path, "rb") as db, atomic_write(args.o) as f:
        encode_db(db, f, timestamp=int(time.time() * 1000), no_checksum=args.no_checksum, path=args.path)
    return 0


def cmd_apply(args: argparse.Namespace, out: TextIO) -> int:
    apply_files(args.db, args.paths)
    return 0


def cmd_verify(args: argparse.Namespace, out: TextIO) -> int:
    bad = 0
    for p in args.paths:
        try:
            with open(p, "rb") as f:
                Decoder(f, path=p).verify()
        except (LTXError, OSError) as e:
            bad += 1
            print(f"{p}: {e.message if isinstance(e, LTXError) else e}", file=out)
    if bad == 0:
        print("ok", file=out)
        return 0
    print(f"{len(args.paths) - bad} ok, {bad} invalid", file=out)
    return 1


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    cols = ["min_txid", "max_txid", "commit", "pages", "preapply", "postapply", "timestamp",
            "wal_offset", "wal_size", "wal_salt"]  # fmt: skip
    rows: list[list[str]] = []
    failed = 0
    for p in args.paths:
        try:
            with open(p, "rb") as f:
                d = Decoder(f, path=p)
                t = d.verify()
        except (LTXError, OSError) as e:
            failed += 1
            print(f"{p}: {e.message if isinstance(e, LTXError) else e}", file=sys.stderr)
            continue
        h = d.header
        rows.append([
            f"{h.min_txid:016x}", f"{h.max_txid:016x}", str(h.commit), str(d.page_count),
            f"{h.pre_apply_checksum:016x}", f"{t.post_apply_checksum:016x}",
            _rfc3339(h.timestamp, millis=False) if h.timestamp else "",
            str(h.wal_offset), str(h.wal_size), f"{h.wal_salt1:08x}{h.wal_salt2:08x}",
        ])  # fmt: skip
    if args.tsv:
        for r in [cols, *rows]:
            print("\t".join(r), file=out)
    else:
        widths = [max(len(r[i]) for r in [cols, *rows]) for i in range(len(cols))]
        for r in [cols, *rows]:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip(), file=out)
    return 1 if failed else 0


def cmd_dump(args: argparse.Namespace, out: TextIO) -> int:
    with open(args.path, "rb") as f:
        d = Decoder(f, path=args.path)
        h = d.header
        print("# HEADER", file=out)
        print(
            f"Version:  3\nFlags:    0x{h.flags:08x}\nPageSize: {h.page_size}\nCommit:   {h.commit}", file=out
        )
        print(
            f"Min TXID: {h.min_txid:016x} ({h.min_txid})\nMax TXID: {h.max_txid:016x} ({h.max_txid})",
            file=out,
        )
        print(f"Timestamp: {_rfc3339(h.timestamp, millis=True)} ({h.timestamp})", file=out)
        print(f"Pre-apply: {h.pre_apply_checksum:016x}", file=out)
        print(f"WAL offset: {h.wal_offset}\nWAL size:   {h.wal_size}", file=out)
        print(f"WAL salt:   {h.wal_salt1:08x} {h.wal_salt2:08x}\nNode ID:    {h.node_id}\n", file=out)
        for i, (pgno, page) in enumerate(d):
            print(f"# PAGE FRAME {i}\nPgno: {pgno}", file=out)
            if not args.no_data:
                _hexdump(page, out)
            print(file=out)
        t = d.trailer
        assert t is not None
        print("# TRAILER", file=out)
        print(f"Post-apply: {t.post_apply_checksum:016x}\nFile checksum: {t.file_checksum:016x}", file=out)
    return 0


def _hexdump(data: bytes, out: TextIO) -> None:
    prev: bytes | None = None
    starred = False
    for off in range(0, len(data), 16):
        row = data[off : off + 16]
        if row == prev:
            if not starred:
                print("*", file=out)
                starred = True
            continue
        prev, starred = row, False
        hx = " ".join(f"{b:02x}" for b in row)
        txt = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        print(f"{off:08x}  {hx[:23]}  {hx[24:]:<23}  |{txt}|", file=out)
    print(f"{len(data):08x}", file=out)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ltx", description="Inspect, verify, build and apply LTX files.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    s = sub.add_parser("apply", help="apply LTX files to a database, creating it if needed")
    s.add_argument("-db", required=True, help="database path")
    s.add_argument("paths", nargs="+", metavar="FILE.ltx")
    s.set_defaults(run=cmd_apply)
    s = sub.add_parser("checksum", help="print the LTX checksum of a database file")
    s.add_argument("path", metavar="DB")
    s.set_defaults(run=cmd_checksum)
    s = sub.add_parser("dump", help="print every field and page of an LTX file")
    s.add_argument("-no-data", action="store_true", help="omit page hexdumps")
    s.add_argument("path", metavar="FILE.ltx")
    s.set_defaults(run=cmd_dump)
    s = sub.add_parser("encode-db", help="write a snapshot LTX file of a database")
    s.add_argument("-o", required=True, metavar="OUT", help="output LTX path")
    s.add_argument("-no-checksum", action="store_true", help="write a NoChecksum file, as Litestream does")
    s.add_argument("path", metavar="DB")
    s.set_defaults(run=cmd_encode_db)
    s = sub.add_parser("list", help="verify files and list their headers")
    s.add_argument("-tsv", action="store_true", help="tab-separated output")
    s.add_argument("paths", nargs="+", metavar="FILE.ltx")
    s.set_defaults(run=cmd_list)
    s = sub.add_parser("verify", help="verify files end to end")
    s.add_argument("paths", nargs="+", metavar="FILE.ltx")
    s.set_defaults(run=cmd_verify)
    s = sub.add_parser("version", help="print the version")
    s.set_defaults(run=cmd_version)
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args, out or sys.stdout))
    except LTXError as e:
        print(f"ltx {args.command}: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # before OSError, of which it is a kind
        sys.stderr.close()  # the reader went away (e.g. `| head`); nothing left to say
        return 0
    except OSError as e:
        print(f"ltx {args.command}: {describe_os_error(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
