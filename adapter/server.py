"""The asyncio server speaking Proton's native TCP protocol (the server side of specs/proton.md §4.7).

Per connection: Hello, then Ping/Pong, TablesStatus, Query (INSERT, DESC, SHOW CREATE) with its
external-table Data and, for INSERT, the client's Data blocks. Every received block is relayed as
it arrives; EndOfStream is sent only after JetStream acknowledged every block of the INSERT.

Hostile input is bounded: a packet that has begun may not stall longer than ``packet_timeout``; a
connection may buffer at most one block (``Limits.max_block_bytes``) plus one compressed frame;
declared sizes are checked before anything is allocated; at most ``max_connections`` clients. A
malformed packet gets an Exception and the connection is closed (its stream is out of sync).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from adapter import native as nv
from adapter.compression import METHOD_LZ4, compress_frame, decompress_frame, frame_size
from adapter.lean import release_memory
from adapter.native import NeedMore, ProtocolError
from adapter.relay import Insert, Relay, RelayError
from adapter.schema import DESCRIBE_COLUMNS, describe_rows, find_stream, proton_columns, show_create, to_catalog

log = logging.getLogger("adapter.server")

_IDENT = r"`?([A-Za-z_][A-Za-z0-9_]*)`?"
_NAME = rf"(?:{_IDENT}\.)?{_IDENT}"
RE_INSERT = re.compile(
    rf"^\s*INSERT\s+INTO\s+(?:STREAM\s+)?{_NAME}\s*(?:\(([^)]*)\))?\s*(VALUES|FORMAT\s+Native)?\s*(.*)$", re.I | re.S
)
RE_DESC = re.compile(rf"^\s*DESC(?:RIBE)?\s+(?:TABLE\s+|STREAM\s+)?{_NAME}\s*;?\s*$", re.I)
RE_SHOW_CREATE = re.compile(rf"^\s*SHOW\s+CREATE\s+(?:TABLE\s+|STREAM\s+)?{_NAME}\s*;?\s*$", re.I)


@dataclass
class ServerOptions:
    """Tunables of the native-protocol server (the ``[server]`` config table)."""

    limits: nv.Limits = field(default_factory=nv.Limits)
    packet_timeout: float = 30.0  # a packet that has begun may stall (no bytes at all) this long
    idle_timeout: float = 3600.0  # between packets (a materialized view's INSERT may idle long)
    max_connections: int = 64
    users: dict[str, str] = field(default_factory=dict)  # empty: any non-empty user name
    streams: list[str] = field(default_factory=list)  # empty: every catalog stream
    timezone: str = "UTC"
    release_memory: bool = False  # give freed heap back to the kernel after each INSERT (the daemon sets it)


@dataclass
class ServerStats:
    connections: int = 0
    active: int = 0
    inserts: int = 0
    inserts_failed: int = 0
    protocol_errors: int = 0
    rejected_connections: int = 0


class _Closed(Exception):
    """The peer closed the connection (cleanly between packets)."""


class Conn:
    """A connection's read buffer: parse functions are retried on :class:`NeedMore` after reading more."""

    def __init__(self, reader: asyncio.StreamReader, opts: ServerOptions) -> None:
        self.reader = reader
        self.opts = opts
        self.buf = bytearray()
        self.pos = 0
        self.cap = opts.limits.max_block_bytes + (1 << 20)

    def compact(self) -> None:
        """Drop consumed bytes (between packets) when that is cheap relative to what remains."""
        if self.pos and (self.pos == len(self.buf) or self.pos > max(1 << 20, len(self.buf) // 2)):
            del self.buf[: self.pos]
            self.pos = 0

    async def more(self, hint: int, *, idle: bool = False, exact: bool = True) -> None:
        """Read ``hint`` more bytes, or with ``exact=False`` up to that many while they keep coming.

        A guess is made when a string column is cut (its end is unknown): we then read what the peer
        sends without pause, up to double the buffer, so a big block is re-parsed a bounded number
        of times, and return early when the peer pauses (it may have sent the whole packet already).
        """
        avail = len(self.buf) - self.pos
        want = max(hint, 1)
        if avail + want > self.cap:
            raise ProtocolError(nv.LIMIT_EXCEEDED, f"packet larger than the limit of {self.cap} bytes")
        target = len(self.buf) + want
        # a stalled packet times out; a slow but progressing one (a client encoding its next column) does not
        timeout = self.opts.idle_timeout if idle and avail == 0 else self.opts.packet_timeout
        got_some = False
        while len(self.buf) < target:
            try:
                wait = min(timeout, 0.05) if got_some and not exact else timeout
                chunk = await asyncio.wait_for(self.reader.read(max(65536, min(avail, 8 << 20))), wait)
            except TimeoutError:
                if got_some:  # the peer paused after sending something: parse what we have
                    return
                what = "idle connection" if idle and avail == 0 else "packet incomplete"
                raise ProtocolError(nv.TIMEOUT_EXCEEDED, f"{what} after {timeout:g} s") from None
            if not chunk:
                if avail == 0 and idle:
                    raise _Closed
                raise ProtocolError(nv.NETWORK_ERROR, "connection closed inside a packet", fatal=True)
            self.buf += chunk
            got_some = True

    async def parse(self, fn: Callable[[bytearray, int], tuple[Any, int]], *, idle: bool = False) -> Any:
        """Run ``fn(buf, pos)`` until it has enough bytes; advance past what it consumed."""
        first = True
        while True:
            try:
                value, end = fn(self.buf, self.pos)
            except NeedMore as e:
                hint = e.hint if e.exact else max(e.hint, len(self.buf) - self.pos)
                await self.more(hint, idle=idle and first, exact=e.exact)
                first = False
                continue
            self.pos = end
            return value

    async def take(self, n: int) -> memoryview:
        """The next ``n`` bytes (for compressed frames)."""
        while len(self.buf) - self.pos < n:
            await self.more(n - (len(self.buf) - self.pos))
        view = memoryview(self.buf)[self.pos : self.pos + n]
        self.pos += n
        return view


@dataclass
class Hello:
    client_name: str
    revision: int
    database: str
    user: str
    password: str = field(default="", repr=False)


@dataclass
class Query:
    query_id: str
    text: str
    compression: bool
    settings: dict[str, str]


class NativeServer:
    """Serves Proton clients; ``relay`` receives INSERT blocks (None answers INSERTs with an error)."""

    def __init__(self, relay: Relay | None, opts: ServerOptions | None = None) -> None:
        self.relay = relay
        self.opts = opts or ServerOptions()
        self.stats = ServerStats()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._idle: set[asyncio.Task] = set()  # connections waiting between packets (no query running)
        self._draining = False

    async def start(self, host: str, port: int, ssl_ctx: ssl.SSLContext | None = None,
                    verify_peer: Callable[[Any], None] | None = None) -> tuple[str, int]:
        """Listen; returns the bound address. ``verify_peer(ssl_object)`` may reject a TLS client."""
        self._verify_peer = verify_peer
        self._server = await asyncio.start_server(self._accept, host, port, ssl=ssl_ctx, limit=1 << 16)
        return self._server.sockets[0].getsockname()[:2]

    async def close(self, grace: float = 30.0) -> None:
        """Stop accepting; let running INSERTs finish (up to ``grace`` s), then close the rest."""
        self._draining = True
        if self._server is not None:
            self._server.close()
        for t in list(self._idle):  # nothing in flight on these: close them now
            t.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.stats.connections += 1
        try:
            if self.stats.active >= self.opts.max_connections:
                self.stats.rejected_connections += 1
                writer.write(nv.exception_packet(nv.TOO_MANY_SIMULTANEOUS_QUERIES, "too many connections"))
                return
            self.stats.active += 1
            try:
                if self._verify_peer is not None:
                    self._verify_peer(writer.get_extra_info("ssl_object"))
                await self._serve(Conn(reader, self.opts), writer)
            finally:
                self.stats.active -= 1
        except _Closed:
            pass
        except ProtocolError as e:
            self.stats.protocol_errors += 1
            log.warning("closing connection from %s: %s", writer.get_extra_info("peername"), e)
            with contextlib.suppress(Exception):
                writer.write(nv.exception_packet(e.code, str(e)))
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            log.info("connection lost: %s", e)
        except asyncio.CancelledError:
            if not self._draining:
                raise
        except Exception as e:  # a bug must cost one connection, not the daemon
            log.exception("unexpected error on a connection")
            with contextlib.suppress(Exception):
                writer.write(nv.exception_packet(nv.UNKNOWN_EXCEPTION, f"{type(e).__name__}: {e}"))
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.drain(), 5)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5)

    # -- conversation ------------------------------------------------------------------------------

    async def _serve(self, conn: Conn, writer: asyncio.StreamWriter) -> None:
        hello = await self._handshake(conn, writer)
        rev = min(hello.revision, nv.SERVER_REVISION)
        task = asyncio.current_task()
        while not self._draining:
            conn.compact()
            self._idle.add(task)  # type: ignore[arg-type]
            try:
                kind = await conn.parse(nv.read_varuint, idle=True)
            finally:
                self._idle.discard(task)  # type: ignore[arg-type]
            if kind == nv.C_PING:
                writer.write(nv.varuint(nv.S_PONG))
            elif kind == nv.C_TABLES_STATUS:
                tables = await conn.parse(_parse_tables_status)
                known = [(db, t) for db, t in tables if find_stream(t, self.opts.streams)]
                writer.write(nv.tables_status_packet(known))
            elif kind == nv.C_QUERY:
                query = await conn.parse(lambda b, p: _parse_query(b, p, rev))
                await self._query(conn, writer, query)
            elif kind in (nv.C_CANCEL, nv.C_KEEPALIVE):
                continue
            elif kind == nv.C_DATA:
                raise ProtocolError(nv.UNEXPECTED_PACKET_FROM_CLIENT, "Data packet outside a query")
            else:
                raise ProtocolError(nv.UNKNOWN_PACKET_FROM_CLIENT, f"unknown packet type {kind}")
            await writer.drain()

    async def _handshake(self, conn: Conn, writer: asyncio.StreamWriter) -> Hello:
        await conn.more(1, idle=True)
        if conn.buf[0:1] in (b"G", b"P", b"H"):
            raise ProtocolError(nv.UNEXPECTED_PACKET_FROM_CLIENT, "this is Proton's native TCP port, not HTTP")
        hello = await conn.parse(_parse_hello)
        if not hello.user or (self.opts.users and self.opts.users.get(hello.user) != hello.password):
            raise ProtocolError(nv.AUTHENTICATION_FAILED, f"{hello.user or '(empty)'}: authentication failed")
        writer.write(nv.hello_packet(hello.revision, self.opts.timezone))
        await writer.drain()
        if min(hello.revision, nv.SERVER_REVISION) >= nv.REV_QUOTA_KEY_ADDENDUM:
            await conn.parse(lambda b, p: nv.read_str(b, p))  # quota key addendum
        return hello

    async def _query(self, conn: Conn, writer: asyncio.StreamWriter, query: Query) -> None:
        # external tables: Data packets ending with an empty block, consumed before answering
        while True:
            batch, _ = await self._read_data(conn, query.compression)
            if batch is None:
                break
        m = RE_INSERT.match(query.text)
        if m:
            return await self._insert(conn, writer, query, m)
        for regex, answer in ((RE_DESC, self._describe), (RE_SHOW_CREATE, self._show_create)):
            m = regex.match(query.text)
            if m:
                ent = find_stream(m.group(2), self.opts.streams)
                if ent is None:
                    return self._error(writer, nv.UNKNOWN_TABLE, f"stream {m.group(2)} does not exist")
                cols, rows = answer(ent)
                self._send_data(writer, query, nv.encode_block(cols, rows))
                writer.write(nv.varuint(nv.S_EOS))
                return None
        what = query.text[:200]
        return self._error(writer, nv.NOT_IMPLEMENTED, f"the adapter accepts INSERT, DESC and SHOW CREATE, not: {what}")

    @staticmethod
    def _describe(ent: Any) -> tuple[list, list]:
        return DESCRIBE_COLUMNS, describe_rows(ent)

    @staticmethod
    def _show_create(ent: Any) -> tuple[list, list]:
        return [("statement", "string")], [(show_create(ent),)]

    def _error(self, writer: asyncio.StreamWriter, code: int, message: str) -> None:
        writer.write(nv.exception_packet(code, message))

    def _send_data(self, writer: asyncio.StreamWriter, query: Query, block: bytes) -> None:
        payload = compress_frame(block, METHOD_LZ4) if query.compression else block
        writer.write(nv.varuint(nv.S_DATA) + nv.string("") + payload)

    async def _read_data(self, conn: Conn, compressed: bool) -> tuple[pa.RecordBatch | None, bytes | bytearray]:
        """The next Data packet's block; (None, b"") for the empty end-of-data block."""
        conn.compact()  # between packets: a long INSERT must not grow the buffer
        # waiting for the next block is idle time: a materialized view's INSERT may pause for long
        kind = await conn.parse(nv.read_varuint, idle=True)
        if kind != nv.C_DATA:
            raise ProtocolError(nv.UNEXPECTED_PACKET_FROM_CLIENT, f"expected a Data packet, got packet type {kind}")
        await conn.parse(lambda b, p: nv.read_str(b, p, 4096))  # external table name
        if compressed:
            return await self._read_compressed_block(conn)
        start = conn.pos
        reader = nv.BlockReader(self.opts.limits)
        batch, _cols = await conn.parse(lambda b, p: _block(reader, b, p))
        with memoryview(conn.buf) as view:  # one copy (a bytearray slice and bytes() would make two)
            raw = bytes(view[start : conn.pos])
        return (None, b"") if batch.num_columns == 0 and batch.num_rows == 0 else (batch, raw)

    async def _read_compressed_block(self, conn: Conn) -> tuple[pa.RecordBatch | None, bytes | bytearray]:
        """Frames until the block inside them parses (frames never cross packets)."""
        data = bytearray()
        limit = self.opts.limits.max_block_bytes
        reader = nv.BlockReader(self.opts.limits)
        while True:
            size = await conn.parse(lambda b, p: (frame_size(b, p, limit), p))
            frame = await conn.take(size)
            data += decompress_frame(frame)
            if len(data) > limit:
                raise ProtocolError(nv.LIMIT_EXCEEDED, f"block larger than {limit} bytes")
            try:
                batch, _cols, end = reader.parse(data, 0)
            except NeedMore:
                continue
            if end != len(data):
                raise ProtocolError(nv.INCORRECT_DATA, "compressed frames hold bytes after the block")
            return (None, b"") if batch.num_columns == 0 and batch.num_rows == 0 else (batch, data)

    async def _insert(self, conn: Conn, writer: asyncio.StreamWriter, query: Query, m: re.Match) -> None:
        stream, columns, rest = m.group(2), m.group(3), m.group(5).strip()
        ent = find_stream(stream, self.opts.streams)
        if ent is None:
            return self._error(writer, nv.UNKNOWN_TABLE, f"stream {stream} does not exist")
        if rest:
            return self._error(writer, nv.NOT_IMPLEMENTED, "INSERT with inline VALUES text; send Data blocks")
        if self.relay is None:
            return self._error(writer, nv.NOT_IMPLEMENTED, "this adapter has no relay configured")
        known = dict(proton_columns(ent))
        names = [c.strip().strip("`") for c in columns.split(",")] if columns else list(known)
        missing = [n for n in names if n not in known]
        if missing:
            return self._error(writer, nv.NO_SUCH_COLUMN_IN_TABLE, f"no column {missing[0]} in stream {ent.stream}")
        self._send_data(writer, query, nv.encode_block([(n, known[n]) for n in names]))
        await writer.drain()
        self.stats.inserts += 1
        ins = Insert(ent.stream, query.settings.get("insert_deduplication_token") or None)
        failure: ProtocolError | None = None
        try:
            while True:
                batch, raw = await self._read_data(conn, query.compression)
                if batch is None:
                    break
                if failure is not None:
                    continue  # keep reading to the end-of-data block, then answer the error
                try:
                    await self.relay.add_block(ins, to_catalog(ent, batch), raw)
                    del batch, raw
                    if self.opts.release_memory:  # a long INSERT (a materialized view's) releases too
                        release_memory(min_interval=1.0)
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
                    why = f"block does not fit stream {ent.stream}: {e}"
                    failure = ProtocolError(nv.TYPE_MISMATCH, why, fatal=False)
                except RelayError as e:
                    failure = ProtocolError(nv.NETWORK_ERROR, f"JetStream publish failed: {e}", fatal=False)
            if failure is None:
                await self.relay.finish(ins)
        except RelayError as e:
            failure = ProtocolError(nv.NETWORK_ERROR, f"JetStream did not acknowledge every block: {e}", fatal=False)
        except BaseException:
            self.relay.abandon(ins)
            self.stats.inserts_failed += 1
            raise
        if failure is not None:
            self.relay.abandon(ins)
            self.stats.inserts_failed += 1
            return self._error(writer, failure.code, str(failure))
        writer.write(nv.varuint(nv.S_EOS))
        if self.opts.release_memory:
            release_memory()
        return None


