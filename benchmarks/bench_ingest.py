"""Collectors, bytes on the wire to Arrow batches on one core, against per-record Python parsers.

- NetFlow v9 and IPFIX: ``ingest.netflow.NetflowDecoder`` (template → NumPy dtype, one frombuffer per
  template per chunk) against the PyPI ``netflow`` package parsing the same packets (to Python dicts
  only: it does less work than we do). Target: at least 2 million records/s.
- Syslog RFC 5424 and RFC 3164: ``ingest.syslog.SyslogDecoder`` against a straightforward per-line
  regular-expression parser filling the same columns. Target: at least 500,000 lines/s.
- SNMP traps (v2c, and v3 authPriv SHA/AES): ``ingest.snmp.TrapDecoder`` against pysnmp's own
  message decoding (pyasn1), v2c only since pysnmp needs a full engine for v3. Reported.
- Syslog over UDP end to end: the collector daemon under a burst, the share of lines stored.
"""

from __future__ import annotations

import re
import struct
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks import Result, best_of
from ingest.core import Counters, Packet
from ingest.netflow import NetflowDecoder
from ingest.snmp import TrapDecoder, TrapOptions, UsmUser
from ingest.syslog import SyslogDecoder

DATA = Path(__file__).parent.parent / "tests" / "ingest_data"
SUITE = "ingest"

# a typical exporter template: addresses, next hop, interfaces, counters, times, ports, flags, AS numbers
V9_FIELDS = [(8, 4), (12, 4), (15, 4), (10, 4), (14, 4), (2, 4), (1, 4), (22, 4), (21, 4), (7, 2), (11, 2),
             (6, 1), (4, 1), (5, 1), (16, 4), (17, 4)]  # fmt: skip
IPFIX_FIELDS = [(8, 4), (12, 4), (15, 4), (10, 4), (14, 4), (2, 8), (1, 8), (152, 8), (153, 8), (7, 2), (11, 2),
                (6, 1), (4, 1), (5, 1), (16, 4), (17, 4)]  # fmt: skip


# Runs per measurement of our decoders (a NetFlow run takes ~70 ms, a syslog one ~350 ms; syslog
# uses a third of these). The shared 2-core machine's speed drifts by +-25 % over seconds (cache
# and memory bandwidth taken by neighbours), so the best of many runs is the stable estimate of
# what the code costs undisturbed.
REPEAT_OURS = 30


def cpu_best_of(fn, repeat: int = 3) -> float:
    """CPU seconds (all threads of this process) of the fastest of ``repeat`` calls.

    Reported beside the wall-clock rate: on a machine shared with other work the wall clock counts
    time this process spent waiting for a core, the CPU clock does not.
    """
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return max(best, 1e-9)


def _records(rng: np.random.Generator, fields: list[tuple[int, int]], n: int) -> bytes:
    """``n`` records with realistic values: addresses from a pool of hosts, common ports, small counters."""
    pool = rng.integers(0x0A000000, 0x0A00FFFF, 5000, dtype=np.uint32)
    cols = {
        8: rng.choice(pool, n), 12: rng.choice(pool, n), 15: rng.choice(pool[:20], n),
        10: rng.integers(1, 48, n), 14: rng.integers(1, 48, n), 2: rng.integers(1, 1000, n),
        1: rng.integers(40, 1_500_000, n), 22: rng.integers(0, 1_000_000, n), 21: rng.integers(0, 1_000_000, n),
        152: rng.integers(1_800_000_000_000, 1_800_000_100_000, n),
        153: rng.integers(1_800_000_000_000, 1_800_000_100_000, n),
        7: rng.integers(1024, 65535, n), 11: rng.choice([53, 80, 443, 22, 123, 8080], n),
        6: rng.integers(0, 64, n), 4: rng.choice([6, 17, 1], n), 5: np.zeros(n, int),
        16: rng.integers(0, 65000, n), 17: rng.integers(0, 65000, n),
    }  # fmt: skip
    dtype = np.dtype([(f"f{ie}", {1: "u1", 2: ">u2", 4: ">u4", 8: ">u8"}[ln]) for ie, ln in fields])
    arr = np.zeros(n, dtype)
    for ie, _ in fields:
        arr[f"f{ie}"] = cols[ie]
    return arr.tobytes()


