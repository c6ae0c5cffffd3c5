"""wRPC over TCP (spec §2): one connection per invocation, framed sub-streams, half-close.

Client::

    client = wrpc.tcp.Client("127.0.0.1", 7761, timeout=5.0)
    status = await client.invoke(pkg.func("checker", "get-status"), "ssh")

Server::

    server = wrpc.tcp.Server(host="127.0.0.1", port=7761, timeout=30.0)
    server.register(pkg.func("checker", "get-status"), get_status)   # async or plain callable
    async with server:
        await server.serve_forever()
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from wrpc.codec import DEFAULT_LIMITS, Limits, _Short, put_uleb, read_u32
from wrpc.errors import (
    DeadlineExceeded,
    DecodeError,
    IncompleteResults,
    LimitExceeded,
    ProtocolError,
    TransportError,
    UnknownFunction,
    WrpcError,
)
from wrpc.session import Path, Receiver, Sender, encode_values
from wrpc.types import TupleT, has_async
from wrpc.wit import Function

log = logging.getLogger("wrpc.tcp")

PROTOCOL_VERSION = 0
MAX_PATH_DEPTH = 32  # the Rust frame decoder's default
MAX_NAME = 4096  # instance / function names in the header
READ_SIZE = 1 << 16


def encode_frame(path: Path, data: bytes) -> bytes:
    """One frame: ``uleb(len(path)) uleb(p)… uleb(len(data)) data``."""
    out = bytearray()
    put_uleb(out, len(path))
    for p in path:
        put_uleb(out, p)
    put_uleb(out, len(data))
    out += data
    return bytes(out)


def encode_header(instance: str, func: str) -> bytes:
    """The client's invocation header: version byte, instance, function."""
    out = bytearray([PROTOCOL_VERSION])
    for s in (instance, func):
        b = s.encode()
        put_uleb(out, len(b))
        out += b
    return bytes(out)


class FrameParser:
    """Incremental frame decoder with limits on path depth and frame size."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS, max_depth: int = MAX_PATH_DEPTH) -> None:
        self.buf = bytearray()
        self.pos = 0
        self.max_data = limits.max_bytes
        self.max_depth = max_depth

    def feed(self, data: bytes) -> list[tuple[Path, bytes]]:
        """Add bytes; return the frames they complete."""
        self.buf += data
        frames = []
        while True:
            try:
                frame, self.pos = self._one(self.pos)
            except _Short:
                break
            frames.append(frame)
        if self.pos:
            del self.buf[: self.pos]
            self.pos = 0
        return frames

    def _one(self, pos: int) -> tuple[tuple[Path, bytes], int]:
        buf = self.buf
        depth, pos = read_u32(buf, pos)
        if depth > self.max_depth:
            raise ProtocolError(f"frame path of depth {depth} exceeds {self.max_depth}")
        path = []
        for _ in range(depth):
            p, pos = read_u32(buf, pos)
            path.append(p)
        n, pos = read_u32(buf, pos)
        if n > self.max_data:
            raise LimitExceeded(f"frame of {n} bytes exceeds the limit of {self.max_data}")
        end = pos + n
        if end > len(buf):
            raise _Short
        return (tuple(path), bytes(buf[pos:end])), end

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held."""
        return len(self.buf) - self.pos


class _TcpOut:
    """Outgoing half of a TCP invocation: frames, then half-close (FIN)."""

    def __init__(self, writer: asyncio.StreamWriter, header: bytes = b"") -> None:
        self.writer = writer
        self.header = header

    async def write(self, path: Path, data: bytes) -> None:
        # the header and the root frame go out in one write, as the Rust and Go clients do
        self.writer.write(self.header + encode_frame(path, data))
        self.header = b""
        await self.writer.drain()

    async def end(self, path: Path) -> None:
        """TCP has no per-path close: a path ends with the connection."""

    async def close(self) -> None:
        if self.writer.can_write_eof():
            self.writer.write_eof()


async def _pump(reader: asyncio.StreamReader, parser: FrameParser, recv: Receiver, until_root: bool) -> bool:
    """Feed frames into ``recv``; stop after the root value (if asked) or at EOF (returns True)."""
    while not (until_root and recv.root_done.is_set()):
        data = await reader.read(READ_SIZE)
        if not data:
            if parser.pending:
                raise IncompleteResults(f"connection ended inside a frame ({parser.pending} bytes)")
            recv.eof()
            return True
        for path, chunk in parser.feed(data):
            recv.feed(path, chunk)
    return False


