"""Golden tests: whole SQL texts for every target, for SRQL.md's queries and a broader set.

The expected outputs live in tests/data/compile_golden.json. After an intended change, regenerate with
``SRQL_UPDATE_GOLDEN=1 pytest tests/test_compiler_golden.py`` and review the diff before committing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import sqlglot

import srql_compiler
from srql_compiler.dialects import proton  # noqa: F401 - registers the dialects
from srql_compiler.examples import SRQL_MD_EXAMPLES as _EXAMPLES

GOLDEN = Path(__file__).parent / "data" / "compile_golden.json"

# SRQL.md "Must compile (the product's own examples)", verbatim.
SRQL_MD_EXAMPLES = list(_EXAMPLES)  # SRQL.md "Must compile", verbatim

MORE = [
    "SHOW devices",
    "SHOW devices WHERE ip = '192.168.1.1'",
    "SHOW DISTINCT(ip) FROM devices WHERE ip IS NOT NULL ORDER BY ip ASC",
    "SHOW logs FROM YESTERDAY WHERE service = 'serviceradar-sync' AND severity = 'info'",
    "SHOW logs FROM LAST 5 DAYS",
    "SHOW logs FROM LAST 2 MONTHS WHERE severity <= 'err'",
    "SHOW logs SINCE 15m WHERE message CONTAINS '100%' ORDER BY timestamp DESC LIMIT 50",
    "SHOW logs FROM BETWEEN '2025-01-01 00:00:00' AND '2025-01-02' WHERE severity BETWEEN 0 AND 3",
    "COUNT logs WHERE date(timestamp) = TODAY",
    "FIND netflow WHERE src_ip IN '10.0.0.0/8' AND NOT dst_port IN (22, 23) OR protocol = 17",
    "SHOW netflow WHERE dst_ip IN ('10.0.0.0/8', '192.168.0.0/16') AND bytes > 1000 LATEST",
    "SHOW metrics GROUP BY device, metric WINDOW 1h HAVING p95_value > 10 ORDER BY p95_value DESC LIMIT 3",
    "SHOW netflow GROUP BY application WINDOW 1d ORDER BY total_bytes DESC LIMIT 5",
    "SHOW bgp WHERE prefix = '203.0.113.0/24' GROUP BY router WINDOW 10m HAVING withdrawals > 2",
    "SHOW traps WHERE trap_oid LIKE '1.3.6.1.6.3.1.1.5.%' AND version != 'v1' GROUP BY device",
    "STREAM logs WHERE severity <= 'error'",
    "STREAM device, avg_value, max(value) FROM metrics WHERE metric = 'cpu' GROUP BY device WINDOW 30s",
    "STREAM metrics WHERE metric = 'cpu' GROUP BY device WINDOW 10m HOP 1m DELAY 10s HAVING p99_value > 90",
    "STREAM metrics WHERE metric = 'if_errors' GROUP BY device WINDOW 5m SESSION",
    "STREAM metrics WHERE metric = 'latency' GROUP BY device WINDOW 1m DELAY 10s HAVING avg_value > 100",
    "STREAM logs WHERE severity = 'error' GROUP BY device EMIT PERIODIC 5s",
    "STREAM netflow GROUP BY exporter EMIT ON UPDATE",
    "STREAM netflow WHERE src_port = 22 LIMIT 100",
    "STREAM count_distinct(src_ip) AS sources, first(src_ip), last(dst_ip) FROM netflow GROUP BY exporter WINDOW 1m",
]

TARGETS = [("proton", "3"), ("proton", "1.6"), ("clickhouse", None), ("duckdb", None)]


def _render(query: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for target, version in TARGETS:
        key = target if version is None else f"{target}-{version}"
        try:
            c = srql_compiler.compile(query, target, proton_version=version or "3")
            out[key] = {"sql": c.sql, "warnings": c.warnings}
        except srql_compiler.SRQLError as err:
            out[key] = {"error": err.message}
    return out


def _all() -> dict[str, dict[str, object]]:
    return {q: _render(q) for q in SRQL_MD_EXAMPLES + MORE}


def test_golden_outputs() -> None:
    actual = _all()
    if os.environ.get("SRQL_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(actual, indent=1, ensure_ascii=False) + "\n")
    expected = json.loads(GOLDEN.read_text())
    assert actual == expected


def test_srql_md_examples_compile_for_proton_without_errors() -> None:
    for q in SRQL_MD_EXAMPLES:
        for version in ("3", "1.6"):
            assert srql_compiler.compile(q, "proton", proton_version=version).sql.startswith("SELECT ")


def test_syslog_example_matches_srql_md_intent() -> None:
    sql = srql_compiler.compile(SRQL_MD_EXAMPLES[2]).sql
    assert "FROM tumble(syslog_stream, timestamp, 5m)" in sql
    assert "WHERE message LIKE '%Failed password for root%'" in sql
    assert "count(*) AS login_attempts" in sql and sql.endswith("HAVING login_attempts >= 5")


def test_shared_alias_warnings() -> None:
    c = srql_compiler.compile(SRQL_MD_EXAMPLES[0])
    assert c.plan.source.entity == "metrics"
    assert c.warnings == [
        "'devices' resolved to entity 'metrics' (gnmi_stream): 'devices' has no field 'metric', 'value'"
    ]
    c = srql_compiler.compile(SRQL_MD_EXAMPLES[3])
    assert c.plan.source.entity == "bgp"
    assert "'flows' resolved to entity 'bgp'" in c.warnings[0]
    # the entity of that name wins when it has every field
    assert srql_compiler.compile("SHOW devices WHERE site = 'ams'").plan.source.entity == "devices"
    assert srql_compiler.compile("STREAM flows WHERE bytes > 0").plan.source.entity == "netflow"


@pytest.mark.parametrize("query", SRQL_MD_EXAMPLES + MORE)
def test_generated_proton_round_trips(query: str) -> None:
    """Every Proton statement we generate parses back with the Proton dialect to the same tree."""
    for version, dialect in (("3", "proton"), ("1.6", "proton16")):
        try:
            sql = srql_compiler.compile(query, "proton", proton_version=version).sql
        except srql_compiler.SRQLError:
            continue
        tree = sqlglot.parse_one(sql, read=dialect)
        assert sqlglot.parse_one(tree.sql(dialect=dialect), read=dialect) == tree
        assert tree.sql(dialect=dialect).lower() == sql.lower()  # function names are case-insensitive in Proton


def test_materialized_view_into_adapter_and_clickhouse() -> None:
    q = SRQL_MD_EXAMPLES[0]
    c = srql_compiler.compile(q, mv="latency_mv", into="latency_alerts")
    select = srql_compiler.compile(q).sql
    assert c.statements == [
        "CREATE EXTERNAL STREAM IF NOT EXISTS latency_alerts SETTINGS type = 'timeplus', hosts = '127.0.0.1:8080', "
        "stream = 'latency_alerts'",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS latency_mv INTO latency_alerts AS {select}",
    ]
    c = srql_compiler.compile(q, mv="m", into="alerts", sink="clickhouse", sink_address="ch:9000")
    assert c.statements[0] == (
        "CREATE EXTERNAL TABLE IF NOT EXISTS alerts SETTINGS type = 'clickhouse', address = 'ch:9000', table = 'alerts'"
    )
    assert len(srql_compiler.compile(q, mv="m", into="existing", sink="stream").statements) == 1
    with pytest.raises(srql_compiler.SRQLError, match="STREAM queries"):
        srql_compiler.compile("SHOW logs", mv="m", into="x")


def test_output_columns() -> None:
    c = srql_compiler.compile(SRQL_MD_EXAMPLES[1])
    assert c.columns == [("window_start", "timestamp"), ("window_end", "timestamp"), ("application", "string"),
                         ("sum_bytes", "uint64")]
    assert srql_compiler.compile("COUNT logs").columns == [("count", "uint64")]
