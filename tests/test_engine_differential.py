"""Differential tests: the streaming engine against DuckDB computing the same result in one batch query.

Random events arrive out of order (within DELAY and beyond it) and are cut into random batches; the
engine must produce exactly the rows that the reference SQL gives over all events at once, and count
exactly the late events the rules in ``streams/engine/windows.py`` define. The reference SQL is written
here from the same query parameters, independently of the engine's code.
"""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.catalog import CATALOG
from streams.engine import run

BASE = 1_000_000_000  # ms; keeps window arithmetic away from negative numbers
MEASURES_SRQL = (
    "count() AS n, count(value) AS nv, count_distinct(value) AS cd, sum(value) AS s, avg(value) AS a, "
    "min(value) AS mn, max(value) AS mx, p50(value) AS q50, p90(value) AS q90, p95(value) AS q95, "
    "p99(value) AS q99, first(value) AS f, last(value) AS l"
)
MEASURES_SQL = (
    "count(*) AS n, count(value) AS nv, count(DISTINCT value) AS cd, sum(value) AS s, avg(value) AS a, "
    "min(value) AS mn, max(value) AS mx, quantile_cont(value, 0.5) AS q50, quantile_cont(value, 0.9) AS q90, "
    "quantile_cont(value, 0.95) AS q95, quantile_cont(value, 0.99) AS q99, "
    "first(value ORDER BY ts, seq) FILTER (WHERE value IS NOT NULL) AS f, "
    "last(value ORDER BY ts, seq) FILTER (WHERE value IS NOT NULL) AS l"
)
DEVICES = ["r1", "r2", "r3"]
METRICS = ["latency", "cpu"]

event = st.tuples(
    # coarse times (multiples of 500 ms) so that events land exactly on window edges and gaps
    st.integers(0, 6).map(lambda k: k * 500),  # gap to the previous event's nominal time, ms
    st.one_of(st.just(0), st.just(0), st.integers(-40, 0).map(lambda k: k * 500)),  # out of order / late
    st.integers(0, len(DEVICES) - 1),
    st.integers(0, len(METRICS) - 1),
    st.one_of(st.none(), st.integers(0, 40).map(lambda v: v / 2)),
)


def _events(spec: list[tuple]) -> pa.Table:
    nominal = BASE + np.cumsum([s[0] for s in spec])
    ts = nominal + np.array([s[1] for s in spec], dtype=np.int64)
    n = len(spec)
    schema = CATALOG["metrics"].arrow_schema()
    return pa.table(
        {
            "timestamp": pa.array(ts, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "device": pa.array([DEVICES[s[2]] for s in spec]),
            "metric": pa.array([METRICS[s[3]] for s in spec]),
            "value": pa.array([s[4] for s in spec], pa.float64()),
            "value_str": pa.nulls(n, pa.string()),
            "labels": pa.array([[] for _ in spec], pa.map_(pa.string(), pa.string())),
            "deleted": pa.array([False] * n),
        },
        schema=schema,
    )


def _batches(table: pa.Table, cuts: list[int]):
    start = 0
    for size in cuts:
        if start >= table.num_rows:
            break
        yield "metrics", table.slice(start, size)
        start += size
    if start < table.num_rows:
        yield "metrics", table.slice(start)


def _reference(events: pa.Table, window: tuple, delay: int, where: str, having: str, top: int | None):
    """Rows and late count by DuckDB over all events at once (times as ms integers)."""
    con = duckdb.connect()
    ev = pa.table(
        {
            "seq": pa.array(np.arange(events.num_rows)),
            "ts": events.column("timestamp").cast(pa.int64()),
            "device": events.column("device"),
            "metric": events.column("metric"),
            "value": events.column("value"),
        }
    )
    con.register("ev", ev)
    kind, size, step = window
    prelude = f"""
        w AS (SELECT *, coalesce(max(ts) OVER (ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                                 -1000000000000) - {delay} AS wm FROM ev),
        f AS (SELECT * FROM w WHERE {where})"""
    if kind == "session":
        pairs = f"""
        acc AS (SELECT * FROM f WHERE ts >= wm),
        s1 AS (SELECT *, CASE WHEN ts - lag(ts) OVER (PARTITION BY device ORDER BY ts, seq) < {size}
                               AND ts // {5 * size} = lag(ts) OVER (PARTITION BY device ORDER BY ts, seq) // {5 * size}
                              THEN 0 ELSE 1 END AS new FROM acc),
        s2 AS (SELECT *, sum(new) OVER (PARTITION BY device ORDER BY ts, seq ROWS UNBOUNDED PRECEDING) AS sid
               FROM s1),
        pairs AS (SELECT *, min(ts) OVER (PARTITION BY device, sid) AS ws,
                            max(ts) OVER (PARTITION BY device, sid) AS we FROM s2)"""
        late = "SELECT count(*) FROM f WHERE ts < wm"
    else:
        pairs = f"""
        pairs AS (SELECT f.*, ws, ws + {size} AS we FROM f,
                  LATERAL (SELECT unnest(range((ts - {size}) // {step} + 1, ts // {step} + 1)) * {step} AS ws)
                  WHERE ws + {size} > wm)"""
        late = f"SELECT count(*) FROM f WHERE ((ts - {size}) // {step} + 1) * {step} + {size} <= wm"
    qualify = (
        f"QUALIFY row_number() OVER (PARTITION BY ws ORDER BY s DESC NULLS LAST, device) <= {top}" if top else ""
    )
    sql = f"""WITH {prelude}, {pairs}
        SELECT ws, we, device, {MEASURES_SQL} FROM pairs GROUP BY ws, we, device
        {"HAVING " + having if having else ""} {qualify} ORDER BY ws, device"""
    rows = con.execute(sql).fetchall()
    late_n = con.execute(f"WITH {prelude} {late}").fetchone()[0]
    return rows, late_n


def _engine_rows(table: pa.Table) -> list[tuple]:
    cols = []
    for name in table.column_names:
        col = table.column(name)
        cols.append(col.cast(pa.int64()) if pa.types.is_timestamp(col.type) else col)
    rows = list(zip(*(c.to_pylist() for c in cols), strict=True))
    return sorted(rows, key=lambda r: (r[0], r[2]))


def _same(a: list[tuple], b: list[tuple]) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra, rb, strict=True):
            if x is None or y is None:
                if x is not y:
                    return False
            elif isinstance(x, float) or isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif x != y:
                return False
    return True