def netflow_packets(version: int, n_packets: int, per_packet: int = 28) -> list[Packet]:
    """Export packets of ``per_packet`` records from 4 exporters, each re-sending its template every 20."""
    rng = np.random.default_rng(7)
    fields = V9_FIELDS if version == 9 else IPFIX_FIELDS
    reclen = sum(ln for _, ln in fields)
    tmpl = struct.pack(">HH", 256, len(fields)) + b"".join(struct.pack(">HH", ie, ln) for ie, ln in fields)
    tset = struct.pack(">HH", 0 if version == 9 else 2, 4 + len(tmpl)) + tmpl
    recs = _records(rng, fields, n_packets * per_packet)
    out = []
    for i in range(n_packets):
        body = recs[i * per_packet * reclen : (i + 1) * per_packet * reclen]
        sets = (tset if i % 80 < 4 else b"") + struct.pack(">HH", 256, 4 + len(body)) + body
        if version == 9:
            head = struct.pack(">HHIIII", 9, per_packet, 1_000_000, 1_800_000_000, i, 1)
        else:
            head = struct.pack(">HHIII", 10, 16 + len(sets), 1_800_000_000, i, 1)
        out.append(Packet(head + sets, f"192.0.2.{i % 4}", 2055, 0))
    return out


def _pypi_netflow(packets: list[Packet]) -> int:
    import netflow.utils

    templates: dict = {"netflow": {}, "ipfix": {}}
    n = 0
    for p in packets:
        n += len(netflow.utils.parse_packet(p.data, templates).flows)
    return n


def bench_netflow(quick: bool) -> list[Result]:
    results = []
    for version, label in ((9, "NetFlow v9"), (10, "IPFIX")):
        packets = netflow_packets(version, 400 if quick else 6000)
        dec = NetflowDecoder()
        rows = sum(b.num_rows for b in dec.decode(packets, Counters()).batches)  # warm: templates learnt
        ours = rows / best_of(lambda p=packets, d=dec: d.decode(p, Counters()), REPEAT_OURS)
        cpu = rows / cpu_best_of(lambda p=packets, d=dec: d.decode(p, Counters()), 3)
        sub = packets[: 80 if quick else 400]
        n = _pypi_netflow(sub)
        base = n / best_of(lambda s=sub: _pypi_netflow(s), 2)
        results.append(Result(SUITE, f"{label}, 16 fields, 28 records/packet", "records/s", ours,
                              "PyPI netflow 0.12 (to dicts)", base, ">= 2,000,000 records/s",
                              f"{rows:,} records, bytes → Arrow batch; CPU-time rate {cpu:,.0f}/s"))  # fmt: skip
    return results


def syslog_lines(kind: str, n: int) -> list[bytes]:
    if kind == "5424":
        return [(f"<{(i % 24) * 8 + i % 8}>1 2026-12-03T12:41:{i % 60:02d}.{i % 1000000:06d}+00:00 host{i % 200} "
                 f"app{i % 17} {1000 + i % 5000} ID{i % 50} [exampleSDID@32473 iut=\"3\" eventSource=\"App\"] "
                 f"request {i} served in {i % 997} ms").encode() for i in range(n)]  # fmt: skip
    return [(f"<{(i % 24) * 8 + i % 8}>Dec {1 + i % 28:2d} 12:{i % 60:02d}:{(i * 7) % 60:02d} "
             f"host{i % 200} app{i % 17}[{1000 + i % 5000}]: request {i} served in {i % 997} ms").encode()
            for i in range(n)]  # fmt: skip


RE_5424 = re.compile(rb"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (.*))?", re.S)
RE_3164 = re.compile(rb"<(\d{1,3})>(\w{3} [ \d]\d \d\d:\d\d:\d\d) (\S+) ([^\[:]+)(?:\[(\d+)\])?: ?(.*)", re.S)


def regex_parser(lines: list[bytes], kind: str) -> pa.Table:
    """The baseline: one regex match per line, values appended to column lists, then Arrow arrays."""
    cols: dict[str, list] = {k: [] for k in ("facility", "severity", "ts", "host", "app", "procid", "msg")}
    for line in lines:
        m = (RE_5424 if kind == "5424" else RE_3164).match(line)
        if m is None:
            continue
        pri = int(m.group(1))
        cols["facility"].append(pri >> 3)
        cols["severity"].append(pri & 7)
        cols["ts"].append(m.group(2).decode())
        cols["host"].append(m.group(3).decode())
        cols["app"].append(m.group(4).decode())
        cols["procid"].append((m.group(5) or b"").decode())
        cols["msg"].append((m.group(8) if kind == "5424" else m.group(6) or b"").decode())
    return pa.table(cols)


