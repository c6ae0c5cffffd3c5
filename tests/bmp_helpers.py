"""Shared helpers for the BMP tests: a collector on a background event loop, free ports, real peers."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from ingest.bmp import BmpCollector, BmpOptions, memory_collector
from ingest.collector import RuntimeOptions


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(binary: str) -> str:
    """The path of a real peer's binary; a missing peer fails the test (never a silent skip)."""
    path = shutil.which(binary) or (binary if os.path.exists(binary) else None)
    assert path, f"{binary} is not installed: `./dev test` installs it from .ci/apt/bmp.txt"
    return path


class LoopThread:
    """An asyncio loop in a thread, so synchronous tests can drive real daemons around a live collector."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class LiveBmp:
    """A BmpCollector with memory sinks listening on a loopback port, in its own loop thread."""

    def __init__(self, options: BmpOptions | None = None) -> None:
        self.lt = LoopThread()
        runtime = RuntimeOptions(flush_ms=200)
        self.col: BmpCollector = self.lt.run(_make(options, runtime))
        self.port: int = self.lt.run(self.col.listen("127.0.0.1", 0))

    def updates(self) -> pa.Table | None:
        """Rows flushed so far (the runtime flushes every 200 ms here; see settle())."""
        return self.col.collector.sink.table()  # type: ignore[attr-defined]

    def peers(self) -> pa.Table | None:
        self.lt.run(self.col.flush_peer_events())
        return self.col.peer_sink.table()  # type: ignore[attr-defined]

    def settle(self, timeout: float = 10) -> None:
        """Wait until nothing is queued or buffered (every decoded row is in the sink)."""
        settle(self.col.collector, timeout)

    def wait_for(self, what: Callable[[], bool], timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if what():
                return
            time.sleep(0.3)
        t = self.col.collector.sink.table()  # type: ignore[attr-defined]
        rows = [] if t is None else t.to_pylist()[-20:]
        raise AssertionError(f"timed out after {timeout}s waiting for {message}; health={self.col.health()}; "
                             f"last rows={rows}")

    def stop(self) -> None:
        self.lt.run(self.col.stop())
        self.lt.close()


def settle(collector: Any, timeout: float = 10) -> None:
    """Wait until a running Collector has nothing queued or buffered, twice in a row 0.3 s apart."""
    deadline, calm = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and calm < 2:
        h = collector.health()
        calm = calm + 1 if h["queue_depth"] == 0 and h["rows_buffered"] == 0 else 0
        time.sleep(0.3)


async def _make(options: BmpOptions | None, runtime: RuntimeOptions) -> BmpCollector:
    return memory_collector(options, runtime)


class Daemon:
    """A real peer process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    instances: list[Daemon] = []  # every daemon started, so fixtures can stop all they started

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None):
        Daemon.instances.append(self)
        self.log = log
        self._f = open(log, "wb")  # noqa: SIM115 (kept open for the daemon's lifetime)
        self.proc = subprocess.Popen(args, stdout=self._f, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                     start_new_session=True)  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._f.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


