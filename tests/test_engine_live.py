"""The live engine: watermark, idle ticks, emit modes, async delivery and bounded state."""

from __future__ import annotations

import asyncio
from collections import deque

import numpy as np
import pyarrow as pa

from streams.catalog import CATALOG
from streams.engine import Engine
from streams.simulate import Simulator

T0 = 1_764_000_000_000  # a whole minute


def _metrics(ts_ms: list[int], devices: list[str] | None = None, values: list[float] | None = None) -> pa.Table:
    n = len(ts_ms)
    devices = devices or ["r1"] * n
    values = values or [1.0] * n
    schema = CATALOG["metrics"].arrow_schema()
    return pa.table({
        "timestamp": pa.array(ts_ms, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        "device": devices, "metric": ["latency"] * n, "value": pa.array(values, pa.float64()),
        "value_str": pa.nulls(n, pa.string()), "labels": pa.array([[]] * n, pa.map_(pa.string(), pa.string())),
        "deleted": [False] * n,
    }, schema=schema)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_emits_once_watermark_passes_its_end_with_delay():
    eng = Engine()
    got: list[pa.Table] = []
    eng.register("STREAM metrics GROUP BY device WINDOW 10s DELAY 2s", callback=lambda q, t: got.append(t))
    eng.push("metrics", _metrics([T0 + 1000, T0 + 9000]))
    eng.push("metrics", _metrics([T0 + 11_999]))  # watermark 9.999 s: window [0, 10) still open
    assert got == []
    eng.push("metrics", _metrics([T0 + 5000]))  # out of order but within DELAY: counted in
    eng.push("metrics", _metrics([T0 + 12_000]))  # watermark reaches 10 s: the window closes
    assert len(got) == 1 and got[0].column("count").to_pylist() == [3]
    assert got[0].column("window_start").cast(pa.int64()).to_pylist() == [T0]
    eng.push("metrics", _metrics([T0 + 7000]))  # its window was emitted: late, dropped, counted
    q = eng.queries[0]
    assert q.late_events == 1
    eng.close()
    assert [t.column("count").to_pylist() for t in got[1:]] == [[2]]  # [10 s, 20 s) at end of input


def test_idle_tick_closes_windows_of_a_quiet_stream():
    clock = FakeClock()
    eng = Engine(clock=clock)
    q = eng.register("STREAM metrics GROUP BY device WINDOW 10s")
    eng.push("metrics", _metrics([T0 + 4000]))
    clock.now += 1.0
    assert eng.tick() == 0  # not idle long enough (2 s by default)
    clock.now += 2.0  # idle 3 s: event time moves to 7 s, the window [0, 10) stays open
    assert eng.tick() == 0
    clock.now += 3.5  # idle 6.5 s: event time 10.5 s
    assert eng.tick() == 1
    assert q.latest[-1].column("count").to_pylist() == [1]
    assert q.state_rows == 0
    eng.push("metrics", _metrics([T0 + 9000]))  # the tick moved the watermark: this one is late
    assert q.late_events == 1


def test_async_iterator_and_periodic_and_on_update_emits():
    clock = FakeClock()
    eng = Engine(clock=clock)
    windowed = eng.register("STREAM metrics GROUP BY device WINDOW 10s")
    periodic = eng.register("STREAM metrics GROUP BY device EMIT PERIODIC 5s")
    updates: list[pa.Table] = []
    eng.register("STREAM metrics GROUP BY device EMIT ON UPDATE", callback=lambda q, t: updates.append(t))

    async def consume() -> list[list[int]]:
        seen = []
        async for table in windowed:
            seen.append(table.column("count").to_pylist())
        return seen

    async def main() -> list[list[int]]:
        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        eng.push("metrics", _metrics([T0 + 1000, T0 + 2000], ["r1", "r2"]))
        eng.push("metrics", _metrics([T0 + 3000], ["r2"]))
        eng.push("metrics", _metrics([T0 + 15_000], ["r1"]))
        assert periodic.latest == deque() or periodic.results_out == 0
        clock.now += 6  # one period: a snapshot of every group
        eng.tick()
        assert [t.column("count").to_pylist() for t in periodic.latest] == [[2, 2]]
        eng.close()
        return await task

    seen = asyncio.run(main())
    assert seen == [[1, 2], [1]]
    # on update: each batch emits the groups it changed, with their running totals
    assert [dict(zip(t.column("device").to_pylist(), t.column("count").to_pylist(), strict=True)) for t in updates] \
        == [{"r1": 1, "r2": 1}, {"r2": 2}, {"r1": 2}]
    assert len(periodic.latest) == 2  # and close() emitted the final value


def test_state_stays_bounded_over_a_long_run():
    sim = Simulator(devices=20, seed=5, flows_per_second=500, logs_per_second=100)
    eng = Engine()
    queries = [
        eng.register("STREAM devices WHERE metric = 'latency' GROUP BY device, metric WINDOW 1m "
                     "HAVING avg_value > 100"),
        eng.register("STREAM netflow GROUP BY application WINDOW 5m HOP 1m ORDER BY sum(bytes) DESC LIMIT 3"),
        eng.register("STREAM logs GROUP BY device WINDOW 30s SESSION"),
        eng.register("STREAM netflow JOIN logs ON src_ip = source_ip WITHIN 1m GROUP BY application WINDOW 1m"),
    ]
    peaks = np.zeros(len(queries), int)
    for step in range(240):  # 40 minutes of event time, 10 s per step
        for entity, batch in sim.step(10_000):
            eng.push(entity, batch)
        if step >= 60:  # after the first windows: state must not keep growing
            peaks = np.maximum(peaks, [q.state_rows for q in queries])
        if step == 120:
            mid = peaks.copy()
    # the second half of the run never needs more state than the first (plus slack for one batch)
    assert (peaks <= mid * 1.2 + 5000).all(), (mid, peaks)
    # and what it holds is at most the open windows' rows: 5 minutes of netflow for the hop query
    assert queries[1].state_rows <= 500 * 330
    assert all(q.results_out > 0 for q in queries[:3])
    eng.close()
    assert eng.state_rows <= queries[3].runner.state_rows


def test_run_live_renders_a_query_against_the_simulators():
    import io

    from rich.console import Console

    from streams.live import run_live

    console = Console(file=io.StringIO(), width=120)
    assert run_live("STREAM logs GROUP BY device WINDOW 5s", console=console, max_steps=8, speed=1000) == 0
    out = console.file.getvalue()
    assert "rtr-" in out and "result rows" in out and "Ctrl-C to stop" in out
