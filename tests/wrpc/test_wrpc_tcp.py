"""wRPC over TCP: the spec §2.4 sessions byte for byte in both directions, and bad input."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wrpc
from wrpc import tcp, wit
from wrpc.codec import Limits
from wrpc.tcp import FrameParser, encode_frame

H = bytes.fromhex
WIT = Path(__file__).parent / "wit"
PKG = wit.load(WIT / "integration.wit")
SYNC = PKG.interfaces["sync"]
HELLO = wit.load(WIT / "examples" / "hello.wit").func("handler", "hello")
ECHO = wit.load(WIT / "examples" / "streams.wit").func("handler", "echo")
SYNC_PREFIX = H("00 1a 77 72 70 63 2d 74 65 73 74 3a 69 6e 74 65 67 72 61 74 69 6f 6e 2f 73 79 6e 63")
GUARD = 20.0  # a hang guard only: these tests never measure time


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, GUARD))


def rec(foo: str) -> dict:
    return {"nested": {"foo": foo}}


class SyncImpl:
    """The handler values of wrpc's tests/go/sync.go."""

    def fallible(self, ok: bool) -> Any:
        return wrpc.Ok(True) if ok else wrpc.Err("test")

    def numbers(self) -> tuple:
        return (1, 2, 3, 4, 5, 6, 7, 8, 9.0, 10.0)

    def with_flags(self, a: bool, b: bool, c: bool) -> set:
        return {n for n, on in zip("abc", (a, b, c), strict=True) if on}

    def with_variant_option(self, ok: bool) -> Any:
        return wrpc.Variant("var", rec("bar")) if ok else None

    def with_variant_list(self) -> list:
        e = wrpc.Variant("empty")
        return [e, wrpc.Variant("var", rec("foo")), e, e, e, wrpc.Variant("var", rec("bar"))]

    def with_record(self) -> dict:
        return rec("foo")

    def with_record_list(self, n: int) -> list:
        return [rec(str(i)) for i in range(n)]

    def with_record_tuple(self) -> tuple:
        return (rec("0"), rec("1"))

    async def with_enum(self) -> str:  # async handlers work too
        return "bar"


def name_hex(name: str) -> str:
    return f"{len(name):02x} " + name.encode().hex(" ")


# (function, args, C->S bytes after the instance prefix, S->C bytes, decoded result)
SESSIONS = [
    ("fallible", (True,), "08 66 61 6c 6c 69 62 6c 65 00 01 01", "00 02 00 01", wrpc.Ok(True)),
    (
        "fallible",
        (False,),
        "08 66 61 6c 6c 69 62 6c 65 00 01 00",
        "00 06 01 04 74 65 73 74",
        wrpc.Err("test"),
    ),
    (
        "numbers",
        (),
        "07 6e 75 6d 62 65 72 73 00 00",
        "00 14 01 02 03 04 05 06 07 08 00 00 10 41 00 00 00 00 00 00 24 40",
        (1, 2, 3, 4, 5, 6, 7, 8, 9.0, 10.0),
    ),
    (
        "with-flags",
        (True, False, True),
        "0a 77 69 74 68 2d 66 6c 61 67 73 00 03 01 00 01",
        "00 01 05",
        {"a", "c"},
    ),
    (
        "with-variant-option",
        (True,),
        name_hex("with-variant-option") + " 00 01 01",
        "00 06 01 00 03 62 61 72",
        wrpc.Variant("var", rec("bar")),
    ),
    (
        "with-variant-list",
        (),
        name_hex("with-variant-list") + " 00 00",
        "00 0f 06 01 00 03 66 6f 6f 01 01 01 00 03 62 61 72",
        SyncImpl().with_variant_list(),
    ),
    ("with-record", (), name_hex("with-record") + " 00 00", "00 04 03 66 6f 6f", rec("foo")),
    (
        "with-record-list",
        (3,),
        name_hex("with-record-list") + " 00 01 03",
        "00 07 03 01 30 01 31 01 32",
        [rec("0"), rec("1"), rec("2")],
    ),
    (
        "with-record-tuple",
        (),
        name_hex("with-record-tuple") + " 00 00",
        "00 04 01 30 01 31",
        (rec("0"), rec("1")),
    ),
    ("with-enum", (), name_hex("with-enum") + " 00 00", "00 01 01", "bar"),
]
IDS = [f"{s[0]}{s[1]}" for s in SESSIONS]


