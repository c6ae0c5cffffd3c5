"""Collectors II on one core: gNMI SubscribeResponse bytes and BMP Route Monitoring messages to Arrow.

- gNMI: :func:`ingest.gnmi_wire.decode_responses` (vectorised walk of the protobuf wire format, paths
  decoded once per distinct path) against the generated protobuf classes (upb, the C runtime) with the
  fields read one by one into the same columns. Input: interface-counter notifications as a router
  sends them (a prefix with the interface key, 12 uint64 counters, an oper-status string, a
  temperature double), 48 interfaces on 8 devices, 4,096 responses per decode call (the collector's
  decode chunk). Target: at least 1 million updates/s.
- BMP: :class:`ingest.bmp.BmpDecoder` on Route Monitoring messages (IPv4 UPDATEs with 4 prefixes and
  the usual attributes, 1,000 distinct attribute blocks) to ``bgp`` rows. Baseline: pmacct's
  ``pmbmpd`` as a live collector receiving the same bytes over loopback TCP and writing JSON, timed from
  the first byte sent until its output stops growing (a C collector, but it formats every route as
  JSON and writes it to a file, which is its normal output), when pmbmpd is installed. The offline
  pcap mode of pmbmpd 1.7.7 decoded only a fraction of a synthetic capture, so it is not used.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks import Result, best_of
from ingest import bgp
from ingest.bmp import BmpDecoder, BmpFramer
from ingest.core import Counters, Packet
from ingest.gnmi_proto import gnmi_pb2 as g
from ingest.gnmi_wire import PathCache, decode_responses

SUITE = "collectors-ii"
COUNTERS = ["in-octets", "out-octets", "in-pkts", "out-pkts", "in-unicast-pkts", "out-unicast-pkts",
            "in-multicast-pkts", "out-multicast-pkts", "in-errors", "out-errors", "in-discards",
            "out-discards"]  # fmt: skip


def gnmi_responses(n: int, seed: int = 1) -> tuple[list[bytes], list[str]]:
    """``n`` interface-counter SubscribeResponses (15 updates each) and the device of each."""
    rng = np.random.default_rng(seed)
    out, devices = [], []
    for i in range(n):
        iface = i % 48
        key = {"name": f"Ethernet{iface}"}
        prefix = g.Path(elem=[g.PathElem(name="interfaces"), g.PathElem(name="interface", key=key),
                              g.PathElem(name="state")])  # fmt: skip
        ups = [g.Update(path=g.Path(elem=[g.PathElem(name="counters"), g.PathElem(name=c)]),
                        val=g.TypedValue(uint_val=int(rng.integers(0, 2**40)))) for c in COUNTERS]  # fmt: skip
        ups.append(g.Update(path=g.Path(elem=[g.PathElem(name="oper-status")]), val=g.TypedValue(string_val="UP")))
        ups.append(g.Update(path=g.Path(elem=[g.PathElem(name="temperature")]),
                            val=g.TypedValue(double_val=float(rng.normal(40, 3)))))  # fmt: skip
        ups.append(g.Update(path=g.Path(elem=[g.PathElem(name="mtu")]), val=g.TypedValue(int_val=9000)))
        n_ = g.Notification(timestamp=1_700_000_000_000_000_000 + i * 1_000_000, prefix=prefix, update=ups)
        out.append(g.SubscribeResponse(update=n_).SerializeToString())
        devices.append(f"router{i % 8}")
    return out, devices


def baseline_gnmi(responses: list[bytes], devices: list[str]) -> pa.Table:
    """The generated classes, field by field, into the same columns (what a straightforward client does)."""
    ts, dev, metric, value, text, labels = [], [], [], [], [], []
    for raw, d in zip(responses, devices, strict=True):
        resp = g.SubscribeResponse.FromString(raw)
        if resp.WhichOneof("response") != "update":
            continue
        n = resp.update
        pre_names = [e.name for e in n.prefix.elem]
        pre_keys = [(k, v) for e in n.prefix.elem for k, v in e.key.items()]
        t = n.timestamp // 1_000_000
        for u in n.update:
            ts.append(t)
            dev.append(d)
            metric.append("/".join(pre_names + [e.name for e in u.path.elem]))
            labels.append(pre_keys + [(k, v) for e in u.path.elem for k, v in e.key.items()])
            kind = u.val.WhichOneof("value")
            if kind in ("string_val", "ascii_val"):
                value.append(float("nan"))
                text.append(getattr(u.val, kind))
            else:
                value.append(float(getattr(u.val, kind)) if kind else float("nan"))
                text.append(None)
    return pa.table({"timestamp": pa.array(ts, pa.int64()), "device": dev, "metric": metric, "value": value,
                     "value_str": pa.array(text, pa.string()),
                     "labels": pa.array(labels, pa.map_(pa.string(), pa.string()))})  # fmt: skip


def bench_gnmi(quick: bool) -> Result:
    chunks = 2 if quick else 8
    data = [gnmi_responses(4096, seed) for seed in range(chunks)]
    updates = sum(len(r) for r, _ in data) * 15
    cache = PathCache()
    decode_responses(*data[0], cache)  # warm: the path cache holds the device's paths in steady state
    ours = best_of(lambda: [decode_responses(r, d, cache) for r, d in data], 3)
    base_data = data[: max(1, chunks // 4)]
    base = best_of(lambda: [baseline_gnmi(r, d) for r, d in base_data], 2) * chunks / len(base_data)
    rows = sum(decode_responses(r, d, cache)[0].num_rows for r, d in data)
    assert rows == updates, (rows, updates)
    return Result(SUITE, "gNMI SubscribeResponse bytes → Arrow rows", "updates/s", updates / ours,
                  "generated protobuf classes (upb), field by field", updates / base, target="≥ 1,000,000 updates/s",
                  note=f"{updates:,} updates, 15 per notification, 4,096 responses per decode call")  # fmt: skip


# ---- BMP ---------------------------------------------------------------------------------------------------
def bmp_stream(messages: int, seed: int = 2) -> bytes:
    """Initiation, Peer Up and ``messages`` Route Monitoring UPDATEs of 4 prefixes each."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from bmp_helpers import as_path_attr, attr, initiation, peer_up, route_monitoring, update

    rng = np.random.default_rng(seed)
    blocks = []
    for i in range(1000):
        path = [65002, *[int(x) for x in rng.integers(64512, 65534, int(rng.integers(1, 5)))]]
        blocks.append(attr(1, b"\x00") + as_path_attr([(2, path)]) + attr(3, bytes([198, 51, 100, i % 250 + 1]))
                      + attr(4, int(i).to_bytes(4, "big"), 0x80)
                      + attr(8, rng.integers(0, 2**32, 2).astype(">u4").tobytes(), 0xC0))  # fmt: skip
    out = [initiation(), peer_up("192.0.2.1", 65002)]
    for i in range(messages):
        base = (10 << 24) | ((i * 4) << 8)
        prefixes = [f"{(base + (k << 8)) >> 24}.{(base + (k << 8)) >> 16 & 255}.{(base + (k << 8)) >> 8 & 255}.0/24"
                    for k in range(4)]  # fmt: skip
        out.append(route_monitoring(update(attrs=blocks[i % 1000], nlri=prefixes)))
    return b"".join(out)


