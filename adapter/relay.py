"""The relay: each received block becomes queued wRPC ``proton.publish`` calls in JetStream.

A block is cut into chunks that fit the NATS server's ``max_payload``; each chunk is one
``batch {stream, seq, arrow-ipc}`` published on ``serviceradar.<tenant>.proton.publish`` with a
``Nats-Msg-Id``. The id and ``seq`` are derived from the block's bytes (or from the client's
``insert_deduplication_token``) and the chunk number, not from a counter: a client that retries an
INSERT after the adapter died re-sends the same blocks, which then carry the same ids, so JetStream
(within its duplicate window) and the receiver (ClickHouse insert de-duplication on ``seq``) drop
the repeats. This is ClickHouse's own rule for retried inserts (block-hash de-duplication).

Publishes are pipelined: up to ``max_inflight`` chunks await their JetStream acks at once, and
the INSERT is acknowledged to the client only after every chunk of it was acknowledged.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from dataclasses import dataclass, field

import pyarrow as pa

from wrpc import wit
from wrpc.errors import TransportError
from wrpc.queued import QueuedClient, ensure_stream

log = logging.getLogger("adapter.relay")

PUBLISH = wit.telemetry().func("proton", "publish")
_HEADROOM = 4096  # headers + the wRPC framing of the batch record


class RelayError(RuntimeError):
    """A chunk was not acknowledged by JetStream: the INSERT must fail so the client retries."""


def ipc_bytes(batch: pa.RecordBatch) -> bytes:
    """One Arrow IPC stream holding ``batch``."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue()


def block_key(stream: str, raw_block: bytes | bytearray | memoryview, token: str | None, block_index: int) -> str:
    """The identity of a block, stable across client retries."""
    h = hashlib.blake2b(digest_size=16)
    h.update(stream.encode() + b"\0")
    if token:
        h.update(f"token:{token}:{block_index}".encode())
    else:
        h.update(raw_block)
    return h.hexdigest()


def chunk_seq(key: str, chunk: int) -> int:
    """The 64-bit ``seq`` of a chunk (the receiver's de-duplication key)."""
    return int.from_bytes(hashlib.blake2b(f"{key}:{chunk}".encode(), digest_size=8).digest(), "little")


def split(batch: pa.RecordBatch, max_bytes: int) -> list[bytes]:
    """Arrow IPC chunks of ``batch``, each at most ``max_bytes`` (halving slices until they fit)."""
    data = ipc_bytes(batch)
    if len(data) <= max_bytes or batch.num_rows <= 1:
        if len(data) > max_bytes:
            raise RelayError(f"one row needs {len(data)} bytes, more than the NATS max_payload allows")
        return [data]
    # slices sized from the average row (serialised once each); a slice that is still too big is halved
    rows = max(1, int(batch.num_rows * max_bytes * 0.9 / len(data)))
    out: list[bytes] = []
    for start in range(0, batch.num_rows, rows):
        part = batch.slice(start, rows)
        data = ipc_bytes(part)
        if len(data) <= max_bytes:
            out.append(data)
        else:
            half = part.num_rows // 2
            out += split(part.slice(0, half), max_bytes) + split(part.slice(half), max_bytes)
    return out


@dataclass
class RelayStats:
    blocks: int = 0
    chunks: int = 0
    rows: int = 0
    bytes: int = 0
    duplicates: int = 0
    failures: int = 0


@dataclass
class Insert:
    """The publishes of one INSERT; :meth:`Relay.finish` waits for all of them."""

    stream: str
    token: str | None
    blocks: int = 0
    pending: list[asyncio.Task] = field(default_factory=list)


class Relay:
    """Publishes blocks as queued ``proton.publish`` calls; bounded by ``max_inflight`` chunks."""

    def __init__(self, js, tenant: str, *, max_payload: int, max_inflight: int = 16, timeout: float = 10.0) -> None:
        self.client = QueuedClient(js, tenant, timeout=timeout)
        self.js = js
        self.tenant = tenant
        self.max_chunk = max(1024, max_payload - _HEADROOM)
        self._slots = asyncio.Semaphore(max_inflight)
        self.stats = RelayStats()

    async def ensure_stream(self, name: str, max_bytes: int, duplicate_window: float) -> None:
        """Create the tenant's edge stream on ``serviceradar.<tenant>.>`` if it is missing."""
        await ensure_stream(
            self.js, name, [f"serviceradar.{self.tenant}.>"], max_bytes=max_bytes, duplicate_window=duplicate_window
        )

    async def add_block(self, ins: Insert, batch: pa.RecordBatch, raw_block: bytes | bytearray | memoryview) -> None:
        """Queue the publishes of one block; waits (backpressure) while too many chunks are in flight."""
        key = block_key(ins.stream, raw_block, ins.token, ins.blocks)
        ins.blocks += 1
        self.stats.blocks += 1
        self.stats.rows += batch.num_rows
        for i, chunk in enumerate(split(batch, self.max_chunk)):
            await self._slots.acquire()
            args = {"stream": ins.stream, "seq": chunk_seq(key, i), "arrow-ipc": chunk}
            ins.pending.append(asyncio.create_task(self._publish(args, f"{ins.stream}:{key}:{i}")))

    async def _publish(self, args: dict, msg_id: str) -> None:
        try:
            ack = await self.client.enqueue(PUBLISH, args, msg_id=msg_id)
        except TransportError as e:
            self.stats.failures += 1
            raise RelayError(str(e)) from e
        finally:
            self._slots.release()
        self.stats.chunks += 1
        self.stats.bytes += len(args["arrow-ipc"])
        if ack.duplicate:
            self.stats.duplicates += 1

    async def finish(self, ins: Insert) -> None:
        """Wait for JetStream's ack of every chunk of ``ins``; raise :class:`RelayError` if any failed."""
        results = await asyncio.gather(*ins.pending, return_exceptions=True)
        ins.pending.clear()
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise RelayError(f"{len(errors)} of {len(results)} publishes failed: {errors[0]}")

    def abandon(self, ins: Insert) -> None:
        """The INSERT failed: stop waiting (publishes already sent may still land; retries de-duplicate)."""
        for task in ins.pending:
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        ins.pending.clear()
