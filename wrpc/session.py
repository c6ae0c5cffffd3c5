"""Transport-neutral halves of an invocation: sending a value tuple, receiving one.

A tuple of values (parameters or results) travels as a *root* byte stream plus one sub-stream per
pending async value, addressed by its index path (spec §1.2). TCP carries sub-streams as frames,
NATS as subjects; both plug into :class:`Sender` (through an :class:`Outgoing`) and
:class:`Receiver`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from functools import cache
from typing import Any, Protocol

from wrpc.codec import (
    DEFAULT_LIMITS,
    DecodeContext,
    IncrementalDecoder,
    Limits,
    StreamDecoder,
    encode_async,
    encoder,
    put_uleb,
)
from wrpc.errors import DeadlineExceeded, IncompleteResults, LimitExceeded, ProtocolError
from wrpc.types import (
    FutureT,
    ListT,
    OptionT,
    Prim,
    RecordT,
    ResultT,
    StreamT,
    TupleT,
    Type,
    VariantT,
    has_async,
)
from wrpc.values import Future, Stream

log = logging.getLogger("wrpc")

Path = tuple[int, ...]
Pattern = tuple[int | None, ...]


@cache
def async_paths(t: Type | None) -> frozenset[Pattern]:
    """Relative index paths that may carry async data for a value of ``t`` (None = wildcard)."""
    if t is None or not has_async(t):
        return frozenset()
    if isinstance(t, FutureT):
        return frozenset({(), *async_paths(t.inner)})
    if isinstance(t, StreamT):
        return frozenset({(), *((None, *p) for p in async_paths(t.inner))})
    if isinstance(t, ListT):
        return frozenset((None, *p) for p in async_paths(t.elem))
    if isinstance(t, TupleT | RecordT):
        elems = t.elems if isinstance(t, TupleT) else [ft for _, ft in t.fields]
        return frozenset((k, *p) for k, e in enumerate(elems) for p in async_paths(e))
    if isinstance(t, OptionT | ResultT | VariantT):
        return frozenset().union(*(async_paths(c) for c in t.children()))
    return frozenset()


def path_allowed(path: Path, patterns: frozenset[Pattern]) -> bool:
    """Whether a received sub-stream path matches one derived from the signature."""
    return any(len(p) == len(path) and all(q is None or q == x for q, x in zip(p, path, strict=True)) for p in patterns)


def encode_values(types: TupleT, values: Sequence[Any]) -> tuple[bytes, list]:
    """Encode a value tuple: the root bytes and the pending async values."""
    if has_async(types):
        return encode_async(types, tuple(values))
    buf = bytearray()
    encoder(types)(tuple(values), buf)
    return bytes(buf), []


class Outgoing(Protocol):
    """What a transport offers the sender: bytes per path, end of a path, end of everything."""

    async def write(self, path: Path, data: bytes) -> None: ...

    async def end(self, path: Path) -> None: ...

    async def close(self) -> None: ...


class Sender:
    """Send one value tuple: the root bytes, then every async value on its own sub-stream."""

    def __init__(self, out: Outgoing) -> None:
        self.out = out

    async def send(self, types: TupleT, values: Sequence[Any]) -> None:
        """Encode and send ``values``; returns after the last byte and the final close."""
        await self.send_encoded(*encode_values(types, values))

    async def send_encoded(self, root: bytes, deferred: list) -> None:
        """Send values already encoded by :func:`encode_values`."""
        await self.out.write((), root)
        await self.out.end(())
        await self._drain(deferred)
        await self.out.close()

    async def _drain(self, deferred: list) -> None:
        if deferred:
            await asyncio.gather(*(self._send_async(p, t, v) for p, t, v in deferred))

    async def _send_async(self, path: Path, t: Type, v: Future | Stream) -> None:
        if isinstance(t, FutureT):
            assert isinstance(v, Future)
            value = await v.resolve_source()
            data, nested = encode_async(t.inner, value, path) if t.inner is not None else (b"", [])
            if data:
                await self.out.write(path, data)
            await self._drain(nested)
        else:
            assert isinstance(t, StreamT) and isinstance(v, Stream)
            await self._send_stream(path, t, v)
        await self.out.end(path)

    async def _send_stream(self, path: Path, t: StreamT, s: Stream) -> None:
        base = 0
        is_bytes = t.inner == Prim("u8")
        async for chunk in s.chunks_to_send():
            if not len(chunk):  # an empty chunk would read as the end marker
                continue
            head = bytearray()
            put_uleb(head, len(chunk))
            if is_bytes:
                await self.out.write(path, bytes(head) + bytes(chunk))
            else:
                body = bytearray(head)
                nested: list = []
                if t.inner is not None:
                    for j, x in enumerate(chunk):
                        data, more = encode_async(t.inner, x, (*path, base + j))
                        body += data
                        nested += more
                await self.out.write(path, bytes(body))
                await self._drain(nested)
            base += len(chunk)
        await self.out.write(path, b"\x00")


class Receiver:
    """Receive one value tuple from a root stream plus async sub-streams.

    ``feed(path, data)`` as bytes arrive, ``eof()`` when the peer is done. ``values`` is set when
    the root tuple is complete (``root_done`` is then set). Bytes for a path are buffered until its
    decoder exists, within ``limits.max_bytes`` in total.
    """

    def __init__(self, types: TupleT, limits: Limits = DEFAULT_LIMITS, what: str = "results") -> None:
        self.types = types
        self.limits = limits
        self.what = what
        self.patterns = async_paths(types)
        self.ctx = DecodeContext(limits)
        self.root = IncrementalDecoder(types, (), self.ctx)
        self.root_done = asyncio.Event()
        self.values: tuple | None = None
        self.handles: list[Future | Stream] = []
        self._sinks: dict[Path, list[Any]] = {}
        self._pending_bytes: dict[Path, bytearray] = {}
        self._buffered = 0
        if self.root.done:
            self._complete_root()

    def feed(self, path: Path, data: bytes) -> None:
        """Route bytes received for ``path``."""
        if not data:
            return
        if path == ():
            if self.root.done:
                raise ProtocolError(f"{len(data)} bytes after the complete {self.what}")
            if self.root.buffered() + len(data) > self.limits.max_bytes:
                raise LimitExceeded(f"{self.what} exceed {self.limits.max_bytes} bytes")
            if self.root.feed(data):
                extra = self.root.remaining()
                if extra:
                    raise ProtocolError(f"{len(extra)} bytes after the complete {self.what}")
                self._complete_root()
            return
        if not path_allowed(path, self.patterns):
            raise ProtocolError(f"data for path {list(path)}, which the signature does not have")
        if path in self._sinks:
            self._feed_sink(path, data)
        else:
            self._buffered += len(data)
            if self._buffered > self.limits.max_bytes:
                raise LimitExceeded(f"more than {self.limits.max_bytes} bytes buffered for async values")
            self._pending_bytes.setdefault(path, bytearray()).extend(data)

    def _complete_root(self) -> None:
        self.values = self.root.value
        self._attach_pending()
        self.root_done.set()

    def _attach_pending(self) -> None:
        while self.ctx.pending:
            path, t, handle = self.ctx.pending.pop(0)
            self.handles.append(handle)
            if isinstance(t, StreamT):
                sink: Any = StreamDecoder(t, path, handle, self.ctx)  # type: ignore[arg-type]
            else:
                sink = _FutureSink(t, path, handle, self.ctx)  # type: ignore[arg-type]
            self._sinks.setdefault(path, []).append(sink)
            buffered = self._pending_bytes.pop(path, None)
            if buffered:
                self._buffered -= len(buffered)
                self._feed_sink(path, bytes(buffered))

    def _feed_sink(self, path: Path, data: bytes) -> None:
        sinks = self._sinks[path]
        while data:
            if not sinks:
                raise ProtocolError(f"{len(data)} unexpected bytes on path {list(path)}")
            sink = sinks[0]
            if not sink.feed(data):
                break
            data = sink.remaining()
            sinks.pop(0)
            self._attach_pending()  # nested async values may continue on this same path

    def end_path(self, path: Path) -> None:
        """One sub-stream ended (NATS empty message): fail its incomplete value."""
        if path == ():
            if not self.root.done:
                n = self.root.buffered()
                detail = f"{n} bytes remaining on stream" if n else "no data"
                raise IncompleteResults(f"incomplete {self.what}: {detail}")
            return
        for sink in self._sinks.get(path, []):
            sink.fail(IncompleteResults(f"{self.what}: sub-stream {list(path)} ended before its value"))

    def eof(self) -> None:
        """The peer finished sending: fail whatever is incomplete."""
        for sinks in self._sinks.values():
            for sink in sinks:
                sink.fail(IncompleteResults(f"{self.what}: sub-stream ended before its value was complete"))
        if not self.root.done:
            n = self.root.buffered()
            detail = f"{n} bytes remaining on stream" if n else "no data"
            raise IncompleteResults(f"incomplete {self.what}: {detail}")

    async def finished(self, timeout: float | None) -> None:
        """Wait (at most ``timeout`` s) until every received async value is complete; fail the rest."""
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(h.finished() for h in self.handles))
        except TimeoutError:
            self.fail(DeadlineExceeded(f"{self.what}: async values not complete within {timeout}s"))

    def fail(self, exc: BaseException) -> None:
        """Propagate a transport failure to the async values the application may be awaiting."""
        for h in self.handles:
            if isinstance(h, Future):
                h.set_exception(exc)
            else:
                h.close(exc)


class _FutureSink:
    def __init__(self, t: FutureT, path: Path, fut: Future, ctx: DecodeContext) -> None:
        self.fut = fut
        self.dec = IncrementalDecoder(t.inner, path, ctx) if t.inner is not None else None
        if self.dec is None:
            fut.set_result(None)

    def feed(self, data: bytes) -> bool:
        if self.dec is None:
            return True
        if self.dec.feed(data):
            self.fut.set_result(self.dec.value)
            return True
        return False

    def remaining(self) -> bytes:
        return self.dec.remaining() if self.dec is not None else b""

    def fail(self, exc: BaseException) -> None:
        self.fut.set_exception(exc)
