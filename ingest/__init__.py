"""Collectors: bytes on the wire (NetFlow v5/v9/IPFIX, syslog, SNMP traps) to catalog-typed Arrow batches.

The shared runtime (listeners, bounded queue, batching, sinks, counters) is in :mod:`ingest.collector`,
:mod:`ingest.core` and :mod:`ingest.sinks`; one module per protocol holds its decoder. See docs/ingest.md.
"""

from ingest.collector import Collector, Framer, FramingError, RuntimeOptions
from ingest.core import Counters, Decoder, DecodeResult, Packet
from ingest.sinks import EngineSink, MemorySink, ParquetSink, ProtonSink, Sink, SinkError

__all__ = ["Collector", "Counters", "DecodeResult", "Decoder", "EngineSink", "Framer", "FramingError",
           "MemorySink", "Packet", "ParquetSink", "ProtonSink", "RuntimeOptions", "Sink", "SinkError"]  # fmt: skip
