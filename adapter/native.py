"""Proton's native protocol, byte level: primitives, Data blocks to and from Arrow, server packets.

Parsers work on a complete-or-not buffer (``bytearray`` + position) and raise :class:`NeedMore`
when the buffer ends early; the connection reads more and parses again. Buffers grow
geometrically, so a large block is parsed a bounded number of times (specs/proton.md §4).

Column data is decoded with NumPy (fixed-width columns, null maps, offsets, indexes) and with
proton-driver's compiled ``BufferedReader.read_strings`` for varint-prefixed strings: the wire
layout makes each string's position depend on all previous lengths, which NumPy cannot express,
and the driver's Cython reader is the well-kept implementation of exactly this loop.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adapter.coltypes import FIXED, PType, TypeError_, arrow_type, parse_type


def _driver_reader_class() -> type:
    """proton-driver's compiled ``BufferedReader``, loaded without the package ``__init__``.

    Importing ``proton_driver`` builds the client's date lookup tables (~40 MB of date objects),
    which an edge daemon must not pay for one compiled reader; the extension module itself needs
    nothing from the package.
    """
    import importlib.machinery
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("proton_driver")
    for folder in spec.submodule_search_locations if spec and spec.submodule_search_locations else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"bufferedreader{suffix}"
            if path.exists():
                loader = importlib.machinery.ExtensionFileLoader("proton_driver.bufferedreader", str(path))
                mod_spec = importlib.util.spec_from_file_location("proton_driver.bufferedreader", path, loader=loader)
                module = importlib.util.module_from_spec(mod_spec)  # type: ignore[arg-type]
                loader.exec_module(module)
                return module.BufferedReader
    from proton_driver.bufferedreader import BufferedReader  # pure-Python install: the regular import

    return BufferedReader


BufferedReader = _driver_reader_class()

# client -> server packet ids
C_HELLO, C_QUERY, C_DATA, C_CANCEL, C_PING, C_TABLES_STATUS, C_KEEPALIVE = 0, 1, 2, 3, 4, 5, 6
# server -> client packet ids
S_HELLO, S_DATA, S_EXCEPTION, S_PROGRESS, S_PONG, S_EOS, S_TABLES_STATUS, S_TABLE_COLUMNS = 0, 1, 2, 3, 4, 5, 9, 11

SERVER_REVISION = 54459
REV_QUOTA_KEY_ADDENDUM = 54458
REV_QUERY_PARAMS = 54459
REV_CLIENT_INFO = 54032
REV_QUOTA_KEY_IN_CLIENT_INFO = 54060
REV_VERSION_PATCH = 54401
REV_OPENTELEMETRY = 54442
REV_DISTRIBUTED_DEPTH = 54448
REV_PARALLEL_REPLICAS = 54453
REV_INTERSERVER_SECRET = 54441

# Proton (ClickHouse) error codes we answer with
UNKNOWN_TABLE = 60
NO_SUCH_COLUMN_IN_TABLE = 16
UNKNOWN_TYPE = 50
TYPE_MISMATCH = 53
SYNTAX_ERROR = 62
NOT_IMPLEMENTED = 48
CHECKSUM_DOESNT_MATCH = 40
UNKNOWN_COMPRESSION_METHOD = 89
CANNOT_DECOMPRESS = 271
TOO_LARGE_SIZE_COMPRESSED = 246
INCORRECT_DATA = 117
UNKNOWN_PACKET_FROM_CLIENT = 101
UNEXPECTED_PACKET_FROM_CLIENT = 102
TIMEOUT_EXCEEDED = 159
LIMIT_EXCEEDED = 290
NETWORK_ERROR = 210
AUTHENTICATION_FAILED = 516
TOO_MANY_SIMULTANEOUS_QUERIES = 202
UNKNOWN_EXCEPTION = 1002


class NeedMore(Exception):
    """The buffer ends inside the structure being parsed; ``hint`` bytes more would help (0 = unknown)."""

    def __init__(self, hint: int = 0, exact: bool = True) -> None:
        super().__init__(hint)
        self.hint = hint
        self.exact = exact  # False: a guess (a cut string column), the peer may send less than that


class ProtocolError(Exception):
    """Bad input from the client, with the Proton error code to answer with."""

    def __init__(self, code: int, message: str, *, fatal: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.fatal = fatal  # the stream is out of sync: answer, then close the connection


@dataclass(frozen=True)
class Limits:
    """What one block may claim; a peer can declare any size, these bound what we buffer."""

    max_block_bytes: int = 256 << 20
    max_rows: int = 16 << 20
    max_columns: int = 1024
    max_string: int = 16 << 20
    max_items: int = 64 << 20


DEFAULT_LIMITS = Limits()

# --------------------------------------------------------------------------------------------------
# primitives


def read_varuint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """Unsigned LEB128 at ``pos`` (at most 10 bytes)."""
    value = shift = 0
    for i in range(10):
        if pos + i >= len(buf):
            raise NeedMore(1)
        b = buf[pos + i]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos + i + 1
        shift += 7
    raise ProtocolError(INCORRECT_DATA, "VarUInt longer than 10 bytes")


def read_str(buf: bytes | bytearray | memoryview, pos: int, limit: int = 1 << 20) -> tuple[str, int]:
    """A length-prefixed UTF-8 string, at most ``limit`` bytes."""
    n, pos = read_varuint(buf, pos)
    if n > limit:
        raise ProtocolError(TOO_LARGE_SIZE_COMPRESSED, f"string of {n} bytes exceeds the limit of {limit}")
    if pos + n > len(buf):
        raise NeedMore(pos + n - len(buf))
    try:
        return bytes(buf[pos : pos + n]).decode(), pos + n
    except UnicodeDecodeError as e:
        raise ProtocolError(INCORRECT_DATA, f"string is not UTF-8: {e}") from e


def read_fixed(buf: bytes | bytearray | memoryview, pos: int, fmt: str) -> tuple[int, int]:
    size = struct.calcsize(fmt)
    if pos + size > len(buf):
        raise NeedMore(pos + size - len(buf))
    return struct.unpack_from(fmt, buf, pos)[0], pos + size


def varuint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def string(s: str | bytes) -> bytes:
    data = s.encode() if isinstance(s, str) else s
    return varuint(len(data)) + data


# --------------------------------------------------------------------------------------------------
# blocks


class _BytesReader(BufferedReader):
    """proton-driver's compiled reader over a buffer we already hold (never reads a socket)."""

    def __init__(self, buf: bytearray, pos: int) -> None:
        super().__init__(0)
        self.buffer = buf
        self.current_buffer_size = len(buf)
        self.position = pos

    def read_into_buffer(self) -> None:
        raise EOFError("block ends inside a string column")


