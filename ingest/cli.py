"""``serviceradar-ingest``: run one collector until SIGTERM/SIGINT, then flush and exit.

    serviceradar-ingest netflow|syslog|traps --listen [udp://|tcp://|tls://]HOST:PORT
        [--config FILE] [--output FILE.parquet | --engine | --proton URL]
    serviceradar-ingest bmp --listen HOST:PORT ...     (see ingest.bmp)
    serviceradar-ingest gnmi --config FILE | --target HOST:PORT --path PATH ...   (see ingest.gnmi)

A bare ``HOST:PORT`` listens on the protocol's usual transports (netflow: UDP; syslog: UDP and TCP;
traps: UDP). Logs are JSON lines on stderr; the last line before exit holds the final counters.
Exit codes: 0 after a clean shutdown, 2 for configuration or sink errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import signal
import ssl
import sys
from typing import Any

from ingest.collector import Collector
from ingest.config import Config, ConfigError, load_config, parse_hostport
from ingest.sinks import EngineSink, ParquetSink, ProtonSink, Sink, SinkError
from streams.catalog import CATALOG
from streams.lean import refuse_pandas

# protocol (also its config section) → (module, catalog entity, transports of a bare --listen HOST:PORT).
# A new collector registers here; its module exposes OPTIONS (a dataclass) and build(options).
PROTOCOLS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "netflow": ("ingest.netflow", "netflow", ("udp",)),
    "syslog": ("ingest.syslog", "logs", ("udp", "tcp")),
    "traps": ("ingest.snmp", "traps", ("udp",)),
}

log = logging.getLogger("ingest")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if msg.startswith("{"):
            return msg
        return json.dumps({"level": record.levelname.lower(), "event": msg})


def build_sink(cfg: Config, entity: str) -> Sink:
    """The configured sink for ``entity`` (exactly one of parquet, proton, engine)."""
    chosen = [n for n, on in (("parquet", cfg.parquet), ("proton", cfg.proton), ("engine", cfg.engine)) if on]
    if len(chosen) != 1:
        raise ConfigError(f"choose exactly one output (--output, --proton or --engine); got {chosen or 'none'}")
    ent = CATALOG[entity]
    if cfg.parquet:
        return ParquetSink(cfg.parquet, ent.arrow_schema())
    if cfg.proton:
        return ProtonSink(cfg.proton, ent.stream, ent.arrow_schema())
    return EngineSink(entity)


def tls_context(cfg: Config) -> ssl.SSLContext:
    if not cfg.tls.cert or not cfg.tls.key:
        raise ConfigError("a tls listener needs [tls] cert and key")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cfg.tls.cert, cfg.tls.key)
        if cfg.tls.ca:
            ctx.load_verify_locations(cfg.tls.ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"[tls]: cannot load certificates: {e}") from e
    return ctx


async def run_collector(
    protocol: str, cfg: Config, sink: Sink, stop: asyncio.Event, ready: asyncio.Event | None = None
) -> Collector:
    """Start the collector for ``protocol`` with ``cfg``, serve until ``stop`` is set, then flush.

    ``ready`` (optional) is set once every listener is bound (``serviceradar-edge`` starts components in turn)."""
    module = importlib.import_module(PROTOCOLS[protocol][0])
    decoder, framer = module.build(cfg.protocol)
    col = Collector(decoder, sink, cfg.runtime, framer)
    for spec in cfg.udp:
        await col.listen_udp(*parse_hostport(spec))
    for spec in cfg.tcp:
        await col.listen_tcp(*parse_hostport(spec))
    if cfg.tls_listen:
        ctx = tls_context(cfg)
        for spec in cfg.tls_listen:
            await col.listen_tcp(*parse_hostport(spec), tls=ctx)
    col.start()
    log.info(json.dumps({"event": "listening", "entity": decoder.entity, "on": col.health()["listening"]}))
    if ready is not None:
        ready.set()
    tasks = []
    if cfg.health.listen:
        tasks.append(asyncio.create_task(_health_server(col, cfg.health.listen)))
    if cfg.health.stats_interval_s > 0:
        tasks.append(asyncio.create_task(_stats(col, cfg.health.stats_interval_s)))
    await stop.wait()
    for t in tasks:
        t.cancel()
    await col.stop()
    log.info(json.dumps({"event": "stopped", "rows_flushed": col.rows_flushed,
                         "exporters": col.counters.snapshot()}))  # fmt: skip
    return col


async def _stats(col: Collector, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        log.info(json.dumps({"event": "stats", **col.health()}))


async def _health_server(col: Collector, listen: str) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(reader.readline(), 2)
        body = json.dumps(col.health()).encode()
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                     % len(body) + body)  # fmt: skip
        await writer.drain()
        writer.close()

    host, port = parse_hostport(listen, "health.listen")
    server = await asyncio.start_server(answer, host, port)
    async with server:
        await server.serve_forever()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="serviceradar-ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("protocol", choices=sorted(PROTOCOLS))
    p.add_argument("--listen", action="append", default=[], metavar="[udp|tcp|tls://]HOST:PORT")
    p.add_argument("--config", metavar="FILE", help="TOML config (see docs/ingest.md)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--output", metavar="FILE.parquet", help="write a Parquet file")
    out.add_argument("--engine", action="store_true", help="push into the embedded engine")
    out.add_argument("--proton", metavar="URL", help="insert into Proton: proton://user:pw@host:8463/db")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def configure(args: argparse.Namespace) -> Config:
    """Config file first, then the flags on top."""
    module = importlib.import_module(PROTOCOLS[args.protocol][0])
    cfg = load_config(args.config, args.protocol, module.OPTIONS, tuple(PROTOCOLS))
    for spec in args.listen:
        scheme, sep, rest = spec.partition("://")
        transports: tuple[str, ...] = (scheme,) if sep else PROTOCOLS[args.protocol][2]
        target = rest if sep else spec
        parse_hostport(target, "--listen")
        for tr in transports:
            if tr not in ("udp", "tcp", "tls"):
                raise ConfigError(f"--listen: unknown transport {tr!r}")
            {"udp": cfg.udp, "tcp": cfg.tcp, "tls": cfg.tls_listen}[tr].append(target)
    if args.output or args.engine or args.proton:
        cfg.parquet, cfg.proton, cfg.engine = args.output or "", args.proton or "", bool(args.engine)
    if not (cfg.udp or cfg.tcp or cfg.tls_listen):
        raise ConfigError("nothing to listen on: give --listen HOST:PORT or [listen] in the config")
    return cfg


# collectors with their own command line (two outputs, or targets to dial rather than a listener)
OWN_CLI = {"bmp": "ingest.bmp", "gnmi": "ingest.gnmi"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    refuse_pandas()  # pyarrow would import it (~33 MB) only to ask whether an input is a pandas object
    if argv and argv[0] in OWN_CLI:
        return importlib.import_module(OWN_CLI[argv[0]]).main(argv[1:])
    args = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    try:
        cfg = configure(args)
        sink = build_sink(cfg, PROTOCOLS[args.protocol][1])
    except (ConfigError, SinkError) as e:
        log.error(json.dumps({"event": "config_error", "error": str(e)}))
        return 2

    async def amain() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await run_collector(args.protocol, cfg, sink, stop)

    try:
        asyncio.run(amain())
    except (ConfigError, OSError) as e:
        log.error(json.dumps({"event": "start_error", "error": str(e)}))
        sink.close()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
