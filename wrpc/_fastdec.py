"""Straight-line decoders for records and tuples, generated as Python source.

A record of primitive fields decoded through one closure per field pays a function call, a tuple
pack/unpack and a dict store per field. Generating one function per record type with the common
primitives inlined (LEB128 fast path, strings, bools, enums, options) makes decoding a list of
records about twice as fast. Lists of records get the element loop inlined as well. Anything not
inlined calls the regular compiled decoder.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from wrpc.types import EnumT, ListT, OptionT, Prim, RecordT, TupleT, Type

_ULEB_BITS = {"u16": 16, "u32": 32, "u64": 64}


class _Gen:
    def __init__(self, limits: Any, fallback: Callable[[Type], Any], min_size: Callable[[Type], int]) -> None:
        self.min_size = min_size
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        self.n = 0
        self.limits = limits
        self.fallback = fallback

    def var(self) -> str:
        self.n += 1
        return f"v{self.n}"

    def const(self, value: Any) -> str:
        name = f"c{len(self.consts)}"
        self.consts[name] = value
        return name

    def emit(self, line: str, indent: int) -> None:
        self.lines.append("    " * indent + line)

    def uleb(self, out: str, nbytes: int, bits: int, ind: int) -> None:
        self.emit(f"{out} = buf[pos]", ind)
        self.emit(f"if {out} < 0x80:", ind)
        self.emit("pos += 1", ind + 1)
        self.emit("else:", ind)
        self.emit(f"{out}, pos = read_uleb(buf, pos, {nbytes}, {bits})", ind + 1)

    def value(self, t: Type, ind: int) -> str:
        out = self.var()
        if isinstance(t, Prim) and t.name == "bool":
            self.emit(f"{out} = buf[pos]", ind)
            self.emit(f"if {out} > 1:", ind)
            self.emit(f"raise DecodeError('invalid bool byte %#04x' % {out})", ind + 1)
            self.emit(f"{out} = {out} == 1", ind)
            self.emit("pos += 1", ind)
        elif isinstance(t, Prim) and t.name == "u8":
            self.emit(f"{out} = buf[pos]", ind)
            self.emit("pos += 1", ind)
        elif isinstance(t, Prim) and t.name in _ULEB_BITS:
            bits = _ULEB_BITS[t.name]
            self.uleb(out, (bits + 6) // 7, bits, ind)
        elif isinstance(t, Prim) and t.name in ("f32", "f64"):
            size = 4 if t.name == "f32" else 8
            unpack = self.const(struct.Struct("<f" if size == 4 else "<d").unpack_from)
            self.emit(f"if pos + {size} > blen: raise SHORT", ind)
            self.emit(f"{out} = {unpack}(buf, pos)[0]", ind)
            self.emit(f"pos += {size}", ind)
        elif t == Prim("string") or t == ListT(Prim("u8")):
            n = self.var()
            self.uleb(n, 5, 32, ind)
            self.emit(f"if {n} > MAX_BYTES: raise LimitExceeded('length %d exceeds the limit' % {n})", ind)
            self.emit(f"if pos + {n} > blen: raise SHORT", ind)
            conv = "str" if t == Prim("string") else "bytes"
            tail = ", 'utf-8')" if conv == "str" else ")"
            self.emit(f"{out} = {conv}(buf[pos:pos + {n}]{tail}", ind)
            self.emit(f"pos += {n}", ind)
        elif isinstance(t, EnumT):
            cases = self.const(t.cases)
            self.uleb(out, 5, 32, ind)
            self.emit(f"if {out} >= {len(t.cases)}: raise DecodeError('case index %d out of range' % {out})", ind)
            self.emit(f"{out} = {cases}[{out}]", ind)
        elif isinstance(t, OptionT) and not isinstance(t.inner, OptionT):
            self.emit("tag = buf[pos]", ind)
            self.emit("pos += 1", ind)
            self.emit("if tag == 0:", ind)
            self.emit(f"{out} = None", ind + 1)
            self.emit("elif tag == 1:", ind)
            inner = self.value(t.inner, ind + 1)
            self.emit(f"{out} = {inner}", ind + 1)
            self.emit("else:", ind)
            self.emit("raise DecodeError('invalid option tag %#04x' % tag)", ind + 1)
        elif isinstance(t, RecordT | TupleT):
            names = [n for n, _ in t.fields] if isinstance(t, RecordT) else None
            elems = [ft for _, ft in t.fields] if isinstance(t, RecordT) else list(t.elems)
            parts = [self.value(e, ind) for e in elems]
            if names is None:
                self.emit(f"{out} = ({', '.join(parts)}{',' if len(parts) == 1 else ''})", ind)
            else:
                items = ", ".join(f"{n!r}: {p}" for n, p in zip(names, parts, strict=True))
                self.emit(f"{out} = {{{items}}}", ind)
        elif isinstance(t, ListT) and isinstance(t.elem, RecordT | TupleT):
            n = self.var()
            self.uleb(n, 5, 32, ind)
            self.emit(f"if {n} > MAX_ITEMS: raise LimitExceeded('list of %d elements exceeds the limit' % {n})", ind)
            msz = self.min_size(t.elem)
            if msz:  # a count the remaining bytes cannot hold is a truncation, found before looping
                self.emit(f"if pos + {n} * {msz} > blen: raise SHORT", ind)
            self.emit(f"{out} = []", ind)
            self.emit(f"append_{out} = {out}.append", ind)
            self.emit(f"for _ in range({n}):", ind)
            elem = self.value(t.elem, ind + 1)
            self.emit(f"append_{out}({elem})", ind + 1)
        else:
            dec = self.const(self.fallback(t))
            self.emit(f"{out}, pos = {dec}(buf, pos)", ind)
        return out


def straight_line(t: Type, limits: Any, fallback: Callable[[Type], Any], env: dict[str, Any]) -> Any:
    """Compile ``t``'s decoder ``f(buf, pos) -> (value, pos)`` with primitives inlined."""
    g = _Gen(limits, fallback, env["min_size"])
    result = g.value(t, 2)
    body = "\n".join(g.lines)
    src = (
        "def decode(buf, pos):\n"
        "    blen = len(buf)  # the buffer does not change during one decode\n"
        "    try:\n"
        f"{body}\n"
        f"        return {result}, pos\n"
        "    except IndexError:\n"
        "        raise SHORT from None\n"
        "    except UnicodeDecodeError:\n"
        "        raise DecodeError('invalid UTF-8 in string') from None\n"
    )
    namespace = {**env, **g.consts, "MAX_BYTES": limits.max_bytes, "MAX_ITEMS": limits.max_items}
    exec(compile(src, f"<wrpc decoder {t}>", "exec"), namespace)
    return namespace["decode"]