# ---- building BMP/BGP messages (for unit tests, fuzz seeds and benchmarks) ----------------------
def _prefix(text: str, path_id: int | None = None) -> bytes:
    import ipaddress

    net = ipaddress.ip_network(text)
    raw = net.network_address.packed[: (net.prefixlen + 7) // 8]
    pid = b"" if path_id is None else path_id.to_bytes(4, "big")
    return pid + bytes([net.prefixlen]) + raw


def attr(code: int, value: bytes, flags: int = 0x40) -> bytes:
    if len(value) > 255:
        return bytes([flags | 0x10, code]) + len(value).to_bytes(2, "big") + value
    return bytes([flags, code, len(value)]) + value


def as_path_attr(segments: list[tuple[int, list[int]]], asn_size: int = 4, code: int = 2) -> bytes:
    body = b"".join(bytes([t, len(asns)]) + b"".join(a.to_bytes(asn_size, "big") for a in asns)
                    for t, asns in segments)  # fmt: skip
    return attr(code, body)


def bgp_message(mtype: int, body: bytes) -> bytes:
    return b"\xff" * 16 + (19 + len(body)).to_bytes(2, "big") + bytes([mtype]) + body


def update(withdrawn: list = (), attrs: bytes = b"", nlri: list = (), add_path: bool = False) -> bytes:
    pid = (lambda i: i + 1) if add_path else (lambda i: None)
    w = b"".join(_prefix(p, pid(i)) for i, p in enumerate(withdrawn))
    n = b"".join(_prefix(p, pid(i)) for i, p in enumerate(nlri))
    return bgp_message(2, len(w).to_bytes(2, "big") + w + len(attrs).to_bytes(2, "big") + attrs + n)


def mp_reach_v6(next_hop: str, prefixes: list[str], add_path: bool = False) -> bytes:
    import ipaddress

    nh = ipaddress.IPv6Address(next_hop).packed
    n = b"".join(_prefix(p, i + 1 if add_path else None) for i, p in enumerate(prefixes))
    return attr(14, b"\x00\x02\x01" + bytes([16]) + nh + b"\x00" + n, 0x80)


def mp_unreach_v6(prefixes: list[str]) -> bytes:
    return attr(15, b"\x00\x02\x01" + b"".join(_prefix(p) for p in prefixes), 0x80)


def open_message(asn: int, bgp_id: str = "1.1.1.1", add_path: int = 0) -> bytes:
    import ipaddress

    caps = bytes([1, 4, 0, 1, 0, 1]) + bytes([1, 4, 0, 2, 0, 1]) + bytes([65, 4]) + asn.to_bytes(4, "big")
    if add_path:
        caps += bytes([69, 8, 0, 1, 1, add_path, 0, 2, 1, add_path])
    params = bytes([2, len(caps)]) + caps
    my_as = asn if asn < 65536 else 23456
    body = bytes([4]) + my_as.to_bytes(2, "big") + (90).to_bytes(2, "big")
    body += ipaddress.IPv4Address(bgp_id).packed + bytes([len(params)]) + params
    return bgp_message(1, body)


def per_peer(peer: str = "192.0.2.1", asn: int = 65002, flags: int = 0, peer_type: int = 0,
             ts: int = 1_700_000_000, dist: bytes = b"\0" * 8) -> bytes:  # fmt: skip
    import ipaddress

    ip = ipaddress.ip_address(peer)
    addr = ip.packed if ip.version == 6 else b"\0" * 12 + ip.packed
    if ip.version == 6:
        flags |= 0x80
    return (bytes([peer_type, flags]) + dist + addr + asn.to_bytes(4, "big") + b"\x02\x02\x02\x02"
            + ts.to_bytes(4, "big") + (123000).to_bytes(4, "big"))  # fmt: skip


def bmp(mtype: int, body: bytes) -> bytes:
    return bytes([3]) + (6 + len(body)).to_bytes(4, "big") + bytes([mtype]) + body


def initiation(name: str = "r1", descr: str = "test router") -> bytes:
    tlv = lambda t, v: t.to_bytes(2, "big") + len(v).to_bytes(2, "big") + v  # noqa: E731
    return bmp(4, tlv(2, name.encode()) + tlv(1, descr.encode()))


def peer_up(peer: str = "192.0.2.1", asn: int = 65002, add_path: int = 0, **kw: Any) -> bytes:
    local = b"\0" * 12 + bytes([192, 0, 2, 254])
    body = local + (179).to_bytes(2, "big") + (40000).to_bytes(2, "big")
    body += open_message(65001, "1.1.1.1", add_path and 1) + open_message(asn, "2.2.2.2", add_path and 2)
    return bmp(3, per_peer(peer, asn, **kw) + body)


def route_monitoring(upd: bytes, peer: str = "192.0.2.1", asn: int = 65002, **kw: Any) -> bytes:
    return bmp(0, per_peer(peer, asn, **kw) + upd)


def peer_down(peer: str = "192.0.2.1", asn: int = 65002, reason: int = 2, data: bytes = b"\x00\x05") -> bytes:
    return bmp(2, per_peer(peer, asn) + bytes([reason]) + data)


def statistics(peer: str = "192.0.2.1", counters: dict[int, int] | None = None) -> bytes:
    counters = counters or {7: 12, 0: 1}
    tlvs = b"".join(t.to_bytes(2, "big") + (8 if t >= 7 else 4).to_bytes(2, "big")
                    + v.to_bytes(8 if t >= 7 else 4, "big") for t, v in counters.items())  # fmt: skip
    return bmp(1, per_peer(peer) + len(counters).to_bytes(4, "big") + tlvs)


def standard_attrs(next_hop: str = "198.51.100.1", med: int | None = 50) -> bytes:
    import ipaddress

    out = attr(1, b"\x00") + as_path_attr([(2, [65002, 64512])]) + attr(3, ipaddress.IPv4Address(next_hop).packed)
    if med is not None:
        out += attr(4, med.to_bytes(4, "big"), 0x80)
    out += attr(5, (100).to_bytes(4, "big")) + attr(8, bytes.fromhex("fdea0064fdea00c8"), 0xC0)
    out += attr(32, b"".join(x.to_bytes(4, "big") for x in (65002, 1, 2)), 0xC0)
    return out
