"""Streams the adapter accepts (from the catalog) and the conversion of client blocks to catalog batches."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from streams.catalog import CATALOG, Entity
from streams.ddl import proton_ddl


def find_stream(name: str, allowed: list[str] | None = None) -> Entity | None:
    """The catalog entity whose stream (or entity name) is ``name``, if the config allows it."""
    ent = CATALOG.by_stream(name) or CATALOG.get(name)
    if ent is None or (allowed and ent.stream not in allowed and ent.name not in allowed):
        return None
    return ent


def proton_columns(ent: Entity) -> list[tuple[str, str]]:
    """(name, Proton type) of every field, as DESC and the INSERT header report them."""
    return [(f.name, f.type.proton(f.nullable)) for f in ent.fields]


def describe_rows(ent: Entity) -> list[tuple[str, ...]]:
    """Rows of ``DESC STREAM``: name, type, default_type, default_expression, comment, codec, ttl."""
    return [(f.name, f.type.proton(f.nullable), "", "", f.doc, "", "") for f in ent.fields]


DESCRIBE_COLUMNS = [
    (c, "string")
    for c in ("name", "type", "default_type", "default_expression", "comment", "codec_expression", "ttl_expression")
]


def show_create(ent: Entity) -> str:
    return proton_ddl(ent)


def default_array(t: pa.DataType, n: int, nullable: bool) -> pa.Array:
    """A column of defaults for a field the INSERT left out (NULL, or the type's zero like Proton)."""
    if nullable:
        return pa.nulls(n, t)
    if pa.types.is_list(t) or pa.types.is_map(t):
        offsets = pa.array(np.zeros(n + 1, np.int32))
        if pa.types.is_map(t):
            return pa.MapArray.from_arrays(offsets, pa.array([], t.key_type), pa.array([], t.item_type))
        return pa.ListArray.from_arrays(offsets, pa.array([], t.value_type))
    if pa.types.is_string(t):
        return pa.nulls(n, t).fill_null("")
    if pa.types.is_boolean(t):
        return pa.array(np.zeros(n, bool))
    if pa.types.is_timestamp(t):
        return pa.array(np.zeros(n, np.int64)).cast(t)
    return pa.array(np.zeros(n, t.to_pandas_dtype()))


def to_catalog(ent: Entity, batch: pa.RecordBatch) -> pa.RecordBatch:
    """Cast a client block to the entity's Arrow schema (by column name), filling left-out fields."""
    schema = ent.arrow_schema()
    arrays = []
    for f in schema:
        if f.name in batch.schema.names:
            col = batch.column(f.name)
            arrays.append(col if col.type == f.type else col.cast(f.type))
        else:
            arrays.append(default_array(f.type, batch.num_rows, f.nullable))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