WINDOWS = {
    "tumble": (("tumble", 10_000, 10_000), "10s"),
    "hop": (("hop", 10_000, 4_000), "10s HOP 4s"),
    "session": (("session", 3_000, None), "3s SESSION"),
}


def _check(kind: str, spec, cuts, delay_s: int, filtered: bool, having: bool, top: bool) -> None:
    events = _events(spec)
    window, window_srql = WINDOWS[kind]
    where_srql = "WHERE metric = 'latency'" if filtered else ""
    having_srql = "HAVING n >= 2" if having else ""
    order_srql = "ORDER BY s DESC LIMIT 2" if top else ""
    delay = f"DELAY {delay_s}s" if delay_s else ""
    query = (
        f"STREAM window_start, window_end, device, {MEASURES_SRQL} FROM metrics {where_srql} "
        f"GROUP BY device WINDOW {window_srql} {delay} {having_srql} {order_srql}"
    )
    result = run(query, list(_batches(events, cuts)))
    expected, late = _reference(
        events, window, delay_s * 1000, "metric = 'latency'" if filtered else "TRUE",
        "count(*) >= 2" if having else "", 2 if top else None,
    )
    got = _engine_rows(result.table)
    assert result.late_events == late, query
    assert _same(got, expected), f"{query}\nengine:   {got}\nreference: {expected}"


common = dict(
    spec=st.lists(event, min_size=1, max_size=60),
    cuts=st.lists(st.integers(1, 12), max_size=12),
    delay_s=st.sampled_from([0, 2, 5]),
    filtered=st.booleans(),
    having=st.booleans(),
    top=st.booleans(),
)
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(**common)
def test_tumble_matches_duckdb(spec, cuts, delay_s, filtered, having, top):
    _check("tumble", spec, cuts, delay_s, filtered, having, top)


@fast
@given(**common)
def test_hop_matches_duckdb(spec, cuts, delay_s, filtered, having, top):
    _check("hop", spec, cuts, delay_s, filtered, having, top)


@fast
@given(**common)
def test_session_matches_duckdb(spec, cuts, delay_s, filtered, having, top):
    _check("session", spec, cuts, delay_s, filtered, having, top)


def test_result_does_not_depend_on_batching():
    rng = np.random.default_rng(7)
    spec = [(int(rng.integers(0, 2000)), int(rng.choice([0, 0, -9000])), int(rng.integers(0, 3)),
             int(rng.integers(0, 2)), float(rng.integers(0, 40)) / 2) for _ in range(500)]
    events = _events(spec)
    query = f"STREAM window_start, window_end, device, {MEASURES_SRQL} FROM metrics GROUP BY device WINDOW 10s HOP 4s"
    one = run(query, [("metrics", events)])
    many = run(query, list(_batches(events, [1, 2, 3, 5, 8, 13, 21] * 30)))
    assert one.late_events == many.late_events > 0
    assert _engine_rows(one.table) == _engine_rows(many.table)
