"""``python -m streams.sinks archive --days N``: move history older than N days from ClickHouse to Parquet.

Also ``show``: run a SHOW/COUNT query over the archive (DuckDB) or over ClickHouse (``--clickhouse``).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from streams.sinks.archive import ParquetArchive
from streams.sinks.clickhouse import DEFAULT_PATH, ClickHouseSink, SinkError

DEFAULT_ARCHIVE = DEFAULT_PATH.parent / "archive"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m streams.sinks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=str(DEFAULT_PATH), help=f"chdb directory (default {DEFAULT_PATH})")
    ap.add_argument("--url", help="a ClickHouse server (http://user:pass@host:8123/db) instead of chdb")
    ap.add_argument("--archive-dir", default=str(DEFAULT_ARCHIVE), help=f"Parquet root (default {DEFAULT_ARCHIVE})")
    sub = ap.add_subparsers(dest="command", required=True)
    arc = sub.add_parser("archive", help="move whole days older than --days out of ClickHouse into Parquet")
    arc.add_argument("--days", type=int, required=True, help="keep this many days in ClickHouse")
    arc.add_argument("--entity", action="append", help="only these entities (repeatable)")
    show = sub.add_parser("show", help="run a SHOW/COUNT query over history")
    show.add_argument("query")
    show.add_argument("--clickhouse", action="store_true", help="query ClickHouse instead of the archive")
    args = ap.parse_args(argv)
    try:
        if args.command == "archive":
            if args.days < 0:
                ap.error("--days must be 0 or more")
            sink = ClickHouseSink(path=args.data_dir, url=args.url)
            moved = sink.archive(ParquetArchive(args.archive_dir), args.days, now=datetime.now(UTC),
                                 entities=args.entity)
            for entity, rows in sorted(moved.items()):
                print(f"{entity}: {rows:,} rows moved to {args.archive_dir}")
            if not moved:
                print(f"nothing older than {args.days} days")
            return 0
        if args.clickhouse:
            table = ClickHouseSink(path=args.data_dir, url=args.url).show(args.query)
        else:
            table = ParquetArchive(args.archive_dir).show(args.query)
        print(table.to_pandas().to_string(index=False))
        return 0
    except (SinkError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # the compiler's errors carry their own caret diagnostics
        if type(e).__name__ == "SRQLError":
            print(str(e), file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())
