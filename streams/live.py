"""Run a STREAM query live against the simulators, rendering a rich table that updates in place.

The REPL calls :func:`run_live`; the demo reuses :func:`results_table` for its four panels.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime

import pyarrow as pa
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streams.engine import Engine
from streams.engine.live import StandingQuery
from streams.simulate import Simulator


def _cell(v: object) -> str:
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%H:%M:%S")
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)


def results_table(title: str, results: Iterable[pa.Table], columns: list[str], max_rows: int = 10,
                  caption: str = "") -> Table:
    """The newest ``max_rows`` result rows (newest window first) as a rich table."""
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left", expand=False)
    for name in columns:
        table.add_column(name, justify="right" if name not in ("device", "application", "prefix") else "left")
    rows: list[tuple] = []
    for t in reversed(list(results)):
        if t.num_rows:
            rows += list(zip(*(t.column(c).to_pylist() for c in columns if c in t.column_names), strict=False))
        if len(rows) >= max_rows:
            break
    for row in rows[:max_rows]:
        table.add_row(*(_cell(v) for v in row))
    if not rows:
        table.add_row(*(["…"] + [""] * (len(columns) - 1)))
    return table


def query_panel(sq: StandingQuery, title: str | None = None, max_rows: int = 10) -> Table:
    """A standing query's latest results with its counters in the caption."""
    cols = [c.name for c in sq.plan.columns if c.name != "window_end"]
    caption = (f"{sq.results_out:,} result rows · {sq.late_events:,} late events · "
               f"state {sq.state_rows:,} rows")
    return results_table(title or sq.name, sq.latest, cols, max_rows, caption)


def run_live(query: str, *, console: Console | None = None, devices: int = 50, step_ms: int = 1000,
             speed: float = 1.0, max_steps: int | None = None, seed: int = 0) -> int:
    """Run a STREAM query against the simulators until Ctrl-C (or ``max_steps``); 0 on a clean stop.

    Event time starts now and advances ``step_ms`` per step; ``speed`` > 1 runs faster than real time.
    """
    console = console or Console()
    start = int(time.time() * 1000)
    sim = Simulator(devices=devices, seed=seed, start_ms=start)
    engine = Engine()
    sq = engine.register(query, name=query)
    engine.push("devices", sim.inventory())
    steps = 0
    status = Text("")
    try:
        with Live(Group(query_panel(sq), status), console=console, refresh_per_second=4, transient=False) as live:
            while max_steps is None or steps < max_steps:
                t0 = time.monotonic()
                for entity, batch in sim.step(step_ms):
                    engine.push(entity, batch)
                engine.tick()
                steps += 1
                status = Text(f"event time {datetime.fromtimestamp(sim.now_ms / 1000, UTC):%H:%M:%S} UTC · "
                              "Ctrl-C to stop", style="dim")
                live.update(Group(query_panel(sq), status))
                time.sleep(max(step_ms / 1000 / speed - (time.monotonic() - t0), 0))
    except KeyboardInterrupt:
        pass
    engine.close()
    return 0
