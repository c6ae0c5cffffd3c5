"""The wRPC value codec (Component Model value definitions, spec §1).

Every type is compiled once into closures (cached per type and limits):

- a *fast* encoder ``enc(value, out: bytearray)`` and decoder ``dec(buf, pos) -> (value, pos)``
  for types without async parts; the decoder raises :class:`_Short` when the buffer ends early;
- a *resumable* decoder, a generator ``g(reader, path, ctx)`` that ``yield``\\s when it needs
  more bytes and returns the value. It first tries the fast decoder and only steps through the
  structure when data is missing, so a complete buffer is decoded at full speed and a value that
  arrives in chunks is never re-parsed from the start (lists resume at the element that was cut).

Types with ``future``/``stream`` parts use the resumable path only, because they need the index
path (spec §1.2) of every async value.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from wrpc._fastdec import straight_line
from wrpc._fastenc import straight_line_encoder
from wrpc.errors import DecodeError, EncodeError, LimitExceeded
from wrpc.types import (
    EnumT,
    FlagsT,
    FutureT,
    HandleT,
    ListT,
    OptionT,
    Prim,
    RecordT,
    ResultT,
    StreamT,
    TupleT,
    Type,
    VariantT,
    has_async,
    parse_type,
)
from wrpc.values import Err, Future, Ok, Some, Stream, Variant

Path = tuple[int, ...]


@dataclass(frozen=True)
class Limits:
    """Decoder limits. A peer can claim any length; these bound what we accept and buffer."""

    max_bytes: int = 64 << 20  # one string / list<u8> / handle, and one buffered sub-stream
    max_items: int = 4 << 20  # elements of one list or stream chunk


DEFAULT_LIMITS = Limits()


class _Short(Exception):
    """Internal: the buffer ends inside the value (the fast decoder needs more bytes)."""


# ---------------------------------------------------------------------------------------------
# LEB128
# ---------------------------------------------------------------------------------------------


def put_uleb(out: bytearray, v: int) -> None:
    """Append ``v`` as minimal unsigned LEB128."""
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def put_sleb(out: bytearray, v: int) -> None:
    """Append ``v`` as minimal signed LEB128 (not zigzag)."""
    while True:
        b = v & 0x7F
        v >>= 7
        if (v == 0 and not b & 0x40) or (v == -1 and b & 0x40):
            out.append(b)
            return
        out.append(b | 0x80)


def uleb_bytes(v: int) -> bytes:
    """``v`` as unsigned LEB128 bytes."""
    out = bytearray()
    put_uleb(out, v)
    return bytes(out)


def _read_uleb(buf: Any, pos: int, nbytes: int, bits: int) -> tuple[int, int]:
    result = shift = 0
    for i in range(nbytes):
        try:
            b = buf[pos + i]
        except IndexError:
            raise _Short from None
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            if result >> bits:
                raise DecodeError(f"LEB128 value overflows u{bits}")
            return result, pos + i + 1
    raise DecodeError(f"LEB128 for u{bits} is longer than {nbytes} bytes")


def _read_sleb(buf: Any, pos: int, nbytes: int, bits: int) -> tuple[int, int]:
    result = shift = 0
    for i in range(nbytes):
        try:
            b = buf[pos + i]
        except IndexError:
            raise _Short from None
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            if b & 0x40:
                result -= 1 << shift
            if not -(1 << (bits - 1)) <= result < (1 << (bits - 1)):
                raise DecodeError(f"LEB128 value overflows s{bits}")
            return result, pos + i + 1
    raise DecodeError(f"LEB128 for s{bits} is longer than {nbytes} bytes")


def read_u32(buf: Any, pos: int) -> tuple[int, int]:
    """Decode an unsigned LEB128 u32 at ``pos`` (raises :class:`_Short` if cut)."""
    try:
        b = buf[pos]
    except IndexError:
        raise _Short from None
    if b < 0x80:
        return b, pos + 1
    return _read_uleb(buf, pos, 5, 32)


# ---------------------------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------------------------

Enc = Callable[[Any, bytearray], None]
AEnc = Callable[[Any, bytearray, Path, list], None]

_INT_RANGES = {
    "u8": (0, 0xFF),
    "s8": (-0x80, 0x7F),
    "u16": (0, 0xFFFF),
    "s16": (-0x8000, 0x7FFF),
    "u32": (0, 0xFFFFFFFF),
    "s32": (-(1 << 31), (1 << 31) - 1),
    "u64": (0, (1 << 64) - 1),
    "s64": (-(1 << 63), (1 << 63) - 1),
}
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_NAN32 = b"\x00\x00\xc0\x7f"
_NAN64 = b"\x00\x00\x00\x00\x00\x00\xf8\x7f"


def _int_encoder(name: str) -> Enc:
    lo, hi = _INT_RANGES[name]
    put = put_sleb if name[0] == "s" else put_uleb

    def enc(v: Any, out: bytearray) -> None:
        if type(v) is not int and (isinstance(v, bool) or not isinstance(v, int)):
            raise EncodeError(f"{name} needs an int, got {type(v).__name__}")
        if not lo <= v <= hi:
            raise EncodeError(f"{v} is out of range for {name}")
        if name in ("u8", "s8"):
            out.append(v & 0xFF)
        else:
            put(out, v)

    return enc


def _prim_encoder(name: str) -> Enc:
    if name in _INT_RANGES:
        return _int_encoder(name)
    if name == "bool":

        def enc_bool(v: Any, out: bytearray) -> None:
            if type(v) is not bool:
                raise EncodeError(f"bool needs True/False, got {type(v).__name__}")
            out.append(1 if v else 0)

        return enc_bool
    if name in ("f32", "f64"):
        packer, nan = (_F32, _NAN32) if name == "f32" else (_F64, _NAN64)

        def enc_float(v: Any, out: bytearray) -> None:
            if not isinstance(v, int | float) or isinstance(v, bool):
                raise EncodeError(f"{name} needs a number, got {type(v).__name__}")
            if v != v:  # NaN: the canonical bit pattern, as the Rust encoder sends
                out += nan
                return
            try:
                out += packer.pack(v)
            except (OverflowError, struct.error) as e:
                raise EncodeError(f"{v!r} does not fit {name}: {e}") from None

        return enc_float
    if name == "char":

        def enc_char(v: Any, out: bytearray) -> None:
            if not isinstance(v, str) or len(v) != 1:
                raise EncodeError(f"char needs a 1-character str, got {v!r}")
            try:
                out += v.encode("utf-8")
            except UnicodeEncodeError:
                raise EncodeError(f"char {v!r} is not a Unicode scalar value") from None

        return enc_char

    def enc_string(v: Any, out: bytearray) -> None:
        if not isinstance(v, str):
            raise EncodeError(f"string needs a str, got {type(v).__name__}")
        try:
            b = v.encode("utf-8")
        except UnicodeEncodeError:
            raise EncodeError("string contains a lone surrogate (not valid UTF-8)") from None
        put_uleb(out, len(b))
        out += b

    return enc_string


def _enc_bytes(v: Any, out: bytearray) -> None:
    if not isinstance(v, bytes | bytearray | memoryview):
        if isinstance(v, list | tuple):
            try:
                v = bytes(v)
            except (ValueError, TypeError):
                raise EncodeError("list<u8> elements must be ints 0..255") from None
        else:
            raise EncodeError(f"list<u8> needs bytes, got {type(v).__name__}")
    put_uleb(out, len(v) if not isinstance(v, memoryview) else v.nbytes)
    out += v


def _field_getter(name: str) -> Callable[[Any], Any]:
    attr = name.replace("-", "_")

    def get(v: Any) -> Any:
        if isinstance(v, Mapping):
            try:
                return v[name]
            except KeyError:
                if attr in v:
                    return v[attr]
                raise EncodeError(f"record value is missing field {name!r}") from None
        try:
            return getattr(v, attr)
        except AttributeError:
            raise EncodeError(f"record value {type(v).__name__} has no field {name!r}") from None

    return get


def _variant_case(t: VariantT, v: Any) -> tuple[int, Any]:
    if isinstance(v, str):
        case, payload = v, None
    elif isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str):
        case, payload = v
    else:
        raise EncodeError(f"variant {t} needs Variant(case, value) or a case name, got {v!r}")
    idx = _case_index(t)
    if case not in idx:
        raise EncodeError(f"{case!r} is not a case of {t}")
    return idx[case], payload


@cache
def _case_index(t: VariantT | EnumT) -> dict[str, int]:
    names = [n for n, _ in t.cases] if isinstance(t, VariantT) else list(t.cases)
    return {n: i for i, n in enumerate(names)}


def _unwrap_option(v: Any, nested: bool) -> tuple[bool, Any]:
    """(present, inner value) of an option value.

    ``None`` is none and ``Some(x)`` is some(x); any other value is some(value). Under a nested
    option only ``Some(None)`` can say some(none), which is why the wrapper exists.
    """
    if v is None:
        return False, None
    if type(v) is Some:
        return True, v.value
    return True, v


@cache
def encoder(t: Type) -> Enc:
    """Compile the fast encoder of an async-free type."""
    if (
        isinstance(t, RecordT)
        or (isinstance(t, TupleT) and t.elems)
        or (isinstance(t, ListT) and isinstance(t.elem, RecordT | TupleT))
    ):
        env = {"put_uleb": put_uleb, "EncodeError": EncodeError}
        return straight_line_encoder(t, encoder, _field_getter, env)
    if isinstance(t, Prim):
        return _prim_encoder(t.name)
    if isinstance(t, ListT):
        if t.elem == Prim("u8"):
            return _enc_bytes
        e = encoder(t.elem)

        def enc_list(v: Any, out: bytearray) -> None:
            if isinstance(v, str | bytes | Mapping) or not hasattr(v, "__len__"):
                raise EncodeError(f"{t} needs a sequence, got {type(v).__name__}")
            put_uleb(out, len(v))
            for x in v:
                e(x, out)

        return enc_list
    if isinstance(t, OptionT):
        e = encoder(t.inner)
        nested = isinstance(t.inner, OptionT)

        def enc_option(v: Any, out: bytearray) -> None:
            present, inner = _unwrap_option(v, nested)
            if not present:
                out.append(0)
            else:
                out.append(1)
                e(inner, out)

        return enc_option
    if isinstance(t, ResultT):
        eo = encoder(t.ok) if t.ok is not None else None
        ee = encoder(t.err) if t.err is not None else None

        def enc_result(v: Any, out: bytearray) -> None:
            tv = type(v)
            if tv is Ok:
                out.append(0)
                if eo is not None:
                    eo(v.value, out)
            elif tv is Err:
                out.append(1)
                if ee is not None:
                    ee(v.value, out)
            else:
                raise EncodeError(f"{t} needs wrpc.Ok(...) or wrpc.Err(...), got {v!r}")

        return enc_result
    if isinstance(t, TupleT):
        es = tuple(encoder(x) for x in t.elems)
        n = len(es)

        def enc_tuple(v: Any, out: bytearray) -> None:
            if not isinstance(v, tuple | list) or len(v) != n:
                raise EncodeError(f"{t} needs a {n}-tuple, got {v!r}")
            for f, x in zip(es, v, strict=True):
                f(x, out)

        return enc_tuple
    if isinstance(t, RecordT):
        fs = tuple((name, encoder(ft), _field_getter(name)) for name, ft in t.fields)

        def enc_record(v: Any, out: bytearray) -> None:
            if type(v) is dict:
                try:
                    for name, f, _ in fs:
                        f(v[name], out)
                except KeyError as e:
                    raise EncodeError(f"record {t} value is missing field {e.args[0]!r}") from None
            else:
                for _, f, get in fs:
                    f(get(v), out)

        return enc_record
    if isinstance(t, VariantT):
        ces = [encoder(ct) if ct is not None else None for _, ct in t.cases]

        def enc_variant(v: Any, out: bytearray) -> None:
            i, payload = _variant_case(t, v)
            put_uleb(out, i)
            if ces[i] is not None:
                ces[i](payload, out)

        return enc_variant
    if isinstance(t, EnumT):
        idx = _case_index(t)

        def enc_enum(v: Any, out: bytearray) -> None:
            try:
                put_uleb(out, idx[v])
            except (KeyError, TypeError):
                raise EncodeError(f"{v!r} is not a case of {t}") from None

        return enc_enum
    if isinstance(t, FlagsT):
        bit = {n: 1 << i for i, n in enumerate(t.names)}
        nbytes = (len(t.names) + 7) // 8

        def enc_flags(v: Any, out: bytearray) -> None:
            if isinstance(v, str):
                raise EncodeError(f"{t} needs a set of flag names, got a str")
            bits = 0
            for n in v:
                try:
                    bits |= bit[n]
                except KeyError:
                    raise EncodeError(f"{n!r} is not a flag of {t}") from None
            out += bits.to_bytes(nbytes, "little")

        return enc_flags
    if isinstance(t, HandleT):
        return _enc_bytes
    raise EncodeError(f"{t} contains future/stream values: use encode_async")


@cache
def async_encoder(t: Type) -> AEnc:
    """Compile the encoder of a type that may contain async values.

    ``sink`` collects ``(path, type, value)`` for every pending future/stream met on the way.
    """
    if not has_async(t):
        fast = encoder(t)
        return lambda v, out, path, sink: fast(v, out)
    if isinstance(t, FutureT | StreamT):
        kind = Future if isinstance(t, FutureT) else Stream

        def enc_async(v: Any, out: bytearray, path: Path, sink: list) -> None:
            if not isinstance(v, kind):
                raise EncodeError(f"{t} needs a wrpc.{kind.__name__}, got {type(v).__name__}")
            out.append(0)  # always pending (spec §1.4): the data follows on the sub-stream
            sink.append((path, t, v))

        return enc_async
    if isinstance(t, ListT):
        e = async_encoder(t.elem)

        def enc_list(v: Any, out: bytearray, path: Path, sink: list) -> None:
            put_uleb(out, len(v))
            for j, x in enumerate(v):
                e(x, out, (*path, j), sink)

        return enc_list
    if isinstance(t, OptionT):
        e = async_encoder(t.inner)
        nested = isinstance(t.inner, OptionT)

        def enc_option(v: Any, out: bytearray, path: Path, sink: list) -> None:
            present, inner = _unwrap_option(v, nested)
            out.append(1 if present else 0)
            if present:
                e(inner, out, path, sink)

        return enc_option
    if isinstance(t, ResultT):
        eo = async_encoder(t.ok) if t.ok is not None else None
        ee = async_encoder(t.err) if t.err is not None else None

        def enc_result(v: Any, out: bytearray, path: Path, sink: list) -> None:
            if type(v) not in (Ok, Err):
                raise EncodeError(f"{t} needs wrpc.Ok(...) or wrpc.Err(...), got {v!r}")
            is_ok = type(v) is Ok
            out.append(0 if is_ok else 1)
            f = eo if is_ok else ee
            if f is not None:
                f(v.value, out, path, sink)

        return enc_result
    if isinstance(t, TupleT | RecordT):
        if isinstance(t, TupleT):
            parts = [(async_encoder(x), None) for x in t.elems]
        else:
            parts = [(async_encoder(ft), _field_getter(n)) for n, ft in t.fields]

        def enc_struct(v: Any, out: bytearray, path: Path, sink: list) -> None:
            for k, (f, get) in enumerate(parts):
                f(v[k] if get is None else get(v), out, (*path, k), sink)

        return enc_struct
    if isinstance(t, VariantT):
        ces = [async_encoder(ct) if ct is not None else None for _, ct in t.cases]

        def enc_variant(v: Any, out: bytearray, path: Path, sink: list) -> None:
            i, payload = _variant_case(t, v)
            put_uleb(out, i)
            if ces[i] is not None:
                ces[i](payload, out, path, sink)

        return enc_variant
    raise EncodeError(f"cannot encode {t}")  # pragma: no cover - every async kind handled above


# ---------------------------------------------------------------------------------------------
# Fast decoders (complete buffer)
# ---------------------------------------------------------------------------------------------

Dec = Callable[[Any, int], tuple[Any, int]]


def _need(buf: Any, end: int) -> None:
    if end > len(buf):
        raise _Short


def _int_decoder(name: str) -> Dec:
    if name == "u8":

        def dec_u8(buf: Any, pos: int) -> tuple[int, int]:
            try:
                return buf[pos], pos + 1
            except IndexError:
                raise _Short from None

        return dec_u8
    if name == "s8":

        def dec_s8(buf: Any, pos: int) -> tuple[int, int]:
            try:
                b = buf[pos]
            except IndexError:
                raise _Short from None
            return (b - 256 if b > 127 else b), pos + 1

        return dec_s8
    bits = int(name[1:])
    nbytes = (bits + 6) // 7
    if name[0] == "u":

        def dec_uleb(buf: Any, pos: int) -> tuple[int, int]:
            try:
                b = buf[pos]
            except IndexError:
                raise _Short from None
            if b < 0x80:
                return b, pos + 1
            return _read_uleb(buf, pos, nbytes, bits)

        return dec_uleb
    return lambda buf, pos: _read_sleb(buf, pos, nbytes, bits)


def _char_len(lead: int) -> int:
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    raise DecodeError(f"byte {lead:#04x} cannot start a UTF-8 char")


def _prim_decoder(name: str, limits: Limits) -> Dec:
    if name in _INT_RANGES:
        return _int_decoder(name)
    if name == "bool":

        def dec_bool(buf: Any, pos: int) -> tuple[bool, int]:
            try:
                b = buf[pos]
            except IndexError:
                raise _Short from None
            if b > 1:
                raise DecodeError(f"invalid bool byte {b:#04x}")
            return b == 1, pos + 1

        return dec_bool
    if name in ("f32", "f64"):
        unpack, size = (_F32.unpack_from, 4) if name == "f32" else (_F64.unpack_from, 8)

        def dec_float(buf: Any, pos: int) -> tuple[float, int]:
            _need(buf, pos + size)
            return unpack(buf, pos)[0], pos + size

        return dec_float
    if name == "char":

        def dec_char(buf: Any, pos: int) -> tuple[str, int]:
            try:
                n = _char_len(buf[pos])
            except IndexError:
                raise _Short from None
            _need(buf, pos + n)
            try:
                return str(buf[pos : pos + n], "utf-8"), pos + n
            except UnicodeDecodeError:
                raise DecodeError("invalid UTF-8 in char") from None

        return dec_char
    max_bytes = limits.max_bytes

    def dec_string(buf: Any, pos: int) -> tuple[str, int]:
        n, pos = read_u32(buf, pos)
        if n > max_bytes:
            raise LimitExceeded(f"string of {n} bytes exceeds the limit of {max_bytes}")
        end = pos + n
        _need(buf, end)
        try:
            return str(buf[pos:end], "utf-8"), end
        except UnicodeDecodeError:
            raise DecodeError("invalid UTF-8 in string") from None

    return dec_string


def _bytes_decoder(limits: Limits) -> Dec:
    max_bytes = limits.max_bytes

    def dec_bytes(buf: Any, pos: int) -> tuple[bytes, int]:
        n, pos = read_u32(buf, pos)
        if n > max_bytes:
            raise LimitExceeded(f"list<u8> of {n} bytes exceeds the limit of {max_bytes}")
        end = pos + n
        _need(buf, end)
        return bytes(buf[pos:end]), end

    return dec_bytes


@cache
def min_size(t: Type) -> int:
    """Fewest bytes any value of ``t`` takes (used to reject impossible counts early)."""
    if isinstance(t, Prim):
        return {"f32": 4, "f64": 8}.get(t.name, 1)
    if isinstance(t, TupleT):
        return sum(min_size(x) for x in t.elems)
    if isinstance(t, RecordT):
        return sum(min_size(x) for _, x in t.fields)
    if isinstance(t, FlagsT):
        return (len(t.names) + 7) // 8
    return 1


def _check_count(n: int, t: Type, limits: Limits) -> None:
    if n > limits.max_items:
        raise LimitExceeded(f"{t} with {n} elements exceeds the limit of {limits.max_items}")


@cache
def decoder(t: Type, limits: Limits = DEFAULT_LIMITS) -> Dec:
    """Compile the fast decoder of an async-free type."""
    if (
        isinstance(t, RecordT)
        or (isinstance(t, TupleT) and t.elems)
        or (isinstance(t, ListT) and isinstance(t.elem, RecordT | TupleT) and min_size(t.elem) > 0)
    ):
        env = {
            "read_uleb": _read_uleb,
            "SHORT": _Short,
            "DecodeError": DecodeError,
            "LimitExceeded": LimitExceeded,
            "min_size": min_size,
        }
        return straight_line(t, limits, lambda x: decoder(x, limits), env)
    if isinstance(t, Prim):
        return _prim_decoder(t.name, limits)
    if isinstance(t, HandleT) or (isinstance(t, ListT) and t.elem == Prim("u8")):
        return _bytes_decoder(limits)
    if isinstance(t, ListT):
        d = decoder(t.elem, limits)
        msz = min_size(t.elem)

        def dec_list(buf: Any, pos: int) -> tuple[list, int]:
            n, pos = read_u32(buf, pos)
            _check_count(n, t, limits)
            _need(buf, pos + n * msz)
            out = []
            append = out.append
            for _ in range(n):
                v, pos = d(buf, pos)
                append(v)
            return out, pos

        return dec_list
    if isinstance(t, OptionT):
        d = decoder(t.inner, limits)
        wrap = isinstance(t.inner, OptionT)

        def dec_option(buf: Any, pos: int) -> tuple[Any, int]:
            try:
                tag = buf[pos]
            except IndexError:
                raise _Short from None
            if tag == 0:
                return None, pos + 1
            if tag != 1:
                raise DecodeError(f"invalid option tag {tag:#04x}")
            v, pos = d(buf, pos + 1)
            return (Some(v) if wrap else v), pos

        return dec_option
    if isinstance(t, ResultT):
        do = decoder(t.ok, limits) if t.ok is not None else None
        de = decoder(t.err, limits) if t.err is not None else None

        def dec_result(buf: Any, pos: int) -> tuple[Any, int]:
            try:
                tag = buf[pos]
            except IndexError:
                raise _Short from None
            pos += 1
            if tag > 1:
                raise DecodeError(f"invalid result tag {tag:#04x}")
            d = do if tag == 0 else de
            v = None
            if d is not None:
                v, pos = d(buf, pos)
            return (Ok(v) if tag == 0 else Err(v)), pos

        return dec_result
    if isinstance(t, TupleT):
        ds = tuple(decoder(x, limits) for x in t.elems)

        def dec_tuple(buf: Any, pos: int) -> tuple[tuple, int]:
            out = []
            for d in ds:
                v, pos = d(buf, pos)
                out.append(v)
            return tuple(out), pos

        return dec_tuple
    if isinstance(t, RecordT):
        fds = tuple((n, decoder(ft, limits)) for n, ft in t.fields)

        def dec_record(buf: Any, pos: int) -> tuple[dict, int]:
            out = {}
            for n, d in fds:
                out[n], pos = d(buf, pos)
            return out, pos

        return dec_record
    if isinstance(t, VariantT):
        cds = [(n, decoder(ct, limits) if ct is not None else None) for n, ct in t.cases]

        def dec_variant(buf: Any, pos: int) -> tuple[Variant, int]:
            i, pos = read_u32(buf, pos)
            if i >= len(cds):
                raise DecodeError(f"case index {i} out of range for {t}")
            n, d = cds[i]
            v = None
            if d is not None:
                v, pos = d(buf, pos)
            return Variant(n, v), pos

        return dec_variant
    if isinstance(t, EnumT):
        cases = t.cases

        def dec_enum(buf: Any, pos: int) -> tuple[str, int]:
            i, pos = read_u32(buf, pos)
            if i >= len(cases):
                raise DecodeError(f"case index {i} out of range for {t}")
            return cases[i], pos

        return dec_enum
    if isinstance(t, FlagsT):
        names = t.names
        nbytes = (len(names) + 7) // 8
        mask = (1 << len(names)) - 1

        def dec_flags(buf: Any, pos: int) -> tuple[set, int]:
            _need(buf, pos + nbytes)
            bits = int.from_bytes(buf[pos : pos + nbytes], "little")
            if bits & ~mask:
                raise DecodeError(f"bit not associated with any flag is set in {t}")
            return {n for i, n in enumerate(names) if bits >> i & 1}, pos + nbytes

        return dec_flags
    raise DecodeError(f"{t} contains future/stream values: use the resumable decoder")


# ---------------------------------------------------------------------------------------------
# Resumable decoders
# ---------------------------------------------------------------------------------------------


class Reader:
    """The bytes received so far for one byte stream, and the read position."""

    __slots__ = ("buf", "pos")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.pos = 0

    def compact(self) -> None:
        """Drop consumed bytes (positions are only ever read fresh after a ``yield``)."""
        if self.pos > 65536 and self.pos * 2 > len(self.buf):
            del self.buf[: self.pos]
            self.pos = 0


class DecodeContext:
    """Collects the pending futures/streams met while decoding, keyed by absolute path."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.pending: list[tuple[Path, Type, Future | Stream]] = []


