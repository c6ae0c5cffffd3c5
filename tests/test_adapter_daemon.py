"""The adapter daemon as users run it: TOML config validation, flag overrides, the CLI, the health
command, memory under a flood of hostile connections, and graceful shutdown, against a real nats-server."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from adapter_fabric_helpers import ROOT, private_tmp, wait_for
from proton_driver import Client

from adapter import native as nv
from adapter.config import ConfigError, load
from fabric.process import NatsProcess, free_port

work = pytest.fixture(private_tmp)


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_adapter_config_defaults_overrides_and_errors(work: Path) -> None:
    text = 'tenant = "acme"\n[server]\nlisten = "127.0.0.1:9000"\nstreams = ["gnmi_stream"]\n'
    cfg = load(write(work / "a.toml", text))
    assert (cfg.tenant, cfg.server.listen, cfg.stream_name, cfg.server.streams) == (
        "acme", "127.0.0.1:9000", "SR_ACME", ["gnmi_stream"])
    cfg = load(None, {"tenant": "beta", "nats.url": "nats://10.0.0.1:4222", "server.listen": "0.0.0.0:8463"})
    assert (cfg.tenant, cfg.nats.url, cfg.server.listen) == ("beta", "nats://10.0.0.1:4222", "0.0.0.0:8463")
    bad = {
        'tenant = "acme"\n[server]\nlisten = 8080\n': "server.listen: expected str",
        'tenant = "acme"\n[server]\nlisen = "1:2"\n': "server.lisen: unknown key",
        'tenant = "a.b"\n': "tenant:",
        'tenant = "acme"\n[nats]\nurl = "http://x"\n': "nats.url",
        'tenant = "acme"\n[nats]\nmax_inflight = 0\n': "nats.max_inflight: must be greater than 0",
        'tenant = "acme"\n[server]\nstreams = ["nope"]\n': "not a catalog stream",
        'tenant = "acme"\n[server]\ntls_cert = "/nonexistent.pem"\ntls_key = "/k.pem"\n': "does not exist",
        'tenant = "acme"\n[server]\nallowed_spiffe_ids = ["spiffe://x/y"]\n': "needs server.tls_ca",
        "tenant = \n": "not valid TOML",
    }
    for i, (text, message) in enumerate(bad.items()):
        with pytest.raises(ConfigError, match=message):
            load(write(work / f"bad{i}.toml", text))
    with pytest.raises(ConfigError, match="does not exist"):
        load(work / "missing.toml")


def test_adapter_cli_reports_config_errors(work: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "adapter", "--config", write(work / "b.toml", 'tenant = "x y"\n')],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert out.returncode == 2 and "configuration error: tenant" in out.stderr


def hostile(port: int) -> bytes:
    """Half a megabyte of a string column that declares 64 MiB (the limit is 1 MiB), then stall-close."""
    hello = (nv.varuint(0) + nv.string("x") + nv.varuint(1) + nv.varuint(0) + nv.varuint(54453) + nv.string("")
             + nv.string("u") + nv.string(""))  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(hello + nv.varuint(nv.C_TABLES_STATUS) + nv.varuint(1) + nv.string("d") + nv.varuint(1 << 26))
        try:  # the server answers as soon as it reads the declared size, and closes
            s.sendall(b"\x00" * (512 << 10))
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def test_adapter_daemon_health_memory_and_graceful_shutdown(work: Path) -> None:
    nport = free_port()
    srv = NatsProcess(work, "nats", f'listen: "127.0.0.1:{nport}"\njetstream {{ store_dir: "{work}/js" }}\n', nport)
    srv.start()
    port = free_port()
    cfg = write(work / "adapter.toml", f'tenant = "acme"\n[server]\nlisten = "127.0.0.1:{port}"\nmax_block_mb = 1\n'
                f'[nats]\nurl = "{srv.url}"\n[health]\nstatus_file = "{work}/status.json"\n')  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "adapter", "--config", cfg], cwd=ROOT,
                            stderr=open(work / "adapter.log", "wb"))  # noqa: SIM115
    try:
        wait_for(lambda: (work / "status.json").exists(), 30, "status file")
        health = subprocess.run([sys.executable, "-m", "adapter", "--config", cfg, "--health"], capture_output=True,
                                text=True, cwd=ROOT, timeout=60)  # fmt: skip
        report = json.loads(health.stdout)
        assert health.returncode == 0 and report["healthy"] and report["pong"] and report["nats_connected"]
        idle_rss = report["rss_mb"]

        for _ in range(30):  # a flood of hostile connections: each answered, none buffered beyond the limit
            assert nv.exception_code_in(hostile(port)) in (nv.TOO_LARGE_SIZE_COMPRESSED, nv.LIMIT_EXCEEDED)
        c = Client("127.0.0.1", port=port)
        assert c.execute("INSERT INTO gnmi_stream (device) VALUES", [("after-flood",)]) == 1
        c.disconnect()
        status = wait_for(lambda: (s := json.loads((work / "status.json").read_text()))["server"]["inserts"] == 1
                          and s, 30, "status after the insert")  # fmt: skip
        assert status["server"]["protocol_errors"] >= 30
        assert status["rss_mb"] < idle_rss + 100  # bounded: 30 x 64 MiB declared, never allocated
        logs = [json.loads(line) for line in (work / "adapter.log").read_text().splitlines() if line.startswith("{")]
        assert any(rec["msg"] == "listening" and rec["tenant"] == "acme" for rec in logs)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        lines = (work / "adapter.log").read_text().splitlines()
        assert any(json.loads(line)["msg"] == "shutting down" for line in lines if line.startswith("{"))
    finally:
        if proc.poll() is None:
            proc.kill()
        srv.stop()
