"""``serviceradar-adapter``: the Proton-wRPC adapter daemon, and its health command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
import time
from pathlib import Path

from adapter.config import ConfigError, load


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage(), **getattr(record, "fields", {})}  # fmt: skip
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="serviceradar-adapter", description="Proton native protocol -> wRPC over NATS JetStream"
    )
    p.add_argument("--config", help="TOML config file (docs/adapter.md)")
    p.add_argument("--listen", help="HOST:PORT for Proton clients (default 127.0.0.1:8080)")
    p.add_argument("--nats", help="NATS URL of the edge leaf")
    p.add_argument("--tenant", help="tenant id (subjects serviceradar.<tenant>.>)")
    p.add_argument("--creds", help="NATS credentials file")
    p.add_argument("--tls-cert", help="TLS certificate (SVID) for the Proton port")
    p.add_argument("--tls-key", help="TLS key for the Proton port")
    p.add_argument("--tls-ca", help="CA bundle to verify Proton clients' certificates")
    p.add_argument("--status-file", help="write JSON stats here every second")
    p.add_argument("--health", action="store_true", help="check a running adapter (status file + Ping); 0 = healthy")
    p.add_argument("--log-level", default="INFO")
    return p


def ping(host: str, port: int, timeout: float = 3.0) -> bool:
    """A native-protocol Hello and Ping; True if the server answers Pong."""
    from adapter import native as nv

    hello = (nv.varuint(0) + nv.string("serviceradar-health") + nv.varuint(1) + nv.varuint(0) + nv.varuint(54453)
             + nv.string("default") + nv.string("health") + nv.string(""))  # fmt: skip
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(hello)
        data = s.recv(4096)
        if not data or data[0] != nv.S_HELLO:
            return False
        s.sendall(nv.varuint(nv.C_PING))
        return s.recv(16)[:1] == bytes([nv.S_PONG])


def health(cfg) -> int:
    report: dict = {}
    if cfg.health.status_file and Path(cfg.health.status_file).exists():
        report = json.loads(Path(cfg.health.status_file).read_text())
        report["status_age_s"] = round(time.time() - Path(cfg.health.status_file).stat().st_mtime, 1)
    host, port = (report.get("listen") or cfg.server.listen).rsplit(":", 1)
    try:
        report["pong"] = ping(host, int(port))
    except OSError as e:
        report["pong"] = False
        report["error"] = str(e)
    healthy = report["pong"] and report.get("nats_connected", True) and report.get("status_age_s", 0) < 10
    report["healthy"] = bool(healthy)
    print(json.dumps(report))
    return 0 if healthy else 1


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from adapter.lean import edge_process

    edge_process()  # before the first Arrow allocation: no pandas, buffers given back to the kernel
    overrides = {"server.listen": args.listen, "nats.url": args.nats, "tenant": args.tenant, "nats.creds": args.creds,
                 "server.tls_cert": args.tls_cert, "server.tls_key": args.tls_key, "server.tls_ca": args.tls_ca,
                 "health.status_file": args.status_file}  # fmt: skip
    try:
        cfg = load(args.config, overrides)
    except ConfigError as e:
        print(f"serviceradar-adapter: configuration error: {e}", file=sys.stderr)
        return 2
    if args.health:
        return health(cfg)
    setup_logging(args.log_level)
    from adapter.daemon import run

    try:
        asyncio.run(run(cfg))
    except OSError as e:
        logging.getLogger("adapter").error("cannot start: %s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
