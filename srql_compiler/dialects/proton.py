"""Timeplus Proton dialects for sqlglot: ``Proton`` (3.x, default) and ``Proton16`` (1.5/1.6).

Importing this module registers both with sqlglot, so ``sqlglot.parse_one(sql, read="proton")``,
``expr.sql(dialect="proton")`` and the same with ``"proton16"`` work.

What differs from ClickHouse (see ``/work/shared/specs/proton.md`` §1 and ``docs/proton-dialect.md``):

* function names are snake_case and case-insensitive; calls that sqlglot does not model are kept
  verbatim, and the typed ones the compiler builds render in Proton spelling (``count_if``,
  ``quantile(x, 0.9)`` value-then-level, ``arg_max``, ``unique``, ``lag``, ``group_array`` ...);
* data types are lower case (``string``, ``int32``, ``datetime64(3, 'UTC')``, ``nullable(T)``,
  ``low_cardinality(T)``, ...); a type is wrapped in ``nullable`` only when it is marked nullable;
* interval shorthand ``5s``, ``100ms``, ``1m`` (minute), ``1M`` (month) ... parses to
  ``exp.Interval``; an interval with an integer value and a unit from ns to w is generated in
  that shorthand, others as ``INTERVAL n UNIT``;
* ``EMIT`` is an ``Emit`` node under the ``"emit"`` arg of ``exp.Select``, printed after
  LIMIT/OFFSET and before SETTINGS; its after-window-close form is spelled per version;
* ``PARTITION BY`` on SELECT (substreams) is the ``"partition_by"`` arg of ``exp.Select``
  (``SHUFFLE BY``: ``"shuffle_by"``);
* statements: ``CREATE [EXTERNAL|RANDOM] STREAM``, ``CREATE MATERIALIZED VIEW ... INTO t AS``,
  ``CREATE EXTERNAL TABLE ... SETTINGS``, ``DROP/ALTER/TRUNCATE/RENAME STREAM``, ``ASOF``/``LATEST``
  joins, ``SUBSCRIBE TO``, ``UNSUBSCRIBE TO``, ``RECOVER FROM``, ``KILL QUERY``, format schemas,
  ``CREATE AGGREGATE|REMOTE FUNCTION``; also the JSON shortcut ``raw:a.b[1]``, session predicates
  ``[start, end)``, map literals ``{'k': v}`` and comma-less ``VALUES (1) (2)``;
* bare ``UNION`` is rejected (its meaning depends on the server's ``union_default_mode``);
* input nested deeper than the Python stack ends in a sqlglot ``ParseError``/``SqlglotError``.

Builders for the SRQL emitters (all return sqlglot expressions):

* ``interval(5, "s")`` -> ``5s``; ``tumble(source, size, time_column=None)``,
  ``hop(source, step, size, time_column=None)``, ``session(source, idle, time_column=None)``,
  ``table(source)``, ``dedup(source, *keys, within=None)``, ``changelog(source, *keys)`` -> table
  functions for FROM;
* ``Emit.after_close(delay=None, timeout=None)`` -> ``EMIT AFTER WINDOW CLOSE [WITH DELAY d]``
  (3.x) / ``EMIT AFTER WATERMARK [WITH DELAY d]`` (1.6); ``Emit.periodic(interval, repeat=False)``,
  ``Emit.on_update()``, ``Emit.changelog()``, ``Emit.stream()``, ``Emit.timeout_after(i)``,
  ``Emit.last_for(i, proctime=False)``;
  attach with ``select.set("emit", emit)``;
* ``create_materialized_view(name, select, into=None)``, ``create_external_stream(name, settings)``,
  ``create_external_table(name, settings)``.
"""

from __future__ import annotations

import functools
import re
import typing as t
from collections.abc import Mapping

from sqlglot import exp, generator, parser
from sqlglot.dialects.clickhouse import ClickHouse
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.generators.clickhouse import ClickHouseGenerator
from sqlglot.helper import csv
from sqlglot.parsers.clickhouse import ClickHouseParser
from sqlglot.tokens import Token, TokenType

__all__ = [
    "Emit",
    "Proton",
    "Proton16",
    "ProtonIntoProperty",
    "ProtonStatement",
    "changelog",
    "create_external_stream",
    "create_external_table",
    "create_materialized_view",
    "dedup",
    "hop",
    "interval",
    "session",
    "table",
    "tumble",
]

# --------------------------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------------------------

#: shorthand suffix -> sqlglot interval unit ([P] ParserIntervalAliasExpression.cpp); ``M`` is
#: month and case-sensitive, ``m`` is minute.
SHORTHAND_UNITS: Mapping[str, str] = {
    "ns": "NANOSECOND",
    "us": "MICROSECOND",
    "ms": "MILLISECOND",
    "s": "SECOND",
    "m": "MINUTE",
    "h": "HOUR",
    "d": "DAY",
    "w": "WEEK",
    "M": "MONTH",
    "q": "QUARTER",
    "y": "YEAR",
}

#: units generated in shorthand form; month/quarter/year stay ``INTERVAL n UNIT`` because ``M``
#: against ``m`` is an easy mistake to make for a reader.
_UNIT_TO_SHORTHAND: Mapping[str, str] = {
    unit: suffix for suffix, unit in SHORTHAND_UNITS.items() if suffix not in ("M", "q", "y")
}

_UNIT_ALIASES: Mapping[str, str] = {
    **{s: u for s, u in SHORTHAND_UNITS.items()},
    **{u: u for u in SHORTHAND_UNITS.values()},
    **{f"{u}S": u for u in SHORTHAND_UNITS.values()},
}

#: Proton's table functions for FROM, printed in lower case
TABLE_FUNCTIONS = frozenset({"tumble", "hop", "session", "table", "dedup", "changelog"})

_SHORTHAND_RE = re.compile(r"^(\d+)(ns|us|ms|s|m|h|d|w|M|q|y)$")


def interval(value: int, unit: str) -> exp.Interval:
    """An interval node: ``interval(5, "s")`` or ``interval(5, "second")`` renders as ``5s``."""
    canonical = _UNIT_ALIASES.get(unit) or _UNIT_ALIASES.get(unit.upper())
    if canonical is None:
        raise ValueError(f"unknown interval unit {unit!r}")
    if value < 0:
        raise ValueError("interval value must be >= 0")
    # the value is a string literal because that is how sqlglot's parser normalises
    # `INTERVAL 5 SECOND`; shorthand and standard forms then give equal trees
    return exp.Interval(this=exp.Literal.string(str(value)), unit=exp.var(canonical))


def _as_interval(value: exp.Expr | str) -> exp.Expr:
    """Accept an expression or shorthand text such as ``"5s"``."""
    if isinstance(value, str):
        match = _SHORTHAND_RE.match(value)
        if not match:
            raise ValueError(f"not an interval shorthand: {value!r}")
        return interval(int(match.group(1)), SHORTHAND_UNITS[match.group(2)])
    return value


