"""The adapter's native-protocol server against hostile and real input, with a real nats-server.

proton-driver (the real client) is the reference: its bytes are recorded through a proxy and then
truncated, corrupted, slowed down or inflated. Every bad connection must get an Exception packet (or
a clean close) within the packet timeout, and the server must keep serving well-behaved clients.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import nats
import pyarrow as pa
import pytest
from adapter_fabric_helpers import private_tmp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proton_driver import Client

from adapter import native as nv
from adapter.compression import compress_frame, decompress_frame
from adapter.relay import Relay
from adapter.server import NativeServer, ServerOptions
from fabric.process import NatsProcess, free_port
from streams.catalog import CATALOG

GUARD = 120.0
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
work = pytest.fixture(scope="module")(private_tmp)


@pytest.fixture(scope="module")
def nats_url(work: Path):
    port = free_port()
    proc = NatsProcess(work, "nats", f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: "{work}/js" }}\n', port)
    proc.start()
    yield proc.url
    proc.stop()


_tenants = iter(range(10**6))


@asynccontextmanager
async def serving(url: str, **opts) -> AsyncIterator[tuple[NativeServer, int, object, str]]:
    tenant = f"t{next(_tenants)}"
    nc = await nats.connect(url)
    js = nc.jetstream()
    relay = Relay(js, tenant, max_payload=nc.max_payload)
    await relay.ensure_stream(f"SR_{tenant.upper()}", 64 << 20, 60)
    opts.setdefault("packet_timeout", 2.0)
    server = NativeServer(relay, ServerOptions(**opts))
    _, port = await server.start("127.0.0.1", 0)
    try:
        yield server, port, js, f"SR_{tenant.upper()}"
    finally:
        await server.close(5)
        await nc.close()


def gnmi_rows(n: int, tag: str = "d") -> list[tuple]:
    return [(NOW, f"{tag}{i}", "m", float(i), None, {"k": "v"}, False) for i in range(n)]


def insert(port: int, rows: list[tuple], compression=False) -> int:
    c = Client("127.0.0.1", port=port, compression=compression, settings={"insert_block_size": 50})
    try:
        cols = "timestamp, device, metric, value, value_str, labels, deleted"
        return c.execute(f"INSERT INTO gnmi_stream ({cols}) VALUES", rows)
    finally:
        c.disconnect()


async def stored_rows(js, stream: str) -> list[dict]:
    """Every row JetStream holds for ``stream`` (decoded from the queued proton.publish payloads)."""
    import wrpc
    from adapter.relay import PUBLISH

    info = await js.stream_info(stream)
    rows = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(stream, seq)
        (batch,) = wrpc.decode(PUBLISH.param_types, msg.data)
        rows += pa.ipc.open_stream(bytes(batch["arrow-ipc"])).read_all().to_pylist()
    return rows


def raw_exchange(port: int, payload: bytes, *, hello: bool = True, timeout: float = 10.0) -> bytes:
    """Send ``payload`` (after a valid Hello if asked), half-close, return everything the server sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if hello:
            s.sendall(HELLO)
            _read_hello(s)
        try:  # the server may answer and close before it has read everything we send
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


HELLO = (nv.varuint(0) + nv.string("Proton python-driver") + nv.varuint(20) + nv.varuint(10) + nv.varuint(54453)
         + nv.string("default") + nv.string("default") + nv.string(""))  # fmt: skip


def _read_hello(s: socket.socket) -> None:
    data = s.recv(4096)
    assert data[:1] == bytes([nv.S_HELLO]), data


def exception_code(data: bytes) -> int | None:
    i = data.find(bytes([nv.S_EXCEPTION]))
    while i != -1:
        with_name = data[i + 5 : i + 5 + 14]
        if with_name == b"\x0dDB::Exception":
            return struct.unpack_from("<i", data, i + 1)[0]
        i = data.find(bytes([nv.S_EXCEPTION]), i + 1)
    return None


class Recorder:
    """A TCP proxy recording what proton-driver sends (the real client's bytes for the fuzz tests)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sent = bytearray()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        conn, _ = self.sock.accept()
        up = socket.create_connection(("127.0.0.1", self.target))

        def pump(a: socket.socket, b: socket.socket, record: bool) -> None:
            while data := a.recv(65536):
                if record:
                    self.sent += data
                b.sendall(data)
            b.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=pump, args=(up, conn, False), daemon=True)
        t.start()
        pump(conn, up, True)
        t.join(10)


def record(port: int, compression) -> bytes:
    rec = Recorder(port)
    assert insert(rec.port, gnmi_rows(20, "rec"), compression) == 20
    return bytes(rec.sent)


async def until(pred, timeout: float = 30.0) -> None:
    """Readiness wait (not a timing assertion): poll ``pred`` until true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, GUARD))


