"""The cloud receiver: a durable JetStream consumer per tenant writing ``proton.publish`` batches to ClickHouse.

The tenant's cloud stream (no subjects of its own) *sources* each edge leaf's stream through that
edge domain's JetStream API, so batches stored at an offline edge arrive when the leaf reconnects.
A durable pull consumer (:class:`wrpc.queued.QueuedConsumer`) decodes each queued call; the batch is
inserted into the entity's table and only then acknowledged.

Idempotence: every insert carries ClickHouse's ``insert_deduplication_token`` = ``<stream>-<seq>``
and the tables keep a ``non_replicated_deduplication_window``, so a batch delivered twice (an ack
lost in a restart, a JetStream redelivery, an edge that re-sent after a crash) is stored once. That
check happens inside ClickHouse's insert, so there is no window between "stored" and "remembered".

chdb allows one data directory per process: one receiver process serves one tenant's chdb
directory (or any number of tenants against a ClickHouse server URL, one receiver each).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import nats.js.errors
import pyarrow as pa
from nats.js.api import ExternalStream, StreamConfig, StreamSource

import wrpc
from streams.catalog import CATALOG
from streams.sinks.clickhouse import ClickHouseSink
from wrpc import wit
from wrpc.queued import QueuedConsumer

log = logging.getLogger("fabric.receiver")
PUBLISH = wit.telemetry().func("proton", "publish")
DEDUP_WINDOW = 100_000  # batches remembered per table by ClickHouse


@dataclass
class ReceiverStats:
    batches: int = 0
    rows: int = 0
    rejected: int = 0


async def ensure_cloud_stream(js, name: str, edge_domains: list[str], edge_stream: str,
                              max_bytes: int = 1 << 30) -> None:
    """The tenant's cloud stream: sources ``edge_stream`` of every edge domain (no subjects of its own)."""
    sources = [
        StreamSource(name=edge_stream, external=ExternalStream(api=f"$JS.{d}.API", deliver=""))
        for d in edge_domains
    ]
    config = StreamConfig(name=name, subjects=[], sources=sources, max_bytes=max_bytes)
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError:  # exists: bring its sources up to date
        await js.update_stream(config)


class Receiver:
    """Decodes queued ``proton.publish`` calls and writes them, de-duplicated, through a ClickHouse sink."""

    def __init__(self, sink: ClickHouseSink) -> None:
        self.sink = sink
        self.stats = ReceiverStats()
        self._tables: set[str] = set()
        # chdb is used from one thread only; the event loop keeps serving NATS meanwhile
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="receiver-sink")
        self.archived: dict[str, int] = {}

    async def publish(self, batch: dict) -> wrpc.Ok | wrpc.Err:
        ent = CATALOG.by_stream(batch["stream"]) or CATALOG.get(batch["stream"])
        if ent is None:
            self.stats.rejected += 1
            log.error("batch for unknown stream %r dropped", batch["stream"])
            return wrpc.Ok()  # no retry can fix it; counted
        try:
            table = pa.ipc.open_stream(bytes(batch["arrow-ipc"])).read_all()
        except pa.ArrowInvalid as e:
            self.stats.rejected += 1
            log.error("undecodable Arrow IPC for %s seq %s: %s", ent.stream, batch["seq"], e)
            return wrpc.Ok()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._insert, ent, table, batch["seq"])
        self.stats.batches += 1
        self.stats.rows += table.num_rows
        return wrpc.Ok()

    def _insert(self, ent, table: pa.Table, seq: int) -> None:
        if ent.stream not in self._tables:
            self.sink.ensure(ent)
            window = f"non_replicated_deduplication_window = {DEDUP_WINDOW}"
            self.sink.sql(f"ALTER TABLE {ent.stream} MODIFY SETTING {window}")
            self._tables.add(ent.stream)
        self.sink.sql(f"SET insert_deduplication_token = '{ent.stream}-{int(seq)}'")
        self.sink.insert(ent, table)

    async def archive(self, root: str, older_than_days: int) -> dict[str, int]:
        """Move whole days older than ``older_than_days`` to the Parquet archive (on the sink's thread)."""
        from streams.sinks.archive import ParquetArchive

        def move() -> dict[str, int]:
            return self.sink.archive(ParquetArchive(root), older_than_days)

        try:
            moved = await asyncio.get_running_loop().run_in_executor(self._pool, move)
        except Exception as e:  # an archive failure must not stop ingestion; retried next interval
            log.error("archive failed: %s: %s", type(e).__name__, e)
            return {}
        for k, v in moved.items():
            self.archived[k] = self.archived.get(k, 0) + v
        return moved

    def consumer(self, js, stream: str, durable: str, **kw) -> QueuedConsumer:
        """A durable consumer of the tenant's cloud stream, wired to :meth:`publish`."""
        c = QueuedConsumer(js, stream, durable, subject="serviceradar.*.proton.publish", **kw)
        c.register(PUBLISH, self.publish)
        return c

    def close(self) -> None:
        self._pool.shutdown(wait=True)
