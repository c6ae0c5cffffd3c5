"""Helpers for the ingest tests: real peers (softflowd, nfcapd/nfdump, logger, rsyslog, net-snmp).

A missing peer binary fails the test with the Debian package to install (``.ci/apt/ingest.txt``);
it never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

PACKAGES = {"softflowd": "softflowd", "softflowctl": "softflowd", "nfcapd": "nfdump", "nfdump": "nfdump",
            "logger": "bsdutils", "rsyslogd": "rsyslog", "snmptrap": "snmp", "snmpinform": "snmp",
            "snmptrapd": "snmptrapd", "openssl": "openssl"}  # fmt: skip


def require(binary: str) -> str:
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin")
    if path is None:
        pytest.fail(f"test peer {binary!r} is missing: apt-get install {PACKAGES.get(binary, binary)}")
    return path


def free_port(kind: int = socket.SOCK_DGRAM, host: str = "127.0.0.1") -> int:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(pred, timeout: float = 10.0, every: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(every)
    return pred()


def make_flow_pcap(path: Path) -> None:
    """The test pcap of specs/test-peers.md §1: TCP both ways, 3 UDP, ICMP echoes, an IPv6 UDP flow."""
    from scapy.all import ICMP, IP, TCP, UDP, Ether, IPv6, Raw, wrpcap

    t0 = time.time() - 120
    pkts = []

    def add(p, dt: float) -> None:
        p.time = t0 + dt
        pkts.append(p)

    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    a, b = IP(src="10.0.0.1", dst="10.0.0.2"), IP(src="10.0.0.2", dst="10.0.0.1")
    add(e / a / TCP(sport=40000, dport=80, flags="S"), 0)
    add(e / b / TCP(sport=80, dport=40000, flags="SA"), 0.1)
    add(e / a / TCP(sport=40000, dport=80, flags="A"), 0.15)
    add(e / a / TCP(sport=40000, dport=80, flags="PA") / Raw(b"x" * 100), 0.2)
    add(e / b / TCP(sport=80, dport=40000, flags="PA") / Raw(b"y" * 500), 0.3)
    add(e / a / TCP(sport=40000, dport=80, flags="FA"), 0.4)
    add(e / b / TCP(sport=80, dport=40000, flags="FA"), 0.45)
    for i in range(3):
        add(e / IP(src="10.0.0.3", dst="10.0.0.53") / UDP(sport=5353 + i, dport=53) / Raw(b"q" * 40), 1 + i / 10)
    for i in range(4):
        add(e / IP(src="10.0.0.4", dst="10.0.0.5") / ICMP() / Raw(b"p" * 56), 2 + i)
    for dt in (3, 3.3):
        add(e / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=12345, dport=443) / Raw(b"z" * 200), dt)
    wrpcap(str(path), pkts)


def softflowd_export(pcap: Path, version: int | str, workdir: Path) -> list[bytes]:
    """Run softflowd -r on ``pcap`` exporting ``version`` to a socket here; the datagrams it sent."""
    sf_bin = require("softflowd")
    ctl_bin = require("softflowctl")
    workdir.mkdir(parents=True, exist_ok=True)
    recv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    recv.bind(("127.0.0.1", 0))
    port = recv.getsockname()[1]
    ctl = workdir / f"sf{version}.ctl"
    proc = subprocess.Popen(
        [sf_bin, "-r", str(pcap), "-n", f"127.0.0.1:{port}", "-v", str(version), "-d", "-A", "milli",
         "-p", str(workdir / f"sf{version}.pid"), "-c", str(ctl)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_for(ctl.exists, 10), "softflowd did not open its control socket"
        # softflowd -r reads the pcap only when its poll loop wakes up (a control command wakes it),
        # then exports everything and exits at the end of the file ("Shutting down after pcap EOF").
        # Keep waking it until it has gone; `shutdown` (which also exports everything) is the fallback.
        def gone() -> bool:
            if proc.poll() is None:
                subprocess.run([ctl_bin, "-c", str(ctl), "statistics"], capture_output=True, timeout=10)
            return proc.poll() is not None

        if not wait_for(gone, 15, 0.1):
            subprocess.run([ctl_bin, "-c", str(ctl), "shutdown"], capture_output=True, timeout=10)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    out = []
    recv.settimeout(1.0)
    with contextlib.suppress(TimeoutError):
        while True:
            out.append(recv.recv(65535))
    recv.close()
    assert out, f"softflowd exported nothing for version {version}"
    return out


def nfdump_decode(datagrams: list[bytes], workdir: Path) -> list[dict]:
    """Feed ``datagrams`` to nfcapd and return nfdump's JSON records (times in UTC)."""
    nfcapd, nfdump = require("nfcapd"), require("nfdump")
    capdir = workdir / "nfcap"
    capdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = workdir / "nfcapd.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([nfcapd, "-w", str(capdir), "-p", str(port), "-b", "127.0.0.1", "-t", "60"],
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        # nfcapd logs "Startup nfcapd." once its socket is bound
        assert wait_for(lambda: "Startup" in log_path.read_text(), 10), log_path.read_text()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for d in datagrams:
                s.sendto(d, ("127.0.0.1", port))
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    files = sorted(capdir.glob("nfcapd.2*"))
    assert files, "nfcapd wrote no file"
    env = {**os.environ, "TZ": "UTC"}
    res = subprocess.run([nfdump, "-r", str(files[-1]), "-o", "json"], capture_output=True, text=True,
                         env=env, timeout=30, check=True)  # fmt: skip
    return json.loads(res.stdout) if res.stdout.strip().startswith("[{") or '"type"' in res.stdout else []


