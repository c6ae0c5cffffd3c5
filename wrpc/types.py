"""The WIT type model used by the codec, and a parser for WIT type expressions.

A type expression is the text of a WIT type, e.g. ``"list<tuple<u8, string>>"`` or
``"result<_, string>"``. Named types (records, variants, ...) come from a loaded WIT package
(:mod:`wrpc.wit`) and are looked up in a ``types`` mapping. For tests and ad-hoc use the
expression language also accepts anonymous inline definitions, which WIT itself only allows at
the top level of an interface::

    record { keys: list<string>, cursor: option<string> }
    enum { red, green, blue }
    variant { no-such-store, access-denied, other(string) }
    flags { read, write, exec }
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

PRIMITIVES = frozenset(["bool", "u8", "s8", "u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64", "char", "string"])

#: Nesting deeper than this is refused when parsing an expression (no real interface needs it,
#: and a hostile expression must not exhaust the Python stack).
MAX_TYPE_DEPTH = 64


class WitTypeError(ValueError):
    """A type expression or WIT type graph that cannot be used."""


class Type:
    """Base class of all WIT types. Instances are immutable and hashable."""

    __slots__ = ()

    def children(self) -> tuple[Type, ...]:
        """Direct component types (used for walks such as :func:`has_async`)."""
        return ()


def _cache_hash(cls: type) -> type:
    """Remember each instance's hash: types key the codec caches, and nested ones are costly to hash."""
    raw = cls.__hash__

    def __hash__(self: Type) -> int:
        d = self.__dict__
        h = d.get("_hash")
        if h is None:
            h = d["_hash"] = raw(self)
        return h

    cls.__hash__ = __hash__  # type: ignore[method-assign,assignment]
    return cls


@_cache_hash
@dataclass(frozen=True)
class Prim(Type):
    """A primitive: bool, integers, floats, char, string."""

    name: str

    def __str__(self) -> str:
        return self.name


@_cache_hash
@dataclass(frozen=True)
class ListT(Type):
    """``list<T>``."""

    elem: Type

    def children(self) -> tuple[Type, ...]:
        return (self.elem,)

    def __str__(self) -> str:
        return f"list<{self.elem}>"


@_cache_hash
@dataclass(frozen=True)
class OptionT(Type):
    """``option<T>``."""

    inner: Type

    def children(self) -> tuple[Type, ...]:
        return (self.inner,)

    def __str__(self) -> str:
        return f"option<{self.inner}>"


@_cache_hash
@dataclass(frozen=True)
class ResultT(Type):
    """``result<T, E>``; ``None`` stands for an absent payload (``_``)."""

    ok: Type | None
    err: Type | None

    def children(self) -> tuple[Type, ...]:
        return tuple(t for t in (self.ok, self.err) if t is not None)

    def __str__(self) -> str:
        if self.ok is None and self.err is None:
            return "result"
        if self.err is None:
            return f"result<{self.ok}>"
        return f"result<{self.ok if self.ok is not None else '_'}, {self.err}>"


@_cache_hash
@dataclass(frozen=True)
class TupleT(Type):
    """``tuple<A, B, ...>`` (also used for parameter lists)."""

    elems: tuple[Type, ...]

    def children(self) -> tuple[Type, ...]:
        return self.elems

    def __str__(self) -> str:
        return f"tuple<{', '.join(map(str, self.elems))}>"


@_cache_hash
@dataclass(frozen=True)
class RecordT(Type):
    """A record: fields in declaration order. ``name`` is informational."""

    fields: tuple[tuple[str, Type], ...]
    name: str | None = field(default=None, compare=False)

    def children(self) -> tuple[Type, ...]:
        return tuple(t for _, t in self.fields)

    def __str__(self) -> str:
        return self.name or "record { " + ", ".join(f"{n}: {t}" for n, t in self.fields) + " }"


