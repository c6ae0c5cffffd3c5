"""The collector runtime shared by every protocol: listeners, a bounded queue, batching, a sink.

Data path::

    socket ──(UDP datagram / TCP+TLS frames)──► bounded queue ──► decode worker (thread) ──►
        accumulator (flush by rows or by age) ──► sink (thread)

Overload policy: the queue holds at most ``queue_packets`` packets. When it is full a new packet is
dropped at once and counted as ``drop_queue_full`` for its exporter: the socket reader never waits,
and memory never grows past the bound. For stream transports a read of many frames is one queue slot,
capped by ``max_frame`` bytes per frame. Under overload the kernel receive buffer (``rcvbuf``) absorbs
bursts first, then packets are dropped, newest first. UDP sockets are drained in a loop on each
wake-up (not one datagram per event-loop iteration as asyncio's datagram transport does), so the
kernel buffer only has to cover the decoder's pauses: a 200,000-line syslog burst at ~130k lines/s
lands 98 % in the queue (the rest is dropped by the kernel, which only its counters show).

When the sink fails (a Proton server gone away) the rows are kept and retried at the next flush,
up to ``sink_retry_batches × batch_rows`` rows; older rows beyond that are dropped and counted as
``drop_sink_failed`` under the exporter name ``sink``.

Shutdown (:meth:`Collector.stop`, SIGTERM in the CLI) closes the listeners, decodes everything still
queued, flushes the accumulator to the sink and closes the sink: no accepted packet is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from ingest.core import MALFORMED, OVERSIZED, QUEUE_FULL, SINK_FAILED, Counters, Decoder, Packet
from ingest.sinks import Sink

log = logging.getLogger("ingest")


@dataclass
class RuntimeOptions:
    """Knobs of the shared runtime (the ``[batch]`` and ``[listen]`` config sections)."""

    batch_rows: int = 65536  # flush when this many rows are buffered
    flush_ms: int = 1000  # ... or when the oldest buffered row is this old
    queue_packets: int = 100_000  # bound of the socket → decoder queue (see overload policy)
    decode_chunk: int = 4096  # packets handed to the decoder at once
    rcvbuf: int = 32 * 1024 * 1024  # SO_RCVBUF requested for UDP sockets (the kernel may cap it)
    max_frame: int = 1024 * 1024  # largest stream frame accepted (bytes)
    sink_retry_batches: int = 4  # rows kept for retry while the sink fails, in units of batch_rows


class FramingError(ValueError):
    """The byte stream cannot be split into frames; the connection is closed.

    ``frames`` holds the complete frames found before the bad one: they are still accepted.
    """

    def __init__(self, message: str, frames: list[bytes] | None = None) -> None:
        super().__init__(message)
        self.frames = frames or []


class Framer:
    """Splits a byte stream into frames. One instance per connection."""

    def feed(self, data: bytes) -> list[bytes]:
        raise NotImplementedError


class BufferedFramer(Framer):
    """A framer over a growing buffer: subclasses append whole frames in ``_split``.

    A framing error keeps the frames completed before it (they reach the decoder) and carries them
    in the ``FramingError``.
    """

    default_max_frame = 65535

    def __init__(self, max_frame: int | None = None) -> None:
        self.buf = bytearray()
        self.max_frame = max_frame if max_frame is not None else self.default_max_frame

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        try:
            self._split(data, out)
        except FramingError as e:
            raise FramingError(str(e), out) from None
        return out

    def _split(self, data: bytes, out: list[bytes]) -> None:
        raise NotImplementedError


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# Datagrams read per wake-up of a UDP socket. asyncio's datagram transport reads one datagram per
# event-loop iteration (~15 µs here), which let the kernel drop half of a 50k datagrams/s burst;
# draining the socket in a loop costs ~1.5 µs a datagram. The cap keeps other sockets and tasks served.
UDP_READS_PER_WAKE = 4096


class _Stream(asyncio.Protocol):
    def __init__(self, col: Collector, transport_name: str) -> None:
        self.col = col
        self.name = transport_name
        self.framer = col.framer_factory() if col.framer_factory else None
        self.transport: asyncio.Transport | None = None
        self.peer: tuple = ("?", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername") or ("?", 0)
        self.col._streams[(self.peer[0], self.peer[1])] = self.transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.framer is None:
            return
        try:
            frames = self.framer.feed(data)
        except FramingError as e:
            if e.frames:
                self.col.offer(Packet(e.frames, self.peer[0], self.peer[1], now_ms(), self.name))
            reason = OVERSIZED if "too long" in str(e) else MALFORMED
            self.col.counters.drop(self.peer[0], reason)
            log.info(json.dumps({"event": "stream_closed", "peer": self.peer[0], "reason": str(e)}))
            if self.transport:
                self.transport.close()
            return
        if frames:
            self.col.offer(Packet(frames, self.peer[0], self.peer[1], now_ms(), self.name))

    def connection_lost(self, exc: Exception | None) -> None:
        self.col._streams.pop((self.peer[0], self.peer[1]), None)


class Collector:
    """One protocol's collector: owns listeners, the queue, the decode worker, the accumulator and sink."""

    def __init__(
        self,
        decoder: Decoder,
        sink: Sink,
        options: RuntimeOptions | None = None,
        framer_factory: Callable[[], Framer] | None = None,
    ) -> None:
        self.decoder = decoder
        self.sink = sink
        self.options = options or RuntimeOptions()
        self.framer_factory = framer_factory
        self.counters = Counters()
        self._queue: deque[Packet] = deque()
        self._wake = asyncio.Event()
        # Decoders keep state (templates, sessions) and are not thread-safe: the worker and a caller of
        # flush() must never decode at the same time.
        self._decode_lock = asyncio.Lock()
        self._servers: list[asyncio.AbstractServer] = []
        self._udp_socks: list[socket.socket] = []
        self._streams: dict[tuple[str, int], asyncio.Transport] = {}
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._oldest_ms = 0
        self._worker: asyncio.Task | None = None
        self._stopping = False
        self.rows_flushed = 0
        self.sink_errors = 0
        self.bound: list[tuple[str, str, int]] = []  # (transport, host, port) actually bound

    # ---- listeners -------------------------------------------------------------------------------
    async def listen_udp(self, host: str, port: int) -> int:
        """Bind a UDP socket with a large receive buffer; returns the bound port (0 picks one)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.options.rcvbuf)
        sock.bind((host, port))
        sock.setblocking(False)
        asyncio.get_running_loop().add_reader(sock.fileno(), self._read_udp, sock)
        self._udp_socks.append(sock)
        bound = sock.getsockname()[1]
        self.bound.append(("udp", host, bound))
        return bound

    async def listen_tcp(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> int:
        """Accept TCP (or TLS when ``tls`` is given) connections; frames come from ``framer_factory``."""
        if self.framer_factory is None:
            raise ValueError("a stream listener needs a framer_factory")
        name = "tls" if tls else "tcp"
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _Stream(self, name), host, port, ssl=tls, reuse_address=True
        )
        self._servers.append(server)
        bound = server.sockets[0].getsockname()[1]
        self.bound.append((name, host, bound))
        return bound

    def _read_udp(self, sock: socket.socket) -> None:
        """Drain a readable UDP socket (up to ``UDP_READS_PER_WAKE`` datagrams) into the queue."""
        received = now_ms()
        for _ in range(UDP_READS_PER_WAKE):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # e.g. an ICMP error queued on the socket after a reply: not data
                log.debug("udp error: %s", e)
                return
            self.offer(Packet(data, addr[0], addr[1], received, "udp"))

    # ---- queue -----------------------------------------------------------------------------------
    def offer(self, packet: Packet) -> None:
        """Queue a packet, or drop and count it when the queue is full (never blocks)."""
        if len(self._queue) >= self.options.queue_packets or self._stopping:
            self.counters.drop(packet.source, QUEUE_FULL)
            return
        self._queue.append(packet)
        self._wake.set()

    def start(self) -> None:
        """Start the decode worker (listeners can be added before or after)."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        housekeeping_at = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(self.options.flush_ms, 1000) / 1000)
            self._wake.clear()
            async with self._decode_lock:
                await self._drain()
                t = now_ms()
                if t - housekeeping_at >= 1000:
                    housekeeping_at = t
                    self.decoder.housekeeping(t, self.counters)
                if self._pending and t - self._oldest_ms >= self.options.flush_ms:
                    await self._flush()
            if self._stopping and not self._queue:
                return

    async def _drain(self) -> None:
        while self._queue:
            n = min(len(self._queue), self.options.decode_chunk)
            chunk = [self._queue.popleft() for _ in range(n)]
            try:
                result = await asyncio.to_thread(self.decoder.decode, chunk, self.counters)
            except Exception as e:  # a decoder bug must not stop the collector: count and go on
                log.error(json.dumps({"event": "decode_error", "error": repr(e)}))
                for p in chunk:
                    self.counters.drop(p.source, MALFORMED)
                continue
            self._send_replies(result.replies)
            for b in result.batches:
                if b.num_rows:
                    if not self._pending:
                        self._oldest_ms = now_ms()
                    self._pending.append(b)
                    self._pending_rows += b.num_rows
            if self._pending_rows >= self.options.batch_rows:
                await self._flush()

    def _send_replies(self, replies: list[tuple[str, int, str, bytes]]) -> None:
        for host, port, transport, payload in replies:
            if transport == "udp":
                for sock in self._udp_socks:  # the socket of the matching address family
                    if (sock.family == socket.AF_INET6) == (":" in host):
                        try:
                            sock.sendto(payload, (host, port))
                        except OSError as e:  # a full send buffer: the sender retries its inform
                            log.debug("udp reply not sent: %s", e)
                        break
            else:
                stream = self._streams.get((host, port))
                if stream is not None:
                    stream.write(payload)

    async def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending).combine_chunks()
        try:
            await asyncio.to_thread(self.sink.write, table)
        except Exception as e:  # e.g. Proton went away: keep the rows for the next flush, within a bound
            self.sink_errors += 1
            log.error(json.dumps({"event": "sink_error", "rows": table.num_rows, "error": repr(e)}))
            self._oldest_ms = now_ms()  # retry after flush_ms, not in a tight loop
            limit = self.options.batch_rows * self.options.sink_retry_batches
            while self._pending_rows > limit and len(self._pending) > 1:
                dropped = self._pending.pop(0)
                self._pending_rows -= dropped.num_rows
                self.counters.drop("sink", SINK_FAILED, dropped.num_rows)
            if self._stopping and self._pending_rows:  # no later flush: count what is lost
                self.counters.drop("sink", SINK_FAILED, self._pending_rows)
                self._pending, self._pending_rows = [], 0
            return
        self._pending, self._pending_rows = [], 0
        self.rows_flushed += table.num_rows

    async def flush(self) -> None:
        """Decode everything queued and write every buffered row to the sink now (safe while running)."""
        async with self._decode_lock:
            await self._drain()
            await self._flush()

    async def stop(self) -> None:
        """Stop listening, decode what is queued, flush, close the sink."""
        self._drain_udp_sockets()
        loop = asyncio.get_running_loop()
        for s in self._servers:
            s.close()
        for sock in self._udp_socks:
            loop.remove_reader(sock.fileno())
            sock.close()
        self._udp_socks = []
        for st in list(self._streams.values()):
            st.close()
        self._stopping = True
        self._wake.set()
        if self._worker is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self.flush()
        await asyncio.to_thread(self.sink.close)

    def _drain_udp_sockets(self) -> None:
        """Read the datagrams already waiting in the kernel buffers: they were accepted before the stop."""
        budget = self.options.queue_packets
        for sock in self._udp_socks:
            while budget > 0:
                try:
                    data, addr = sock.recvfrom(65535)
                except OSError:  # BlockingIOError: nothing left
                    break
                budget -= 1
                self.offer(Packet(data, addr[0], addr[1], now_ms(), "udp"))

    def health(self) -> dict:
        """A JSON-able snapshot: queue depth, rows buffered and flushed, per-exporter counters."""
        return {
            "entity": self.decoder.entity,
            "listening": [f"{t}://{h}:{p}" for t, h, p in self.bound],
            "queue_depth": len(self._queue),
            "queue_bound": self.options.queue_packets,
            "rows_buffered": self._pending_rows,
            "rows_flushed": self.rows_flushed,
            "sink_errors": self.sink_errors,
            "exporters": self.counters.snapshot(),
        }
