"""How the REPL draws things with rich: a plan as a tree, result rows and catalog entities as tables."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from rich.table import Table
from rich.tree import Tree

from srql_compiler import plan as p
from streams.catalog import Catalog, Entity


def duration_text(d: timedelta) -> str:
    """A duration in SRQL's short form (``5m``, ``100ms``, ``1d``), the way a user would write it."""
    ms = round(d.total_seconds() * 1000)
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def expr_text(e: p.Expr | None) -> str:
    """A plan expression in SRQL-like infix form, for reading (not for re-parsing)."""
    if e is None:
        return ""
    handler = _EXPR_TEXT.get(type(e))
    return handler(e) if handler else repr(e)


def _lit_text(e: p.Lit) -> str:
    v = e.value
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, timedelta):
        return duration_text(v)
    if isinstance(v, datetime):
        return f"'{v.isoformat()}'"
    if v is None:
        return "NULL"
    return str(v).upper() if isinstance(v, bool) else str(v)


def _joined(items: tuple[p.Expr, ...], op: str) -> str:
    return "(" + f" {op} ".join(expr_text(i) for i in items) + ")"


def _start_of_day(e: p.StartOfDay) -> str:
    return {0: "TODAY", -1: "YESTERDAY"}.get(e.days, f"TODAY {e.days:+d}d")


_EXPR_TEXT: dict[type, Any] = {
    p.Col: lambda e: f"{e.source}.{e.name}",
    p.Lit: _lit_text,
    p.Now: lambda e: "NOW()",
    p.StartOfDay: _start_of_day,
    p.Arith: lambda e: f"({expr_text(e.left)} {e.op} {expr_text(e.right)})",
    p.Func: lambda e: f"{e.name}({', '.join(expr_text(a) for a in e.args)})",
    p.Cmp: lambda e: f"{expr_text(e.left)} {e.op} {expr_text(e.right)}",
    p.And: lambda e: _joined(e.items, "AND"),
    p.Or: lambda e: _joined(e.items, "OR"),
    p.Not: lambda e: f"NOT {expr_text(e.item)}",
    p.InList: lambda e: f"{expr_text(e.expr)} {'NOT IN' if e.negated else 'IN'} "
    f"({', '.join(expr_text(v) for v in e.values)})",
    p.Between: lambda e: f"{expr_text(e.expr)} BETWEEN {expr_text(e.low)} AND {expr_text(e.high)}",
    p.IsNull: lambda e: f"{expr_text(e.expr)} IS {'NOT ' if e.negated else ''}NULL",
    p.Contains: lambda e: f"{expr_text(e.expr)} CONTAINS {_lit_text(p.Lit(e.needle))}",
    p.Like: lambda e: f"{expr_text(e.expr)} {'NOT LIKE' if e.negated else 'LIKE'} "
    f"{_lit_text(p.Lit(e.pattern))}",
    p.InCidr: lambda e: f"{expr_text(e.expr)} {'NOT IN' if e.negated else 'IN'} CIDR "
    f"({', '.join(e.prefixes)})",
    p.MeasureRef: lambda e: e.name,
    p.WindowBound: lambda e: e.which,
}


def _source_text(s: p.Source) -> str:
    kind = "inventory, latest row per " + ", ".join(s.keys) if s.inventory else "events"
    return f"{s.entity} AS {s.alias} → stream {s.stream} ({kind}; event time {s.event_time})"


def _window_text(w: p.Window) -> str:
    text = f"{w.kind} {duration_text(w.size)}"
    if w.step is not None:
        text += f" every {duration_text(w.step)}"
    if w.delay:
        text += f", delay {duration_text(w.delay)}"
    return text


def _aggregate_text(a: p.Aggregate) -> str:
    arg = expr_text(a.arg) if a.arg is not None else "*"
    text = f"{a.name} = {a.func}({arg}) : {a.type}"
    return text + (f" where {expr_text(a.filter)}" if a.filter is not None else "")


