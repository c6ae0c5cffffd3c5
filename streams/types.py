"""Logical column types of the catalog and how each target spells them.

A field's type is declared once (in :mod:`streams.catalog`); Proton, ClickHouse, DuckDB and Arrow
spellings are looked up here, in one table per target, the way sqlglot keeps one type map per dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pyarrow as pa


class Kind(Enum):
    """The families the compiler type-checks against."""

    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    BOOL = "bool"
    TIMESTAMP = "timestamp"
    MAP = "map"
    ARRAY = "array"


@dataclass(frozen=True)
class ColumnType:
    """A logical column type. ``name`` is the key into the per-target spelling tables."""

    name: str
    kind: Kind
    element: ColumnType | None = None  # arrays
    low_cardinality: bool = False

    @property
    def is_numeric(self) -> bool:
        return self.kind in (Kind.INTEGER, Kind.FLOAT)

    def proton(self, nullable: bool = False) -> str:
        return _wrap(_PROTON[self.name], nullable, "nullable({})", self.low_cardinality, "low_cardinality({})")

    def clickhouse(self, nullable: bool = False) -> str:
        return _wrap(
            _CLICKHOUSE[self.name], nullable, "Nullable({})", self.low_cardinality, "LowCardinality({})"
        )

    def duckdb(self) -> str:
        return _DUCKDB[self.name]

    def arrow(self) -> pa.DataType:
        return _ARROW[self.name]

    def __str__(self) -> str:
        return self.name


def _wrap(base: str, nullable: bool, null_fmt: str, low_card: bool, lc_fmt: str) -> str:
    # ClickHouse and Proton nest LowCardinality outside Nullable: LowCardinality(Nullable(String)).
    if nullable:
        base = null_fmt.format(base)
    if low_card:
        base = lc_fmt.format(base)
    return base


def _t(name: str, kind: Kind, **kw: object) -> ColumnType:
    return ColumnType(name, kind, **kw)  # type: ignore[arg-type]


STRING = _t("string", Kind.STRING)
# An IPv4/IPv6 address kept as text everywhere (portable across Proton, ClickHouse, DuckDB and Parquet);
# the compiler knows it is an address, so `src_ip IN '10.0.0.0/8'` means prefix containment.
IP = _t("ip", Kind.STRING)
LC_STRING = _t("string", Kind.STRING, low_cardinality=True)
UINT8 = _t("uint8", Kind.INTEGER)
UINT16 = _t("uint16", Kind.INTEGER)
UINT32 = _t("uint32", Kind.INTEGER)
UINT64 = _t("uint64", Kind.INTEGER)
INT64 = _t("int64", Kind.INTEGER)
FLOAT64 = _t("float64", Kind.FLOAT)
BOOL = _t("bool", Kind.BOOL)
TIMESTAMP = _t("timestamp", Kind.TIMESTAMP)
STRING_MAP = _t("map_string_string", Kind.MAP, element=STRING)
STRING_ARRAY = _t("array_string", Kind.ARRAY, element=STRING)
UINT32_ARRAY = _t("array_uint32", Kind.ARRAY, element=UINT32)

# Per-target spelling tables. Proton uses lower-case snake_case type names (specs/proton.md §1.1).
_PROTON = {
    "string": "string",
    "ip": "string",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "int64": "int64",
    "float64": "float64",
    "bool": "bool",
    "timestamp": "datetime64(3, 'UTC')",
    "map_string_string": "map(string, string)",
    "array_string": "array(string)",
    "array_uint32": "array(uint32)",
}
_CLICKHOUSE = {
    "string": "String",
    "ip": "String",
    "uint8": "UInt8",
    "uint16": "UInt16",
    "uint32": "UInt32",
    "uint64": "UInt64",
    "int64": "Int64",
    "float64": "Float64",
    "bool": "Bool",
    "timestamp": "DateTime64(3, 'UTC')",
    "map_string_string": "Map(String, String)",
    "array_string": "Array(String)",
    "array_uint32": "Array(UInt32)",
}
# DuckDB keeps event times as naive TIMESTAMP in UTC: the archive never depends on a session time zone.
_DUCKDB = {
    "string": "VARCHAR",
    "ip": "VARCHAR",
    "uint8": "UTINYINT",
    "uint16": "USMALLINT",
    "uint32": "UINTEGER",
    "uint64": "UBIGINT",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "map_string_string": "MAP(VARCHAR, VARCHAR)",
    "array_string": "VARCHAR[]",
    "array_uint32": "UINTEGER[]",
}
_ARROW = {
    "string": pa.string(),
    "ip": pa.string(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("ms", tz="UTC"),
    "map_string_string": pa.map_(pa.string(), pa.string()),
    "array_string": pa.list_(pa.string()),
    "array_uint32": pa.list_(pa.uint32()),
}
