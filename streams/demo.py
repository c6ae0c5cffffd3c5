"""The main job on embedded defaults: simulators → engine (the four SRQL use cases) → ClickHouse (chdb).

``srql demo`` / ``./dev demo`` run :func:`main`. Event time runs faster than the wall clock (by default
20 minutes of traffic in about 15 seconds), so the 1- and 5-minute windows of the use cases close and
print while you watch; every result lands in chdb next to the raw events, and a SHOW query over that
history ends the run.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from streams.engine import Engine
from streams.live import query_panel, results_table
from streams.simulate import BRUTE_SOURCE, FLAP_PREFIX, Simulator
from streams.sinks import ClickHouseSink
from streams.sinks.clickhouse import DEFAULT_PATH

USE_CASES = (
    ("gNMI: latency above 100 ms (1-minute windows)", "results_gnmi_latency",
     "STREAM devices WHERE metric = 'latency' GROUP BY device, metric WINDOW 1m HAVING avg_value > 100"),
    ("NetFlow: top applications by bytes (5-minute windows)", "results_netflow_top",
     "STREAM netflow WHERE bytes > 0 GROUP BY application WINDOW 5m ORDER BY sum(bytes) DESC LIMIT 10"),
    ("Syslog: SSH brute force against root (5-minute windows)", "results_ssh_brute_force",
     "STREAM logs WHERE message CONTAINS 'Failed password for root' GROUP BY device WINDOW 5m "
     "HAVING login_attempts >= 5"),
    ("BGP: flapping prefixes (5-minute windows)", "results_bgp_flaps",
     "STREAM flows WHERE action IN ('announce', 'withdraw') GROUP BY prefix WINDOW 5m HAVING flap_count > 10"),
)
HISTORY_QUERY = "SHOW logs WHERE message CONTAINS 'Failed password' GROUP BY device WINDOW 5m ORDER BY window_start"


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="srql demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=int, default=20, help="minutes of simulated traffic (default 20)")
    ap.add_argument("--step-seconds", type=int, default=10, help="event time per step (default 10 s)")
    ap.add_argument("--pace", type=float, default=0.1, help="wall seconds per step, for watching (default 0.1)")
    ap.add_argument("--devices", type=int, default=50, help="simulated routers (default 50)")
    ap.add_argument("--data-dir", help=f"store history in DIR/chdb (default {DEFAULT_PATH.parent}, where the "
                    "REPL's SHOW queries look)")
    ap.add_argument("--no-live", action="store_true", help="print the results once at the end (logs, CI)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit status."""
    args = _args(argv)
    console = Console()
    started = time.monotonic()
    data_dir = Path(args.data_dir) if args.data_dir else DEFAULT_PATH.parent
    step_ms = args.step_seconds * 1000
    steps = max(args.minutes * 60_000 // step_ms, 1)
    now_ms = int(time.time() * 1000)
    start_ms = (now_ms - args.minutes * 60_000) // 300_000 * 300_000  # a 5-minute boundary, in the past
    console.print(Panel.fit(
        f"[bold]serviceradar-streams demo[/]: {args.devices} simulated routers stream gNMI, NetFlow, syslog and "
        f"BGP\ninto the embedded engine; {args.minutes} minutes of traffic with injected incidents (latency "
        f"spikes,\nan SSH brute force from {BRUTE_SOURCE}, a flapping {FLAP_PREFIX}, top talkers).\n"
        f"Results and raw events go to ClickHouse (chdb) in {data_dir}.", border_style="cyan"))
    sink = ClickHouseSink(path=data_dir / "chdb")
    # the simulation is deterministic (seed) and starts 20 minutes back: a re-run within that time would
    # store an overlapping range twice, so this run's range replaces what an earlier run left there
    sink.forget_since(datetime.fromtimestamp(start_ms / 1000, UTC), results=[name for _, name, _ in USE_CASES])
    sim = Simulator(devices=args.devices, seed=args.seed, start_ms=start_ms)
    engine = Engine()
    stored = {"results": 0, "events": 0}

    def to_sink(table_name: str):
        def deliver(sq, table) -> None:
            stored["results"] += sink.insert_results(table_name, table)
        return deliver

    queries = [(title, engine.register(q, name=name, callback=to_sink(name))) for title, name, q in USE_CASES]
    inventory = sim.inventory()
    engine.push("devices", inventory)
    stored["events"] += sink.insert("devices", inventory)

    def screen(progress: str) -> Group:
        panels = [query_panel(sq, title, max_rows=6) for title, sq in queries]
        return Group(*panels, Text(progress, style="bold"))

    def step_all(live: Live | None) -> None:
        for i in range(steps):
            t0 = time.monotonic()
            for entity, batch in sim.step(step_ms):
                engine.push(entity, batch)
                stored["events"] += sink.insert(entity, batch, buffer_rows=250_000)
            if live is not None:
                et = datetime.fromtimestamp(sim.now_ms / 1000, UTC)
                live.update(screen(f"event time {et:%H:%M:%S} UTC · step {i + 1}/{steps} · "
                                   f"{stored['events']:,} events and {stored['results']:,} results stored"))
                time.sleep(max(args.pace - (time.monotonic() - t0), 0))
        engine.close()  # end of the run: the last windows close
        sink.flush()

    if args.no_live:
        step_all(None)
        console.print(screen(""))
    else:
        with Live(screen("starting…"), console=console, refresh_per_second=8) as live:
            step_all(live)
            live.update(screen("done"))
    _history(console, sink)
    console.print(f"[green]done in {time.monotonic() - started:.1f} s[/]: {stored['events']:,} events and "
                  f"{stored['results']:,} result rows stored in {data_dir / 'chdb'}")
    return 0


def _history(console: Console, sink: ClickHouseSink) -> None:
    """What landed in ClickHouse, then a SHOW over history."""
    counts = Table(title="Stored in ClickHouse (chdb)", title_justify="left")
    counts.add_column("table")
    counts.add_column("rows", justify="right")
    for _, name, _ in USE_CASES:
        n = sink.sql(f"SELECT count() AS n FROM {name}").column("n")[0].as_py() if name in sink._ready else 0
        counts.add_row(name, f"{n:,}")
    for ent in ("metrics", "netflow", "logs", "bgp", "devices"):
        counts.add_row(sink.ensure(ent).stream, f"{sink.count(ent):,}")
    console.print(counts)
    history = sink.show(HISTORY_QUERY)
    console.print(results_table(f"History: {HISTORY_QUERY}", [history], history.column_names, max_rows=8))


if __name__ == "__main__":
    raise SystemExit(main())
