"""The shared collector runtime: overload policy, flushing by size and time, sinks, config, CLI errors."""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingest_helpers import free_port

from ingest.collector import Collector, RuntimeOptions
from ingest.config import ConfigError, load_config
from ingest.core import Counters, Packet
from ingest.netflow import NetflowDecoder, NetflowOptions
from ingest.sinks import EngineSink, MemorySink, ParquetSink, ProtonSink, SinkError
from ingest.snmp import TrapOptions
from ingest.syslog import SyslogDecoder, SyslogFramer
from streams.catalog import CATALOG

V5 = (Path(__file__).parent / "ingest_data" / "netflow_v5.bin").read_bytes()  # 6 records from softflowd


def test_queue_full_drops_newest_and_counts() -> None:
    async def go() -> tuple[Collector, MemorySink]:
        sink = MemorySink()
        col = Collector(NetflowDecoder(), sink, RuntimeOptions(queue_packets=10))
        for _ in range(25):  # the worker is not started: the queue fills up
            col.offer(Packet(V5, "192.0.2.1", 2055, 0))
        assert col.health()["queue_depth"] == 10
        col.start()
        await col.stop()
        return col, sink

    col, sink = asyncio.run(go())
    assert col.counters.drops() == {"queue_full": 15}
    assert sink.rows() == 10 * 6 and col.counters.total("packets") == 10


def test_flush_by_rows_and_by_time() -> None:
    async def go() -> tuple[list[int], int]:
        sink = MemorySink()
        col = Collector(NetflowDecoder(), sink, RuntimeOptions(batch_rows=12, flush_ms=60_000, decode_chunk=2))
        col.start()
        for _ in range(5):
            col.offer(Packet(V5, "192.0.2.1", 2055, 0))
        for _ in range(500):  # wait for the 5 packets to be decoded
            await asyncio.sleep(0.02)
            if col.counters.total("packets") == 5 and col.health()["rows_buffered"] == 6:
                break
        by_rows = [t.num_rows for t in sink.tables]  # 2 chunks of 2 packets = 12 rows each
        col.options.flush_ms = 50
        for _ in range(500):  # the remaining 6 rows go out on age (the worker wakes every second)
            await asyncio.sleep(0.02)
            if sink.rows() == 30:
                break
        by_time = sink.rows()
        await col.stop()
        return by_rows, by_time

    by_rows, by_time = asyncio.run(go())
    assert by_rows == [12, 12] and by_time == 30


def test_udp_listener_sets_a_large_receive_buffer() -> None:
    async def go() -> int:
        col = Collector(NetflowDecoder(), MemorySink(), RuntimeOptions(rcvbuf=4 * 1024 * 1024))
        await col.listen_udp("127.0.0.1", 0)
        size = col._udp_socks[0].getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        await col.stop()
        return size

    assert asyncio.run(go()) > 1024 * 1024  # the kernel default is about 208 KiB


def test_tcp_stream_oversized_frame_is_counted_and_closed() -> None:
    async def go() -> Collector:
        col = Collector(SyslogDecoder(), MemorySink(), RuntimeOptions(flush_ms=20), lambda: SyslogFramer(100))
        port = await col.listen_tcp("127.0.0.1", 0)
        col.start()
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"<13>1 - - - - - - fine\n" + b"999999 " + b"x" * 50)
        await w.drain()
        for _ in range(500):
            await asyncio.sleep(0.02)
            if col.counters.drops():
                break
        w.close()
        await col.stop()
        return col

    col = asyncio.run(go())
    assert col.counters.drops() == {"oversized": 1} and col.rows_flushed == 1


def test_parquet_sink_round_trip(tmp_path: Path) -> None:
    schema = CATALOG["netflow"].arrow_schema()
    batch = NetflowDecoder().decode([Packet(V5, "192.0.2.1", 1, 0)], Counters()).batches[0]
    sink = ParquetSink(str(tmp_path / "f.parquet"), schema)
    sink.write(pa.Table.from_batches([batch]))
    sink.write(pa.Table.from_batches([batch]))
    sink.close()
    t = pq.read_table(tmp_path / "f.parquet")
    assert t.schema == schema and t.num_rows == 12
    with pytest.raises(SinkError, match="cannot open Parquet output"):
        ParquetSink(str(tmp_path / "missing-dir" / "x.parquet"), schema)


def test_proton_sink_unreachable_is_a_clear_error() -> None:
    port = free_port(socket.SOCK_STREAM)  # nothing listens there
    with pytest.raises(SinkError, match=f"Proton at 127.0.0.1:{port} is unreachable"):
        ProtonSink(f"proton://default@127.0.0.1:{port}/default", "netflow_stream", CATALOG["netflow"].arrow_schema())
    with pytest.raises(SinkError, match="must start with proton://"):
        ProtonSink("http://127.0.0.1:1", "x", CATALOG["netflow"].arrow_schema())


