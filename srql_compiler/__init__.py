"""SRQL: parse, bind against the catalog, plan, and emit Proton / ClickHouse / DuckDB SQL."""
