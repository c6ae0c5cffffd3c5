"""The whole pull chain as real processes: checker -> agent -> poller -> NATS JetStream -> core."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from wrpc_nats_helpers import NatsServer, free_port

import wrpc

BIN = Path(sys.executable).parent
GUARD = 80.0


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, GUARD))


async def http_target() -> asyncio.Server:
    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:  # the port check connects and closes
            writer.close()
            return
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(on_conn, "127.0.0.1", 0)


class Daemon:
    def __init__(self, role: str, config: Path) -> None:
        self.role = role
        self.config = config
        self.log = config.with_suffix(".log")
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Daemon:
        with self.log.open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                str(BIN / f"serviceradar-{self.role}"), "-c", str(self.config), stderr=err
            )
        return self

    async def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await self.proc.wait()

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]


async def cli(role: str, config: Path, command: str) -> tuple[int, dict]:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / f"serviceradar-{role}"), "-c", str(config), command, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, json.loads(out.decode().strip().splitlines()[-1])


async def wait_for_lines(path: Path, n: int, procs: list[Daemon]) -> list[dict]:
    while True:
        for d in procs:
            assert d.proc is not None and d.proc.returncode is None, f"{d.role} exited: {d.log.read_text()[-3000:]}"
        if path.exists():
            lines = [json.loads(x) for x in path.read_text().splitlines()]
            if len(lines) >= n:
                return lines
        await asyncio.sleep(0.05)


def test_pull_chain_end_to_end(tmp_path: Path) -> None:
    nats_srv = NatsServer(tmp_path).start()
    checker_port, agent_port, dead_port = free_port(), free_port(), free_port()
    output = tmp_path / "reports.jsonl"

    async def main() -> None:
        web = await http_target()
        web_port = web.sockets[0].getsockname()[1]
        cfg = {
            "checker": f"""
[checker]
listen = "127.0.0.1:{checker_port}"
log_level = "debug"

[[checks]]
name = "web-port"
type = "port"
host = "127.0.0.1"
port = {web_port}

[[checks]]
name = "closed-port"
type = "port"
host = "127.0.0.1"
port = {dead_port}

[[checks]]
name = "web"
type = "http"
url = "http://127.0.0.1:{web_port}/health"
expect_status = 204

[[checks]]
name = "host"
type = "host-metrics"
""",
            "agent": f"""
[agent]
id = "edge-1"
listen = "127.0.0.1:{agent_port}"

[[checkers]]
address = "127.0.0.1:{checker_port}"

[[checkers]]
address = "127.0.0.1:{dead_port}"
timeout = 2
""",
            "poller": f"""
[poller]
id = "poller-1"
tenant = "acme"
interval = 0.2
nats_url = "{nats_srv.url}"

[[agents]]
address = "127.0.0.1:{agent_port}"
""",
            "core": f"""
