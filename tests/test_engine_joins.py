"""Joins, differentially against DuckDB: lookup on the latest inventory row, and stream ⋈ stream WITHIN.

Batches of both inputs arrive interleaved in a random order; the reference SQL reproduces the engine's
documented rules over all rows at once, with one global arrival sequence:

- lookup: each event joins the newest inventory row (by ``last_seen``, later arrival winning ties) for
  its key among the inventory rows that arrived before it (inner join); the watermark follows every
  event of the stream, matched or not;
- interval: a row of either side is late when its time is below the watermark (largest time seen on
  both inputs so far minus DELAY) on arrival; accepted rows pair when keys are equal and the times are
  at most WITHIN apart; pairs are windowed on the left side's time and never late.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.catalog import CATALOG
from streams.engine import run
from streams.simulate import _table

BASE = 1_000_000_000
DEVICES = ["r1", "r2", "r3", "r4"]
SITES = ["nyc", "sfo", "fra"]
MESSAGES = ["Failed password for root", "Accepted publickey", "link down"]
TS = pa.timestamp("ms", tz="UTC")

row = st.tuples(
    st.integers(0, 4).map(lambda k: k * 500),  # gap
    st.one_of(st.just(0), st.just(0), st.integers(-30, 0).map(lambda k: k * 500)),  # jitter: disorder, late
    st.integers(0, len(DEVICES) - 1),
    st.integers(0, 7),  # severity / site / bytes seed
)
batch = st.tuples(st.sampled_from(["left", "right"]), st.lists(row, min_size=1, max_size=8))
fast = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _arrivals(batches):
    """Rows with nominal time advancing across batches: (side, [(ts, key, x, seq)]) in arrival order."""
    clock, seq, out = BASE, 0, []
    for side, rows in batches:
        items = []
        for gap, jitter, key, x in rows:
            clock += gap
            items.append((clock + jitter, key, x, seq))
            seq += 1
        out.append((side, items))
    return out


def _logs(items) -> pa.Table:
    n = len(items)
    return _table(CATALOG["logs"], n, {
        "timestamp": pa.array([i[0] for i in items], pa.int64()).cast(TS),
        "device": pa.array([DEVICES[i[1]] for i in items]),
        "severity": pa.array([i[2] for i in items], pa.uint8()),
        "message": pa.array([MESSAGES[i[2] % 3] for i in items]),
    })


def _inventory(items) -> pa.Table:
    n = len(items)
    return _table(CATALOG["devices"], n, {
        "device": pa.array([DEVICES[i[1]] for i in items]),
        "site": pa.array([SITES[i[2] % 3] for i in items]),
        # versions deliberately not in arrival order: the newest version wins, not the last arrival
        "last_seen": pa.array([BASE + (i[2] * 7919 + i[3]) % 5 * 1000 for i in items], pa.int64()).cast(TS),
    })


def _flows(items) -> pa.Table:
    n = len(items)
    return _table(CATALOG["netflow"], n, {
        "timestamp": pa.array([i[0] for i in items], pa.int64()).cast(TS),
        "src_ip": pa.array([DEVICES[i[1]] for i in items]),
        "bytes": pa.array([100 * (i[2] + 1) for i in items], pa.uint64()),
        "flow_start": pa.array([i[0] for i in items], pa.int64()).cast(TS),
    })


def _rows(table: pa.Table, key: str) -> list[tuple]:
    cols = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in table.columns]
    return sorted(zip(*(c.to_pylist() for c in cols), strict=True), key=lambda r: (r[0], r[1]))


@fast
@given(st.lists(batch, min_size=1, max_size=10), st.sampled_from([0, 2]))
def test_lookup_join_matches_duckdb(batches, delay_s):
    arrivals = _arrivals(batches)
    data = [("logs", _logs(items)) if side == "left" else ("devices", _inventory(items)) for side, items in arrivals]
    query = (f"STREAM window_start, site, count() AS n, max(severity) AS mx, count_distinct(logs.device) AS nd "
             f"FROM logs JOIN inventory ON logs.device = inventory.device WHERE severity <= 5 "
             f"GROUP BY site WINDOW 10s {'DELAY 2s' if delay_s else ''}")
    result = run(query, data)
    con = duckdb.connect()
    logs = [(i[0], DEVICES[i[1]], i[2], i[3]) for side, items in arrivals if side == "left" for i in items]
    inv = [(DEVICES[i[1]], SITES[i[2] % 3], BASE + (i[2] * 7919 + i[3]) % 5 * 1000, i[3])
           for side, items in arrivals if side == "right" for i in items]
    con.execute("CREATE TABLE l (ts BIGINT, device VARCHAR, severity INT, seq BIGINT)")
    con.execute("CREATE TABLE inv (device VARCHAR, site VARCHAR, version BIGINT, seq BIGINT)")
    if logs:
        con.executemany("INSERT INTO l VALUES (?, ?, ?, ?)", logs)
    if inv:
        con.executemany("INSERT INTO inv VALUES (?, ?, ?, ?)", inv)
    d = delay_s * 1000
    base = f"""
        WITH w AS (SELECT *, coalesce(max(ts) OVER (ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                                      -1000000000000) - {d} AS wm FROM l),
        j AS (SELECT w.*, inv.site FROM w JOIN inv ON inv.device = w.device AND inv.seq < w.seq
              QUALIFY row_number() OVER (PARTITION BY w.seq ORDER BY inv.version DESC, inv.seq DESC) = 1),
        f AS (SELECT *, ts // 10000 * 10000 AS ws FROM j WHERE severity <= 5)"""
    expected = con.execute(f"""{base}
        SELECT ws, site, count(*), max(severity), count(DISTINCT device) FROM f WHERE ws + 10000 > wm
        GROUP BY ws, site ORDER BY ws, site""").fetchall()
    late = con.execute(f"{base} SELECT count(*) FROM f WHERE ws + 10000 <= wm").fetchone()[0]
    assert result.late_events == late
    assert _rows(result.table, "site") == sorted(expected, key=lambda r: (r[0], r[1]))


@fast
@given(st.lists(batch, min_size=1, max_size=10), st.sampled_from([0, 1]), st.booleans())
def test_interval_join_matches_duckdb(batches, delay_s, filtered):
    arrivals = _arrivals(batches)
    data = [("netflow", _flows(items)) if side == "left" else ("logs", _logs(items)) for side, items in arrivals]
    where = "WHERE message CONTAINS 'Failed'" if filtered else ""
    query = (f"STREAM window_start, src_ip, count() AS n, sum(bytes) AS b FROM netflow JOIN logs "
             f"ON src_ip = device WITHIN 3s {where} GROUP BY src_ip WINDOW 10s {'DELAY 1s' if delay_s else ''}")
    result = run(query, data)
    con = duckdb.connect()
    rows = [(side, i[0], DEVICES[i[1]], i[2], i[3]) for side, items in arrivals for i in items]
    con.execute("CREATE TABLE ev (side VARCHAR, ts BIGINT, k VARCHAR, x INT, seq BIGINT)")
    con.executemany("INSERT INTO ev VALUES (?, ?, ?, ?, ?)", rows)
    msg = "CASE r.x % 3 WHEN 0 THEN 'Failed password for root' WHEN 1 THEN 'Accepted publickey' ELSE 'link down' END"
    base = f"""
        WITH w AS (SELECT *, coalesce(max(ts) OVER (ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                                      -1000000000000) - {delay_s * 1000} AS wm FROM ev),
        acc AS (SELECT * FROM w WHERE ts >= wm)"""
    expected = con.execute(f"""{base}
        SELECT l.ts // 10000 * 10000 AS ws, l.k, count(*), sum(100 * (l.x + 1))
        FROM acc l JOIN acc r ON l.side = 'left' AND r.side = 'right' AND l.k = r.k AND abs(l.ts - r.ts) <= 3000
        WHERE {f"contains({msg}, 'Failed')" if filtered else 'TRUE'}
        GROUP BY ws, l.k ORDER BY ws, l.k""").fetchall()
    late = con.execute(f"{base} SELECT count(*) FROM w WHERE ts < wm").fetchone()[0]
    assert result.late_events == late
    assert _rows(result.table, "src_ip") == [tuple(r) for r in expected]


def test_lookup_join_uses_the_inventory_as_of_each_event():
    inv1 = _inventory([(0, 0, 0, 0)])  # r1 at nyc, version BASE
    logs = _logs([(BASE + 1000, 0, 1, 1)])
    inv2 = _table(CATALOG["devices"], 1, {"device": pa.array(["r1"]), "site": pa.array(["fra"]),
                                          "last_seen": pa.array([BASE + 9000], pa.int64()).cast(TS)})
    logs2 = _logs([(BASE + 2000, 0, 1, 3)])
    q = "STREAM logs JOIN inventory ON logs.device = inventory.device GROUP BY site WINDOW 10s"
    out = run(q, [("devices", inv1), ("logs", logs), ("devices", inv2), ("logs", logs2)]).table
    assert sorted(zip(out.column("site").to_pylist(), out.column("count").to_pylist(), strict=True)) == [
        ("fra", 1), ("nyc", 1)]
    # a log whose device has no inventory row yet is not joined (inner join, as Proton's JOIN)
    out = run(q, [("logs", logs), ("devices", inv1)]).table
    assert out.num_rows == 0
    assert np.array_equal(out.column_names, ["window_start", "window_end", "site", "count"])
