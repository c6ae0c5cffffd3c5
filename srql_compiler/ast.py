"""The unbound syntax tree of an SRQL statement, with source spans for diagnostics.

Every node has ``span = (start, end)``: character offsets into the query text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

Span = tuple[int, int]


@dataclass(frozen=True)
class Node:
    span: Span = field(default=(0, 0), compare=False, kw_only=True)


@dataclass(frozen=True)
class Name(Node):
    """A column (``device``) or qualified column (``logs.device``)."""

    parts: tuple[str, ...]

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Literal(Node):
    """kind: string, number, bool, null, duration, today, yesterday, now."""

    value: object
    kind: str


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]
    star: bool = False


@dataclass(frozen=True)
class BinOp(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Neg(Node):
    item: Node


@dataclass(frozen=True)
class Compare(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class BoolOp(Node):
    op: str  # "and" | "or"
    items: tuple[Node, ...]


@dataclass(frozen=True)
class NotOp(Node):
    item: Node


@dataclass(frozen=True)
class Predicate(Node):
    """CONTAINS / LIKE / IN list / IN cidr / BETWEEN / IS NULL, optionally negated."""

    kind: str
    expr: Node
    args: tuple[Node, ...]
    negated: bool = False


@dataclass(frozen=True)
class EntityRef(Node):
    name: str
    alias: str | None = None


@dataclass(frozen=True)
class HeadItem(Node):
    expr: Node | None  # None for *
    alias: str | None = None


@dataclass(frozen=True)
class JoinClause(Node):
    entity: EntityRef
    on: Node
    within: timedelta | None = None


@dataclass(frozen=True)
class TimeRange(Node):
    """kind: today, yesterday, last (amount+unit), between (two strings), since (duration)."""

    kind: str
    args: tuple[object, ...] = ()


@dataclass(frozen=True)
class WindowClause(Node):
    kind: str
    size: timedelta
    step: timedelta | None = None
    delay: timedelta | None = None


@dataclass(frozen=True)
class OrderItem(Node):
    expr: Node
    desc: bool = False


@dataclass(frozen=True)
class EmitClause(Node):
    mode: str
    interval: timedelta | None = None


@dataclass(frozen=True)
class Statement(Node):
    """A whole SRQL statement. ``entity`` is None until the head is resolved (``SHOW x FROM e``)."""

    kind: str  # show | count | stream
    entity: EntityRef
    items: tuple[HeadItem, ...] = ()  # explicit projection; empty = every field / measures
    distinct: bool = False
    join: JoinClause | None = None
    time_range: TimeRange | None = None
    where: Node | None = None
    group_by: tuple[Node, ...] = ()
    window: WindowClause | None = None
    having: Node | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    latest: bool = False
    emit: EmitClause | None = None
    text: str = ""