@_cache_hash
@dataclass(frozen=True)
class VariantT(Type):
    """A variant: cases in declaration order, each with an optional payload type."""

    cases: tuple[tuple[str, Type | None], ...]
    name: str | None = field(default=None, compare=False)

    def children(self) -> tuple[Type, ...]:
        return tuple(t for _, t in self.cases if t is not None)

    def __str__(self) -> str:
        inner = ", ".join(n if t is None else f"{n}({t})" for n, t in self.cases)
        return self.name or f"variant {{ {inner} }}"


@_cache_hash
@dataclass(frozen=True)
class EnumT(Type):
    """An enum: case names in declaration order."""

    cases: tuple[str, ...]
    name: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return self.name or "enum { " + ", ".join(self.cases) + " }"


@_cache_hash
@dataclass(frozen=True)
class FlagsT(Type):
    """Flags: member names; member ``i`` is bit ``i % 8`` of byte ``i // 8``."""

    names: tuple[str, ...]
    name: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return self.name or "flags { " + ", ".join(self.names) + " }"


@_cache_hash
@dataclass(frozen=True)
class HandleT(Type):
    """``own<R>`` / ``borrow<R>``: opaque handle bytes on the wire."""

    kind: str  # "own" | "borrow"
    resource: str

    def __str__(self) -> str:
        return f"{self.kind}<{self.resource}>"


@_cache_hash
@dataclass(frozen=True)
class FutureT(Type):
    """``future<T>`` (``inner`` is ``None`` for a bare ``future``)."""

    inner: Type | None

    def children(self) -> tuple[Type, ...]:
        return () if self.inner is None else (self.inner,)

    def __str__(self) -> str:
        return "future" if self.inner is None else f"future<{self.inner}>"


@_cache_hash
@dataclass(frozen=True)
class StreamT(Type):
    """``stream<T>`` (``inner`` is ``None`` for a bare ``stream``)."""

    inner: Type | None

    def children(self) -> tuple[Type, ...]:
        return () if self.inner is None else (self.inner,)

    def __str__(self) -> str:
        return "stream" if self.inner is None else f"stream<{self.inner}>"


@cache
def has_async(t: Type | None) -> bool:
    """True when ``t`` contains a ``future`` or ``stream`` anywhere."""
    if t is None:
        return False
    if isinstance(t, FutureT | StreamT):
        return True
    return any(has_async(c) for c in t.children())


# ---------------------------------------------------------------------------------------------
# Type expression parser
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(%?[a-zA-Z][a-zA-Z0-9-]*(?::[a-zA-Z0-9-]+/[a-zA-Z0-9-]+)?)|([<>,(){}:_]))")