def _decode_bmp(frames: list[bytes]) -> int:
    for texts in bgp._PREFIX_TEXT.values():  # cold prefix-text cache: every prefix is formatted once here
        texts.clear()
    dec = BmpDecoder()
    rows = 0
    for i in range(0, len(frames), 4096):  # the collector's decode chunk
        res = dec.decode([Packet(frames[i : i + 4096], "192.0.2.254", 1, 0, "tcp")], Counters())
        rows += sum(b.num_rows for b in res.batches)
    return rows


def _pmbmpd_live(stream: bytes, rows: int) -> tuple[float | None, str]:
    """pmbmpd as a live collector on loopback: send the stream, time until its JSON output stops growing."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "out.json"
        # its own process group: pmbmpd forks its core process, which must go too
        proc = subprocess.Popen(["pmbmpd", "-L", "127.0.0.1", "-l", str(port), "-o", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip
        try:
            sock = _connect(port)
            t0 = time.perf_counter()
            sock.sendall(stream)
            last_size, last_change = -1, time.perf_counter()
            while time.perf_counter() - last_change < 1.0 and time.perf_counter() - t0 < 600:
                size = out.stat().st_size if out.exists() else 0
                if size != last_size:
                    last_size, last_change = size, time.perf_counter()
                time.sleep(0.02)
            elapsed = last_change - t0
            sock.close()
            written = sum(1 for line in out.open() if '"route_monitor"' in line) if out.exists() else 0
        finally:
            with contextlib.suppress(ProcessLookupError):  # slow to honour SIGTERM; its output is complete
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    if written != rows:  # a partial decode is no fair baseline
        return None, f"pmbmpd wrote {written:,} of {rows:,} rows: reported alone"
    return written / elapsed, f"pmbmpd (live, loopback TCP, JSON file output) took {elapsed:.2f} s"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _connect(port: int) -> socket.socket:
    for _ in range(100):
        try:
            return socket.create_connection(("127.0.0.1", port))
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("pmbmpd did not start listening")


def bench_bmp(quick: bool) -> Result:
    n = 20_000 if quick else 100_000
    stream = bmp_stream(n)
    frames = BmpFramer(1 << 20).feed(stream)
    rows = _decode_bmp(frames)
    assert rows == n * 4, rows
    ours = best_of(lambda: _decode_bmp(frames), 2)
    base_rate, note = None, "pmbmpd not installed: reported alone"
    if shutil.which("pmbmpd"):
        base_rate, note = _pmbmpd_live(stream, rows)
    return Result(SUITE, "BMP Route Monitoring → bgp rows", "rows/s", rows / ours,
                  "pmbmpd (pmacct 1.7.7), live, to JSON" if base_rate else "", base_rate,
                  note=f"{n:,} messages x 4 prefixes; {note}")  # fmt: skip


def run(quick: bool) -> list[Result]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return [bench_gnmi(quick), bench_bmp(quick)]