Gen = Generator[None, None, Any]
Inc = Callable[[Reader, Path, DecodeContext], Gen]


def _atom(fast: Dec) -> Inc:
    def g(r: Reader, path: Path, ctx: DecodeContext) -> Gen:
        while True:
            try:
                v, r.pos = fast(r.buf, r.pos)
                return v
            except _Short:
                yield

    return g


_u32_inc = _atom(read_u32)


def _sized(t: Type, fast: Dec, limits: Limits) -> Inc:
    """string / list<u8> / handle: wait for the whole payload, then one slice."""

    def g(r: Reader, path: Path, ctx: DecodeContext) -> Gen:
        while True:
            try:
                v, r.pos = fast(r.buf, r.pos)
                return v
            except _Short:
                pass
            try:
                n, _ = read_u32(r.buf, r.pos)
                if n > limits.max_bytes:
                    raise LimitExceeded(f"{t} of {n} bytes exceeds the limit of {limits.max_bytes}")
            except _Short:
                pass
            yield

    return g


@cache
def resumable(t: Type, limits: Limits = DEFAULT_LIMITS) -> Inc:
    """Compile the resumable (generator) decoder of ``t``."""
    if not has_async(t):
        fast = decoder(t, limits)
        if isinstance(t, Prim | EnumT | FlagsT) and t != Prim("string"):
            return _atom(fast)
        if t == Prim("string") or isinstance(t, HandleT) or t == ListT(Prim("u8")):
            return _sized(t, fast, limits)
        step = _structural(t, limits)

        needs_bytes = min_size(t) > 0

        def g(r: Reader, path: Path, ctx: DecodeContext) -> Gen:
            while needs_bytes and r.pos == len(r.buf):  # nothing yet: wait, so a value that then
                yield  # arrives whole is decoded by the fast path instead of step by step
            try:
                v, r.pos = fast(r.buf, r.pos)
                return v
            except _Short:
                pass
            return (yield from step(r, path, ctx))

        return g
    if isinstance(t, FutureT):
        return _future_head(t, limits)
    if isinstance(t, StreamT):
        return _stream_head(t, limits)
    return _structural(t, limits)


