"""SQL emitters: a :class:`~srql_compiler.plan.Plan` → a sqlglot expression tree → SQL text.

One class per target, in the manner of sqlglot's dialects: the shared shape of a query lives in
:class:`SQLEmitter`, and each target overrides the hooks (source, windows, time constants, aggregates,
substring and prefix tests, top-n, latest) and a table of function names.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from functools import cache

from sqlglot import exp

from srql_compiler import plan as P
from srql_compiler.dialects import proton as pd
from srql_compiler.errors import SRQLError

# Largest unit first; weeks become days so that every target aligns windows on the Unix epoch.
_UNITS = (("DAY", "d", 86_400_000), ("HOUR", "h", 3_600_000), ("MINUTE", "m", 60_000), ("SECOND", "s", 1000),
          ("MILLISECOND", "ms", 1))


def split_duration(d: timedelta, units: tuple = _UNITS) -> tuple[int, str, str]:
    """(amount, SQL unit, shorthand) in the largest unit that divides ``d`` exactly."""
    ms = round(d / timedelta(milliseconds=1))
    for name, short, size in units:
        if ms % size == 0:
            return ms // size, name, short
    raise SRQLError(f"durations must be whole milliseconds, not {d}")


def _ms(d: timedelta) -> int:
    return round(d / timedelta(milliseconds=1))


@cache
def _built_type(name: str) -> exp.DataType:
    return exp.DataType.build(name)


def _type(name: str) -> exp.DataType:
    """A SQL type node (DataType.build parses its text: build each once, hand out copies)."""
    return _built_type(name).copy()


def _ident(name: str) -> exp.Identifier:
    return exp.Identifier(this=name, quoted=not exp.SAFE_IDENTIFIER_RE.match(name))


def _column(name: str, table: str | None = None) -> exp.Column:
    """``exp.column(name, table=table)`` for plain names: the same node, without ``to_identifier``'s and
    ``column``'s generic argument handling (columns are the most frequent node of a query)."""
    return exp.Column(this=_ident(name), table=_ident(table) if table is not None else None, db=None, catalog=None)


def _table(name: str) -> exp.Table:
    """A table by name (catalog names are plain identifiers: no need for exp.to_table's SQL parser)."""
    return exp.Table(this=exp.to_identifier(name))


def _timestamp_text(v: datetime) -> str:
    """A UTC time as SQL text with milliseconds, the catalog's event-time resolution."""
    return v.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


# sqlglot's builders (exp.select, Select.from_/where/group_by/having/order_by, exp.and_/or_, exp.alias_)
# also accept SQL text, so every call goes through maybe_parse, copy flags and list merging. The helpers
# below build the very same nodes directly from nodes (the golden and tree-snapshot tests check this).


def _wrap(e: exp.Expression) -> exp.Expression:
    return exp.Paren(this=e) if isinstance(e, exp.Connector) else e


def _combine(items: list[exp.Expression] | tuple[exp.Expression, ...], op: type[exp.Expression]) -> exp.Expression:
    """``exp.and_(*items, copy=False)`` / ``exp.or_``: left-deep, AND/OR operands in parentheses."""
    if len(items) == 1:
        return items[0]
    this = _wrap(items[0])
    for e in items[1:]:
        this = op(this=this, expression=_wrap(e))
    return this


def _alias(e: exp.Expression, name: str) -> exp.Expression:
    """``exp.alias_(e, name, copy=False)``."""
    if "alias" in e.arg_types and not isinstance(e, exp.Window):
        e.set("alias", _ident(name))
        return e
    return exp.Alias(this=e, alias=_ident(name))


def _select(*items: exp.Expression) -> exp.Select:
    """``exp.select(*items, copy=False)``."""
    sel = exp.Select()
    sel.set("expressions", [i for i in items if i is not None])
    return sel


def _set_from(sel: exp.Select, source: exp.Expression) -> exp.Select:
    """``sel.from_(source, copy=False)``."""
    sel.set("from_", source if isinstance(source, exp.From) else exp.From(this=source))
    return sel


def _set_condition(sel: exp.Select, arg: str, into: type[exp.Expression], cond: exp.Expression) -> exp.Select:
    """``sel.where(cond, copy=False)`` / ``sel.having(...)``: AND-ed onto an existing one."""
    existing = sel.args.get(arg)
    if existing is not None:
        cond = _combine([existing.this, cond], exp.And)
    sel.set(arg, into(this=cond))
    return sel


def _set_list(sel: exp.Select, arg: str, into: type[exp.Expression], items: list[exp.Expression]) -> exp.Select:
    """``sel.order_by(*items, copy=False)`` / ``sel.group_by(...)`` (with at least one item) for items that are
    not Order/Group nodes."""
    parsed = [i for i in items if i is not None]
    existing = sel.args.get(arg)
    if existing:
        parsed = existing.expressions + parsed
    sel.set(arg, into(expressions=parsed))
    return sel


def _and(items: list[exp.Expression]) -> exp.Expression | None:
    items = [i for i in items if i is not None]
    if not items:
        return None
    return _combine(items, exp.And)