def test_engine_sink_feeds_the_embedded_engine() -> None:
    from streams import Engine

    engine, results = Engine(), []
    engine.register("STREAM flows WHERE protocol = 6", callback=lambda q, t: results.append(t))
    batch = NetflowDecoder().decode([Packet(V5, "192.0.2.1", 1, 0)], Counters()).batches[0]
    EngineSink("netflow", engine).write(pa.Table.from_batches([batch, batch]))
    rows = pa.concat_tables(results).to_pylist()
    assert len(rows) == 4 and {r["protocol"] for r in rows} == {6}  # the TCP flows, from both batches
    assert {(r["src_ip"], r["dst_port"]) for r in rows} == {("10.0.0.1", 80), ("10.0.0.2", 40000)}


def test_config_full_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "traps.toml"
    good.write_text("""
[listen]
udp = ["127.0.0.1:1162", "[::1]:1162"]
[output]
parquet = "traps.parquet"
[batch]
rows = 1000
flush_ms = 200
[health]
listen = "127.0.0.1:9109"
[traps]
communities = ["public"]
[[traps.users]]
name = "u1"
auth_protocol = "SHA-256"
auth_password = "authpass123"
priv_protocol = "AES-256"
priv_password = "privpass123"
""")
    cfg = load_config(str(good), "traps", TrapOptions)
    assert cfg.udp == ["127.0.0.1:1162", "[::1]:1162"] and cfg.runtime.batch_rows == 1000
    assert cfg.protocol.users[0].auth_protocol == "SHA-256" and cfg.protocol.communities == ["public"]
    cases = {
        "[batch]\nrows = 0\n": "batch.rows must be positive",
        "[batch]\nrowz = 5\n": "unknown key batch.rowz",
        "[netflow]\ntemplate_ttl_s = 1\n": "section [netflow] does not apply",
        "[traps]\nusers = [{name='x', auth_protocol='SHA-1', auth_password='12345678'}]\n": "auth_protocol must be",
        "[traps]\nusers = [{name='x', auth_password='short'}]\n": "at least 8 characters",
        "[listen]\nudp = ['nohost']\n": "expected HOST:PORT",
        "[bogus]\n": "unknown section [bogus]",
        "not toml = = 1": "invalid TOML",
    }
    for text, message in cases.items():
        f = tmp_path / "bad.toml"
        f.write_text(text)
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_config(str(f), "traps", TrapOptions)
    nf = tmp_path / "nf.toml"
    nf.write_text("[netflow]\nsampling_interval = 10\napply_sampling = false\n")
    assert load_config(str(nf), "netflow", NetflowOptions).protocol.sampling_interval == 10