[core]
tenant = "acme"
nats_url = "{nats_srv.url}"
output = "{output}"
""",
        }
        paths = {}
        for role, text in cfg.items():
            paths[role] = tmp_path / f"{role}.toml"
            paths[role].write_text(text)
            code, out = await cli(role, paths[role], "check-config")
            assert (code, out["status"]) == (0, "ok")

        daemons = {role: Daemon(role, paths[role]) for role in cfg}
        for role in ("checker", "agent", "poller", "core"):
            await daemons[role].start()
        try:
            lines = await wait_for_lines(output, 3, list(daemons.values()))
            report = lines[-1]
            assert report["poller-id"] == "poller-1"
            (agent,) = report["agents"]
            assert agent["agent-id"] == "edge-1"
            by_name = {s["service-name"]: s for s in agent["statuses"]}
            assert sorted(by_name) == ["closed-port", "host", "web", "web-port"]
            assert {n: s["available"] for n, s in by_name.items() if n != "host"} == {
                "web-port": True,
                "closed-port": False,
                "web": True,
            }
            assert by_name["web"]["service-type"] == "http" and json.loads(by_name["web"]["message"])["status"] == 204
            assert "load1" in json.loads(by_name["host"]["message"])
            assert [e["service-name"] for e in agent["errors"]] == [f"checker@127.0.0.1:{dead_port}"]

            for role in cfg:
                code, out = await cli(role, paths[role], "health")
                assert (code, out["status"]) == (0, "ok"), out

            # the core goes away; the poller keeps queueing; the restarted core gets every report once
            assert await daemons["core"].stop() == 0
            seen = len(output.read_text().splitlines())
            await asyncio.sleep(0.5)  # let the poller queue a few cycles while nobody consumes
            daemons["core"] = await Daemon("core", paths["core"]).start()
            lines = await wait_for_lines(output, seen + 3, list(daemons.values()))
            seqs = [r["seq"] for r in lines]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a report was lost or duplicated"
        finally:
            codes = {role: await d.stop() for role, d in daemons.items() if d.proc and d.proc.returncode is None}
            web.close()
        assert codes == {"checker": 0, "agent": 0, "poller": 0, "core": 0}
        for role, d in daemons.items():
            events = [e for e in d.events() if e["logger"] == "pullchain"]
            assert events[0]["msg"] == "started" and events[-1]["msg"] == "stopped", (role, events[-3:])
            assert all({"ts", "level", "logger", "msg"} <= e.keys() for e in d.events())

    try:
        run(main())
    finally:
        nats_srv.stop()


def test_pull_chain_health_fails_when_the_daemon_is_down(tmp_path: Path) -> None:
    cfgp = tmp_path / "checker.toml"
    cfgp.write_text(f'[checker]\nlisten = "127.0.0.1:{free_port()}"\n[[checks]]\nname = "h"\ntype = "host-metrics"\n')

    async def main() -> None:
        code, out = await cli("checker", cfgp, "health")
        assert code == 1 and out["status"] == "unhealthy" and "TransportError" in out["error"]

    run(main())


def test_pull_poller_and_core_wait_for_nats_and_still_stop_cleanly(tmp_path: Path) -> None:
    """With NATS away the daemons keep retrying (logged) and a SIGTERM still ends them with 0."""
    url = f"nats://127.0.0.1:{free_port()}"
    (tmp_path / "poller.toml").write_text(
        f'[poller]\nid = "p"\ntenant = "t"\nnats_url = "{url}"\n[[agents]]\naddress = "127.0.0.1:{free_port()}"\n'
    )
    (tmp_path / "core.toml").write_text(f'[core]\ntenant = "t"\nnats_url = "{url}"\noutput = "{tmp_path}/o.jsonl"\n')

    async def main() -> None:
        for role in ("poller", "core"):
            d = await Daemon(role, tmp_path / f"{role}.toml").start()
            while not any(e["msg"] == "nats error" for e in d.events() if d.log.exists()):
                assert d.proc is not None and d.proc.returncode is None, d.log.read_text()
                await asyncio.sleep(0.05)
            assert await d.stop() == 0
            assert [e["msg"] for e in d.events() if e["logger"] == "pullchain"][-1] == "stopped"

    run(main())


def test_pull_poller_keeps_every_report_across_a_nats_outage(tmp_path: Path) -> None:
    """The poller keeps polling while NATS is down; its backlog and Nats-Msg-Id make the stream
    end up with every cycle exactly once."""
    import nats as nats_py

    from pullchain import daemons
    from pullchain.config import Config

    srv = NatsServer(tmp_path).start()

    async def main() -> None:
        checker = daemons.checker_server(
            Config(
                "c",
                {"listen": "127.0.0.1:0", "timeout": 10.0},
                [{"name": "h", "type": "host-metrics", "disk_path": "/"}],
            )
        )
        await checker.start()
        agent = daemons.agent_server(
            Config(
                "a",
                {"id": "a1", "listen": "127.0.0.1:0", "timeout": 10.0},
                [{"address": f"127.0.0.1:{checker.port}", "timeout": 5.0}],
            )
        )
        await agent.start()
        poller = daemons.Poller(
            Config(
                "p",
                {"id": "p1", "tenant": "t", "interval": 0.05, "nats_url": srv.url, "stream": "SR_T", "timeout": 1.0},
                [{"address": f"127.0.0.1:{agent.port}", "timeout": 5.0}],
            )
        )
        task = asyncio.create_task(poller.run())
        while poller.nc is None:
            await asyncio.sleep(0.02)
        first = poller.seq
        while poller.seq < first + 3:
            await asyncio.sleep(0.02)
        srv.stop()  # the cloud (here: the only server) goes away
        while not poller.pending:  # cycles go on and pile up in the backlog
            await asyncio.sleep(0.02)
        srv.start()
        while poller.pending or poller.seq < first + 10:
            assert not task.done()
            await asyncio.sleep(0.02)
        poller.stop_event.set()
        await task
        nc = await nats_py.connect(srv.url)
        js = nc.jetstream()
        psub = await js.pull_subscribe("serviceradar.t.checker.results", durable="check", stream="SR_T")
        seqs: list[int] = []
        while not seqs or seqs[-1] < poller.seq:  # read up to the last cycle (GUARD bounds the wait)
            try:
                msgs = await psub.fetch(100, timeout=1)
            except (nats_py.errors.TimeoutError, TimeoutError):
                continue
            for m in msgs:
                seqs.append(wrpc.decode(daemons.REPORT_STATUS.param_types, m.data)[0]["seq"])
                await m.ack()
        await nc.close()
        await agent.close()
        await checker.close()
        assert seqs == list(range(seqs[0], poller.seq + 1)), "lost or duplicated reports"
        assert len(seqs) >= 10

    try:
        run(main())
    finally:
        srv.stop()


def test_pull_edge_leaf_keeps_reports_while_the_cloud_is_away(tmp_path: Path) -> None:
    """The architecture's store and forward: the poller queues into the edge leaf node's JetStream
    (domain "edge"); the core reads that stream from the cloud hub across the leaf connection.
    The hub goes away and comes back: the poller never notices, the core gets every report once."""
    from pullchain import daemons
    from pullchain.config import Config

    leaf_port = free_port()
    hub = NatsServer(tmp_path / "hub", domain="hub", extra=f"leafnodes {{ listen: 127.0.0.1:{leaf_port} }}").start()
    edge = NatsServer(
        tmp_path / "edge",
        domain="edge",
        extra=f'leafnodes {{ remotes: [ {{ url: "nats-leaf://127.0.0.1:{leaf_port}" }} ] }}',
    ).start()
    output = tmp_path / "reports.jsonl"

    def seqs() -> list[int]:
        return [json.loads(x)["seq"] for x in output.read_text().splitlines()] if output.exists() else []

    async def main() -> None:
        checker = daemons.checker_server(
            Config(
                "c",
                {"listen": "127.0.0.1:0", "timeout": 10.0},
                [{"name": "h", "type": "host-metrics", "disk_path": "/"}],
            )
        )
        await checker.start()
        agent = daemons.agent_server(
            Config(
                "a",
                {"id": "a1", "listen": "127.0.0.1:0", "timeout": 10.0},
                [{"address": f"127.0.0.1:{checker.port}", "timeout": 5.0}],
            )
        )
        await agent.start()
        poller = daemons.Poller(
            Config(
                "p",
                {"id": "p1", "tenant": "t", "interval": 0.05, "nats_url": edge.url, "stream": "SR_T", "timeout": 2.0},
                [{"address": f"127.0.0.1:{agent.port}", "timeout": 5.0}],
            )
        )
        polling = asyncio.create_task(poller.run())
        core = daemons.Core(
            Config(
                "core",
                {
                    "tenant": "t",
                    "nats_url": hub.url,
                    "stream": "SR_T",
                    "durable": "core",
                    "jetstream_domain": "edge",
                    "output": str(output),
                    "batch": 16,
                },
            )
        )
        consuming = asyncio.create_task(core.run())
        while len(seqs()) < 3:
            assert not polling.done() and not consuming.done()
            await asyncio.sleep(0.05)
        hub.stop()  # the cloud goes away
        before = poller.seq
        while poller.seq < before + 10:  # the edge keeps polling and queueing locally
            await asyncio.sleep(0.05)
        assert not poller.pending, "the poller had to hold reports although its leaf node was up"
        hub.start()
        poller.stop_event.set()
        await polling
        last = poller.seq
        while not seqs() or seqs()[-1] < last:
            assert not consuming.done(), consuming
            await asyncio.sleep(0.05)
        core.stop()
        await consuming
        got = seqs()
        assert got == list(range(got[0], last + 1)), "a report was lost or duplicated"
        await agent.close()
        await checker.close()

    try:
        run(main())
    finally:
        edge.stop()
        hub.stop()