# --------------------------------------------------------------------------------------------
# EMIT
# --------------------------------------------------------------------------------------------


class Emit(exp.Expression):
    """The EMIT clause of a Proton streaming SELECT.

    Args (all optional): ``mode`` (``STREAM``/``CHANGELOG`` var), ``after_close`` (bool; window
    close, spelled per version), ``delay`` (interval), ``periodic`` (interval), ``repeat`` (bool),
    ``on_update`` (bool), ``batch`` (interval, ``ON UPDATE WITH BATCH``), ``timeout`` (interval),
    ``last`` (interval), ``proctime`` (bool, ``LAST i ON PROCTIME``), ``per_event`` (bool).
    """

    arg_types: t.ClassVar[dict[str, bool]] = {
        "mode": False,
        "after_close": False,
        "delay": False,
        "periodic": False,
        "repeat": False,
        "on_update": False,
        "batch": False,
        "timeout": False,
        "last": False,
        "proctime": False,
        "per_event": False,
    }

    @classmethod
    def after_close(cls, delay: exp.Expr | str | None = None, timeout: exp.Expr | str | None = None) -> Emit:
        """Emit when the window closes (after the watermark passes), with optional lateness."""
        return cls(
            after_close=True,
            delay=_as_interval(delay) if delay is not None else None,
            timeout=_as_interval(timeout) if timeout is not None else None,
        )

    @classmethod
    def periodic(cls, every: exp.Expr | str, repeat: bool = False) -> Emit:
        """Emit every ``every`` (``EMIT PERIODIC 5s [REPEAT]``)."""
        return cls(periodic=_as_interval(every), repeat=repeat or None)

    @classmethod
    def on_update(cls) -> Emit:
        """Emit whenever an aggregate changes (``EMIT ON UPDATE``)."""
        return cls(on_update=True)

    @classmethod
    def stream(cls) -> Emit:
        """``EMIT STREAM``."""
        return cls(mode=exp.var("STREAM"))

    @classmethod
    def changelog(cls) -> Emit:
        """``EMIT CHANGELOG`` (rows carry ``_tp_delta``)."""
        return cls(mode=exp.var("CHANGELOG"))

    @classmethod
    def timeout_after(cls, after: exp.Expr | str) -> Emit:
        """``EMIT TIMEOUT i``."""
        return cls(timeout=_as_interval(after))

    @classmethod
    def last_for(cls, span: exp.Expr | str, proctime: bool = False) -> Emit:
        """``EMIT LAST i [ON PROCTIME]``."""
        return cls(last=_as_interval(span), proctime=proctime or None)


# --------------------------------------------------------------------------------------------
# Statements sqlglot does not model
# --------------------------------------------------------------------------------------------


class ProtonStatement(exp.Expression):
    """``SUBSCRIBE TO <select>``, ``UNSUBSCRIBE TO 'id'``, ``RECOVER FROM 'id'``.

    ``this`` is the keyword pair (a var such as ``SUBSCRIBE TO``), ``expression`` the operand.
    """

    arg_types: t.ClassVar[dict[str, bool]] = {"this": True, "expression": True}


class SessionRange(exp.Expression):
    """``[start, end)`` and friends: the start/end predicates of ``session(...)``.

    ``left_closed``/``right_closed`` say whether the start/end event belongs to the session.
    """

    arg_types: t.ClassVar[dict[str, bool]] = {
        "this": True,
        "expression": True,
        "left_closed": False,
        "right_closed": False,
    }


class RenameStream(exp.Expression):
    """``RENAME STREAM [IF EXISTS] old TO new``."""

    arg_types: t.ClassVar[dict[str, bool]] = {"this": True, "to": True, "exists": False}


class TruncateStream(exp.Expression):
    """``TRUNCATE STREAM [IF EXISTS] name``."""

    arg_types: t.ClassVar[dict[str, bool]] = {"this": True, "exists": False}


class AlterStreamSetting(exp.Expression):
    """ALTER STREAM actions ``MODIFY SETTING k = v, ...`` and ``REMOVE TTL``.

    ``this`` is the action (a var ``MODIFY SETTING`` or ``REMOVE TTL``); ``expressions`` the settings.
    """

    arg_types: t.ClassVar[dict[str, bool]] = {"this": True, "expressions": False}


class FormatSchema(exp.Expression):
    """Format schemas (Kafka Protobuf/Avro): ``CREATE [OR REPLACE] FORMAT SCHEMA n AS 'def' TYPE t``,
    ``DROP FORMAT SCHEMA [IF EXISTS] n``, ``SHOW CREATE FORMAT SCHEMA n``, ``SHOW FORMAT SCHEMAS``.

    ``action`` is ``CREATE``/``DROP``/``SHOW CREATE``/``SHOW``.
    """

    arg_types: t.ClassVar[dict[str, bool]] = {
        "action": True,
        "this": False,
        "replace": False,
        "exists": False,
        "expression": False,
        "kind": False,
    }


class KillQuery(exp.Expression):
    """``KILL QUERY WHERE <condition> [SYNC|ASYNC|TEST]``."""

    arg_types: t.ClassVar[dict[str, bool]] = {"this": True, "mode": False}


class ProtonIntoProperty(exp.Property):
    """``INTO <target>`` of ``CREATE MATERIALIZED VIEW``."""

    arg_types: t.ClassVar[dict[str, bool]] = {"this": True}


class ProtonRandomProperty(exp.Property):
    """``RANDOM`` of ``CREATE RANDOM STREAM``."""

    arg_types: t.ClassVar[dict[str, bool]] = {}


class ProtonFunctionKindProperty(exp.Property):
    """``AGGREGATE`` / ``REMOTE`` of ``CREATE AGGREGATE|REMOTE FUNCTION`` (a var in ``this``)."""

    arg_types: t.ClassVar[dict[str, bool]] = {"this": True}


class ProtonKeywordProperty(exp.Property):
    """``URL 'u'``, ``AUTH_METHOD 'm'``, ... of ``CREATE REMOTE FUNCTION``: keyword, then value."""

    arg_types: t.ClassVar[dict[str, bool]] = {"this": True, "value": True}


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def _source(source: str | exp.Expr) -> exp.Expr:
    """A table-function argument; names become columns, as the parser reads them."""
    if isinstance(source, str):
        return exp.column(source)
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier) and not source.alias:
        return exp.Column(this=source.this.copy(), table=exp.maybe_copy(source.args.get("db")))
    return source


def _table_function(name: str, args: list[exp.Expr | None]) -> exp.Table:
    return exp.Table(this=exp.Anonymous(this=name, expressions=[a for a in args if a is not None]))