# --------------------------------------------------------------------------------------------------


def test_adapter_protocol_real_client_rows_reach_jetstream_and_desc(nats_url: str) -> None:
    async def main() -> None:
        async with serving(nats_url) as (server, port, js, stream):
            rows = gnmi_rows(120)
            assert await asyncio.to_thread(insert, port, rows, "lz4") == 120
            got = await stored_rows(js, stream)
            assert sorted(r["device"] for r in got) == sorted(r[1] for r in rows)
            assert all(r["labels"] == [("k", "v")] for r in got)
            c = Client("127.0.0.1", port=port)
            desc = await asyncio.to_thread(c.execute, "DESCRIBE STREAM default.gnmi_stream")
            fields = CATALOG["metrics"].fields
            assert [(r[0], r[1]) for r in desc] == [(f.name, f.type.proton(f.nullable)) for f in fields]
            (stmt,) = (await asyncio.to_thread(c.execute, "SHOW CREATE gnmi_stream"))[0]
            assert stmt.startswith("CREATE STREAM IF NOT EXISTS gnmi_stream")
            with pytest.raises(Exception, match=r"UNKNOWN_TABLE|does not exist"):
                await asyncio.to_thread(c.execute, "DESC nope")
            with pytest.raises(Exception, match="no column"):
                await asyncio.to_thread(c.execute, "INSERT INTO gnmi_stream (bogus) VALUES", [(1,)])
            assert await asyncio.to_thread(c.execute, "INSERT INTO gnmi_stream (device) VALUES", [("x",)]) == 1
            c.disconnect()
            assert server.stats.inserts_failed == 0

    run(main())


def test_adapter_protocol_tables_status_and_ping(nats_url: str) -> None:
    async def main() -> None:
        async with serving(nats_url) as (_, port, _js, _s):
            req = nv.varuint(nv.C_TABLES_STATUS) + nv.varuint(2) + nv.string("db") + nv.string("gnmi_stream") \
                + nv.string("db") + nv.string("nope") + nv.varuint(nv.C_PING)
            out = await asyncio.to_thread(raw_exchange, port, req)
            assert out == nv.tables_status_packet([("db", "gnmi_stream")]) + nv.varuint(nv.S_PONG)

    run(main())


