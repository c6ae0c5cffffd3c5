"""Command lines of the pull-chain daemons.

    serviceradar-checker -c checker.toml [run|health|check-config]
    serviceradar-agent   -c agent.toml   [run|health|check-config]
    serviceradar-poller  -c poller.toml  [run|health|check-config]
    serviceradar-core    -c core.toml    [run|health|check-config]

``run`` (the default) serves until SIGTERM/SIGINT, then shuts down gracefully (servers stop
accepting and finish running invocations, the poller flushes its last report, the core finishes
the message in hand). ``health`` asks the running daemon (or its NATS stream) and prints one JSON
line; exit status 0 means healthy. ``check-config`` validates the file. Exit status 2: bad config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import nats

from pullchain import daemons, logs
from pullchain.config import Config, ConfigError, load, split_address
from wrpc import WrpcError, tcp

log = logging.getLogger("pullchain")


def _install_signals(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)


async def _serve_tcp(
    role: str, server: tcp.Server, stop: asyncio.Event | None = None, ready: asyncio.Event | None = None
) -> None:
    """Serve until ``stop`` is set (without one: until SIGTERM/SIGINT); ``ready`` is set once listening."""
    stopping = stop if stop is not None else asyncio.Event()
    if stop is None:
        _install_signals(stopping.set)
    await server.start()
    logs.event(log, "started", role=role, port=server.port)
    if ready is not None:
        ready.set()
    await stopping.wait()
    logs.event(log, "shutting down", role=role)
    await server.close(grace=5.0)
    logs.event(log, "stopped", role=role, **server.stats)


async def run_checker(cfg: Config, stop: asyncio.Event | None = None, ready: asyncio.Event | None = None) -> None:
    """Serve the checker until a signal (or until ``stop`` is set, in a shared loop)."""
    await _serve_tcp("checker", daemons.checker_server(cfg), stop, ready)


async def run_agent(cfg: Config, stop: asyncio.Event | None = None, ready: asyncio.Event | None = None) -> None:
    """Serve the agent until a signal (or until ``stop`` is set, in a shared loop)."""
    await _serve_tcp("agent", daemons.agent_server(cfg), stop, ready)


async def run_poller(cfg: Config) -> None:
    """Poll on the interval until a signal."""
    poller = daemons.Poller(cfg)
    _install_signals(poller.stop_event.set)
    logs.event(log, "started", role="poller", agents=len(poller.agents), interval=cfg.main["interval"])
    await poller.run()
    logs.event(log, "stopped", role="poller", backlog=len(poller.pending))


async def run_core(cfg: Config) -> None:
    """Consume reports until a signal."""
    core = daemons.Core(cfg)
    _install_signals(core.stop)
    logs.event(log, "started", role="core", stream=cfg.main["stream"])
    await core.run()
    logs.event(log, "stopped", role="core", received=core.received)


async def health_checker(cfg: Config) -> dict[str, Any]:
    """Ask the running checker for its services."""
    client = tcp.Client(*split_address(cfg.main["listen"]), timeout=5.0)
    return {"services": await client.invoke(daemons.CHECKER.func("list-services"))}


async def health_agent(cfg: Config) -> dict[str, Any]:
    """Ask the running agent for one poll."""
    client = tcp.Client(*split_address(cfg.main["listen"]), timeout=cfg.main["timeout"])
    report = await client.invoke(daemons.AGENT.func("poll"))
    return {"agent": report["agent-id"], "statuses": len(report["statuses"]), "errors": len(report["errors"])}


async def _nats_health(url: str, stream: str, durable: str | None, domain: str = "") -> dict[str, Any]:
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0, allow_reconnect=False)
    try:
        js = nc.jetstream(domain=domain or None)
        info = await js.stream_info(stream)
        out: dict[str, Any] = {"stream": stream, "messages": info.state.messages}
        if durable:
            ci = await js.consumer_info(stream, durable)
            out.update(pending=ci.num_pending, ack_pending=ci.num_ack_pending)
        return out
    finally:
        await nc.close()


async def health_poller(cfg: Config) -> dict[str, Any]:
    """The poller's stream and every agent it polls."""
    out = await _nats_health(cfg.main["nats_url"], cfg.main["stream"], None, cfg.main["jetstream_domain"])
    agents = {}
    for a in cfg.items:
        try:
            await tcp.Client(*split_address(a["address"]), timeout=a["timeout"]).invoke(daemons.AGENT.func("poll"))
            agents[a["address"]] = "ok"
        except WrpcError as e:
            agents[a["address"]] = f"{type(e).__name__}: {e}"
    out["agents"] = agents
    if any(v != "ok" for v in agents.values()):
        raise RuntimeError(json.dumps(out))
    return out


async def health_core(cfg: Config) -> dict[str, Any]:
    """The core's stream and durable consumer."""
    return await _nats_health(
        cfg.main["nats_url"], cfg.main["stream"], cfg.main["durable"], cfg.main["jetstream_domain"]
    )


ROLES: dict[str, tuple[Callable[[Config], Awaitable[None]], Callable[[Config], Awaitable[dict[str, Any]]]]] = {
    "checker": (run_checker, health_checker),
    "agent": (run_agent, health_agent),
    "poller": (run_poller, health_poller),
    "core": (run_core, health_core),
}


def main_for(role: str, argv: list[str] | None = None) -> int:
    """The entry point of ``serviceradar-<role>``."""
    ap = argparse.ArgumentParser(
        prog=f"serviceradar-{role}",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    ap.add_argument("-c", "--config", required=True, help="TOML configuration file")
    ap.add_argument("command", nargs="?", default="run", choices=["run", "health", "check-config"])
    args = ap.parse_args(argv)
    try:
        cfg = load(role, args.config)
    except ConfigError as e:
        print(f"serviceradar-{role}: config error: {e}", file=sys.stderr)
        return 2
    run, health = ROLES[role]
    if args.command == "check-config":
        print(json.dumps({"status": "ok", "config": args.config}))
        return 0
    if args.command == "health":
        try:
            out = asyncio.run(health(cfg))
        except Exception as e:
            print(json.dumps({"status": "unhealthy", "role": role, "error": f"{type(e).__name__}: {e}"}))
            return 1
        print(json.dumps({"status": "ok", "role": role, **out}))
        return 0
    logs.setup(cfg.main.get("log_level", "info"))
    try:
        asyncio.run(run(cfg))
    except (OSError, WrpcError, nats.errors.Error) as e:
        logs.event(log, "fatal", logging.ERROR, role=role, error=f"{type(e).__name__}: {e}")
        return 1
    return 0


def checker_main() -> int:
    """Console script ``serviceradar-checker``."""
    return main_for("checker")


def agent_main() -> int:
    """Console script ``serviceradar-agent``."""
    return main_for("agent")


def poller_main() -> int:
    """Console script ``serviceradar-poller``."""
    return main_for("poller")


def core_main() -> int:
    """Console script ``serviceradar-core``."""
    return main_for("core")
