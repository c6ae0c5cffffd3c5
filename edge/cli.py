"""``serviceradar-edge``: the edge daemons in one process and one asyncio event loop (docs/edge.md).

    serviceradar-edge [--config edge.toml] [--adapter adapter.toml] [--collector SPEC ...]
                      [--agent agent.toml] [--checker checker.toml] [--log-level LEVEL]

A collector SPEC is ``PROTOCOL:CONFIG`` (``syslog:/etc/serviceradar/syslog.toml``) or, quoted, the
arguments ``serviceradar-ingest`` takes (``"syslog --listen udp://0.0.0.0:514 --output /var/lib/sr/logs.parquet"``);
protocols: syslog, netflow, traps, bmp, gnmi. Each component reads its own config file exactly as its
standalone daemon does and keeps its own health surface (the adapter's status file and Ping, the
collectors' [health] listen, the agent's and checker's wRPC ports).

SIGTERM/SIGINT stop every component gracefully: collectors flush every buffered row, the adapter finishes
running INSERTs (refusing new ones), the agent and checker finish running invocations; then exit 0.
Exit 2: a configuration error (the message names the component); exit 1: a component failed to start or
failed while running (named in the log); the others are stopped gracefully first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import io
import json
import logging
import os
import shlex
import signal
import sys
import time
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("edge")
COMPONENT: contextvars.ContextVar[str] = contextvars.ContextVar("component", default="")
COLLECTORS = ("syslog", "netflow", "traps", "bmp", "gnmi")


class ComponentError(Exception):
    """A configuration error of one component (``component`` names it)."""

    def __init__(self, component: str, message: str) -> None:
        super().__init__(f"{component}: {message}")
        self.component = component


@dataclass
class Component:
    """One part of the edge: ``serve(stop, ready)`` sets ``ready`` once it listens, returns after ``stop``."""

    name: str
    serve: Callable[[asyncio.Event, asyncio.Event], Awaitable[Any]]
    close: Callable[[], None] = field(default=lambda: None)  # what configuring opened (sinks), if never served


# -- logging ---------------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``component`` and the record's own fields.

    The adapter and pull-chain records (``msg`` + ``extra={"fields": ...}``) keep their keys; the collectors'
    records (a JSON object as the message, ``event`` + fields) are merged in as they are."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if comp := COMPONENT.get():
            out["component"] = comp
        msg = record.getMessage()
        parsed = None
        if msg.startswith("{"):
            with contextlib.suppress(ValueError):
                parsed = json.loads(msg)
        if isinstance(parsed, dict):
            out.update(parsed)
        else:
            out["msg"] = msg
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


# -- edge-mode memory limits ------------------------------------------------------------------------
# Defaults the one process applies where a component's config file does not set the key itself (the
# standalone daemons keep theirs). Measured with benchmarks/bench_edge.py; see docs/edge.md "Memory".
EDGE_ADAPTER = {("nats", "max_inflight"): 8}  # 8 x 1 MB chunks awaiting acks instead of 16: ~6 MB less at peak


def _explicit(path: str | None) -> dict[str, Any]:
    """The raw TOML of ``path`` ({} without a file or when it cannot be read: the loader reports that)."""
    if not path:
        return {}
    with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
        return tomllib.loads(Path(path).read_text())
    return {}


def _edge_adapter(cfg: Any, path: str) -> None:
    raw = _explicit(path)
    for (section, key), value in EDGE_ADAPTER.items():
        if key not in raw.get(section, {}):
            setattr(getattr(cfg, section), key, value)


def _releasing(sink: Any) -> Any:
    """``sink`` whose ``write`` gives freed heap back to the kernel afterwards (as the adapter does after an
    INSERT): a flush frees its combined table and the encoder's buffers, which glibc otherwise keeps."""
    from adapter.lean import release_memory

    write = sink.write

    def write_and_release(table: Any) -> None:
        try:
            write(table)
        finally:
            release_memory()

    sink.write = write_and_release
    return sink


# -- configuring the components --------------------------------------------------------------------


def _argv_of(spec: str) -> list[str]:
    """A collector SPEC as ``serviceradar-ingest`` arguments."""
    if any(c.isspace() for c in spec.strip()):
        return shlex.split(spec)
    proto, sep, path = spec.partition(":")
    return [proto, "--config", path] if sep and path else [proto]


