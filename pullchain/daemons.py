"""The four pull-chain roles as asyncio services (the CLI in :mod:`pullchain.cli` runs them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

import nats

import wrpc
from pullchain.checks import run_check
from pullchain.config import Config, split_address
from pullchain.logs import event
from wrpc import tcp, wit
from wrpc.queued import QueuedClient, QueuedConsumer, ensure_stream

PKG = wit.telemetry()
CHECKER = PKG.interfaces["checker"]
AGENT = PKG.interfaces["agent"]
REPORT_STATUS = PKG.func("core", "report-status")

log = logging.getLogger("pullchain")


async def _log_nats_error(e: Exception) -> None:
    event(log, "nats error", logging.WARNING, error=f"{type(e).__name__}: {e}")


async def connect_nats(url: str, name: str, stop: asyncio.Event) -> Any:
    """Connect, retrying while the server is down (nats-py does); None if ``stop`` is set first."""
    connecting = asyncio.create_task(
        nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.5, name=name, error_cb=_log_nats_error)
    )
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not connecting.done():
        connecting.cancel()
        return None
    return connecting.result()


def results_subject(tenant: str) -> str:
    """Where pollers queue their reports."""
    return f"serviceradar.{tenant}.checker.results"


# --- checker ---------------------------------------------------------------------------------


class CheckerService:
    """Implements the ``checker`` interface over the configured checks."""

    def __init__(self, cfg: Config) -> None:
        self.checks = {c["name"]: c for c in cfg.items}

    async def get_status(self, service_name: str) -> wrpc.Ok | wrpc.Err:
        """checker.get-status: run the named check now."""
        check = self.checks.get(service_name)
        if check is None:
            return wrpc.Err(f"no check named {service_name!r}")
        st = await run_check(check)
        event(log, "check", service=service_name, available=st["available"], ns=st["response-time-ns"])
        return wrpc.Ok(st)

    def list_services(self) -> list[str]:
        """checker.list-services."""
        return list(self.checks)


def checker_server(cfg: Config) -> tcp.Server:
    """The checker's wRPC TCP server (not started)."""
    host, port = split_address(cfg.main["listen"])
    server = tcp.Server(host, port, timeout=cfg.main["timeout"])
    server.register_all(CHECKER.functions, CheckerService(cfg))
    return server


# --- agent -----------------------------------------------------------------------------------


class AgentService:
    """Implements the ``agent`` interface by polling its checkers over wRPC TCP."""

    def __init__(self, cfg: Config) -> None:
        self.id = cfg.main["id"]
        self.clients = [
            (c["address"], tcp.Client(*split_address(c["address"]), timeout=c["timeout"])) for c in cfg.items
        ]

    async def _poll_checker(self, addr: str, client: tcp.Client) -> tuple[list[dict], list[dict]]:
        statuses, errors = [], []
        try:
            names = await client.invoke(CHECKER.func("list-services"))
            results = await asyncio.gather(
                *(client.invoke(CHECKER.func("get-status"), n) for n in names), return_exceptions=True
            )
        except wrpc.WrpcError as e:
            return [], [{"service-name": f"checker@{addr}", "error": f"{type(e).__name__}: {e}"}]
        for name, r in zip(names, results, strict=True):
            if isinstance(r, wrpc.Ok):
                statuses.append(r.value)
            else:
                why = r.value if isinstance(r, wrpc.Err) else f"{type(r).__name__}: {r}"
                errors.append({"service-name": name, "error": str(why)})
        return statuses, errors

    async def poll(self) -> dict[str, Any]:
        """agent.poll: every checker's checks, concurrently."""
        parts = await asyncio.gather(*(self._poll_checker(a, c) for a, c in self.clients))
        report = {
            "agent-id": self.id,
            "statuses": [s for st, _ in parts for s in st],
            "errors": [e for _, er in parts for e in er],
        }
        event(log, "poll", statuses=len(report["statuses"]), errors=len(report["errors"]))
        return report

    async def get_status(self, service_name: str) -> wrpc.Ok | wrpc.Err:
        """agent.get-status: through the checker that has the check."""
        for addr, client in self.clients:
            try:
                if service_name in await client.invoke(CHECKER.func("list-services")):
                    return await client.invoke(CHECKER.func("get-status"), service_name)
            except wrpc.WrpcError as e:
                event(log, "checker unreachable", logging.WARNING, checker=addr, error=str(e))
        return wrpc.Err(f"no checker has a check named {service_name!r}")


def agent_server(cfg: Config) -> tcp.Server:
    """The agent's wRPC TCP server (not started)."""
    host, port = split_address(cfg.main["listen"])
    server = tcp.Server(host, port, timeout=cfg.main["timeout"])
    server.register_all(AGENT.functions, AgentService(cfg))
    return server


# --- poller ----------------------------------------------------------------------------------


