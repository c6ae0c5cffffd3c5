"""Straight-line encoders for records, tuples and lists of them, generated as Python source.

The mirror of :mod:`wrpc._fastdec`: strings, bools, unsigned integers and enums are written inline,
so encoding a list of records costs no closure call per field. Other field types call the regular
compiled encoder. Error messages match the closures' (``EncodeError`` naming the problem).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from wrpc.types import EnumT, ListT, Prim, RecordT, TupleT, Type

_UINT_MAX = {"u8": 0xFF, "u16": 0xFFFF, "u32": 0xFFFFFFFF, "u64": (1 << 64) - 1}


def _as_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{name} needs an int, got {type(v).__name__}")
    return int(v)


class _Gen:
    def __init__(self, fallback: Callable[[Type], Any], getter: Callable[[str], Any]) -> None:
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        self.n = 0
        self.fallback = fallback
        self.getter = getter

    def var(self) -> str:
        self.n += 1
        return f"a{self.n}"

    def const(self, value: Any) -> str:
        name = f"c{len(self.consts)}"
        self.consts[name] = value
        return name

    def emit(self, line: str, ind: int) -> None:
        self.lines.append("    " * ind + line)

    def uleb(self, expr: str, ind: int) -> None:
        self.emit(f"if {expr} < 0x80:", ind)
        self.emit(f"out.append({expr})", ind + 1)
        self.emit("else:", ind)
        self.emit(f"put_uleb(out, {expr})", ind + 1)

    def value(self, t: Type, a: str, ind: int) -> None:
        if t == Prim("string"):
            b = self.var()
            self.emit(
                f"if type({a}) is not str: raise EncodeError('string needs a str, got ' + type({a}).__name__)", ind
            )
            self.emit(f"{b} = {a}.encode('utf-8')", ind)
            self.uleb(f"len({b})", ind)
            self.emit(f"out += {b}", ind)
        elif t == Prim("bool"):
            self.emit(f"if {a} is True: out.append(1)", ind)
            self.emit(f"elif {a} is False: out.append(0)", ind)
            self.emit(f"else: raise EncodeError('bool needs True/False, got ' + type({a}).__name__)", ind)
        elif isinstance(t, Prim) and t.name in _UINT_MAX:
            hi = _UINT_MAX[t.name]
            self.emit(f"if type({a}) is not int: {a} = as_int({a}, {t.name!r})", ind)
            self.emit(f"if not 0 <= {a} <= {hi}: raise EncodeError('%d is out of range for {t.name}' % {a})", ind)
            if t.name == "u8":
                self.emit(f"out.append({a})", ind)
            else:
                self.uleb(a, ind)
        elif isinstance(t, EnumT):
            idx = self.const({c: i for i, c in enumerate(t.cases)})
            i = self.var()
            self.emit(f"{i} = {idx}.get({a}) if isinstance({a}, str) else None", ind)
            self.emit(f"if {i} is None: raise EncodeError('%r is not a case of {t}' % ({a},))", ind)
            self.uleb(i, ind)
        elif isinstance(t, RecordT):
            parts = [(n, ft, self.var()) for n, ft in t.fields]
            self.emit(f"if type({a}) is dict:", ind)
            for n, _, v in parts:
                self.emit(f"{v} = {a}[{n!r}]", ind + 1)
            self.emit("else:", ind)
            for n, _, v in parts:
                self.emit(f"{v} = {self.const(self.getter(n))}({a})", ind + 1)
            for _, ft, v in parts:
                self.value(ft, v, ind)
        elif isinstance(t, TupleT):
            self.emit(f"if not isinstance({a}, (tuple, list)) or len({a}) != {len(t.elems)}:", ind)
            self.emit(f"raise EncodeError('{t} needs a {len(t.elems)}-tuple, got %r' % ({a},))", ind + 1)
            for k, et in enumerate(t.elems):
                v = self.var()
                self.emit(f"{v} = {a}[{k}]", ind)
                self.value(et, v, ind)
        elif isinstance(t, ListT) and isinstance(t.elem, RecordT | TupleT):
            self.emit(f"if isinstance({a}, (str, bytes, Mapping)) or not hasattr({a}, '__len__'):", ind)
            self.emit(f"raise EncodeError('{t} needs a sequence, got ' + type({a}).__name__)", ind + 1)
            self.uleb(f"len({a})", ind)
            e = self.var()
            self.emit(f"for {e} in {a}:", ind)
            self.value(t.elem, e, ind + 1)
        else:
            self.emit(f"{self.const(self.fallback(t))}({a}, out)", ind)


def straight_line_encoder(t: Type, fallback: Callable[[Type], Any], getter: Callable[[str], Any], env: dict) -> Any:
    """Compile ``t``'s encoder ``f(value, out: bytearray)`` with primitives inlined."""
    g = _Gen(fallback, getter)
    g.value(t, "v", 2)
    src = (
        "def encode(v, out):\n"
        "    try:\n" + "\n".join(g.lines) + "\n"
        "    except KeyError as e:\n"
        "        raise EncodeError('record value is missing field %r' % (e.args[0],)) from None\n"
        "    except UnicodeEncodeError:\n"
        "        raise EncodeError('string contains a lone surrogate (not valid UTF-8)') from None\n"
        "    except ValueError as e:\n"
        "        if isinstance(e, EncodeError): raise\n"
        "        raise EncodeError(str(e)) from None\n"
    )
    namespace = {**env, **g.consts, "as_int": _as_int, "Mapping": Mapping}
    exec(compile(src, f"<wrpc encoder {t}>", "exec"), namespace)
    return namespace["encode"]
