"""The live engine: standing queries over pushed batches, results to callbacks and async iterators.

Time comes from the events (event time); when a query's inputs go quiet, :meth:`Engine.tick` advances
its event time by the wall-clock time passed since its last event (an idle watermark tick), so windows
still close on a quiet stream. Un-windowed aggregates with ``EMIT PERIODIC`` emit on ticks.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta

import pyarrow as pa

from srql_compiler import plan as P
from streams.engine.query import QueryRunner
from streams.engine.replay import to_plan

Callback = Callable[["StandingQuery", pa.Table], None]
_END = object()


class StandingQuery:
    """One registered query: deliver results to callbacks, an async iterator, and keep the latest few."""

    def __init__(self, plan: P.Plan, name: str, keep_last: int = 8, queue_size: int = 1024) -> None:
        self.plan = plan
        self.name = name
        self.runner = QueryRunner(plan)
        self.callbacks: list[Callback] = []
        self.latest: deque[pa.Table] = deque(maxlen=keep_last)
        self.results_out = 0
        self.dropped_results = 0  # results an async consumer was too slow to take (counted, never silent)
        self._queue_size = queue_size
        self._queues: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []
        self.last_event_wall: float | None = None
        self.last_event_ts = self.runner._max_ts
        self.last_periodic = time.monotonic()
        self.closed = False

    # -- results -----------------------------------------------------------------------------------

    @property
    def late_events(self) -> int:
        return self.runner.late_events

    @property
    def state_rows(self) -> int:
        return self.runner.state_rows

    def deliver(self, tables: list[pa.Table]) -> None:
        for table in tables:
            if table.num_rows == 0:
                continue
            self.results_out += table.num_rows
            self.latest.append(table)
            for cb in self.callbacks:
                cb(self, table)
            for loop, queue in self._queues:
                _put(loop, queue, table, self)

    def __aiter__(self):
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(self._queue_size)
        self._queues.append((loop, queue))
        return _Iterator(queue)

    def _end(self) -> None:
        self.closed = True
        for loop, queue in self._queues:
            _put(loop, queue, _END, self, force=True)


class _Iterator:
    def __init__(self, queue: asyncio.Queue) -> None:
        self.queue = queue

    def __aiter__(self):
        return self

    async def __anext__(self) -> pa.Table:
        item = await self.queue.get()
        if item is _END:
            raise StopAsyncIteration
        return item


def _put(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, item, sq: StandingQuery, force: bool = False):
    def put() -> None:
        if queue.full():
            if not force and item is not _END:
                sq.dropped_results += 1
                return
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
        queue.put_nowait(item)

    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        put()
    elif not loop.is_closed():
        loop.call_soon_threadsafe(put)


class Engine:
    """Standing queries over batches pushed per entity, with idle watermark ticks."""

    def __init__(self, idle_timeout: timedelta = timedelta(seconds=2), clock: Callable[[], float] = time.monotonic):
        self.idle_timeout = idle_timeout.total_seconds()
        self.clock = clock
        self.queries: list[StandingQuery] = []
        self._lock = threading.Lock()

    def register(self, query: str | P.Plan, name: str | None = None, callback: Callback | None = None,
                 keep_last: int = 8) -> StandingQuery:
        """Start a standing STREAM query; results go to ``callback`` and to ``async for`` consumers."""
        plan = to_plan(query)
        if plan.statement != "stream":
            raise ValueError("only STREAM queries run as standing queries (SHOW/COUNT ask about history)")
        sq = StandingQuery(plan, name or f"q{len(self.queries) + 1}", keep_last)
        sq.last_periodic = self.clock()
        if callback is not None:
            sq.callbacks.append(callback)
        with self._lock:
            self.queries.append(sq)
        return sq

    def unregister(self, sq: StandingQuery) -> None:
        with self._lock:
            self.queries.remove(sq)
        sq._end()

    def push(self, entity: str, batch: pa.Table | pa.RecordBatch) -> int:
        """Feed a batch of ``entity`` to every query reading it; returns result rows produced."""
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        now = self.clock()
        produced = 0
        with self._lock:
            for sq in self.queries:
                if not sq.runner.sides(entity):
                    continue
                out = sq.runner.push(entity, table)
                if table.num_rows and _is_event_input(sq, entity):
                    sq.last_event_wall = now
                    sq.last_event_ts = sq.runner._max_ts
                produced += sum(t.num_rows for t in out)
                sq.deliver(out)
        return produced

    def tick(self, now: float | None = None) -> int:
        """Idle watermark tick and periodic emits; returns result rows produced."""
        now = self.clock() if now is None else now
        produced = 0
        with self._lock:
            for sq in self.queries:
                out: list[pa.Table] = []
                idle = None if sq.last_event_wall is None else now - sq.last_event_wall
                if idle is not None and idle >= self.idle_timeout and sq.plan.window is not None:
                    # event time keeps pace with the wall clock while the inputs are quiet
                    out += sq.runner.advance_time(sq.last_event_ts + int(idle * 1000))
                emit = sq.plan.emit
                if sq.plan.window is None and sq.plan.is_aggregate and (emit is None or emit.mode == "periodic"):
                    period = emit.interval.total_seconds() if emit and emit.interval else 2.0  # Proton's default
                    if now - sq.last_periodic >= period:
                        sq.last_periodic = now
                        out += sq.runner.snapshot()
                produced += sum(t.num_rows for t in out)
                sq.deliver(out)
        return produced

    async def run(self, interval: float = 0.5, stop: asyncio.Event | None = None) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set (or the task is cancelled)."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            self.tick()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    def close(self) -> None:
        """End of input: close every open window, deliver the last results, end the async iterators."""
        with self._lock:
            for sq in self.queries:
                on_update = sq.plan.emit is not None and sq.plan.emit.mode == "on_update"
                if not (on_update and sq.plan.window is None):  # nothing changed at end of input
                    sq.deliver(sq.runner.finish())
                sq._end()

    @property
    def state_rows(self) -> int:
        return sum(sq.state_rows for sq in self.queries)


def _is_event_input(sq: StandingQuery, entity: str) -> bool:
    join = sq.plan.join
    sides = sq.runner.sides(entity)
    return not (join is not None and join.kind == "lookup" and sides == ["right"])
