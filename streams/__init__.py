"""Streams: the telemetry catalog, DDL, the embedded engine, the Proton backend and history sinks."""

from streams.catalog import CATALOG, Catalog, Entity, Field, Measure

__all__ = ["CATALOG", "Catalog", "Engine", "Entity", "Field", "Measure", "replay"]


def __getattr__(name: str):
    # The engine imports the compiler, which imports streams.catalog: load it only on first use so
    # `import streams` stays light and has no import cycle.
    if name in ("replay", "Engine"):
        import streams.engine as engine

        return getattr(engine, name)
    raise AttributeError(f"module 'streams' has no attribute {name!r}")