def _structural(t: Type, limits: Limits) -> Inc:
    if isinstance(t, ListT):
        ed = None if has_async(t.elem) else decoder(t.elem, limits)
        ei = resumable(t.elem, limits)

        def g_list(r: Reader, path: Path, ctx: DecodeContext) -> Gen:
            n = yield from _u32_inc(r, path, ctx)
            _check_count(n, t, limits)
            out: list = []
            while len(out) < n:
                if ed is not None:  # as many whole elements as the buffer holds, at full speed
                    try:
                        while len(out) < n:
                            v, r.pos = ed(r.buf, r.pos)
                            out.append(v)
                        break
                    except _Short:
                        pass
                out.append((yield from ei(r, (*path, len(out)), ctx)))
                r.compact()
            return out

        return g_list
    if isinstance(t, OptionT):
        ii = resumable(t.inner, limits)
        wrap = isinstance(t.inner, OptionT)

        def g_option(r: Reader, path: Path, ctx: DecodeContext) -> Gen:
            tag = yield from _tag(r, 1, "option")
            if tag == 0:
                return None
            v = yield from ii(r, path, ctx)
            return Some(v) if wrap else v

        return g_option
    if isinstance(t, ResultT):
        oi = resumable(t.ok, limits) if t.ok is not None else None
        ei = resumable(t.err, limits) if t.err is not None else None

        def g_result(r: Reader, path: Path, ctx: DecodeContext) -> Gen:
            tag = yield from _tag(r, 1, "result")
            d = oi if tag == 0 else ei
            v = None if d is None else (yield from d(r, path, ctx))
            return Ok(v) if tag == 0 else Err(v)

        return g_result
    if isinstance(t, TupleT | RecordT):
        names = None if isinstance(t, TupleT) else [n for n, _ in t.fields]
        elems = t.elems if isinstance(t, TupleT) else tuple(ft for _, ft in t.fields)
        parts = [resumable(x, limits) for x in elems]

        def g_struct(r: Reader, path: Path, ctx: DecodeContext) -> Gen:
            vals = []
            for k, p in enumerate(parts):
                vals.append((yield from p(r, (*path, k), ctx)))
            return tuple(vals) if names is None else dict(zip(names, vals, strict=True))

        return g_struct
    if isinstance(t, VariantT):
        cis = [(n, resumable(ct, limits) if ct is not None else None) for n, ct in t.cases]

        def g_variant(r: Reader, path: Path, ctx: DecodeContext) -> Gen:
            i = yield from _u32_inc(r, path, ctx)
            if i >= len(cis):
                raise DecodeError(f"case index {i} out of range for {t}")
            n, d = cis[i]
            v = None if d is None else (yield from d(r, path, ctx))
            return Variant(n, v)

        return g_variant
    raise DecodeError(f"cannot decode {t}")  # pragma: no cover