@dataclass
class Column:
    name: str
    type_text: str
    ptype: PType


def read_block_header(buf: bytearray, pos: int, limits: Limits) -> tuple[int, int, int]:
    """BlockInfo, then (num_columns, num_rows); returns (columns, rows, pos)."""
    while True:
        field, pos = read_varuint(buf, pos)
        if field == 0:
            break
        if field == 1:
            _, pos = read_fixed(buf, pos, "<B")
        elif field == 2:
            _, pos = read_fixed(buf, pos, "<i")
        else:
            raise ProtocolError(INCORRECT_DATA, f"unknown BlockInfo field {field}")
    ncols, pos = read_varuint(buf, pos)
    nrows, pos = read_varuint(buf, pos)
    if ncols > limits.max_columns:
        raise ProtocolError(LIMIT_EXCEEDED, f"block declares {ncols} columns (limit {limits.max_columns})")
    if nrows > limits.max_rows:
        raise ProtocolError(LIMIT_EXCEEDED, f"block declares {nrows} rows (limit {limits.max_rows})")
    return ncols, nrows, pos


def decode_block(buf: bytearray, pos: int, limits: Limits = DEFAULT_LIMITS) -> tuple[pa.RecordBatch, list[Column], int]:
    """One Block (BlockInfo, columns, rows, column data) as an Arrow record batch."""
    return BlockReader(limits).parse(buf, pos)