class Poller:
    """Polls agents every ``interval`` and queues one ``poller-report`` per cycle into JetStream.

    Reports that cannot be queued (NATS away) are kept, up to ``backlog`` of them, and retried
    first in the next cycle; the oldest are dropped beyond that (bounded memory).
    """

    def __init__(self, cfg: Config, backlog: int = 1000) -> None:
        self.cfg = cfg.main
        self.agents = [
            (a["address"], tcp.Client(*split_address(a["address"]), timeout=a["timeout"])) for a in cfg.items
        ]
        self.seq = time.time_ns()  # unique across restarts without a state file
        self.pending: deque[tuple[str, dict]] = deque(maxlen=backlog)
        self.nc: Any = None
        self.queue: QueuedClient | None = None
        self.stop_event = asyncio.Event()

    async def connect(self) -> bool:
        """Connect to the (edge) NATS server and make sure the stream exists. False if stopped first."""
        self.nc = await connect_nats(self.cfg["nats_url"], f"poller-{self.cfg['id']}", self.stop_event)
        if self.nc is None:
            return False
        js = self.nc.jetstream(domain=self.cfg.get("jetstream_domain") or None)
        await ensure_stream(js, self.cfg["stream"], [f"serviceradar.{self.cfg['tenant']}.>"])
        self.queue = QueuedClient(js, self.cfg["tenant"], timeout=self.cfg["timeout"])
        return True

    async def _poll_agent(self, addr: str, client: tcp.Client) -> dict[str, Any]:
        try:
            return await client.invoke(AGENT.func("poll"))
        except wrpc.WrpcError as e:
            event(log, "agent unreachable", logging.WARNING, agent=addr, error=str(e))
            return {"agent-id": f"agent@{addr}", "statuses": [], "errors": [{"service-name": "*", "error": str(e)}]}

    async def cycle(self) -> None:
        """One poll of every agent, queued as one report."""
        agents = await asyncio.gather(*(self._poll_agent(a, c) for a, c in self.agents))
        self.seq += 1
        report = {"poller-id": self.cfg["id"], "seq": self.seq, "collected-at": time.time_ns(), "agents": agents}
        self.pending.append((f"{self.cfg['id']}-{self.seq}", report))
        await self.flush()

    async def flush(self) -> None:
        """Queue every pending report (oldest first); stop at the first failure."""
        assert self.queue is not None
        while self.pending:
            msg_id, report = self.pending[0]
            try:
                ack = await self.queue.enqueue(
                    REPORT_STATUS, report, msg_id=msg_id, subject=results_subject(self.cfg["tenant"])
                )
            except wrpc.TransportError as e:
                event(log, "queue failed; will retry", logging.WARNING, backlog=len(self.pending), error=str(e))
                return
            self.pending.popleft()
            statuses = sum(len(a["statuses"]) for a in report["agents"])
            event(log, "report queued", seq=report["seq"], stream_seq=ack.seq, statuses=statuses)

    async def run(self) -> None:
        """Cycle until stopped; the cycle in progress finishes and its report is flushed."""
        if not await self.connect():
            return
        try:
            while not self.stop_event.is_set():
                await self.cycle()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), self.cfg["interval"])
        finally:
            with contextlib.suppress(Exception):
                await self.nc.drain()


# --- core ------------------------------------------------------------------------------------


class Core:
    """Consumes queued reports durably and appends them to a JSON-lines file."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg.main
        self.output = Path(self.cfg["output"])
        self.nc: Any = None
        self.consumer: QueuedConsumer | None = None
        self.received = 0
        self._stop = asyncio.Event()

    def report_status(self, report: dict[str, Any]) -> wrpc.Ok | wrpc.Err:
        """core.report-status: append the report; ``Err`` makes JetStream redeliver it."""
        try:
            with self.output.open("a") as f:
                f.write(json.dumps(report, sort_keys=True) + "\n")
        except OSError as e:
            return wrpc.Err(f"cannot store report: {e}")  # nak: JetStream redelivers it later
        self.received += 1
        event(log, "report stored", poller=report["poller-id"], seq=report["seq"], agents=len(report["agents"]))
        return wrpc.Ok()

    async def run(self) -> None:
        """Connect, then consume until :meth:`stop`."""
        self.nc = await connect_nats(self.cfg["nats_url"], "serviceradar-core", self._stop)
        if self.nc is None:
            return
        js = self.nc.jetstream(domain=self.cfg.get("jetstream_domain") or None)
        await ensure_stream(js, self.cfg["stream"], [f"serviceradar.{self.cfg['tenant']}.>"])
        self.consumer = QueuedConsumer(
            js, self.cfg["stream"], self.cfg["durable"], results_subject(self.cfg["tenant"]), batch=self.cfg["batch"]
        )
        self.consumer.register(REPORT_STATUS, self.report_status)
        if self._stop.is_set():  # a signal arrived while connecting
            self.consumer.stop()
        try:
            await self.consumer.run()
        finally:
            with contextlib.suppress(Exception):
                await self.nc.drain()

    def stop(self) -> None:
        """Stop after the message in hand."""
        self._stop.set()
        if self.consumer is not None:
            self.consumer.stop()
