"""The embedded engine on the SRQL use cases against DuckDB computing the same result in one query.

gNMI: ``STREAM devices WHERE metric = 'latency' GROUP BY device, metric WINDOW 1m HAVING avg_value > 100``
over 10,000 devices x 10 metrics, one sample per series per second, pushed as one batch per second of
event time. The engine sees the batches one by one (as a stream, closing each minute as time passes);
DuckDB (one thread, like the engine) gets all of the same in-memory Arrow data at once and runs the
equivalent GROUP BY. Both rates are events of input per second of wall time. RSS is measured in a
separate process over a long run with data generated on the fly (the input is not held in memory).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa

from benchmarks import Result, best_of

GNMI_QUERY = "STREAM devices WHERE metric = 'latency' GROUP BY device, metric WINDOW 1m HAVING avg_value > 100"
GNMI_SQL = """SELECT to_timestamp((epoch_ms("timestamp") // 60000) * 60 ) AS window_start, device, metric,
       avg(value) AS avg_value
FROM data WHERE metric = 'latency' GROUP BY ALL HAVING avg(value) > 100"""
SYSLOG_QUERY = ("STREAM logs WHERE message CONTAINS 'Failed password for root' GROUP BY device WINDOW 5m "
                "HAVING login_attempts >= 5")
SYSLOG_SQL = """SELECT (epoch_ms("timestamp") // 300000) AS w, device, count(*) AS login_attempts
FROM data WHERE contains(message, 'Failed password for root') GROUP BY ALL HAVING count(*) >= 5"""
BGP_QUERY = "STREAM flows WHERE action IN ('announce', 'withdraw') GROUP BY prefix WINDOW 5m HAVING flap_count > 10"
BGP_SQL = """SELECT (epoch_ms("timestamp") // 300000) AS w, prefix, count(*) AS flap_count
FROM data WHERE action IN ('announce', 'withdraw') GROUP BY ALL HAVING count(*) > 10"""

# An un-windowed aggregate: the engine keeps one partial row per group and emits each batch's groups.
RUNNING_QUERY = ("STREAM device, count() AS n, avg(value) AS a, max(value) AS mx FROM metrics "
                 "WHERE metric = 'latency' GROUP BY device EMIT ON UPDATE")
RUNNING_SQL = """SELECT device, count(*) AS n, avg(value) AS a, max(value) AS mx
FROM data WHERE metric = 'latency' GROUP BY ALL"""

METRICS = ["latency", "cpu", "memory", "in_octets", "out_octets", "in_errors", "out_errors", "temperature",
           "jitter", "loss"]


def gnmi_ticks(devices: int, seconds: int, start_ms: int = 1_764_000_000_000):
    """One batch per second of event time: every (device, metric) series reports once."""
    from streams.catalog import CATALOG

    schema = CATALOG["metrics"].arrow_schema()
    n = devices * len(METRICS)
    device = pa.array([f"dev{i:05d}" for i in range(devices)]).take(np.repeat(np.arange(devices), len(METRICS)))
    metric = pa.array(METRICS).take(np.tile(np.arange(len(METRICS)), devices))
    rng = np.random.default_rng(1)
    values = [pa.array(rng.gamma(2.0, 30.0, n)) for _ in range(8)]  # reused: input generation is not timed
    nulls_s = pa.nulls(n, pa.string())
    labels = pa.nulls(n, pa.map_(pa.string(), pa.string()))
    deleted = pa.array(np.zeros(n, bool))
    for s in range(seconds):
        ts = pa.array(np.full(n, start_ms + s * 1000, np.int64)).cast(pa.timestamp("ms", tz="UTC"))
        yield pa.Table.from_arrays([ts, device, metric, values[s % 8], nulls_s, labels, deleted], schema=schema)


def _engine_rate(query: str, entity: str, batches: list[pa.Table]) -> tuple[float, int, int, int]:
    """Events/s of ``query`` over ``batches`` (best of 3), with its result rows (all emitted, and those of
    the final ``finish``) and its largest state in rows."""
    from streams.engine import QueryRunner
    from streams.engine.replay import to_plan

    plan = to_plan(query)
    rows = final = state = 0

    def go():
        nonlocal rows, final, state
        runner = QueryRunner(plan)
        out = []
        for b in batches:
            out += runner.push(entity, b)
            state = max(state, runner.state_rows)
        last = runner.finish()
        rows, final = sum(t.num_rows for t in out + last), sum(t.num_rows for t in last)

    events = sum(b.num_rows for b in batches)
    return events / best_of(go, 3), rows, final, state


def _duckdb_rate(sql: str, batches: list[pa.Table]) -> tuple[float, int]:
    data = pa.concat_tables(batches)  # zero-copy: the same buffers the engine read
    import duckdb  # here, not at the top: the RSS child imports this module and must not load DuckDB

    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.register("data", data)
    rows = 0

    def go():
        nonlocal rows
        rows = len(con.execute(sql).fetchall())

    return data.num_rows / best_of(go, 3), rows


def _syslog_batches(n: int, per_batch: int = 50_000) -> list[pa.Table]:
    from streams.simulate import syslog_batches

    return list(syslog_batches(n, per_batch))


def _bgp_batches(n: int, per_batch: int = 50_000) -> list[pa.Table]:
    from streams.simulate import bgp_batches

    return list(bgp_batches(n, per_batch))


# The child is set up like the daemons that host the engine (serviceradar-ingest --engine): pandas refused.
RSS_CHILD = """
import json, sys, time
from streams.lean import refuse_pandas
refuse_pandas()
from benchmarks.bench_engine import gnmi_ticks, GNMI_QUERY
from streams.engine import QueryRunner
from streams.engine.replay import to_plan
runner = QueryRunner(to_plan(GNMI_QUERY))
events = 0
max_state = 0
t0 = time.perf_counter()
for b in gnmi_ticks(10_000, int(sys.argv[1])):
    runner.push("metrics", b)
    events += b.num_rows
    max_state = max(max_state, runner.state_bytes)
runner.finish()
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forked parent
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"events": events, "seconds": time.perf_counter() - t0, "rss_mb": hwm / 1024,
                  "max_state_mb": max_state / 2**20}))
"""


def _rss_run(seconds: int) -> dict:
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(seconds)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool) -> list[Result]:
    seconds = 12 if quick else 120  # x 100,000 events per second of event time
    batches = list(gnmi_ticks(10_000, seconds))
    ours, rows_e, _, _ = _engine_rate(GNMI_QUERY, "metrics", batches)
    base, rows_d = _duckdb_rate(GNMI_SQL, batches)
    assert rows_e == rows_d, f"engine gave {rows_e} rows, DuckDB {rows_d}"
    results = [Result("engine", f"gNMI use case, 10k devices x 10 metrics ({len(batches) * 100_000:,} events)",
                      "events/s", ours, "DuckDB 1 thread, one query", base,
                      ">= 10M events/s and >= 0.5x DuckDB", f"{rows_e} result rows both")]
    ours, _, groups, state = _engine_rate(RUNNING_QUERY, "metrics", batches)
    base, rows_d = _duckdb_rate(RUNNING_SQL, batches)
    assert groups == rows_d, f"engine gave {groups} groups, DuckDB {rows_d}"
    results.append(Result("engine", f"gNMI running GROUP BY device, EMIT ON UPDATE per batch ({len(batches)} batches)",
                          "events/s", ours, "DuckDB 1 thread, one query", base, "report",
                          f"{groups} groups both; engine state at most {state:,} rows (one per group)"))
    n = 1_000_000 if quick else 10_000_000
    for name, query, sql, entity, make in (
        ("syslog SSH brute force", SYSLOG_QUERY, SYSLOG_SQL, "logs", _syslog_batches),
        ("BGP flapping prefixes", BGP_QUERY, BGP_SQL, "bgp", _bgp_batches),
    ):
        data = make(n)
        ours, rows_e, _, _ = _engine_rate(query, entity, data)
        base, rows_d = _duckdb_rate(sql, data)
        results.append(Result("engine", f"{name} ({n:,} events)", "events/s", ours, "DuckDB 1 thread, one query",
                              base, "report", f"{rows_e} / {rows_d} result rows"))
    long_seconds = 50 if quick else 3600  # 5M events / one hour of 10,000 devices (360M events): the target's run
    t0 = time.perf_counter()
    rss = _rss_run(long_seconds)
    results.append(Result("engine", f"gNMI long run, {rss['events']:,} events, peak RSS", "MB", rss["rss_mb"],
                          target="< 256 MB", higher_is_better=False,
                          note=f"state peak {rss['max_state_mb']:.1f} MB; {time.perf_counter() - t0:.0f} s"))
    return results