async def send_udp(datagrams: list[bytes], port: int, host: str = "127.0.0.1") -> None:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        for d in datagrams:
            s.sendto(d, (host, port))
    await asyncio.sleep(0)


RSYSLOG_JSON_TEMPLATE = """
template(name="parsed" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="facility" name="syslogfacility" format="jsonf")
  property(outname="severity" name="syslogseverity" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}
"""


class Rsyslog:
    """A private rsyslogd in the foreground (no /dev/log, own work dir and pid file)."""

    def __init__(self, workdir: Path, body: str) -> None:
        rsyslogd = require("rsyslogd")
        workdir.mkdir(parents=True, exist_ok=True)
        self.dir = workdir
        self.conf = workdir / "rsyslog.conf"
        self.conf.write_text(f'global(workDirectory="{workdir}")\n' + body)
        check = subprocess.run([rsyslogd, "-N1", "-f", str(self.conf)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.log = open(workdir / "rsyslogd.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen([rsyslogd, "-n", "-f", str(self.conf), "-i", str(workdir / "pid")],
                                     stdout=self.log, stderr=subprocess.STDOUT)  # fmt: skip

    def wait_tcp(self, port: int, timeout: float = 10.0) -> None:
        """Wait until rsyslogd accepts TCP on ``port`` (its inputs are bound together at start-up)."""

        def accepting() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return True
            except OSError:
                return False

        assert wait_for(accepting, timeout), f"rsyslogd is not listening on {port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def read_json_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def make_tls_certs(d: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for localhost/127.0.0.1 made with the openssl CLI."""
    openssl = require("openssl")
    d.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=ingest-test-ca")  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")  # fmt: skip
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "san.cnf")  # fmt: skip
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


class CollectorThread:
    """A real Collector serving on loopback from its own event-loop thread, for tests that drive it
    with external programs (logger, snmptrap, softflowd) while the test thread waits."""

    def __init__(self, decoder, framer=None, udp: bool = True, tcp: bool = False, tls=None,
                 options=None, host: str = "127.0.0.1") -> None:  # fmt: skip
        import threading

        from ingest.collector import Collector, RuntimeOptions
        from ingest.sinks import MemorySink

        self.sink = MemorySink()
        self.col = Collector(decoder, self.sink, options or RuntimeOptions(flush_ms=50), framer)
        self.loop = asyncio.new_event_loop()
        self.ports: dict[str, int] = {}
        ready = threading.Event()

        async def start() -> None:
            if udp:
                self.ports["udp"] = await self.col.listen_udp(host, 0)
            if tcp:
                self.ports["tcp"] = await self.col.listen_tcp(host, 0)
            if tls is not None:
                self.ports["tls"] = await self.col.listen_tcp(host, 0, tls=tls)
            self.col.start()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(start())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10), "collector did not start"

    @property
    def counters(self):
        return self.col.counters

    def stop(self):
        """Stop (flushing everything) and return the collected table (or None)."""
        fut = asyncio.run_coroutine_threadsafe(self.col.stop(), self.loop)
        fut.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        return self.sink.table()
