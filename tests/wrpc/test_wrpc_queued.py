"""Queued invocation through JetStream against a real nats-server, including a server restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import nats
import pytest
from wrpc_nats_helpers import NatsServer

import wrpc
from wrpc import wit
from wrpc.queued import QueuedClient, QueuedConsumer, ensure_stream, queued_subject

PKG = wit.telemetry()
PUBLISH = PKG.func("proton", "publish")
GUARD = 60.0


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, GUARD))


async def connect(url: str) -> Any:
    return await nats.connect(url, reconnect_time_wait=0.1, max_reconnect_attempts=-1)


def batch(i: int) -> dict:
    return {"stream": "flows", "seq": i, "arrow-ipc": bytes([i % 256]) * (100 + i)}


async def consume_until(consumer: QueuedConsumer, received: list, n: int) -> None:
    task = asyncio.create_task(consumer.run())
    while len(received) < n and not task.done():
        await asyncio.sleep(0.02)
    consumer.stop()
    await task
    assert len(received) >= n


def test_wrpc_queued_subject_and_headers(tmp_path: Path) -> None:
    assert queued_subject("acme", PUBLISH) == "serviceradar.acme.proton.publish"

    async def main() -> None:
        srv = NatsServer(tmp_path).start()
        try:
            nc = await connect(srv.url)
            js = nc.jetstream()
            await ensure_stream(js, "SR_ACME", ["serviceradar.acme.>"])
            ack = await QueuedClient(js, "acme").enqueue(PUBLISH, batch(1), msg_id="flows-1")
            assert (ack.stream, ack.seq, bool(ack.duplicate)) == ("SR_ACME", 1, False)
            msg = await js.get_msg("SR_ACME", 1)
            assert msg.subject == "serviceradar.acme.proton.publish"
            assert msg.headers["wrpc-instance"] == "serviceradar:telemetry/proton@0.1.0"
            assert msg.headers["wrpc-func"] == "publish"
            assert msg.headers["Nats-Msg-Id"] == "flows-1"
            assert msg.data == wrpc.encode("tuple<batch>", (batch(1),), types=PKG.types)
            await nc.close()
        finally:
            srv.stop()

    run(main())


def test_wrpc_queued_calls_survive_a_server_restart_exactly_once(tmp_path: Path) -> None:
    received: list[dict] = []

    def publish(b: dict) -> Any:
        received.append(b)
        return wrpc.Ok()

    async def main() -> None:
        srv = NatsServer(tmp_path).start()
        try:
            # the edge stores 30 calls while no consumer runs; re-sending 10 of them is de-duplicated
            nc = await connect(srv.url)
            js = nc.jetstream()
            await ensure_stream(js, "SR_ACME", ["serviceradar.acme.>"])
            client = QueuedClient(js, "acme")
            for i in range(30):
                await client.enqueue(PUBLISH, batch(i), msg_id=f"flows-{i}")
            dups = [await client.enqueue(PUBLISH, batch(i), msg_id=f"flows-{i}") for i in range(10)]
            assert all(a.duplicate for a in dups)
            # the core consumes some, then the server goes away and comes back
            consumer = QueuedConsumer(js, "SR_ACME", "core", "serviceradar.acme.proton.>", batch=5)

            def publish_then_stop(b: dict) -> Any:
                consumer.stop()  # run() returns after this batch of 5
                return publish(b)

            consumer.register(PUBLISH, publish_then_stop)
            await consume_until(consumer, received, 5)
            assert received == [batch(i) for i in range(5)]
            await nc.close()
            srv.stop()
            srv.start()
            nc = await connect(srv.url)
            js = nc.jetstream()
            consumer = QueuedConsumer(js, "SR_ACME", "core", "serviceradar.acme.proton.>")
            consumer.register(PUBLISH, publish)
            await consume_until(consumer, received, 30)
            await asyncio.sleep(0)
            assert received == [batch(i) for i in range(30)]  # all of them, once each, in order
            info = await js.consumer_info("SR_ACME", "core")
            assert info.num_pending == 0
            await nc.close()
        finally:
            srv.stop()

    run(main())


def test_wrpc_queued_failures_are_retried_and_garbage_is_rejected(tmp_path: Path) -> None:
    attempts: list[int] = []

    def flaky(b: dict) -> Any:
        attempts.append(b["seq"])
        if attempts.count(b["seq"]) == 1:
            return wrpc.Err("clickhouse is down")  # first delivery fails: nak, redelivered
        return wrpc.Ok()

    async def main() -> None:
        srv = NatsServer(tmp_path).start()
        try:
            nc = await connect(srv.url)
            js = nc.jetstream()
            await ensure_stream(js, "SR_T", ["serviceradar.t.>"])
            await QueuedClient(js, "t").enqueue(PUBLISH, batch(7))
            await js.publish(
                "serviceradar.t.proton.publish", b"\xff\xff", headers={"wrpc-instance": "x", "wrpc-func": "y"}
            )
            await js.publish(
                "serviceradar.t.proton.publish",
                b"\x05ab",  # truncated
                headers={"wrpc-instance": PUBLISH.instance, "wrpc-func": "publish"},
            )
            consumer = QueuedConsumer(js, "SR_T", "core", "serviceradar.t.>", retry_delay=0.05)
            consumer.register(PUBLISH, flaky)
            task = asyncio.create_task(consumer.run())
            while consumer.stats.acked < 1 or consumer.stats.rejected < 2:
                await asyncio.sleep(0.02)
            consumer.stop()
            await task
            assert attempts == [7, 7]
            assert (consumer.stats.acked, consumer.stats.retried, consumer.stats.rejected) == (1, 1, 2)
            with pytest.raises(wrpc.EncodeError):
                await QueuedClient(js, "t").enqueue(PUBLISH, {"stream": 1})
            await nc.close()
        finally:
            srv.stop()

    run(main())
