"""The ClickHouse history sink: catalog tables with a 90-day TTL, Arrow batch inserts, SQL and SHOW queries.

By default ClickHouse runs embedded (chdb) with its data in a directory on disk; with a URL
(``http://user:pass@host:8123/db``) it talks to a ClickHouse server through clickhouse-connect.

chdb runs one embedded server per process, bound to one data directory: every sink of the process that
uses chdb must use the same directory (the sink keeps one shared session per process and says so
clearly when asked for a second directory).
"""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from streams.catalog import CATALOG, Entity
from streams.ddl import clickhouse_ddl

DEFAULT_PATH = Path.home() / ".serviceradar" / "chdb"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SinkError(RuntimeError):
    """A sink could not be opened or written, with what to do about it."""


# ---------------------------------------------------------------------------------------------------
# backends


class _Chdb:
    """Embedded ClickHouse. One session per process (chdb's own limit), shared by every sink."""

    _session = None
    _path: str | None = None

    def __init__(self, path: str) -> None:
        from chdb import session

        path = str(Path(path).resolve())
        if _Chdb._session is None:
            Path(path).mkdir(parents=True, exist_ok=True)
            try:
                _Chdb._session = session.Session(path)
            except Exception as e:  # chdb raises RuntimeError with the server's message
                raise SinkError(f"cannot open chdb at {path}: {e}") from e
            _Chdb._path = path
        elif _Chdb._path != path:
            raise SinkError(
                f"chdb is already open at {_Chdb._path} in this process; chdb allows one data directory "
                f"per process, so {path} cannot be opened too (use the same directory, or another process)"
            )
        self.path = path

    def command(self, sql: str) -> None:
        self._query(sql, "CSV")

    def query_arrow(self, sql: str) -> pa.Table:
        return self._query(sql, "ArrowTable")

    def insert_arrow(self, table_name: str, table: pa.Table) -> int:
        buf = io.BytesIO()
        with pa.ipc.new_stream(buf, table.schema) as writer:
            writer.write_table(table)
        try:
            with _Chdb._session.send_insert(f"INSERT INTO {table_name}", "ArrowStream") as ins:  # type: ignore[union-attr]
                ins.append(buf.getvalue())
                ins.finish()
        except Exception as e:
            raise SinkError(f"insert into {table_name} failed: {e}") from e
        return table.num_rows

    def _query(self, sql: str, fmt: str):
        try:
            return _Chdb._session.query(sql, fmt)  # type: ignore[union-attr]
        except Exception as e:
            raise SinkError(f"ClickHouse (chdb) error: {e}\n  in: {sql[:300]}") from e

    def close(self) -> None:
        """The shared session stays open for the process (chdb cannot reopen another directory anyway)."""


class _Server:
    """A ClickHouse server over HTTP via clickhouse-connect."""

    def __init__(self, url: str) -> None:
        import clickhouse_connect

        try:
            self.client = clickhouse_connect.get_client(dsn=url, connect_timeout=5)
        except Exception as e:
            raise SinkError(f"cannot reach ClickHouse at {_redact(url)}: {e}") from e

    def command(self, sql: str) -> None:
        self.client.command(sql)

    def query_arrow(self, sql: str) -> pa.Table:
        return self.client.query_arrow(sql)

    def insert_arrow(self, table_name: str, table: pa.Table) -> int:
        self.client.insert_arrow(table_name, table)
        return table.num_rows

    def close(self) -> None:
        self.client.close()


def _redact(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url)


# ---------------------------------------------------------------------------------------------------
# the sink


