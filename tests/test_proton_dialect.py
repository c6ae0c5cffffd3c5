"""The Proton sqlglot dialects: corpus round-trip, golden generation rules, and property tests.

Corpus: Proton's own streaming smoke-test statements (v1.6.1, /work/shared/corpus). A statement is
*covered* when it parses into a structured tree (not sqlglot's opaque ``Command`` fallback), the
generated SQL parses back into an equal tree, generation is idempotent, and every string and number
literal of the input survives (so a mis-parse that silently turns data into an alias cannot count as covered).
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import re
from pathlib import Path

import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import TokenType

from srql_compiler.dialects import (
    Emit,
    Proton,
    Proton16,
    changelog,
    create_external_stream,
    create_external_table,
    create_materialized_view,
    dedup,
    hop,
    interval,
    session,
    table,
    tumble,
)

# the shared reference folder sits beside the checkout (../shared), as the issue describes
# A copy of ../shared/corpus lives in tests/data/corpus so that any checkout can run this test.
CORPUS = Path(__file__).parent / "data" / "corpus" / "proton_smoke_queries.jsonl"
DATA = Path(__file__).parent / "data" / "proton_dialect"
KNOWN_UNSUPPORTED = DATA / "known_unsupported.json"

#: measured share of the corpus covered (see docs/proton-dialect.md); a regression below fails
COVERAGE_FLOOR = 0.99

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # Command fallbacks are counted, not logged


# --------------------------------------------------------------------------------------------
# corpus round-trip
# --------------------------------------------------------------------------------------------


def _literal_tokens(tokens: list) -> collections.Counter[tuple[str, str]]:
    """String and number literals as written (an interval's value belongs to the interval)."""
    return collections.Counter(
        (token.token_type.name, token.text)
        for previous, token in zip([None, *tokens], tokens, strict=False)
        if token.token_type in (TokenType.STRING, TokenType.NUMBER)
        and not (previous is not None and previous.token_type == TokenType.INTERVAL)
    )


def roundtrip(sql: str, dialect_name: str = "proton") -> tuple[str | None, list[str]]:
    """(None when ``sql`` is covered, else why not; the generated statements)."""
    dialect = Dialect.get_or_raise(dialect_name)
    try:
        tokens = dialect.tokenize(sql)
        first = [e for e in dialect.parser().parse(tokens, sql) if e is not None]
    except Exception as error:  # sqlglot raises ParseError, TokenError and a few others
        return f"parse: {type(error).__name__}: {str(error).splitlines()[0]}", []
    if not first:
        return "empty", []
    if any(isinstance(e, exp.Command) for e in first):
        return "opaque Command fallback", []
    generated = [e.sql(dialect=dialect) for e in first]
    try:
        generated_tokens = [dialect.tokenize(g) for g in generated]
        second = [dialect.parser().parse(toks, g)[0] for toks, g in zip(generated_tokens, generated, strict=True)]
    except Exception as error:
        return f"re-parse: {type(error).__name__}: {str(error).splitlines()[0]}", generated
    if first != second:
        return "trees differ after round-trip", generated
    if [e.sql(dialect=dialect) for e in second] != generated:
        return "generation not idempotent", generated
    # a mis-parse that turns data into an alias would still round-trip: every string and number
    # literal of the input must appear, as written, in the output
    if _literal_tokens(tokens) != sum(map(_literal_tokens, generated_tokens), collections.Counter()):
        return "literals changed", generated
    return None, generated


def roundtrip_failure(sql: str, dialect_name: str = "proton") -> str | None:
    """None when ``sql`` is covered, else why not."""
    return roundtrip(sql, dialect_name)[0]


@functools.cache
def corpus() -> tuple[str, ...]:
    if not CORPUS.exists():
        pytest.fail(f"Proton corpus missing at {CORPUS}")
    with CORPUS.open() as handle:
        return tuple(json.loads(line)["query"] for line in handle if line.strip())


@functools.cache
def corpus_results() -> dict[str, tuple[str | None, list[str]]]:
    """Every corpus statement's round-trip result (computed once per session)."""
    return {query: roundtrip(query) for query in corpus()}


@functools.cache
def covered_corpus() -> tuple[str, ...]:
    return tuple(query for query, (reason, _) in corpus_results().items() if reason is None)


def corpus_failures() -> dict[str, str]:
    """Every corpus statement that is not covered, with the reason."""
    return {query: reason for query, (reason, _) in corpus_results().items() if reason is not None}


def known_unsupported() -> dict[str, str]:
    entries = json.loads(KNOWN_UNSUPPORTED.read_text())
    return {entry["query"]: entry["reason"] for entry in entries}


def test_corpus_coverage_stays_at_or_above_the_floor() -> None:
    total = len(corpus())
    covered = total - len(corpus_failures())
    assert total == 4206
    assert covered / total >= COVERAGE_FLOOR, f"covered {covered}/{total} = {covered / total:.2%}"


def test_every_corpus_failure_is_listed_with_a_reason() -> None:
    unexpected = {q: r for q, r in corpus_failures().items() if q not in known_unsupported()}
    assert not unexpected, "\n".join(f"{r}: {q[:160]}" for q, r in list(unexpected.items())[:20])


def test_known_unsupported_statements_still_fail() -> None:
    listed = known_unsupported()
    assert all(reason.strip() for reason in listed.values())
    assert set(listed) <= set(corpus()), "known-unsupported entries must be corpus statements"
    now_passing = [q for q in listed if q not in corpus_failures()]
    assert not now_passing, "now covered, remove from known_unsupported.json:\n" + "\n".join(now_passing)


_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def test_generation_invents_no_function_names() -> None:
    # Proton registers snake_case names only: every call in the output is spelled as in the input,
    # except map() (from a `{k: v}` literal); all-capital words before `(` are keywords (CAST, KEY).
    invented = collections.Counter()
    for query, (reason, generated) in corpus_results().items():
        if reason is not None:
            continue
        written = {name.lower() for name in _CALL.findall(query)}
        for name in _CALL.findall(" ".join(generated)):
            if name.lower() not in written and name != "map" and not name.isupper():
                invented[name] += 1
    assert not invented, invented.most_common(10)


def test_corpus_round_trips_with_the_16_dialect_too() -> None:
    # The 1.6 dialect differs only in EMIT spelling, so its coverage must match exactly.
    sample = [q for q in corpus() if "emit" in q.lower()]
    failing = {q for q in sample if roundtrip_failure(q, "proton16") is not None}
    assert failing == {q for q in sample if q in corpus_failures()}


# --------------------------------------------------------------------------------------------
# registration and golden generation rules
# --------------------------------------------------------------------------------------------


def test_dialects_are_registered_by_name() -> None:
    assert Dialect.get("proton") is Proton
    assert Dialect.get("proton16") is Proton16
    assert sqlglot.parse_one("select 1", read="proton16").sql(dialect="proton16") == "SELECT 1"


GOLDEN = [
    # windows, interval shorthand, EMIT after close in the 3.x spelling
    (
        "select window_start, count() from tumble(syslog_stream, timestamp, 5m) group by window_start"
        " emit after watermark with delay 10s",
        "SELECT window_start, count() FROM tumble(syslog_stream, timestamp, 5m) GROUP BY window_start"
        " EMIT AFTER WINDOW CLOSE WITH DELAY 10s",
    ),
    (
        "SELECT device, max(cpu) FROM hop(devices, timestamp, interval 1 second, interval 60 second)"
        " GROUP BY device, window_end EMIT AFTER WINDOW CLOSE WITH DELAY 2s AND TIMEOUT 5s",
        "SELECT device, max(cpu) FROM hop(devices, timestamp, 1s, 60s) GROUP BY device, window_end"
        " EMIT AFTER WINDOW CLOSE WITH DELAY 2s AND TIMEOUT 5s",
    ),
    # every shorthand unit; month/quarter/year stay spelled out
    (
        "select 7ns, 6us, 100ms, 5s, 1m, 2h, 1d, 1w, 1M, 1q, 1y, interval '3' hour, interval 2 month",
        "SELECT 7ns, 6us, 100ms, 5s, 1m, 2h, 1d, 1w, INTERVAL 1 MONTH, INTERVAL 1 QUARTER,"
        " INTERVAL 1 YEAR, 3h, INTERVAL 2 MONTH",
    ),
    # snake_case functions, Proton quantile order, LIMIT then EMIT then SETTINGS
    (
        "select count_if(x > 1), quantile(v, 0.9), p90(v), p99(v), arg_max(a, b), unique_exact(x),"
        " count_distinct(y), group_array(z), earliest(a), latest(b), lag(v, 3, 0), now64(3, 'UTC'),"
        " to_start_of_interval(ts, 1m), date_diff('second', a, b), is_ip_address_in_range(ip, '10.0.0.0/8')"
        " from t limit 3 offset 1 emit periodic 1s on update settings seek_to='earliest'",
        "SELECT count_if(x > 1), quantile(v, 0.9), p90(v), p99(v), arg_max(a, b), unique_exact(x),"
        " count_distinct(y), group_array(z), earliest(a), latest(b), lag(v, 3, 0), now64(3, 'UTC'),"
        " to_start_of_interval(ts, 1m), date_diff('second', a, b), is_ip_address_in_range(ip, '10.0.0.0/8')"
        " FROM t LIMIT 3 OFFSET 1 EMIT PERIODIC 1s ON UPDATE SETTINGS seek_to = 'earliest'",
    ),
    # lower-case Proton types; nullable only where written
    (
        "select cast(a as low_cardinality(string)), cast(b as nullable(int)), cast(c as datetime64(3, 'UTC')),"
        " cast(d as map(string, array(float64))), cast(e as tuple(s string, u uint64)), cast(f as boolean),"
        " cast(g as fixed_string(4)), cast(h as decimal(10, 2)), cast(i as ipv4), cast(j as uuid),"
        " cast(k as bigint), cast(l as double), cast(m as uint8), cast(n as enum8('a' = 1)) from t",
        "SELECT CAST(a AS low_cardinality(string)), CAST(b AS nullable(int32)), CAST(c AS datetime64(3, 'UTC')),"
        " CAST(d AS map(string, array(float64))), CAST(e AS tuple(s string, u uint64)), CAST(f AS bool),"
        " CAST(g AS fixed_string(4)), CAST(h AS decimal(10, 2)), CAST(i AS ipv4), CAST(j AS uuid),"
        " CAST(k AS int64), CAST(l AS float64), CAST(m AS uint8), CAST(n AS enum8('a' = 1)) FROM t",
    ),
    # joins, table(), date_diff_within, PARTITION BY substreams
    (
        "select * from a left asof join table(b) on a.k = b.k and date_diff_within(10s, a.ts, b.ts)"
        " where a.v > 0 partition by a.k",
        "SELECT * FROM a LEFT ASOF JOIN table(b) ON a.k = b.k AND date_diff_within(10s, a.ts, b.ts)"
        " WHERE a.v > 0 PARTITION BY a.k",
    ),
    (
        "select * from a inner latest join b on a.k = b.k inner all join c on a.k = c.k",
        "SELECT * FROM a INNER LATEST JOIN b ON a.k = b.k INNER ALL JOIN c ON a.k = c.k",
    ),
    (
        "select * from session(s, ts, 5s, [a > 1, a < 0)) partition by id group by window_start",
        "SELECT * FROM session(s, ts, 5s, [a > 1, a < 0)) PARTITION BY id GROUP BY window_start",
    ),
    (
        "select * from dedup(table(s), id, 120s) emit changelog",
        "SELECT * FROM dedup(table(s), id, 120s) EMIT CHANGELOG",
    ),
    # EMIT combinations found in the corpus
    ("select * from t emit last 10m and periodic 10s", "SELECT * FROM t EMIT PERIODIC 10s AND LAST 10m"),
    (
        "select * from t emit stream periodic interval 2 second",
        "SELECT * FROM t EMIT STREAM PERIODIC 2s",
    ),
    ("select * from t emit timeout 5s", "SELECT * FROM t EMIT TIMEOUT 5s"),
    # head clauses by spaces, TIMEOUT/LAST by AND, in the order of Proton's EMIT parser
    (
        "select * from t emit stream last 3s on proctime and timeout 2s and on update and periodic 1s",
        "SELECT * FROM t EMIT STREAM PERIODIC 1s ON UPDATE AND TIMEOUT 2s AND LAST 3s ON PROCTIME",
    ),
    ("select * from t emit after watermark and on update", "SELECT * FROM t EMIT AFTER WINDOW CLOSE ON UPDATE"),
    ("select * from t emit last 1h on proctime", "SELECT * FROM t EMIT LAST 1h ON PROCTIME"),
    ("select * from t emit periodic 2s repeat", "SELECT * FROM t EMIT PERIODIC 2s REPEAT"),
    (
        "select * from t emit after watermark with delay 2s and last 6s",
        "SELECT * FROM t EMIT AFTER WINDOW CLOSE WITH DELAY 2s AND LAST 6s",
    ),
    # predicates: ClickHouse-style NOT parenthesisation, reads back into the same tree
    (
        "select * from t where x not in (1, 2) and y is not null and not (z in (3)) and a ?? b > 0",
        "SELECT * FROM t WHERE NOT (x IN (1, 2)) AND NOT (y IS NULL) AND NOT (z IN (3)) AND coalesce(a, b) > 0",
    ),
    # JSON shortcut and map literals
    (
        "select raw:a.b[1], to_int(raw:id), {'k': 1, 'j': 2} from dedup(s, s:time)",
        "SELECT raw:a.b[1], to_int(raw:id), map('k', 1, 'j', 2) FROM dedup(s, s:time)",
    ),
    ("select * from t shuffle by k group by k", "SELECT * FROM t SHUFFLE BY k GROUP BY k"),
    # DDL
    (
        "create stream if not exists s(i int, t datetime64(3, 'UTC') default now64(3, 'UTC'),"
        " h low_cardinality(string)) primary key i settings mode='versioned_kv', event_time_column='t'",
        "CREATE STREAM IF NOT EXISTS s (i int32, t datetime64(3, 'UTC') DEFAULT now64(3, 'UTC'),"
        " h low_cardinality(string)) PRIMARY KEY (i) SETTINGS mode = 'versioned_kv', event_time_column = 't'",
    ),
    (
        "create materialized view if not exists mv into sink as select i + 1 as ii from s",
        "CREATE MATERIALIZED VIEW IF NOT EXISTS mv INTO sink AS SELECT i + 1 AS ii FROM s",
    ),
    (
        "create external stream if not exists k(id int, v string) settings type = 'kafka',"
        " brokers = 'redpanda-1:9092', topic = 'test', one_message_per_row = true",
        "CREATE EXTERNAL STREAM IF NOT EXISTS k (id int32, v string) SETTINGS type = 'kafka',"
        " brokers = 'redpanda-1:9092', topic = 'test', one_message_per_row = true",
    ),
    (
        "CREATE EXTERNAL TABLE customers SETTINGS type='clickhouse', address='clickhouse:9000', table='customers'",
        "CREATE EXTERNAL TABLE customers SETTINGS type = 'clickhouse', address = 'clickhouse:9000',"
        " table = 'customers'",
    ),
    ("insert into t(a, b) values (1, 'x') (2, 'y')", "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')"),
    ("drop stream if exists s", "DROP STREAM IF EXISTS s"),
    ("rename stream if exists a to b", "RENAME STREAM IF EXISTS a TO b"),
    ("truncate stream s", "TRUNCATE STREAM s"),
    ("alter stream s modify column v int", "ALTER STREAM s MODIFY COLUMN v int32"),
    (
        "alter stream s modify setting logstore_retention_bytes=1000, shards=2",
        "ALTER STREAM s MODIFY SETTING logstore_retention_bytes = 1000, shards = 2",
    ),
    ("alter stream s remove ttl", "ALTER STREAM s REMOVE TTL"),
    ("alter stream s modify ttl now() - 1d", "ALTER STREAM s MODIFY TTL now() - 1d"),
    # type names sqlglot does not know are kept as written
    ("create stream s (t datetime32)", "CREATE STREAM s (t datetime32)"),
    # table functions always print in lower case
    ("SELECT * FROM TUMBLE(TABLE(s), 5s)", "SELECT * FROM tumble(table(s), 5s)"),
    ("kill query where query_id = 'q1' sync", "KILL QUERY WHERE query_id = 'q1' SYNC"),
    (
        "subscribe to select count() from s emit periodic 1s settings checkpoint_interval=1",
        "SUBSCRIBE TO SELECT count() FROM s EMIT PERIODIC 1s SETTINGS checkpoint_interval = 1",
    ),
    ("unsubscribe to '42'", "UNSUBSCRIBE TO '42'"),
    (
        "create or replace format schema p as 'syntax = \"proto3\";' type Protobuf",
        "CREATE OR REPLACE FORMAT SCHEMA p AS 'syntax = \"proto3\";' TYPE Protobuf",
    ),
    ("drop format schema if exists p", "DROP FORMAT SCHEMA IF EXISTS p"),
    ("show create format schema p", "SHOW CREATE FORMAT SCHEMA p"),
    ("show format schemas", "SHOW FORMAT SCHEMAS"),
    (
        "create remote function f(ip string) returns string url 'https://x' auth_method 'none'",
        "CREATE REMOTE FUNCTION f(ip string) RETURNS string URL 'https://x' AUTH_METHOD 'none'",
    ),
    (
        "create aggregate function g(v float32) returns float32 language javascript as $$ {} $$",
        "CREATE AGGREGATE FUNCTION g(v float32) RETURNS float32 LANGUAGE javascript AS $$ {} $$",
    ),
    ("recover from '42'", "RECOVER FROM '42'"),
]


@pytest.mark.parametrize(("source", "expected"), GOLDEN, ids=[g[1][:50] for g in GOLDEN])
def test_golden_generation(source: str, expected: str) -> None:
    assert sqlglot.parse_one(source, read="proton").sql(dialect="proton") == expected
    assert roundtrip_failure(expected) is None


def test_catalog_proton_ddl_round_trips() -> None:
    from streams.ddl import ddl

    statements = ddl("proton") + ddl("proton", ttl_days=7)
    assert statements
    for statement in statements:
        tree = sqlglot.parse_one(statement, read="proton")
        assert isinstance(tree, exp.Create) and tree.kind == "STREAM", statement
        assert roundtrip_failure(statement) is None, statement


def test_emit_after_close_is_spelled_per_version() -> None:
    sql = "select count() from tumble(s, 5s) group by window_start emit after window close with delay 1s"
    tree = sqlglot.parse_one(sql, read="proton16")
    head = "SELECT count() FROM tumble(s, 5s) GROUP BY window_start EMIT "
    assert tree.sql(dialect="proton") == head + "AFTER WINDOW CLOSE WITH DELAY 1s"
    assert tree.sql(dialect="proton16") == head + "AFTER WATERMARK WITH DELAY 1s"
    # both dialects read both spellings into the same tree
    assert sqlglot.parse_one(tree.sql(dialect="proton16"), read="proton") == tree
    assert sqlglot.parse_one(tree.sql(dialect="proton"), read="proton16") == tree


def test_3x_only_emit_clauses_are_reported_unsupported_for_16() -> None:
    select = sqlglot.parse_one("select count() from s emit on update with batch 1s", read="proton")
    assert select.sql(dialect="proton").endswith("EMIT ON UPDATE WITH BATCH 1s")
    with pytest.raises(sqlglot.errors.UnsupportedError):
        select.sql(dialect="proton16", unsupported_level=sqlglot.ErrorLevel.RAISE)


def test_the_corpus_check_catches_silent_data_loss() -> None:
    # ClickHouse's own dialect reads the comma-less second row as a table alias: it round-trips,
    # but the row's string literals are gone, and the check must say so.
    assert roundtrip_failure("insert into t (a) values ('x') ('y')", "clickhouse") is not None
    assert roundtrip_failure("insert into t (a) values ('x') ('y')") is None
    assert roundtrip_failure("create stream s (i int)") is None
    assert roundtrip_failure("grant select on default.* to r") == "opaque Command fallback"


def test_emit_prints_after_limit_and_offset_before_settings() -> None:
    select = sqlglot.parse_one("select a from t settings x = 1 limit 2 offset 1", read="proton")
    select.set("emit", Emit.periodic("5s"))
    assert select.sql(dialect="proton") == "SELECT a FROM t LIMIT 2 OFFSET 1 EMIT PERIODIC 5s SETTINGS x = 1"


# --------------------------------------------------------------------------------------------
# builders (golden)
# --------------------------------------------------------------------------------------------


def _select_from(source: exp.Expr, *projections: str) -> exp.Select:
    return exp.select(*(sqlglot.parse_one(p, read="proton") for p in projections)).from_(source)


def test_builders_render_proton_sql() -> None:
    select = _select_from(tumble("syslog_stream", "5m", time_column="timestamp"), "window_start", "count()")
    select = select.group_by("window_start")
    select.set("emit", Emit.after_close(delay=interval(10, "s")))
    assert select.sql(dialect="proton") == (
        "SELECT window_start, count() FROM tumble(syslog_stream, timestamp, 5m)"
        " GROUP BY window_start EMIT AFTER WINDOW CLOSE WITH DELAY 10s"
    )
    assert select.sql(dialect="proton16").endswith("EMIT AFTER WATERMARK WITH DELAY 10s")

    assert _select_from(hop("s", "1s", "60s"), "1").sql(dialect="proton") == "SELECT 1 FROM hop(s, 1s, 60s)"
    assert _select_from(session("s", "5m", "ts"), "1").sql(dialect="proton") == ("SELECT 1 FROM session(s, ts, 5m)")
    assert _select_from(table("devices"), "1").sql(dialect="proton") == "SELECT 1 FROM table(devices)"
    assert _select_from(dedup("s", "id", "ts", within="120s"), "1").sql(dialect="proton") == (
        "SELECT 1 FROM dedup(s, id, ts, 120s)"
    )
    assert _select_from(changelog(table("s"), "id"), "1").sql(dialect="proton") == (
        "SELECT 1 FROM changelog(table(s), id)"
    )
    # builders make the same trees the parser makes
    parsed = sqlglot.parse_one("select 1 from tumble(s, ts, 5m)", read="proton")
    assert parsed.args["from_"].this == tumble("s", "5m", time_column="ts")
    parsed = sqlglot.parse_one("select 1 from table(db.devices)", read="proton")
    assert parsed.args["from_"].this == table(exp.to_table("db.devices"))

    for emit, text in [
        (Emit.on_update(), "ON UPDATE"),
        (Emit.periodic("2s", repeat=True), "PERIODIC 2s REPEAT"),
        (Emit.after_close(), "AFTER WINDOW CLOSE"),
        (Emit.after_close("2s", "5s"), "AFTER WINDOW CLOSE WITH DELAY 2s AND TIMEOUT 5s"),
        (Emit.changelog(), "CHANGELOG"),
        (Emit.stream(), "STREAM"),
        (Emit.timeout_after("5s"), "TIMEOUT 5s"),
        (Emit.last_for("10m", proctime=True), "LAST 10m ON PROCTIME"),
    ]:
        query = _select_from(exp.to_table("t"), "1")
        query.set("emit", emit)
        assert query.sql(dialect="proton") == f"SELECT 1 FROM t EMIT {text}"


def test_ddl_builders_render_proton_sql() -> None:
    select = sqlglot.parse_one("select a, b from s", read="proton")
    assert create_materialized_view("mv", select, into="sink").sql(dialect="proton") == (
        "CREATE MATERIALIZED VIEW IF NOT EXISTS mv INTO sink AS SELECT a, b FROM s"
    )
    assert create_materialized_view("mv", select).sql(dialect="proton") == (
        "CREATE MATERIALIZED VIEW IF NOT EXISTS mv AS SELECT a, b FROM s"
    )
    settings = {"type": "timeplus", "hosts": "127.0.0.1:8080", "stream": "out", "secure": False}
    assert create_external_stream("to_adapter", settings).sql(dialect="proton") == (
        "CREATE EXTERNAL STREAM IF NOT EXISTS to_adapter SETTINGS type = 'timeplus',"
        " hosts = '127.0.0.1:8080', stream = 'out', secure = false"
    )
    settings = {"type": "clickhouse", "address": "127.0.0.1:9000", "table": "t", "pooled_connections": 3}
    assert create_external_table("history", settings).sql(dialect="proton") == (
        "CREATE EXTERNAL TABLE IF NOT EXISTS history SETTINGS type = 'clickhouse',"
        " address = '127.0.0.1:9000', table = 't', pooled_connections = 3"
    )
    with pytest.raises(TypeError):
        create_external_table("x", {"bad": 1.5})
    with pytest.raises(ValueError):
        create_external_stream("x", {"not a name": 1})


setting_values = st.one_of(st.text(max_size=40), st.integers(min_value=0, max_value=2**63 - 1), st.booleans())
setting_names = st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(setting_names, setting_values, min_size=1, max_size=6),
    st.sampled_from([create_external_stream, create_external_table]),
)
def test_ddl_builder_settings_survive_any_text(settings_map: dict[str, object], build: object) -> None:
    tree = build("sink", settings_map)  # type: ignore[operator]
    generated = tree.sql(dialect="proton")
    reparsed = sqlglot.parse_one(generated, read="proton")
    assert reparsed == tree
    values = {e.this.name: e.expression.to_py() for e in reparsed.find(exp.SettingsProperty).expressions}
    assert values == settings_map


