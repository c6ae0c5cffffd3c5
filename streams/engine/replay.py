"""Bounded replay: run a query over given data as a stream (or as a historical query) and collect results."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from srql_compiler import plan as P
from streams.catalog import CATALOG
from streams.engine.query import QueryRunner, _matches, concat_results

Data = Mapping[str, pa.Table | pa.RecordBatch] | Iterable[tuple[str, pa.Table | pa.RecordBatch]]


@dataclass
class ReplayResult:
    """Results of a replay, with the engine's counters."""

    table: pa.Table
    late_events: int
    events_in: int
    state_rows: int


def to_plan(query: str | P.Plan) -> P.Plan:
    """Bind SRQL text with the compiler (a Plan passes through)."""
    if isinstance(query, P.Plan):
        return query
    import srql_compiler

    bind = getattr(srql_compiler, "bind", None)
    if bind is None:  # the compiler's package-level API may not re-export it yet
        from srql_compiler.binder import bind
    return bind(query)


def run(query: str | P.Plan, data: Data, now: datetime | None = None) -> ReplayResult:
    """Run ``query`` over ``data`` and return the results with the late-event and state counters.

    ``data`` maps entity names to Arrow tables, or is an iterable of ``(entity, batch)`` in arrival
    order. STREAM queries process the batches in order as a stream and close every open window at the
    end; SHOW/FIND/COUNT queries run once over all the data.
    """
    plan = to_plan(query)
    runner = QueryRunner(plan, now=now)
    if plan.statement != "stream":
        left, right = _gather(plan, data)
        table = runner.run_historical(left, right)
        return ReplayResult(table, 0, left.num_rows, 0)
    out: list[pa.Table] = []
    for entity, batch in _arrival_order(plan, data):
        out += runner.push(entity, batch)
    if plan.window is None and plan.is_aggregate:
        out = []  # an un-windowed aggregate replays to its final value (not every ON UPDATE change)
    out += runner.finish()
    table = concat_results(plan, out)
    table = table.replace_schema_metadata({"late_events": str(runner.late_events)})
    return ReplayResult(table, runner.late_events, runner.events_in, runner.state_rows)


def replay(query: str | P.Plan, data: Data, now: datetime | None = None) -> pa.Table:
    """Results of ``query`` over ``data`` as one Arrow table (``late_events`` in the schema metadata)."""
    return run(query, data, now).table


def _as_table(batch) -> pa.Table:
    return batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])


def _gather(plan: P.Plan, data: Data) -> tuple[pa.Table, pa.Table | None]:
    parts: dict[str, list[pa.Table]] = {"left": [], "right": []}
    items = data.items() if isinstance(data, Mapping) else data
    for entity, batch in items:
        if _matches(plan.source, entity):
            parts["left"].append(_as_table(batch))
        elif plan.join is not None and _matches(plan.join.right, entity):
            parts["right"].append(_as_table(batch))
    empty = CATALOG[plan.source.entity].arrow_schema().empty_table()
    left = pa.concat_tables(parts["left"]) if parts["left"] else empty
    right = pa.concat_tables(parts["right"]) if parts["right"] else None
    return left, right


def _arrival_order(plan: P.Plan, data: Data) -> Iterable[tuple[str, pa.Table]]:
    """Batches in arrival order. From a mapping: inventories first, then the event streams, merged by
    event time (a stable sort, so each stream keeps its own order among equal times)."""
    if not isinstance(data, Mapping):
        yield from ((e, _as_table(b)) for e, b in data)
        return
    events = []
    for entity, batch in data.items():
        ent = CATALOG.get(entity) or CATALOG.by_stream(entity)
        if ent is not None and ent.is_inventory:
            yield entity, _as_table(batch)
        else:
            events.append((entity, _as_table(batch)))
    if len(events) <= 1:
        yield from events
        return
    yield from _merge_by_time(plan, events)


def _merge_by_time(plan: P.Plan, events: list[tuple[str, pa.Table]]) -> Iterable[tuple[str, pa.Table]]:
    sources = [plan.source] + ([plan.join.right] if plan.join else [])
    times, tags = [], []
    for i, (entity, table) in enumerate(events):
        src = next((s for s in sources if _matches(s, entity)), None)
        col = table.column(src.event_time) if src is not None else pa.array(np.zeros(table.num_rows))
        times.append(pc.cast(col, pa.int64()).to_numpy())
        tags.append(np.full(table.num_rows, i))
    t, tag = np.concatenate(times), np.concatenate(tags)
    within = np.concatenate([np.arange(e[1].num_rows) for e in events])
    order = np.argsort(t, kind="stable")
    tag, within = tag[order], within[order]
    cuts = np.flatnonzero(np.r_[True, tag[1:] != tag[:-1]])
    ends = np.r_[cuts[1:], len(tag)]
    for a, b in zip(cuts, ends, strict=True):  # one batch per run of the same stream
        entity, table = events[tag[a]]
        yield entity, table.take(within[a:b])
