"""``serviceradar-edge``: the adapter, collectors, agent and checker in one process, as a real subprocess
against a real nats-server, a proton-driver client, UDP syslog and a wRPC poll; SIGTERM flushes everything."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import nats
import pyarrow.parquet as pq
import pytest
from adapter_fabric_helpers import ROOT, private_tmp, wait_for
from proton_driver import Client

from fabric.process import NatsProcess, free_port
from wrpc import tcp, wit

EDGE = str(Path(sys.executable).parent / "serviceradar-edge")
work = pytest.fixture(private_tmp)


def events(log: Path) -> list[dict]:
    return [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]


def udp_bound(port: int) -> bool:
    return any(f":{port:04X}" in Path(p).read_text() for p in ("/proc/net/udp", "/proc/net/udp6"))


def pull_configs(work: Path) -> tuple[int, int]:
    cport, aport = free_port(), free_port()
    (work / "checker.toml").write_text(
        f'[checker]\nlisten = "127.0.0.1:{cport}"\n[[checks]]\nname = "self"\ntype = "port"\nhost = "127.0.0.1"\n'
        f"port = {cport}\n"
    )
    (work / "agent.toml").write_text(
        f'[agent]\nid = "edge-1"\nlisten = "127.0.0.1:{aport}"\n[[checkers]]\naddress = "127.0.0.1:{cport}"\n'
    )
    return cport, aport


async def poll(port: int) -> dict:
    return await tcp.Client("127.0.0.1", port, timeout=10).invoke(wit.telemetry().func("agent", "poll"))


async def stream_messages(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        return (await nc.jetstream().stream_info(stream)).state.messages
    finally:
        await nc.close()


def test_edge_one_process_serves_every_component_and_flushes_on_sigterm(work: Path) -> None:
    nport = free_port()
    srv = NatsProcess(work, "nats", f'listen: "127.0.0.1:{nport}"\njetstream {{ store_dir: "{work}/js" }}\n', nport)
    srv.start()
    pport, sport, hport, nfport = free_port(), free_port(), free_port(), free_port()
    (work / "adapter.toml").write_text(
        f'tenant = "acme"\n[server]\nlisten = "127.0.0.1:{pport}"\n[nats]\nurl = "{srv.url}"\n'
        f'[health]\nstatus_file = "{work}/adapter-status.json"\n'
    )
    (work / "syslog.toml").write_text(
        f'[listen]\nudp = ["127.0.0.1:{sport}"]\n[output]\nparquet = "{work}/logs.parquet"\n'
        f'[batch]\nflush_ms = 60000\n[health]\nlisten = "127.0.0.1:{hport}"\n'
    )
    _, aport = pull_configs(work)
    (work / "edge.toml").write_text(  # relative names: relative to edge.toml
        'adapter = "adapter.toml"\ncollectors = ["syslog:syslog.toml"]\nagent = "agent.toml"\n'
        'checker = "checker.toml"\n'
    )
    netflow = f"netflow --listen udp://127.0.0.1:{nfport} --output {work}/flows.parquet"
    log = work / "edge.log"
    proc = subprocess.Popen([EDGE, "--config", str(work / "edge.toml"), "--collector", netflow], cwd=work,
                            stderr=open(log, "wb"))  # noqa: SIM115  # fmt: skip
    try:
        wait_for(lambda: proc.poll() is not None or any(e.get("msg") == "edge started" for e in events(log)), 60,
                 "the edge to start")  # fmt: skip
        assert proc.poll() is None, log.read_text()
        started = next(e for e in events(log) if e.get("msg") == "edge started")
        assert started["components"] == ["adapter", "collector syslog", "collector netflow", "checker", "agent"]
        assert udp_bound(sport) and udp_bound(nfport)

        # syslog over UDP, held in the collector's buffer (flush_ms 60 s) until SIGTERM
        lines = [f"<13>1 2026-01-01T00:00:00Z host{i} app - - - line {i}".encode() for i in range(500)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i, line in enumerate(lines):
                s.sendto(line, ("127.0.0.1", sport))
                if i % 50 == 49:
                    wait_for(lambda n=i + 1: json.load(urllib.request.urlopen(f"http://127.0.0.1:{hport}/",
                                                                              timeout=2))["rows_buffered"] >= n,
                             20, "the collector to take the lines")  # fmt: skip
        health = json.load(urllib.request.urlopen(f"http://127.0.0.1:{hport}/", timeout=2))
        assert health["rows_buffered"] == 500 and health["rows_flushed"] == 0

        # a proton-driver INSERT through the adapter into JetStream
        c = Client("127.0.0.1", port=pport)
        assert c.execute("INSERT INTO gnmi_stream (device) VALUES", [("edge-1",), ("edge-2",)]) == 2
        c.disconnect()
        assert wait_for(lambda: asyncio.run(stream_messages(srv.url, "SR_ACME")) >= 1, 30, "the insert in JetStream")
        wait_for(lambda: json.loads((work / "adapter-status.json").read_text())["server"]["inserts"] == 1, 30,
                 "the adapter's status file")  # fmt: skip
        adapter_health = subprocess.run([sys.executable, "-m", "adapter", "--config", str(work / "adapter.toml"),
                                         "--health"], capture_output=True, text=True, cwd=ROOT, timeout=60)  # fmt: skip
        assert adapter_health.returncode == 0, adapter_health.stdout + adapter_health.stderr
        report = json.loads(adapter_health.stdout)
        assert report["healthy"] and report["server"]["inserts"] == 1 and report["pid"] == proc.pid

        # the agent polls the checker, both in the same process
        answer = asyncio.run(poll(aport))
        assert answer["agent-id"] == "edge-1" and not answer["errors"]
        assert [st["service-name"] for st in answer["statuses"]] == ["self"] and answer["statuses"][0]["available"]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        srv.stop()
    rows = pq.read_table(work / "logs.parquet").to_pylist()
    assert sorted(r["message"] for r in rows) == sorted(f"line {i}" for i in range(500))
    assert pq.read_table(work / "flows.parquet").num_rows == 0  # the second collector's file is complete too
    evs = events(log)
    assert any(e.get("event") == "stopped" and e.get("rows_flushed") == 500 and e["component"] == "collector syslog"
               for e in evs)  # fmt: skip
    assert any(e.get("msg") == "shutting down" and e.get("component") == "adapter" for e in evs)
    assert any(e.get("msg") == "stopped" and e.get("role") == "agent" for e in evs)
    assert evs[-1]["msg"] == "edge stopped" and evs[-1]["failed"] == []
    assert all({"ts", "level", "logger"} <= e.keys() for e in evs)


def test_edge_bad_component_config_is_named(work: Path) -> None:
    (work / "syslog.toml").write_text('[listen]\nudp = ["127.0.0.1:1"]\n[sislog]\nx = 1\n')
    _, _ = pull_configs(work)
    out = subprocess.run([EDGE, "--checker", str(work / "checker.toml"), "--collector", f"syslog:{work}/syslog.toml"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 2 and "collector syslog: configuration error" in out.stderr and "sislog" in out.stderr
    (work / "agent2.toml").write_text('[agent]\nid = "x"\nlisten = 7\n')
    out = subprocess.run([EDGE, "--agent", str(work / "agent2.toml")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "serviceradar-edge: agent: configuration error" in out.stderr
    out = subprocess.run([EDGE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "nothing to run" in out.stderr


def test_edge_start_failure_names_the_component_and_stops_the_others(work: Path) -> None:
    cport, _ = pull_configs(work)
    sport = free_port()
    busy = socket.socket()
    busy.bind(("127.0.0.1", cport))
    busy.listen()
    try:
        out = subprocess.run([EDGE, "--collector", f"syslog --listen udp://127.0.0.1:{sport} --output "
                              f"{work}/logs.parquet", "--checker", str(work / "checker.toml")],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        busy.close()
    assert out.returncode == 1, out.stderr
    evs = [json.loads(x) for x in out.stderr.splitlines() if x.startswith("{")]
    failure = next(e for e in evs if e.get("msg") == "cannot start")
    assert failure["component"] == "checker" and "address already in use" in failure["error"].lower()
    assert evs[-1]["msg"] == "edge stopped" and evs[-1]["failed"] == ["checker"]
    assert pq.read_table(work / "logs.parquet").num_rows == 0  # the collector started first was stopped cleanly


def test_edge_mode_adapter_inflight_default_and_explicit(tmp_path):
    """The one process relays with 8 chunks in flight unless the adapter's file sets nats.max_inflight."""
    from adapter.config import load
    from edge import cli as ec

    plain, set16 = tmp_path / "a.toml", tmp_path / "b.toml"
    plain.write_text('tenant = "t"\n')
    set16.write_text('tenant = "t"\n[nats]\nmax_inflight = 16\n')
    for path, want in ((plain, 8), (set16, 16)):
        cfg = load(str(path))
        ec._edge_adapter(cfg, str(path))
        assert cfg.nats.max_inflight == want


def test_edge_mode_collector_sink_releases_after_write(monkeypatch):
    import adapter.lean
    from edge import cli as ec

    calls: list[str] = []

    class Sink:
        def write(self, table):
            calls.append("write")

    monkeypatch.setattr(adapter.lean, "release_memory", lambda *a, **k: calls.append("release"))
    ec._releasing(Sink()).write(None)
    assert calls == ["write", "release"]