def _parse(fn: Callable[[list[str]], argparse.Namespace], argv: list[str]) -> argparse.Namespace:
    """argparse without the exit: its message becomes the error."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return fn(argv)
    except SystemExit:
        lines = [x for x in err.getvalue().splitlines() if x.strip()]
        raise ValueError(lines[-1] if lines else f"bad arguments {argv}") from None


def collector(spec: str, name: str) -> Component:
    """The collector described by ``spec`` (config and flags as ``serviceradar-ingest`` takes them)."""
    from ingest.config import ConfigError
    from ingest.sinks import SinkError

    argv = _argv_of(spec)
    proto = argv[0] if argv else ""
    if proto not in COLLECTORS:
        raise ComponentError(name, f"unknown collector {proto!r} (one of {', '.join(COLLECTORS)})")
    try:
        if proto == "bmp":
            return _bmp(argv[1:], name)
        if proto == "gnmi":
            return _gnmi(argv[1:], name)
        from ingest import cli as ic

        args = _parse(ic.parse_args, argv)
        cfg = ic.configure(args)
        sink = _releasing(ic.build_sink(cfg, ic.PROTOCOLS[proto][1]))
    except (ConfigError, SinkError, ValueError, OSError) as e:
        raise ComponentError(name, f"configuration error: {e}") from None

    return Component(name, lambda stop, ready: ic.run_collector(proto, cfg, sink, stop, ready), sink.close)


def _bmp(argv: list[str], name: str) -> Component:
    """``serviceradar-ingest bmp`` arguments (see ingest.bmp.main) -> a component."""
    from ingest import bmp

    cfg = bmp.configure(_parse(bmp.parse_args, argv))
    sink, peer_sink = (_releasing(s) for s in bmp.build_sinks(cfg))

    def close() -> None:
        sink.close()
        peer_sink.close()

    return Component(name, lambda stop, ready: bmp.serve(cfg, sink, peer_sink, stop, ready), close)


def _gnmi(argv: list[str], name: str) -> Component:
    """``serviceradar-ingest gnmi`` arguments (see ingest.gnmi.main) -> a component."""
    from ingest import gnmi

    cfg, targets = gnmi.configure(_parse(gnmi.parse_args, argv))
    sink = _releasing(gnmi.build_sink(cfg))
    return Component(name, lambda stop, ready: gnmi.serve(cfg, targets, sink, stop, ready), sink.close)


def adapter(path: str) -> Component:
    from adapter.config import ConfigError, load
    from adapter.daemon import run_until

    try:
        cfg = load(path)
    except ConfigError as e:
        raise ComponentError("adapter", f"configuration error: {e}") from None
    _edge_adapter(cfg, path)
    return Component("adapter", lambda stop, ready: run_until(cfg, stop, ready))


def pullchain(role: str, path: str) -> Component:
    from pullchain import cli as pc
    from pullchain.config import ConfigError, load

    try:
        cfg = load(role, path)
    except ConfigError as e:
        raise ComponentError(role, f"configuration error: {e}") from None
    run = {"checker": pc.run_checker, "agent": pc.run_agent}[role]
    return Component(role, lambda stop, ready: run(cfg, stop, ready))


def components(opts: dict[str, Any]) -> list[Component]:
    """Every configured component, configured (files read, sinks opened); none started. On a
    configuration error the sinks already opened are closed and :class:`ComponentError` is raised."""
    out: list[Component] = []
    try:
        if opts.get("adapter"):
            out.append(adapter(opts["adapter"]))
        seen: dict[str, int] = {}
        for spec in opts.get("collectors", []):
            proto = (_argv_of(spec) or ["?"])[0]
            seen[proto] = seen.get(proto, 0) + 1
            out.append(collector(spec, f"collector {proto}" + (f"#{seen[proto]}" if seen[proto] > 1 else "")))
        if opts.get("checker"):  # before the agent, which polls it
            out.append(pullchain("checker", opts["checker"]))
        if opts.get("agent"):
            out.append(pullchain("agent", opts["agent"]))
    except BaseException:
        for c in out:
            with contextlib.suppress(Exception):
                c.close()
        raise
    return out


# -- running them ----------------------------------------------------------------------------------


def _describe(exc: BaseException | None) -> str:
    return "ended before it was ready" if exc is None else f"{type(exc).__name__}: {exc}"


async def supervise(comps: list[Component]) -> int:
    """Start ``comps`` in turn, serve until SIGTERM/SIGINT (or a component fails), stop them all gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: dict[asyncio.Task, Component] = {}
    failed: list[str] = []
    for comp in comps:
        ready = asyncio.Event()
        ctx = contextvars.copy_context()
        ctx.run(COMPONENT.set, comp.name)  # every log line of the component's tasks names it
        task = asyncio.create_task(comp.serve(stop, ready), name=comp.name, context=ctx)
        tasks[task] = comp
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not ready.is_set():
            exc = task.exception() if not task.cancelled() else None
            log.error("cannot start", extra={"fields": {"component": comp.name, "error": _describe(exc)}})
            with contextlib.suppress(Exception):
                comp.close()
            failed.append(comp.name)
            break
        if stop.is_set():
            break
    if not failed and not stop.is_set():
        log.info("edge started", extra={"fields": {"components": [c.name for c in comps]}})
        stopper = asyncio.create_task(stop.wait())
        running = set(tasks)
        while not stop.is_set() and running:
            done, _ = await asyncio.wait(running | {stopper}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():  # the components are stopping: their results are collected below
                break
            for t in done:
                running.discard(t)
                exc = t.exception() if not t.cancelled() else None
                if exc is not None:
                    log.error("component failed", extra={"fields": {"component": tasks[t].name,
                                                                    "error": _describe(exc)}})  # fmt: skip
                    failed.append(tasks[t].name)
                    stop.set()
                else:
                    log.info("component finished", extra={"fields": {"component": tasks[t].name}})
        stopper.cancel()
    log.info("edge shutting down", extra={"fields": {"components": [c.name for c in tasks.values()]}})
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for (_t, comp), res in zip(tasks.items(), results, strict=True):
        if isinstance(res, BaseException) and comp.name not in failed:
            log.error("component failed", extra={"fields": {"component": comp.name, "error": _describe(res)}})
            failed.append(comp.name)
    log.info("edge stopped", extra={"fields": {"failed": failed}})
    return 1 if failed else 0


# -- command line ----------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="serviceradar-edge", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)  # fmt: skip
    p.add_argument("--config", metavar="EDGE.toml", help="edge file naming the components' config files")
    p.add_argument("--adapter", metavar="FILE", help="serviceradar-adapter config (TOML)")
    p.add_argument(
        "--collector",
        action="append",
        default=[],
        metavar="SPEC",
        help="PROTOCOL:CONFIG or a quoted serviceradar-ingest command line (repeatable)",
    )
    p.add_argument("--agent", metavar="FILE", help="serviceradar-agent config (TOML)")
    p.add_argument("--checker", metavar="FILE", help="serviceradar-checker config (TOML)")
    p.add_argument("--log-level", help="default info")
    return p


EDGE_KEYS = {"adapter": str, "collectors": list, "agent": str, "checker": str, "log_level": str}


def load_edge(path: str) -> dict[str, Any]:
    """``edge.toml``: top-level keys ``adapter``, ``collectors`` (a list of SPECs), ``agent``, ``checker``,
    ``log_level``; relative file names are relative to the edge file."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ComponentError("edge", f"configuration error: {path}: {e}") from None
    base = Path(path).resolve().parent
    for k, v in data.items():
        if k not in EDGE_KEYS:
            raise ComponentError("edge", f"configuration error: {k}: unknown key (known: {', '.join(EDGE_KEYS)})")
        if not isinstance(v, EDGE_KEYS[k]) or (k == "collectors" and not all(isinstance(s, str) for s in v)):
            raise ComponentError("edge", f"configuration error: {k}: expected {EDGE_KEYS[k].__name__}"
                                 + (" of strings" if k == "collectors" else ""))  # fmt: skip

    def rel(p: str) -> str:
        return str(base / p) if p and not Path(p).is_absolute() else p

    for k in ("adapter", "agent", "checker"):
        if k in data:
            data[k] = rel(data[k])
    specs = []
    for spec in data.get("collectors", []):
        proto, sep, file = spec.partition(":")
        short = sep and file and not any(c.isspace() for c in spec.strip())
        specs.append(f"{proto}:{rel(file)}" if short else spec)  # a command line's paths are taken as written
    data["collectors"] = specs
    return data


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from adapter.lean import edge_process

    # Arrow's C++ code (the Parquet writer, compute kernels) allocates from arrow::default_memory_pool(), which
    # pa.set_memory_pool does not change: set before pyarrow loads, this puts it on glibc too, so that
    # malloc_trim returns it (with mimalloc a collector flush left ~19 MB resident in a 1 GB arena).
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    edge_process()  # once, before the first Arrow allocation: no pandas, the system allocator, malloc_trim
    try:
        opts = load_edge(args.config) if args.config else {}
        for k in ("adapter", "agent", "checker", "log_level"):
            if getattr(args, k):
                opts[k] = getattr(args, k)
        opts["collectors"] = [*opts.get("collectors", []), *args.collector]
        if not (opts.get("adapter") or opts["collectors"] or opts.get("agent") or opts.get("checker")):
            raise ComponentError("edge", "nothing to run: give --adapter, --collector, --agent or --checker")
        comps = components(opts)
    except ComponentError as e:
        print(f"serviceradar-edge: {e}", file=sys.stderr)
        return 2
    setup_logging(opts.get("log_level") or "info")
    return asyncio.run(supervise(comps))


if __name__ == "__main__":
    sys.exit(main())
