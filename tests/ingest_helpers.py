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
    require("softflowd")
    ctl_bin = require("softflowctl")
    workdir.mkdir(parents=True, exist_ok=True)
    recv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    recv.bind(("127.0.0.1", 0))
    port = recv.getsockname()[1]
    ctl = workdir / f"sf{version}.ctl"
    proc = subprocess.Popen(
        ["softflowd", "-r", str(pcap), "-n", f"127.0.0.1:{port}", "-v", str(version), "-d", "-A", "milli",
         "-p", str(workdir / f"sf{version}.pid"), "-c", str(ctl)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_for(ctl.exists, 10), "softflowd did not open its control socket"
        # softflowd -r reads the file only once its poll loop wakes: a first command wakes it
        subprocess.run([ctl_bin, "-c", str(ctl), "statistics"], capture_output=True, timeout=10)
        time.sleep(0.3)
        subprocess.run([ctl_bin, "-c", str(ctl), "shutdown"], capture_output=True, timeout=10, check=True)
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
    require("nfcapd")
    require("nfdump")
    capdir = workdir / "nfcap"
    capdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(["nfcapd", "-w", str(capdir), "-p", str(port), "-b", "127.0.0.1", "-t", "60"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(0.4)  # nfcapd binds within a few ms; it has no readiness signal
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
    res = subprocess.run(["nfdump", "-r", str(files[-1]), "-o", "json"], capture_output=True, text=True,
                         env=env, timeout=30, check=True)  # fmt: skip
    return json.loads(res.stdout) if res.stdout.strip().startswith("[{") or '"type"' in res.stdout else []


async def send_udp(datagrams: list[bytes], port: int, host: str = "127.0.0.1") -> None:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        for d in datagrams:
            s.sendto(d, (host, port))
    await asyncio.sleep(0)
