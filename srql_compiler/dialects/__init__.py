"""sqlglot dialects of the SRQL compiler's targets; importing this package registers them."""

from srql_compiler.dialects.proton import (
    Emit,
    Proton,
    Proton16,
    changelog,
    create_external_stream,
    create_external_table,
    create_materialized_view,
    dedup,
    hop,
    interval,
    session,
    table,
    tumble,
)

__all__ = [
    "Emit",
    "Proton",
    "Proton16",
    "changelog",
    "create_external_stream",
    "create_external_table",
    "create_materialized_view",
    "dedup",
    "hop",
    "interval",
    "session",
    "table",
    "tumble",
]
