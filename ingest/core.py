"""The contracts every collector shares: packets in, Arrow batches out, counters on the side.

A listener turns socket reads into :class:`Packet` objects and puts them on a bounded queue; a worker
drains the queue in chunks and hands each chunk to a :class:`Decoder`, which returns Arrow record
batches typed by the catalog (``streams.catalog.CATALOG[entity].arrow_schema()``) plus any replies
the protocol needs (SNMP inform acknowledgements). Decoders never raise on bad input: they count a
drop in :class:`Counters` under a reason and go on.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

# Drop reasons used by the collectors. Counters accept any string; these are the documented ones.
MALFORMED = "malformed"  # the bytes do not parse (truncated, bad lengths, bad encoding)
UNKNOWN_TEMPLATE = "unknown_template"  # NetFlow v9/IPFIX data whose template never arrived in time
QUEUE_FULL = "queue_full"  # the bounded queue between socket and decoder was full (overload)
UNSUPPORTED = "unsupported"  # a version or PDU the collector does not take (e.g. NetFlow v7, SNMP get)
AUTH_FAILED = "auth_failed"  # SNMPv3 wrong digest / unknown user, or a community not allowed
DECRYPT_FAILED = "decrypt_failed"  # SNMPv3 privacy could not be removed
OVERSIZED = "oversized"  # a frame longer than the configured maximum
SINK_FAILED = "sink_failed"  # rows the sink refused beyond the retry bound (counted under 'sink')
LATE = "late"  # reserved for records older than a configured lateness bound (not used by default)


@dataclass(slots=True)
class Packet:
    """One unit read from a socket: a datagram, or the frames a stream read produced.

    ``data`` is a datagram for UDP, or a list of complete frames for stream transports (TCP/TLS), so
    that a busy connection hands many messages to the decoder in one queue slot.
    """

    data: bytes | list[bytes]
    source: str  # sender address (no port)
    port: int
    received_ms: int
    transport: str = "udp"  # 'udp', 'tcp' or 'tls'


@dataclass
class DecodeResult:
    """What a decoder made of a chunk of packets."""

    batches: list[pa.RecordBatch] = field(default_factory=list)
    # (destination address, destination port, transport, payload) of replies to send (SNMP responses).
    replies: list[tuple[str, int, str, bytes]] = field(default_factory=list)


class Decoder(Protocol):
    """Turns packets into Arrow batches of one catalog entity; counts what it drops."""

    entity: str

    def decode(self, packets: list[Packet], counters: Counters) -> DecodeResult: ...

    def housekeeping(self, now_ms: int, counters: Counters) -> None:
        """Periodic work (template expiry, held data timeouts). Called about once a second."""
        ...


class Counters:
    """Per-exporter (sender) counters: packets, records, bytes and drops by reason.

    Updated from the event loop thread and from the decode thread, hence the lock; the increments are
    per packet or per chunk, never per record.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_exporter: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, exporter: str, *, packets: int = 0, records: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            c = self._by_exporter[exporter]
            c["packets"] += packets
            c["records"] += records
            c["bytes"] += nbytes

    def drop(self, exporter: str, reason: str, n: int = 1) -> None:
        """Count ``n`` dropped units (packets, data sets or messages) from ``exporter`` for ``reason``."""
        with self._lock:
            self._by_exporter[exporter]["drop_" + reason] += n

    def snapshot(self) -> dict[str, dict[str, int]]:
        """A copy: ``{exporter: {'packets': n, 'records': n, 'bytes': n, 'drop_<reason>': n}}``."""
        with self._lock:
            return {k: dict(v) for k, v in self._by_exporter.items()}

    def total(self, key: str) -> int:
        """Sum of one counter over every exporter (``'records'``, ``'drop_malformed'``, ...)."""
        with self._lock:
            return sum(v.get(key, 0) for v in self._by_exporter.values())

    def drops(self) -> dict[str, int]:
        """Drops by reason, summed over exporters."""
        out: dict[str, int] = defaultdict(int)
        with self._lock:
            for v in self._by_exporter.values():
                for k, n in v.items():
                    if k.startswith("drop_"):
                        out[k[5:]] += n
        return dict(out)
