"""NetFlow v5/v9/IPFIX against a real exporter (softflowd) and a reference decoder (nfcapd + nfdump).

softflowd reads a pcap this module builds and exports it; the datagrams go over real UDP sockets to
our collector and, byte for byte the same, to nfcapd. Every record must match nfdump's decoding field
by field. Further tests build packets by hand for what softflowd never sends (template withdrawal,
variable-length and enterprise fields, options with sampling, data before its template).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import free_port, make_flow_pcap, nfdump_decode, softflowd_export

from ingest.collector import Collector, RuntimeOptions
from ingest.core import Counters, Packet
from ingest.netflow import SCHEMA, NetflowDecoder, NetflowOptions
from ingest.sinks import MemorySink
from streams.catalog import CATALOG

VERSIONS = (5, 9, 10)
FLAGS = "CEUAPRSF"  # nfdump prints tcp_flags as 8 characters, most significant bit first


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[list[bytes], list[dict]]]:
    """{version: (softflowd datagrams, nfdump records)} — one softflowd and one nfcapd run each."""
    work = tmp_path_factory.mktemp("netflow")
    pcap = work / "sample.pcap"
    make_flow_pcap(pcap)
    out = {}
    for v in VERSIONS:
        grams = softflowd_export(pcap, v, work / f"sf{v}")
        out[v] = (grams, nfdump_decode(grams, work / f"nf{v}"))
    return out


def _ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp() * 1000)


def _nfdump_key(r: dict) -> tuple:
    flags = sum(1 << (7 - i) for i, c in enumerate(r.get("tcp_flags", "........")) if c != ".")
    dport = r["icmp_type"] * 256 + r["icmp_code"] if "icmp_type" in r else r["dst_port"]
    return (r.get("src4_addr") or r.get("src6_addr"), r.get("dst4_addr") or r.get("dst6_addr"),
            r.get("src_port", 0), dport, r["proto"], r["in_bytes"], r["in_packets"],
            _ms(r["first"]), _ms(r["last"]), flags, r.get("src_tos", 0), r["ip4_router"])  # fmt: skip


def _our_key(row: dict) -> tuple:
    return (row["src_ip"], row["dst_ip"], row["src_port"], row["dst_port"], row["protocol"], row["bytes"],
            row["packets"], int(row["flow_start"].timestamp() * 1000), int(row["timestamp"].timestamp() * 1000),
            row["tcp_flags"], row["tos"], row["exporter"])  # fmt: skip


async def _collect(datagrams: list[bytes]) -> tuple[pa.Table, Collector]:
    sink = MemorySink()
    col = Collector(NetflowDecoder(), sink, RuntimeOptions(flush_ms=50))
    port = await col.listen_udp("127.0.0.1", 0)
    col.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for d in datagrams:
            s.sendto(d, ("127.0.0.1", port))
    for _ in range(100):
        await asyncio.sleep(0.02)
        if col.counters.total("packets") >= len(datagrams):
            break
    await col.stop()
    return sink.table(), col


@pytest.mark.parametrize("version", VERSIONS)
def test_every_record_matches_nfdump(exports: dict, version: int) -> None:
    grams, reference = exports[version]
    table, col = asyncio.run(_collect(grams))
    assert table.schema == CATALOG["netflow"].arrow_schema()
    ours = sorted(_our_key(r) for r in table.to_pylist())
    theirs = sorted(_nfdump_key(r) for r in reference if r["type"] == "FLOW")
    assert len(theirs) == (6 if version == 5 else 7)  # v5 carries no IPv6 flow
    assert ours == theirs
    assert set(table.column("version").to_pylist()) == {version}
    assert col.counters.drops() == {}
    c = col.counters.snapshot()["127.0.0.1"]
    assert c["packets"] == len(grams) and c["records"] == len(theirs) and c["bytes"] == sum(map(len, grams))


def test_application_from_port_map(exports: dict) -> None:
    table, _ = asyncio.run(_collect(exports[9][0]))
    apps = {(r["protocol"], r["dst_port"]): r["application"] for r in table.to_pylist()}
    assert apps[(6, 80)] == "http" and apps[(17, 53)] == "dns" and apps[(17, 443)] == "https"
    assert apps[(1, 2048)] == "icmp"


def test_data_before_template_is_held_then_decoded(exports: dict) -> None:
    """Split softflowd's v9 datagram: data flowsets first, the templates in a later packet."""
    grams, reference = exports[9]
    data = grams[0]
    header, sets = data[:20], _flowsets(data[20:])
    templates = [s for s in sets if struct.unpack(">H", s[:2])[0] < 256]
    datasets = [s for s in sets if struct.unpack(">H", s[:2])[0] >= 256]
    dec, counters = NetflowDecoder(), Counters()
    first = dec.decode([Packet(header + b"".join(datasets), "192.0.2.9", 2055, 0)], counters)
    assert sum(b.num_rows for b in first.batches) == 0
    second = dec.decode([Packet(header + b"".join(templates), "192.0.2.9", 2055, 0)], counters)
    assert sum(b.num_rows for b in second.batches) == len([r for r in reference if r["type"] == "FLOW"])
    assert counters.drops() == {}


