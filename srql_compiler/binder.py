"""Binding: resolve an SRQL statement against the catalog and produce a typed :class:`~srql_compiler.plan.Plan`.

Resolution rules (SRQL.md):
- an entity name resolves to the entity of that name, or whose alias it is first, when that entity has
  every field the query uses; otherwise to the one other entity sharing the name that has them all (with
  a warning saying which and why); otherwise it is an error listing the candidates;
- ``<agg>_<field>`` measure names mean ``agg(field)``; any other measure name that is not a field is the
  row count of the group; entities may define named measures of their own.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from srql_compiler import ast
from srql_compiler import plan as P
from srql_compiler.errors import SRQLError, did_you_mean
from srql_compiler.keywords import AGGREGATES
from srql_compiler.parser import LONG_UNITS, parse
from streams.catalog import CATALOG, Catalog, Entity
from streams.catalog import Field as CatalogField
from streams.types import BOOL, FLOAT64, INT64, IP, STRING, TIMESTAMP, UINT64, ColumnType, Kind

WINDOW_BOUNDS = ("window_start", "window_end")
DEFAULT_PERIODIC = timedelta(seconds=2)  # Proton's default for un-windowed aggregates
_AGG_PREFIXES = sorted(AGGREGATES, key=len, reverse=True)  # count_distinct_ before count_


def bind(query: str | ast.Statement, catalog: Catalog = CATALOG) -> P.Plan:
    """Parse (if needed) and bind a query. Raises :class:`SRQLError` on any fault."""
    stmt = query if isinstance(query, ast.Statement) else parse(query)
    return _Binder(stmt, catalog).bind()


@dataclass
class _Scope:
    """The sources of a statement: (alias, entity, the name the user wrote)."""

    sources: list[tuple[str, Entity, str]]

    def find(self, name: str) -> list[tuple[str, CatalogField]]:
        return [(alias, f) for alias, ent, _ in self.sources if (f := ent.field(name)) is not None]

    def source(self, qualifier: str) -> tuple[str, Entity] | None:
        for alias, ent, written in self.sources:
            if qualifier in (alias, ent.name, written):
                return alias, ent
        return None


@dataclass
class _Measures:
    """Aggregates collected while binding HAVING / ORDER BY / projection, in order of first use."""

    items: dict[str, P.Aggregate] = field(default_factory=dict)

    def add(self, agg: P.Aggregate) -> P.MeasureRef:
        for existing in self.items.values():
            if (existing.func, existing.arg, existing.filter) == (agg.func, agg.arg, agg.filter):
                return P.MeasureRef(existing.name, existing.type)
        self.items.setdefault(agg.name, agg)
        return P.MeasureRef(agg.name, self.items[agg.name].type)


class _Binder:
    def __init__(self, stmt: ast.Statement, catalog: Catalog) -> None:
        self.stmt = stmt
        self.catalog = catalog
        self.query = stmt.text
        self.warnings: list[str] = []
        self.measures = _Measures()
        self.group_cols: list[P.Col] = []
        self.output_aliases: dict[str, P.Expr] = {}

    def error(self, message: str, node: ast.Node | None, suggestion: str | None = None) -> SRQLError:
        span = node.span if node is not None else (0, 0)
        return SRQLError.at(message, self.query, span[0], max(1, span[1] - span[0]), suggestion)

    # ------------------------------------------------------------------ top level
    def bind(self) -> P.Plan:
        st = self.stmt
        self.scope = self._resolve_sources()
        left_alias, left = self.scope.sources[0][:2]
        source = _source(left, left_alias)
        join = self._bind_join() if st.join else None
        where = self._bind_predicate(st.where, "WHERE") if st.where is not None else None
        time_range = self._time_range(left_alias, left) if st.time_range else None
        window = self._window()
        self.group_cols = [self._group_key(g) for g in st.group_by]
        grouped = bool(st.group_by) or window is not None
        projection = self._projection(grouped)
        having = self._bind_predicate(st.having, "HAVING", post_agg=True) if st.having is not None else None
        order_by = tuple(self._order_key(o, grouped) for o in st.order_by)
        if grouped and not self.measures.items and projection is None:
            self.measures.add(P.Aggregate("count", "count", None, UINT64))
        aggregates = tuple(self.measures.items.values())
        if (grouped or aggregates) and st.kind == "count":
            raise self.error("COUNT does not group; use SHOW ... GROUP BY", st.group_by[0] if st.group_by else None)
        if st.kind == "count" and (st.order_by or st.limit):
            self.warnings.append("ORDER BY and LIMIT do not change a COUNT; ignored")
            order_by, st = (), replace(st, limit=None)
            self.stmt = st
        emit = self._emit(window, bool(aggregates) or grouped)
        latest = st.latest or (left.is_inventory and st.kind != "stream" and not grouped)
        self._check_stream_shape(window, grouped or bool(aggregates))
        plan = P.Plan(
            statement=st.kind,  # type: ignore[arg-type]
            source=source,
            columns=(),
            join=join,
            time_range=time_range,
            where=where,
            group_by=tuple(self.group_cols),
            window=window,
            aggregates=aggregates,
            having=having,
            order_by=order_by,
            limit=st.limit,
            emit=emit,
            projection=projection,
            distinct=st.distinct,
            latest=latest,
            warnings=tuple(self.warnings),
        )
        return _with_columns(plan, self.catalog)

    # ------------------------------------------------------------------ sources
    def _resolve_sources(self) -> _Scope:
        st = self.stmt
        refs = [st.entity] + ([st.join.entity] if st.join else [])
        options = [self._candidates(r) for r in refs]
        used = self._used_names()
        combos = list(itertools.product(*options))
        for combo in combos:
            scope = self._scope_for(refs, combo)
            if all(self._resolvable(scope, u) for u in used):
                self._warn_shared_alias(refs, combo, options, scope, used)
                return scope
        raise self._no_entity_error(refs, options, used)

    def _candidates(self, ref: ast.EntityRef) -> list[Entity]:
        cands = self.catalog.candidates(ref.name)
        if not cands:
            hint = did_you_mean(ref.name, self.catalog.all_names())
            known = ", ".join(e.name for e in self.catalog)
            raise self.error(f"unknown entity '{ref.name}' (entities: {known})", ref, hint)
        return cands

    def _scope_for(self, refs: list[ast.EntityRef], combo: tuple[Entity, ...]) -> _Scope:
        sources = []
        for ref, ent in zip(refs, combo, strict=True):
            sources.append((ref.alias or ref.name, ent, ref.name))
        if len(sources) == 2 and sources[0][0] == sources[1][0]:
            raise self.error(f"both sides of the join are called '{sources[0][0]}'; give one an alias (AS x)", refs[1])
        return _Scope(sources)

    def _used_names(self) -> list[tuple[str | None, str, ast.Node]]:
        """Field names the statement needs, as (qualifier, name, node).

        WHERE, GROUP BY and ON take fields only. In the projection, HAVING and ORDER BY a bare name may
        also be a measure, so there only ``<agg>_<field>`` names (needing their field) and names that
        are fields of some candidate count.
        """
        st = self.stmt
        used: list[tuple[str | None, str, ast.Node]] = []
        for node in [st.where, *st.group_by, st.join.on if st.join else None]:
            used += _names_in(node)
        soft_roots = [st.having, *(o.expr for o in st.order_by), *(i.expr for i in st.items if i.expr is not None)]
        for node in soft_roots:
            for q, name, n in _names_in(node):
                agg_field = _split_measure(name)
                if q is not None:
                    used.append((q, name, n))
                elif agg_field is not None and not self._soft_ok(name):
                    used.append((q, agg_field[1], n))
        return [u for u in used if u[1] not in WINDOW_BOUNDS and u[1] not in _aliases_of(st)]

    def _soft_ok(self, name: str) -> bool:
        """A measure-position name that is itself a named measure of some candidate needs no field."""
        return any(e.measure(name) is not None for e in self.catalog)

    def _resolvable(self, scope: _Scope, used: tuple[str | None, str, ast.Node]) -> bool:
        qualifier, name, _ = used
        if qualifier is not None:
            src = scope.source(qualifier)
            return src is not None and src[1].field(name) is not None
        return bool(scope.find(name))

    def _warn_shared_alias(self, refs, combo, options, scope: _Scope, used) -> None:
        for ref, chosen, cands in zip(refs, combo, options, strict=True):
            if chosen is cands[0]:
                continue
            first = cands[0]
            missing = sorted({n for q, n, _ in used if first.field(n) is None and scope.find(n)})
            self.warnings.append(
                f"'{ref.name}' resolved to entity '{chosen.name}' ({chosen.stream}): "
                f"'{first.name}' has no field {', '.join(repr(m) for m in missing)}"
            )

    def _no_entity_error(self, refs, options, used) -> SRQLError:
        for ref, cands in zip(refs, options, strict=True):
            if len(refs) == 1 or len(cands) > 1:
                details = []
                for ent in cands:
                    missing = sorted({n for q, n, _ in used if ent.field(n) is None})
                    details.append(f"{ent.name} lacks {', '.join(missing)}")
                # Point at the first unknown name of the first candidate, with a did-you-mean.
                first = cands[0]
                bad = next((u for u in used if first.field(u[1]) is None and u[0] is None), None) or used[0]
                hint = did_you_mean(bad[1], first.field_names())
                if len(cands) == 1:
                    written = bad[2].text if isinstance(bad[2], ast.Name) else bad[1]
                    where = f"measure '{written}' ({first.name})" if written.split(".")[-1] != bad[1] else first.name
                    return self.error(f"unknown field '{bad[1]}' in {where}", bad[2], hint)
                return self.error(
                    f"no entity named '{ref.name}' has every field this query uses ({'; '.join(details)})", bad[2], hint
                )
        bad = used[0]
        return self.error(f"unknown field '{bad[1]}'", bad[2])

    def _bind_join(self) -> P.Join:
        st = self.stmt
        assert st.join is not None
        (la, lent, _), (ra, rent, _) = self.scope.sources
        if lent.is_inventory:
            raise self.error("an inventory cannot be streamed from; put it on the right of JOIN", st.entity)
        pairs, extra = self._join_pairs(st.join.on, la, ra)
        if extra:
            raise self.error("JOIN ... ON takes equalities between the two sides, joined by AND", extra[0])
        right = _source(rent, ra)
        if rent.is_inventory:
            if st.join.within is not None:
                self.warnings.append(f"WITHIN is ignored: '{rent.name}' is an inventory (a latest-row lookup)")
            return P.Join("lookup", right, pairs)
        if st.join.within is None:
            raise self.error(
                f"a join between two event streams ({lent.name}, {rent.name}) needs WITHIN <duration>: without a "
                "bound both sides would be kept forever (e.g. ... WITHIN 5m)",
                st.join,
            )
        return P.Join("interval", right, pairs, st.join.within)

    def _join_pairs(self, on: ast.Node, la: str, ra: str):
        conjuncts = list(on.items) if isinstance(on, ast.BoolOp) and on.op == "and" else [on]
        pairs, extra = [], []
        for c in conjuncts:
            if not (isinstance(c, ast.Compare) and c.op == "=" and isinstance(c.left, ast.Name)
                    and isinstance(c.right, ast.Name)):
                extra.append(c)
                continue
            a, b = self._column(c.left), self._column(c.right)
            if a.source == b.source:
                raise self.error("each side of a join equality must come from a different entity", c)
            if a.source == ra:
                a, b = b, a
            if a.type.kind != b.type.kind:
                raise self.error(f"cannot join {a.name} ({a.type}) with {b.name} ({b.type})", c)
            pairs.append((a, b))
        return tuple(pairs), extra

    # ------------------------------------------------------------------ clauses
    def _time_range(self, alias: str, ent: Entity) -> P.Expr:
        tr = self.stmt.time_range
        assert tr is not None
        ts = P.Col(ent.event_time, alias, TIMESTAMP)
        if tr.kind == "today":
            return P.Cmp(">=", ts, P.StartOfDay(0))
        if tr.kind == "yesterday":
            return P.And((P.Cmp(">=", ts, P.StartOfDay(-1)), P.Cmp("<", ts, P.StartOfDay(0))))
        if tr.kind == "since":
            return P.Cmp(">=", ts, P.Arith("-", P.Now(), P.Lit(tr.args[0])))
        if tr.kind == "last":
            n, unit = tr.args
            ago = P.Months(int(n)) if unit == "month" else P.Lit(int(n) * _unit_delta(unit))  # type: ignore[arg-type]
            return P.Cmp(">=", ts, P.Arith("-", P.Now(), ago))
        lo, hi = (self._parse_time(str(s), tr) for s in tr.args)
        if hi < lo:
            raise self.error("FROM BETWEEN needs the earlier time first", tr)
        return P.Between(ts, P.Lit(lo, TIMESTAMP), P.Lit(hi, TIMESTAMP))

    def _window(self) -> P.Window | None:
        w = self.stmt.window
        if w is None:
            return None
        if w.kind == "hop":
            assert w.step is not None
            if w.step > w.size:
                raise self.error("a hopping window's step must not exceed its size (WINDOW <size> HOP <step>)", w)
        return P.Window(w.kind, w.size, w.step, w.delay or timedelta(0))  # type: ignore[arg-type]

    def _group_key(self, node: ast.Node) -> P.Col:
        if not isinstance(node, ast.Name):
            raise self.error("GROUP BY takes field names", node)
        if node.text in WINDOW_BOUNDS:
            raise self.error("window bounds are grouped automatically; GROUP BY the fields only", node)
        col = self._column(node)
        if col.type.kind == Kind.MAP:
            raise self.error(f"cannot group by '{col.name}', a map; group by one of its keys instead", node)
        return col

    def _emit(self, window: P.Window | None, aggregated: bool) -> P.Emit | None:
        st = self.stmt
        if st.kind != "stream":
            return None
        e = st.emit
        if e is None:
            if window is not None:
                return P.Emit("on_close")
            return P.Emit("periodic", DEFAULT_PERIODIC) if aggregated else None
        if not aggregated:
            raise self.error("EMIT applies to aggregations (GROUP BY / WINDOW / measures)", e)
        if e.mode == "on_close" and window is None:
            raise self.error("EMIT ON CLOSE needs a WINDOW", e)
        return P.Emit(e.mode, e.interval)  # type: ignore[arg-type]

    def _check_stream_shape(self, window: P.Window | None, aggregated: bool) -> None:
        st = self.stmt
        if st.kind != "stream":
            if st.latest and st.items and any(i.expr is not None for i in st.items):
                pass
            return
        if st.order_by and window is None:
            raise self.error("ORDER BY on a STREAM needs a WINDOW (an unbounded stream has no end to sort)",
                             st.order_by[0])
        if st.limit and window is None:
            self.warnings.append(f"LIMIT {st.limit} on an un-windowed STREAM stops the stream after {st.limit} rows")

    # ------------------------------------------------------------------ projection and measures
    def _projection(self, grouped: bool) -> tuple[tuple[str, P.Expr], ...] | None:
        st = self.stmt
        if not st.items:
            if st.distinct:
                raise self.error("DISTINCT needs a projection: SHOW DISTINCT(field) FROM entity", st.entity)
            return None
        out: list[tuple[str, P.Expr]] = []
        for item in st.items:
            if item.expr is None:
                if grouped:
                    raise self.error("* cannot be used with GROUP BY or WINDOW", item)
                for alias, ent, _ in self.scope.sources[:1]:
                    out += [(f.name, P.Col(f.name, alias, f.type)) for f in ent.fields]
                continue
            expr = self._value_or_measure(item.expr, grouped)
            name = item.alias or _default_name(item.expr, expr)
            if any(n == name for n, _ in out):
                raise self.error(f"two output columns are called '{name}'; add AS <name>", item)
            out.append((name, expr))
            self.output_aliases[name] = expr
        measures = [isinstance(e, P.MeasureRef) for _, e in out]
        if not grouped and any(measures) and not all(measures):
            raise self.error("mixing measures and plain fields needs GROUP BY those fields", st.items[0])
        return tuple(out)

    def _value_or_measure(self, node: ast.Node, grouped: bool) -> P.Expr:
        """A projected item: a window bound, a group key, a measure, or (un-grouped) any expression."""
        if isinstance(node, ast.Name) and node.text in WINDOW_BOUNDS:
            if self.stmt.window is None:
                raise self.error(f"'{node.text}' needs a WINDOW", node)
            return P.WindowBound(node.text)  # type: ignore[arg-type]
        if isinstance(node, ast.Call) and node.name in AGGREGATES:
            return self._aggregate_call(node)
        if isinstance(node, ast.Name):
            found = self._try_column(node)
            if found is not None:
                if grouped and found not in self.group_cols:
                    raise self.error(
                        f"'{node.text}' is neither grouped nor a measure",
                        node,
                        _measure_hint(found.name),
                    )
                return found
            return self._measure_name(node)
        expr = self._expr(node)
        if grouped:
            raise self.error("with GROUP BY, project group keys, window bounds and measures", node)
        return expr

    def _order_key(self, item: ast.OrderItem, grouped: bool) -> P.OrderKey:
        node = item.expr
        if isinstance(node, ast.Name) and len(node.parts) == 1 and node.parts[0] in self.output_aliases:
            expr = self.output_aliases[node.parts[0]]
            if isinstance(expr, P.Col | P.MeasureRef | P.WindowBound):
                return P.OrderKey(expr, item.desc)
            return P.OrderKey(P.MeasureRef(node.parts[0], STRING), item.desc)
        if grouped:
            return P.OrderKey(self._value_or_measure(node, True), item.desc)
        return P.OrderKey(self._expr(node), item.desc)

    def _aggregate_call(self, node: ast.Call) -> P.MeasureRef:
        func = node.name
        if node.star or not node.args:
            if func != "count":
                raise self.error(f"{func}() needs a field", node)
            return self.measures.add(P.Aggregate("count", "count", None, UINT64))
        if len(node.args) != 1:
            raise self.error(f"{func} takes one argument", node)
        arg = self._expr(node.args[0])
        name = f"{func}_{arg.name}" if isinstance(arg, P.Col) else f"{func}_{len(self.measures.items) + 1}"
        return self.measures.add(P.Aggregate(name, func, arg, self._agg_type(func, arg, node)))  # type: ignore[arg-type]

    def _agg_type(self, func: str, arg: P.Expr, node: ast.Node) -> ColumnType:
        t = _type_of(arg)
        if func in ("count", "count_distinct"):
            return UINT64
        if func in ("sum", "avg") or func in P.QUANTILES:
            if t is None or not t.is_numeric:
                raise self.error(f"{func} needs a numeric field; '{_describe(arg)}' is {t}", node)
            if func == "sum":
                return FLOAT64 if t.kind == Kind.FLOAT else (INT64 if t.name.startswith("int") else UINT64)
            return FLOAT64
        if t is not None and t.kind in (Kind.MAP, Kind.ARRAY) and func in ("min", "max"):
            raise self.error(f"{func} cannot order {t} values", node)
        return t or STRING

    def _measure_name(self, node: ast.Name) -> P.Expr:
        """A bare name in a measure position: alias, named measure, <agg>_<field>, or the row count."""
        name = node.text
        if len(node.parts) != 1:
            raise self.error(f"unknown field '{name}'", node)
        if name in self.output_aliases:
            return self.output_aliases[name]
        left_alias, left = self.scope.sources[0][:2]
        named = left.measure(name)
        if named is not None:
            arg = P.Col(named.field, left_alias, left.field(named.field).type) if named.field else None  # type: ignore[union-attr]
            filt = None
            if named.where:
                f = left.field(named.where[0])
                assert f is not None
                filt = P.Cmp("=", P.Col(f.name, left_alias, f.type), P.Lit(named.where[1], f.type))
            t = UINT64 if named.func == "count" else self._agg_type(named.func, arg, node)  # type: ignore[arg-type]
            return self.measures.add(P.Aggregate(name, named.func, arg, t, filt))  # type: ignore[arg-type]
        split = _split_measure(name)
        if split is not None:
            func, fname = split
            found = self.scope.find(fname)
            if not found:
                cands = [n for _, e, _ in self.scope.sources for n in e.field_names()]
                raise self.error(f"unknown field '{fname}' in measure '{name}'", node, did_you_mean(fname, cands))
            if len(found) > 1:
                raise self.error(f"'{fname}' is in both joined entities; write {func}(alias.{fname})", node)
            alias, f = found[0]
            arg = P.Col(f.name, alias, f.type)
            return self.measures.add(P.Aggregate(name, func, arg, self._agg_type(func, arg, node)))  # type: ignore[arg-type]
        return self.measures.add(P.Aggregate(name, "count", None, UINT64))

    # ------------------------------------------------------------------ expressions
    def _bind_predicate(self, node: ast.Node, clause: str, post_agg: bool = False) -> P.Expr:
        expr = self._expr(node, post_agg=post_agg)
        t = _type_of(expr)
        if t is not None and t.kind != Kind.BOOL:
            raise self.error(f"{clause} needs a condition, but this is a {t} value", node)
        return expr

    def _try_column(self, node: ast.Name) -> P.Col | None:
        if len(node.parts) == 2:
            src = self.scope.source(node.parts[0])
            if src is None:
                names = [a for a, _, _ in self.scope.sources]
                raise self.error(f"unknown entity or alias '{node.parts[0]}'", node, did_you_mean(node.parts[0], names))
            alias, ent = src
            f = ent.field(node.parts[1])
            if f is None:
                raise self.error(f"unknown field '{node.parts[1]}' in {ent.name}", node,
                                 did_you_mean(node.parts[1], ent.field_names()))
            return P.Col(f.name, alias, f.type)
        found = self.scope.find(node.parts[0])
        if len(found) > 1:
            qualified = f"{found[0][0]}.{node.text}"
            raise self.error(f"'{node.text}' is a field of both joined entities; qualify it ({qualified})", node)
        if found:
            alias, f = found[0]
            return P.Col(f.name, alias, f.type)
        return None

    def _column(self, node: ast.Name) -> P.Col:
        col = self._try_column(node)
        if col is None:
            cands = [n for _, e, _ in self.scope.sources for n in e.field_names()]
            where = " or ".join(e.name for _, e, _ in self.scope.sources)
            raise self.error(f"unknown field '{node.text}' in {where}", node, did_you_mean(node.text, cands))
        return col

    def _expr(self, node: ast.Node, post_agg: bool = False) -> P.Expr:
        if isinstance(node, ast.Name):
            if node.text in WINDOW_BOUNDS and self.stmt.window is not None:
                return P.WindowBound(node.text)  # type: ignore[arg-type]
            if post_agg:
                col = self._try_column(node)
                if col is not None and col in self.group_cols:
                    return col
                if col is not None and node.text not in self.output_aliases:
                    raise self.error(f"'{node.text}' is neither grouped nor a measure", node, _measure_hint(col.name))
                return self._measure_name(node)
            return self._column(node)
        if isinstance(node, ast.Literal):
            return self._literal(node)
        if isinstance(node, ast.Call):
            if node.name in AGGREGATES:
                if not post_agg:
                    raise self.error(f"{node.name}() is a measure: use it in HAVING, ORDER BY or the projection", node)
                return self._aggregate_call(node)
            return self._scalar_call(node, post_agg)
        if isinstance(node, ast.BoolOp):
            items = tuple(self._bool_operand(i, post_agg) for i in node.items)
            return P.And(items) if node.op == "and" else P.Or(items)
        if isinstance(node, ast.NotOp):
            return P.Not(self._bool_operand(node.item, post_agg))
        if isinstance(node, ast.Compare):
            return self._compare(node, post_agg)
        if isinstance(node, ast.Predicate):
            return self._predicate(node, post_agg)
        if isinstance(node, ast.BinOp):
            return self._arith(node, post_agg)
        if isinstance(node, ast.Neg):
            inner = self._expr(node.item, post_agg)
            if isinstance(inner, P.Lit) and isinstance(inner.value, int | float) and not isinstance(inner.value, bool):
                return P.Lit(-inner.value, inner.type)
            return P.Arith("-", P.Lit(0, INT64), inner)
        raise self.error("unsupported expression", node)

    def _bool_operand(self, node: ast.Node, post_agg: bool) -> P.Expr:
        expr = self._expr(node, post_agg)
        t = _type_of(expr)
        if t is not None and t.kind != Kind.BOOL:
            raise self.error(f"expected a condition, but this is a {t} value", node)
        return expr

    def _literal(self, node: ast.Literal) -> P.Expr:
        k, v = node.kind, node.value
        if k == "string":
            return P.Lit(v, STRING)
        if k == "number":
            return P.Lit(v, FLOAT64 if isinstance(v, float) else INT64)
        if k == "bool":
            return P.Lit(v, BOOL)
        if k == "null":
            return P.Lit(None, None)
        if k == "day":
            return P.StartOfDay(int(v))  # type: ignore[arg-type]
        if k == "now":
            return P.Now()
        return P.Lit(v, None)  # a duration

    def _scalar_call(self, node: ast.Call, post_agg: bool) -> P.Expr:
        name = node.name
        arity = {"date": 1, "lower": 1, "upper": 1, "length": 1, "now": 0}
        if name not in arity:
            hint = did_you_mean(name, [*arity, *AGGREGATES])
            raise self.error(f"unknown function '{name}'", node, hint)
        if len(node.args) != arity[name] or node.star:
            raise self.error(f"{name}() takes {arity[name]} argument(s)", node)
        if name == "now":
            return P.Now()
        arg = self._expr(node.args[0], post_agg)
        t = _type_of(arg)
        want = Kind.TIMESTAMP if name == "date" else Kind.STRING
        if t is not None and t.kind != want:
            raise self.error(f"{name}() needs a {want.value} value, not {t}", node.args[0])
        return P.Func(name, (arg,))

    def _coerce(self, lit: P.Expr, to: ColumnType | None, field_name: str, node: ast.Node) -> P.Expr:
        """Turn a literal into the type of the field it is compared with, or fail with a clear message."""
        if not isinstance(lit, P.Lit) or to is None or lit.value is None:
            return lit
        v = lit.value
        if to.kind == Kind.TIMESTAMP:
            if isinstance(v, str):
                return P.Lit(self._parse_time(v, node), TIMESTAMP)
            if isinstance(v, int | float) and not isinstance(v, bool):
                return P.Lit(datetime.fromtimestamp(v, UTC), TIMESTAMP)
            raise self.error(f"'{field_name}' is a time; compare it with a 'timestamp' string, TODAY or NOW", node)
        if to.kind == Kind.INTEGER and isinstance(v, str):
            named = self._named_value(field_name, v, node)
            if named is not None:
                return P.Lit(named, to)
        if to.is_numeric:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise self.error(f"'{field_name}' is a number ({to}); cannot compare it with {v!r}", node)
            return P.Lit(v, to if isinstance(v, int) or to.kind == Kind.FLOAT else FLOAT64)
        if to.kind == Kind.BOOL:
            if isinstance(v, bool):
                return lit
            if v in (0, 1):
                return P.Lit(bool(v), BOOL)
            raise self.error(f"'{field_name}' is true or false; cannot compare it with {v!r}", node)
        if to.kind == Kind.STRING:
            if not isinstance(v, str):
                raise self.error(f"'{field_name}' is text; compare it with a 'string', not {v!r}", node)
            if to == IP:
                self._check_address(v, node)
            return P.Lit(v, to)
        raise self.error(f"cannot compare '{field_name}' ({to}) with a constant", node)

    def _named_value(self, field_name: str, v: str, node: ast.Node) -> int | None:
        for _, ent, _ in self.scope.sources:
            f = ent.field(field_name)
            if f is not None and f.named_values:
                if v.lower() in f.named_values:
                    return f.named_values[v.lower()]
                raise self.error(f"unknown {f.name} '{v}'", node, did_you_mean(v.lower(), f.named_values))
        return None

    def _check_address(self, v: str, node: ast.Node) -> None:
        try:
            ipaddress.ip_address(v)
        except ValueError:
            self.warnings.append(f"'{v}' is not an IP address; the comparison will match nothing")

    def _parse_time(self, s: str, node: ast.Node) -> datetime:
        try:
            t = datetime.fromisoformat(s.strip().replace("Z", "+00:00"))
        except ValueError:
            raise self.error(f"'{s}' is not a timestamp (expected e.g. '2025-01-31 12:00:00')", node) from None
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)

    def _compare(self, node: ast.Compare, post_agg: bool) -> P.Expr:
        left, right = self._expr(node.left, post_agg), self._expr(node.right, post_agg)
        lt, rt = _type_of(left), _type_of(right)
        if isinstance(right, P.Lit) and not isinstance(left, P.Lit):
            right = self._coerce(right, lt, _describe(left), node.right)
        elif isinstance(left, P.Lit) and not isinstance(right, P.Lit):
            left = self._coerce(left, rt, _describe(right), node.left)
        elif lt is not None and rt is not None and not _comparable(lt, rt):
            raise self.error(f"cannot compare {_describe(left)} ({lt}) with {_describe(right)} ({rt})", node)
        if (isinstance(left, P.Lit) and left.value is None) or (isinstance(right, P.Lit) and right.value is None):
            raise self.error("comparing with NULL is never true; use IS NULL / IS NOT NULL", node)
        for side in (left, right):
            t = _type_of(side)
            if t is not None and t.kind in (Kind.MAP, Kind.ARRAY):
                raise self.error(f"cannot compare {_describe(side)}, a {t}", node)
        return P.Cmp(node.op, left, right)

    def _text_operand(self, node: ast.Predicate, post_agg: bool, what: str) -> P.Expr:
        expr = self._expr(node.expr, post_agg)
        t = _type_of(expr)
        if t is not None and t.kind != Kind.STRING:
            raise self.error(f"{what} needs a text field; '{_describe(expr)}' is {t}", node.expr)
        return expr

    def _predicate(self, node: ast.Predicate, post_agg: bool) -> P.Expr:
        kind = node.kind
        if kind == "contains":
            expr = self._text_operand(node, post_agg, "CONTAINS")
            needle = str(node.args[0].value)  # type: ignore[attr-defined]
            out: P.Expr = P.Contains(expr, needle)
            return P.Not(out) if node.negated else out
        if kind == "like":
            expr = self._text_operand(node, post_agg, "LIKE")
            return P.Like(expr, str(node.args[0].value), node.negated)  # type: ignore[attr-defined]
        if kind == "is_null":
            return P.IsNull(self._expr(node.expr, post_agg), node.negated)
        expr = self._expr(node.expr, post_agg)
        t = _type_of(expr)
        if kind == "in_cidr":
            return self._cidr(expr, (str(node.args[0].value),), node)  # type: ignore[attr-defined]
        if kind == "in":
            raw = [self._expr(a, post_agg) for a in node.args]
            if not all(isinstance(r, P.Lit) for r in raw):
                raise self.error("IN (...) takes constants", node)
            strs = [r.value for r in raw if isinstance(r, P.Lit)]
            if t == IP and all(isinstance(s, str) and "/" in s for s in strs):
                return self._cidr(expr, tuple(str(s) for s in strs), node)
            vals = tuple(self._coerce(r, t, _describe(expr), a) for r, a in zip(raw, node.args, strict=True))
            return P.InList(expr, vals, node.negated)  # type: ignore[arg-type]
        # between
        lo = self._coerce(self._expr(node.args[0], post_agg), t, _describe(expr), node.args[0])
        hi = self._coerce(self._expr(node.args[1], post_agg), t, _describe(expr), node.args[1])
        out = P.Between(expr, lo, hi)
        return P.Not(out) if node.negated else out

    def _cidr(self, expr: P.Expr, prefixes: tuple[str, ...], node: ast.Predicate) -> P.Expr:
        if _type_of(expr) != IP:
            raise self.error(f"IN '<prefix>' tests address containment; '{_describe(expr)}' is not an address",
                             node.expr)
        for p in prefixes:
            try:
                ipaddress.ip_network(p, strict=False)
            except ValueError:
                raise self.error(f"'{p}' is not an IP prefix (e.g. '10.0.0.0/8')", node) from None
        return P.InCidr(expr, prefixes, node.negated)

    def _arith(self, node: ast.BinOp, post_agg: bool) -> P.Expr:
        left, right = self._expr(node.left, post_agg), self._expr(node.right, post_agg)
        lt, rt = _type_of(left), _type_of(right)
        is_dur = isinstance(right, P.Lit) and isinstance(right.value, timedelta)
        if lt is not None and lt.kind == Kind.TIMESTAMP and node.op in "+-" and is_dur:
            return P.Arith(node.op, left, right)
        for side, t in ((left, lt), (right, rt)):
            if t is None or not t.is_numeric:
                raise self.error(f"arithmetic needs numbers; {_describe(side)} is {t or 'a duration'}", node)
        return P.Arith(node.op, left, right)


# ---------------------------------------------------------------------------------------------- helpers


def _source(ent: Entity, alias: str) -> P.Source:
    return P.Source(ent.name, ent.stream, alias, ent.event_time, ent.is_inventory, ent.keys or latest_keys(ent))


def latest_keys(ent: Entity) -> tuple[str, ...]:
    """The key LATEST groups by: an inventory's keys, else the entity's sort key without its event time."""
    return ent.keys or tuple(k for k in ent.order_by if k != ent.event_time)


def _unit_delta(unit: str) -> timedelta:
    return LONG_UNITS[unit]


def _names_in(node: ast.Node | None) -> list[tuple[str | None, str, ast.Node]]:
    if node is None:
        return []
    if isinstance(node, ast.Name):
        q = node.parts[0] if len(node.parts) == 2 else None
        return [(q, node.parts[-1], node)]
    out = []
    for child in _children(node):
        out += _names_in(child)
    return out


def _children(node: ast.Node) -> list[ast.Node]:
    if isinstance(node, ast.Call):
        return list(node.args)
    if isinstance(node, ast.BinOp | ast.Compare):
        return [node.left, node.right]
    if isinstance(node, ast.Neg | ast.NotOp):
        return [node.item]
    if isinstance(node, ast.BoolOp):
        return list(node.items)
    if isinstance(node, ast.Predicate):
        return [node.expr, *node.args]
    return []


def _aliases_of(st: ast.Statement) -> set[str]:
    return {i.alias for i in st.items if i.alias}


def _split_measure(name: str) -> tuple[str, str] | None:
    for agg in _AGG_PREFIXES:
        if name.startswith(agg + "_") and len(name) > len(agg) + 1:
            return agg, name[len(agg) + 1 :]
    return None


def _measure_hint(field_name: str) -> str:
    return f"avg_{field_name}"


def _default_name(node: ast.Node, expr: P.Expr) -> str:
    if isinstance(expr, P.MeasureRef):
        return expr.name
    if isinstance(expr, P.Col):
        # Name the column as the user wrote it (`service_name`), not by the canonical field (`app_name`).
        return node.parts[-1] if isinstance(node, ast.Name) else expr.name
    if isinstance(expr, P.WindowBound):
        return expr.which
    return ast_text(node)


def ast_text(node: ast.Node) -> str:
    if isinstance(node, ast.Name):
        return node.text
    if isinstance(node, ast.Call):
        inner = "*" if node.star else ", ".join(ast_text(a) for a in node.args)
        return f"{node.name}({inner})"
    return "expr"


def _describe(expr: P.Expr) -> str:
    if isinstance(expr, P.Col):
        return expr.name
    if isinstance(expr, P.MeasureRef):
        return expr.name
    if isinstance(expr, P.Func):
        return f"{expr.name}({', '.join(_describe(a) for a in expr.args)})"
    return "the expression"


def _comparable(a: ColumnType, b: ColumnType) -> bool:
    if a.is_numeric and b.is_numeric:
        return True
    return a.kind == b.kind


def _type_of(expr: P.Expr) -> ColumnType | None:
    """The type an expression evaluates to (None for NULL and duration constants)."""
    if isinstance(expr, P.Col | P.MeasureRef):
        return expr.type
    if isinstance(expr, P.Lit):
        return expr.type
    if isinstance(expr, P.Now | P.StartOfDay | P.WindowBound):
        return TIMESTAMP
    if isinstance(expr, P.Func):
        return {"date": TIMESTAMP, "lower": STRING, "upper": STRING, "length": UINT64, "now": TIMESTAMP}[expr.name]
    if isinstance(expr, P.Arith):
        lt, rt = _type_of(expr.left), _type_of(expr.right)
        if lt is not None and lt.kind == Kind.TIMESTAMP:
            return TIMESTAMP
        if expr.op == "/" or FLOAT64 in (lt, rt):
            return FLOAT64
        return INT64
    return BOOL


def _with_columns(plan: P.Plan, catalog: Catalog) -> P.Plan:
    """The plan with its output columns filled in (from the catalog it was bound against)."""

    cols: list[P.OutputColumn]
    if plan.statement == "count":
        cols = [P.OutputColumn("count", UINT64)]
    elif plan.projection is not None:
        cols = [P.OutputColumn(n, _type_of(e) or STRING) for n, e in plan.projection]
    elif plan.is_aggregate:
        cols = [P.OutputColumn(b, TIMESTAMP) for b in WINDOW_BOUNDS] if plan.window else []
        cols += [P.OutputColumn(c.name, c.type) for c in plan.group_by]
        cols += [P.OutputColumn(a.name, a.type) for a in plan.aggregates]
    else:
        cols = [P.OutputColumn(f.name, f.type) for f in catalog[plan.source.entity].fields]
        if plan.join is not None:
            taken = {c.name for c in cols}
            for f in catalog[plan.join.right.entity].fields:
                name = f.name if f.name not in taken else f"{plan.join.right.alias}_{f.name}"
                cols.append(P.OutputColumn(name, f.type))
    # The plan was built by bind() just before and is not shared yet: fill its columns in place
    # (dataclasses.replace would rebuild all seventeen fields through __init__).
    object.__setattr__(plan, "columns", tuple(cols))
    return plan