def test_typed_functions_built_by_the_compiler_render_snake_case() -> None:
    col = exp.column
    cases = [
        (exp.CountIf(this=col("x")), "count_if(x)"),
        (exp.Quantile(this=col("v"), quantile=exp.Literal.number(0.9)), "quantile(v, 0.9)"),
        (exp.ArgMax(this=col("a"), expression=col("b")), "arg_max(a, b)"),
        (exp.ArgMin(this=col("a"), expression=col("b")), "arg_min(a, b)"),
        (exp.ApproxDistinct(this=col("a")), "unique(a)"),
        (exp.ArrayAgg(this=col("a")), "group_array(a)"),
        (exp.Count(this=exp.Star()), "count(*)"),
        (exp.Avg(this=col("a")), "avg(a)"),
        (exp.Lag(this=col("a"), offset=exp.Literal.number(2)), "lag(a, 2)"),
        (exp.DayOfMonth(this=col("t")), "to_day_of_month(t)"),
        (exp.TimestampTrunc(this=col("t"), unit=exp.var("MINUTE")), "date_trunc('minute', t)"),
        (exp.Length(this=col("s")), "length(s)"),
        (exp.Coalesce(this=col("a"), expressions=[col("b")]), "coalesce(a, b)"),
        (exp.DataType.build("text"), "string"),
        (exp.DataType.build("nullable(int)", dialect="proton"), "nullable(int32)"),
        (exp.DataType.build("timestamp"), "datetime"),
        (exp.DataType.build("low_cardinality(string)", dialect="proton"), "low_cardinality(string)"),
    ]
    for node, text in cases:
        assert node.sql(dialect="proton") == text