def _unwrap(func_results: TupleT, values: tuple) -> Any:
    """0 results -> None, 1 -> the value, more (old WIT) -> the tuple."""
    if not func_results.elems:
        return None
    return values[0] if len(values) == 1 else values


class Client:
    """A wRPC TCP client; every :meth:`invoke` opens its own connection (spec §2.1)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 10.0,
        limits: Limits = DEFAULT_LIMITS,
        async_timeout: float | None = 300.0,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout  # connect + parameters + the complete root result value
        self.async_timeout = async_timeout  # after the root value: until every future/stream is done
        self.limits = limits

    async def invoke(self, func: Function, *args: Any, timeout: float | None = None) -> Any:
        """Call ``func`` with ``args``; returns its result (``None`` if it has none)."""
        values = await self.invoke_raw(
            func.instance, func.name, func.param_types, args, func.result_types, timeout=timeout
        )
        return _unwrap(func.result_types, values)

    async def invoke_raw(
        self,
        instance: str,
        name: str,
        params: TupleT,
        args: Sequence[Any],
        results: TupleT,
        *,
        timeout: float | None = None,
    ) -> tuple:
        """Call by wire names and explicit types; returns the result tuple."""
        if len(args) != len(params.elems):
            raise TypeError(f"{instance}.{name} takes {len(params.elems)} arguments, got {len(args)}")
        deadline = self.timeout if timeout is None else timeout
        encoded = encode_values(params, args)  # bad arguments fail here, before connecting
        try:
            async with asyncio.timeout(deadline):
                return await self._invoke(instance, name, encoded, params, results)
        except TimeoutError:
            raise DeadlineExceeded(f"{instance}.{name} on {self.host}:{self.port}: no result in {deadline}s") from None
        except (ConnectionError, OSError) as e:
            raise TransportError(f"{instance}.{name} on {self.host}:{self.port}: {e}") from e

    async def _invoke(self, instance: str, name: str, encoded: tuple, params: TupleT, results: TupleT) -> tuple:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        recv = Receiver(results, self.limits, "results")
        keep_open = False
        sending: asyncio.Future | None = None
        try:
            if encoded[1]:  # async params: their writers run beside the result reader
                out = _TcpOut(writer, encode_header(instance, name))
                sending = asyncio.create_task(Sender(out).send_encoded(*encoded))
            else:  # the common case: header, root frame and FIN in one go, no extra task
                writer.write(encode_header(instance, name) + encode_frame((), encoded[0]))
                writer.write_eof()
                await writer.drain()
            parser = FrameParser(self.limits)
            # zero results: only the server's FIN says the call finished
            await _pump(reader, parser, recv, until_root=bool(results.elems))
            if sending is None:
                sending = _done_future()
            elif sending.done():
                await sending
            if has_async(results) or encoded[1]:
                keep_open = True
                task = asyncio.create_task(_finish(reader, writer, parser, recv, sending, self.async_timeout))
                _BACKGROUND.add(task)  # keep a reference until it finishes
                task.add_done_callback(_BACKGROUND.discard)
            assert recv.values is not None
            return recv.values
        except BaseException as e:
            recv.fail(e if isinstance(e, WrpcError) else TransportError(str(e)))
            if sending is not None and not sending.done():
                sending.cancel()  # async parameter writers end with the call
            raise
        finally:
            if not keep_open:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()


async def _finish(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    parser: FrameParser,
    recv: Receiver,
    sending: asyncio.Future,
    timeout: float | None,
) -> None:
    """Keep the connection for async values after the root value was returned (within ``timeout``)."""
    try:
        async with asyncio.timeout(timeout):
            await _pump(reader, parser, recv, until_root=False)
            await sending
    except TimeoutError:
        recv.fail(DeadlineExceeded(f"async values not complete within {timeout}s"))
        log.warning("async values not complete within %ss; connection closed", timeout)
    except Exception as e:  # the values' consumers see the failure
        recv.fail(e)
        log.warning("async values failed: %s", e)
    finally:
        writer.close()


_BACKGROUND: set[asyncio.Task] = set()
Handler = Callable[..., Any]


class Server:
    """A wRPC TCP server: register handlers for functions, then ``async with server``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        timeout: float = 30.0,
        limits: Limits = DEFAULT_LIMITS,
        max_connections: int = 256,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.limits = limits
        self._handlers: dict[tuple[str, str], tuple[Function, Handler]] = {}
        self._server: asyncio.base_events.Server | None = None
        self._slots = asyncio.Semaphore(max_connections)
        self._tasks: set[asyncio.Task] = set()
        self.stats = {"ok": 0, "failed": 0}

    def register(self, func: Function, handler: Handler) -> None:
        """Serve ``func`` with ``handler(*params)`` (sync or async), which returns the result."""
        self._handlers[(func.instance, func.name)] = (func, handler)

    def register_all(self, functions: dict[str, Function], impl: object) -> None:
        """Serve every function of an interface by the method of the same (snake_case) name."""
        for name, func in functions.items():
            self.register(func, getattr(impl, name.replace("-", "_").replace(".", "_")))

    async def start(self) -> None:
        """Bind and start accepting; ``port`` is updated to the bound port."""
        self._server = await asyncio.start_server(self._on_connection, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        """Accept connections until cancelled or :meth:`close`."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        with contextlib.suppress(asyncio.CancelledError):
            await self._server.serve_forever()

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, let running invocations finish for up to ``grace`` seconds."""
        if self._server is not None:
            self._server.close()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for t in pending:
                t.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        try:
            async with asyncio.timeout(self.timeout), self._slots:  # waiting for a slot counts too
                await self._serve_one(reader, writer)
            self.stats["ok"] += 1
        except TimeoutError:
            self.stats["failed"] += 1
            log.warning("invocation from %s exceeded the %ss deadline; connection closed", peer, self.timeout)
        except (WrpcError, ConnectionError, OSError) as e:
            self.stats["failed"] += 1
            log.warning("invocation from %s failed: %s: %s", peer, type(e).__name__, e)
        except Exception:
            self.stats["failed"] += 1
            log.exception("handler failed for invocation from %s", peer)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        instance, name, rest_of_chunk = await _read_header(reader)
        entry = self._handlers.get((instance, name))
        if entry is None:
            raise UnknownFunction(f"no handler for {instance!r} function {name!r}")
        func, handler = entry
        recv = Receiver(func.param_types, self.limits, "params")
        parser = FrameParser(self.limits)
        for path, chunk in parser.feed(rest_of_chunk):  # frames that came with the header
            recv.feed(path, chunk)
        eof = await _pump(reader, parser, recv, until_root=True)
        # async params keep arriving while the handler runs; otherwise only the FIN is left
        rest = None
        if not eof and has_async(func.param_types):
            rest = asyncio.create_task(_pump(reader, parser, recv, until_root=False))
        try:
            assert recv.values is not None
            result = handler(*recv.values)
            if inspect.isawaitable(result):
                result = await result
            results = () if func.result is None else (result,)
            await Sender(_TcpOut(writer)).send(func.result_types, results)
            if rest is not None:
                await rest
            elif not eof:  # read up to the client's FIN so closing does not reset unread data
                await _pump(reader, parser, recv, until_root=False)
        finally:
            if rest is not None:
                rest.cancel()


def _done_future() -> asyncio.Future:
    fut = asyncio.get_running_loop().create_future()
    fut.set_result(None)
    return fut


async def _read_header(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    """Version byte, instance and function; also returns the bytes read past the header."""
    buf = bytearray()
    while True:
        try:
            instance, name, end = _parse_header(buf)
            return instance, name, bytes(buf[end:])
        except _Short:
            data = await reader.read(READ_SIZE)
            if not data:
                raise ProtocolError("connection ended inside the invocation header") from None
            buf += data


def _parse_header(buf: bytearray) -> tuple[str, str, int]:
    if not buf:
        raise _Short
    if buf[0] != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {buf[0]}")
    pos, names = 1, []
    for _ in range(2):
        try:
            n, pos = read_u32(buf, pos)
        except DecodeError as e:
            raise ProtocolError(f"bad name length: {e}") from None
        if n > MAX_NAME:
            raise ProtocolError(f"name of {n} bytes exceeds {MAX_NAME}")
        if pos + n > len(buf):
            raise _Short
        try:
            names.append(buf[pos : pos + n].decode("utf-8"))
        except UnicodeDecodeError:
            raise ProtocolError("instance or function name is not UTF-8") from None
        pos += n
    return names[0], names[1], pos