async def raw_server(reply: bytes, captured: list[bytes], close_only: bool = False) -> asyncio.Server:
    """A peer that records everything until the client's FIN, then sends ``reply`` and FIN."""

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        captured.append(await reader.read())
        if not close_only:
            writer.write(reply)
            await writer.drain()
            writer.write_eof()
        writer.close()

    return await asyncio.start_server(on_conn, "127.0.0.1", 0)


async def raw_call(port: int, data: bytes, fin: bool = True) -> bytes:
    """Send raw bytes (then FIN) and read everything until the server's FIN."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    if fin:
        writer.write_eof()
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


def sync_server(**kw: Any) -> tcp.Server:
    server = tcp.Server(**kw)
    server.register_all(SYNC.functions, SyncImpl())
    server.register(PKG.interfaces["foo"].func("f"), lambda x: 42)
    server.register(PKG.world_functions["sync-server"]["ping"], lambda: "pong")
    return server


@pytest.mark.parametrize(("fn", "args", "c2s", "s2c", "expect"), SESSIONS, ids=IDS)
def test_wrpc_tcp_client_sends_spec_bytes_and_decodes_reply(fn, args, c2s, s2c, expect) -> None:
    async def main() -> None:
        captured: list[bytes] = []
        srv = await raw_server(H(s2c), captured)
        port = srv.sockets[0].getsockname()[1]
        async with srv:
            result = await tcp.Client("127.0.0.1", port).invoke(SYNC.func(fn), *args)
        assert captured == [SYNC_PREFIX + H(c2s)]
        assert result == expect

    run(main())


@pytest.mark.parametrize(("fn", "args", "c2s", "s2c", "expect"), SESSIONS, ids=IDS)
def test_wrpc_tcp_server_answers_spec_bytes(fn, args, c2s, s2c, expect) -> None:
    async def main() -> None:
        async with sync_server() as server:
            assert await raw_call(server.port, SYNC_PREFIX + H(c2s)) == H(s2c)

    run(main())


def test_wrpc_tcp_hello_session_both_directions() -> None:
    c2s = H(
        "00 1b 77 72 70 63 2d 65 78 61 6d 70 6c 65 73 3a 68 65 6c 6c 6f 2f 68 61 6e 64 6c 65 72 05 68 65 6c 6c 6f 00 00"
    )
    s2c = H("00 10 0f 68 65 6c 6c 6f 20 66 72 6f 6d 20 52 75 73 74")

    async def main() -> None:
        captured: list[bytes] = []
        srv = await raw_server(s2c, captured)
        async with srv:
            got = await tcp.Client("127.0.0.1", srv.sockets[0].getsockname()[1]).invoke(HELLO)
        assert (captured, got) == ([c2s], "hello from Rust")
        server = tcp.Server()
        server.register(HELLO, lambda: "hello from Rust")
        async with server:
            assert await raw_call(server.port, c2s) == s2c

    run(main())


def test_wrpc_tcp_foo_instance_and_world_function() -> None:
    foo_c2s = H("00 19") + b"wrpc-test:integration/foo" + H("01 66 00 02 01 66")
    ping_c2s = H("00 00 04 70 69 6e 67 00 00")

    async def main() -> None:
        async with sync_server() as server:
            assert await raw_call(server.port, foo_c2s) == H("00 01 2a")
            assert await raw_call(server.port, ping_c2s) == H("00 05 04 70 6f 6e 67")
            client = tcp.Client("127.0.0.1", server.port)
            assert await client.invoke(PKG.world_functions["sync-server"]["ping"]) == "pong"
        captured: list[bytes] = []
        srv = await raw_server(H("00 01 2a"), captured)
        async with srv:
            got = await tcp.Client("127.0.0.1", srv.sockets[0].getsockname()[1]).invoke(
                PKG.interfaces["foo"].func("f"), "f"
            )
        assert (captured, got) == ([foo_c2s], 42)

    run(main())


ECHO_C2S_HEAD = H("00 1d") + b"wrpc-examples:streams/handler" + H("04") + b"echo" + H("00 02 00 00")
ECHO_C2S_TAIL = H("02 00 00 04 03 01 02 03  02 00 01 04 03 01 02 03  02 00 00 01 00  02 00 01 01 00")
ECHO_S2C = H("00 02 00 00  02 00 00 04 03 01 02 03  02 00 00 01 00  02 00 01 04 03 01 02 03  02 00 01 01 00")


def by_path(frames: list[tuple[tuple[int, ...], bytes]]) -> dict[tuple[int, ...], bytes]:
    out: dict[tuple[int, ...], bytes] = {}
    for path, data in frames:
        out[path] = out.get(path, b"") + data
    return out


def test_wrpc_tcp_async_echo_server_side() -> None:
    async def echo(req: dict) -> tuple:
        return (wrpc.Stream(req["numbers"]), wrpc.Stream(req["bytes"]))

    async def main() -> None:
        server = tcp.Server()
        server.register(ECHO, echo)
        async with server:
            reply = await raw_call(server.port, ECHO_C2S_HEAD + ECHO_C2S_TAIL)
        frames = FrameParser().feed(reply)
        assert frames[0] == ((), H("00 00"))  # root first: tuple<pending, pending>
        assert by_path(frames) == by_path(FrameParser().feed(ECHO_S2C))

    run(main())


def test_wrpc_tcp_async_echo_client_side() -> None:
    async def main() -> None:
        captured: list[bytes] = []
        srv = await raw_server(ECHO_S2C, captured)
        async with srv:
            client = tcp.Client("127.0.0.1", srv.sockets[0].getsockname()[1])
            req = {"numbers": wrpc.Stream([[1, 2, 3]]), "bytes": wrpc.Stream([b"", b"\x01\x02\x03"])}
            numbers, data = await client.invoke(ECHO, req)
            assert await numbers.read_all() == [1, 2, 3]
            assert await data.read_all() == b"\x01\x02\x03"
        sent = captured[0]
        assert sent.startswith(ECHO_C2S_HEAD)
        assert by_path(FrameParser().feed(sent[len(ECHO_C2S_HEAD) - 4 :])) == by_path(
            FrameParser().feed(H("00 02 00 00") + ECHO_C2S_TAIL)
        )

    run(main())


def test_wrpc_tcp_python_to_python_round_trip_with_async_values() -> None:
    async def echo(req: dict) -> tuple:
        return (wrpc.Stream(req["numbers"]), wrpc.Stream(req["bytes"]))

    async def gen():
        for i in range(0, 3000, 1000):
            yield list(range(i, i + 1000))

    async def main() -> None:
        server = tcp.Server()
        server.register(ECHO, echo)
        async with server:
            client = tcp.Client("127.0.0.1", server.port)
            big = bytes(range(256)) * 4000
            numbers, data = await client.invoke(ECHO, {"numbers": wrpc.Stream(gen()), "bytes": wrpc.Stream([big])})
            assert await numbers.read_all() == list(range(3000))
            assert await data.read_all() == big

    run(main())


def test_wrpc_frame_codec_upstream_vectors() -> None:
    assert encode_frame((0, 1, 2), b"test") == H("03 00 01 02 04 74 65 73 74")
    assert encode_frame((), b"") == H("00 00")
    weird = "\x7fƒ𐍈Ő".encode()
    assert encode_frame((0x42,), weird) == H("01 42 09 7f c6 92 f0 90 8d 88 c5 90")
    assert encode_frame((42, 41), b"\xfe") == H("02 2a 29 01 fe")
    stream = H("03 00 01 02 04 74 65 73 74 00 00 01 42 09 7f c6 92 f0 90 8d 88 c5 90")
    expect = [((0, 1, 2), b"test"), ((), b""), ((0x42,), weird)]
    for cut in range(len(stream) + 1):
        p = FrameParser()
        assert p.feed(stream[:cut]) + p.feed(stream[cut:]) == expect


def test_wrpc_tcp_server_accepts_any_chunking_and_no_root_frame() -> None:
    async def main() -> None:
        async with sync_server() as server:
            data = SYNC_PREFIX + H("08 66 61 6c 6c 69 62 6c 65 00 01 01")
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                await writer.drain()
            writer.write_eof()
            assert await reader.read() == H("00 02 00 01")
            writer.close()
            # zero params with no root frame at all (just FIN after the header)
            assert await raw_call(server.port, SYNC_PREFIX + H("07 6e 75 6d 62 65 72 73")) == H(
                "00 14 01 02 03 04 05 06 07 08 00 00 10 41 00 00 00 00 00 00 24 40"
            )

    run(main())


BAD_SESSIONS = {
    "wrong version byte": H("01") + SYNC_PREFIX[1:] + H("08") + b"fallible" + H("00 01 01"),
    "unknown instance": H("00 03") + b"a:b" + H("08") + b"fallible" + H("00 01 01"),
    "unknown function": SYNC_PREFIX + H("04") + b"nope" + H("00 00"),
    "truncated header": SYNC_PREFIX[:10],
    "truncated frame": SYNC_PREFIX + H("08") + b"fallible" + H("00 05 01"),
    "bad param bytes": SYNC_PREFIX + H("08") + b"fallible" + H("00 01 07"),
    "extra param bytes": SYNC_PREFIX + H("08") + b"fallible" + H("00 02 01 01"),
    "oversized frame": SYNC_PREFIX + H("08") + b"fallible" + H("00 ff ff ff ff 0f"),
    "oversized name": SYNC_PREFIX + H("ff ff ff 7f"),
    "deep path": SYNC_PREFIX + H("08") + b"fallible" + H("40") + bytes(64) + H("00"),
    "unknown path": SYNC_PREFIX + H("08") + b"fallible" + H("01 05 01 00"),
    "empty": b"",
}


@pytest.mark.parametrize("case", sorted(BAD_SESSIONS))
def test_wrpc_tcp_server_closes_bad_sessions_and_keeps_serving(case: str) -> None:
    async def main() -> None:
        async with sync_server(limits=Limits(max_bytes=1 << 20)) as server:
            assert await raw_call(server.port, BAD_SESSIONS[case]) == b""
            assert server.stats == {"ok": 0, "failed": 1}
            ok = await tcp.Client("127.0.0.1", server.port).invoke(SYNC.func("fallible"), True)
            assert ok == wrpc.Ok(True)

    run(main())


def test_wrpc_tcp_server_deadline_closes_a_client_that_never_finishes() -> None:
    async def main() -> None:
        async with sync_server(timeout=0.3) as server:
            # header and half a frame, then silence (no FIN)
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(SYNC_PREFIX + H("08") + b"fallible" + H("00 05 01"))
            await writer.drain()
            assert await reader.read() == b""  # closed by the server's deadline, not by us
            writer.close()
            assert server.stats["failed"] == 1

    run(main())


def test_wrpc_tcp_client_errors() -> None:
    f = SYNC.func("fallible")

    async def main() -> None:
        # the server closes without results (like an unknown function): IncompleteResults
        srv = await raw_server(b"", [], close_only=True)
        async with srv:
            port = srv.sockets[0].getsockname()[1]
            with pytest.raises(wrpc.IncompleteResults, match="no data"):
                await tcp.Client("127.0.0.1", port).invoke(f, True)
        # a partial result value
        srv = await raw_server(H("00 06 01 04 74"), [])
        async with srv:
            port = srv.sockets[0].getsockname()[1]
            with pytest.raises(wrpc.IncompleteResults):
                await tcp.Client("127.0.0.1", port).invoke(f, True)
        # garbage result bytes
        srv = await raw_server(H("00 02 07 07"), [])
        async with srv:
            port = srv.sockets[0].getsockname()[1]
            with pytest.raises(wrpc.DecodeError):
                await tcp.Client("127.0.0.1", port).invoke(f, True)

        # a server that never answers: the client's deadline (Go's TCP server does this, spec §4)
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(GUARD)

        srv = await asyncio.start_server(silent, "127.0.0.1", 0)
        async with srv:
            port = srv.sockets[0].getsockname()[1]
            with pytest.raises(wrpc.DeadlineExceeded):
                await tcp.Client("127.0.0.1", port, timeout=0.2).invoke(f, True)
        # nobody listening
        with pytest.raises(wrpc.TransportError):
            await tcp.Client("127.0.0.1", port).invoke(f, True)
        # wrong argument count / type are caught before any byte is sent
        with pytest.raises(TypeError):
            await tcp.Client("127.0.0.1", port).invoke(f)
        with pytest.raises(wrpc.EncodeError):
            await tcp.Client("127.0.0.1", port).invoke(f, "yes")

    run(main())


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=80))
def test_wrpc_tcp_server_survives_random_bytes(garbage: bytes) -> None:
    async def main() -> None:
        async with sync_server(timeout=2.0) as server:
            with contextlib.suppress(ConnectionError):
                await raw_call(server.port, garbage)
            assert await tcp.Client("127.0.0.1", server.port).invoke(SYNC.func("with-enum")) == "bar"

    run(main())


NESTED = wit.load(WIT / "examples" / "asyncs.wit").func("nested", "run")


def test_wrpc_tcp_nested_async_values_use_index_paths() -> None:
    """A future inside a record (param path [1,1]), an optional stream ([1,2]), and a result
    future whose value is a stream continuing on the same sub-stream ([0])."""
    seen: dict = {}

    async def handler(label: str, job: dict) -> wrpc.Future:
        seen["input"] = await job["input"]
        seen["blobs"] = await job["blobs"].read_all()

        async def numbers():
            yield [job["id"], 2]
            yield [3]

        return wrpc.Future(wrpc.Stream(numbers()))

    async def main() -> None:
        captured: list[bytes] = []

        async def tap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # a transparent proxy that records the client's bytes
            up_r, up_w = await asyncio.open_connection("127.0.0.1", server.port)
            data = await reader.read()
            captured.append(data)
            up_w.write(data)
            up_w.write_eof()
            writer.write(await up_r.read())
            writer.write_eof()
            writer.close()
            up_w.close()

        server = tcp.Server()
        server.register(NESTED, handler)
        async with server:
            proxy = await asyncio.start_server(tap, "127.0.0.1", 0)
            async with proxy:
                client = tcp.Client("127.0.0.1", proxy.sockets[0].getsockname()[1])
                job = {"id": 1, "input": wrpc.Future("in"), "blobs": wrpc.Stream([b"ab", b"c"])}
                fut = await client.invoke(NESTED, "x", job)
                stream = await fut
                assert await stream.read_all() == [1, 2, 3]
        assert seen == {"input": "in", "blobs": b"abc"}
        header = tcp.encode_header(NESTED.instance, "run")
        assert captured[0].startswith(header)
        frames = by_path(FrameParser().feed(captured[0][len(header) :]))
        assert frames[()] == H("01 78 01 00 01 00")  # "x", id 1, future pending, some(stream pending)
        assert frames[(1, 1)] == H("02 69 6e")  # the future's string on path [1, 1]
        assert frames[(1, 2)] == H("02 61 62 01 63 00")  # two chunks then the end marker on [1, 2]

    run(main())


def test_wrpc_tcp_async_results_that_never_end_fail_after_async_timeout() -> None:
    async def stuck(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.write(H("00 02 00 00  02 00 00 02 01 07"))  # root, then one chunk [7]; never the end
        await writer.drain()
        await asyncio.sleep(GUARD)

    async def main() -> None:
        srv = await asyncio.start_server(stuck, "127.0.0.1", 0)
        async with srv:
            client = tcp.Client("127.0.0.1", srv.sockets[0].getsockname()[1], async_timeout=0.3)
            req = {"numbers": wrpc.Stream([]), "bytes": wrpc.Stream([])}
            numbers, data = await client.invoke(ECHO, req)
            assert await numbers.__anext__() == [7]
            with pytest.raises(wrpc.DeadlineExceeded):
                await numbers.read_all()
            with pytest.raises(wrpc.DeadlineExceeded):
                await data.read_all()
            srv.close()

    run(main())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.integers(1, 50))
def test_wrpc_frame_parser_random_bytes_any_chunking(raw: bytes, step: int) -> None:
    whole: list | Exception
    try:
        whole = FrameParser(Limits(max_bytes=1000)).feed(raw)
    except wrpc.WrpcError as e:
        whole = e
    p = FrameParser(Limits(max_bytes=1000))
    got: list = []
    try:
        for i in range(0, len(raw), step):
            got += p.feed(raw[i : i + step])
    except wrpc.WrpcError as e:
        assert isinstance(whole, Exception) and type(e) is type(whole)
        return
    assert got == whole


def test_wrpc_tcp_zero_results_accept_no_frame_and_empty_root_frame() -> None:
    ping = wit.Function("x:y/z", "ping", (), None)

    async def main() -> None:
        for reply in (b"", H("00 00")):  # Rust sends nothing, Go and JS an empty root frame
            captured: list[bytes] = []
            srv = await raw_server(reply, captured)
            async with srv:
                assert await tcp.Client("127.0.0.1", srv.sockets[0].getsockname()[1]).invoke(ping) is None
            assert captured == [H("00 05") + b"x:y/z" + H("04") + b"ping" + H("00 00")]
        server = tcp.Server()
        server.register(ping, lambda: None)
        async with server:
            assert await raw_call(server.port, H("00 05") + b"x:y/z" + H("04") + b"ping" + H("00 00")) == H("00 00")

    run(main())