@pytest.mark.parametrize("bad", ["5 parsecs", "5x"])
def test_interval_builder_rejects_unknown_units(bad: str) -> None:
    with pytest.raises(ValueError):
        Emit.periodic(bad)


# --------------------------------------------------------------------------------------------
# garbage in: clear errors, never crashes or hangs
# --------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=120))
def test_garbage_raises_sqlglot_errors_only(text: str) -> None:
    try:
        for tree in sqlglot.parse(text, read="proton"):
            if tree is not None:
                tree.sql(dialect="proton")
    except sqlglot.errors.SqlglotError:
        pass


_FRAGMENTS = ["(", ")", "[", "]", "'", ",", "emit", "emit periodic", " and ", "::", ":", "{", "}", "5s", "`"]
_FRAGMENTS += ["with delay", "latest", "join", "settings", "partition by", "interval", ";", "\\", '"']


@st.composite
def mutated_corpus_statements(draw: st.DrawFn) -> str:
    """A covered corpus statement, truncated, with a token dropped, or with a fragment spliced in."""
    query = draw(st.sampled_from(covered_corpus()))
    cut = draw(st.integers(min_value=0, max_value=len(query)))
    words = query.split()
    drop = draw(st.integers(min_value=0, max_value=max(len(words) - 1, 0)))
    return draw(
        st.sampled_from(
            [
                query[:cut],
                " ".join(words[:drop] + words[drop + 1 :]),
                query[:cut] + draw(st.sampled_from(_FRAGMENTS)) + query[cut:],
            ]
        )
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_corpus_statements(), st.sampled_from(["proton", "proton16"]))
def test_mutated_corpus_statements_raise_sqlglot_errors_only(text: str, dialect: str) -> None:
    try:
        for tree in sqlglot.parse(text, read=dialect):
            if tree is not None:
                tree.sql(dialect=dialect)
    except sqlglot.errors.SqlglotError:
        pass