def test_adapter_protocol_truncated_and_corrupted_real_sessions(nats_url: str) -> None:
    """Every prefix cut of a recorded session (uncompressed and LZ4) and byte flips in LZ4 frames."""

    async def main() -> None:
        async with serving(nats_url) as (server, port, _js, _stream):
            for compression in (False, "lz4"):
                session = await asyncio.to_thread(record, port, compression)
                cuts = sorted({*range(0, len(session), max(1, len(session) // 40)), len(session) - 1})
                for cut in cuts:
                    await asyncio.to_thread(raw_exchange, port, session[:cut], hello=False)
            before = server.stats.inserts
            session = await asyncio.to_thread(record, port, "lz4")
            hello_len = len(HELLO)
            for offset in range(hello_len + 60, len(session) - 2, max(1, (len(session) - hello_len) // 25)):
                bad = bytearray(session)
                bad[offset] ^= 0xFF
                out = await asyncio.to_thread(raw_exchange, port, bytes(bad), hello=False)
                assert out  # an answer (Hello at least), never a hang
            assert server.stats.inserts > before
            # after all that, a real client still works and only complete INSERTs were acknowledged
            assert await asyncio.to_thread(insert, port, gnmi_rows(10, "after")) == 10
            assert server.stats.active <= 1

    run(main())


def test_adapter_protocol_checksum_mismatch_is_rejected(nats_url: str) -> None:
    async def main() -> None:
        async with serving(nats_url) as (_server, port, _js, _s):
            block = nv.encode_block([("device", "string")], [("x",)])
            frame = bytearray(compress_frame(block))
            assert decompress_frame(bytes(frame)) == block
            frame[-1] ^= 0x01
            query = _query("INSERT INTO gnmi_stream (device) VALUES", compressed=True)
            out = await asyncio.to_thread(raw_exchange, port, query + nv.varuint(2) + nv.string("") + bytes(frame))
            assert exception_code(out) == nv.CHECKSUM_DOESNT_MATCH

    run(main())


def _query(text: str, compressed: bool = False) -> bytes:
    """A Query packet as proton-driver 0.3.0 (revision 54453) writes it, with its empty external-table block."""
    client_info = (b"\x01" + nv.string("") * 3 + struct.pack("<Q", 0) + b"\x01" + nv.string("u") + nv.string("h")
                   + nv.string("c") + nv.varuint(20) + nv.varuint(10) + nv.varuint(54453) + nv.string("")
                   + nv.varuint(0) + nv.varuint(0) + b"\x00" + nv.varuint(0) * 3)  # fmt: skip
    empty = nv.encode_block([])
    if compressed:
        empty = compress_frame(empty)
    return (nv.varuint(nv.C_QUERY) + nv.string("q1") + client_info + nv.string("") + nv.string("") + nv.varuint(2)
            + nv.varuint(int(compressed)) + nv.string(text) + nv.varuint(2) + nv.string("") + empty)  # fmt: skip


def test_adapter_protocol_huge_declared_sizes_fail_fast(nats_url: str) -> None:
    async def main() -> None:
        async with serving(nats_url, limits=nv.Limits(max_block_bytes=1 << 20)) as (server, port, _js, _s):
            huge_hello = nv.varuint(0) + nv.varuint(1 << 60)
            out = await asyncio.to_thread(raw_exchange, port, huge_hello, hello=False)
            assert exception_code(out) == nv.TOO_LARGE_SIZE_COMPRESSED
            head = _query("INSERT INTO gnmi_stream (device) VALUES") + nv.varuint(2) + nv.string("")
            rows = nv.varuint(1) + b"\x00\x02\xff\xff\xff\xff\x00" + nv.varuint(1) + nv.varuint(1 << 40)
            out = await asyncio.to_thread(raw_exchange, port, head + rows)
            assert exception_code(out) == nv.LIMIT_EXCEEDED
            one = b"\x01\x00\x02\xff\xff\xff\xff\x00" + nv.varuint(1) + nv.varuint(1) + nv.string("device") \
                + nv.string("string") + nv.varuint(1 << 30)  # a 1 GiB string, never sent
            out = await asyncio.to_thread(raw_exchange, port, head + one)
            assert exception_code(out) == nv.LIMIT_EXCEEDED
            frame = b"\x00" * 16 + struct.pack("<BII", 0x82, 0xFFFFFFF0, 0xFFFFFFF0)
            qc = _query("INSERT INTO gnmi_stream (device) VALUES", compressed=True)
            out = await asyncio.to_thread(raw_exchange, port, qc + nv.varuint(2) + nv.string("") + frame)
            assert exception_code(out) == nv.TOO_LARGE_SIZE_COMPRESSED
            bad_type = b"\x01\x00\x02\xff\xff\xff\xff\x00" + nv.varuint(1) + nv.varuint(1) + nv.string("device") \
                + nv.string("array(" * 40 + "string" + ")" * 40)
            out = await asyncio.to_thread(raw_exchange, port, head + bad_type)
            assert exception_code(out) == nv.UNKNOWN_TYPE
            assert server.stats.protocol_errors >= 5

    run(main())


def test_adapter_protocol_slow_and_idle_clients_time_out_others_served(nats_url: str) -> None:
    async def main() -> None:
        async with serving(nats_url, packet_timeout=0.5, idle_timeout=1.5) as (server, port, _js, _s):
            loop = asyncio.get_running_loop()

            def slow(payload: bytes) -> bytes:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                    s.sendall(payload)
                    out = b""
                    while chunk := s.recv(4096):
                        out += chunk
                    return out

            def pausing():  # a long pause between blocks of one INSERT is idle time, not a stalled packet
                for i, row in enumerate(gnmi_rows(120, "pause")):
                    if i == 60:
                        time.sleep(1.0)  # longer than packet_timeout, shorter than idle_timeout
                    yield row

            assert await asyncio.to_thread(insert, port, pausing()) == 120
            slow_hello = loop.run_in_executor(None, slow, HELLO[:5])
            idle = loop.run_in_executor(None, slow, HELLO)
            # meanwhile a real client is served
            assert await asyncio.to_thread(insert, port, gnmi_rows(5, "fast")) == 5
            assert exception_code(await slow_hello) == nv.TIMEOUT_EXCEEDED
            out = await idle
            assert out[:1] == bytes([nv.S_HELLO]) and exception_code(out) == nv.TIMEOUT_EXCEEDED
            assert server.stats.active == 0

    run(main())


def test_adapter_protocol_connection_limit_and_http(nats_url: str) -> None:
    async def main() -> None:
        async with serving(nats_url, max_connections=2) as (server, port, _js, _s):
            socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
            await until(lambda: server.stats.active == 2)
            out = await asyncio.to_thread(raw_exchange, port, HELLO, hello=False)
            assert exception_code(out) == nv.TOO_MANY_SIMULTANEOUS_QUERIES
            for s in socks:
                s.close()
            await until(lambda: server.stats.active == 0)
            out = await asyncio.to_thread(raw_exchange, port, b"GET / HTTP/1.1\r\n\r\n", hello=False)
            assert exception_code(out) == nv.UNEXPECTED_PACKET_FROM_CLIENT

    run(main())


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(garbage=st.binary(min_size=1, max_size=300), after_hello=st.booleans())
def test_adapter_protocol_random_garbage_never_kills_the_server(nats_url: str, garbage: bytes, after_hello: bool):
    async def main() -> None:
        async with serving(nats_url) as (server, port, _js, _s):
            await asyncio.to_thread(raw_exchange, port, garbage, hello=after_hello)
            out = await asyncio.to_thread(raw_exchange, port, nv.varuint(nv.C_PING))
            assert out == nv.varuint(nv.S_PONG)
            assert server.stats.active == 0 or server.stats.active == 1

    run(main())


_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
_u32 = st.integers(0, 2**32 - 1)
_bgp_row = st.tuples(
    st.just(NOW), _text, _text, _u32, _text, st.sampled_from(["announce", "withdraw", ""]), st.lists(_u32, max_size=5),
    st.none() | _text, st.none() | st.sampled_from(["igp", "egp", "é"]), st.none() | _u32, st.none() | _u32,
    st.lists(_text, max_size=3), st.lists(_text, max_size=2), _u32, st.booleans(), st.booleans(),
)  # fmt: skip


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(_bgp_row, min_size=1, max_size=60), compression=st.sampled_from([False, "lz4", "zstd"]),
       block=st.integers(1, 40))  # fmt: skip
def test_adapter_protocol_random_rows_roundtrip_through_the_real_client(nats_url: str, rows, compression, block):
    """Differential: whatever proton-driver encodes (arrays, nullable, low_cardinality(nullable)), we decode."""
    ent = CATALOG["bgp"]
    cols = ", ".join(f.name for f in ent.fields)

    def do_insert(port: int) -> int:
        c = Client("127.0.0.1", port=port, compression=compression, settings={"insert_block_size": block})
        try:
            return c.execute(f"INSERT INTO {ent.stream} ({cols}) VALUES", rows)
        finally:
            c.disconnect()

    async def main() -> None:
        async with serving(nats_url) as (_server, port, js, stream):
            assert await asyncio.to_thread(do_insert, port) == len(rows)
            got = await stored_rows(js, stream)
            names = [f.name for f in ent.fields]
            want = pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows], schema=ent.arrow_schema())
            assert got == want.to_pylist()

    run(main())


def _cpp_query(text: str, interface: int = 2) -> bytes:
    """A Query as Proton's C++ client (revision 54459) sends it for a `timeplus` external stream:
    secondary query, the originating ClientInfo (here HTTP), changed settings, query parameters, compression."""
    head = b"\x02" + nv.string("default") + nv.string("q0") + nv.string("[::1]:9000") + struct.pack("<Q", 1)
    if interface == 2:
        head += bytes([2]) + b"\x01" + nv.string("curl") + nv.string("") + nv.string("")
    else:
        head += bytes([1]) + nv.string("u") + nv.string("h") + nv.string("proton server") + nv.varuint(1) \
            + nv.varuint(6) + nv.varuint(54459)
    head += nv.string("") + nv.varuint(1)  # quota key, distributed depth
    if interface == 1:
        head += nv.varuint(0)  # version patch
    head += b"\x00" + nv.varuint(0) * 3  # no OpenTelemetry, parallel replicas
    settings = nv.string("insert_distributed_one_random_shard") + nv.varuint(0) + nv.string("1") \
        + nv.string("query_mode") + nv.varuint(1) + nv.string("table") + nv.string("")
    return (nv.varuint(nv.C_QUERY) + nv.string("q1") + head + settings + nv.string("") + nv.varuint(2) + nv.varuint(1)
            + nv.string(text) + nv.string("") + nv.varuint(2) + nv.string("")
            + compress_frame(nv.encode_block([])))  # fmt: skip


def _server_blocks(data: bytes) -> list[pa.RecordBatch]:
    """Data packets (compressed) in a server reply, decoded with our own reader."""
    out, pos = [], 0
    while pos < len(data) and data[pos] == nv.S_DATA:
        _, pos = nv.read_str(data, pos + 1)
        from adapter.compression import frame_size

        size = frame_size(data, pos, 1 << 20)
        block = decompress_frame(data[pos : pos + size])
        out.append(nv.decode_block(bytearray(block), 0)[0])
        pos += size
    return out


def test_adapter_protocol_proton_cpp_client_conversation(nats_url: str) -> None:
    """Conversations C and D of specs/proton.md §4.7 as revision 54459 bytes: Hello + addendum, TablesStatus,
    DESC STREAM and SHOW CREATE (secondary, compressed), then a compressed INSERT with an HTTP ClientInfo."""

    async def main() -> None:
        async with serving(nats_url) as (_server, port, js, stream):
            hello = (nv.varuint(0) + nv.string("proton server") + nv.varuint(1) + nv.varuint(6) + nv.varuint(54459)
                     + nv.string("") + nv.string("default") + nv.string("") + nv.string(""))  # + quota key addendum
            tables = nv.varuint(nv.C_TABLES_STATUS) + nv.varuint(1) + nv.string("default") + nv.string("gnmi_stream")
            desc = _cpp_query("DESC STREAM default.gnmi_stream")
            show = _cpp_query("SHOW CREATE default.gnmi_stream", interface=1)
            out = await asyncio.to_thread(raw_exchange, port, hello + tables + nv.varuint(nv.C_PING) + desc + show,
                                          hello=False)  # fmt: skip
            expected_hello = nv.hello_packet(54459)
            assert out.startswith(expected_hello)
            rest = out[len(expected_hello):]
            status = nv.tables_status_packet([("default", "gnmi_stream")]) + nv.varuint(nv.S_PONG)
            assert rest.startswith(status)
            rest = rest[len(status):]
            first = _server_blocks(rest)
            assert first[0].column("name").to_pylist() == [f.name for f in CATALOG["metrics"].fields]
            assert first[0].column("type").to_pylist()[0] == "datetime64(3, 'UTC')"
            assert rest.count(bytes([nv.S_EOS])) >= 2 and exception_code(rest) is None

            block = nv.encode_block([("device", "string")], [("from-cpp",)])
            insert = (hello + tables[:0] + _cpp_query("INSERT INTO default.gnmi_stream (device) VALUES")
                      + nv.varuint(2) + nv.string("") + compress_frame(block)
                      + nv.varuint(2) + nv.string("") + compress_frame(nv.encode_block([])))  # fmt: skip
            out = await asyncio.to_thread(raw_exchange, port, insert, hello=False)
            rest = out[len(expected_hello):]
            header = _server_blocks(rest)[0]
            assert header.num_rows == 0 and header.schema.names == ["device"]
            assert rest.endswith(bytes([nv.S_EOS])) and exception_code(rest) is None
            assert [r["device"] for r in await stored_rows(js, stream)] == ["from-cpp"]

    run(main())


def test_adapter_protocol_graceful_close_finishes_running_inserts_and_drops_idle(nats_url: str) -> None:
    async def main() -> None:
        async with serving(nats_url) as (server, port, js, stream):
            idle = socket.create_connection(("127.0.0.1", port))
            idle.sendall(HELLO)
            half, resume = threading.Event(), threading.Event()

            def gen():
                for i, row in enumerate(gnmi_rows(400, "drain")):
                    if i == 201:
                        half.set()
                        resume.wait(30)
                    yield row

            ins = asyncio.create_task(asyncio.to_thread(insert, port, gen()))
            await asyncio.to_thread(half.wait, 30)
            await until(lambda: server.stats.inserts == 1)
            closing = asyncio.create_task(server.close(grace=60))
            await until(lambda: server._draining)
            resume.set()
            assert await ins == 400  # the running INSERT completes and is acknowledged
            await asyncio.wait_for(closing, 30)  # the idle connection did not hold the 60 s grace
            assert len(await stored_rows(js, stream)) == 400
            assert idle.recv(4096)[:1] == bytes([nv.S_HELLO])
            idle.close()

    run(main())
