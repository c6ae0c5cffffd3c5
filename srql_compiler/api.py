"""The public API: ``compile``, ``parse``, ``bind`` and the :class:`Compiled` result."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.generator import Generator
from sqlglot.helper import name_sequence

from srql_compiler import emit
from srql_compiler import plan as P
from srql_compiler.binder import bind
from srql_compiler.dialects import proton as pd
from srql_compiler.errors import SRQLError

TARGETS = ("proton", "clickhouse", "duckdb")
SINK_KINDS = ("adapter", "clickhouse", "stream")
DEFAULT_ADAPTER = "127.0.0.1:8080"
DEFAULT_CLICKHOUSE = "127.0.0.1:9000"


@dataclass
class Compiled:
    """A compiled query.

    ``sql`` is the text to run (for a materialized view, every statement, separated by ``;`` and a
    newline); ``statements`` the same one by one; ``tree`` the sqlglot expression of the query;
    ``columns`` the output columns as (name, type); ``plan`` the bound logical plan.
    """

    sql: str
    target: str
    plan: P.Plan
    tree: exp.Expression
    statements: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[tuple[str, str]]:
        return [(c.name, str(c.type)) for c in self.plan.columns]

    def __str__(self) -> str:
        return self.sql


def compile(
    query: str,
    target: str = "proton",
    *,
    proton_version: str = "3",
    mv: str | None = None,
    into: str | None = None,
    sink: str = "adapter",
    sink_address: str | None = None,
    archive: str | None = None,
    pretty: bool = False,
) -> Compiled:
    """Compile SRQL to SQL for ``target`` ("proton", "clickhouse" or "duckdb").

    ``proton_version`` ("3" or "1.6") picks the EMIT spelling. ``mv``/``into`` wrap a STREAM in
    ``CREATE MATERIALIZED VIEW mv INTO into``; ``sink`` says what ``into`` is: the local adapter through
    a ``timeplus`` external stream (default), a ClickHouse external table, or an existing stream.
    ``archive`` makes the DuckDB target read the Parquet archive under that directory.
    Raises :class:`SRQLError` on any fault.
    """
    if target not in TARGETS:
        raise SRQLError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    try:
        plan = bind(query)
        emitter = _emitter(plan, target, proton_version, archive)
        tree = emitter.select()
    except RecursionError:
        raise SRQLError("query nests too deeply", query if isinstance(query, str) else "") from None
    except SRQLError as err:
        if err.query or not isinstance(query, str) or not query.strip():
            raise
        # an emitter's error about the whole query (a target that cannot run it): show the query
        raise SRQLError(err.message, query, 1, 1, length=len(query.splitlines()[0])) from None
    warnings = list(plan.warnings)
    if plan.statement == "stream" and target != "proton":
        warnings.append(f"STREAM compiled for {target}: it runs once over stored data, not continuously")
    dialect = emitter.dialect
    statements = [_generate(tree, dialect, pretty)]
    if mv or into:
        statements = _materialized_view(plan, tree, target, mv, into, sink, sink_address, dialect, pretty)
    return Compiled(";\n".join(statements), target, plan, tree, statements, warnings)


_GENERATORS = threading.local()


def _generate(tree: exp.Expression, dialect: str, pretty: bool) -> str:
    """``tree.sql(dialect=dialect, pretty=pretty, copy=False)`` with one sqlglot Generator per thread and dialect.

    ``Expression.sql`` builds a Dialect and a Generator on every call (about a tenth of a compile). A
    Generator keeps no state from one ``generate`` to the next except its ``_t`` name sequence (reset here)
    and its list of unsupported-feature messages (reset by ``generate``).
    """
    generators = getattr(_GENERATORS, "by_dialect", None)
    if generators is None:
        generators = _GENERATORS.by_dialect = {}
    gen = generators.get((dialect, pretty))
    if gen is None:
        gen = generators[(dialect, pretty)] = _with_fast_paths(Dialect.get_or_raise(dialect).generator(pretty=pretty))
    gen._next_name = name_sequence("_t")
    try:
        return gen.generate(tree, copy=False)
    except RecursionError:  # too deep: the dialect's own entry point reports it as before
        return tree.sql(dialect=dialect, pretty=pretty, copy=False)


_IDENTIFIER_MEMO_SIZE = 4096


def _with_fast_paths(gen: Generator) -> Generator:
    """Shortcuts for the two node types every query is full of, in place of sqlglot's own handlers (only
    where the dialect uses sqlglot's base ones, so the text is the same):

    - a column with no table, db, catalog or join mark is its identifier (``column_parts`` otherwise
      builds a generator over four parts and joins them);
    - an identifier's spelling depends only on its text and ``quoted`` once the generator's options
      (``identify``, ``normalize``, the dialect) are fixed: each spelling is computed once per generator.
    """
    dispatch = dict(gen._dispatch)
    if dispatch.get(exp.Column) is Generator.column_sql:
        def column_sql(self: Generator, e: exp.Column) -> str:
            args = e.args
            if args.get("table") or args.get("db") or args.get("catalog") or args.get("join_mark"):
                return Generator.column_sql(self, e)
            this = args.get("this")
            return self.sql(this) if this else ""

        dispatch[exp.Column] = column_sql
    if dispatch.get(exp.Identifier) is Generator.identifier_sql and not gen.identify:
        spellings: dict[tuple[str, bool], str] = {}

        def identifier_sql(self: Generator, e: exp.Identifier) -> str:
            text = e.args.get("this")
            if type(text) is not str:
                return Generator.identifier_sql(self, e)
            key = (text, bool(e.args.get("quoted")))
            out = spellings.get(key)
            if out is None:
                if len(spellings) >= _IDENTIFIER_MEMO_SIZE:
                    spellings.clear()
                out = spellings[key] = Generator.identifier_sql(self, e)
            return out

        dispatch[exp.Identifier] = identifier_sql
    gen._dispatch = dispatch
    return gen


def _emitter(plan: P.Plan, target: str, proton_version: str, archive: str | None) -> emit.SQLEmitter:
    if target == "proton":
        return emit.ProtonEmitter(plan, proton_version)
    if target == "clickhouse":
        return emit.ClickHouseEmitter(plan)
    return emit.DuckDBEmitter(plan, archive)


def _materialized_view(
    plan: P.Plan, tree: exp.Expression, target: str, mv: str | None, into: str | None, sink: str,
    address: str | None, dialect: str, pretty: bool,
) -> list[str]:
    if target != "proton" or plan.statement != "stream":
        raise SRQLError("materialized views (--mv/--into) are for STREAM queries on the proton target")
    if not mv or not into:
        raise SRQLError("a materialized view needs both a name (--mv) and a sink (--into)")
    if sink not in SINK_KINDS:
        raise SRQLError(f"unknown sink kind {sink!r}; expected one of {', '.join(SINK_KINDS)}")
    out = []
    if sink == "adapter":
        settings = {"type": "timeplus", "hosts": address or DEFAULT_ADAPTER, "stream": into}
        out.append(pd.create_external_stream(into, settings).sql(dialect=dialect, pretty=pretty))
    elif sink == "clickhouse":
        settings = {"type": "clickhouse", "address": address or DEFAULT_CLICKHOUSE, "table": into}
        out.append(pd.create_external_table(into, settings).sql(dialect=dialect, pretty=pretty))
    view = pd.create_materialized_view(mv, tree, into=into)  # type: ignore[arg-type]
    out.append(view.sql(dialect=dialect, pretty=pretty))
    return out