def bench_syslog(quick: bool) -> list[Result]:
    results = []
    n = 20_000 if quick else 200_000
    for kind in ("5424", "3164"):
        lines = syslog_lines(kind, n)
        packets = [Packet(x, f"198.51.100.{i % 8}", 514, 1_800_000_000_000) for i, x in enumerate(lines)]
        dec = SyslogDecoder()
        out = dec.decode(packets, Counters())
        assert sum(b.num_rows for b in out.batches) == n and not any(
            b.column("parse_error").to_numpy(zero_copy_only=False).any() for b in out.batches)  # fmt: skip
        ours = n / best_of(lambda p=packets, d=dec: d.decode(p, Counters()), max(3, REPEAT_OURS // 3))
        cpu = n / cpu_best_of(lambda p=packets, d=dec: d.decode(p, Counters()), 3)
        assert regex_parser(lines[:1000], kind).num_rows == 1000
        base = n / best_of(lambda x=lines, k=kind: regex_parser(x, k), 2)
        results.append(Result(SUITE, f"syslog RFC {kind}, one message per datagram", "lines/s", ours,
                              "per-line Python regex parser", base, ">= 500,000 lines/s",
                              f"bytes → Arrow batch, all catalog fields; CPU-time rate {cpu:,.0f}/s"))  # fmt: skip
    return results


def _pysnmp_v2c(datas: list[bytes]) -> int:
    from pyasn1.codec.ber import decoder
    from pysnmp.proto import api

    pm = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    n = 0
    for d in datas:
        msg, _ = decoder.decode(d, asn1Spec=pm.Message())
        pdu = pm.apiMessage.get_pdu(msg)
        n += len([(str(o), v.prettyPrint()) for o, v in pm.apiPDU.get_varbinds(pdu)]) > 0
    return n


def bench_traps(quick: bool) -> list[Result]:
    results = []
    n = 2_000 if quick else 20_000
    users = [UsmUser("trapuser", "SHA", "authpass123", "AES", "privpass123")]
    for name, label in (("v2c", "SNMPv2c trap (5 varbinds)"), ("v3", "SNMPv3 authPriv SHA/AES trap")):
        data = (DATA / f"snmp_{name}_trap.bin").read_bytes()
        packets = [Packet(data, "192.0.2.10", 162, 0)] * n
        dec = TrapDecoder(TrapOptions(users=users))
        dec.decode(packets[:10], Counters())  # keys localised once
        ours = n / best_of(lambda p=packets, d=dec: d.decode(p, Counters()), 3)
        base, base_name, note = None, "", "v3: HMAC + AES per message"
        if name == "v2c":
            try:
                k = n // 20
                base = k / best_of(lambda d=[data] * k: _pysnmp_v2c(d), 2)
                base_name = "pysnmp 7 / pyasn1 decode"
                note = ""
            except ImportError:
                note = "pysnmp not installed: no baseline"
        results.append(Result(SUITE, label, "traps/s", ours, base_name, base, "reported", note))
    return results


def bench_udp_end_to_end(quick: bool) -> list[Result]:
    """``serviceradar-ingest syslog`` (a subprocess) under a UDP burst from one Python sender at full
    speed: the share of lines that reach the Parquet output. The baseline is the sender's rate; what
    is lost is dropped by the kernel (its receive buffer is capped by net.core.rmem_max)."""
    import signal
    import socket
    import subprocess
    import sys
    import tempfile

    import pyarrow.parquet as pq

    n = 20_000 if quick else 200_000
    lines = [f"<14>1 2026-12-03T12:41:07.5Z host{i % 50} app {i} ID1 - request {i} served".encode() for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        out = Path(tmp) / "logs.parquet"
        proc = subprocess.Popen([sys.executable, "-m", "ingest.cli", "syslog", "--listen", f"udp://127.0.0.1:{port}",
                                 "--output", str(out)], stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            time.sleep(3)  # imports and bind
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                t0 = time.perf_counter()
                for line in lines:
                    s.sendto(line, ("127.0.0.1", port))
                sent_rate = n / (time.perf_counter() - t0)
            time.sleep(2)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        stored = pq.read_table(out).num_rows
    rmem = Path("/proc/sys/net/core/rmem_max").read_text().strip()
    return [Result(SUITE, "syslog over UDP, end to end: burst → serviceradar-ingest → Parquet", "lines/s stored",
                   sent_rate * stored / n, "lines/s sent (one Python sender, full speed)", sent_rate, "no loss",
                   f"{stored:,} of {n:,} lines stored ({stored / n:.1%}); net.core.rmem_max {rmem}")]  # fmt: skip


def run(quick: bool) -> list[Result]:
    return bench_netflow(quick) + bench_syslog(quick) + bench_traps(quick) + bench_udp_end_to_end(quick)
