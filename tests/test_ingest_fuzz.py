"""Every decoder and framer fed garbage: random bytes, truncated and mutated real packets, oversized
lengths and template bombs. Nothing may raise; every input is counted (as a packet, and as a drop
when it yields nothing usable); state stays within its bounds."""

from __future__ import annotations

import struct
from pathlib import Path

import pyarrow as pa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest.collector import FramingError
from ingest.core import Counters, Packet
from ingest.netflow import IpfixFramer, NetflowDecoder, NetflowOptions
from ingest.snmp import BerFramer, TrapDecoder, TrapOptions, UsmUser
from ingest.syslog import SyslogDecoder, SyslogFramer
from streams.catalog import CATALOG

DATA = Path(__file__).parent / "ingest_data"
NETFLOW = [(DATA / f"netflow_v{v}.bin").read_bytes() for v in (5, 9, 10)]
SNMP = [(DATA / f"snmp_{v}_trap.bin").read_bytes() for v in ("v1", "v2c", "v3")]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A real packet, truncated, with bytes overwritten, and/or with 16-bit lengths made huge."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        i = draw(st.integers(0, len(data) - 2))
        data[i : i + 2] = draw(st.sampled_from([b"\xff\xff", b"\x00\x00", b"\x00\x04", b"\x80\x00"]))
    return bytes(data[: draw(st.integers(0, len(data)))])


packets = st.one_of(st.binary(max_size=600), mutated(NETFLOW))


def _check_batches(batches: list[pa.RecordBatch], entity: str) -> int:
    schema = CATALOG[entity].arrow_schema()
    for b in batches:
        assert b.schema == schema
        b.validate(full=True)
    return sum(b.num_rows for b in batches)


@FUZZ
@given(st.lists(packets, min_size=1, max_size=8))
def test_netflow_never_raises_and_counts_everything(datas: list[bytes]) -> None:
    dec, c = NetflowDecoder(), Counters()
    dec.decode([Packet(NETFLOW[1], "192.0.2.1", 1, 0)], c)  # templates known, so mutations reach data
    out = dec.decode([Packet(d, "192.0.2.1", 1, 0) for d in datas], c)
    rows = _check_batches(out.batches, "netflow")
    assert c.total("packets") == len(datas) + 1
    assert c.total("records") >= rows
    dec.housekeeping(1 << 50, c)  # everything held expires, counted


def test_netflow_template_bomb_is_bounded() -> None:
    opts = NetflowOptions(max_templates=64, max_pending_sets=8, max_pending_bytes=4096)
    dec, c = NetflowDecoder(opts), Counters()
    fields = b"".join(struct.pack(">HH", 1 + i % 200, 4) for i in range(300))
    for burst in range(20):  # 20 packets x 50 templates of 300 fields each
        sets = b"".join(struct.pack(">HH", 2, 4 + 50 * (4 + len(fields))) + b"".join(
            struct.pack(">HH", 256 + burst * 50 + k, 300) + fields for k in range(50)) for _ in [0])  # fmt: skip
        data = struct.pack(">HHIII", 10, 16 + len(sets), 0, burst, 1) + sets
        dec.decode([Packet(data, "192.0.2.66", 1, 0)], c)
    dom = next(iter(dec.domains.values()))
    assert len(dom.templates) == 64
    assert c.drops()["malformed"] == 20 * 50 - 64
    # data for unknown templates: held within bounds, then dropped and counted
    for k in range(100):
        body = struct.pack(">HH", 60000 - k, 4 + 400) + bytes(400)
        dec.decode([Packet(struct.pack(">HHIII", 10, 16 + len(body), 0, 0, 1) + body, "192.0.2.66", 1, 0)], c)
    assert len(dom.pending) <= 8 and dom.pending_bytes <= 4096
    dec.housekeeping(1 << 50, c)
    assert c.drops()["unknown_template"] == 100 and not dom.pending


def test_netflow_domains_are_bounded() -> None:
    dec, c = NetflowDecoder(NetflowOptions(max_domains=100)), Counters()
    dec.decode([Packet(NETFLOW[2][:4] + NETFLOW[2][4:12] + struct.pack(">I", i) + NETFLOW[2][16:], "192.0.2.2", 1,
                       0) for i in range(500)], c)  # fmt: skip
    assert len(dec.domains) <= 100 and c.total("records") == 500 * 7


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode),
                          st.sampled_from([b"<13>1 ", b"<13>1 - - - - - [", b"<", b"<1>", b"<13>Dec  3 "])),
                min_size=1, max_size=20))  # fmt: skip
@example([b"\xc2", b"\x80\xc2\x80"])  # valid UTF-8 joined, not line by line: a character split across lines
def test_syslog_keeps_every_line(lines: list[bytes]) -> None:
    c = Counters()
    out = SyslogDecoder().decode([Packet(x, "192.0.2.5", 514, 1_700_000_000_000) for x in lines], c)
    assert _check_batches(out.batches, "logs") == len(lines)  # malformed lines are kept, flagged
    assert c.total("records") == len(lines) and c.drops() == {}


@FUZZ
@given(st.binary(max_size=400), st.lists(st.integers(1, 50), max_size=10))
def test_stream_framers_split_or_refuse(stream: bytes, cuts: list[int]) -> None:
    for framer in (SyslogFramer(max_frame=100), IpfixFramer(), BerFramer(max_frame=200)):
        pos = 0
        try:
            for n in [*cuts, len(stream)]:
                for frame in framer.feed(stream[pos : pos + n]):
                    assert len(frame) <= 65535
                pos += n
        except FramingError:
            pass
        assert len(framer.buf) <= 65535 + 8


USERS = [UsmUser("trapuser", "SHA", "authpass123", "AES", "privpass123")]


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=300), mutated(SNMP)), min_size=1, max_size=8))
def test_snmp_never_raises_and_drops_are_counted(datas: list[bytes]) -> None:
    dec, c = TrapDecoder(TrapOptions(users=USERS)), Counters()
    out = dec.decode([Packet(d, "192.0.2.9", 162, 0) for d in datas], c)
    rows = _check_batches(out.batches, "traps")
    assert c.total("packets") == len(datas)
    replies = len(out.replies)  # discovery reports for mutated v3 messages with empty engine IDs
    assert rows + sum(c.drops().values()) + replies >= len(datas)


def test_snmp_real_packets_decode() -> None:
    dec, c = TrapDecoder(TrapOptions(users=USERS)), Counters()
    out = dec.decode([Packet(d, "192.0.2.9", 162, 0) for d in SNMP], c)
    rows = pa.Table.from_batches(out.batches).to_pylist()
    assert [r["version"] for r in rows] == ["v1", "v2c", "v3"] and c.drops() == {}
    assert dict(rows[2]["varbinds"])["1.3.6.1.2.1.1.5.0"] == "v3 authPriv trap"