def _tag(r: Reader, maxtag: int, what: str) -> Gen:
    while r.pos >= len(r.buf):
        yield
    tag = r.buf[r.pos]
    if tag > maxtag:
        raise DecodeError(f"invalid {what} tag {tag:#04x}")
    r.pos += 1
    return tag


def _future_head(t: FutureT, limits: Limits) -> Inc:
    ii = resumable(t.inner, limits) if t.inner is not None else None

    def g(r: Reader, path: Path, ctx: DecodeContext) -> Gen:
        tag = yield from _tag(r, 1, "future status")
        fut: Future = Future()
        if tag == 0:
            ctx.pending.append((path, t, fut))
        else:  # ready inline: accepted although no encoder sends it (spec §1.4)
            fut.set_result(None if ii is None else (yield from ii(r, path, ctx)))
        return fut

    return g


def _stream_head(t: StreamT, limits: Limits) -> Inc:
    chunk = stream_chunk(t, limits)

    def g(r: Reader, path: Path, ctx: DecodeContext) -> Gen:
        s: Stream = Stream()
        s.of_bytes = t.inner == Prim("u8")
        items = yield from chunk(r, path, ctx, 0)
        if items is None:
            ctx.pending.append((path, t, s))
        else:  # the Rust/JS "ready" form: the whole stream is this one inline chunk
            s.push(items)
            s.close()
        return s

    return g