def plan_tree(plan: p.Plan) -> Tree:
    """The plan as a rich tree, one branch per clause that is present, in evaluation order."""
    tree = Tree(f"[bold]{plan.statement.upper()}[/bold]" + (" DISTINCT" if plan.distinct else ""))
    tree.add(f"source: {_source_text(plan.source)}")
    if plan.join is not None:
        j = plan.join
        on = " AND ".join(f"{expr_text(left)} = {expr_text(right)}" for left, right in j.on)
        within = f" within {duration_text(j.within)}" if j.within is not None else ""
        tree.add(f"join ({j.kind}): {_source_text(j.right)} on {on}{within}")
    for label, expr in (("time range", plan.time_range), ("where", plan.where)):
        if expr is not None:
            tree.add(f"{label}: {expr_text(expr)}")
    if plan.window is not None:
        tree.add(f"window: {_window_text(plan.window)}")
    if plan.group_by:
        tree.add("group by: " + ", ".join(expr_text(c) for c in plan.group_by))
    if plan.aggregates:
        branch = tree.add("aggregates")
        for a in plan.aggregates:
            branch.add(_aggregate_text(a))
    if plan.having is not None:
        tree.add(f"having: {expr_text(plan.having)}")
    if plan.order_by:
        keys = ", ".join(expr_text(k.expr) + (" DESC" if k.desc else "") for k in plan.order_by)
        tree.add(f"order by: {keys}")
    if plan.limit is not None:
        tree.add(f"limit: {plan.limit}" + (" per window (top-n)" if plan.top_n_per_window else ""))
    if plan.latest:
        tree.add("latest: newest row per key")
    if plan.emit is not None:
        interval = f" every {duration_text(plan.emit.interval)}" if plan.emit.interval else ""
        tree.add(f"emit: {plan.emit.mode.replace('_', ' ')}{interval}")
    if plan.projection is not None:
        branch = tree.add("projection")
        for name, expr in plan.projection:
            branch.add(f"{name} = {expr_text(expr)}")
    columns = tree.add("output columns")
    for c in plan.columns:
        columns.add(f"{c.name} : {c.type}")
    for w in plan.warnings:
        tree.add(f"[yellow]warning: {w}[/yellow]")
    return tree


def arrow_table(table: Any, *, title: str | None = None, max_rows: int = 50) -> Table:
    """A pyarrow Table as a rich table: the first ``max_rows`` rows, and a caption with the row count."""
    out = Table(title=title, show_lines=False, header_style="bold")
    for name in table.column_names:
        out.add_column(name)
    rows = table.slice(0, max_rows).to_pylist() if table.num_rows > max_rows else table.to_pylist()
    for row in rows:
        out.add_row(*(_cell(row[name]) for name in table.column_names))
    if table.num_rows > max_rows:
        out.caption = f"{max_rows} of {table.num_rows} rows"
    else:
        out.caption = f"{table.num_rows} row{'s' if table.num_rows != 1 else ''}"
    return out


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def columns_table(columns: Iterable[Any], title: str = "columns") -> Table:
    """Output columns of a compiled query: name and type."""
    out = Table(title=title, header_style="bold")
    out.add_column("column")
    out.add_column("type")
    for c in columns:
        name, type_ = (c.name, c.type) if isinstance(c, p.OutputColumn) else c
        out.add_row(name, str(type_))
    return out


def entities_table(catalog: Catalog) -> Table:
    """Every entity: name, aliases, stream, kind, doc."""
    out = Table(title="entities", header_style="bold")
    for col in ("entity", "aliases", "stream", "kind", "about"):
        out.add_column(col)
    for e in catalog:
        out.add_row(e.name, ", ".join(e.aliases), e.stream, e.kind, e.doc)
    return out


def entity_table(entity: Entity) -> Table:
    """One entity's fields (with aliases and types) and named measures."""
    out = Table(title=f"{entity.name} ({entity.stream})", header_style="bold")
    for col in ("field", "aliases", "type", "about"):
        out.add_column(col)
    for f in entity.fields:
        name = f.name + (" (event time)" if f.name == entity.event_time else "")
        out.add_row(name, ", ".join(f.aliases), str(f.type) + ("?" if f.nullable else ""), f.doc)
    for m in entity.measures:
        arg = m.field or "*"
        where = f" where {m.where[0]} = {m.where[1]!r}" if m.where else ""
        out.add_row(m.name, "", "measure", f"{m.func}({arg}){where}" + (f" — {m.doc}" if m.doc else ""))
    return out
