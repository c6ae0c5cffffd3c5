"""wRPC over NATS, as wRPC v0.17.0 speaks it (spec §3), on top of nats-py.

Subjects: ``[prefix.]wrpc.0.0.1.[instance.]func`` for invocations; the client's reply subject
``R_c`` gets the handshake and ``R_c.results[.path]``; the server answers the handshake with
``R_s`` and reads ``R_s.params[.path]``. Every payload is a raw chunk of one sub-stream, at most
``max_payload`` bytes; an empty payload ends a sub-stream. ::

    nc = await nats.connect(url)
    server = wrpc.nats.Server(nc, prefix="edge", group="checkers")
    server.register(func, handler)
    await server.start()

    client = wrpc.nats.Client(nc, prefix="edge", timeout=5.0)
    result = await client.invoke(func, *args)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from nats.aio.client import Client as NatsConnection
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.nuid import NUID

from wrpc.codec import DEFAULT_LIMITS, Limits
from wrpc.errors import (
    DeadlineExceeded,
    NoResponders,
    ProtocolError,
    TransportError,
    WrpcError,
)
from wrpc.session import Path, Receiver, Sender, encode_values
from wrpc.types import TupleT
from wrpc.wit import Function

log = logging.getLogger("wrpc.nats")

PROTOCOL = "wrpc.0.0.1"
HEADER_OVERHEAD = 64  # room for the PUB line beyond subject and headers when sizing the first chunk


def invocation_subject(prefix: str, instance: str, func: str) -> str:
    """``(prefix.)wrpc.0.0.1.(instance.)func`` (Rust ``invocation_subject``)."""
    return (f"{prefix}." if prefix else "") + f"{PROTOCOL}." + (f"{instance}." if instance else "") + func


def _path_subject(base: str, path: Path) -> str:
    return base + "".join(f".{p}" for p in path)


def _parse_path(tokens: str) -> Path:
    if not tokens:
        return ()
    try:
        return tuple(int(t) for t in tokens.split("."))
    except ValueError:
        raise ProtocolError(f"bad sub-stream path {tokens!r}") from None


class _NatsOut:
    """Outgoing sub-streams as subjects under ``base``; payloads split at ``max_payload``."""

    def __init__(self, nc: NatsConnection, base: str, skip_root: int = 0) -> None:
        self.nc = nc
        self.base = base
        self.skip_root = skip_root  # root bytes already sent with the invocation message

    async def write(self, path: Path, data: bytes) -> None:
        if path == () and self.skip_root:
            data, self.skip_root = data[self.skip_root :], 0
        subject = _path_subject(self.base, path)
        step = max(1, self.nc.max_payload)
        view = memoryview(data)
        for i in range(0, len(data), step):
            await self.nc.publish(subject, bytes(view[i : i + step]))

    async def end(self, path: Path) -> None:
        await self.nc.publish(_path_subject(self.base, path), b"")

    async def close(self) -> None:
        """NATS has no connection to close: every path already sent its EOF."""


class _Inbox:
    """One wildcard subscription ``<inbox>.>`` routing messages to per-invocation handlers."""

    def __init__(self, nc: NatsConnection) -> None:
        self.nc = nc
        self.prefix = nc.new_inbox()
        self.routes: dict[str, Callable[[str, Msg], None]] = {}
        self.sub: Subscription | None = None
        self._nuid = NUID()
        self._lock = asyncio.Lock()

    async def ensure(self) -> None:
        async with self._lock:
            if self.sub is None:
                self.sub = await self.nc.subscribe(self.prefix + ".>", cb=self._on_msg)
                await self.nc.flush()

    def new(self, route: Callable[[str, Msg], None]) -> str:
        token = self._nuid.next().decode()
        self.routes[token] = route
        return f"{self.prefix}.{token}"

    def drop(self, subject: str) -> None:
        self.routes.pop(subject.rsplit(".", 1)[-1], None)

    async def _on_msg(self, msg: Msg) -> None:
        rest = msg.subject[len(self.prefix) + 1 :]
        token, _, tail = rest.partition(".")
        route = self.routes.get(token)
        if route is None:
            return  # a late message of a finished invocation
        route(tail, msg)

    async def close(self) -> None:
        if self.sub is not None:
            with contextlib.suppress(Exception):
                await self.sub.unsubscribe()
            self.sub = None


def _retrieve(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()


class _Incoming:
    """Feeds one direction's sub-stream messages (``<kind>[.path]``) into a Receiver."""

    def __init__(self, recv: Receiver, kind: str) -> None:
        self.recv = recv
        self.kind = kind
        self.error: BaseException | None = None
        # resolved when the root value is complete, or with the error that ended it first
        self.root: asyncio.Future[tuple] = asyncio.get_running_loop().create_future()
        self.root.add_done_callback(_retrieve)  # an error nobody awaits any more is not "unretrieved"
        self._check_root()

    def _check_root(self) -> None:
        if not self.root.done() and self.recv.root_done.is_set():
            self.root.set_result(self.recv.values)  # type: ignore[arg-type]

    def on(self, tail: str, msg: Msg) -> None:
        if self.error is not None:
            return
        head, _, path_s = tail.partition(".")
        try:
            if head != self.kind:
                raise ProtocolError(f"message on unexpected subject {msg.subject}")
            path = _parse_path(path_s)
            if msg.data:
                self.recv.feed(path, msg.data)
            else:
                self.recv.end_path(path)
            self._check_root()
        except Exception as e:
            self.error = e
            self.recv.fail(e)
            if not self.root.done():
                self.root.set_exception(e)

    async def wait_root(self) -> tuple:
        """The root value, or the error that ended the stream first."""
        return await self.root