def tumble(source: str | exp.Expr, size: exp.Expr | str, time_column: str | exp.Expr | None = None) -> exp.Table:
    """``tumble(source, [time_column,] size)`` for FROM."""
    column = _source(time_column) if time_column is not None else None
    return _table_function("tumble", [_source(source), column, _as_interval(size)])


def hop(
    source: str | exp.Expr,
    step: exp.Expr | str,
    size: exp.Expr | str,
    time_column: str | exp.Expr | None = None,
) -> exp.Table:
    """``hop(source, [time_column,] step, size)``; Proton wants step and size in the same unit."""
    column = _source(time_column) if time_column is not None else None
    return _table_function("hop", [_source(source), column, _as_interval(step), _as_interval(size)])


def session(source: str | exp.Expr, idle: exp.Expr | str, time_column: str | exp.Expr | None = None) -> exp.Table:
    """``session(source, [time_column,] idle_timeout)``; keys go in PARTITION BY / GROUP BY."""
    column = _source(time_column) if time_column is not None else None
    return _table_function("session", [_source(source), column, _as_interval(idle)])


def dedup(source: str | exp.Expr, *keys: str | exp.Expr, within: exp.Expr | str | None = None) -> exp.Table:
    """``dedup(source, key, ... [, within])``: drop repeated keys seen within a time span."""
    span = _as_interval(within) if within is not None else None
    return _table_function("dedup", [_source(source), *(_source(k) for k in keys), span])


def changelog(source: str | exp.Expr, *keys: str | exp.Expr) -> exp.Table:
    """``changelog(source, key, ...)``: turn an append stream into a changelog by key."""
    return _table_function("changelog", [_source(source), *(_source(k) for k in keys)])


def table(source: str | exp.Expr) -> exp.Table:
    """``table(source)``: the historical (bounded) read of a stream."""
    return _table_function("table", [_source(source)])


def _literal(value: object) -> exp.Expr:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise TypeError(f"setting values must be str, int or bool, not {type(value).__name__}")


_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _settings_property(settings: Mapping[str, object]) -> exp.SettingsProperty:
    bad = [key for key in settings if not _SETTING_NAME.match(key)]
    if bad:
        raise ValueError(f"setting names must be identifiers: {bad!r}")
    return exp.SettingsProperty(
        expressions=[
            exp.EQ(this=exp.column(_setting_name(key)), expression=_literal(value)) for key, value in settings.items()
        ]
    )


@functools.cache
def _setting_name(key: str) -> exp.Identifier:
    """The key as an identifier, backquoted only when Proton would read it as a keyword (`not`)."""
    try:
        tree = Proton().parse(f"SELECT 1 SETTINGS {key} = 1")[0]
        settings = tree.args.get("settings") if tree is not None else None
        first = settings[0].this if settings else None
        plain = isinstance(first, exp.Column) and first.name == key and not first.table
    except SqlglotError:
        plain = False
    return exp.to_identifier(key, quoted=not plain)


def create_materialized_view(name: str, select: exp.Select, into: str | None = None) -> exp.Create:
    """``CREATE MATERIALIZED VIEW IF NOT EXISTS name [INTO into] AS select``."""
    properties: list[exp.Expr] = [exp.MaterializedProperty()]
    if into is not None:
        properties.append(ProtonIntoProperty(this=exp.to_table(into)))
    return exp.Create(
        this=exp.to_table(name),
        kind="VIEW",
        exists=True,
        expression=select,
        properties=exp.Properties(expressions=properties),
    )


def _create_external(kind: str, name: str, settings: Mapping[str, object]) -> exp.Create:
    return exp.Create(
        this=exp.to_table(name),
        kind=kind,
        exists=True,
        properties=exp.Properties(expressions=[exp.ExternalProperty(), _settings_property(settings)]),
    )


def create_external_stream(name: str, settings: Mapping[str, object]) -> exp.Create:
    """``CREATE EXTERNAL STREAM IF NOT EXISTS name SETTINGS k = v, ...``."""
    return _create_external("STREAM", name, settings)


def create_external_table(name: str, settings: Mapping[str, object]) -> exp.Create:
    """``CREATE EXTERNAL TABLE IF NOT EXISTS name SETTINGS k = v, ...``."""
    return _create_external("TABLE", name, settings)


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------


class ProtonTokenizer(ClickHouse.Tokenizer):
    """ClickHouse tokens plus Proton's snake_case type names and the STREAM keyword."""

    # backquotes first: quoted names print as `name`, like the catalog's DDL (both still parse)
    IDENTIFIERS: t.ClassVar = ["`", '"']

    KEYWORDS: t.ClassVar = {
        **ClickHouse.Tokenizer.KEYWORDS,
        "LOW_CARDINALITY": TokenType.LOWCARDINALITY,
        "FIXED_STRING": TokenType.FIXEDSTRING,
        "STREAM": TokenType.STREAM,
    }
    # RENAME STREAM is parsed, so RENAME must not swallow the rest of the statement as text
    COMMANDS: t.ClassVar = ClickHouse.Tokenizer.COMMANDS - {TokenType.RENAME, TokenType.SHOW}

    # `session(...)` is a window table function in Proton, not the SESSION keyword
    KEYWORDS.pop("SESSION", None)

    def tokenize(self, sql: str) -> list[Token]:
        """Tokens, with each interval shorthand (`5s`) spelled out as `INTERVAL 5 SECOND`.

        Rewriting at token level means every parser path (including sqlglot's column fast
        path, which would read `5s` as a column) sees an ordinary interval.
        """
        tokens: list[Token] = []
        for token in super().tokenize(sql):
            match = _SHORTHAND_RE.match(token.text) if token.token_type == TokenType.VAR else None
            if match is None:
                tokens.append(token)
                continue
            where = (token.line, token.col, token.start, token.end)
            tokens.append(Token(TokenType.INTERVAL, "INTERVAL", *where, comments=token.comments))
            tokens.append(Token(TokenType.NUMBER, match.group(1), *where))
            tokens.append(Token(TokenType.VAR, SHORTHAND_UNITS[match.group(2)], *where))
        return tokens


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


def _build_count_if(args: list) -> exp.Expr:
    return exp.CountIf(this=args[0]) if len(args) == 1 else exp.Anonymous(this="count_if", expressions=args)


def _build_quantile(args: list) -> exp.Expr:
    # Proton order: value first, then level -- quantile(x, 0.9), not ClickHouse quantile(0.9)(x)
    if len(args) == 2:
        return exp.Quantile(this=args[0], quantile=args[1])
    return exp.Anonymous(this="quantile", expressions=args)


def _build_binary(klass: type[exp.Func], name: str) -> t.Callable[[list], exp.Expr]:
    def _builder(args: list) -> exp.Expr:
        if len(args) == 2:
            return klass(this=args[0], expression=args[1])
        return exp.Anonymous(this=name, expressions=args)

    return _builder