# --------------------------------------------------------------------------------------------------
# packet parsers (buffer, position) -> (value, position)


def _block(reader: nv.BlockReader, buf: bytearray, pos: int) -> tuple[tuple[pa.RecordBatch, list], int]:
    batch, cols, end = reader.parse(buf, pos)
    return (batch, cols), end


def _parse_hello(buf: bytearray, pos: int) -> tuple[Hello, int]:
    kind, pos = nv.read_varuint(buf, pos)
    if kind != nv.C_HELLO:
        raise ProtocolError(nv.UNEXPECTED_PACKET_FROM_CLIENT, f"expected Hello, got packet type {kind}")
    name, pos = nv.read_str(buf, pos, 1024)
    _major, pos = nv.read_varuint(buf, pos)
    _minor, pos = nv.read_varuint(buf, pos)
    revision, pos = nv.read_varuint(buf, pos)
    database, pos = nv.read_str(buf, pos, 1024)
    user, pos = nv.read_str(buf, pos, 1024)
    password, pos = nv.read_str(buf, pos, 1024)
    return Hello(name, revision, database, user, password), pos


def _parse_tables_status(buf: bytearray, pos: int) -> tuple[list[tuple[str, str]], int]:
    n, pos = nv.read_varuint(buf, pos)
    if n > 1024:
        raise ProtocolError(nv.LIMIT_EXCEEDED, f"TablesStatusRequest for {n} tables")
    out = []
    for _ in range(n):
        db, pos = nv.read_str(buf, pos, 1024)
        table, pos = nv.read_str(buf, pos, 1024)
        out.append((db, table))
    return out, pos


