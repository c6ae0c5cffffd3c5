"""DDL for every target, generated from the catalog (the single source of truth for schemas)."""

from __future__ import annotations

from collections.abc import Iterable

from streams.catalog import CATALOG, Entity

TARGETS = ("proton", "clickhouse", "duckdb")


def proton_ddl(entity: Entity, *, ttl_days: int | None = None) -> str:
    """``CREATE STREAM`` with lower-case Proton types and ``event_time_column``.

    Inventory entities become ``versioned_kv`` streams keyed by their keys (latest row per key).
    Proton keeps its own log-store retention, so a TTL is added only when asked for.
    """
    cols = ",\n".join(f"  `{f.name}` {f.type.proton(f.nullable)}" for f in entity.fields)
    parts = [f"CREATE STREAM IF NOT EXISTS {entity.stream}\n(\n{cols}\n)"]
    settings = [f"event_time_column = '{entity.event_time}'"]
    if entity.is_inventory:
        parts.append(f"PRIMARY KEY ({', '.join(entity.keys)})")
        settings = ["mode = 'versioned_kv'", f"version_column = '{entity.event_time}'", *settings]
    if ttl_days:
        parts.append(f"TTL to_datetime(_tp_time) + INTERVAL {ttl_days} DAY")
    parts.append("SETTINGS " + ", ".join(settings))
    return "\n".join(parts)


def clickhouse_ddl(entity: Entity, *, ttl_days: int | None = None, database: str | None = None) -> str:
    """``CREATE TABLE`` for history: MergeTree partitioned by day with a TTL (90 days unless told).

    Inventory entities use ReplacingMergeTree on their event time, so a merge keeps the newest row per key.
    """
    ttl = entity.ttl_days if ttl_days is None else ttl_days
    name = f"{database}.{entity.stream}" if database else entity.stream
    cols = ",\n".join(f"    `{f.name}` {f.type.clickhouse(f.nullable)}" for f in entity.fields)
    parts = [f"CREATE TABLE IF NOT EXISTS {name}\n(\n{cols}\n)"]
    if entity.is_inventory:
        parts.append(f"ENGINE = ReplacingMergeTree({entity.event_time})")
    else:
        parts += ["ENGINE = MergeTree", f"PARTITION BY toDate({entity.event_time})"]
    parts.append(f"ORDER BY ({', '.join(entity.order_by)})")
    if ttl and not entity.is_inventory:
        # TTL needs a DateTime; the event time is DateTime64.
        parts.append(f"TTL toDateTime({entity.event_time}) + INTERVAL {ttl} DAY")
    return "\n".join(parts)


def duckdb_ddl(entity: Entity) -> str:
    """``CREATE TABLE`` for DuckDB; the same columns are the Parquet archive's schema."""
    cols = ",\n".join(f'    "{f.name}" {f.type.duckdb()}' for f in entity.fields)
    return f"CREATE TABLE IF NOT EXISTS {entity.stream}\n(\n{cols}\n)"


def ddl(target: str, entities: Iterable[Entity] | None = None, **options: object) -> list[str]:
    """Executable statements for ``target`` (one per entity, catalog order when none are named)."""
    gen = {"proton": proton_ddl, "clickhouse": clickhouse_ddl, "duckdb": duckdb_ddl}.get(target)
    if gen is None:
        raise ValueError(f"unknown DDL target {target!r}; expected one of {', '.join(TARGETS)}")
    return [gen(e, **options) for e in (entities if entities is not None else CATALOG)]  # type: ignore[operator]