def test_cli_proton_unreachable_exits_2() -> None:
    port = free_port(socket.SOCK_STREAM)
    res = subprocess.run([sys.executable, "-m", "ingest.cli", "syslog", "--listen", "127.0.0.1:0",
                          "--proton", f"proton://127.0.0.1:{port}"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "unreachable" in res.stderr


def test_cli_needs_an_output_and_a_listener(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "ingest.cli", "traps", "--listen", "127.0.0.1:0"],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert res.returncode == 2 and "choose exactly one output" in res.stderr
    res = subprocess.run([sys.executable, "-m", "ingest.cli", "traps", "--output", str(tmp_path / "t.parquet")],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert res.returncode == 2 and "nothing to listen on" in res.stderr


def test_v5_sampling_from_header_is_applied() -> None:
    data = bytearray(V5)
    struct.pack_into(">H", data, 22, 0x4000 | 10)  # sampling mode 1, interval 10
    rows = pa.Table.from_batches(NetflowDecoder().decode([Packet(bytes(data), "192.0.2.1", 1, 0)], Counters()).batches)
    plain = pa.Table.from_batches(NetflowDecoder().decode([Packet(V5, "192.0.2.1", 1, 0)], Counters()).batches)
    assert rows.column("bytes").to_pylist() == [b * 10 for b in plain.column("bytes").to_pylist()]
    assert set(rows.column("sampling_interval").to_pylist()) == {10}


def test_ipv6_udp_listener_and_exporter_address() -> None:
    async def go() -> pa.Table:
        sink = MemorySink()
        col = Collector(NetflowDecoder(), sink, RuntimeOptions(flush_ms=20))
        port = await col.listen_udp("::1", 0)
        col.start()
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.sendto(V5, ("::1", port))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if col.counters.total("packets"):
                break
        await col.stop()
        return sink.table()

    table = asyncio.run(go())
    assert table.num_rows == 6 and set(table.column("exporter").to_pylist()) == {"::1"}


class FlakySink(MemorySink):
    """A sink that fails its first ``failures`` writes, as a Proton server that is restarting would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def write(self, table: pa.Table) -> None:
        if self.failures:
            self.failures -= 1
            raise SinkError("server restarting")
        super().write(table)


def test_sink_failure_keeps_rows_for_retry_within_a_bound() -> None:
    async def go(failures: int) -> tuple[Collector, FlakySink]:
        sink = FlakySink(failures)
        col = Collector(NetflowDecoder(), sink, RuntimeOptions(batch_rows=6, sink_retry_batches=2, decode_chunk=1))
        col.start()
        for _ in range(5):
            col.offer(Packet(V5, "192.0.2.1", 2055, 0))
            await asyncio.sleep(0.05)
        await col.stop()
        return col, sink

    col, sink = asyncio.run(go(failures=1))  # one failed write: everything arrives later
    assert sink.rows() == 30 and col.sink_errors == 1 and col.counters.drops() == {}
    col, sink = asyncio.run(go(failures=100))  # the sink never recovers: rows beyond the bound are counted
    assert sink.rows() == 0 and col.counters.drops() == {"sink_failed": 30}


def test_a_decoder_bug_is_counted_not_fatal() -> None:
    class Broken(NetflowDecoder):
        def decode(self, packets: list[Packet], counters: Counters):
            if packets[0].port == 1:
                raise RuntimeError("bug")
            return super().decode(packets, counters)

    async def go() -> tuple[Collector, MemorySink]:
        sink = MemorySink()
        col = Collector(Broken(), sink, RuntimeOptions(decode_chunk=1))
        col.start()
        col.offer(Packet(V5, "192.0.2.1", 1, 0))
        col.offer(Packet(V5, "192.0.2.1", 2, 0))
        await col.stop()
        return col, sink

    col, sink = asyncio.run(go())
    assert col.counters.drops() == {"malformed": 1} and sink.rows() == 6


def test_proton_columns_are_driver_ready() -> None:
    from ingest.sinks import _to_driver_column
    from ingest.snmp import TrapDecoder

    data = (Path(__file__).parent / "ingest_data" / "snmp_v2c_trap.bin").read_bytes()
    table = pa.Table.from_batches(TrapDecoder().decode([Packet(data, "192.0.2.1", 162, 1_800_000_000_000)],
                                                       Counters()).batches)  # fmt: skip
    varbinds = _to_driver_column(table.column("varbinds"))
    assert isinstance(varbinds[0], dict) and varbinds[0]["1.3.6.1.6.3.1.1.4.1.0"] == "1.3.6.1.6.3.1.1.5.4"
    assert _to_driver_column(table.column("timestamp"))[0].year == 2027


def test_stop_reads_datagrams_still_in_the_kernel_buffer() -> None:
    async def go() -> tuple[MemorySink, Collector]:
        sink = MemorySink()
        col = Collector(NetflowDecoder(), sink)
        port = await col.listen_udp("127.0.0.1", 0)
        col.start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(20):
                s.sendto(V5, ("127.0.0.1", port))
        await col.stop()  # no loop iteration since the sends: the transport has read nothing yet
        return sink, col

    sink, col = asyncio.run(go())
    assert sink.rows() == 20 * 6 and col.counters.drops() == {}


class _OneAtATime(NetflowDecoder):
    """A NetFlow decoder that records how many decode calls overlap (decoders keep template state)."""

    def __init__(self) -> None:
        super().__init__()
        import threading

        self._guard = threading.Lock()
        self.active = self.most = 0

    def decode(self, packets, counters):
        import time

        with self._guard:
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            time.sleep(0.002)  # widen the window in which an overlap would show
            return super().decode(packets, counters)
        finally:
            with self._guard:
                self.active -= 1


def test_flush_while_running_never_decodes_concurrently() -> None:
    async def go() -> tuple[_OneAtATime, MemorySink]:
        decoder, sink = _OneAtATime(), MemorySink()
        col = Collector(decoder, sink, RuntimeOptions(decode_chunk=4, flush_ms=10))
        col.start()
        for _ in range(30):
            for _ in range(8):
                col.offer(Packet(V5, "192.0.2.1", 2055, 0))
            await asyncio.gather(col.flush(), col.flush(), asyncio.sleep(0))
        await col.stop()
        return decoder, sink

    decoder, sink = asyncio.run(go())
    assert decoder.most == 1
    assert sum(t.num_rows for t in sink.tables) == 30 * 8 * 6  # every record of every packet, once
