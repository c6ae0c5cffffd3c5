"""The ``srql`` command: the REPL, ``compile``, ``ddl`` and the demo (the main job).

    srql                                   open the REPL
    srql compile [--target T] [--proton-version V] [--mv NAME --into SINK] QUERY
    srql ddl --target proton|clickhouse|duckdb [ENTITY ...]
    srql demo [OPTIONS]                    the main job on embedded defaults
    srql archive --days N | show QUERY     move old history to Parquet / query the archive
"""

from __future__ import annotations

import argparse
import sys

from srql_compiler.api import SINK_KINDS, TARGETS, compile
from srql_compiler.errors import SRQLError


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="srql", description="SRQL: compile, explore and run telemetry queries.")
    sub = ap.add_subparsers(dest="command")

    c = sub.add_parser("compile", help="compile a query and print the SQL")
    c.add_argument("query", help="the SRQL query (quote it)")
    c.add_argument("--target", "-t", choices=TARGETS, default="proton")
    c.add_argument("--proton-version", choices=("3", "1.6"), default="3", help="EMIT spelling (default 3)")
    c.add_argument("--mv", metavar="NAME", help="wrap the STREAM in CREATE MATERIALIZED VIEW NAME")
    c.add_argument("--into", metavar="SINK", help="the materialized view's sink")
    c.add_argument("--sink", choices=SINK_KINDS, default="adapter",
                   help="what SINK is: the local adapter (timeplus external stream, default), a ClickHouse "
                        "external table, or an existing stream")
    c.add_argument("--sink-address", metavar="HOST:PORT", help="the sink's address (adapter 127.0.0.1:8080)")
    c.add_argument("--archive", metavar="DIR", help="duckdb target: read the Parquet archive under DIR")
    c.add_argument("--pretty", action="store_true", help="indent the SQL")
    c.add_argument("--explain", action="store_true", help="also print the plan")

    d = sub.add_parser("ddl", help="print CREATE statements generated from the catalog")
    d.add_argument("entities", nargs="*", metavar="ENTITY", help="entity names or aliases (default: all)")
    d.add_argument("--target", "-t", choices=TARGETS, default="proton")
    d.add_argument("--ttl-days", type=int, default=None, help="TTL in days (clickhouse default 90; proton none)")

    demo = sub.add_parser("demo", help="run the main job on embedded defaults")
    demo.add_argument("args", nargs=argparse.REMAINDER)

    arch = sub.add_parser("archive", help="move history older than N days to Parquet, or query the archive")
    arch.add_argument("args", nargs=argparse.REMAINDER)

    r = sub.add_parser("repl", help="open the REPL (the default)")
    r.add_argument("args", nargs=argparse.REMAINDER)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # These have options of their own (argparse.REMAINDER would drop the leading '-' ones): pass them through.
    if argv and argv[0] == "repl":
        from srql_compiler.repl import main as repl_main

        return repl_main(argv[1:])
    if argv and argv[0] == "demo":
        from streams.demo import main as demo_main

        return demo_main(argv[1:])
    if argv and argv[0] == "archive":
        from streams.sinks.__main__ import main as archive_main

        return archive_main(archive_argv(argv[1:]))
    args = _parser().parse_args(argv)
    if args.command in (None, "repl"):
        from srql_compiler.repl import main as repl_main

        return repl_main(getattr(args, "args", []) or [])
    if args.command == "compile":
        return _compile(args)
    if args.command == "ddl":
        return _ddl(args)
    if args.command == "demo":
        from streams.demo import main as demo_main

        return demo_main(args.args)
    return 2


_ARCHIVE_STORE_OPTIONS = ("--data-dir", "--url", "--archive-dir")


def archive_argv(args: list[str]) -> list[str]:
    """``srql archive [--data-dir D] --days N`` / ``srql archive show Q`` in ``python -m streams.sinks`` order:
    the store options first, then the sub-command (``archive`` unless ``show`` is given)."""
    store, rest = [], []
    it = iter(args)
    for a in it:
        if a.split("=", 1)[0] in _ARCHIVE_STORE_OPTIONS:
            store += [a] if "=" in a else [a, next(it, "")]
        else:
            rest.append(a)
    command = [] if rest[:1] in (["show"], ["archive"]) else ["archive"]
    return store + command + rest


def _compile(args: argparse.Namespace) -> int:
    try:
        out = compile(
            args.query, args.target, proton_version=args.proton_version, mv=args.mv, into=args.into,
            sink=args.sink, sink_address=args.sink_address, archive=args.archive, pretty=args.pretty,
        )
    except SRQLError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for w in out.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(out.sql + ";")
    if args.explain:
        print(f"-- plan: {out.plan}", file=sys.stderr)
    return 0


def _ddl(args: argparse.Namespace) -> int:
    from streams.catalog import CATALOG
    from streams.ddl import ddl

    entities = []
    for name in args.entities:
        found = CATALOG.candidates(name)
        if not found:
            print(f"error: unknown entity {name!r}; known: {', '.join(CATALOG.all_names())}", file=sys.stderr)
            return 1
        entities.append(found[0])
    options = {"ttl_days": args.ttl_days} if args.ttl_days is not None and args.target != "duckdb" else {}
    for stmt in ddl(args.target, entities or None, **options):
        print(stmt + ";\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
