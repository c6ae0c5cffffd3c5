"""Where accumulated batches go: a Parquet file, a Proton stream, the embedded engine, or memory.

Every sink takes whole Arrow tables (the accumulator's flush) and is called from a worker thread, so
blocking I/O here never stalls the event loop. ``close()`` is called once, after the last flush.
"""

from __future__ import annotations

import threading
from typing import Protocol
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq


class SinkError(RuntimeError):
    """A sink cannot be opened or written (unreachable server, unwritable path, ...)."""


class Sink(Protocol):
    """Receives flushed tables of one catalog entity."""

    def write(self, table: pa.Table) -> None: ...

    def close(self) -> None: ...


class MemorySink:
    """Keeps every table in memory: for tests and for library use (``collector.sink.table()``)."""

    def __init__(self) -> None:
        self.tables: list[pa.Table] = []
        self._lock = threading.Lock()

    def write(self, table: pa.Table) -> None:
        with self._lock:
            self.tables.append(table)

    def close(self) -> None:
        pass

    def table(self) -> pa.Table | None:
        """Everything written so far as one table (None before the first flush)."""
        with self._lock:
            return pa.concat_tables(self.tables) if self.tables else None

    def rows(self) -> int:
        with self._lock:
            return sum(t.num_rows for t in self.tables)


class ParquetSink:
    """Appends row groups to one Parquet file with the entity's schema; the file is valid after close()."""

    def __init__(self, path: str, schema: pa.Schema, compression: str = "zstd") -> None:
        try:
            self._writer = pq.ParquetWriter(path, schema, compression=compression)
        except OSError as e:
            raise SinkError(f"cannot open Parquet output {path!r}: {e}") from e
        self.path = path

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()


class ProtonSink:
    """Inserts into a Proton stream over the native protocol with proton-driver.

    URL form: ``proton://[user[:password]@]host[:8463][/database]?stream=NAME``; the stream defaults to
    the catalog's stream name for the entity. The connection is opened eagerly so that an unreachable
    server is reported at start-up with a clear :class:`SinkError`, not at the first flush.
    """

    def __init__(self, url: str, default_stream: str, schema: pa.Schema) -> None:
        from proton_driver import Client  # imported here: only this sink needs the driver

        u = urlparse(url)
        if u.scheme not in ("proton", "tcp"):
            raise SinkError(f"Proton URL must start with proton:// (got {url!r})")
        params = dict(p.split("=", 1) for p in u.query.split("&") if "=" in p)
        self.stream = params.get("stream", default_stream)
        self.host, self.port = u.hostname or "localhost", u.port or 8463
        self._columns = schema.names
        self._client = Client(
            host=self.host,
            port=self.port,
            user=u.username or "default",
            password=u.password or "",
            database=(u.path or "/").strip("/") or "default",
            connect_timeout=3,
        )
        try:
            self._client.execute("SELECT 1")
        except Exception as e:  # the driver raises several unrelated types for a dead server
            raise SinkError(f"Proton at {self.host}:{self.port} is unreachable: {e}") from e

    def write(self, table: pa.Table) -> None:
        cols = ", ".join(f"`{c}`" for c in self._columns)
        # columnar insert: one list per column, no per-row Python objects from us
        data = [_to_driver_column(table.column(c)) for c in self._columns]
        try:
            self._client.execute(f"INSERT INTO `{self.stream}` ({cols}) VALUES", data, columnar=True)
        except Exception as e:
            raise SinkError(f"insert into Proton stream {self.stream!r} failed: {e}") from e

    def close(self) -> None:
        self._client.disconnect()


def _to_driver_column(col: pa.ChunkedArray) -> list:
    if pa.types.is_map(col.type):
        return [dict(v) if v is not None else {} for v in col.to_pylist()]
    return col.to_pylist()


class EngineSink:
    """Pushes every flushed batch into the embedded engine (``streams.Engine.push``)."""

    def __init__(self, entity: str, engine: object | None = None) -> None:
        if engine is None:
            try:
                from streams import Engine  # lazy: the engine is optional for a collector
            except ImportError as e:
                raise SinkError(f"the embedded engine (streams.Engine) is not available: {e}") from e
            engine = Engine()
        self.engine = engine
        self.entity = entity

    def write(self, table: pa.Table) -> None:
        for batch in table.to_batches():
            self.engine.push(self.entity, batch)  # type: ignore[attr-defined]

    def close(self) -> None:
        pass