def test_data_whose_template_never_comes_is_counted(exports: dict) -> None:
    data = exports[10][0][0]
    sets = _flowsets(data[16:])
    datasets = b"".join(s for s in sets if struct.unpack(">H", s[:2])[0] >= 256)
    hdr = bytearray(data[:16])
    struct.pack_into(">H", hdr, 2, 16 + len(datasets))
    dec, counters = NetflowDecoder(NetflowOptions(pending_ttl_s=0.0)), Counters()
    dec.decode([Packet(bytes(hdr) + datasets, "192.0.2.9", 4739, 0)], counters)
    dec.housekeeping(10_000, counters)
    assert counters.drops() == {"unknown_template": len([s for s in sets if s[:2] >= b"\x01\x00"])}


def _flowsets(body: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos + 4 <= len(body):
        ln = struct.unpack_from(">H", body, pos + 2)[0]
        out.append(body[pos : pos + ln])
        pos += ln
    return out


def ipfix(sets: list[bytes], domain: int = 1, secs: int = 1_800_000_000) -> bytes:
    body = b"".join(sets)
    return struct.pack(">HHIII", 10, 16 + len(body), secs, 1, domain) + body


def ipfix_set(set_id: int, body: bytes) -> bytes:
    return struct.pack(">HH", set_id, 4 + len(body)) + body


def test_ipfix_variable_length_enterprise_fields_and_withdrawal() -> None:
    # template 300: srcIPv4, dstIPv4, an enterprise field (PEN 9, 2 bytes), applicationName (variable),
    # octetDeltaCount (4 bytes: reduced-size encoding), protocol, flowEndMilliseconds
    tmpl = struct.pack(">HH", 300, 7) + struct.pack(">HH", 8, 4) + struct.pack(">HH", 12, 4)
    tmpl += struct.pack(">HHI", 0x8000 | 77, 2, 9) + struct.pack(">HH", 96, 65535)
    tmpl += struct.pack(">HH", 1, 4) + struct.pack(">HH", 4, 1) + struct.pack(">HH", 153, 8)

    def rec(src: str, app: bytes, nbytes: int) -> bytes:
        ip = bytes(int(x) for x in src.split("."))
        return ip + bytes([192, 0, 2, 1]) + b"\xbe\xef" + bytes([len(app)]) + app + struct.pack(
            ">IBQ", nbytes, 17, 1_800_000_000_123)  # fmt: skip

    data = ipfix_set(300, rec("10.1.1.1", b"dns", 500) + rec("10.1.1.2", b"", 7) + b"\x00\x00")
    dec, counters = NetflowDecoder(), Counters()
    out = dec.decode([Packet(ipfix([ipfix_set(2, tmpl), data]), "198.51.100.7", 4739, 0)], counters)
    rows = pa.Table.from_batches(out.batches).to_pylist()
    assert [(r["src_ip"], r["dst_ip"], r["bytes"], r["protocol"], r["application"]) for r in rows] == [
        ("10.1.1.1", "192.0.2.1", 500, 17, "dns"),
        ("10.1.1.2", "192.0.2.1", 7, 17, ""),
    ]
    assert rows[0]["timestamp"] == dt.datetime(2027, 1, 15, 8, 0, 0, 123000, tzinfo=dt.UTC)
    # withdraw template 300 (field count 0): later data is held, then dropped as unknown_template
    dec.decode([Packet(ipfix([ipfix_set(2, struct.pack(">HH", 300, 0))]), "198.51.100.7", 4739, 0)], counters)
    out = dec.decode([Packet(ipfix([data]), "198.51.100.7", 4739, 0)], counters)
    assert not out.batches
    dec.options.pending_ttl_s = 0
    dec.housekeeping(1 << 50, counters)
    assert counters.drops() == {"unknown_template": 1}


def test_options_sampling_interval_is_applied() -> None:
    # options template 400: scope observationDomainId(149), samplingInterval(34)
    opt_t = struct.pack(">HHH", 400, 2, 1) + struct.pack(">HH", 149, 4) + struct.pack(">HH", 34, 4)
    opt_d = ipfix_set(400, struct.pack(">II", 1, 100))
    tmpl = struct.pack(">HH", 256, 3) + struct.pack(">HH", 8, 4) + struct.pack(">HH", 2, 8)
    tmpl += struct.pack(">HH", 1, 8)
    data = ipfix_set(256, bytes([10, 0, 0, 9]) + struct.pack(">QQ", 3, 1500))
    dec, counters = NetflowDecoder(), Counters()
    pkt = ipfix([ipfix_set(3, opt_t), opt_d, ipfix_set(2, tmpl), data])
    rows = pa.Table.from_batches(dec.decode([Packet(pkt, "198.51.100.8", 4739, 0)], counters).batches)
    assert rows.select(["packets", "bytes", "sampling_interval"]).to_pylist() == [
        {"packets": 300, "bytes": 150000, "sampling_interval": 100}
    ]


def test_cli_writes_parquet_and_flushes_on_sigterm(exports: dict, tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "flows.parquet"
    proc = subprocess.Popen([sys.executable, "-m", "ingest.cli", "netflow", "--listen", f"127.0.0.1:{port}",
                             "--output", str(out)], stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = proc.stderr.readline()
        assert '"listening"' in line, line
        grams = exports[10][0]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for d in grams:
                s.sendto(d, ("127.0.0.1", port))
        time.sleep(0.3)  # the datagrams are in the socket buffer or queue; SIGTERM must flush them
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        rest = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert '"stopped"' in rest
    table = pq.read_table(out)
    assert table.num_rows == 7 and table.schema == CATALOG["netflow"].arrow_schema()


def test_cli_rejects_bad_config(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[netflow]\ntemplate_ttl_s = "soon"\n')
    res = subprocess.run([sys.executable, "-m", "ingest.cli", "netflow", "--listen", "127.0.0.1:0",
                          "--config", str(cfg), "--output", str(tmp_path / "x.parquet")],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert res.returncode == 2 and "netflow.template_ttl_s must be float" in res.stderr


def test_templates_expire_after_their_lifetime(exports: dict) -> None:
    grams = exports[9][0]
    dec, counters = NetflowDecoder(NetflowOptions(template_ttl_s=60)), Counters()
    first = dec.decode([Packet(grams[0], "192.0.2.9", 2055, 1_000)], counters)
    assert sum(b.num_rows for b in first.batches) == 7
    dec.housekeeping(1_000 + 30_000, counters)  # within the lifetime: kept
    assert all(d.templates for d in dec.domains.values())
    dec.housekeeping(1_000 + 61_000, counters)  # past it: forgotten
    assert all(not d.templates for d in dec.domains.values())
    data_only = grams[0][:20] + b"".join(s for s in _flowsets(grams[0][20:]) if s[:2] >= b"\x01\x00")
    assert not dec.decode([Packet(data_only, "192.0.2.9", 2055, 62_000)], counters).batches  # held, not decoded


class _SetWalkOnly(NetflowDecoder):
    """The decoder with its vectorised one-data-set path switched off: every datagram walks its sets."""

    vectorised = False


LAYOUTS = [[(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4), (21, 4), (22, 4)],
           [(8, 4), (12, 4), (1, 8), (2, 8), (152, 8), (153, 8), (6, 1), (15, 4)],
           [(12, 4), (8, 4), (11, 2), (7, 2), (10, 2), (14, 2), (4, 1), (5, 1), (1, 4)]]  # fmt: skip
EXPORTERS = [("192.0.2.1", 1), ("192.0.2.1", 2), ("192.0.2.2", 1)]  # (address, source id / domain)

EVENT = st.one_of(
    st.tuples(st.just("template"), st.integers(0, 2), st.integers(0, 1), st.integers(0, 2)),
    st.tuples(st.just("data"), st.integers(0, 2), st.integers(0, 1), st.integers(0, 6), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("sampling"), st.integers(0, 2), st.sampled_from([1, 10, 100])),
    st.tuples(st.just("withdraw"), st.integers(0, 2), st.integers(0, 1)),
    st.tuples(st.just("garbage"), st.binary(max_size=40)),
)  # fmt: skip


def _datagram(version: int, event: tuple, seq: int) -> Packet:
    """One datagram of a scripted exporter: a template, a one-set data datagram, options with a
    sampling interval, an IPFIX withdrawal, or garbage. Data records are random bytes whose length
    fits one layout, whatever template the collector holds for that id at the time."""
    kind, who = event[0], event[1] if len(event) > 1 and isinstance(event[1], int) else 0
    src, domain = EXPORTERS[who]
    tset_id, oset_id = (0, 1) if version == 9 else (2, 3)

    def set_(sid: int, body: bytes) -> bytes:
        return struct.pack(">HH", sid, 4 + len(body)) + body

    if kind == "template":
        fields = LAYOUTS[event[3]]
        body = struct.pack(">HH", 256 + event[2], len(fields)) + b"".join(struct.pack(">HH", *f) for f in fields)
        sets = set_(tset_id, body)
    elif kind == "data":
        reclen = sum(ln for _, ln in LAYOUTS[event[3] % 3])
        sets = set_(256 + event[2], np.random.default_rng(event[4]).bytes(reclen * (1 + event[3])))
    elif kind == "sampling":  # options template 400 (scope: a 4-byte id; option: samplingInterval) + data
        if version == 9:
            opt = struct.pack(">HHH", 400, 4, 4) + struct.pack(">HHHH", 1, 4, 34, 4)
        else:
            opt = struct.pack(">HHH", 400, 2, 1) + struct.pack(">HHHH", 149, 4, 34, 4)
        sets = set_(oset_id, opt) + set_(400, struct.pack(">II", domain, event[2]))
    elif kind == "withdraw" and version == 10:
        sets = set_(tset_id, struct.pack(">HH", 256 + event[2], 0))
    else:
        return Packet(event[-1] if kind == "garbage" else b"", src, 2055, seq)
    if version == 9:
        head = struct.pack(">HHIIII", 9, 1, 5_000 + seq, 1_800_000_000 + seq, seq, domain)
    else:
        head = struct.pack(">HHIII", 10, 16 + len(sets), 1_800_000_000 + seq, seq, domain)
    return Packet(head + sets, src, 2055, seq)


def _as_frames(datagrams: list[Packet]) -> list[Packet]:
    """Runs of up to 3 consecutive messages of one sender as one packet of frames (order kept)."""
    out: list[Packet] = []
    for p in datagrams:
        if out and out[-1].source == p.source and len(out[-1].data) < 3:
            out[-1].data.append(p.data)
        else:
            out.append(Packet([p.data], p.source, p.port, p.received_ms, "tcp"))
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(version=st.sampled_from([9, 10]), script=st.lists(EVENT, min_size=1, max_size=40),
       cuts=st.lists(st.integers(0, 40), max_size=3), max_domains=st.sampled_from([65536, 2]))  # fmt: skip
def test_vectorised_decoding_equals_the_set_walk(version: int, script: list, cuts: list[int],
                                                  max_domains: int) -> None:  # fmt: skip
    """Chunks mixing one-set data datagrams with template (re)definitions, withdrawals, sampling
    announcements and garbage decode to the same rows, with the same counters,
    as the datagram-by-datagram set walk: every record sees the state its datagram saw (also when
    exporter domains are forgotten to stay within ``max_domains``)."""
    warm = [_datagram(version, ("template", w, t, (w + t) % 3), 0) for w in range(3) for t in range(2)]
    grams = [_datagram(version, e, i + 1) for i, e in enumerate(script)]
    chunks = [warm] + [grams[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(grams)], strict=True)]
    options = NetflowOptions(max_domains=max_domains)
    fast, walk, framed = NetflowDecoder(options), _SetWalkOnly(options), NetflowDecoder(options)
    fast_c, walk_c, framed_c = Counters(), Counters(), Counters()
    keys = [(name, "ascending") for name in SCHEMA.names]  # rows of a chunk are not in arrival order
    for chunk in chunks:
        want = pa.Table.from_batches(walk.decode(chunk, walk_c).batches, schema=SCHEMA).sort_by(keys)
        got = pa.Table.from_batches(fast.decode(chunk, fast_c).batches, schema=SCHEMA)
        assert got.sort_by(keys).equals(want)
        # the same messages as a stream transport hands them over: lists of consecutive frames
        got = pa.Table.from_batches(framed.decode(_as_frames(chunk), framed_c).batches, schema=SCHEMA)
        assert got.sort_by(keys).equals(want)
    assert fast_c.snapshot() == walk_c.snapshot() == framed_c.snapshot()
