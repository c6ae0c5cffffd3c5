"""The Parquet archive: one directory per stream, one per day, written and queried with DuckDB.

Layout: ``<root>/<stream>/<YYYY-MM-DD>/*.parquet`` with the columns of the catalog's DuckDB DDL
(timestamps as naive UTC). SHOW queries compile to DuckDB SQL that reads ``<root>/<stream>/**/*.parquet``.
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streams.catalog import CATALOG, Entity
from streams.ddl import duckdb_ddl


class ParquetArchive:
    """Parquet files partitioned by entity and day under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _con(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        return con

    def write(self, entity: Entity | str, table: pa.Table) -> list[Path]:
        """Append a batch of ``entity`` rows, split by day (one new file per day touched)."""
        ent = _entity(entity)
        if table.num_rows == 0:
            return []
        ts = table.column(ent.event_time).cast(pa.int64()).to_numpy()
        days = ts // 86_400_000
        paths = []
        for d in np.unique(days):  # one iteration per day, not per row
            part = table.filter(pa.array(days == d))
            day = date.fromordinal(date(1970, 1, 1).toordinal() + int(d))
            paths.append(self._write_file(ent, day, part, f"part-{uuid.uuid4().hex}.parquet"))
        return paths

    def write_day(self, entity: Entity | str, day: date, table: pa.Table) -> Path:
        """Write one whole day exported from ClickHouse (a fixed file name: rerunning replaces it)."""
        return self._write_file(_entity(entity), day, table, "clickhouse.parquet")

    def _write_file(self, ent: Entity, day: date, table: pa.Table, name: str) -> Path:
        folder = self.root / ent.stream / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        tmp = folder / f".{name}.tmp"
        con = self._con()
        con.execute(duckdb_ddl(ent).replace(f"EXISTS {ent.stream}", "EXISTS t"))
        con.register("batch", _plain_times(table, ent))
        cols = ", ".join(f'"{f.name}"' for f in ent.fields)
        con.execute(f"INSERT INTO t SELECT {cols} FROM batch")
        con.execute(f"COPY t TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)")
        con.close()
        tmp.replace(path)  # whole files only: a reader never sees a partial one
        return path

    def days(self, entity: Entity | str) -> list[str]:
        folder = self.root / _entity(entity).stream
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.exists() else []

    def read(self, entity: Entity | str) -> pa.Table:
        """Every archived row of ``entity`` (timestamps back as Arrow UTC)."""
        ent = _entity(entity)
        if not self.days(ent):
            return ent.arrow_schema().empty_table()
        con = self._con()
        out = con.sql(f"SELECT * FROM read_parquet('{self.root / ent.stream}/**/*.parquet')").to_arrow_table()
        return _utc_times(out)

    def show(self, srql: str) -> pa.Table:
        """Run a SHOW/FIND/COUNT query over the archive (the compiler's DuckDB SQL)."""
        from srql_compiler.api import compile as compile_srql

        compiled = compile_srql(srql, target="duckdb", archive=str(self.root))
        ent = CATALOG[compiled.plan.source.entity]
        if not self.days(ent):
            raise FileNotFoundError(f"the archive at {self.root} holds no {ent.name} data yet")
        con = self._con()
        return _utc_times(con.sql(compiled.sql).to_arrow_table())


def _entity(entity: Entity | str) -> Entity:
    if isinstance(entity, Entity):
        return entity
    ent = CATALOG.get(entity) or CATALOG.by_stream(entity)
    if ent is None:
        raise KeyError(f"unknown entity {entity!r}")
    return ent


def _plain_times(table: pa.Table, ent: Entity) -> pa.Table:
    """Timestamps as naive UTC (the archive never depends on a session time zone)."""
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) and f.type.tz is not None:
            table = table.set_column(i, f.name, pc.cast(table.column(i), pa.timestamp("ms", tz="UTC")).cast(
                pa.int64()).cast(pa.timestamp("ms")))
    return table


def _utc_times(table: pa.Table) -> pa.Table:
    """Archive timestamps (naive UTC, any unit) as the catalog's Arrow type: ms, UTC."""
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) and (f.type.tz is None or f.type.unit != "ms"):
            naive = pc.cast(table.column(i), pa.timestamp(f.type.unit), safe=False) if f.type.tz else table.column(i)
            ms = pc.cast(naive, pa.timestamp("ms"), safe=False).cast(pa.int64())
            table = table.set_column(i, f.name, ms.cast(pa.timestamp("ms", tz="UTC")))
    return table
