"""History sinks: ClickHouse (chdb embedded by default, clickhouse-connect for a server) and a Parquet archive."""

from streams.sinks.archive import ParquetArchive
from streams.sinks.clickhouse import ClickHouseSink, SinkError

__all__ = ["ClickHouseSink", "ParquetArchive", "SinkError"]
