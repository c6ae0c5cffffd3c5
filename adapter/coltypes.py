"""Proton column types: parse the type strings of the native protocol and map them to Arrow.

Proton spells types in lower case (``nullable(string)``, ``low_cardinality(string)``,
``datetime64(3, 'UTC')``, ``map(string, string)``, specs/proton.md §4.4). We also accept the
ClickHouse CamelCase spellings on input, because a Proton client converts by column name and may
echo either; the header we send always uses Proton spellings (a Proton client rejects CamelCase).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa


class TypeError_(ValueError):
    """A type string we cannot parse or do not support (Proton error UNKNOWN_TYPE)."""


@dataclass(frozen=True)
class PType:
    """A parsed column type: ``name`` plus type arguments (``args``) and literal parameters (``params``)."""

    name: str
    args: tuple[PType, ...] = ()
    params: tuple[str, ...] = ()

    def __str__(self) -> str:
        inner = [str(a) for a in self.args] + list(self.params)
        return f"{self.name}({', '.join(inner)})" if inner else self.name


# fixed-width numeric types: name -> NumPy dtype (little endian on the wire)
FIXED = {
    "int8": "<i1", "int16": "<i2", "int32": "<i4", "int64": "<i8",
    "uint8": "<u1", "uint16": "<u2", "uint32": "<u4", "uint64": "<u8",
    "float32": "<f4", "float64": "<f8",
}  # fmt: skip
_ALIASES = {
    "lowcardinality": "low_cardinality", "fixedstring": "fixed_string", "boolean": "bool",
    "datetime64": "datetime64", "datetime": "datetime", "date32": "date32",
}  # fmt: skip
_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<num>-?\d+)|(?P<str>'(?:[^'\\]|\\.)*')|(?P<p>[(),]))")
_MAX_DEPTH = 16  # a hostile type string cannot make us recurse without bound


def parse_type(text: str) -> PType:
    """Parse one type string; raises :class:`TypeError_` with the reason."""
    if len(text) > 4096:
        raise TypeError_("type string longer than 4096 characters")
    tokens = _tokens(text)
    t, pos = _parse(tokens, 0, 0)
    if pos != len(tokens):
        raise TypeError_(f"unexpected {tokens[pos][1]!r} after the type in {text!r}")
    _check(t, text)
    return t


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise TypeError_(f"cannot parse type {text!r} at offset {pos}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _parse(tokens: list[tuple[str, str]], pos: int, depth: int) -> tuple[PType, int]:
    if depth > _MAX_DEPTH:
        raise TypeError_("type nested too deeply")
    if pos >= len(tokens) or tokens[pos][0] != "name":
        raise TypeError_("expected a type name")
    raw = tokens[pos][1]
    name = _ALIASES.get(raw.lower(), raw.lower())
    pos += 1
    args: list[PType] = []
    params: list[str] = []
    if pos < len(tokens) and tokens[pos][1] == "(":
        pos += 1
        while True:
            kind, val = tokens[pos] if pos < len(tokens) else ("", "")
            if kind in ("num", "str"):
                params.append(val)
                pos += 1
            else:
                arg, pos = _parse(tokens, pos, depth + 1)
                args.append(arg)
            sep = tokens[pos][1] if pos < len(tokens) else ""
            pos += 1
            if sep == ")":
                break
            if sep != ",":
                raise TypeError_("expected ',' or ')' in type arguments")
    return PType(name, tuple(args), tuple(params)), pos


_ARITY = {"nullable": 1, "low_cardinality": 1, "array": 1, "map": 2}


def _check(t: PType, text: str) -> None:
    n = _ARITY.get(t.name)
    if n is not None:
        if len(t.args) != n or t.params:
            raise TypeError_(f"{t.name} takes {n} type argument(s) in {text!r}")
    elif t.name in FIXED or t.name in ("string", "bool", "date", "date32", "uuid", "ipv4", "ipv6"):
        if t.args or t.params:
            raise TypeError_(f"{t.name} takes no arguments in {text!r}")
    elif t.name == "fixed_string":
        if len(t.params) != 1 or not t.params[0].isdigit() or not 0 < int(t.params[0]) <= 1 << 20:
            raise TypeError_(f"fixed_string needs a length 1..1048576 in {text!r}")
    elif t.name == "datetime":
        if t.args or len(t.params) > 1 or (t.params and not t.params[0].startswith("'")):
            raise TypeError_(f"datetime takes an optional time zone in {text!r}")
    elif t.name == "datetime64":
        if t.args or not 1 <= len(t.params) <= 2 or not t.params[0].isdigit() or int(t.params[0]) > 9:
            raise TypeError_(f"datetime64 needs a precision 0..9 and an optional time zone in {text!r}")
    else:
        raise TypeError_(f"unsupported column type {t.name!r} in {text!r}")
    if t.name == "low_cardinality" and t.args[0].name not in ("string", "fixed_string", "nullable", *FIXED):
        raise TypeError_(f"low_cardinality of {t.args[0]} is not supported")
    if t.name == "nullable" and t.args[0].name in ("nullable", "array", "map", "low_cardinality"):
        raise TypeError_(f"nullable cannot wrap {t.args[0].name}")
    for a in t.args:
        _check(a, text)


def timezone(t: PType) -> str | None:
    """The time zone of a datetime/datetime64 type, unquoted (None when the type has none)."""
    quoted = [p for p in t.params if p.startswith("'")]
    return quoted[0][1:-1] if quoted else None


def arrow_type(t: PType) -> pa.DataType:
    """The Arrow type a decoded column of ``t`` has (low_cardinality is materialised)."""
    if t.name in FIXED:
        return pa.from_numpy_dtype(FIXED[t.name])
    simple = {"string": pa.string(), "bool": pa.bool_(), "date": pa.date32(), "date32": pa.date32(),
              "uuid": pa.binary(16), "ipv6": pa.binary(16), "ipv4": pa.uint32()}  # fmt: skip
    if t.name in simple:
        return simple[t.name]
    if t.name == "fixed_string":
        return pa.binary(int(t.params[0]))
    if t.name == "datetime":
        return pa.timestamp("s", tz=timezone(t))
    if t.name == "datetime64":
        return pa.timestamp(_unit(int(t.params[0])), tz=timezone(t))
    if t.name in ("nullable", "low_cardinality"):
        return arrow_type(t.args[0])
    if t.name == "array":
        return pa.list_(arrow_type(t.args[0]))
    return pa.map_(arrow_type(t.args[0]), arrow_type(t.args[1]))


def _unit(precision: int) -> str:
    return "s" if precision == 0 else "ms" if precision <= 3 else "us" if precision <= 6 else "ns"