def test_nested_map_literals() -> None:
    tree = sqlglot.parse_one("select {'a': {'b': 1}}, x:y from t", read="proton")
    assert tree.sql(dialect="proton") == "SELECT map('a', map('b', 1)), x:y FROM t"
    with pytest.raises(sqlglot.errors.ParseError):
        sqlglot.parse_one("select {'a': {'b': 1}", read="proton")


def test_nesting_beyond_the_stack_is_a_sqlglot_error() -> None:
    with pytest.raises(sqlglot.errors.ParseError, match="nested too deeply"):
        sqlglot.parse_one("select " + "(" * 5000 + "1" + ")" * 5000, read="proton")
    deep: exp.Expr = exp.Literal.number(1)
    for _ in range(5000):
        deep = exp.Paren(this=deep)
    with pytest.raises(sqlglot.errors.SqlglotError, match="nested too deeply"):
        exp.select(deep).sql(dialect="proton")


def test_oversized_statement_parses() -> None:
    wide = "select " + " + ".join(f"c{i}" for i in range(5000)) + " from t emit periodic 1s"
    assert sqlglot.parse_one(wide, read="proton").sql(dialect="proton").endswith("EMIT PERIODIC 1s")


@pytest.mark.parametrize(
    "bad",
    [
        "select * from t emit",
        "select * from t emit periodic",
        "select * from t emit after watermark with delay",
        "select * from t emit periodic 1s and periodic 2s",
        "select * from t emit after watermark and after window close",
        "subscribe to",
        "create materialized view mv into as select 1",
        "select * from tumble(t, 5s",
    ],
)
def test_truncated_proton_clauses_are_parse_errors(bad: str) -> None:
    with pytest.raises(sqlglot.errors.ParseError):
        sqlglot.parse_one(bad, read="proton")