def _skip_client_info(buf: bytearray, pos: int, rev: int) -> int:
    """ClientInfo (specs/proton.md §4.3), every interface branch."""
    kind, pos = nv.read_fixed(buf, pos, "<B")
    if kind == 0:
        return pos
    for _ in range(3):  # initial user, query id, address
        _, pos = nv.read_str(buf, pos)
    _, pos = nv.read_fixed(buf, pos, "<Q")  # initial_query_start_time_us
    interface, pos = nv.read_fixed(buf, pos, "<B")
    if interface == 1:
        for _ in range(3):  # os user, client hostname, client name
            _, pos = nv.read_str(buf, pos)
        for _ in range(3):  # major, minor, tcp revision
            _, pos = nv.read_varuint(buf, pos)
    elif interface == 2:
        _, pos = nv.read_fixed(buf, pos, "<B")
        for _ in range(3):  # user agent, forwarded for, referer
            _, pos = nv.read_str(buf, pos)
    if rev >= nv.REV_QUOTA_KEY_IN_CLIENT_INFO:
        _, pos = nv.read_str(buf, pos)
    if rev >= nv.REV_DISTRIBUTED_DEPTH:
        _, pos = nv.read_varuint(buf, pos)
    if interface == 1 and rev >= nv.REV_VERSION_PATCH:
        _, pos = nv.read_varuint(buf, pos)
    if rev >= nv.REV_OPENTELEMETRY:
        has_otel, pos = nv.read_fixed(buf, pos, "<B")
        if has_otel:
            pos += 16 + 8
            if pos > len(buf):
                raise NeedMore(pos - len(buf))
            _, pos = nv.read_str(buf, pos)
            _, pos = nv.read_fixed(buf, pos, "<B")
    if rev >= nv.REV_PARALLEL_REPLICAS:
        for _ in range(3):
            _, pos = nv.read_varuint(buf, pos)
    return pos


