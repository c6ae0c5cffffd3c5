"""gNMI dial-in Subscribe client: targets from TOML, rows into the catalog's ``metrics`` (gnmi_stream).

    serviceradar-ingest gnmi --config FILE [--output FILE.parquet | --engine | --proton URL]
    serviceradar-ingest gnmi --target HOST:PORT --path PATH [--mode stream|once|poll] [--insecure]

One asyncio task per target opens ``gNMI.Subscribe`` (STREAM with SAMPLE/ON_CHANGE/TARGET_DEFINED
subscriptions, POLL or ONCE), with TLS or mTLS and username/password metadata, and reconnects with
exponential backoff. Responses are taken from gRPC as raw bytes (no Python message objects on the hot
path) and handed to the shared :class:`ingest.collector.Collector`; its decode thread turns chunks of
SubscribeResponses into Arrow rows with :func:`ingest.gnmi_wire.decode_responses` (vectorised wire
parse) and writes them to the sink. A response that does not parse is dropped and counted.

Rows: one per leaf: the path (prefix merged) without keys is ``metric``, the path keys and the
target's configured labels are ``labels``, numbers go to ``value``, text (strings, JSON leaves, bytes
as hex, leaf-lists as JSON) to ``value_str``, deletes are rows with ``deleted = true``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest import gnmi_wire
from ingest.cli import _health_server
from ingest.collector import Collector, RuntimeOptions, now_ms
from ingest.config import Config, ConfigError, HealthOptions, apply_output_and_batch, fill_dataclass, read_toml
from ingest.core import MALFORMED, Counters, DecodeResult, Packet
from ingest.gnmi_proto import gnmi_pb2
from ingest.sinks import EngineSink, MemorySink, ParquetSink, ProtonSink, Sink, SinkError
from streams.catalog import CATALOG

log = logging.getLogger("ingest.gnmi")

ENCODINGS = {"json": 0, "bytes": 1, "proto": 2, "ascii": 3, "json_ietf": 4}
SUB_MODES = {"target_defined": 0, "on_change": 1, "sample": 2}
LIST_MODES = {"stream": 0, "once": 1, "poll": 2}
SUBSCRIBE_METHOD = "/gnmi.gNMI/Subscribe"
SYNC_RESPONSE = b"\x18\x01"  # SubscribeResponse{sync_response: true} on the wire


@dataclass
class SubscriptionOptions:
    """One ``[[targets.subscriptions]]`` entry."""

    path: str = ""
    mode: str = "sample"  # sample | on_change | target_defined
    sample_interval_s: float = 10.0
    heartbeat_interval_s: float = 0.0
    suppress_redundant: bool = False


@dataclass
class TargetOptions:
    """One ``[[targets]]`` entry: where to connect, how to authenticate, what to subscribe to."""

    name: str = ""
    address: str = ""  # HOST:PORT
    tls: bool = False
    ca: str = ""  # PEM CA bundle to verify the target (default: system roots)
    cert: str = ""  # client certificate (mTLS)
    key: str = ""
    server_name: str = ""  # TLS name to verify when it differs from the address host
    username: str = ""
    password: str = ""
    encoding: str = "json_ietf"
    mode: str = "stream"  # stream | once | poll
    poll_interval_s: float = 10.0
    prefix: str = ""
    updates_only: bool = False
    labels: dict = field(default_factory=dict)
    subscriptions: list[SubscriptionOptions] = field(default_factory=list)

    def validate(self, where: str) -> None:
        if not self.name:
            self.name = self.address
        if ":" not in self.address or not self.address.rpartition(":")[2].isdigit():
            raise ConfigError(f"{where}.address: expected HOST:PORT, got {self.address!r}")
        for key, allowed in (("encoding", ENCODINGS), ("mode", LIST_MODES)):
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{where}.{key}: {getattr(self, key)!r} is not one of {', '.join(allowed)}")
        if bool(self.cert) != bool(self.key):
            raise ConfigError(f"{where}: mTLS needs both cert and key")
        if (self.cert or self.ca) and not self.tls:
            raise ConfigError(f"{where}: ca/cert/key given but tls = false")
        if not self.subscriptions:
            raise ConfigError(f"{where}: at least one [[targets.subscriptions]] with a path is needed")
        for i, s in enumerate(self.subscriptions):
            if not s.path:
                raise ConfigError(f"{where}.subscriptions[{i}].path is empty")
            if s.mode not in SUB_MODES:
                raise ConfigError(f"{where}.subscriptions[{i}].mode: {s.mode!r} is not one of {', '.join(SUB_MODES)}")
            parse_path(s.path)
        if not all(isinstance(v, str) for v in self.labels.values()):
            raise ConfigError(f"{where}.labels: values must be strings")
        if self.prefix:
            parse_path(self.prefix)


@dataclass
class GnmiOptions:
    """The ``[gnmi]`` section: reconnect backoff."""

    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0


# ---- paths -----------------------------------------------------------------------------------------
def parse_path(text: str) -> gnmi_pb2.Path:
    """``[origin:]/a/b[k=v][k2=v2]/c`` into a gNMI Path (``\\]`` and ``\\=`` escape inside keys)."""
    origin = ""
    head, sep, rest = text.partition(":/")
    if sep and "/" not in head and "[" not in head:
        origin, text = head, "/" + rest
    elems = []
    for part in _split_elems(text):
        name, keys = _parse_elem(part, text)
        elems.append(gnmi_pb2.PathElem(name=name, key=keys))
    return gnmi_pb2.Path(origin=origin, elem=elems)


def _split_elems(text: str) -> list[str]:
    parts, cur, depth, i = [], [], 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "/" and depth == 0:
            if cur:
                parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    if depth:
        raise ConfigError(f"path {text!r}: unbalanced [ ]")
    if cur:
        parts.append("".join(cur))
    return parts


def _parse_elem(part: str, text: str) -> tuple[str, dict[str, str]]:
    name, _, keyspec = part.partition("[")
    keys: dict[str, str] = {}
    if keyspec:
        for kv in ("[" + keyspec)[1:-1].split("]["):
            k, eq, v = kv.partition("=")
            if not eq or not k:
                raise ConfigError(f"path {text!r}: key {kv!r} is not name=value")
            keys[k] = v.replace("\\]", "]").replace("\\=", "=")
    if not name:
        raise ConfigError(f"path {text!r}: empty element name")
    return name, keys


# ---- the decoder (the framework's Decoder protocol) ------------------------------------------------
class GnmiDecoder:
    """Chunks of raw SubscribeResponse bytes (one packet per target read) → ``metrics`` batches."""

    entity = "metrics"

    def __init__(self, labels: dict[str, dict[str, str]] | None = None) -> None:
        self.schema = CATALOG["metrics"].arrow_schema()
        self.labels = labels or {}  # target name → configured labels
        self.cache = gnmi_wire.PathCache()

    def decode(self, packets: list[Packet], counters: Counters) -> DecodeResult:
        responses: list[bytes] = []
        devices: list[str] = []
        received: list[int] = []
        for p in packets:
            frames = p.data if isinstance(p.data, list) else [p.data]
            responses += frames
            devices += [p.source] * len(frames)
            received += [p.received_ms] * len(frames)
            counters.add(p.source, packets=len(frames), nbytes=sum(map(len, frames)))
        batch, bad = gnmi_wire.decode_responses(responses, devices, self.cache, self.labels, np.asarray(received))
        for i in bad:
            counters.drop(devices[i], MALFORMED)
        result = DecodeResult()
        if batch.num_rows:
            result.batches.append(batch)
            counts = pc.value_counts(batch.column("device"))
            for item in counts.to_pylist():
                counters.add(item["values"], records=item["counts"])
        return result

    def housekeeping(self, now_ms: int, counters: Counters) -> None:
        pass


# ---- the client ------------------------------------------------------------------------------------
@dataclass
class TargetStatus:
    """Per-target state for health: connection state, counts, last error."""

    state: str = "idle"  # idle | connecting | syncing | synced | backoff | done
    connects: int = 0
    responses: int = 0
    sync_responses: int = 0
    errors: int = 0
    last_error: str = ""
    last_response_ms: int = 0


def subscribe_request(t: TargetOptions) -> gnmi_pb2.SubscribeRequest:
    """The SubscriptionList request a target's options describe."""
    subs = [
        gnmi_pb2.Subscription(
            path=parse_path(s.path), mode=SUB_MODES[s.mode], sample_interval=int(s.sample_interval_s * 1e9),
            heartbeat_interval=int(s.heartbeat_interval_s * 1e9), suppress_redundant=s.suppress_redundant)
        for s in t.subscriptions
    ]  # fmt: skip
    sl = gnmi_pb2.SubscriptionList(subscription=subs, mode=LIST_MODES[t.mode], encoding=ENCODINGS[t.encoding],
                                   updates_only=t.updates_only)  # fmt: skip
    if t.prefix:
        sl.prefix.CopyFrom(parse_path(t.prefix))
    return gnmi_pb2.SubscribeRequest(subscribe=sl)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"cannot read {path!r}: {e}") from e