class ClickHouseSink:
    """History in ClickHouse: one table per catalog entity (catalog DDL, 90-day TTL) plus result tables."""

    def __init__(self, path: str | Path | None = None, url: str | None = None, ttl_days: int | None = None) -> None:
        self.backend = _Server(url) if url else _Chdb(str(path or DEFAULT_PATH))
        self.ttl_days = ttl_days
        self._ready: set[str] = set()
        self._pending: dict[str, list[pa.Table]] = {}

    # -- tables ------------------------------------------------------------------------------------

    def ensure(self, entity: Entity | str) -> Entity:
        """Create the entity's table if needed (from :func:`streams.ddl.clickhouse_ddl`)."""
        ent = _entity(entity)
        if ent.stream not in self._ready:
            self.backend.command(clickhouse_ddl(ent, ttl_days=self.ttl_days))
            self._ready.add(ent.stream)
        return ent

    def ensure_results(self, name: str, schema: pa.Schema, ttl_days: int = 90) -> None:
        """A table for a standing query's results (window_start orders it and drives the TTL)."""
        if name in self._ready:
            return
        _check_ident(name)
        cols = ",\n".join(f"    `{f.name}` {_ch_type(f.type, f.nullable)}" for f in schema)
        time_col = next((f.name for f in schema if pa.types.is_timestamp(f.type)), None)
        order = f"`{time_col}`" if time_col else "tuple()"
        ttl = f"\nTTL toDateTime(`{time_col}`) + INTERVAL {ttl_days} DAY" if time_col and ttl_days else ""
        self.backend.command(
            f"CREATE TABLE IF NOT EXISTS {name}\n(\n{cols}\n)\nENGINE = MergeTree\nORDER BY {order}{ttl}"
        )
        self._ready.add(name)

    # -- writes ------------------------------------------------------------------------------------

    def insert(self, entity: Entity | str, batch: pa.Table | pa.RecordBatch, buffer_rows: int = 0) -> int:
        """Insert one batch of an entity (cast to the catalog's Arrow schema); returns rows accepted.

        With ``buffer_rows``, batches are held until that many rows of the entity are pending and then
        written as one insert (each ClickHouse insert makes a part: fewer, larger inserts are much
        cheaper); :meth:`flush` writes what is pending.
        """
        ent = self.ensure(entity)
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if table.num_rows == 0:
            return 0
        try:
            table = table.select(ent.arrow_schema().names).cast(ent.arrow_schema())
        except (KeyError, pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise SinkError(f"batch does not match the {ent.name} schema: {e}") from e
        if not buffer_rows:
            return self.backend.insert_arrow(ent.stream, table)
        pending = self._pending.setdefault(ent.stream, [])
        pending.append(table)
        if sum(t.num_rows for t in pending) >= buffer_rows:
            self._flush(ent.stream)
        return table.num_rows

    def flush(self) -> int:
        """Write every pending buffered batch; returns rows written."""
        return sum(self._flush(stream) for stream in list(self._pending))

    def _flush(self, stream: str) -> int:
        pending = self._pending.pop(stream, [])
        return self.backend.insert_arrow(stream, pa.concat_tables(pending)) if pending else 0

    def insert_results(self, name: str, table: pa.Table) -> int:
        """Insert a standing query's results into the table ``name`` (created from the first batch)."""
        if table.num_rows == 0:
            return 0
        self.ensure_results(name, table.schema)
        return self.backend.insert_arrow(name, table)

    def forget_since(self, since: datetime, results: tuple[str, ...] | list[str] = ()) -> None:
        """Delete rows at or after ``since`` from every catalog entity's table and the named result tables.

        A job that regenerates a time range (the demo, a replay) calls this first so that a second run
        replaces the range instead of storing it twice. Entities are cut by their event time, result
        tables by the timestamp column :meth:`ensure_results` sorted them by (``window_start``); tables
        not created yet, and result tables without a time, are skipped.
        """
        ms = int(since.timestamp() * 1000)
        tables = self.sql("SELECT name, sorting_key FROM system.tables WHERE database = currentDatabase()")
        sorted_by = dict(zip(tables.column("name").to_pylist(), tables.column("sorting_key").to_pylist(), strict=True))
        cuts = [(ent.stream, ent.event_time) for ent in CATALOG if ent.stream in sorted_by]
        for name in results:
            _check_ident(name)
            if sorted_by.get(name):
                cuts.append((name, sorted_by[name]))
        since_sql = f"fromUnixTimestamp64Milli(toInt64({ms}), 'UTC')"
        for table, column in cuts:
            self.backend.command(f"DELETE FROM {table} WHERE `{column}` >= {since_sql}")

    # -- reads -------------------------------------------------------------------------------------

    def sql(self, query: str) -> pa.Table:
        """Run ClickHouse SQL and return an Arrow table."""
        return self.backend.query_arrow(query)

    def show(self, srql: str) -> pa.Table:
        """Run a SHOW/FIND/COUNT query (compiled to ClickHouse SQL) over history."""
        from srql_compiler.api import compile as compile_srql

        compiled = compile_srql(srql, target="clickhouse")
        self.ensure(compiled.plan.source.entity)
        if compiled.plan.join is not None:
            self.ensure(compiled.plan.join.right.entity)
        return self.sql(compiled.sql)

    def count(self, entity: Entity | str) -> int:
        ent = self.ensure(entity)
        return int(self.sql(f"SELECT count() AS n FROM {ent.stream}").column("n")[0].as_py())

    # -- archive -----------------------------------------------------------------------------------

    def archive(self, archive, older_than_days: int, now: datetime | None = None,
                entities: list[str] | None = None) -> dict[str, int]:
        """Move whole days older than ``older_than_days`` from ClickHouse into the Parquet ``archive``.

        Each day is written to Parquet first and only then dropped from ClickHouse (a rerun after a
        crash rewrites the same day file, so nothing is lost or duplicated). Returns rows moved per entity.
        """
        cutoff = ((now or datetime.now(UTC)).astimezone(UTC) - timedelta(days=older_than_days)).date()
        moved: dict[str, int] = {}
        for ent in CATALOG:
            if ent.is_inventory or (entities and ent.name not in entities):
                continue
            self.ensure(ent)
            for day in self._days_before(ent, cutoff):
                rows = self.sql(
                    f"SELECT * FROM {ent.stream} WHERE toDate({ent.event_time}) = toDate('{day.isoformat()}')"
                )
                archive.write_day(ent, day, rows)
                self.backend.command(f"ALTER TABLE {ent.stream} DROP PARTITION '{day.isoformat()}'")
                moved[ent.name] = moved.get(ent.name, 0) + rows.num_rows
        return moved

    def _days_before(self, ent: Entity, cutoff: date) -> list[date]:
        days = self.sql(
            f"SELECT DISTINCT toDate({ent.event_time}) AS day FROM {ent.stream} "
            f"WHERE toDate({ent.event_time}) < toDate('{cutoff.isoformat()}') ORDER BY day"
        )
        return [d for d in days.column("day").to_pylist()] if days.num_rows else []

    def close(self) -> None:
        self.flush()
        self.backend.close()


def _entity(entity: Entity | str) -> Entity:
    if isinstance(entity, Entity):
        return entity
    ent = CATALOG.get(entity) or CATALOG.by_stream(entity)
    if ent is None:
        raise SinkError(f"unknown entity {entity!r}; known: {', '.join(e.name for e in CATALOG)}")
    return ent


def _check_ident(name: str) -> None:
    if not _IDENT.match(name):
        raise SinkError(f"result table name {name!r} must be a plain identifier (letters, digits, _)")


_CH_TYPES = {
    pa.string(): "String", pa.large_string(): "String", pa.float64(): "Float64", pa.float32(): "Float32",
    pa.int64(): "Int64", pa.int32(): "Int32", pa.int16(): "Int16", pa.int8(): "Int8", pa.uint64(): "UInt64",
    pa.uint32(): "UInt32", pa.uint16(): "UInt16", pa.uint8(): "UInt8", pa.bool_(): "Bool",
}


def _ch_type(t: pa.DataType, nullable: bool) -> str:
    if pa.types.is_timestamp(t):
        base = "DateTime64(3, 'UTC')"
        return base  # window bounds are never NULL
    base = _CH_TYPES.get(t)
    if base is None:
        raise SinkError(f"no ClickHouse type for Arrow {t} in a result table")
    return f"Nullable({base})" if nullable and not pa.types.is_string(t) else base
