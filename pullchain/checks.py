"""The checks a checker runs. Each returns a ``service-status`` record (a dict keyed by WIT name)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import ssl
import time
from typing import Any
from urllib.parse import urlsplit


def status(name: str, kind: str, available: bool, details: dict[str, Any], started_ns: int) -> dict[str, Any]:
    """Build a ``service-status`` record."""
    now = time.time_ns()
    return {
        "service-name": name,
        "service-type": kind,
        "available": available,
        "message": json.dumps(details, sort_keys=True),
        "response-time-ns": max(0, time.perf_counter_ns() - started_ns),
        "timestamp": now,
    }


async def port_check(cfg: dict[str, Any]) -> dict[str, Any]:
    """Available when a TCP connection to host:port opens within the timeout."""
    t0 = time.perf_counter_ns()
    try:
        async with asyncio.timeout(cfg["timeout"]):
            _, writer = await asyncio.open_connection(cfg["host"], cfg["port"])
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return status(cfg["name"], "port", True, {"host": cfg["host"], "port": cfg["port"]}, t0)
    except (OSError, TimeoutError) as e:
        details = {"host": cfg["host"], "port": cfg["port"], "error": str(e) or type(e).__name__}
        return status(cfg["name"], "port", False, details, t0)


async def http_check(cfg: dict[str, Any]) -> dict[str, Any]:
    """GET the URL; available when the status matches ``expect_status`` (default: 2xx or 3xx)."""
    t0 = time.perf_counter_ns()
    url = urlsplit(cfg["url"])
    tls = url.scheme == "https"
    port = url.port or (443 if tls else 80)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    try:
        async with asyncio.timeout(cfg["timeout"]):
            reader, writer = await asyncio.open_connection(
                url.hostname, port, ssl=ssl.create_default_context() if tls else None
            )
            try:
                host = url.hostname if url.port is None else f"{url.hostname}:{url.port}"
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: serviceradar-checker\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                await writer.drain()
                line = await reader.readline()  # bounded by the StreamReader limit (64 KiB)
            finally:
                writer.close()
        parts = line.decode("latin-1").split()
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            return status(cfg["name"], "http", False, {"url": cfg["url"], "error": "not an HTTP response"}, t0)
        code = int(parts[1])
        want = cfg.get("expect_status") or 0
        ok = code == want if want else 200 <= code < 400
        return status(cfg["name"], "http", ok, {"url": cfg["url"], "status": code}, t0)
    except (OSError, TimeoutError, ValueError) as e:
        return status(cfg["name"], "http", False, {"url": cfg["url"], "error": str(e) or type(e).__name__}, t0)


def _meminfo() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    out[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


async def host_metrics_check(cfg: dict[str, Any]) -> dict[str, Any]:
    """Load, memory and disk of this host; unavailable when a configured threshold is crossed."""
    t0 = time.perf_counter_ns()
    load1, load5, load15 = os.getloadavg()
    mem = _meminfo()
    disk = shutil.disk_usage(cfg["disk_path"])
    free_pct = 100.0 * disk.free / disk.total if disk.total else 0.0
    details: dict[str, Any] = {
        "load1": load1,
        "load5": load5,
        "load15": load15,
        "cpus": os.cpu_count(),
        "mem_total_bytes": mem.get("MemTotal"),
        "mem_available_bytes": mem.get("MemAvailable"),
        "disk_path": cfg["disk_path"],
        "disk_free_percent": round(free_pct, 2),
    }
    problems = []
    if cfg.get("max_load1") and load1 > cfg["max_load1"]:
        problems.append(f"load1 {load1:.2f} > {cfg['max_load1']}")
    if cfg.get("min_free_disk_percent") and free_pct < cfg["min_free_disk_percent"]:
        problems.append(f"disk free {free_pct:.1f}% < {cfg['min_free_disk_percent']}%")
    avail_mb = (mem.get("MemAvailable") or 0) / 2**20
    if cfg.get("min_available_memory_mb") and avail_mb < cfg["min_available_memory_mb"]:
        problems.append(f"available memory {avail_mb:.0f} MB < {cfg['min_available_memory_mb']} MB")
    if problems:
        details["problems"] = problems
    return status(cfg["name"], "host-metrics", not problems, details, t0)


CHECKS = {"port": port_check, "http": http_check, "host-metrics": host_metrics_check}


async def run_check(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one configured check."""
    return await CHECKS[cfg["type"]](cfg)
