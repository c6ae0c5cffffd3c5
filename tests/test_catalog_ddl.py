"""The catalog and its generated DDL: executable in chdb and DuckDB, parseable as Proton, golden as text."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import sqlglot

from srql_compiler.cli import main as srql_main
from srql_compiler.dialects import proton  # noqa: F401 - registers the dialect
from streams.catalog import CATALOG
from streams.ddl import ddl

GOLDEN = Path(__file__).parent / "data" / "ddl_golden.sql"


def _render_all() -> str:
    parts = []
    for target in ("proton", "clickhouse", "duckdb"):
        parts.append(f"-- {target}")
        parts += [s + ";" for s in ddl(target)]
    return "\n\n".join(parts) + "\n"


def test_ddl_golden() -> None:
    text = _render_all()
    if os.environ.get("SRQL_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_clickhouse_ddl_runs_in_chdb_with_ttl_and_partitions(tmp_path) -> None:
    from chdb import session

    sess = session.Session(str(tmp_path))
    try:
        for stmt in ddl("clickhouse"):
            sess.query(stmt)
        tables = str(sess.query("SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name",
                                "CSV")).split()
        assert [t.strip('"') for t in tables] == sorted(e.stream for e in CATALOG)
        create = str(sess.query("SHOW CREATE TABLE syslog_stream", "TSVRaw"))
        assert "PARTITION BY toDate(timestamp)" in create and "TTL toDateTime(timestamp) + toIntervalDay(90)" in create
        inv = str(sess.query("SHOW CREATE TABLE device_inventory", "TSVRaw"))
        assert "ReplacingMergeTree(last_seen)" in inv and "TTL" not in inv
    finally:
        sess.close()


def test_duckdb_ddl_runs_and_matches_arrow_schemas() -> None:
    con = duckdb.connect()
    for stmt in ddl("duckdb"):
        con.execute(stmt)
    for ent in CATALOG:
        got = con.sql(f"SELECT * FROM {ent.stream}").to_arrow_table().schema
        want = ent.arrow_schema()
        assert got.names == want.names
        for g, w in zip(got, want, strict=True):
            if pa.types.is_timestamp(w.type):  # the archive keeps naive UTC timestamps
                assert pa.types.is_timestamp(g.type)
            else:
                assert g.type == w.type, (ent.name, g.name)


@pytest.mark.parametrize("stmt", ddl("proton"))
def test_proton_ddl_parses_with_the_proton_dialect(stmt: str) -> None:
    tree = sqlglot.parse_one(stmt, read="proton")
    assert sqlglot.parse_one(tree.sql(dialect="proton"), read="proton") == tree


def test_every_entity_declares_a_valid_event_time_and_unique_names() -> None:
    names = [n for e in CATALOG for n in e.names]
    assert len(CATALOG.all_names()) == len(set(names))
    for ent in CATALOG:
        assert ent.field(ent.event_time).type.name == "timestamp"
        assert set(ent.order_by) <= {f.name for f in ent.fields}


def test_srql_ddl_command(capsys) -> None:
    assert srql_main(["ddl", "--target", "clickhouse", "syslog"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CREATE TABLE IF NOT EXISTS syslog_stream")
    assert srql_main(["ddl", "--target", "duckdb", "nosuch"]) == 1