def open_channel(t: TargetOptions) -> grpc.aio.Channel:
    """An insecure, TLS or mTLS channel to the target."""
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    if not t.tls:
        return grpc.aio.insecure_channel(t.address, options=options)
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(t.ca) if t.ca else None,
        private_key=_read(t.key) if t.key else None,
        certificate_chain=_read(t.cert) if t.cert else None,
    )
    if t.server_name:
        options.append(("grpc.ssl_target_name_override", t.server_name))
    return grpc.aio.secure_channel(t.address, creds, options=options)


STOP_GRACE_S = 5.0  # how long stop() waits for the subscriptions to wind down before flushing


class GnmiCollector:
    """Subscribes to every configured target; rows go through the shared Collector to the sink."""

    def __init__(self, targets: list[TargetOptions], sink: Sink, options: GnmiOptions | None = None,
                 runtime: RuntimeOptions | None = None) -> None:  # fmt: skip
        self.targets = targets
        self.options = options or GnmiOptions()
        self.decoder = GnmiDecoder({t.name: {str(k): str(v) for k, v in t.labels.items()} for t in targets})
        self.collector = Collector(self.decoder, sink, runtime)
        self.status = {t.name: TargetStatus() for t in targets}
        self._tasks: list[asyncio.Task] = []
        self._watcher: asyncio.Task | None = None
        self.done = asyncio.Event()

    @property
    def counters(self) -> Counters:
        return self.collector.counters

    def start(self) -> None:
        """Start the decode worker and one task per target."""
        self.collector.start()
        self._tasks = [asyncio.create_task(self._run_target(t), name=f"gnmi:{t.name}") for t in self.targets]
        self._watcher = asyncio.create_task(self._watch_done())

    async def _watch_done(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.done.set()

    async def _run_target(self, t: TargetOptions) -> None:
        st = self.status[t.name]
        delay = self.options.backoff_initial_s
        while True:
            st.state, st.connects = "connecting", st.connects + 1
            try:
                finished = await self._subscribe(t, st)
                if finished:  # ONCE completed: nothing more to do for this target
                    st.state = "done"
                    return
                delay = self.options.backoff_initial_s  # a session that ran resets the backoff
                st.last_error = "stream ended by target"
            except grpc.aio.AioRpcError as e:
                st.errors += 1
                st.last_error = f"{e.code().name}: {e.details()}"
            except (ConfigError, ValueError, TimeoutError) as e:
                st.errors += 1
                st.last_error = f"{type(e).__name__}: {e}"
            except Exception as e:  # never let one target's surprise end its task: report it and retry
                st.errors += 1
                st.last_error = f"{type(e).__name__}: {e}"
                log.exception(json.dumps({"event": "gnmi_target_bug", "target": t.name}))
            st.state = "backoff"
            log.warning(json.dumps({"event": "gnmi_target_error", "target": t.name, "error": st.last_error,
                                    "retry_in_s": round(delay, 2)}))  # fmt: skip
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # jitter so targets don't reconnect in step
            delay = min(delay * 2, self.options.backoff_max_s)

    async def _subscribe(self, t: TargetOptions, st: TargetStatus) -> bool:
        """One Subscribe RPC; True when a ONCE subscription completed."""
        metadata = [("username", t.username), ("password", t.password)] if t.username else None
        request = subscribe_request(t)
        async with open_channel(t) as channel:
            # no wait for the channel to be ready: a failed connect or TLS handshake fails the call at once
            # with UNAVAILABLE and the reason, which is what the status should show
            # no response deserializer: the raw bytes go to the vectorised decoder
            method = channel.stream_stream(SUBSCRIBE_METHOD, gnmi_pb2.SubscribeRequest.SerializeToString, None)
            call = method(metadata=metadata)
            await call.write(request)
            poller = asyncio.create_task(self._poll(call, t)) if t.mode == "poll" else None
            st.state = "syncing"
            try:
                async for raw in call:
                    self._on_response(t, st, raw)
                    if t.mode == "once" and raw == SYNC_RESPONSE:
                        call.cancel()
                        return True
            finally:
                if poller:
                    poller.cancel()
        return t.mode == "once"

    async def _poll(self, call: Any, t: TargetOptions) -> None:
        poll = gnmi_pb2.SubscribeRequest(poll=gnmi_pb2.Poll())
        while True:
            await asyncio.sleep(t.poll_interval_s)
            await call.write(poll)

    def _on_response(self, t: TargetOptions, st: TargetStatus, raw: bytes) -> None:
        st.responses += 1
        st.last_response_ms = now_ms()
        if raw == SYNC_RESPONSE:
            st.sync_responses += 1
            st.state = "synced"
            return
        self.collector.offer(Packet([raw], t.name, 0, st.last_response_ms, "grpc"))

    async def stop(self) -> None:
        """Cancel the subscriptions, decode what is queued, flush and close the sink."""
        for task in self._tasks:
            task.cancel()
        # Bounded: a gRPC channel that does not close promptly (a target mid-handshake, a loaded
        # machine) must not hold up the flush of what was already received.
        _, pending = await asyncio.wait(self._tasks, timeout=STOP_GRACE_S) if self._tasks else (set(), set())
        if pending:
            log.warning(json.dumps({"event": "gnmi_stop_pending", "targets": len(pending)}))
        await self.collector.stop()

    def health(self) -> dict[str, Any]:
        h = self.collector.health()
        h["targets"] = {name: vars(s).copy() for name, s in self.status.items()}
        return h


def memory_collector(targets: list[TargetOptions], options: GnmiOptions | None = None,
                     runtime: RuntimeOptions | None = None) -> GnmiCollector:  # fmt: skip
    """A collector writing into a :class:`MemorySink` (``.collector.sink``)."""
    return GnmiCollector(targets, MemorySink(), options, runtime)


# ---- configuration and CLI -------------------------------------------------------------------------
_BATCH_KEYS = ("rows", "flush_ms", "queue_packets", "decode_chunk")  # no max_frame: gNMI has no stream framing


def load_config(path: str | None) -> tuple[Config, list[TargetOptions]]:
    """Read a gNMI TOML config: [[targets]], [output], [batch], [health], [gnmi] (see docs/bmp-gnmi.md)."""
    raw = read_toml(path)
    known = {"targets", "output", "batch", "health", "gnmi"}
    for k in raw:
        if k not in known:
            raise ConfigError(f"unknown section [{k}] for the gnmi collector (known: {', '.join(sorted(known))})")
    cfg = Config()
    apply_output_and_batch(cfg, raw, _BATCH_KEYS)
    cfg.health = fill_dataclass(HealthOptions, raw.get("health", {}), "health")
    cfg.protocol = fill_dataclass(GnmiOptions, raw.get("gnmi", {}), "gnmi")
    targets_raw = raw.get("targets", [])
    if not isinstance(targets_raw, list):
        raise ConfigError("targets must be an array of tables: [[targets]]")
    targets = [fill_dataclass(TargetOptions, t, f"targets[{i}]") for i, t in enumerate(targets_raw)]
    for i, t in enumerate(targets):
        t.validate(f"targets[{i}]")
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ConfigError(f"target names must be unique, got {names}")
    return cfg, targets


def build_sink(cfg: Config) -> Sink:
    """The configured sink for metrics rows; JSON lines on stdout when no output is chosen (quick look)."""
    chosen = [n for n, on in (("parquet", cfg.parquet), ("proton", cfg.proton), ("engine", cfg.engine)) if on]
    if len(chosen) > 1:
        raise ConfigError(f"choose one output (--output, --proton or --engine); got {chosen}")
    ent = CATALOG["metrics"]
    if cfg.parquet:
        return ParquetSink(cfg.parquet, ent.arrow_schema())
    if cfg.proton:
        return ProtonSink(cfg.proton, ent.stream, ent.arrow_schema())
    if cfg.engine:
        return EngineSink("metrics")
    return JsonLinesSink()


class JsonLinesSink:
    """Prints rows as JSON lines on stdout (the quick-look output when no sink is configured)."""

    def write(self, table: pa.Table) -> None:
        for row in table.to_pylist():
            row["timestamp"] = row["timestamp"].isoformat()
            row["labels"] = dict(row["labels"])
            sys.stdout.write(json.dumps(row) + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        pass


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="serviceradar-ingest gnmi", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--target", metavar="HOST:PORT", help="quick look at one target (with --path)")
    p.add_argument("--path", action="append", default=[], help="subscription path (repeatable)")
    p.add_argument("--mode", default="stream", choices=sorted(LIST_MODES))
    p.add_argument("--sub-mode", default="sample", choices=sorted(SUB_MODES))
    p.add_argument("--interval", type=float, default=10.0, help="sample interval in seconds")
    p.add_argument("--encoding", default="json_ietf", choices=sorted(ENCODINGS))
    p.add_argument("--insecure", action="store_true", help="plain gRPC (default is TLS with system roots)")
    p.add_argument("--username", default="")
    p.add_argument("--password", default="")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--output", metavar="FILE.parquet")
    out.add_argument("--engine", action="store_true")
    out.add_argument("--proton", metavar="URL")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def configure(args: argparse.Namespace) -> tuple[Config, list[TargetOptions]]:
    cfg, targets = load_config(args.config)
    if args.target:
        sub = [SubscriptionOptions(path=p, mode=args.sub_mode, sample_interval_s=args.interval) for p in args.path]
        t = TargetOptions(name=args.target, address=args.target, tls=not args.insecure, mode=args.mode,
                          encoding=args.encoding, username=args.username, password=args.password,
                          subscriptions=sub)  # fmt: skip
        t.validate("--target")
        targets.append(t)
    elif args.path:
        raise ConfigError("--path needs --target")
    if not targets:
        raise ConfigError("no targets: give --target HOST:PORT --path PATH or [[targets]] in the config")
    if args.output or args.engine or args.proton:
        cfg.parquet, cfg.proton, cfg.engine = args.output or "", args.proton or "", bool(args.engine)
    return cfg, targets


def main(argv: list[str] | None = None) -> int:
    """``serviceradar-ingest gnmi``: subscribe until SIGTERM/SIGINT (or every ONCE target is done), flush, exit."""
    args = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines())
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    try:
        cfg, targets = configure(args)
        sink = build_sink(cfg)
    except (ConfigError, SinkError) as e:
        log.error(json.dumps({"event": "config_error", "error": str(e)}))
        return 2
    asyncio.run(_serve(cfg, targets, sink))
    return 0


async def _serve(cfg: Config, targets: list[TargetOptions], sink: Sink) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(cfg, targets, sink, stop)


async def serve(cfg: Config, targets: list[TargetOptions], sink: Sink, stop: asyncio.Event,
                ready: asyncio.Event | None = None) -> None:  # fmt: skip
    """Subscribe until ``stop`` is set or every ONCE target is done, then flush (``ready``: started)."""
    col = GnmiCollector(targets, sink, cfg.protocol, cfg.runtime)
    col.start()
    log.info(json.dumps({"event": "subscribing", "targets": [t.name for t in targets]}))
    if ready is not None:
        ready.set()
    tasks = []
    if cfg.health.stats_interval_s > 0:
        tasks.append(asyncio.create_task(_log_stats(col, cfg.health.stats_interval_s)))
    if cfg.health.listen:  # the framework's HTTP health endpoint, answering with col.health()
        tasks.append(asyncio.create_task(_health_server(col, cfg.health.listen)))  # type: ignore[arg-type]
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(col.done.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for t in tasks + waits:
        t.cancel()
    await col.stop()
    log.info(json.dumps({"event": "stopped", "rows_flushed": col.collector.rows_flushed,
                         "targets": col.health()["targets"], "exporters": col.counters.snapshot()}))  # fmt: skip


async def _log_stats(col: GnmiCollector, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        log.info(json.dumps({"event": "stats", **col.health()}))


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return msg if msg.startswith("{") else json.dumps({"level": record.levelname.lower(), "event": msg})


if __name__ == "__main__":
    sys.exit(main())