# --------------------------------------------------------------------------------------------
# property: builder compositions round-trip
# --------------------------------------------------------------------------------------------

_UNITS = ["ns", "us", "ms", "s", "m", "h", "d", "w"]
intervals = st.builds(interval, st.integers(min_value=1, max_value=10_000), st.sampled_from(_UNITS))
names = st.sampled_from(["gnmi", "netflow", "logs", "traps", "bgp_updates", "devices"])
columns = st.sampled_from(["device_id", "if_name", "src_ip", "severity", "bytes", "peer_as"])

windows = st.one_of(
    st.builds(tumble, names, intervals, st.one_of(st.none(), st.just("timestamp"))),
    st.builds(hop, names, intervals, intervals, st.one_of(st.none(), st.just("timestamp"))),
    st.builds(session, names, intervals, st.one_of(st.none(), st.just("timestamp"))),
    st.builds(table, names),
)


@st.composite
def combined_emits(draw: st.DrawFn) -> Emit:
    """Any combination of EMIT clauses, set directly on the node."""
    maybe = lambda strategy: draw(st.one_of(st.none(), strategy))  # noqa: E731 - local shorthand
    after_close = draw(st.booleans())
    periodic = maybe(intervals)
    last = maybe(intervals)
    emit = Emit(
        mode=maybe(st.sampled_from(["STREAM", "CHANGELOG"]).map(exp.var)),
        after_close=after_close or None,
        delay=maybe(intervals) if after_close else None,
        periodic=periodic,
        repeat=(periodic is not None and draw(st.booleans())) or None,
        on_update=draw(st.booleans()) or None,
        timeout=maybe(intervals),
        last=last,
        proctime=(last is not None and draw(st.booleans())) or None,
    )
    if not any(emit.args.values()):
        emit.set("on_update", True)
    return emit


