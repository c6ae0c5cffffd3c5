"""The Proton backend: the same shape as the embedded :class:`~streams.engine.Engine`, run by Timeplus Proton.

Streams are created from the catalog's Proton DDL, batches are inserted with proton-driver (native TCP,
port 8463), and each standing query is the compiler's Proton SQL run with ``execute_iter`` on its own
connection and thread, its rows delivered as Arrow tables to callbacks and async iterators exactly like
the embedded engine's results. When Proton cannot be reached, :class:`ProtonUnavailable` says where it
looked and how to point the backend elsewhere (or to use the embedded engine instead).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import urlparse

import pyarrow as pa

from srql_compiler import plan as P
from streams.catalog import CATALOG, Entity
from streams.ddl import proton_ddl
from streams.engine.live import StandingQuery
from streams.engine.replay import to_plan

DEFAULT_URL = "proton://default:@127.0.0.1:8463/default"


class ProtonError(RuntimeError):
    """Proton answered, but not with what was asked (a server error, or bytes that are not Proton's)."""


class ProtonUnavailable(ProtonError, ConnectionError):
    """No Proton at the configured address (refused, timed out, or not speaking the native protocol)."""


def _client(url: str, timeout: float):
    from proton_driver import Client

    parsed = urlparse(url)
    if parsed.scheme not in ("proton", "protons"):
        raise ProtonError(f"a Proton URL starts with proton:// or protons:// (got {url!r})")
    return Client(
        host=parsed.hostname or "127.0.0.1", port=parsed.port or 8463, user=parsed.username or "default",
        password=parsed.password or "", database=(parsed.path or "/default").lstrip("/") or "default",
        secure=parsed.scheme == "protons", connect_timeout=timeout, send_receive_timeout=timeout,
        sync_request_timeout=timeout,
    )


def _call(url: str, fn: Callable[[], object]):
    """Run a driver call, turning the driver's errors into ours with the address and a hint."""
    from proton_driver import errors

    try:
        return fn()
    except (errors.NetworkError, errors.SocketTimeoutError, ConnectionError, OSError, EOFError) as e:
        raise ProtonUnavailable(
            f"cannot reach Proton at {_redact(url)}: {e}. Start Proton (native TCP port 8463), pass another "
            f"address, or run the query on the embedded engine (streams.Engine / streams.replay)."
        ) from e
    except errors.ServerException as e:
        raise ProtonError(f"Proton refused the statement: {e}") from e
    except (errors.Error, ValueError, IndexError, KeyError, UnicodeDecodeError, struct_error()) as e:
        raise ProtonUnavailable(
            f"{_redact(url)} did not answer in Proton's native protocol ({type(e).__name__}: {e})"
        ) from e


def struct_error() -> type[Exception]:
    import struct

    return struct.error


def _redact(url: str) -> str:
    p = urlparse(url)
    return f"{p.scheme}://{p.hostname}:{p.port or 8463}{p.path}"


# ---------------------------------------------------------------------------------------------------
# Arrow <-> proton-driver values


def insert_statement(entity: Entity) -> str:
    """The INSERT that proton-driver completes with the column data."""
    return f"INSERT INTO {entity.stream} ({', '.join(f.name for f in entity.fields)}) VALUES"


def insert_columns(entity: Entity, batch: pa.Table) -> list[list]:
    """Columns in catalog order, as the Python values proton-driver encodes (``columnar=True``).

    proton-driver's API takes Python values, so this is a conversion per value inside Arrow's
    ``to_pylist`` (C++); maps become dicts, timestamps aware datetimes.
    """
    schema = entity.arrow_schema()
    table = batch.select(schema.names).cast(schema)
    cols = []
    for f in schema:
        values = table.column(f.name).to_pylist()
        if pa.types.is_map(f.type):
            values = [dict(v) if v is not None else {} for v in values]
        cols.append(values)
    return cols


def rows_to_table(rows: list[tuple], plan: P.Plan) -> pa.Table:
    """Result rows from ``execute_iter`` as an Arrow table of the plan's output columns."""
    schema = pa.schema([(c.name, c.type.arrow()) for c in plan.columns])
    if not rows:
        return schema.empty_table()
    columns = list(zip(*rows, strict=False))
    if len(columns) != len(schema):
        raise ProtonError(f"Proton returned {len(columns)} columns, the query has {len(schema)}")
    return pa.table([pa.array(list(col), f.type) for col, f in zip(columns, schema, strict=True)], schema=schema)


# ---------------------------------------------------------------------------------------------------
# the backend


class ProtonEngine:
    """Standing queries on a Proton server, with the embedded engine's interface (push / register / close)."""

    def __init__(self, url: str = DEFAULT_URL, proton_version: str = "3", timeout: float = 5.0,
                 batch_rows: int = 1000) -> None:
        self.url = url
        self.proton_version = proton_version
        self.timeout = timeout
        self.batch_rows = batch_rows
        self.client = _client(url, timeout)
        self.queries: list[StandingQuery] = []
        self._threads: list[tuple[threading.Thread, object]] = []
        self._stop = threading.Event()

    def ping(self) -> str:
        """Proton's version (raises :class:`ProtonUnavailable` when unreachable)."""
        return str(_call(self.url, lambda: self.client.execute("SELECT version()")[0][0]))

    def create_streams(self, entities: Iterable[Entity | str] | None = None) -> list[str]:
        """``CREATE STREAM IF NOT EXISTS`` for each entity (all of the catalog by default)."""
        made = []
        for e in entities if entities is not None else CATALOG:
            ent = e if isinstance(e, Entity) else CATALOG[e]
            _call(self.url, lambda ent=ent: self.client.execute(proton_ddl(ent)))
            made.append(ent.stream)
        return made

    def push(self, entity: str, batch: pa.Table | pa.RecordBatch) -> int:
        """Insert a batch into the entity's stream; returns rows inserted."""
        ent = CATALOG.get(entity) or CATALOG.by_stream(entity)
        if ent is None:
            raise ValueError(f"unknown entity {entity!r}")
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if table.num_rows == 0:
            return 0
        cols = insert_columns(ent, table)
        return int(_call(self.url, lambda: self.client.execute(insert_statement(ent), cols, columnar=True)) or 0)

    def compile(self, query: str | P.Plan) -> tuple[P.Plan, str]:
        from srql_compiler.api import compile as compile_srql

        if isinstance(query, P.Plan):
            raise ProtonError("the Proton backend needs SRQL text (it runs the compiler's Proton SQL)")
        compiled = compile_srql(query, target="proton", proton_version=self.proton_version)
        return compiled.plan, compiled.sql

    def register(self, query: str, name: str | None = None,
                 callback: Callable[[StandingQuery, pa.Table], None] | None = None) -> StandingQuery:
        """Start ``query`` on Proton; its rows arrive as Arrow tables (``batch_rows`` at a time)."""
        plan, sql = self.compile(query)
        sq = StandingQuery(to_plan(plan), name or f"q{len(self.queries) + 1}")
        if callback is not None:
            sq.callbacks.append(callback)
        client = _client(self.url, self.timeout)
        rows_iter = _call(self.url, lambda: client.execute_iter(sql))
        thread = threading.Thread(target=self._pump, args=(sq, rows_iter, client), daemon=True, name=sq.name)
        self.queries.append(sq)
        self._threads.append((thread, client))
        thread.start()
        return sq

    def _pump(self, sq: StandingQuery, rows: Iterator[tuple], client) -> None:
        buf: list[tuple] = []
        try:
            for row in rows:
                buf.append(row)
                if len(buf) >= self.batch_rows:
                    sq.deliver([rows_to_table(buf, sq.plan)])
                    buf = []
                if self._stop.is_set():
                    break
        except Exception as e:  # the query's thread must end cleanly; the error is kept for the caller
            sq.error = e  # type: ignore[attr-defined]
        finally:
            if buf:
                sq.deliver([rows_to_table(buf, sq.plan)])
            sq._end()

    def tick(self, now: float | None = None) -> int:
        """Proton advances its own watermarks; nothing to do here (the interface matches the Engine's)."""
        return 0

    def close(self) -> None:
        """Stop the standing queries (cancel and disconnect their connections)."""
        self._stop.set()
        for thread, client in self._threads:
            with contextlib.suppress(Exception):  # the connection may already be gone
                client.disconnect()
            thread.join(timeout=self.timeout)
        self.client.disconnect()
