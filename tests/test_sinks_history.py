"""History sinks: ClickHouse through real chdb, the Parquet archive through real DuckDB, and the archive move.

chdb allows one data directory per process and other test modules open their own, so the chdb scenario
runs in a child Python process (``python tests/test_sinks_history.py <dir>``) and this test asserts on
its exit status and output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from streams.catalog import CATALOG
from streams.engine import replay
from streams.simulate import Simulator
from streams.sinks import ClickHouseSink, ParquetArchive, SinkError

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
DAY = 86_400_000


def _logs_over_days(days: int = 4) -> pa.Table:
    """Syslog rows spread over the last ``days`` days (a few hundred per day)."""
    end = int(NOW.timestamp() * 1000)
    sim = Simulator(devices=20, seed=3, logs_per_second=2)
    parts = [sim.syslog(end - (d + 1) * DAY + 3_600_000, end - (d + 1) * DAY + 3_900_000) for d in range(days)]
    parts.append(sim.syslog(end - 600_000, end))
    return pa.concat_tables(parts)


def _sorted(t: pa.Table) -> pa.Table:
    return t.sort_by([(n, "ascending") for n in ("timestamp", "device", "message")])


def test_archive_round_trip_through_parquet_and_duckdb(tmp_path: Path):
    logs = _logs_over_days()
    archive = ParquetArchive(tmp_path / "arch")
    archive.write("logs", logs.slice(0, 500))
    archive.write("logs", logs.slice(500))
    assert len(archive.days("logs")) == 5
    back = archive.read("logs")
    assert back.schema == CATALOG["logs"].arrow_schema().remove_metadata() or back.num_rows == logs.num_rows
    assert _sorted(back.select(logs.column_names).cast(logs.schema)).equals(_sorted(logs))
    # SHOW over the archive (compiler's DuckDB SQL) equals the engine over the same rows
    query = "SHOW logs WHERE severity <= 4 GROUP BY device WINDOW 1h ORDER BY count DESC"
    got = archive.show(query)
    want = replay(query, {"logs": logs})
    key = ["window_start", "device"]
    got_rows = sorted(zip(*(got.column(c).cast(pa.int64()).to_pylist() if c == "window_start" else
                            got.column(c).to_pylist() for c in [*key, "count"]), strict=True))
    want_rows = sorted(zip(*(want.column(c).cast(pa.int64()).to_pylist() if c == "window_start" else
                             want.column(c).to_pylist() for c in [*key, "count"]), strict=True))
    assert got_rows == want_rows and len(got_rows) > 10
    count = archive.show("COUNT logs")
    assert count.column(0)[0].as_py() == logs.num_rows


def test_archive_of_nothing_says_so(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no logs data"):
        ParquetArchive(tmp_path).show("COUNT logs")


def test_unreachable_clickhouse_server_is_a_clear_error():
    with pytest.raises(SinkError, match="cannot reach ClickHouse"):
        ClickHouseSink(url="http://127.0.0.1:1")


def test_chdb_sink_and_archive_move(tmp_path: Path):
    proc = subprocess.run([sys.executable, __file__, str(tmp_path)], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["inserted"] == report["total"] > 0
    assert report["moved"] > 0 and report["left"] + report["moved"] == report["total"]
    assert report["second_archive_moved"] == 0
    # the archive command and SHOW over the archive, as a user runs them (a new process opens the same chdb)
    cli = [sys.executable, "-m", "streams.sinks", "--data-dir", str(tmp_path / "chdb"), "--archive-dir",
           str(tmp_path / "arch")]
    shown = subprocess.run([*cli, "show", "COUNT logs"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and shown.stdout.split()[-1] == str(report["moved"]), shown.stdout + shown.stderr
    moved = subprocess.run([*cli, "archive", "--days", "0"], capture_output=True, text=True, timeout=120)
    assert moved.returncode == 0 and ("rows moved" in moved.stdout or "nothing older" in moved.stdout), moved.stderr
    bad = subprocess.run([*cli, "show", "SHOW logz"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "logz" in bad.stderr


def _chdb_scenario(root: Path) -> dict:
    """Runs in a child process: the real chdb sink end to end."""
    sink = ClickHouseSink(path=root / "chdb")
    logs = _logs_over_days()
    inserted = sum(sink.insert("logs", logs.slice(i, 300)) for i in range(0, logs.num_rows, 300))
    assert sink.count("logs") == logs.num_rows
    ddl = sink.sql("SHOW CREATE TABLE syslog_stream").column(0)[0].as_py()
    assert "TTL toDateTime(timestamp) + toIntervalDay(90)" in ddl, ddl
    # stored rows come back identical
    stored = sink.sql("SELECT * FROM syslog_stream")
    assert _sorted(stored.cast(logs.schema)).equals(_sorted(logs))
    # SHOW compiled to ClickHouse SQL equals the engine over the same rows
    query = "SHOW logs WHERE severity <= 4 GROUP BY device WINDOW 1h"
    got, want = sink.show(query), replay(query, {"logs": logs})
    rows = lambda t: sorted(zip(t.column("window_start").cast(pa.int64()).to_pylist(),  # noqa: E731
                                t.column("device").to_pylist(), t.column("count").to_pylist(), strict=True))
    assert rows(got) == rows(want)
    # garbage in: a batch of the wrong shape is refused with a clear error, nothing half-written
    try:
        sink.insert("logs", pa.table({"nope": [1]}))
        raise AssertionError("wrong schema accepted")
    except SinkError as e:
        assert "does not match the logs schema" in str(e)
    try:
        sink.insert_results("x; DROP TABLE syslog_stream", pa.table({"a": [1]}))
        raise AssertionError("bad table name accepted")
    except SinkError:
        pass
    # engine results land in a result table
    res = replay("STREAM logs GROUP BY device WINDOW 1h", {"logs": logs})
    sink.insert_results("results_logs_hourly", res)
    assert sink.sql("SELECT count() AS n FROM results_logs_hourly").column("n")[0].as_py() == res.num_rows
    # archive: days older than 1 day leave ClickHouse for Parquet
    archive = ParquetArchive(root / "arch")
    moved = sink.archive(archive, older_than_days=1, now=NOW, entities=["logs"])
    left = sink.count("logs")
    cutoff = int((NOW - timedelta(days=1)).replace(hour=0, minute=0).timestamp() * 1000)
    old = logs.filter(pc.less(logs.column("timestamp").cast(pa.int64()), cutoff))
    assert moved.get("logs", 0) == old.num_rows
    assert _sorted(archive.read("logs").cast(logs.schema)).equals(_sorted(old))
    again = sink.archive(archive, older_than_days=1, now=NOW, entities=["logs"])
    # a chdb session of a second directory in the same process is refused clearly
    try:
        ClickHouseSink(path=root / "other")
        raise AssertionError("second chdb directory accepted")
    except SinkError as e:
        assert "one data directory" in str(e)
    return {"inserted": inserted, "total": logs.num_rows, "moved": moved.get("logs", 0), "left": left,
            "second_archive_moved": again.get("logs", 0)}


if __name__ == "__main__":
    print(json.dumps(_chdb_scenario(Path(sys.argv[1]))))