class Client:
    """A wRPC NATS client over an existing nats-py connection."""

    def __init__(
        self,
        nc: NatsConnection,
        prefix: str = "",
        *,
        timeout: float = 10.0,
        limits: Limits = DEFAULT_LIMITS,
        async_timeout: float | None = 300.0,
    ) -> None:
        self.nc = nc
        self.prefix = prefix
        self.timeout = timeout  # handshake + the complete root result value
        self.async_timeout = async_timeout  # after that: until every future/stream is done
        self.limits = limits
        self._inbox = _Inbox(nc)

    async def invoke(
        self, func: Function, *args: Any, headers: dict[str, str] | None = None, timeout: float | None = None
    ) -> Any:
        """Call ``func``; returns its result (``None`` if it has none)."""
        values = await self.invoke_raw(
            func.instance, func.name, func.param_types, args, func.result_types, headers=headers, timeout=timeout
        )
        if not func.result_types.elems:
            return None
        return values[0] if len(values) == 1 else values

    async def invoke_raw(
        self,
        instance: str,
        name: str,
        params: TupleT,
        args: Sequence[Any],
        results: TupleT,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple:
        """Call by wire names and explicit types; returns the result tuple."""
        if len(args) != len(params.elems):
            raise TypeError(f"{instance}.{name} takes {len(params.elems)} arguments, got {len(args)}")
        encoded = encode_values(params, args)
        deadline = self.timeout if timeout is None else timeout
        subject = invocation_subject(self.prefix, instance, name)
        try:
            async with asyncio.timeout(deadline):
                return await self._invoke(subject, encoded, results, headers)
        except TimeoutError:
            raise DeadlineExceeded(f"{subject}: no result in {deadline}s") from None
        except WrpcError:
            raise
        except Exception as e:  # nats-py errors (connection closed, max payload, ...)
            raise TransportError(f"{subject}: {type(e).__name__}: {e}") from e

    async def _invoke(self, subject: str, encoded: tuple, results: TupleT, headers: dict[str, str] | None) -> tuple:
        await self._inbox.ensure()
        handshake: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        incoming = _Incoming(Receiver(results, self.limits, "results"), "results")

        def route(tail: str, msg: Msg) -> None:
            if tail == "":
                if not handshake.done():
                    handshake.set_result(msg)
            else:
                incoming.on(tail, msg)

        reply = self._inbox.new(route)
        try:
            root, deferred = encoded
            hdr_len = sum(len(k) + len(v) + 4 for k, v in (headers or {}).items()) + (12 if headers else 0)
            first = root[: max(0, self.nc.max_payload - len(reply) - hdr_len - HEADER_OVERHEAD)]
            await self.nc.publish(subject, first, reply=reply, headers=headers)
            msg = await handshake
            server_inbox = _check_handshake(subject, msg)
            sending = Sender(_NatsOut(self.nc, server_inbox + ".params", skip_root=len(first)))
            send_task = asyncio.create_task(sending.send_encoded(root, deferred))
            values = await incoming.wait_root()
            await send_task
            return values
        except BaseException as e:
            incoming.recv.fail(e if isinstance(e, WrpcError) else TransportError(str(e)))
            raise
        finally:
            _drop_when_finished(self._inbox, reply, incoming.recv, self.async_timeout)

    async def close(self) -> None:
        """Drop the inbox subscription (the NATS connection stays open)."""
        await self._inbox.close()


_BACKGROUND: set[asyncio.Task] = set()


def _drop_when_finished(inbox: _Inbox, subject: str, recv: Receiver, timeout: float | None) -> None:
    """Stop routing a reply subject once its async values are complete (or timed out)."""
    if not recv.handles:
        inbox.drop(subject)
        return

    async def later() -> None:
        await recv.finished(timeout)
        inbox.drop(subject)

    task = asyncio.create_task(later())
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


def _check_handshake(subject: str, msg: Msg) -> str:
    status = (msg.headers or {}).get("Status")
    if status == "503":
        raise NoResponders(f"no responders for {subject}")
    if status == "408":
        raise DeadlineExceeded(f"{subject}: NATS request timeout (408)")
    if status and not status.startswith("2"):
        raise TransportError(f"{subject}: NATS status {status} {(msg.headers or {}).get('Description', '')}")
    if not msg.reply:
        raise ProtocolError(f"{subject}: handshake without a reply subject")
    return msg.reply


Handler = Callable[..., Any]


class Server:
    """A wRPC NATS server: subscribe invocation subjects (optionally in a queue group)."""

    def __init__(
        self,
        nc: NatsConnection,
        prefix: str = "",
        *,
        group: str | None = None,
        timeout: float = 30.0,
        limits: Limits = DEFAULT_LIMITS,
        max_inflight: int = 1024,
    ) -> None:
        self.nc = nc
        self.prefix = prefix
        self.group = group
        self.timeout = timeout
        self.max_inflight = max_inflight
        self.limits = limits
        self._handlers: dict[str, tuple[Function, Handler]] = {}
        self._subs: list[Subscription] = []
        self._inbox = _Inbox(nc)
        self._tasks: set[asyncio.Task] = set()
        self.stats = {"ok": 0, "failed": 0}

    def register(self, func: Function, handler: Handler) -> None:
        """Serve ``func`` with ``handler(*params)`` (sync or async)."""
        self._handlers[invocation_subject(self.prefix, func.instance, func.name)] = (func, handler)

    def register_all(self, functions: dict[str, Function], impl: object) -> None:
        """Serve every function of an interface by the method of the same (snake_case) name."""
        for name, func in functions.items():
            self.register(func, getattr(impl, name.replace("-", "_").replace(".", "_")))

    async def start(self) -> None:
        """Subscribe (handshake inbox first, then the invocation subjects) and flush."""
        await self._inbox.ensure()
        for subject in self._handlers:
            self._subs.append(await self.nc.subscribe(subject, queue=self.group or "", cb=self._on_invocation))
        await self.nc.flush()

    async def close(self, grace: float = 5.0) -> None:
        """Stop taking invocations; let running ones finish for up to ``grace`` seconds."""
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for t in pending:
                t.cancel()
        await self._inbox.close()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _on_invocation(self, msg: Msg) -> None:
        entry = self._handlers.get(msg.subject)
        if entry is None or not msg.reply:
            self.stats["failed"] += 1
            log.warning("dropped invocation on %s: %s", msg.subject, "peer did not specify a reply subject")
            return
        func, handler = entry
        if len(self._tasks) >= self.max_inflight:  # bounded work: refuse at once, the client sees EOF
            self.stats["failed"] += 1
            log.warning("refused invocation on %s: %d already in flight", msg.subject, len(self._tasks))
            await self.nc.publish(msg.reply, b"", reply=self._inbox.prefix + ".refused")
            await self.nc.publish(msg.reply + ".results", b"")
            return
        incoming = _Incoming(Receiver(func.param_types, self.limits, "params"), "params")
        server_inbox = self._inbox.new(incoming.on)
        await self.nc.publish(msg.reply, b"", reply=server_inbox)  # handshake accept
        if msg.data:  # the invocation payload is the first root-param chunk (empty is not EOF here)
            incoming.on("params", msg)
        task = asyncio.create_task(self._serve(func, handler, incoming, msg, server_inbox))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, func: Function, handler: Handler, incoming: _Incoming, msg: Msg, inbox: str) -> None:
        results_out = _NatsOut(self.nc, msg.reply + ".results")
        try:
            async with asyncio.timeout(self.timeout):
                params = await incoming.wait_root()
                result = handler(*params)
                if inspect.isawaitable(result):
                    result = await result
                results = () if func.result is None else (result,)
                await Sender(results_out).send(func.result_types, results)
            self.stats["ok"] += 1
        except Exception as e:
            self.stats["failed"] += 1
            log.warning("invocation %s failed: %s: %s", msg.subject, type(e).__name__, e)
            with contextlib.suppress(Exception):  # tell the client: results end without a value
                await results_out.end(())
        finally:
            _drop_when_finished(self._inbox, inbox, incoming.recv, self.timeout)
