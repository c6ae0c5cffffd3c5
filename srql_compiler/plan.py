"""The logical plan: what an SRQL query means, independent of any SQL dialect.

The binder produces a :class:`Plan`; the SQL emitters (Proton, ClickHouse, DuckDB) and the embedded
engine (``streams.engine``) consume it. Expressions are a small closed set of frozen dataclasses, all
bound: every :class:`Col` names a canonical catalog field and carries its type.

Time values are ``datetime`` (aware, UTC) and durations are ``timedelta``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, Union

from streams.types import ColumnType

# ---------------------------------------------------------------------------------------------------
# Expressions


@dataclass(frozen=True)
class Col:
    """A catalog field of one source of the query (``source`` is the source's alias)."""

    name: str
    source: str
    type: ColumnType


@dataclass(frozen=True)
class Lit:
    """A constant: str, int, float, bool, None, datetime (UTC) or timedelta (``type`` None for the last three)."""

    value: object
    type: ColumnType | None = None


@dataclass(frozen=True)
class Months:
    """A calendar-month interval (``FROM LAST 3 MONTHS``), used as the right side of ``Arith``."""

    n: int


@dataclass(frozen=True)
class Now:
    """The current time when the query runs (``now64(3, 'UTC')``)."""


@dataclass(frozen=True)
class StartOfDay:
    """Midnight UTC of the current day plus ``days`` (TODAY = 0, YESTERDAY = -1)."""

    days: int = 0


@dataclass(frozen=True)
class Arith:
    """``left op right`` with op in ``+ - * /`` (time minus a duration included)."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Func:
    """A scalar function of SRQL: ``date`` (a time truncated to its day), ``lower``, ``upper``, ``length``."""

    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Cmp:
    """A comparison; op is one of ``= != < <= > >=``."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


@dataclass(frozen=True)
class InList:
    expr: Expr
    values: tuple[Lit, ...]
    negated: bool = False


@dataclass(frozen=True)
class Between:
    expr: Expr
    low: Expr
    high: Expr


@dataclass(frozen=True)
class IsNull:
    expr: Expr
    negated: bool = False


@dataclass(frozen=True)
class Contains:
    """Substring test (SRQL ``CONTAINS``), case-sensitive."""

    expr: Expr
    needle: str


@dataclass(frozen=True)
class Like:
    """SQL ``LIKE`` with ``%`` and ``_`` wildcards."""

    expr: Expr
    pattern: str
    negated: bool = False


@dataclass(frozen=True)
class InCidr:
    """The address in ``expr`` lies in one of the CIDR prefixes (IPv4 or IPv6)."""

    expr: Expr
    prefixes: tuple[str, ...]
    negated: bool = False


@dataclass(frozen=True)
class MeasureRef:
    """A reference to an aggregate's output, by its name (in HAVING and ORDER BY)."""

    name: str
    type: ColumnType


@dataclass(frozen=True)
class WindowBound:
    """``window_start`` or ``window_end`` of the current window (usable in ORDER BY and projections)."""

    which: Literal["window_start", "window_end"]


Expr = Union[  # noqa: UP007 - a runtime alias used with isinstance-based dispatch
    Col, Lit, Months, Now, StartOfDay, Arith, Func, Cmp, And, Or, Not, InList, Between, IsNull, Contains, Like, InCidr,
    MeasureRef, WindowBound,
]

# ---------------------------------------------------------------------------------------------------
# Query shape

AggFunc = Literal[
    "count", "count_distinct", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99", "first", "last"
]
QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


@dataclass(frozen=True)
class Source:
    """One input of the query: a catalog entity under an alias."""

    entity: str
    stream: str
    alias: str
    event_time: str
    inventory: bool = False
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Window:
    """Tumble (``size``), hop (``size`` every ``step``) or session (closes after ``size`` of silence per group).

    ``delay`` is the allowed lateness: a window is emitted once the watermark (max event time seen minus
    ``delay``) passes its end.
    """

    kind: Literal["tumble", "hop", "session"]
    size: timedelta
    step: timedelta | None = None
    delay: timedelta = timedelta(0)


@dataclass(frozen=True)
class Join:
    """``lookup``: enrichment with the latest inventory row per key; ``interval``: stream ⋈ stream WITHIN."""

    kind: Literal["lookup", "interval"]
    right: Source
    on: tuple[tuple[Col, Col], ...]  # equi-join pairs (left column, right column)
    within: timedelta | None = None


@dataclass(frozen=True)
class Aggregate:
    """``func(arg)`` over the group's rows (where ``filter`` holds, if any), output as ``name``."""

    name: str
    func: AggFunc
    arg: Expr | None
    type: ColumnType
    filter: Expr | None = None


@dataclass(frozen=True)
class OrderKey:
    expr: Expr
    desc: bool = False


@dataclass(frozen=True)
class Emit:
    """When results leave a streaming query."""

    mode: Literal["on_close", "periodic", "on_update"]
    interval: timedelta | None = None


@dataclass(frozen=True)
class OutputColumn:
    name: str
    type: ColumnType


@dataclass(frozen=True)
class Plan:
    """A bound SRQL query.

    Evaluation order, as in SQL: sources (and join) → ``time_range`` and ``where`` filters → grouping by
    ``window`` and ``group_by`` → ``aggregates`` → ``having`` → ``order_by`` / ``limit`` (per window when
    windowed) → ``columns``. Without aggregates, ``projection`` (or every field of the source) is output.
    """

    statement: Literal["stream", "show", "count"]
    source: Source
    columns: tuple[OutputColumn, ...]
    join: Join | None = None
    time_range: Expr | None = None
    where: Expr | None = None
    group_by: tuple[Col, ...] = ()
    window: Window | None = None
    aggregates: tuple[Aggregate, ...] = ()
    having: Expr | None = None
    order_by: tuple[OrderKey, ...] = ()
    limit: int | None = None
    emit: Emit | None = None
    projection: tuple[tuple[str, Expr], ...] | None = None
    distinct: bool = False
    latest: bool = False
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_aggregate(self) -> bool:
        return bool(self.aggregates) or bool(self.group_by) or self.window is not None

    @property
    def top_n_per_window(self) -> bool:
        """ORDER BY ... LIMIT on a windowed aggregation: the first ``limit`` rows of each window."""
        return self.window is not None and self.limit is not None