emits = st.one_of(
    st.none(),
    combined_emits(),
    st.builds(Emit.after_close, st.one_of(st.none(), intervals), st.one_of(st.none(), intervals)),
    st.builds(Emit.periodic, intervals, st.booleans()),
    st.just(Emit.on_update()),
    st.just(Emit.changelog()),
    st.just(Emit.stream()),
    st.builds(Emit.timeout_after, intervals),
    st.builds(Emit.last_for, intervals, st.booleans()),
)


def _aggregate(kind: str, column: str, level: float) -> exp.Expr:
    col = exp.column(column)
    return {
        "count": exp.Count(this=exp.Star()),
        "count_if": exp.CountIf(this=exp.GT(this=col, expression=exp.Literal.number(0))),
        "quantile": exp.Quantile(this=col, quantile=exp.Literal.number(level)),
        "arg_max": exp.ArgMax(this=col, expression=exp.column("timestamp")),
        "avg": exp.Avg(this=col),
        "p95": exp.Anonymous(this="p95", expressions=[col]),
        "unique_exact": exp.Anonymous(this="unique_exact", expressions=[col]),
        "latest": exp.Anonymous(this="latest", expressions=[col]),
        "bucket": exp.Anonymous(this="to_start_of_interval", expressions=[exp.column("timestamp"), interval(1, "m")]),
    }[kind]


