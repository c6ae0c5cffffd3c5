"""Streams: the telemetry catalog, DDL, the embedded engine, the Proton backend and history sinks."""

from streams.catalog import CATALOG, Catalog, Entity, Field, Measure

__all__ = ["CATALOG", "Catalog", "Entity", "Field", "Measure"]