def stream_chunk(t: StreamT, limits: Limits):
    """Resumable decoder of one stream chunk: ``None`` for the end marker, else the chunk."""
    inner = t.inner
    is_bytes = inner == Prim("u8")
    ei = resumable(inner, limits) if inner is not None else None

    def g(r: Reader, path: Path, ctx: DecodeContext, base: int) -> Gen:
        n = yield from _u32_inc(r, path, ctx)
        if n == 0:
            return None
        _check_count(n, t, limits)
        if is_bytes:
            while len(r.buf) - r.pos < n:
                yield
            data = bytes(r.buf[r.pos : r.pos + n])
            r.pos += n
            return data
        out = []
        for j in range(n):
            out.append(None if ei is None else (yield from ei(r, (*path, base + j), ctx)))
        return out

    return g


# ---------------------------------------------------------------------------------------------
# Incremental driver
# ---------------------------------------------------------------------------------------------


class IncrementalDecoder:
    """Decode one value of ``t`` from bytes that arrive in arbitrary chunks.

    ``feed(data)`` returns True once the value is complete; ``value`` then holds it and
    ``remaining()`` any bytes after it. ``finish()`` (at end of input) raises
    :class:`DecodeError` if the value is incomplete.
    """

    def __init__(
        self, t: Type, path: Path = (), ctx: DecodeContext | None = None, limits: Limits | None = None
    ) -> None:
        self.ctx = ctx or DecodeContext(limits or DEFAULT_LIMITS)
        self.reader = Reader()
        self._gen = resumable(t, self.ctx.limits)(self.reader, path, self.ctx)
        self.done = False
        self.value: Any = None
        self._advance()

    def _advance(self) -> None:
        try:
            next(self._gen)
        except StopIteration as stop:
            self.done = True
            self.value = stop.value
        except RecursionError:
            raise DecodeError("value nested too deeply") from None

    def feed(self, data: bytes | bytearray | memoryview) -> bool:
        """Add bytes; returns True when the value is complete."""
        if self.done:
            self.reader.buf += data
            return True
        self.reader.buf += data
        self._advance()
        return self.done

    def remaining(self) -> bytes:
        """Bytes received after the end of the value."""
        return bytes(self.reader.buf[self.reader.pos :]) if self.done else b""

    def buffered(self) -> int:
        """Bytes held but not yet consumed."""
        return len(self.reader.buf) - self.reader.pos

    def finish(self) -> Any:
        """The value, or :class:`DecodeError` if the input ended inside it."""
        if not self.done:
            raise DecodeError(f"input ended inside the value ({self.buffered()} bytes unconsumed)")
        return self.value


