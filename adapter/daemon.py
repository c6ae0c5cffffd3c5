"""The adapter daemon: NATS connection, relay, native server, status file, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import time
from dataclasses import asdict
from pathlib import Path

import nats

from adapter.config import AdapterConfig
from adapter.native import Limits
from adapter.relay import Relay
from adapter.server import NativeServer, ServerOptions

log = logging.getLogger("adapter")


def rss_mb() -> float:
    """Current resident set size (from /proc; the peak from getrusage elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def connect_nats(cfg: AdapterConfig) -> nats.NATS:
    """Connect to the edge leaf; reconnects forever (the leaf is local, the hub may be away)."""
    kw: dict = {"reconnect_time_wait": 0.5, "max_reconnect_attempts": -1, "name": f"serviceradar-adapter-{cfg.tenant}"}
    if cfg.nats.creds:
        kw["user_credentials"] = cfg.nats.creds
    if cfg.nats.user:
        kw.update(user=cfg.nats.user, password=cfg.nats.password)
    if cfg.nats.tls_ca:
        from fabric.spiffe import client_context

        kw["tls"] = client_context(cfg.nats.tls_ca, cfg.nats.tls_cert or None, cfg.nats.tls_key or None)
    return await nats.connect(cfg.nats.url, **kw)


def server_options(cfg: AdapterConfig) -> ServerOptions:
    s = cfg.server
    return ServerOptions(
        limits=Limits(max_block_bytes=s.max_block_mb << 20), packet_timeout=s.packet_timeout,
        idle_timeout=s.idle_timeout, max_connections=s.max_connections, users=dict(s.users), streams=list(s.streams),
        release_memory=True,
    )  # fmt: skip


class Adapter:
    """One running adapter: ``start()``, then ``stop()`` (flushes running INSERTs first)."""

    def __init__(self, cfg: AdapterConfig) -> None:
        self.cfg = cfg
        self.nc: nats.NATS | None = None
        self.server: NativeServer | None = None
        self.relay: Relay | None = None
        self.address: tuple[str, int] | None = None
        self.started = time.time()

    async def start(self) -> tuple[str, int]:
        cfg = self.cfg
        self.nc = await connect_nats(cfg)
        js = self.nc.jetstream()
        self.relay = Relay(js, cfg.tenant, max_payload=self.nc.max_payload, max_inflight=cfg.nats.max_inflight,
                           timeout=cfg.nats.publish_timeout)  # fmt: skip
        await self.relay.ensure_stream(cfg.stream_name, cfg.nats.stream_max_mb << 20, cfg.nats.duplicate_window)
        self.server = NativeServer(self.relay, server_options(cfg))
        host, port = cfg.server.listen.rsplit(":", 1)
        ssl_ctx = verify = None
        if cfg.server.tls_cert:
            from fabric.spiffe import peer_verifier, server_context

            ssl_ctx = server_context(cfg.server.tls_cert, cfg.server.tls_key, cfg.server.tls_ca or None)
            if cfg.server.allowed_spiffe_ids:
                verify = peer_verifier(cfg.server.allowed_spiffe_ids)
        self.address = await self.server.start(host, int(port), ssl_ctx, verify)
        log.info("listening", extra={"fields": {"address": f"{self.address[0]}:{self.address[1]}",
                                                 "tenant": cfg.tenant, "stream": cfg.stream_name}})
        return self.address

    def status(self) -> dict:
        return {
            "ok": bool(self.nc and self.nc.is_connected),
            "tenant": self.cfg.tenant,
            "listen": f"{self.address[0]}:{self.address[1]}" if self.address else None,
            "nats_connected": bool(self.nc and self.nc.is_connected),
            "uptime_s": round(time.time() - self.started, 1),
            "rss_mb": round(rss_mb(), 1),
            "server": asdict(self.server.stats) if self.server else {},
            "relay": asdict(self.relay.stats) if self.relay else {},
            "pid": os.getpid(),
        }

    async def write_status(self, path: str) -> None:
        tmp = Path(path + ".tmp")
        tmp.write_text(json.dumps(self.status()))
        tmp.replace(path)

    async def stop(self, grace: float = 30.0) -> None:
        if self.server:
            await self.server.close(grace)
        if self.nc:
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=5)
            await self.nc.close()


async def run(cfg: AdapterConfig) -> None:
    """Run until SIGTERM/SIGINT; then finish running INSERTs and exit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_until(cfg, stop)


async def run_until(cfg: AdapterConfig, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (a signal, or ``serviceradar-edge`` sharing its event loop), then finish
    running INSERTs and write the last status; ``ready`` is set once the Proton port listens."""
    adapter = Adapter(cfg)
    try:
        await adapter.start()
    except BaseException:
        await adapter.stop(grace=0)
        raise
    if ready is not None:
        ready.set()
    try:
        while not stop.is_set():
            if cfg.health.status_file:
                await adapter.write_status(cfg.health.status_file)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        log.info("shutting down", extra={"fields": adapter.status()})
        await adapter.stop()
        if cfg.health.status_file:
            with contextlib.suppress(Exception):
                await adapter.write_status(cfg.health.status_file)
