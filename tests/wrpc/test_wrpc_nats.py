"""wRPC over NATS against a real nats-server: the §3.2 message sequence, queue groups, big
payloads split at max_payload, no-responders, deadlines and bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from wrpc_nats_helpers import NatsServer

import wrpc
from wrpc import nats as wnats
from wrpc import wit

H = bytes.fromhex
WIT = Path(__file__).parent / "wit"
HELLO = wit.load(WIT / "examples" / "hello.wit").func("handler", "hello")
ECHO = wit.load(WIT / "examples" / "streams.wit").func("handler", "echo")
SYNC = wit.load(WIT / "integration.wit").interfaces["sync"]
PROTON = wit.telemetry().func("proton", "publish")
GUARD = 30.0
MAX_PAYLOAD = 8192


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    srv = NatsServer(tmp_path_factory.mktemp("nats"), max_payload=MAX_PAYLOAD).start()
    yield srv
    srv.stop()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, GUARD))


def test_wrpc_nats_subjects() -> None:
    assert wnats.invocation_subject("rust", "wrpc-examples:hello/handler", "hello") == (
        "rust.wrpc.0.0.1.wrpc-examples:hello/handler.hello"
    )
    assert wnats.invocation_subject("", "wasi:http/outgoing-handler", "handle") == (
        "wrpc.0.0.1.wasi:http/outgoing-handler.handle"
    )
    assert wnats.invocation_subject("rust", "", "ping") == "rust.wrpc.0.0.1.ping"
    assert wnats.invocation_subject("custom", "wasi:http/types@0.2.0", "fields") == (
        "custom.wrpc.0.0.1.wasi:http/types@0.2.0.fields"
    )


async def until(cond: Any) -> None:
    """Wait for the spy's callback task to have seen enough (bounded only by the test's GUARD)."""
    while not cond():
        await asyncio.sleep(0.01)


async def spy(url: str) -> tuple[Any, list[tuple[str, str | None, bytes]]]:
    """A third connection that records every message (subject, reply, payload)."""
    nc = await nats.connect(url)
    seen: list[tuple[str, str | None, bytes]] = []

    async def cb(msg: Any) -> None:
        seen.append((msg.subject, msg.reply or None, msg.data))

    await nc.subscribe(">", cb=cb)
    await nc.flush()
    return nc, seen


def test_wrpc_nats_hello_message_sequence(server: NatsServer) -> None:
    """Spec §3.2 worked example: the subjects, replies and payloads, in order."""

    async def main() -> None:
        snc, seen = await spy(server.url)
        nc_s, nc_c = await nats.connect(server.url), await nats.connect(server.url)
        srv = wnats.Server(nc_s, prefix="rust")
        srv.register(HELLO, lambda: "hello from Rust")
        async with srv:
            got = await wnats.Client(nc_c, prefix="rust").invoke(HELLO)
        assert got == "hello from Rust"
        await until(lambda: len(seen) >= 5)
        # NATS orders messages per publisher, so compare each side's sequence (spec §3.2)
        inv = seen[0]
        assert inv[0] == "rust.wrpc.0.0.1.wrpc-examples:hello/handler.hello" and inv[2] == b""
        r_c = inv[1]
        from_server = [m for m in seen if m[0].startswith(r_c)]
        hs = from_server[0]
        assert hs[0] == r_c and hs[2] == b"" and hs[1]
        r_s = hs[1]
        from_client = [m for m in seen if m not in from_server]
        assert from_client == [inv, (r_s + ".params", None, b"")]
        assert from_server == [
            hs,
            (r_c + ".results", None, H("0f 68 65 6c 6c 6f 20 66 72 6f 6d 20 52 75 73 74")),
            (r_c + ".results", None, b""),
        ]
        for nc in (snc, nc_s, nc_c):
            await nc.close()

    run(main())


def test_wrpc_nats_fallible_payloads(server: NatsServer) -> None:
    async def main() -> None:
        snc, seen = await spy(server.url)
        nc = await nats.connect(server.url)
        srv = wnats.Server(nc)
        srv.register(SYNC.func("fallible"), lambda ok: wrpc.Ok(True) if ok else wrpc.Err("test"))
        async with srv:
            client = wnats.Client(nc)
            assert await client.invoke(SYNC.func("fallible"), True) == wrpc.Ok(True)
            assert await client.invoke(SYNC.func("fallible"), False) == wrpc.Err("test")
        await until(lambda: len(seen) >= 10)
        invs = [m for m in seen if m[0].endswith(".fallible")]
        assert [m[2] for m in invs] == [H("01"), H("00")]
        results = [m[2] for m in seen if m[0].endswith(".results")]
        assert results == [H("00 01"), b"", H("01 04 74 65 73 74"), b""]
        await snc.close()
        await nc.close()

    run(main())


def test_wrpc_nats_large_payload_is_split_at_max_payload(server: NatsServer) -> None:
    received: list[dict] = []

    def publish(b: dict) -> Any:
        received.append(b)
        return wrpc.Ok()

    async def main() -> None:
        snc, seen = await spy(server.url)
        nc = await nats.connect(server.url)
        assert nc.max_payload == MAX_PAYLOAD
        srv = wnats.Server(nc, prefix="edge")
        srv.register(PROTON, publish)
        async with srv:
            batch = {"stream": "flows", "seq": 1, "arrow-ipc": bytes(range(256)) * 200}  # 51 KB
            assert await wnats.Client(nc, prefix="edge").invoke(PROTON, batch) == wrpc.Ok()
        assert received == [batch]
        await until(
            lambda: (
                any(m[0].endswith(".results") and not m[2] for m in seen)
                and any(m[0].endswith(".params") and not m[2] for m in seen)
            )
        )
        sizes = [len(m[2]) for m in seen if m[0].endswith(".params") or m[0].endswith(".publish")]
        assert max(sizes) <= MAX_PAYLOAD and sum(sizes) == len(wrpc.encode("batch", batch, wit.telemetry().types))
        assert len(sizes) > 6 and sizes[-1] == 0  # many chunks, then the EOF
        await snc.close()
        await nc.close()

    run(main())


def test_wrpc_nats_queue_group_delivers_each_call_once(server: NatsServer) -> None:
    async def main() -> None:
        calls: dict[str, int] = {"a": 0, "b": 0}
        conns = [await nats.connect(server.url) for _ in range(3)]
        servers = []
        for name, nc in zip("ab", conns, strict=False):

            def hello(name: str = name) -> str:
                calls[name] += 1
                return f"hello from {name}"

            s = wnats.Server(nc, prefix="q", group="hello-workers")
            s.register(HELLO, hello)
            await s.start()
            servers.append(s)
        client = wnats.Client(conns[2], prefix="q")
        answers = [await client.invoke(HELLO) for _ in range(40)]
        assert sum(calls.values()) == 40  # every call served exactly once across the group
        assert set(answers) <= {"hello from a", "hello from b"}
        for s in servers:
            await s.close()
        for nc in conns:
            await nc.close()

    run(main())


def test_wrpc_nats_no_responders(server: NatsServer) -> None:
    async def main() -> None:
        nc = await nats.connect(server.url)
        with pytest.raises(wrpc.NoResponders):
            await wnats.Client(nc, prefix="nobody").invoke(HELLO)
        await nc.close()

    run(main())


def test_wrpc_nats_async_streams(server: NatsServer) -> None:
    async def echo(req: dict) -> tuple:
        return (wrpc.Stream(req["numbers"]), wrpc.Stream(req["bytes"]))

    async def main() -> None:
        nc = await nats.connect(server.url)
        srv = wnats.Server(nc)
        srv.register(ECHO, echo)
        async with srv:
            big = bytes(range(256)) * 100
            req = {"numbers": wrpc.Stream([[1, 2, 3], [4]]), "bytes": wrpc.Stream([big])}
            numbers, data = await wnats.Client(nc).invoke(ECHO, req)
            assert await numbers.read_all() == [1, 2, 3, 4]
            assert await data.read_all() == big
        await nc.close()

    run(main())


def test_wrpc_nats_errors_and_deadlines(server: NatsServer) -> None:
    async def slow() -> str:
        await asyncio.sleep(GUARD)
        return "late"

    def broken(ok: bool) -> Any:
        raise RuntimeError("handler bug")

    async def main() -> None:
        nc = await nats.connect(server.url)
        srv = wnats.Server(nc, prefix="err", timeout=0.3)
        srv.register(HELLO, slow)
        srv.register(SYNC.func("fallible"), broken)
        async with srv:
            client = wnats.Client(nc, prefix="err", timeout=10)
            # the server's deadline ends the results without a value: the client sees it at once
            with pytest.raises(wrpc.IncompleteResults):
                await client.invoke(HELLO)
            with pytest.raises(wrpc.IncompleteResults):
                await client.invoke(SYNC.func("fallible"), True)
            with pytest.raises(wrpc.DeadlineExceeded):
                await wnats.Client(nc, prefix="err", timeout=0.1).invoke(HELLO)
            with pytest.raises(wrpc.EncodeError):
                await client.invoke(SYNC.func("fallible"), "no")
            assert srv.stats["failed"] >= 2
        await nc.close()

    run(main())


def test_wrpc_nats_server_rejects_bad_params_and_garbage(server: NatsServer) -> None:
    """Raw peers: garbage params, truncated params, no reply subject. Server answers EOF, lives on."""

    async def main() -> None:
        nc = await nats.connect(server.url)
        srv = wnats.Server(nc, prefix="bad", timeout=0.5)
        srv.register(SYNC.func("fallible"), lambda ok: wrpc.Ok(ok))
        subject = wnats.invocation_subject("bad", SYNC.func("fallible").instance, "fallible")
        async with srv:
            for payload, eof_params in [(H("07"), True), (b"", True), (H("01 01 01"), True), (b"", False)]:
                inbox = nc.new_inbox()
                msgs: asyncio.Queue = asyncio.Queue()
                sub = await nc.subscribe(inbox + ".>", cb=msgs.put)
                hs = await nc.subscribe(inbox, cb=msgs.put)
                await nc.publish(subject, payload, reply=inbox)
                first = await msgs.get()
                assert first.subject == inbox and first.reply
                if eof_params:
                    await nc.publish(first.reply + ".params", b"")
                # never finishing (no EOF, no data) runs into the server's deadline
                res = await msgs.get()
                assert (res.subject, res.data) == (inbox + ".results", b"")
                await sub.unsubscribe()
                await hs.unsubscribe()
            await nc.publish(subject, H("01"))  # no reply subject: dropped with a log line
            assert await wnats.Client(nc, prefix="bad").invoke(SYNC.func("fallible"), True) == wrpc.Ok(True)
            assert srv.stats["failed"] == 5
        await nc.close()

    run(main())


def test_wrpc_nats_server_bounds_invocations_in_flight(server: NatsServer) -> None:
    async def main() -> None:
        release = asyncio.Event()

        async def held() -> str:
            await release.wait()
            return "done"

        nc = await nats.connect(server.url)
        srv = wnats.Server(nc, prefix="bound", max_inflight=1)
        srv.register(HELLO, held)
        async with srv:
            client = wnats.Client(nc, prefix="bound")
            first = asyncio.create_task(client.invoke(HELLO))
            while not srv._tasks:  # the first call is being served
                await asyncio.sleep(0.01)
            with pytest.raises(wrpc.IncompleteResults):
                await client.invoke(HELLO)  # refused at once, not queued without bound
            release.set()
            assert await first == "done"
        await nc.close()

    run(main())


def test_wrpc_nats_server_survives_random_payloads(server: NatsServer) -> None:
    import random

    rng = random.Random(6)
    payloads = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60))) for _ in range(30)]

    async def main() -> None:
        nc = await nats.connect(server.url)
        srv = wnats.Server(nc, prefix="fuzz", timeout=1.0)
        srv.register(SYNC.func("with-record-list"), lambda n: [{"nested": {"foo": str(i)}} for i in range(n)])
        subject = wnats.invocation_subject("fuzz", SYNC.func("with-record-list").instance, "with-record-list")
        async with srv:
            for p in payloads:
                inbox = nc.new_inbox()
                got: asyncio.Queue = asyncio.Queue()
                sub = await nc.subscribe(inbox + ".>", cb=got.put)
                hs = await nc.subscribe(inbox, cb=got.put)
                await nc.publish(subject, p, reply=inbox)
                first = await got.get()
                await nc.publish(first.reply + ".params", b"")  # EOF after the garbage
                results = b""
                while True:  # every invocation ends with an EOF on results, value or not
                    m = await got.get()
                    if not m.data:
                        break
                    results += m.data
                await sub.unsubscribe()
                await hs.unsubscribe()
            client = wnats.Client(nc, prefix="fuzz")
            assert await client.invoke(SYNC.func("with-record-list"), 2) == [
                {"nested": {"foo": "0"}},
                {"nested": {"foo": "1"}},
            ]
        await nc.close()

    run(main())
