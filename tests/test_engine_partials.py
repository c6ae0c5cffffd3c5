"""Un-windowed aggregates keep one partial row per group (``streams/engine/partials.py``), not their input
(count_distinct: the distinct pairs).

Differential: after every pushed batch, the groups an ``EMIT ON UPDATE`` query emits must equal DuckDB's
aggregate over every event so far (restricted to the groups that batch touched), and the final value
DuckDB's over all events; the state must hold one row per group whatever the input length.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_engine_differential import _batches, _events, _same, event

from streams.catalog import CATALOG
from streams.engine import QueryRunner
from streams.engine.replay import to_plan

MEASURES_SRQL = ("count() AS n, count(value) AS nv, sum(value) AS s, avg(value) AS a, min(value) AS mn, "
                 "max(value) AS mx, first(value) AS f, last(value) AS l, count_distinct(value) AS cd")
MEASURES_SQL = ("count(*), count(value), sum(value), avg(value), min(value), max(value), "
                "first(value ORDER BY ts, seq) FILTER (WHERE value IS NOT NULL), "
                "last(value ORDER BY ts, seq) FILTER (WHERE value IS NOT NULL), count(DISTINCT value)")


def _query(grouped: bool, filtered: bool) -> str:
    where = "WHERE metric = 'latency'" if filtered else ""
    if grouped:
        return f"STREAM device, {MEASURES_SRQL} FROM metrics {where} GROUP BY device EMIT ON UPDATE"
    return f"STREAM {MEASURES_SRQL} FROM metrics {where} EMIT ON UPDATE"


def _reference(con: duckdb.DuckDBPyConnection, upto: int, grouped: bool, filtered: bool,
               devices: set[str] | None) -> list[tuple]:
    conds = [f"seq < {upto}"] + (["metric = 'latency'"] if filtered else [])
    if devices is not None:
        conds.append("device IN (" + ", ".join(f"'{d}'" for d in sorted(devices)) + ")")
    where = " AND ".join(conds)
    if grouped:
        sql = f"SELECT device, {MEASURES_SQL} FROM ev WHERE {where} GROUP BY device ORDER BY device"
    else:
        sql = f"SELECT {MEASURES_SQL} FROM ev WHERE {where}"
    return con.execute(sql).fetchall()


def _rows(tables: list[pa.Table]) -> list[tuple]:
    rows = [r for t in tables for r in zip(*(c.to_pylist() for c in t.columns), strict=True)]
    return sorted(rows, key=lambda r: str(r[0]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=st.lists(event, min_size=1, max_size=60), cuts=st.lists(st.integers(1, 12), max_size=12),
       grouped=st.booleans(), filtered=st.booleans())
def test_each_update_and_the_final_value_match_duckdb_over_the_prefix(spec, cuts, grouped, filtered):
    events = _events(spec)
    con = duckdb.connect()
    con.register("ev", pa.table({"seq": np.arange(events.num_rows), "ts": events["timestamp"].cast(pa.int64()),
                                 "device": events["device"], "metric": events["metric"], "value": events["value"]}))
    runner = QueryRunner(to_plan(_query(grouped, filtered)))
    seen = 0
    for entity, batch in _batches(events, cuts):
        got = runner.push(entity, batch)
        seen += batch.num_rows
        touched = batch.filter(pa.compute.equal(batch["metric"], "latency")) if filtered else batch
        if touched.num_rows == 0:
            assert got == []
            continue
        devices = set(touched["device"].to_pylist()) if grouped else None
        assert _same(_rows(got), _reference(con, seen, grouped, filtered, devices)), (seen, _rows(got))
    final = _reference(con, events.num_rows, grouped, filtered, None)
    if grouped or final[0][0]:
        assert _same(_rows(runner.finish()), final)
    # one row per group, plus one per distinct (group, value) pair for count_distinct
    pairs = {(s[2] if grouped else 0, s[4]) for s in spec if s[4] is not None}
    assert runner.state_rows <= (len({s[2] for s in spec}) if grouped else 1) + len(pairs)


def _flows(n: int, start: int, hosts: int, big: bool) -> pa.Table:
    schema = CATALOG["netflow"].arrow_schema()
    rng = np.random.default_rng(start)
    cols = {}
    for f in schema:
        if f.name == "timestamp":
            cols[f.name] = pa.array(np.arange(start, start + n) * 1000, pa.int64()).cast(f.type)
        elif f.name == "src_ip":
            cols[f.name] = pa.array([f"10.0.0.{i % hosts}" for i in range(n)], f.type)
        elif f.name == "bytes":
            base = (1 << 62) if big else 0  # sums past 2**53: exact only if never rounded through a float
            cols[f.name] = pa.array(base // n + rng.integers(0, 1500, n).astype(np.uint64), f.type)
        else:
            cols[f.name] = pa.nulls(n, f.type)
    return pa.table(cols, schema=schema)


def test_integer_sums_stay_exact_and_state_stays_one_row_per_group():
    runner = QueryRunner(to_plan("STREAM src_ip, sum(bytes) AS b, count() AS n FROM netflow GROUP BY src_ip "
                                 "EMIT PERIODIC 5s"))
    pushed = []
    for k in range(50):
        batch = _flows(2_000, k * 2_000, hosts=7, big=True)
        pushed.append(batch)
        runner.push("netflow", batch)
        assert runner.state_rows == 7  # never the 100,000 rows pushed
    got = {r["src_ip"]: (r["b"], r["n"]) for r in runner.snapshot()[0].to_pylist()}
    every = pa.concat_tables(pushed)
    expected: dict[str, list[int]] = {}
    for ip, b in zip(every["src_ip"].to_pylist(), every["bytes"].to_pylist(), strict=True):
        acc = expected.setdefault(ip, [0, 0])
        acc[0] = (acc[0] + b) % (1 << 64)  # UInt64 sums wrap, as in ClickHouse
        acc[1] += 1
    assert got == {ip: tuple(v) for ip, v in expected.items()}


def test_a_group_that_held_only_nulls_does_not_pin_first_and_last():
    """A group whose values were all NULL so far holds NULL with no time: the next values compete freely."""
    runner = QueryRunner(to_plan(_query(grouped=True, filtered=False)))
    at = [(5_000, None), (6_000, 1.0), (4_000, 2.0), (7_000, None)]
    for t, v in at:  # one event per batch, out of order
        runner.push("metrics", _events([(0, t, 0, 0, v)]))
    (row,) = runner.finish()[0].to_pylist()
    assert (row["n"], row["nv"], row["f"], row["l"], row["mn"], row["mx"]) == (4, 2, 2.0, 1.0, 1.0, 2.0)


def test_filtered_catalog_measures_count_only_their_rows():
    """``announcements`` / ``withdrawals`` are counts over ``action = ...``: the filter applies per measure."""
    runner = QueryRunner(to_plan("STREAM prefix, announcements, withdrawals, count() AS n FROM bgp GROUP BY prefix "
                                 "EMIT PERIODIC 5s"))
    schema = CATALOG["bgp"].arrow_schema()
    rng = np.random.default_rng(3)
    expected: dict[str, list[int]] = {}
    for k in range(20):
        prefixes = [f"10.{i}.0.0/16" for i in rng.integers(0, 5, 100)]
        actions = rng.choice(["announce", "withdraw", "other"], 100).tolist()
        cols = {f.name: pa.nulls(100, f.type) for f in schema}
        ms = np.arange(k * 100, k * 100 + 100) * 1000
        cols["timestamp"] = pa.array(ms, pa.int64()).cast(schema.field("timestamp").type)
        cols["prefix"], cols["action"] = pa.array(prefixes), pa.array(actions)
        runner.push("bgp", pa.table(cols, schema=schema))
        for p, a in zip(prefixes, actions, strict=True):
            acc = expected.setdefault(p, [0, 0, 0])
            acc[0] += a == "announce"
            acc[1] += a == "withdraw"
            acc[2] += 1
    got = {r["prefix"]: [r["announcements"], r["withdrawals"], r["n"]] for r in runner.snapshot()[0].to_pylist()}
    assert got == expected
    assert runner.state_rows == len(expected)