class StreamDecoder:
    """Decode the sub-stream of a pending ``stream<T>`` (chunks then ``00``), pushing into ``s``."""

    def __init__(self, t: StreamT, path: Path, s: Stream, ctx: DecodeContext) -> None:
        self.stream = s
        self.ctx = ctx
        self.reader = Reader()
        self.done = False
        self._gen = self._run(stream_chunk(t, ctx.limits), path)
        next(self._gen)

    def _run(self, chunk, path: Path) -> Gen:
        base = 0
        while True:
            items = yield from chunk(self.reader, path, self.ctx, base)
            if items is None:
                self.stream.close()
                self.done = True
                yield  # park: nothing more is read
                return
            base += len(items)
            self.stream.push(items)
            self.reader.compact()

    def feed(self, data: bytes) -> bool:
        """Add bytes; returns True after the end marker."""
        self.reader.buf += data
        if not self.done:
            next(self._gen)
        return self.done

    def fail(self, exc: BaseException) -> None:
        """End the stream with ``exc`` unless its end marker already arrived."""
        if not self.done:
            self.stream.close(exc)

    def remaining(self) -> bytes:
        """Bytes after the end marker."""
        return bytes(self.reader.buf[self.reader.pos :]) if self.done else b""


# ---------------------------------------------------------------------------------------------
# Public helpers
# ---------------------------------------------------------------------------------------------