class BlockReader:
    """Decodes one block, resuming at the column that was cut when :class:`NeedMore` interrupted it.

    Retrying from the block's start after every read would re-decode all earlier columns; keeping
    the finished ones makes a block arriving in pieces cost little more than one decode. The caller
    must not move the buffer's bytes between attempts.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._head: tuple[int, int, int] | None = None  # columns, rows, position after the last finished column
        self._arrays: list[pa.Array] = []
        self._columns: list[Column] = []

    def parse(self, buf: bytearray, pos: int) -> tuple[pa.RecordBatch, list[Column], int]:
        if self._head is None:
            self._head = read_block_header(buf, pos, self.limits)
        ncols, nrows, pos = self._head
        while len(self._columns) < ncols:
            name, p = read_str(buf, pos, 4096)
            type_text, p = read_str(buf, p, 4096)
            try:
                ptype = parse_type(type_text)
            except TypeError_ as e:
                raise ProtocolError(UNKNOWN_TYPE, str(e)) from e
            if nrows:
                p = _read_prefix(ptype, buf, p)
                arr, p = _decode(ptype, buf, p, nrows, self.limits)
            else:
                arr = pa.array([], arrow_type(ptype))
            self._arrays.append(arr)
            self._columns.append(Column(name, type_text, ptype))
            pos = p
            self._head = (ncols, nrows, pos)
        names = [c.name for c in self._columns]
        if len(set(names)) != len(names):
            raise ProtocolError(INCORRECT_DATA, f"duplicate column names in block: {names}")
        return pa.RecordBatch.from_arrays(self._arrays, names=names), self._columns, pos


def _read_prefix(t: PType, buf: bytearray, pos: int) -> int:
    """Serialization state prefixes (only low_cardinality has one: key version 1), outer to inner."""
    if t.name == "low_cardinality":
        version, pos = read_fixed(buf, pos, "<Q")
        if version != 1:
            raise ProtocolError(INCORRECT_DATA, f"low_cardinality key version {version}, expected 1")
        return pos
    for a in t.args:
        pos = _read_prefix(a, buf, pos)
    return pos


def _numpy(buf: bytearray, pos: int, dtype: str, n: int) -> tuple[np.ndarray, int]:
    dt = np.dtype(dtype)
    end = pos + n * dt.itemsize
    if end > len(buf):
        raise NeedMore(end - len(buf))
    return np.frombuffer(buf, dt, n, pos).copy(), end


def _decode(t: PType, buf: bytearray, pos: int, n: int, limits: Limits) -> tuple[pa.Array, int]:
    name = t.name
    if name in FIXED:
        values, pos = _numpy(buf, pos, FIXED[name], n)
        return pa.array(values), pos
    if name == "string":
        return _strings(buf, pos, n, limits)
    if name == "bool":
        values, pos = _numpy(buf, pos, "<u1", n)
        return pa.array(values.astype(bool)), pos
    if name in ("datetime", "datetime64"):
        values, pos = _numpy(buf, pos, "<u4" if name == "datetime" else "<i8", n)
        return _timestamps(values.astype(np.int64), t), pos
    if name in ("date", "date32"):
        values, pos = _numpy(buf, pos, "<u2" if name == "date" else "<i4", n)
        return pa.array(values.astype(np.int32), pa.int32()).cast(pa.date32()), pos
    if name == "ipv4":
        values, pos = _numpy(buf, pos, "<u4", n)
        return pa.array(values), pos
    if name in ("fixed_string", "uuid", "ipv6"):
        width = int(t.params[0]) if name == "fixed_string" else 16
        end = pos + n * width
        if end > len(buf):
            raise NeedMore(end - len(buf))
        data = pa.py_buffer(bytes(buf[pos:end]))
        return pa.Array.from_buffers(pa.binary(width), n, [None, data]), end
    if name == "nullable":
        nulls, pos = _numpy(buf, pos, "<u1", n)
        inner, pos = _decode(t.args[0], buf, pos, n, limits)
        return _with_nulls(inner, nulls.astype(bool)), pos
    if name in ("array", "map"):
        return _nested(t, buf, pos, n, limits)
    return _low_cardinality(t, buf, pos, n, limits)


def _strings(buf: bytearray, pos: int, n: int, limits: Limits) -> tuple[pa.Array, int]:
    reader = _BytesReader(buf, pos)
    try:
        items = reader.read_strings(n)
    except EOFError:
        # the compiled reader stops with its position past the end by about what the cut string lacks:
        # a hint that makes a declared 1 GiB string fail the size limit at once instead of being awaited
        raise NeedMore(max(0, reader.position - len(buf)), exact=False) from None
    end = reader.position
    if end - pos > limits.max_block_bytes:
        raise ProtocolError(LIMIT_EXCEEDED, "string column larger than the block limit")
    try:
        return pa.array(items, pa.binary()).cast(pa.string()), end
    except pa.ArrowInvalid as e:
        raise ProtocolError(INCORRECT_DATA, f"string column is not UTF-8: {e}") from e


def _timestamps(ticks: np.ndarray, t: PType) -> pa.Array:
    target = arrow_type(t)
    if t.name == "datetime64":
        precision = int(t.params[0])
        unit_digits = {"s": 0, "ms": 3, "us": 6, "ns": 9}[target.unit]
        if unit_digits != precision:  # e.g. datetime64(2): ticks of 10 ms, stored as ms
            ticks = ticks * 10 ** (unit_digits - precision)
    return pa.array(ticks, pa.int64()).cast(target)


def _with_nulls(inner: pa.Array, is_null: np.ndarray) -> pa.Array:
    if not is_null.any():
        return inner
    return pc.if_else(pa.array(is_null), pa.nulls(len(inner), inner.type), inner)


def _offsets(buf: bytearray, pos: int, n: int, limits: Limits) -> tuple[np.ndarray, int]:
    ends, pos = _numpy(buf, pos, "<u8", n)
    if n and (ends[-1] > limits.max_items or (np.diff(ends.astype(np.int64)) < 0).any()):
        raise ProtocolError(INCORRECT_DATA, "array offsets are not increasing or exceed the item limit")
    return np.concatenate([[0], ends]).astype(np.int32 if (n == 0 or ends[-1] < 2**31) else np.int64), pos


def _nested(t: PType, buf: bytearray, pos: int, n: int, limits: Limits) -> tuple[pa.Array, int]:
    offsets, pos = _offsets(buf, pos, n, limits)
    total = int(offsets[-1])
    if t.name == "array":
        values, pos = _decode(t.args[0], buf, pos, total, limits)
        cls = pa.ListArray if offsets.dtype == np.int32 else pa.LargeListArray
        return cls.from_arrays(pa.array(offsets), values), pos
    keys, pos = _decode(t.args[0], buf, pos, total, limits)
    items, pos = _decode(t.args[1], buf, pos, total, limits)
    return pa.MapArray.from_arrays(pa.array(offsets.astype(np.int32)), keys, items), pos


_INDEX_DTYPES = ("<u1", "<u2", "<u4", "<u8")
_NEED_GLOBAL_DICTIONARY = 1 << 8


def _low_cardinality(t: PType, buf: bytearray, pos: int, n: int, limits: Limits) -> tuple[pa.Array, int]:
    inner = t.args[0]
    nullable = inner.name == "nullable"
    flags, pos = read_fixed(buf, pos, "<Q")
    if flags & _NEED_GLOBAL_DICTIONARY or flags & 0xFF > 3:
        raise ProtocolError(INCORRECT_DATA, f"low_cardinality flags {flags:#x} not supported")
    nkeys, pos = read_fixed(buf, pos, "<Q")
    if nkeys > limits.max_items:
        raise ProtocolError(LIMIT_EXCEEDED, f"low_cardinality dictionary of {nkeys} keys")
    dictionary, pos = _decode(inner.args[0] if nullable else inner, buf, pos, nkeys, limits)
    nidx, pos = read_fixed(buf, pos, "<Q")
    if nidx != n:
        raise ProtocolError(INCORRECT_DATA, f"low_cardinality has {nidx} indexes for {n} rows")
    idx, pos = _numpy(buf, pos, _INDEX_DTYPES[flags & 0xFF], n)
    if n and int(idx.max()) >= nkeys:
        raise ProtocolError(INCORRECT_DATA, "low_cardinality index outside the dictionary")
    values = dictionary.take(pa.array(idx.astype(np.int64)))
    return (_with_nulls(values, idx == 0) if nullable else values), pos


# --------------------------------------------------------------------------------------------------
# writing (what the server sends: header blocks and small string result sets)

_BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"


def encode_block(columns: list[tuple[str, str]], rows: list[tuple[str, ...]] | None = None) -> bytes:
    """A Block with Proton type names; ``rows`` (strings only) for DESC/SHOW CREATE answers."""
    rows = rows or []
    out = bytearray(_BLOCK_INFO)
    out += varuint(len(columns)) + varuint(len(rows))
    for i, (name, type_text) in enumerate(columns):
        out += string(name) + string(type_text)
        for row in rows:  # a handful of metadata rows, never a data path
            out += string(row[i])
    return bytes(out)


def exception_packet(code: int, message: str) -> bytes:
    """Exception packet: code, name, message, stack trace, no nested exception."""
    return (
        varuint(S_EXCEPTION) + struct.pack("<i", code) + string("DB::Exception")
        + string(f"DB::Exception: {message}") + string("") + b"\x00"
    )  # fmt: skip


def hello_packet(client_revision: int, timezone: str = "UTC", display_name: str = "serviceradar-adapter") -> bytes:
    """Server Hello for revision 54459, with the optional fields gated on the client's revision."""
    out = varuint(S_HELLO) + string("proton") + varuint(1) + varuint(6) + varuint(SERVER_REVISION)
    negotiated = min(client_revision, SERVER_REVISION)
    if negotiated >= 54058:
        out += string(timezone)
    if negotiated >= 54372:
        out += string(display_name)
    if negotiated >= REV_VERSION_PATCH:
        out += varuint(0)
    return out


def tables_status_packet(tables: list[tuple[str, str]]) -> bytes:
    out = varuint(S_TABLES_STATUS) + varuint(len(tables))
    for db, table in tables:
        out += string(db) + string(table) + b"\x00"
    return out


def exception_code_in(data: bytes) -> int | None:
    """The code of the first Exception packet in a server's reply bytes (for health checks and tests)."""
    marker = string("DB::Exception")
    i = data.find(marker)
    while i >= 5:
        if data[i - 5] == S_EXCEPTION:
            return struct.unpack_from("<i", data, i - 4)[0]
        i = data.find(marker, i + 1)
    return None