#: functions parsed into typed sqlglot nodes; every other call stays ``exp.Anonymous`` with
#: its name verbatim, because a typed node would be re-spelled by sqlglot (e.g. rand ->
#: randCanonical) and Proton does not register ClickHouse's camelCase names.
_TYPED_FUNCTIONS: Mapping[str, t.Callable] = {
    "COUNT": parser.Parser.FUNCTIONS["COUNT"],
    "SUM": parser.Parser.FUNCTIONS["SUM"],
    "AVG": parser.Parser.FUNCTIONS["AVG"],
    "MIN": parser.Parser.FUNCTIONS["MIN"],
    "MAX": parser.Parser.FUNCTIONS["MAX"],
    "COUNT_IF": _build_count_if,
    "MAP": parser.build_var_map,
    "COALESCE": parser.Parser.FUNCTIONS["COALESCE"],
    "QUANTILE": _build_quantile,
    "ARG_MAX": _build_binary(exp.ArgMax, "arg_max"),
    "ARG_MIN": _build_binary(exp.ArgMin, "arg_min"),
}

_JOIN_WORDS = {"INNER", "LEFT", "RIGHT", "FULL", "OUTER", "ALL", "ANY", "ASOF", "SEMI", "ANTI"}


class ProtonParser(ClickHouseParser):
    """ClickHouse's parser with Proton's streaming clauses and statements."""

    # `raw:tags[1]`, `a.json:data.id`: Proton's JSON shortcut, read as a variant extract
    COLON_IS_VARIANT_EXTRACT = True

    FUNCTIONS: t.ClassVar = dict(_TYPED_FUNCTIONS)

    FUNCTION_PARSERS: t.ClassVar = {
        k: v
        for k, v in ClickHouseParser.FUNCTION_PARSERS.items()
        if k not in ("QUANTILE", "MEDIAN", "GROUPCONCAT", "ARRAYJOIN")
    } | {"SESSION": lambda self: self._parse_session_call()}

    CREATABLES: t.ClassVar = {*ClickHouseParser.CREATABLES, TokenType.STREAM}
    DB_CREATABLES: t.ClassVar = {*ClickHouseParser.DB_CREATABLES, TokenType.STREAM}
    ALTERABLES: t.ClassVar = {*ClickHouseParser.ALTERABLES, TokenType.STREAM}

    ALTER_PARSERS: t.ClassVar = {
        **ClickHouseParser.ALTER_PARSERS,
        "MODIFY": lambda self: self._parse_alter_modify(),
        "REMOVE": lambda self: self._parse_alter_remove(),
    }

    UNARY_PARSERS: t.ClassVar = {
        **ClickHouseParser.UNARY_PARSERS,
        TokenType.NOT: lambda self: self.expression(exp.Not(this=self._unwrap_predicate(self._parse_equality()))),
    }

    PROPERTY_PARSERS: t.ClassVar = {
        **ClickHouseParser.PROPERTY_PARSERS,
        "INTO": lambda self: self._parse_into_property(),
        "RANDOM": lambda self: self.expression(ProtonRandomProperty()),
        **{
            kind: lambda self: self.expression(ProtonFunctionKindProperty(this=exp.var(self._prev.text.upper())))
            for kind in ("AGGREGATE", "REMOTE")
        },
        **{
            word: lambda self: self.expression(
                ProtonKeywordProperty(this=exp.var(self._prev.text.upper()), value=self._parse_primary())
            )
            for word in ("URL", "AUTH_METHOD", "AUTH_HEADER", "AUTH_KEY", "EXECUTION_TIMEOUT")
        },
    }

    QUERY_MODIFIER_PARSERS: t.ClassVar = {
        **ClickHouseParser.QUERY_MODIFIER_PARSERS,
        TokenType.PARTITION_BY: lambda self: (
            "partition_by",
            self._advance() or self._parse_csv(self._parse_assignment),
        ),
    }

    STATEMENT_PARSERS: t.ClassVar = {
        **ClickHouseParser.STATEMENT_PARSERS,
        TokenType.KILL: lambda self: self._parse_proton_kill(),
        TokenType.TRUNCATE: lambda self: self._parse_proton_truncate(),
    }

    #: leading words of Proton-only statements -> how their operand is parsed
    PROTON_STATEMENTS: t.ClassVar[dict[tuple[str, str], str]] = {
        ("SUBSCRIBE", "TO"): "query",
        ("UNSUBSCRIBE", "TO"): "string",
        ("RECOVER", "FROM"): "string",
    }

    @classmethod
    def _resolve_clickhouse_agg(cls, name: str) -> None:
        # Proton has no ClickHouse combinator suffixes (sumIf, ...) nor `f(params)(args)` forms.
        return None

    # ---- statements ----------------------------------------------------------------------------

    def _parse_statement(self) -> exp.Expr | None:
        token, nxt = self._curr, self._next
        if token and nxt and token.token_type == TokenType.VAR:
            words = (token.text.upper(), nxt.text.upper())
            operand_kind = self.PROTON_STATEMENTS.get(words)
            if operand_kind:
                self._advance(2)
                operand = self._parse_select() if operand_kind == "query" else self._parse_string()
                if operand is None:
                    self.raise_error(f"Expected {operand_kind} after {' '.join(words)}")
                return self.expression(ProtonStatement(this=exp.var(" ".join(words)), expression=operand))
        format_schema = self._parse_format_schema()
        if format_schema is not None:
            return format_schema
        if token and token.token_type in (TokenType.RENAME, TokenType.SHOW):
            rename = self._parse_rename_stream()
            if rename is not None:
                return rename
            return self._parse_as_command(token)
        return super()._parse_statement()

    def _parse_format_schema(self) -> exp.Expr | None:
        index = self._index
        if self._match_text_seq("SHOW", "FORMAT", "SCHEMAS"):
            return self.expression(FormatSchema(action="SHOW"))
        if self._match_text_seq("SHOW", "CREATE", "FORMAT", "SCHEMA"):
            return self.expression(FormatSchema(action="SHOW CREATE", this=self._parse_id_var()))
        if self._match_text_seq("DROP", "FORMAT", "SCHEMA"):
            exists = self._parse_exists()
            return self.expression(FormatSchema(action="DROP", exists=exists, this=self._parse_id_var()))
        if self._match(TokenType.CREATE):
            replace = self._match_pair(TokenType.OR, TokenType.REPLACE)
            if self._match_text_seq("FORMAT", "SCHEMA"):
                name = self._parse_id_var()
                self._match(TokenType.ALIAS)
                definition = self._parse_string()
                kind = self._match_text_seq("TYPE") and self._parse_id_var()
                if name is None or definition is None or not kind:
                    self.raise_error("Expected CREATE FORMAT SCHEMA name AS 'definition' TYPE kind")
                return self.expression(
                    FormatSchema(action="CREATE", this=name, replace=replace, expression=definition, kind=kind)
                )
        self._retreat(index)
        return None

    def _parse_rename_stream(self) -> exp.Expr | None:
        index = self._index
        if not self._match_text_seq("RENAME", "STREAM"):
            return None
        exists = self._parse_exists()
        this = self._parse_table_parts()
        if not self._match_text_seq("TO"):
            self._retreat(index)
            return None
        return self.expression(RenameStream(this=this, to=self._parse_table_parts(), exists=exists))

    def _parse_proton_truncate(self) -> exp.Expr | None:
        if not self._match(TokenType.STREAM):
            return self._parse_truncate_table()
        exists = self._parse_exists()
        return self.expression(TruncateStream(this=self._parse_table_parts(), exists=exists))

    def _parse_stream(self) -> None:
        # sqlglot's `STREAM <table>` source (Snowflake) does not exist in Proton
        return None

    def _parse_alter_modify(self) -> exp.Expr | None:
        if self._match_text_seq("SETTING"):
            settings = self._parse_csv(self._parse_assignment)
            return self.expression(AlterStreamSetting(this=exp.var("MODIFY SETTING"), expressions=settings))
        return self._parse_alter_table_alter()

    def _parse_alter_remove(self) -> exp.Expr | None:
        if self._match_text_seq("TTL"):
            return self.expression(AlterStreamSetting(this=exp.var("REMOVE TTL")))
        return None

    def _parse_proton_kill(self) -> exp.Expr:
        if not self._match_text_seq("QUERY", "WHERE"):
            return self._parse_kill()
        condition = self._parse_assignment()
        mode = self._prev.text.upper() if self._match_texts(("SYNC", "ASYNC", "TEST")) else None
        return self.expression(KillQuery(this=condition, mode=mode))

    def _parse_derived_table_values(self, allow_value_synonym: bool = False) -> exp.Values | None:
        # Rows of ClickHouse/Proton's Values format may come without commas, `VALUES (1) (2)`;
        # sqlglot would read the second row as a table alias with columns and lose it.
        is_derived = self._match_pair(TokenType.L_PAREN, TokenType.VALUES)
        if not is_derived and not (self._match_text_seq("VALUES") or self._match_text_seq("FORMAT", "VALUES")):
            return None
        rows: list[exp.Expr] = []
        while row := self._parse_value():
            rows.append(row)
            if not self._match(TokenType.COMMA) and not self._match(TokenType.L_PAREN, advance=False):
                break
        alias = self._parse_table_alias()
        if is_derived:
            self._match_r_paren()
        return self.expression(exp.Values(expressions=rows, alias=alias or self._parse_table_alias()))

    @staticmethod
    def _unwrap_predicate(this: exp.Expr | None) -> exp.Expr | None:
        # The generator prints NOT over IN/IS as `NOT (x IN ...)`, as ClickHouse's NOT binds
        # tighter; reading that back gives the same tree as `x NOT IN ...`.
        if isinstance(this, exp.Paren) and isinstance(this.this, (exp.In, exp.Is)):
            return this.this
        return this

    # ---- map literals ------------------------------------------------------------------------

    def _parse_bracket(self, this: exp.Expr | None = None) -> exp.Expr | None:
        if not self._match(TokenType.L_BRACE, advance=False):
            return super()._parse_bracket(this)
        # `{'k': 1}` is a map literal; inside it `:` separates key and value, so the JSON
        # shortcut reading of `:` is off. ClickHouse's parser would silently drop the entries of
        # a brace it cannot read as `k: v` pairs; here that is a parse error instead.
        colon_is_json = self.COLON_IS_VARIANT_EXTRACT
        self.COLON_IS_VARIANT_EXTRACT = False
        try:
            bracket = parser.Parser._parse_bracket(self, this)
        finally:
            self.COLON_IS_VARIANT_EXTRACT = colon_is_json  # restored for nested braces too
        if not isinstance(bracket, exp.Struct):
            return bracket
        keys, values = [], []
        for entry in bracket.expressions:
            if not isinstance(entry, exp.PropertyEQ):
                self.raise_error("Expected `key: value` entries in a map literal")
            keys.append(exp.Literal.string(entry.name))
            values.append(entry.expression)
        return self.expression(exp.VarMap(keys=exp.Array(expressions=keys), values=exp.Array(expressions=values)))

    # ---- session windows -------------------------------------------------------------------

    def _parse_session_call(self) -> exp.Anonymous:
        args = self._parse_csv(self._parse_session_arg)
        return self.expression(exp.Anonymous(this="session", expressions=args))

    def _parse_session_arg(self) -> exp.Expr | None:
        # `[a, b)`, `(a, b]`, `[a, b]`, `(a, b)`: start/end predicates with inclusion flags
        if self._curr and self._curr.token_type in (TokenType.L_BRACKET, TokenType.L_PAREN):
            index = self._index
            left_closed = self._curr.token_type == TokenType.L_BRACKET
            self._advance()
            start = self._parse_assignment()
            if start is not None and self._match(TokenType.COMMA):
                end = self._parse_assignment()
                if (
                    end is not None
                    and self._match_set((TokenType.R_BRACKET, TokenType.R_PAREN))
                    and self._curr
                    and self._curr.token_type in (TokenType.COMMA, TokenType.R_PAREN)
                ):
                    right_closed = self._prev.token_type == TokenType.R_BRACKET
                    return self.expression(
                        SessionRange(
                            this=start,
                            expression=end,
                            left_closed=left_closed,
                            right_closed=right_closed,
                        )
                    )
            self._retreat(index)
        return self._parse_lambda()

    # ---- aliases must not swallow Proton clause keywords ---------------------------------------

    def _at_clause_keyword(self) -> bool:
        token = self._curr
        if not token or token.token_type != TokenType.VAR:
            return False
        word = token.text.upper()
        if word == "EMIT":
            return True
        if word in ("LATEST", "SHUFFLE"):
            nxt = self._next
            return bool(nxt and (nxt.token_type == TokenType.JOIN or nxt.text.upper() == "BY"))
        return False

    def _parse_table_alias(self, alias_tokens: t.Collection[TokenType] | None = None) -> exp.TableAlias | None:
        if self._at_clause_keyword():
            return None
        return super()._parse_table_alias(alias_tokens=alias_tokens)

    def _parse_alias(self, this: exp.Expr | None, explicit: bool = False) -> exp.Expr | None:
        if not explicit and self._at_clause_keyword():
            return this
        return super()._parse_alias(this, explicit=explicit)

    # ---- joins -------------------------------------------------------------------------------

    def _parse_join_parts(self) -> tuple[t.Any, t.Any, t.Any]:
        # Proton: [GLOBAL] [INNER|LEFT|RIGHT|FULL] [OUTER|ALL|ANY|ASOF|LATEST|SEMI|ANTI] JOIN.
        # With two words the first goes to `side` and the second to `kind`, so the generator
        # (side, then kind) prints them back in the order Proton documents.
        method = self._prev if self._match_set((TokenType.GLOBAL, TokenType.NATURAL)) else None
        words = []
        while len(words) < 2 and self._curr:
            if self._match_set(self.JOIN_SIDES) or self._match_set(self.JOIN_KINDS):
                words.append(self._prev)
            elif (
                self._curr.text.upper() == "LATEST"
                and self._next
                and (self._next.token_type == TokenType.JOIN or self._next.text.upper() in _JOIN_WORDS)
            ):
                self._advance()
                words.append(self._prev)
            else:
                break
        if len(words) == 2:
            first, second = words
            if second.token_type in self.JOIN_SIDES and first.token_type not in self.JOIN_SIDES:
                first, second = second, first  # `ALL LEFT JOIN` -> side LEFT, kind ALL
            return method, first, second
        if words and words[0].token_type in self.JOIN_SIDES:
            return method, words[0], None
        return method, None, words[0] if words else None

    # ---- EMIT --------------------------------------------------------------------------------

    def _parse_query_modifiers(self, this):  # type: ignore[no-untyped-def]
        this = super()._parse_query_modifiers(this)
        while isinstance(this, exp.Select) and self._parse_proton_modifier(this):
            this = super()._parse_query_modifiers(this)
        return this

    def _parse_proton_modifier(self, select: exp.Select) -> bool:
        """EMIT, SHUFFLE BY, and a second SETTINGS clause; True when one was consumed."""
        token = self._curr
        if token is None:
            return False
        if token.token_type == TokenType.VAR and token.text.upper() == "EMIT" and not select.args.get("emit"):
            self._advance()
            select.set("emit", self._parse_emit())
            return True
        if (
            token.token_type == TokenType.VAR
            and token.text.upper() == "SHUFFLE"
            and not select.args.get("shuffle_by")
            and self._match_text_seq("SHUFFLE", "BY")
        ):
            select.set("shuffle_by", self._parse_csv(self._parse_assignment))
            return True
        if token.token_type == TokenType.SETTINGS and select.args.get("settings"):
            # `... SETTINGS a = 1 SETTINGS b = 2` (SUBSCRIBE adds its own): one list, same meaning
            self._advance()
            for setting in self._parse_csv(self._parse_assignment):
                select.append("settings", setting)
            return True
        return False

    def _parse_emit_interval(self) -> exp.Expr:
        value = self._parse_interval() if self._curr.token_type == TokenType.INTERVAL else None
        value = value or self._parse_bitwise()
        if value is None:
            self.raise_error("Expected an interval")
        return value

    def _parse_emit(self) -> Emit:
        emit = Emit()
        if self._match_texts(("STREAM", "CHANGELOG")):
            emit.set("mode", exp.var(self._prev.text.upper()))
        first = True
        while self._curr:
            connector = not first and self._match(TokenType.AND)
            if not self._parse_emit_part(emit):
                if connector:
                    self._retreat(self._index - 1)
                break
            first = False
        if not any(emit.args.values()):
            self.raise_error("Expected an EMIT policy")
        return emit

    def _parse_emit_part(self, emit: Emit) -> bool:
        if self._match_text_seq("AFTER", "WATERMARK") or self._match_text_seq("AFTER", "WINDOW", "CLOSE"):
            self._set_emit_clause(emit, "after_close", True)
            if self._match_text_seq("WITH", "DELAY") or self._match_text_seq("AND", "DELAY"):
                self._set_emit_clause(emit, "delay", self._parse_emit_interval())
            return True
        if self._match_text_seq("PERIODIC"):
            self._set_emit_clause(emit, "periodic", self._parse_emit_interval())
            if self._match_text_seq("REPEAT"):
                self._set_emit_clause(emit, "repeat", True)
            return True
        if self._match_text_seq("ON", "UPDATE"):
            self._set_emit_clause(emit, "on_update", True)
            if self._match_text_seq("WITH", "BATCH"):
                self._set_emit_clause(emit, "batch", self._parse_emit_interval())
            return True
        if self._match_text_seq("TIMEOUT"):
            self._set_emit_clause(emit, "timeout", self._parse_emit_interval())
            return True
        if self._match_text_seq("LAST"):
            self._set_emit_clause(emit, "last", self._parse_emit_interval())
            if self._match_text_seq("ON", "PROCTIME"):
                self._set_emit_clause(emit, "proctime", True)
            return True
        if self._match_text_seq("PER", "EVENT"):
            self._set_emit_clause(emit, "per_event", True)
            return True
        return False

    def _set_emit_clause(self, emit: Emit, key: str, value: object) -> None:
        if emit.args.get(key):
            self.raise_error(f"EMIT clause {key.upper()} given twice")
        emit.set(key, value)

    # ---- DDL -----------------------------------------------------------------------------------

    def _parse_into_property(self) -> ProtonIntoProperty:
        return self.expression(ProtonIntoProperty(this=self._parse_table_parts()))

    def _parse_value(self, values: bool = True) -> exp.Tuple | None:
        # Keep INSERT ... VALUES rows as written; ClickHouse's parser wraps every value in a tuple.
        return parser.Parser._parse_value(self, values=values)


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _snake_case(name: str) -> str:
    """``toDayOfMonth`` -> ``to_day_of_month``, ``JSONExtractRaw`` -> ``json_extract_raw``."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return name.lower()


def _json_path_part_sql(self: generator.Generator, part: exp.Expr, first: bool) -> str:
    if isinstance(part, exp.JSONPathKey):
        key = part.this if not part.args.get("quoted") else f'"{part.this}"'
        return key if first else f".{key}"
    if isinstance(part, exp.JSONPathSubscript):
        inner = part.this
        text = "*" if isinstance(inner, exp.JSONPathWildcard) else str(inner)
        return f"[{text}]"
    if isinstance(part, exp.JSONPathWildcard):
        return "[*]"
    self.unsupported(f"JSON path part {type(part).__name__} has no Proton shortcut form")
    return ""


def _json_extract_sql(self: ProtonGenerator, expression: exp.JSONExtract) -> str:
    if not expression.args.get("variant_extract"):
        return ClickHouseGenerator.TRANSFORMS[exp.JSONExtract](self, expression)
    path = expression.expression
    parts = [p for p in path.expressions if not isinstance(p, exp.JSONPathRoot)]
    text = "".join(_json_path_part_sql(self, p, i == 0) for i, p in enumerate(parts))
    return f"{self.sql(expression, 'this')}:{text}"


class ProtonGenerator(ClickHouseGenerator):
    """Lower-case snake_case functions and types, shorthand intervals, EMIT per version."""

    #: the after-window-close spelling of this Proton line
    EMIT_AFTER_CLOSE = "AFTER WINDOW CLOSE"

    TYPE_MAPPING: t.ClassVar = {
        **{k: v.lower() for k, v in ClickHouseGenerator.TYPE_MAPPING.items()},
        exp.DType.LOWCARDINALITY: "low_cardinality",
        exp.DType.FIXEDSTRING: "fixed_string",
        exp.DType.TEXT: "string",
        exp.DType.VARCHAR: "string",
        exp.DType.CHAR: "string",
        exp.DType.DATE: "date",
        exp.DType.UUID: "uuid",
        exp.DType.JSON: "json",
        exp.DType.IPV4: "ipv4",
        exp.DType.IPV6: "ipv6",
        exp.DType.INT: "int32",
        exp.DType.BIGINT: "int64",
        exp.DType.SMALLINT: "int16",
        exp.DType.TINYINT: "int8",
    }

    TRANSFORMS: t.ClassVar = {
        **ClickHouseGenerator.TRANSFORMS,
        exp.JSONExtract: _json_extract_sql,
        exp.CountIf: lambda self, e: self.func("count_if", e.this),
        exp.Quantile: lambda self, e: self.func("quantile", e.this, e.args.get("quantile")),
        exp.ArgMax: lambda self, e: self.func("arg_max", e.this, e.expression),
        exp.ArgMin: lambda self, e: self.func("arg_min", e.this, e.expression),
        exp.ApproxDistinct: lambda self, e: self.func("unique", e.this),
        exp.ArrayAgg: lambda self, e: self.func("group_array", e.this),
        exp.AnyValue: lambda self, e: self.func("any", e.this),
        exp.Median: lambda self, e: self.func("median", e.this),
        exp.Lag: lambda self, e: self.func("lag", e.this, e.args.get("offset"), e.args.get("default")),
        exp.Lead: lambda self, e: self.func("lead", e.this, e.args.get("offset"), e.args.get("default")),
        exp.CurrentTimestamp: lambda self, e: self.func("now"),
        exp.If: lambda self, e: self.func("if", e.this, e.args.get("true"), e.args.get("false")),
        exp.Nullif: lambda self, e: self.func("null_if", e.this, e.expression),
        exp.StartsWith: lambda self, e: self.func("starts_with", e.this, e.expression),
        exp.EndsWith: lambda self, e: self.func("ends_with", e.this, e.expression),
        exp.Rand: lambda self, e: self.func("rand"),
        exp.Length: lambda self, e: self.func("length", e.this),
        exp.TimestampTrunc: lambda self, e: self.func(
            "date_trunc", exp.Literal.string(e.text("unit").lower()), e.this, e.args.get("zone")
        ),
        exp.DateTrunc: lambda self, e: self.func(
            "date_trunc", exp.Literal.string(e.text("unit").lower()), e.this, e.args.get("zone")
        ),
        # custom nodes are not in sqlglot's class registry, so they dispatch through TRANSFORMS
        Emit: lambda self, e: self.emit_sql(e),
        ProtonStatement: lambda self, e: self.proton_statement_sql(e),
        SessionRange: lambda self, e: "{}{}, {}{}".format(
            "[" if e.args.get("left_closed") else "(",
            self.sql(e, "this"),
            self.sql(e, "expression"),
            "]" if e.args.get("right_closed") else ")",
        ),
        RenameStream: lambda self, e: "RENAME STREAM {}{} TO {}".format(
            "IF EXISTS " if e.args.get("exists") else "", self.sql(e, "this"), self.sql(e, "to")
        ),
        TruncateStream: lambda self, e: "TRUNCATE STREAM {}{}".format(
            "IF EXISTS " if e.args.get("exists") else "", self.sql(e, "this")
        ),
        AlterStreamSetting: lambda self, e: " ".join(
            filter(None, [self.sql(e, "this"), self.expressions(e, flat=True)])
        ),
        FormatSchema: lambda self, e: self.format_schema_sql(e),
        KillQuery: lambda self, e: " ".join(
            filter(None, ["KILL QUERY WHERE", self.sql(e, "this"), e.args.get("mode")])
        ),
        ProtonIntoProperty: lambda self, e: f"INTO {self.sql(e, 'this')}",
        ProtonRandomProperty: lambda self, e: "RANDOM",
        ProtonFunctionKindProperty: lambda self, e: self.sql(e, "this"),
        ProtonKeywordProperty: lambda self, e: f"{self.sql(e, 'this')} {self.sql(e, 'value')}",
    }

    PROPERTIES_LOCATION: t.ClassVar = {
        **ClickHouseGenerator.PROPERTIES_LOCATION,
        ProtonIntoProperty: exp.Properties.Location.POST_NAME,
        ProtonRandomProperty: exp.Properties.Location.POST_CREATE,
        ProtonFunctionKindProperty: exp.Properties.Location.POST_CREATE,
        ProtonKeywordProperty: exp.Properties.Location.POST_SCHEMA,
    }

    # ---- names -------------------------------------------------------------------------------

    def anonymous_sql(self, expression: exp.Anonymous) -> str:
        # Unmodelled calls keep the name exactly as written (Proton folds case, not underscores),
        # except the streaming table functions, which always print in lower case.
        name = self.sql(expression, "this")
        if name.lower() in TABLE_FUNCTIONS:
            name = name.lower()
        return self.func(name, *expression.expressions, normalize=False)

    def normalize_func(self, name: str) -> str:
        # Typed nodes: Proton registers snake_case names only, so any camelCase name inherited
        # from the ClickHouse generator (toDayOfMonth, arrayDistinct, ...) is snake-cased.
        return _snake_case(name)

    # ---- types -------------------------------------------------------------------------------

    def datatype_sql(self, expression: exp.DataType) -> str:
        dtype = generator.Generator.datatype_sql(self, expression)
        if expression.args.get("nullable") is True:
            return f"nullable({dtype})"
        return dtype

    # ---- intervals ---------------------------------------------------------------------------

    def interval_sql(self, expression: exp.Interval) -> str:
        value = expression.this
        unit = expression.args.get("unit")
        if isinstance(value, exp.Literal) and value.name.isdigit() and isinstance(unit, exp.Var):
            canonical = _UNIT_ALIASES.get(unit.name.upper())
            suffix = _UNIT_TO_SHORTHAND.get(canonical or "")
            if suffix:
                return f"{value.name}{suffix}"
            if canonical:
                return f"INTERVAL {value.name} {canonical}"
        return super().interval_sql(expression)

    def altercolumn_sql(self, expression: exp.AlterColumn) -> str:
        # Proton changes a column's type with ClickHouse's classic MODIFY COLUMN, which is also
        # what the parser reads; `ALTER COLUMN c TYPE t` is newer ClickHouse only.
        dtype = expression.args.get("dtype")
        if dtype is not None and not any(
            expression.args.get(k) for k in ("collate", "using", "allow_null", "drop", "default", "comment")
        ):
            exists = " IF EXISTS" if expression.args.get("exists") else ""
            return f"MODIFY COLUMN{exists} {self.sql(expression, 'this')} {self.sql(dtype)}"
        return super().altercolumn_sql(expression)

    def boolean_sql(self, expression: exp.Boolean) -> str:
        return "true" if expression.this else "false"

    # ---- query shape -------------------------------------------------------------------------

    def query_modifiers(self, expression: exp.Expr, *sqls: str) -> str:
        # Same order as sqlglot's Generator.query_modifiers, plus Proton's PARTITION BY
        # (substreams) between WHERE and GROUP BY, which sqlglot has no slot for.
        limit = expression.args.get("limit")
        partition = self.expressions(expression, key="partition_by", flat=True)
        shuffle = self.expressions(expression, key="shuffle_by", flat=True)
        return csv(
            *sqls,
            *[self.sql(join) for join in expression.args.get("joins") or []],
            self.sql(expression, "match"),
            *[self.sql(lateral) for lateral in expression.args.get("laterals") or []],
            self.sql(expression, "prewhere"),
            self.sql(expression, "where"),
            f"{self.seg('PARTITION BY')} {partition}" if partition else "",
            f"{self.seg('SHUFFLE BY')} {shuffle}" if shuffle else "",
            self.sql(expression, "connect"),
            self.sql(expression, "group"),
            self.sql(expression, "having"),
            *[gen(self, expression) for gen in self.AFTER_HAVING_MODIFIER_TRANSFORMS.values()],
            self.sql(expression, "order"),
            *self.offset_limit_modifiers(expression, isinstance(limit, exp.Fetch), limit),
            *self.after_limit_modifiers(expression),
            self.sql(expression, "for_"),
            self.options_modifier(expression),
            sep="",
        )

    def after_limit_modifiers(self, expression: exp.Expr) -> list[str]:
        emit = expression.args.get("emit")
        emit_sql = f"{self.seg('EMIT')} {self.sql(emit)}" if emit else ""
        return [emit_sql, *super().after_limit_modifiers(expression)]

    def emit_sql(self, expression: Emit) -> str:
        # Grammar order of the 1.6 parser (ParserEmitQuery.cpp), which 3.x keeps:
        #   [STREAM|CHANGELOG] [AFTER ... [WITH DELAY i]] [PERIODIC i [REPEAT]] [ON UPDATE] {AND TIMEOUT i | AND LAST i}
        # The head clauses are separated by spaces only; TIMEOUT and LAST are joined with AND.
        args = expression.args
        head: list[str] = []
        if args.get("after_close"):
            delay = f" WITH DELAY {self.sql(args['delay'])}" if args.get("delay") else ""
            head.append(f"{self.EMIT_AFTER_CLOSE}{delay}")
        if args.get("periodic"):
            head.append(f"PERIODIC {self.sql(args['periodic'])}{' REPEAT' if args.get('repeat') else ''}")
        if args.get("on_update"):
            batch = f" WITH BATCH {self.sql(args['batch'])}" if args.get("batch") else ""
            head.append(f"ON UPDATE{batch}")
        if args.get("per_event"):
            head.append("PER EVENT")
        tail: list[str] = []
        if args.get("timeout"):
            tail.append(f"TIMEOUT {self.sql(args['timeout'])}")
        if args.get("last"):
            tail.append(f"LAST {self.sql(args['last'])}{' ON PROCTIME' if args.get('proctime') else ''}")
        policy = " AND ".join([" ".join(head), *tail] if head else tail)
        return " ".join(part for part in (self.sql(expression, "mode"), policy) if part)

    def format_schema_sql(self, expression: FormatSchema) -> str:
        action = expression.args["action"]
        if action == "SHOW":
            return "SHOW FORMAT SCHEMAS"
        name = self.sql(expression, "this")
        if action == "CREATE":
            replace = " OR REPLACE" if expression.args.get("replace") else ""
            definition = self.sql(expression, "expression")
            return f"CREATE{replace} FORMAT SCHEMA {name} AS {definition} TYPE {self.sql(expression, 'kind')}"
        exists = " IF EXISTS" if expression.args.get("exists") else ""
        return f"{action} FORMAT SCHEMA{exists} {name}"

    def proton_statement_sql(self, expression: ProtonStatement) -> str:
        return f"{self.sql(expression, 'this')} {self.sql(expression, 'expression')}"


class Proton(ClickHouse):
    """Timeplus Proton 3.x (``EMIT AFTER WINDOW CLOSE``)."""

    # sqlglot parses and generates by recursion; input nested deeper than Python's stack allows
    # must end in a sqlglot error, not a RecursionError.
    def parse(self, sql: str, **opts: t.Any) -> list[exp.Expr | None]:
        try:
            return super().parse(sql, **opts)
        except RecursionError:
            raise ParseError("Proton SQL nested too deeply to parse") from None

    def parse_into(self, expression_type: t.Any, sql: str, **opts: t.Any) -> list[exp.Expr | None]:
        try:
            return super().parse_into(expression_type, sql, **opts)
        except RecursionError:
            raise ParseError("Proton SQL nested too deeply to parse") from None

    def generate(self, expression: exp.Expr, copy: bool = True, **opts: t.Any) -> str:
        try:
            return super().generate(expression, copy=copy, **opts)
        except RecursionError:
            raise SqlglotError("expression nested too deeply to generate Proton SQL") from None

    NORMALIZE_FUNCTIONS: bool | str = "lower"
    # Type names sqlglot does not know (`datetime32`, ...) are kept as written instead of failing.
    SUPPORTS_USER_DEFINED_TYPES = True

    Tokenizer = ProtonTokenizer
    Parser = ProtonParser
    Generator = ProtonGenerator


class Proton16Generator(ProtonGenerator):
    """Proton 1.5/1.6 spelling: ``EMIT AFTER WATERMARK [WITH DELAY i]``."""

    EMIT_AFTER_CLOSE = "AFTER WATERMARK"

    def emit_sql(self, expression: Emit) -> str:
        for arg, clause in (("batch", "ON UPDATE WITH BATCH"), ("per_event", "PER EVENT")):
            if expression.args.get(arg):
                self.unsupported(f"EMIT {clause} is Proton 3.x syntax; Proton 1.6 rejects it")
        return super().emit_sql(expression)


class Proton16(Proton):
    """Timeplus Proton 1.5/1.6; differs from ``Proton`` only in the EMIT spelling."""

    Tokenizer = ProtonTokenizer
    Parser = ProtonParser
    Generator = Proton16Generator