class SQLEmitter:
    """The shape shared by every SQL target. Subclasses set ``dialect`` and override the hooks."""

    dialect = ""
    name = ""
    # logical function → target spelling
    FUNCS: dict[str, str] = {}

    def __init__(self, plan: P.Plan) -> None:
        self.plan = plan
        self.qualify = plan.join is not None

    # ------------------------------------------------------------------ entry points
    def select(self) -> exp.Select:
        p = self.plan
        if p.statement == "count":
            sel = _select(_alias(exp.Count(this=exp.Star()), "count"))
        elif p.is_aggregate:
            sel = _select(*self._aggregate_projection())
        else:
            sel = _select(*self._plain_projection())
            if p.distinct:
                sel = sel.distinct(copy=False)
        source = self.from_clause()
        if p.latest and not p.is_aggregate:
            source = self._latest_source(source)
        sel = _set_from(sel, source)
        if p.join is not None:
            sel = self.add_join(sel, p.join)
        where = _and([w for w in (self._outer_where(), self.window_filter()) if w is not None])
        if where is not None:
            sel = _set_condition(sel, "where", exp.Where, where)
        if p.is_aggregate and p.statement != "count":
            keys = self._group_by()
            if keys:  # Select.group_by() with no keys leaves the query as it is
                sel = _set_list(sel, "group", exp.Group, keys)
            if p.having is not None:
                sel = _set_condition(sel, "having", exp.Having, self.having(p.having))
        return self.finish(sel)

    def _filters(self) -> tuple[list[exp.Expression], list[exp.Expression]]:
        """(filters applied before LATEST picks the newest row per key, filters applied after).

        For an inventory LATEST is the current state, so WHERE filters that state; for append-only
        entities LATEST picks the newest matching row, so WHERE comes first.
        """
        p = self.plan
        time = [self.expr(p.time_range)] if p.time_range is not None else []
        where = [self.expr(p.where)] if p.where is not None else []
        if not p.latest or p.is_aggregate:
            return [], time + where
        return (time, where) if p.source.inventory else (time + where, [])

    def _outer_where(self) -> exp.Expression | None:
        return _and(self._filters()[1])

    def window_filter(self) -> exp.Expression | None:
        """An extra condition the window needs (a hop row must lie inside its window)."""
        return None

    def _latest_source(self, source: exp.Expression) -> exp.Expression:
        inner = _set_from(_select(exp.Star()), source)
        pre = _and(self._filters()[0])
        if pre is not None:
            inner = _set_condition(inner, "where", exp.Where, pre)
        return self.latest(inner).subquery(self.plan.source.alias)

    def sql(self, pretty: bool = False) -> str:
        return self.select().sql(dialect=self.dialect, pretty=pretty)

    def finish(self, sel: exp.Select) -> exp.Select:
        """ORDER BY and LIMIT (top-n per window when windowed)."""
        p = self.plan
        if p.top_n_per_window:
            return self.top_n(sel)
        if p.order_by:
            ties = self.tie_breakers() if p.is_aggregate else []
            sel = _set_list(sel, "order", exp.Order, [*self.order_keys(), *ties])
        if p.limit is not None:
            sel = sel.limit(p.limit, copy=False)
        return sel

    # ------------------------------------------------------------------ projections
    def _plain_projection(self) -> list[exp.Expression]:
        p = self.plan
        if p.projection is None:
            if p.join is None:
                return [exp.Star()]
            return [_alias(self.col(P.Col(c.name, "", c.type), out=True), c.name) for c in p.columns]
        return [self._named(n, e) for n, e in p.projection]

    def _named(self, name: str, e: P.Expr) -> exp.Expression:
        inner = self.expr(e)
        if isinstance(inner, exp.Column) and inner.name == name:
            return inner
        return _alias(inner, name)

    def _aggregate_projection(self) -> list[exp.Expression]:
        p = self.plan
        if p.projection is not None:
            items = []
            for n, e in p.projection:
                if isinstance(e, P.MeasureRef):
                    items.append(_alias(self.aggregate(self._agg(e.name)), n))
                else:
                    items.append(self._named(n, e))
            return items
        out: list[exp.Expression] = []
        if p.window is not None:
            out += self.window_columns()
        out += [self.expr(c) for c in p.group_by]
        out += [_alias(self.aggregate(a), a.name) for a in p.aggregates]
        return out

    def _agg(self, name: str) -> P.Aggregate:
        return next(a for a in self.plan.aggregates if a.name == name)

    def _group_by(self) -> list[exp.Expression]:
        keys: list[exp.Expression] = []
        if self.plan.window is not None:
            keys += self.window_group_keys()
        return keys + [self.expr(c) for c in self.plan.group_by]

    def window_group_keys(self) -> list[exp.Expression]:
        """What to GROUP BY for the window (batch targets group by the bucket expression itself, so a
        projection without the window bounds still groups per window)."""
        return [self.window_start_expr()]

    def window_start_expr(self) -> exp.Expression:
        """``window_start`` by its output name when the query outputs it, else the bucket expression itself."""
        proj = self.plan.projection
        if proj is None or any(isinstance(e, P.WindowBound) and e.which == "window_start" for _, e in proj):
            return _column("window_start")
        start = self.window_columns()[0]
        return start.this if isinstance(start, exp.Alias) else start

    def order_keys(self) -> list[exp.Ordered]:
        return [exp.Ordered(this=self.order_expr(k.expr), desc=k.desc) for k in self.plan.order_by]

    def order_expr(self, e: P.Expr) -> exp.Expression:
        if isinstance(e, P.MeasureRef):
            return _column(e.name)
        return self.expr(e)

    def tie_breakers(self) -> list[exp.Ordered]:
        """Group keys after the user's keys, so top-n and ordering are deterministic on ties."""
        used = {k.expr for k in self.plan.order_by}
        return [exp.Ordered(this=self.expr(c), desc=False) for c in self.plan.group_by if c not in used]

    def having(self, e: P.Expr) -> exp.Expression:
        return self.expr(e)

    # ------------------------------------------------------------------ expressions
    def col(self, c: P.Col, out: bool = False) -> exp.Expression:
        if self.qualify and c.source and not out:
            return _column(c.name, c.source)
        return _column(c.name)

    def expr(self, e: P.Expr) -> exp.Expression:
        if isinstance(e, P.Col):
            return self.col(e)
        if isinstance(e, P.Lit):
            return self.literal(e)
        if isinstance(e, P.MeasureRef):
            return _column(e.name)
        if isinstance(e, P.WindowBound):
            return _column(e.which)
        if isinstance(e, P.Now):
            return self.now()
        if isinstance(e, P.StartOfDay):
            return self.start_of_day(e.days)
        if isinstance(e, P.Arith):
            return self.arith(e)
        if isinstance(e, P.Func):
            return self.func(e)
        if isinstance(e, P.Cmp):
            return self.compare(e)
        if isinstance(e, P.And):
            return _combine(tuple(self._paren_bool(i) for i in e.items), exp.And)
        if isinstance(e, P.Or):
            return _combine(tuple(self._paren_bool(i) for i in e.items), exp.Or)
        if isinstance(e, P.Not):
            return exp.Not(this=self._paren_bool(e.item))
        if isinstance(e, P.InList):
            node = exp.In(this=self.expr(e.expr), expressions=[self.expr(v) for v in e.values])
            return exp.Not(this=node) if e.negated else node
        if isinstance(e, P.Between):
            return exp.Between(this=self.expr(e.expr), low=self.expr(e.low), high=self.expr(e.high))
        if isinstance(e, P.IsNull):
            node = exp.Is(this=self.expr(e.expr), expression=exp.Null())
            return exp.Not(this=node) if e.negated else node
        if isinstance(e, P.Contains):
            return self.contains(self.expr(e.expr), e.needle)
        if isinstance(e, P.Like):
            node = exp.Like(this=self.expr(e.expr), expression=exp.Literal.string(e.pattern))
            return exp.Not(this=node) if e.negated else node
        if isinstance(e, P.InCidr):
            tests = [self.in_prefix(self.expr(e.expr), p) for p in e.prefixes]
            node = _combine(tests, exp.Or) if len(tests) > 1 else tests[0]
            return exp.Not(this=exp.Paren(this=node)) if e.negated else node
        raise SRQLError(f"cannot emit {type(e).__name__}")

    def _paren_bool(self, e: P.Expr) -> exp.Expression:
        inner = self.expr(e)
        return exp.Paren(this=inner) if isinstance(e, P.And | P.Or) else inner

    def compare(self, e: P.Cmp) -> exp.Expression:
        klass = {"=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}[e.op]
        return klass(this=self.expr(e.left), expression=self.expr(e.right))

    def arith(self, e: P.Arith) -> exp.Expression:
        right = self.interval(e.right.value) if isinstance(e.right, P.Lit) and isinstance(
            e.right.value, timedelta) else (self.months(e.right.n) if isinstance(e.right, P.Months)
                                             else self.expr(e.right))
        klass = {"+": exp.Add, "-": exp.Sub, "*": exp.Mul, "/": exp.Div, "%": exp.Mod}[e.op]
        return exp.Paren(this=klass(this=self.expr(e.left), expression=right))

    def literal(self, e: P.Lit) -> exp.Expression:
        v = e.value
        if v is None:
            return exp.Null()
        if isinstance(v, bool):
            return exp.Boolean(this=v)
        if isinstance(v, int | float):
            return exp.Literal.number(v)
        if isinstance(v, datetime):
            return self.timestamp(v)
        if isinstance(v, timedelta):
            return self.interval(v)
        return exp.Literal.string(str(v))

    def fn(self, logical: str, *args: exp.Expression) -> exp.Expression:
        return exp.Anonymous(this=self.FUNCS.get(logical, logical), expressions=list(args))

    def func(self, e: P.Func) -> exp.Expression:
        args = [self.expr(a) for a in e.args]
        if e.name == "date":
            return self.fn("start_of_day", *args)
        if e.name == "length":
            return exp.Length(this=args[0])
        if e.name == "now":
            return self.now()
        return self.fn(e.name, *args)

    # ------------------------------------------------------------------ hooks
    def interval(self, d: timedelta) -> exp.Expression:
        n, unit, _ = split_duration(d)
        return exp.Interval(this=exp.Literal.number(n), unit=exp.Var(this=unit))

    def months(self, n: int) -> exp.Expression:
        return exp.Interval(this=exp.Literal.number(n), unit=exp.Var(this="MONTH"))

    def timestamp(self, v: datetime) -> exp.Expression:
        raise NotImplementedError

    def now(self) -> exp.Expression:
        raise NotImplementedError

    def start_of_day(self, days: int) -> exp.Expression:
        """Midnight UTC today (days=0) or ``-days`` days before."""
        today = self.fn("start_of_day", self.now())
        if days == 0:
            return today
        return exp.Paren(this=exp.Sub(this=today, expression=self.interval(timedelta(days=-days))))

    def contains(self, this: exp.Expression, needle: str) -> exp.Expression:
        if not any(ch in needle for ch in "%_\\"):
            return exp.Like(this=this, expression=exp.Literal.string(f"%{needle}%"))
        return exp.GT(this=self.fn("position", this, exp.Literal.string(needle)), expression=exp.Literal.number(0))

    def in_prefix(self, this: exp.Expression, prefix: str) -> exp.Expression:
        return self.fn("ip_in_range", this, exp.Literal.string(prefix))

    def from_clause(self) -> exp.Expression:
        raise NotImplementedError

    def window_columns(self) -> list[exp.Expression]:
        raise NotImplementedError

    def aggregate(self, a: P.Aggregate) -> exp.Expression:
        raise NotImplementedError

    def add_join(self, sel: exp.Select, j: P.Join) -> exp.Select:
        raise NotImplementedError

    def top_n(self, sel: exp.Select) -> exp.Select:
        raise NotImplementedError

    def latest(self, sel: exp.Select) -> exp.Select:
        raise NotImplementedError

    def unsupported(self, what: str) -> SRQLError:
        return SRQLError(f"{what} is not supported on the {self.name} target")

    def join_on(self, j: P.Join) -> list[exp.Expression]:
        return [exp.EQ(this=self.col(a), expression=self.col(b)) for a, b in j.on]

    def event_time(self, alias: str, field_name: str) -> exp.Expression:
        return _column(field_name, alias) if self.qualify else _column(field_name)


class ClickHouseLikeEmitter(SQLEmitter):
    """What ClickHouse and Proton share: LIMIT n BY for top-n and LATEST, -If aggregate combinators."""

    AGG_NAMES: dict[str, str] = {}

    def aggregate(self, a: P.Aggregate) -> exp.Expression:
        arg = self.expr(a.arg) if a.arg is not None else None
        cond = self.expr(a.filter) if a.filter is not None else None
        func = a.func
        if func == "count":
            args = [arg] if arg is not None else []
            if cond is not None:
                return self.fn("count_if", *args, cond)
            return exp.Count(this=arg if arg is not None else exp.Star())
        assert arg is not None
        if func in ("first", "last"):
            ts = self.event_time(self.plan.source.alias, self.plan.source.event_time)
            call = self.fn("arg_min" if func == "first" else "arg_max", arg, ts)
        elif func in P.QUANTILES:
            call = self.quantile(arg, P.QUANTILES[func])
        else:
            call = self.fn(self.AGG_NAMES.get(func, func), arg)
        if cond is not None:
            call = self.fn(f"{self.FUNCS.get(func, func)}_if", arg, cond)
        return call

    def quantile(self, arg: exp.Expression, q: float) -> exp.Expression:
        raise NotImplementedError

    def timestamp(self, v: datetime) -> exp.Expression:
        precision_utc = (exp.Literal.number(3), exp.Literal.string("UTC"))
        return self.fn("to_datetime64", exp.Literal.string(_timestamp_text(v)), *precision_utc)

    def now(self) -> exp.Expression:
        return self.fn("now64", exp.Literal.number(3), exp.Literal.string("UTC"))

    def in_prefix(self, this: exp.Expression, prefix: str) -> exp.Expression:
        # isIPAddressInRange throws on text that is not an address (an empty field); if() short-circuits.
        is_address = _combine([self.fn("is_ipv4_string", this.copy()), self.fn("is_ipv6_string", this.copy())],
                              exp.Or)
        test = self.fn("ip_in_range", this, exp.Literal.string(prefix))
        return exp.If(this=is_address, true=test, false=exp.false())

    def top_n(self, sel: exp.Select) -> exp.Select:
        p = self.plan
        assert p.limit is not None
        # Windows in time order, then the user's ranking inside each window; LIMIT n BY keeps n per window.
        keys = [exp.Ordered(this=self.window_start_expr()), *self.order_keys(), *self.tie_breakers()]
        sel = _set_list(sel, "order", exp.Order, keys)
        limit = exp.Limit(expression=exp.Literal.number(p.limit), expressions=[self.window_start_expr()])
        return sel.limit(limit, copy=False)

    def latest(self, sel: exp.Select) -> exp.Select:
        """The newest row per key: ORDER BY time DESC LIMIT 1 BY keys."""
        p = self.plan
        sel = _set_list(sel, "order", exp.Order, [exp.Ordered(this=_column(p.source.event_time), desc=True)])
        keys = [_column(k) for k in p.source.keys]
        return sel.limit(exp.Limit(expression=exp.Literal.number(1), expressions=keys), copy=False)


class ProtonEmitter(ClickHouseLikeEmitter):
    """Proton streaming SQL (STREAM) and ``table()`` queries (SHOW/FIND/COUNT). Version "3" or "1.6"."""

    name = "proton"
    FUNCS = {
        "start_of_day": "to_start_of_day",
        "position": "position",
        "ip_in_range": "is_ip_address_in_range",
        "is_ipv4_string": "is_ipv4_string",
        "is_ipv6_string": "is_ipv6_string",
        "count_if": "count_if",
        "lower": "lower",
        "upper": "upper",
    }

    def __init__(self, plan: P.Plan, version: str = "3") -> None:
        super().__init__(plan)
        if version not in ("3", "1.6"):
            raise SRQLError(f"unknown Proton version {version!r}; expected '3' or '1.6'")
        self.version = version
        self.dialect = "proton" if version == "3" else "proton16"
        self.streaming = plan.statement == "stream"

    def interval(self, d: timedelta) -> exp.Expression:
        n, _, short = split_duration(d)
        return pd.interval(n, short)

    def quantile(self, arg: exp.Expression, q: float) -> exp.Expression:
        return self.fn(f"p{round(q * 100)}", arg)

    def _stream(self, src: P.Source) -> exp.Expression:
        table = _table(src.stream)
        return table if self.streaming else pd.table(table)

    def from_clause(self) -> exp.Expression:
        p = self.plan
        src: exp.Expression = self._stream(p.source)
        w = p.window
        if w is not None:
            ts = _column(p.source.event_time)
            if not self.streaming and w.kind != "tumble":
                raise SRQLError(
                    f"Proton runs {w.kind} windows only on streams; use STREAM, or the clickhouse/duckdb target"
                )
            if w.kind == "tumble":
                src = pd.tumble(src, self.interval(w.size), time_column=ts)
            elif w.kind == "hop":
                assert w.step is not None
                step, size = self._same_unit(w.step, w.size)
                src = pd.hop(src, step, size, time_column=ts)
            else:
                src = pd.session(src, self.interval(w.size), time_column=ts)
        if self.qualify:
            alias = p.source.alias
            src = src.as_(alias, copy=False) if isinstance(src, exp.Table) else _alias(src, alias)
        return src

    def _same_unit(self, step: timedelta, size: timedelta) -> tuple[exp.Expression, exp.Expression]:
        """hop() wants step and size in one unit (specs/proton.md §1.6)."""
        units = tuple(u for u in _UNITS if _ms(step) % u[2] == 0 and _ms(size) % u[2] == 0)
        n1, _, short = split_duration(step, units)
        n2, _, _ = split_duration(size, units)
        return pd.interval(n1, short), pd.interval(n2, short)

    def window_columns(self) -> list[exp.Expression]:
        return [_column("window_start"), _column("window_end")]

    def window_group_keys(self) -> list[exp.Expression]:
        return self.window_columns()

    def add_join(self, sel: exp.Select, j: P.Join) -> exp.Select:
        right = self._stream(j.right) if j.kind == "interval" else _table(j.right.stream)
        on = self.join_on(j)
        if j.kind == "interval":
            assert j.within is not None
            # date_diff_within takes seconds or minutes (specs/proton.md §1.8).
            within = self._seconds_or_minutes(j.within)
            on.append(self.fn("date_diff_within", within,
                              self.event_time(self.plan.source.alias, self.plan.source.event_time),
                              self.event_time(j.right.alias, j.right.event_time)))
            # Select.join(join_type="INNER") parses "FROM _ INNER JOIN _" with sqlglot to find the join kind;
            # the node it builds is this one.
            return sel.join(exp.Join(this=right.as_(j.right.alias, copy=False), kind="INNER", on=_and(on)),
                            copy=False)
        # Inventory lookup: the versioned_kv stream keeps the latest row per key; LATEST JOIN uses only it.
        target = right if self.streaming else pd.table(right)
        joined = exp.Join(this=_alias(target, j.right.alias) if not isinstance(target, exp.Table)
                          else target.as_(j.right.alias, copy=False), on=_and(on))
        # Proton spells it `INNER LATEST JOIN` (side INNER, kind LATEST in the dialect's tree).
        joined.set("side", "INNER")
        if self.streaming:
            joined.set("kind", "LATEST")
        return sel.join(joined, copy=False)

    def _seconds_or_minutes(self, d: timedelta) -> exp.Expression:
        units = tuple(u for u in _UNITS if u[1] in ("m", "s"))
        if _ms(d) % 1000:
            raise SRQLError(f"Proton joins WITHIN whole seconds; {d} is not")
        n, _, short = split_duration(d, units)
        return pd.interval(n, short)

    def finish(self, sel: exp.Select) -> exp.Select:
        sel = super().finish(sel)
        emit = self.plan.emit
        if emit is not None and self.streaming:
            sel.set("emit", self._emit(emit))
        return sel

    def _emit(self, e: P.Emit) -> exp.Expression | None:
        if e.mode == "on_close":
            w = self.plan.window
            delay = w.delay if w is not None and w.delay > timedelta(0) else None
            if delay is None:
                return None  # the default for windows in every version: emit when the window closes
            return pd.Emit.after_close(delay=self.interval(delay))
        if e.mode == "periodic":
            assert e.interval is not None
            return pd.Emit.periodic(self.interval(e.interval))
        return pd.Emit.on_update()


class BatchWindows(SQLEmitter):
    """Hop and session windows over stored data, with the embedded engine's exact rules
    (``streams/engine/windows.py``): hop windows ``[k*step, k*step + size)`` from the epoch; a session
    per group starts after a silence of ``gap`` or more, or at each multiple of 5 x gap since the epoch
    (Proton's default maximum length), and spans ``[first event, last event]``.
    """

    def table_source(self) -> exp.Expression:
        raise NotImplementedError

    def bucket(self, ts: exp.Expression, size: timedelta) -> exp.Expression:
        raise NotImplementedError

    def ms_interval(self, n: exp.Expression) -> exp.Expression:
        raise NotImplementedError

    def epoch_ms(self, ts: exp.Expression) -> exp.Expression:
        raise NotImplementedError

    def explode(self, n: int) -> exp.Expression:
        raise NotImplementedError

    def int_div(self, a: exp.Expression, b: exp.Expression) -> exp.Expression:
        return exp.IntDiv(this=a, expression=b)

    def previous(self, ts: exp.Expression, window: exp.Window) -> exp.Expression:
        raise NotImplementedError

    def _ts(self) -> exp.Expression:
        return self.event_time(self.plan.source.alias, self.plan.source.event_time)

    def from_clause(self) -> exp.Expression:
        src = self.table_source()
        w = self.plan.window
        if w is None or w.kind == "tumble":
            return src
        if w.kind == "hop":
            assert w.step is not None
            n = -(-_ms(w.size) // _ms(w.step))  # ceil: how many hop windows can hold one event
            hops = _select(exp.Star(), _alias(self.explode(n), "_hop"))
            return _set_from(hops, src).subquery(copy=False)
        return self._sessions(src, w).subquery(copy=False)

    def _sessions(self, src: exp.Expression, w: P.Window) -> exp.Select:
        ts = self._ts()
        keys = [self.expr(c) for c in self.plan.group_by]
        order = exp.Order(expressions=[exp.Ordered(this=ts.copy())])
        prev = self.previous(ts.copy(), exp.Window(this=exp.Null(), partition_by=[k.copy() for k in keys] or None,
                                                   order=order.copy()))
        gap, slot = exp.Literal.number(_ms(w.size)), exp.Literal.number(5 * _ms(w.size))
        quiet = exp.GTE(this=exp.Sub(this=self.epoch_ms(ts.copy()), expression=self.epoch_ms(prev.copy())),
                        expression=gap)
        new_slot = exp.NEQ(this=self.int_div(self.epoch_ms(ts.copy()), slot),
                           expression=self.int_div(self.epoch_ms(prev.copy()), slot.copy()))
        starts = _combine([exp.Is(this=prev.copy(), expression=exp.Null()), quiet, new_slot], exp.Or)
        flag = exp.Case(ifs=[exp.If(this=starts, true=exp.Literal.number(1))], default=exp.Literal.number(0))
        marked = _set_from(_select(exp.Star(), _alias(flag, "_new")), src)
        where = SQLEmitter._outer_where(self)
        if where is not None:
            marked = _set_condition(marked, "where", exp.Where, where)
        running = exp.Window(this=exp.Sum(this=_column("_new")), partition_by=keys or None, order=order,
                             spec=exp.WindowSpec(kind="ROWS", start="UNBOUNDED", start_side="PRECEDING"))
        numbered = _select(exp.Star(), _alias(running, "_session"))
        return _set_from(numbered, marked.subquery(copy=False))

    def _outer_where(self) -> exp.Expression | None:
        if self.plan.window is not None and self.plan.window.kind == "session":
            return None  # applied inside the session subquery, before the sessions form
        return super()._outer_where()

    def window_columns(self) -> list[exp.Expression]:
        w = self.plan.window
        assert w is not None
        ts = self._ts()
        if w.kind == "session":
            start, end = exp.Min(this=ts), exp.Max(this=ts.copy())
        else:
            start = self.bucket(ts, w.size if w.kind == "tumble" else w.step)  # type: ignore[arg-type]
            if w.kind == "hop":
                step = exp.Mul(this=_column("_hop"), expression=exp.Literal.number(_ms(w.step)))  # type: ignore[arg-type]
                start = exp.Sub(this=start, expression=self.ms_interval(step))
            end = exp.Add(this=start.copy(), expression=self.interval(w.size))
        return [_alias(start, "window_start"), _alias(end, "window_end")]

    def window_group_keys(self) -> list[exp.Expression]:
        w = self.plan.window
        if w is not None and w.kind == "session":
            return [_column("_session")]
        return super().window_group_keys()

    def window_start_expr(self) -> exp.Expression:
        w = self.plan.window
        if w is not None and w.kind == "session":
            return _column("window_start")
        return super().window_start_expr()

    def window_filter(self) -> exp.Expression | None:
        w = self.plan.window
        if w is None or w.kind != "hop":
            return None
        end = exp.Add(this=self.window_start_expr(), expression=self.interval(w.size))
        return exp.LT(this=self._ts(), expression=end)


class ClickHouseEmitter(BatchWindows, ClickHouseLikeEmitter):
    """ClickHouse SQL over the history tables (batch)."""

    name = "clickhouse"
    dialect = "clickhouse"
    FUNCS = {
        "start_of_day": "toStartOfDay",
        "position": "position",
        "ip_in_range": "isIPAddressInRange",
        "to_datetime64": "toDateTime64",
        "is_ipv4_string": "isIPv4String",
        "is_ipv6_string": "isIPv6String",
        "count_if": "countIf",
        "arg_min": "argMin",
        "arg_max": "argMax",
        "sum": "sum",
        "avg": "avg",
        "min": "min",
        "max": "max",
        "count_distinct": "uniqExact",
        "lower": "lower",
        "upper": "upper",
    }
    AGG_NAMES = {"count_distinct": "uniqExact"}

    def fn(self, logical: str, *args: exp.Expression) -> exp.Expression:
        name = self.FUNCS.get(logical, logical)
        if name.endswith("_if"):
            name = self.FUNCS.get(name[:-3], name[:-3]) + "If"
        return exp.Anonymous(this=name, expressions=list(args))

    def quantile(self, arg: exp.Expression, q: float) -> exp.Expression:
        # R-7 linear interpolation, the same definition as DuckDB's quantile_cont.
        return exp.ParameterizedAgg(this="quantileExactInclusive", expressions=[exp.Literal.number(q)],
                                    params=[arg])

    def table_source(self) -> exp.Expression:
        t = _table(self.plan.source.stream)
        return t.as_(self.plan.source.alias, copy=False) if self.qualify else t

    def bucket(self, ts: exp.Expression, size: timedelta) -> exp.Expression:
        # toStartOfInterval yields DateTime for whole seconds; keep window bounds DateTime64(3, 'UTC') like the data.
        start = self.fn("toStartOfInterval", ts, self.interval(size))
        return self.fn("to_datetime64", start, exp.Literal.number(3), exp.Literal.string("UTC"))

    def ms_interval(self, n: exp.Expression) -> exp.Expression:
        return self.fn("toIntervalMillisecond", n)

    def epoch_ms(self, ts: exp.Expression) -> exp.Expression:
        return self.fn("toUnixTimestamp64Milli", ts)

    def explode(self, n: int) -> exp.Expression:
        return self.fn("arrayJoin", self.fn("range", exp.Literal.number(n)))

    def int_div(self, a: exp.Expression, b: exp.Expression) -> exp.Expression:
        return self.fn("intDiv", a, b)

    def previous(self, ts: exp.Expression, window: exp.Window) -> exp.Expression:
        # lagInFrame sees only its frame: the previous row is the frame's first row.
        window.set("spec", exp.WindowSpec(kind="ROWS", start="1", start_side="PRECEDING", end="CURRENT ROW"))
        return window.__class__(this=self.fn("lagInFrame", self.fn("toNullable", ts)), **{
            k: v for k, v in window.args.items() if k != "this"})

    def add_join(self, sel: exp.Select, j: P.Join) -> exp.Select:
        raise self.unsupported("JOIN over history (use STREAM on Proton or the embedded engine)")


class DuckDBEmitter(BatchWindows):
    """DuckDB SQL over the Parquet archive (or DuckDB tables made from the same DDL)."""

    name = "duckdb"
    dialect = "duckdb"
    FUNCS = {"start_of_day": "date_trunc", "lower": "lower", "upper": "upper"}

    def __init__(self, plan: P.Plan, archive: str | None = None) -> None:
        super().__init__(plan)
        self.archive = archive

    def func(self, e: P.Func) -> exp.Expression:
        if e.name == "date":
            return self._day(self.expr(e.args[0]))
        return super().func(e)

    def _day(self, this: exp.Expression) -> exp.Expression:
        return exp.Anonymous(this="date_trunc", expressions=[exp.Literal.string("day"), this])

    def timestamp(self, v: datetime) -> exp.Expression:
        return exp.Cast(this=exp.Literal.string(_timestamp_text(v)), to=_type("TIMESTAMP"))

    def now(self) -> exp.Expression:
        # The archive stores naive UTC timestamps; compare with UTC now, independent of the session zone.
        return exp.Cast(this=exp.Anonymous(this="timezone", expressions=[exp.Literal.string("UTC"),
                                                                         exp.CurrentTimestamp()]),
                        to=_type("TIMESTAMP"))

    def start_of_day(self, days: int) -> exp.Expression:
        today = self._day(self.now())
        if days == 0:
            return today
        return exp.Paren(this=exp.Sub(this=today, expression=self.interval(timedelta(days=-days))))

    def contains(self, this: exp.Expression, needle: str) -> exp.Expression:
        return exp.Anonymous(this="contains", expressions=[this, exp.Literal.string(needle)])

    def in_prefix(self, this: exp.Expression, prefix: str) -> exp.Expression:
        # DuckDB's inet extension is not bundled; IPv4 containment is integer arithmetic on the octets.
        net = ipaddress.ip_network(prefix, strict=False)
        if net.version != 4:
            raise self.unsupported("an IPv6 prefix test")
        # TRY_CAST: DuckDB does not short-circuit AND, so the regex guard alone cannot keep text such as
        # 'not-an-ip' away from the cast.
        parts = [exp.TryCast(this=exp.Anonymous(this="split_part", expressions=[this.copy(), exp.Literal.string("."),
                                                                                exp.Literal.number(i + 1)]),
                             to=_type("BIGINT")) for i in range(4)]
        value = parts[0]
        for part in parts[1:]:
            value = exp.Add(this=exp.Mul(this=exp.Paren(this=value), expression=exp.Literal.number(256)),
                            expression=part)
        guard = exp.RegexpLike(this=this.copy(), expression=exp.Literal.string(r"^\d+\.\d+\.\d+\.\d+$"))
        lo, hi = int(net.network_address), int(net.broadcast_address)
        rng = exp.Between(this=value, low=exp.Literal.number(lo), high=exp.Literal.number(hi))
        return exp.Paren(this=_combine([guard, rng], exp.And))

    def table_source(self) -> exp.Expression:
        p = self.plan
        if self.archive:
            path = f"{self.archive.rstrip('/')}/{p.source.stream}/**/*.parquet"
            src: exp.Expression = exp.Table(this=exp.Anonymous(this="read_parquet", expressions=[
                exp.Literal.string(path), exp.EQ(this=_column("hive_partitioning"), expression=exp.true())]))
        else:
            src = _table(p.source.stream)
        return src.as_(p.source.alias, copy=False) if self.qualify else src

    def bucket(self, ts: exp.Expression, size: timedelta) -> exp.Expression:
        origin = exp.Cast(this=exp.Literal.string("1970-01-01"), to=_type("TIMESTAMP"))
        return exp.Anonymous(this="time_bucket", expressions=[self.interval(size), ts, origin])

    def ms_interval(self, n: exp.Expression) -> exp.Expression:
        return exp.Anonymous(this="to_milliseconds", expressions=[n])

    def epoch_ms(self, ts: exp.Expression) -> exp.Expression:
        return exp.Anonymous(this="epoch_ms", expressions=[ts])

    def explode(self, n: int) -> exp.Expression:
        return exp.Anonymous(this="unnest", expressions=[exp.Anonymous(this="range", expressions=[
            exp.Literal.number(n)])])

    def previous(self, ts: exp.Expression, window: exp.Window) -> exp.Expression:
        window.set("this", exp.Anonymous(this="lag", expressions=[ts]))
        return window

    def aggregate(self, a: P.Aggregate) -> exp.Expression:
        arg = self.expr(a.arg) if a.arg is not None else None
        func = a.func
        if func == "count":
            call: exp.Expression = exp.Count(this=arg if arg is not None else exp.Star())
        elif func == "count_distinct":
            call = exp.Count(this=exp.Distinct(expressions=[arg]))
        elif func in ("first", "last"):
            ts = self.event_time(self.plan.source.alias, self.plan.source.event_time)
            call = exp.Anonymous(this="arg_min" if func == "first" else "arg_max", expressions=[arg, ts])
        elif func in P.QUANTILES:
            call = exp.Anonymous(this="quantile_cont", expressions=[arg, exp.Literal.number(P.QUANTILES[func])])
        else:
            call = exp.Anonymous(this=func, expressions=[arg])
        if a.filter is not None:
            call = exp.Filter(this=call, expression=exp.Where(this=self.expr(a.filter)))
        return call

    def having(self, e: P.Expr) -> exp.Expression:
        # DuckDB resolves HAVING before SELECT aliases: inline each measure.
        return self._inline_measures(self.expr(e))

    def _inline_measures(self, node: exp.Expression) -> exp.Expression:
        names = {a.name: a for a in self.plan.aggregates}

        def swap(n: exp.Expression) -> exp.Expression:
            if isinstance(n, exp.Column) and not n.table and n.name in names:
                return self.aggregate(names[n.name])
            return n

        return node.transform(swap, copy=False)  # the tree was just built for this HAVING: no copy needed

    def top_n(self, sel: exp.Select) -> exp.Select:
        p = self.plan
        assert p.limit is not None
        keys = self.order_keys() + self.tie_breakers()
        window = exp.Window(this=exp.RowNumber(), partition_by=[self.window_start_expr()],
                            order=exp.Order(expressions=[k.copy() for k in keys]))
        sel = sel.qualify(exp.LTE(this=window, expression=exp.Literal.number(p.limit)), copy=False)
        return _set_list(sel, "order", exp.Order, [exp.Ordered(this=self.window_start_expr()), *keys])

    def latest(self, sel: exp.Select) -> exp.Select:
        """The newest row per key: QUALIFY row_number() OVER (PARTITION BY keys ORDER BY time DESC) = 1."""
        p = self.plan
        window = exp.Window(this=exp.RowNumber(), partition_by=[_column(k) for k in p.source.keys],
                            order=exp.Order(expressions=[exp.Ordered(this=_column(p.source.event_time), desc=True)]))
        return sel.qualify(exp.EQ(this=window, expression=exp.Literal.number(1)), copy=False)

    def add_join(self, sel: exp.Select, j: P.Join) -> exp.Select:
        raise self.unsupported("JOIN over the archive (use STREAM on Proton or the embedded engine)")
