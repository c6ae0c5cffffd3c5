"""Python representations of WIT values that have no natural Python type.

- ``result<T, E>``: :class:`Ok` / :class:`Err`.
- ``option<T>``: ``None`` or the value; :class:`Some` marks a present value explicitly, which is
  needed for nested options (``option<option<u8>>`` ``some(none)`` is ``Some(None)``).
- ``variant``: :class:`Variant` ``(case, value)``; a plain case-name string is accepted when
  encoding a case without payload. ``enum``: the case name. ``flags``: a set of names.
- ``future<T>`` / ``stream<T>``: :class:`Future` / :class:`Stream`, which are both the thing you
  send (wrapping a value, awaitable or iterable) and the thing you receive (awaitable / async
  iterable fed by the transport).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections import deque
from collections.abc import AsyncIterable, Iterable
from typing import Any, Generic, NamedTuple, TypeVar

T = TypeVar("T")
E = TypeVar("E")


class Ok(Generic[T]):
    """The ``ok`` case of a ``result``."""

    __slots__ = ("value",)
    __match_args__ = ("value",)

    def __init__(self, value: T = None) -> None:  # type: ignore[assignment]
        self.value = value

    def __eq__(self, other: object) -> bool:
        return type(other) is Ok and other.value == self.value

    def __hash__(self) -> int:
        return hash(("ok", _hashable(self.value)))

    def __repr__(self) -> str:
        return f"Ok({self.value!r})"


class Err(Generic[E]):
    """The ``err`` case of a ``result``."""

    __slots__ = ("value",)
    __match_args__ = ("value",)

    def __init__(self, value: E = None) -> None:  # type: ignore[assignment]
        self.value = value

    def __eq__(self, other: object) -> bool:
        return type(other) is Err and other.value == self.value

    def __hash__(self) -> int:
        return hash(("err", _hashable(self.value)))

    def __repr__(self) -> str:
        return f"Err({self.value!r})"


class Some(Generic[T]):
    """An explicitly present ``option`` value; required only for nested options."""

    __slots__ = ("value",)
    __match_args__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return type(other) is Some and other.value == self.value

    def __hash__(self) -> int:
        return hash(("some", _hashable(self.value)))

    def __repr__(self) -> str:
        return f"Some({self.value!r})"


class Variant(NamedTuple):
    """A ``variant`` value: the case name and its payload (``None`` when the case has none)."""

    case: str
    value: Any = None


def _hashable(v: Any) -> Any:
    try:
        hash(v)
        return v
    except TypeError:
        return id(v)


_UNSET: Any = object()


class Future(Generic[T]):
    """A ``future<T>`` value.

    To send, wrap a value or an awaitable: ``Future(42)``, ``Future(some_coroutine())``. It is
    always sent *pending* (``00`` inline, the value later on its sub-stream), as Rust, Go and JS do.
    A received future is awaited: ``value = await fut``.
    """

    def __init__(self, source: Any = _UNSET) -> None:
        self._source = source
        self._value: Any = _UNSET
        self._exc: BaseException | None = None
        self._waiters: list[asyncio.Future[Any]] = []

    @property
    def done(self) -> bool:
        """True once a received future has its value (or failed)."""
        return self._value is not _UNSET or self._exc is not None

    def set_result(self, value: T) -> None:
        """Called by the decoder when the value arrives."""
        self._value = value
        self._wake()

    def set_exception(self, exc: BaseException) -> None:
        """Called by the transport when the sub-stream fails or ends early."""
        if not self.done:
            self._exc = exc
            self._wake()

    def _wake(self) -> None:
        for w in self._waiters:
            if not w.done():
                w.set_result(None)
        self._waiters.clear()

    async def resolve_source(self) -> T:
        """The value to send (awaiting the wrapped awaitable if there is one)."""
        src = self._source
        if src is _UNSET:
            raise ValueError("this Future has nothing to send")
        return await src if inspect.isawaitable(src) else src

    async def finished(self) -> None:
        """Wait until a received future has its value or failed (never raises)."""
        with contextlib.suppress(BaseException):
            await self

    def __await__(self):
        if not self.done:
            w = asyncio.get_running_loop().create_future()
            self._waiters.append(w)
            yield from w.__await__()
        if self._exc is not None:
            raise self._exc
        return self._value

    def __repr__(self) -> str:
        state = "pending" if not self.done else ("failed" if self._exc else repr(self._value))
        return f"Future({state})"


class Stream(Generic[T]):
    """A ``stream<T>`` value.

    To send, wrap an iterable or async iterable of *chunks* (``bytes`` for ``stream<u8>``, lists
    otherwise): ``Stream([b"abc", b"def"])``. Empty chunks are skipped on the wire because an empty
    chunk is the end marker. A received stream is an async iterator of chunks; ``await
    s.read_all()`` collects everything.
    """

    def __init__(self, source: Iterable[Any] | AsyncIterable[Any] | None = None) -> None:
        self._source = source
        self._chunks: deque[Any] = deque()
        self._closed = False
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[Any] | None = None
        self._closed_waiters: list[asyncio.Future[Any]] = []
        self.of_bytes = False  # set by the decoder for stream<u8>: read_all() then gives bytes

    async def chunks_to_send(self):
        """Iterate the chunks to send (sync or async source)."""
        src = self._source
        if src is None:
            raise ValueError("this Stream has nothing to send")
        if hasattr(src, "__aiter__"):
            async for c in src:  # type: ignore[union-attr]
                yield c
        else:
            for c in src:  # type: ignore[union-attr]
                yield c

    def push(self, chunk: Any) -> None:
        """Called by the decoder for every received chunk."""
        self._chunks.append(chunk)
        self._wake()

    def close(self, exc: BaseException | None = None) -> None:
        """Called by the decoder at the end marker, or by the transport on failure."""
        if not self._closed:
            self._closed = True
            self._exc = exc
            self._wake()

    @property
    def closed(self) -> bool:
        """True once the end marker (or a failure) was received."""
        return self._closed

    async def finished(self) -> None:
        """Wait until the end marker (or a failure) arrived, without consuming chunks."""
        while not self._closed:
            w = asyncio.get_running_loop().create_future()
            self._closed_waiters.append(w)
            await w

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if self._closed:
            for w in self._closed_waiters:
                if not w.done():
                    w.set_result(None)
            self._closed_waiters.clear()

    def __aiter__(self):
        return self

    async def __anext__(self) -> Any:
        while not self._chunks:
            if self._closed:
                if self._exc is not None:
                    raise self._exc
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._chunks.popleft()

    async def read_all(self) -> Any:
        """All remaining chunks joined: ``bytes`` for ``stream<u8>``, else a list."""
        parts = [c async for c in self]
        if self.of_bytes or (parts and isinstance(parts[0], bytes | bytearray)):
            return b"".join(parts)
        return [x for c in parts for x in c]

    def __repr__(self) -> str:
        return f"Stream(buffered={len(self._chunks)}, closed={self._closed})"
