"""TOML configuration of a collector, validated into dataclasses with clear errors.

Layout (every section optional; command-line flags override the file)::

    [listen]
    udp = ["0.0.0.0:2055"]          # HOST:PORT strings ([::]:2055 for IPv6)
    tcp = []                        # stream listeners (syslog, IPFIX over TCP, SNMP over TCP)
    tls = []                        # TLS stream listeners; need [tls]

    [tls]
    cert = "server.pem"             # PEM certificate chain
    key = "server.key"
    ca = ""                         # when set, clients must present a certificate signed by it

    [output]                        # exactly one of:
    parquet = "flows.parquet"
    # proton = "proton://default@127.0.0.1:8463/default?stream=netflow_stream"
    # engine = true

    [batch]                         # see ingest.collector.RuntimeOptions
    rows = 65536
    flush_ms = 1000
    queue_packets = 100000
    decode_chunk = 4096
    rcvbuf = 33554432
    max_frame = 1048576
    sink_retry_batches = 4          # rows kept while the sink fails, in units of rows

    [health]
    listen = "127.0.0.1:9109"       # answers GET with the JSON health snapshot ("" = off)
    stats_interval_s = 60           # counters logged as one JSON line this often (0 = off)

    [netflow] / [syslog] / [traps]  # protocol options: ingest.netflow.NetflowOptions,
                                    # ingest.syslog.SyslogOptions, ingest.snmp.TrapOptions
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from ingest.collector import RuntimeOptions


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and what was expected."""


@dataclass
class TlsOptions:
    cert: str = ""
    key: str = ""
    ca: str = ""


@dataclass
class HealthOptions:
    listen: str = ""
    stats_interval_s: float = 60.0


@dataclass
class Config:
    """A whole collector configuration."""

    udp: list[str] = field(default_factory=list)
    tcp: list[str] = field(default_factory=list)
    tls_listen: list[str] = field(default_factory=list)
    tls: TlsOptions = field(default_factory=TlsOptions)
    parquet: str = ""
    proton: str = ""
    engine: bool = False
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    health: HealthOptions = field(default_factory=HealthOptions)
    protocol: Any = None  # the protocol's options dataclass


_BATCH_KEYS = {"rows": "batch_rows", "flush_ms": "flush_ms", "queue_packets": "queue_packets",
               "decode_chunk": "decode_chunk", "rcvbuf": "rcvbuf", "max_frame": "max_frame",
               "sink_retry_batches": "sink_retry_batches"}  # fmt: skip


def parse_hostport(text: str, where: str = "listen") -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` into (host, port), with a clear error."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise ConfigError(f"{where}: expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


PROTOCOL_SECTIONS: tuple[str, ...] = ("netflow", "syslog", "traps")  # ingest.cli.PROTOCOLS passes its own


def read_toml(path: str | None) -> dict[str, Any]:
    """The parsed TOML file at ``path`` ({} for None); unreadable or invalid files are ConfigErrors."""
    if not path:
        return {}
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config {path!r}: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from e


def load_config(path: str | None, protocol_section: str, protocol_options: type,
                protocol_sections: tuple[str, ...] = PROTOCOL_SECTIONS) -> Config:  # fmt: skip
    """Read and validate a TOML file (or just the defaults when ``path`` is None).

    ``protocol_section`` is this collector's section (filled into ``protocol_options``); the other
    ``protocol_sections`` are known but refused, so a file meant for another collector fails loudly.
    """
    raw = read_toml(path)
    known = {"listen", "tls", "output", "batch", "health", *protocol_sections, protocol_section}
    for k in raw:
        if k not in known:
            raise ConfigError(f"unknown section [{k}] (known: {', '.join(sorted(known))})")
    cfg = Config()
    listen = _section(raw, "listen", {"udp": list, "tcp": list, "tls": list})
    cfg.udp, cfg.tcp, cfg.tls_listen = listen.get("udp", []), listen.get("tcp", []), listen.get("tls", [])
    for where, items in (("listen.udp", cfg.udp), ("listen.tcp", cfg.tcp), ("listen.tls", cfg.tls_listen)):
        for item in items:
            parse_hostport(str(item), where)
    cfg.tls = fill_dataclass(TlsOptions, raw.get("tls", {}), "tls")
    apply_output_and_batch(cfg, raw)
    cfg.health = fill_dataclass(HealthOptions, raw.get("health", {}), "health")
    cfg.protocol = fill_dataclass(protocol_options, raw.get(protocol_section, {}), protocol_section)
    for other in protocol_sections:
        if other != protocol_section and other in raw:
            raise ConfigError(f"section [{other}] does not apply to the {protocol_section} collector")
    return cfg


def apply_output_and_batch(cfg: Config, raw: dict[str, Any], batch_keys: tuple[str, ...] | None = None) -> None:
    """Fill ``[output]`` and ``[batch]``, the sections every collector shares, into ``cfg``.

    ``batch_keys`` narrows the accepted ``[batch]`` keys (a collector without stream framing has no
    ``max_frame``)."""
    out = _section(raw, "output", {"parquet": str, "proton": str, "engine": bool})
    cfg.parquet, cfg.proton = out.get("parquet", ""), out.get("proton", "")
    cfg.engine = out.get("engine", False)
    batch = _section(raw, "batch", dict.fromkeys(batch_keys or _BATCH_KEYS, int))
    for k, v in batch.items():
        if v <= 0:
            raise ConfigError(f"batch.{k} must be positive, got {v}")
        setattr(cfg.runtime, _BATCH_KEYS[k], v)


def _section(raw: dict, name: str, keys: dict[str, type]) -> dict[str, Any]:
    sec = raw.get(name, {})
    if not isinstance(sec, dict):
        raise ConfigError(f"[{name}] must be a table")
    for k, v in sec.items():
        if k not in keys:
            raise ConfigError(f"unknown key {name}.{k} (known: {', '.join(keys)})")
        if not isinstance(v, keys[k]) or (keys[k] is int and isinstance(v, bool)):
            raise ConfigError(f"{name}.{k} must be {keys[k].__name__}, got {type(v).__name__}")
    return sec


def fill_dataclass(cls: type, values: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a TOML table, checking keys and value types (lists of tables too)."""
    if not isinstance(values, dict):
        raise ConfigError(f"[{where}] must be a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in values.items():
        if k not in names:
            raise ConfigError(f"unknown key {where}.{k} (known: {', '.join(sorted(names))})")
        kwargs[k] = _coerce(hints[k], v, f"{where}.{k}")
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"[{where}]: {e}") from e
    return obj


def _coerce(hint: Any, v: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if v is None else _coerce(args[0], v, where)
    if origin is list:
        if not isinstance(v, list):
            raise ConfigError(f"{where} must be a list")
        (item,) = typing.get_args(hint)
        return [_coerce(item, x, f"{where}[{i}]") for i, x in enumerate(v)]
    if dataclasses.is_dataclass(hint):
        return fill_dataclass(hint, v, where)
    if hint is float and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if isinstance(hint, type) and (not isinstance(v, hint) or (hint is int and isinstance(v, bool))):
        raise ConfigError(f"{where} must be {hint.__name__}, got {type(v).__name__} {v!r}")
    return v