def _parse_settings(buf: bytearray, pos: int) -> tuple[dict[str, str], int]:
    settings: dict[str, str] = {}
    for _ in range(10000):
        name, pos = nv.read_str(buf, pos, 1024)
        if not name:
            return settings, pos
        _flags, pos = nv.read_varuint(buf, pos)
        value, pos = nv.read_str(buf, pos)
        settings[name] = value
    raise ProtocolError(nv.LIMIT_EXCEEDED, "more than 10000 settings")


def _parse_query(buf: bytearray, pos: int, rev: int) -> tuple[Query, int]:
    query_id, pos = nv.read_str(buf, pos, 1024)
    if rev >= nv.REV_CLIENT_INFO:
        pos = _skip_client_info(buf, pos, rev)
    settings, pos = _parse_settings(buf, pos)
    if rev >= nv.REV_INTERSERVER_SECRET:
        _, pos = nv.read_str(buf, pos, 1024)
    _stage, pos = nv.read_varuint(buf, pos)
    compression, pos = nv.read_varuint(buf, pos)
    text, pos = nv.read_str(buf, pos, 1 << 20)
    if rev >= nv.REV_QUERY_PARAMS:
        _params, pos = _parse_settings(buf, pos)
    if compression > 1:
        raise ProtocolError(nv.INCORRECT_DATA, f"compression flag {compression}")
    return Query(query_id, text, bool(compression), settings), pos
