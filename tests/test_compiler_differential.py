"""Differential: random SHOW queries over random rows, run by chdb (ClickHouse SQL) and DuckDB (DuckDB SQL).

Both databases get their tables from the catalog's generated DDL and the same rows; the compiled
ClickHouse and DuckDB queries must return the same rows.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import srql_compiler
from streams.catalog import CATALOG
from streams.ddl import clickhouse_ddl, duckdb_ddl

# Recent rows: the ClickHouse tables carry the catalog's 90-day TTL, which drops older rows on insert.
BASE = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=2)
DAY = BASE.strftime("%Y-%m-%d")
APPS = ["ssh", "https", "dns", "ntp"]
IPS = ["10.0.0.1", "10.0.0.2", "192.168.1.7", "172.16.0.9"]
DEVICES = ["r1", "r2", "sw-ams-1"]
MESSAGES = ["Failed password for root", "Accepted key", "link down", "100% loss"]

flows = st.fixed_dictionaries({
    "timestamp": st.integers(0, 7200 * 1000).map(lambda ms: BASE + timedelta(milliseconds=ms)),
    "exporter": st.sampled_from(IPS[:2]),
    "src_ip": st.sampled_from(IPS),
    "dst_ip": st.sampled_from(IPS),
    "src_port": st.sampled_from([22, 53, 443, 50000]),
    "dst_port": st.sampled_from([22, 53, 443, 8080]),
    "protocol": st.sampled_from([6, 17]),
    "bytes": st.integers(0, 10_000),
    "packets": st.integers(1, 100),
    "application": st.sampled_from(APPS),
})
logs = st.fixed_dictionaries({
    "timestamp": st.integers(0, 7200 * 1000).map(lambda ms: BASE + timedelta(milliseconds=ms)),
    "device": st.sampled_from(DEVICES),
    "severity": st.integers(0, 7),
    "facility": st.integers(0, 23),
    "app_name": st.sampled_from(["sshd", "kernel", "cron"]),
    "message": st.sampled_from(MESSAGES),
})

WINDOWS = ["5m", "10m", "1h", "90s", "10m HOP 4m", "1h HOP 20m", "5m SESSION", "20m SESSION"]
FLOW_CONDS = [
    "bytes > {n}", "bytes <= {n}", "protocol = 6", "application = '{app}'", "application IN ('ssh', 'dns')",
    "src_ip IN '10.0.0.0/8'", "dst_ip IN ('192.168.0.0/16', '172.16.0.0/12')", "dst_port NOT IN (22, 443)",
    "src_port BETWEEN 20 AND 500", "NOT protocol = 17",
    "timestamp >= '" + DAY + " 12:30:00'",
]
LOG_CONDS = [
    "severity <= 'err'", "severity > {s}", "message CONTAINS 'password'", "message CONTAINS '100%'",
    "device = '{dev}'", "app_name LIKE 'ss%'", "message NOT LIKE '%down%'", "date(timestamp) = '" + DAY + "'",
    "timestamp < NOW", "timestamp >= TODAY",
]


@st.composite
def conditions(draw, templates: list[str]) -> str:
    parts = draw(st.lists(st.sampled_from(templates), min_size=1, max_size=3))
    filled = [p.format(n=draw(st.integers(0, 10_000)), app=draw(st.sampled_from(APPS)), s=draw(st.integers(0, 7)),
                       dev=draw(st.sampled_from(DEVICES))) for p in parts]
    out = filled[0]
    for f in filled[1:]:
        out = f"({out}) {draw(st.sampled_from(['AND', 'OR']))} {f}"
    return out


@st.composite
def show_queries(draw) -> tuple[str, str]:
    entity = draw(st.sampled_from(["netflow", "logs"]))
    conds = FLOW_CONDS if entity == "netflow" else LOG_CONDS
    keys = ["application", "exporter", "protocol"] if entity == "netflow" else ["device", "app_name"]
    measures = (["count", "sum_bytes", "avg_packets", "max_bytes", "min_src_port", "count_distinct_src_ip",
                 "p50_bytes", "p90_packets", "total_bytes"] if entity == "netflow"
                else ["count", "max_severity", "avg_facility", "count_distinct_device", "p95_severity", "hits"])
    q = f"SHOW {entity}"
    if draw(st.booleans()):
        q += f" WHERE {draw(conditions(conds))}"
    if draw(st.booleans()):
        group = draw(st.lists(st.sampled_from(keys), min_size=1, max_size=2, unique=True))
        q += f" GROUP BY {', '.join(group)}"
        windowed = draw(st.booleans())
        if windowed:
            q += " WINDOW " + draw(st.sampled_from(WINDOWS))
        m = draw(st.sampled_from(measures))
        if draw(st.booleans()):
            q += f" HAVING {m} >= {draw(st.integers(0, 3))}"
        if draw(st.booleans()):
            q += f" ORDER BY {draw(st.sampled_from(measures))} {draw(st.sampled_from(['ASC', 'DESC']))}"
            q += f" LIMIT {draw(st.integers(1, 4))}"
    elif draw(st.booleans()):
        q = f"COUNT {entity}" + (q[len(f"SHOW {entity}"):])
    elif draw(st.booleans()):
        q += " LATEST"
    return entity, q


def _arrow(entity: str, rows: list[dict]) -> pa.Table:
    schema = CATALOG[entity].arrow_schema()
    cols = {}
    for f in schema:
        vals = [r.get(f.name) for r in rows]
        if all(v is None for v in vals) and not CATALOG[entity].field(f.name).nullable:
            vals = [_default(f.type) for _ in rows]
        cols[f.name] = pa.array(vals, type=f.type)
    return pa.table(cols, schema=schema)


def _default(t: pa.DataType) -> object:
    if pa.types.is_string(t):
        return ""
    if pa.types.is_boolean(t):
        return False
    if pa.types.is_timestamp(t):
        return BASE
    if pa.types.is_map(t) or pa.types.is_list(t):
        return []
    return 0


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    from chdb import session

    sess = session.Session(str(tmp_path_factory.mktemp("chdb")))
    duck = duckdb.connect()
    for name in ("netflow", "logs"):
        ent = CATALOG[name]
        sess.query(clickhouse_ddl(ent))
        duck.execute(duckdb_ddl(ent))
    yield sess, duck
    sess.close()
    duck.close()


def _load(sess, duck, entity: str, rows: list[dict]) -> None:
    stream = CATALOG[entity].stream
    sess.query(f"TRUNCATE TABLE {stream}")
    duck.execute(f"DELETE FROM {stream}")
    if not rows:
        return
    table = _arrow(entity, rows)
    duck.register("incoming", table)
    duck.execute(f"INSERT INTO {stream} SELECT * FROM incoming")
    duck.unregister("incoming")
    # chdb reads the same Arrow data through DuckDB-made Parquet: one writer, no hand-made literals.
    import io

    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf)
    path = f"/tmp/srql_diff_{stream}.parquet"
    with open(path, "wb") as fh:
        fh.write(buf.getvalue())
    sess.query(f"INSERT INTO {stream} SELECT * FROM file('{path}', Parquet)")


def _norm(v: object) -> object:
    if isinstance(v, datetime):
        return round(v.replace(tzinfo=UTC).timestamp() * 1000)
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 6)
    if isinstance(v, bool):
        return int(v)
    if hasattr(v, "item"):
        return _norm(v.item())
    return v


def _rows_ch(sess, sql: str) -> list[tuple]:
    res = sess.query(sql, "ArrowTable")
    return [tuple(_norm(v) for v in r.values()) for r in res.to_pylist()]


def _rows_duck(duck, sql: str) -> list[tuple]:
    res = duck.sql(sql).to_arrow_table()
    return [tuple(_norm(v) for v in r.values()) for r in res.to_pylist()]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_clickhouse_and_duckdb_agree(engines, data) -> None:
    sess, duck = engines
    entity, query = data.draw(show_queries())
    rows = data.draw(st.lists(flows if entity == "netflow" else logs, max_size=25))
    _load(sess, duck, entity, rows)
    ch = srql_compiler.compile(query, "clickhouse").sql
    dk = srql_compiler.compile(query, "duckdb").sql
    a, b = _rows_ch(sess, ch), _rows_duck(duck, dk)
    ordered = "ORDER BY" in query
    if not ordered:
        a, b = sorted(a, key=repr), sorted(b, key=repr)
    assert a == b, f"{query}\nclickhouse: {ch}\nduckdb: {dk}"
    if entity == "netflow" and query.startswith("COUNT") and "WHERE" not in query:
        assert a == [(len(rows),)]


def _at(minutes: float) -> datetime:
    return BASE + timedelta(minutes=minutes)


@pytest.mark.parametrize("target", ["clickhouse", "duckdb"])
def test_hop_and_session_windows_over_history_known_rows(engines, target: str) -> None:
    """Hand-computed windows: the same rules as the embedded engine (streams/engine/windows.py)."""
    sess, duck = engines
    rows = [{"timestamp": _at(m), "device": "r1", "severity": 3, "facility": 1, "app_name": "sshd",
             "message": "Failed password for root"} for m in (0, 2, 10, 31)]
    _load(sess, duck, "logs", rows)
    run = (lambda sql: _rows_ch(sess, sql)) if target == "clickhouse" else (lambda sql: _rows_duck(duck, sql))

    def ms(minutes: float) -> int:
        return round(_at(minutes).timestamp() * 1000)

    # sessions of 5m: a silence of 5m or more starts a new one; [first, last] per session
    got = run(srql_compiler.compile("SHOW logs GROUP BY device WINDOW 5m SESSION", target).sql)
    assert sorted(got) == [(ms(0), ms(2), "r1", 2), (ms(10), ms(10), "r1", 1), (ms(31), ms(31), "r1", 1)]
    # hop windows of 10m every 5m, aligned on the epoch (BASE is 12:00, a multiple of 5m)
    got = run(srql_compiler.compile("SHOW logs GROUP BY device WINDOW 10m HOP 5m", target).sql)
    assert sorted(got) == [
        (ms(-5), ms(5), "r1", 2), (ms(0), ms(10), "r1", 2), (ms(5), ms(15), "r1", 1), (ms(10), ms(20), "r1", 1),
        (ms(25), ms(35), "r1", 1), (ms(30), ms(40), "r1", 1),
    ]


def test_prefix_tests_tolerate_text_that_is_not_an_address(engines) -> None:
    """An empty or malformed address field never makes a history query fail, with or without NOT."""
    sess, duck = engines
    rows = [{"timestamp": _at(i), "device": "r1", "severity": 3, "facility": 1, "app_name": "sshd",
             "message": "x", "source_ip": ip} for i, ip in enumerate(["10.1.2.3", "", "not-an-ip", "192.168.0.1",
                                                                       "2001:db8::1"])]
    _load(sess, duck, "logs", rows)
    for query, want in [
        ("SHOW source_ip FROM logs WHERE source_ip IN '10.0.0.0/8'", [("10.1.2.3",)]),
        ("SHOW source_ip FROM logs WHERE NOT source_ip IN ('10.0.0.0/8', '172.16.0.0/12')",
         [("",), ("192.168.0.1",), ("2001:db8::1",), ("not-an-ip",)]),
    ]:
        assert sorted(_rows_ch(sess, srql_compiler.compile(query, "clickhouse").sql)) == want
        assert sorted(_rows_duck(duck, srql_compiler.compile(query, "duckdb").sql)) == want