aggregates = st.builds(
    _aggregate,
    st.sampled_from(["count", "count_if", "quantile", "arg_max", "avg", "p95", "unique_exact", "latest", "bucket"]),
    columns,
    st.sampled_from([0.5, 0.9, 0.99]),
)


@st.composite
def streaming_queries(draw: st.DrawFn) -> exp.Select:
    select = exp.select("window_start", *draw(st.lists(aggregates, min_size=1, max_size=4)))
    select = select.from_(draw(windows))
    if draw(st.booleans()):
        select = select.where(exp.GT(this=exp.column(draw(columns)), expression=exp.Literal.number(0)))
    if draw(st.booleans()):
        select.set("partition_by", [exp.column(draw(columns))])
    select = select.group_by("window_start")
    if draw(st.booleans()):
        select = select.limit(draw(st.integers(min_value=1, max_value=100)))
    emit = draw(emits)
    if emit is not None:
        select.set("emit", emit)
    if draw(st.booleans()):
        select.set("settings", [exp.EQ(this=exp.column("seek_to"), expression=exp.Literal.string("earliest"))])
    return select


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streaming_queries(), st.sampled_from(["proton", "proton16"]))
def test_builder_compositions_round_trip(select: exp.Select, dialect: str) -> None:
    generated = select.sql(dialect=dialect)
    reparsed = sqlglot.parse_one(generated, read=dialect)
    assert reparsed.sql(dialect=dialect) == generated
    assert sqlglot.parse_one(reparsed.sql(dialect=dialect), read=dialect) == reparsed
    # the other version reads it too and keeps the same tree; pretty output reads back the same
    other = "proton16" if dialect == "proton" else "proton"
    assert sqlglot.parse_one(generated, read=other) == reparsed
    assert sqlglot.parse_one(select.sql(dialect=dialect, pretty=True), read=dialect) == reparsed
