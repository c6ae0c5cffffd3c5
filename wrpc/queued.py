"""Queued invocation over JetStream: store-and-forward calls for when the cloud is away.

A queued call is one JetStream message: the subject ``serviceradar.<tenant>.<interface>.<func>``
(or one you choose), the encoded parameter tuple as payload, and headers naming the wRPC instance
and function; ``Nats-Msg-Id`` lets JetStream drop duplicates within the stream's window. A durable
pull consumer decodes each message and invokes the handler; the message is acknowledged only when
the handler succeeds (a ``wrpc.Err`` result or an exception asks for redelivery later). Results are
not returned to the caller: queued functions return ``result<_, E>`` or nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, PubAck, StorageType, StreamConfig
from nats.nuid import NUID

from wrpc.codec import DEFAULT_LIMITS, Limits, decode
from wrpc.errors import DecodeError, EncodeError, TransportError
from wrpc.session import encode_values
from wrpc.types import has_async
from wrpc.values import Err
from wrpc.wit import Function

log = logging.getLogger("wrpc.queued")

HDR_INSTANCE = "wrpc-instance"
HDR_FUNC = "wrpc-func"
HDR_MSG_ID = "Nats-Msg-Id"


def interface_token(instance: str) -> str:
    """``serviceradar:telemetry/proton@0.1.0`` -> ``proton`` (subject tokens cannot hold ``:/@``)."""
    return instance.rpartition("/")[2].partition("@")[0] or "world"


def queued_subject(tenant: str, func: Function) -> str:
    """The default subject of a queued call: ``serviceradar.<tenant>.<interface>.<func>``."""
    return f"serviceradar.{tenant}.{interface_token(func.instance)}.{func.name}"


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    subjects: list[str],
    *,
    duplicate_window: float = 120.0,
    max_bytes: int = 1 << 30,
) -> None:
    """Create (or update) a file-backed stream; bounded in bytes so an offline edge cannot fill its disk."""
    config = StreamConfig(
        name=name,
        subjects=subjects,
        storage=StorageType.FILE,
        duplicate_window=duplicate_window,
        max_bytes=max_bytes,
    )
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError:
        await js.update_stream(config)


class QueuedClient:
    """Publish calls as JetStream messages (acknowledged by the stream, not by the handler)."""

    def __init__(self, js: JetStreamContext, tenant: str, *, timeout: float = 10.0) -> None:
        self.js = js
        self.tenant = tenant
        self.timeout = timeout
        self._nuid = NUID()

    async def enqueue(
        self, func: Function, *args: Any, msg_id: str | None = None, subject: str | None = None
    ) -> PubAck:
        """Store one call; returns JetStream's ack (``duplicate`` is True for a repeated ``msg_id``)."""
        if has_async(func.param_types):
            raise EncodeError(f"{func.name}: future/stream parameters cannot be queued")
        root, _ = encode_values(func.param_types, args)
        headers = {
            HDR_INSTANCE: func.instance,
            HDR_FUNC: func.name,
            HDR_MSG_ID: msg_id or self._nuid.next().decode(),
        }
        try:
            return await self.js.publish(
                subject or queued_subject(self.tenant, func), root, timeout=self.timeout, headers=headers
            )
        except nats.errors.Error as e:
            raise TransportError(f"queued {func.name}: {type(e).__name__}: {e}") from e


@dataclass
class ConsumerStats:
    """Counters of a :class:`QueuedConsumer`."""

    acked: int = 0
    retried: int = 0
    rejected: int = 0


class QueuedConsumer:
    """A durable pull consumer that decodes queued calls and invokes their handlers."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        durable: str,
        subject: str,
        *,
        batch: int = 64,
        ack_wait: float = 30.0,
        max_deliver: int = 20,
        retry_delay: float = 1.0,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.js = js
        self.stream = stream
        self.durable = durable
        self.subject = subject
        self.batch = batch
        self.config = ConsumerConfig(
            durable_name=durable, ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait, max_deliver=max_deliver
        )
        self.retry_delay = retry_delay
        self.limits = limits
        self._handlers: dict[tuple[str, str], tuple[Function, Callable[..., Any]]] = {}
        self._stopping = asyncio.Event()
        self.stats = ConsumerStats()

    def register(self, func: Function, handler: Callable[..., Any]) -> None:
        """Handle queued calls of ``func`` with ``handler(*params)`` (sync or async)."""
        self._handlers[(func.instance, func.name)] = (func, handler)

    async def run(self) -> None:
        """Fetch and handle messages until :meth:`stop`; survives server restarts (nats-py reconnects)."""
        psub = await self.js.pull_subscribe(self.subject, durable=self.durable, stream=self.stream, config=self.config)
        try:
            while not self._stopping.is_set():
                try:
                    msgs = await psub.fetch(self.batch, timeout=1.0)
                except (nats.errors.TimeoutError, TimeoutError):
                    continue
                except nats.errors.Error as e:  # e.g. disconnected: wait for the reconnect
                    log.warning("fetch from %s failed: %s; retrying", self.stream, e)
                    await self._pause(self.retry_delay)
                    continue
                for msg in msgs:
                    await self.handle(msg)
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def stop(self) -> None:
        """Ask :meth:`run` to return after the message in hand."""
        self._stopping.set()

    async def handle(self, msg: Any) -> None:
        """Decode one message, invoke its handler, ack / nak / term it."""
        headers = msg.headers or {}
        key = (headers.get(HDR_INSTANCE, ""), headers.get(HDR_FUNC, ""))
        entry = self._handlers.get(key)
        if entry is None:
            return await self._reject(msg, f"no handler for {key[0]!r} function {key[1]!r}")
        func, handler = entry
        try:
            params = decode(func.param_types, msg.data, limits=self.limits)
        except DecodeError as e:
            return await self._reject(msg, f"undecodable parameters for {func.name}: {e}")
        try:
            result = handler(*params)
            if inspect.isawaitable(result):
                result = await result
        except Exception as e:
            log.warning("queued %s failed (will retry): %s: %s", func.name, type(e).__name__, e)
            result = Err(str(e))
        if isinstance(result, Err):
            self.stats.retried += 1
            await msg.nak(delay=self.retry_delay)
        else:
            self.stats.acked += 1
            await msg.ack()

    async def _reject(self, msg: Any, why: str) -> None:
        """A message no retry can fix: terminate it (it stays in the stream for inspection)."""
        self.stats.rejected += 1
        log.error("rejected queued message %s: %s", msg.subject, why)
        await msg.term()