def encode(wit_type: str | Type, value: Any, types: Mapping[str, Type] | None = None) -> bytes:
    """Encode ``value`` as the WIT type ``wit_type`` (e.g. ``"list<tuple<u8, string>>"``).

    Futures and streams are written as pending (``00``); use :func:`encode_async` to also get
    the data for their sub-streams.
    """
    t = parse_type(wit_type, types)
    out = bytearray()
    if has_async(t):
        async_encoder(t)(value, out, (), [])
    else:
        encoder(t)(value, out)
    return bytes(out)


def encode_async(
    wit_type: str | Type, value: Any, path: Path = (), types: Mapping[str, Type] | None = None
) -> tuple[bytes, list[tuple[Path, Type, Any]]]:
    """Encode and also return the pending async values as ``(absolute path, type, value)``."""
    t = parse_type(wit_type, types)
    out = bytearray()
    sink: list = []
    async_encoder(t)(value, out, path, sink)
    return bytes(out), sink


def decode(
    wit_type: str | Type,
    data: bytes | bytearray | memoryview,
    types: Mapping[str, Type] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Any:
    """Decode exactly one value of ``wit_type`` from ``data`` (all bytes must be used).

    Pending futures/streams come back as unconnected :class:`Future` / :class:`Stream` objects.
    """
    t = parse_type(wit_type, types)
    if has_async(t):
        dec = IncrementalDecoder(t, limits=limits)
        dec.feed(data)
        v = dec.finish()
        extra = len(dec.remaining())
    else:
        try:
            v, pos = decoder(t, limits)(data, 0)
        except _Short:
            raise DecodeError(f"truncated input: {len(data)} bytes end inside a {t}") from None
        except RecursionError:
            raise DecodeError("value nested too deeply") from None
        extra = len(data) - pos
    if extra:
        raise DecodeError(f"{extra} bytes remaining after a complete {t}")
    return v