def _tokenize(text: str) -> list[str]:
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise WitTypeError(f"unexpected character {text[pos]!r} at offset {pos} in {text!r}")
        out.append(m.group(1) or m.group(2))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class _Parser:
    def __init__(self, text: str, types: Mapping[str, Type]):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.types = types

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> str:
        tok = self.peek()
        if tok is None:
            raise WitTypeError(f"unexpected end of type expression {self.text!r}")
        self.i += 1
        return tok

    def expect(self, tok: str) -> None:
        got = self.next()
        if got != tok:
            raise WitTypeError(f"expected {tok!r} but found {got!r} in {self.text!r}")

    def ident(self) -> str:
        tok = self.next()
        if not tok[0].isalpha() and tok[0] != "%":
            raise WitTypeError(f"expected a name but found {tok!r} in {self.text!r}")
        return tok.lstrip("%")

    def args(self, depth: int) -> list[Type | None]:
        self.expect("<")
        out: list[Type | None] = []
        while True:
            if self.peek() == "_":
                self.next()
                out.append(None)
            else:
                out.append(self.type(depth + 1))
            tok = self.next()
            if tok == ">":
                return out
            if tok != ",":
                raise WitTypeError(f"expected ',' or '>' but found {tok!r} in {self.text!r}")

    def braced(self, item) -> list:
        self.expect("{")
        out = []
        while self.peek() != "}":
            out.append(item())
            if self.peek() == ",":
                self.next()
            elif self.peek() != "}":
                raise WitTypeError(f"expected ',' or '}}' in {self.text!r}")
        self.next()
        return out

    def type(self, depth: int = 0) -> Type:
        if depth > MAX_TYPE_DEPTH:
            raise WitTypeError(f"type expression nested deeper than {MAX_TYPE_DEPTH}")
        tok = self.next()
        if tok in PRIMITIVES:
            return Prim(tok)
        one = {"list": ListT, "option": OptionT}
        if tok in one:
            a = self.args(depth)
            if len(a) != 1 or a[0] is None:
                raise WitTypeError(f"{tok}<...> takes exactly one type in {self.text!r}")
            return one[tok](a[0])
        if tok == "result":
            if self.peek() != "<":
                return ResultT(None, None)
            a = self.args(depth)
            if len(a) > 2:
                raise WitTypeError(f"result<...> takes at most two types in {self.text!r}")
            return ResultT(a[0], a[1] if len(a) == 2 else None)
        if tok == "tuple":
            if self.toks[self.i : self.i + 2] == ["<", ">"]:  # the empty tuple (parameter lists)
                self.i += 2
                return TupleT(())
            a = self.args(depth)
            if any(x is None for x in a):
                raise WitTypeError(f"'_' is only allowed in result<...>: {self.text!r}")
            return TupleT(tuple(a))  # type: ignore[arg-type]
        if tok in ("future", "stream"):
            cls = FutureT if tok == "future" else StreamT
            if self.peek() != "<":
                return cls(None)
            a = self.args(depth)
            if len(a) != 1 or a[0] is None:
                raise WitTypeError(f"{tok}<...> takes one type in {self.text!r}")
            return cls(a[0])
        if tok in ("own", "borrow"):
            self.expect("<")
            name = self.ident()
            self.expect(">")
            return HandleT(tok, name)
        if tok == "record" and self.peek() == "{":
            return RecordT(tuple(self.braced(lambda: self.field(depth))))
        if tok == "enum" and self.peek() == "{":
            return EnumT(tuple(self.braced(self.ident)))
        if tok == "flags" and self.peek() == "{":
            return FlagsT(tuple(self.braced(self.ident)))
        if tok == "variant" and self.peek() == "{":
            return VariantT(tuple(self.braced(lambda: self.case(depth))))
        name = tok.lstrip("%")
        if name in self.types:
            return self.types[name]
        raise WitTypeError(f"unknown type {name!r} in {self.text!r}")

    def field(self, depth: int) -> tuple[str, Type]:
        name = self.ident()
        self.expect(":")
        return name, self.type(depth + 1)

    def case(self, depth: int) -> tuple[str, Type | None]:
        name = self.ident()
        if self.peek() == "(":
            self.next()
            t = self.type(depth + 1)
            self.expect(")")
            return name, t
        return name, None


def parse_type(text: str | Type, types: Mapping[str, Type] | None = None) -> Type:
    """Parse a WIT type expression (or return a :class:`Type` unchanged).

    ``types`` maps the names of named types (``"batch"``, ``"status"``) to their definitions,
    e.g. ``wrpc.wit.load(...).types``.
    """
    if isinstance(text, Type):
        return text
    if not isinstance(text, str):
        raise WitTypeError(f"a WIT type must be a string or wrpc Type, not {type(text).__name__}")
    p = _Parser(text, types or {})
    t = p.type()
    if p.peek() is not None:
        raise WitTypeError(f"trailing text {p.peek()!r} after type in {text!r}")
    return t


def check_definition(t: Type) -> None:
    """Reject definitions the codec cannot carry (duplicate names, empty variants/enums)."""
    if isinstance(t, RecordT | VariantT | EnumT | FlagsT):
        names = (
            [n for n, _ in t.fields]
            if isinstance(t, RecordT)
            else [n for n, _ in t.cases]
            if isinstance(t, VariantT)
            else list(t.cases if isinstance(t, EnumT) else t.names)
        )
        if len(set(names)) != len(names):
            raise WitTypeError(f"duplicate names in {t}")
        if isinstance(t, VariantT | EnumT) and not names:
            raise WitTypeError(f"{t} has no cases")


def describe(t: Any) -> str:
    """Readable text of a type for error messages."""
    return str(t)
