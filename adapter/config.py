"""The adapter's TOML configuration: schema, defaults, validation with clear errors, flag overrides.

```toml
tenant = "acme"                      # required: NATS subject token
[server]
listen = "127.0.0.1:8080"
packet_timeout = 30.0                # s to finish a packet once it began
idle_timeout = 3600.0                # s between packets (a materialized view may idle long)
max_connections = 64
max_block_mb = 64                    # largest block (uncompressed) a client may send; bounds memory
streams = []                         # allowed catalog streams; empty = all
users = {}                           # user = "password"; empty = any non-empty user
tls_cert = "" ; tls_key = "" ; tls_ca = ""   # TLS on the Proton port (client certs verified if tls_ca)
allowed_spiffe_ids = []              # with tls_ca: the client SVIDs accepted
[nats]
url = "nats://127.0.0.1:4222"        # the edge leaf
creds = "" ; user = "" ; password = ""
tls_cert = "" ; tls_key = "" ; tls_ca = ""
stream = ""                          # edge stream; default SR_<TENANT>, created if missing
stream_max_mb = 1024
duplicate_window = 600.0             # s; retried INSERTs within it are dropped by JetStream
max_inflight = 16                    # chunks (<= max_payload each) awaiting JetStream acks
publish_timeout = 10.0
[health]
status_file = ""                     # JSON stats written every second (the health command reads it)
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key and the problem."""


@dataclass
class ServerConfig:
    listen: str = "127.0.0.1:8080"
    packet_timeout: float = 30.0
    idle_timeout: float = 3600.0
    max_connections: int = 64
    max_block_mb: int = 64
    streams: list[str] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=dict)
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    allowed_spiffe_ids: list[str] = field(default_factory=list)


@dataclass
class NatsConfig:
    url: str = "nats://127.0.0.1:4222"
    creds: str = ""
    user: str = ""
    password: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    stream: str = ""
    stream_max_mb: int = 512
    duplicate_window: float = 600.0
    max_inflight: int = 16
    publish_timeout: float = 10.0


@dataclass
class HealthConfig:
    status_file: str = ""


@dataclass
class AdapterConfig:
    tenant: str = ""
    server: ServerConfig = field(default_factory=ServerConfig)
    nats: NatsConfig = field(default_factory=NatsConfig)
    health: HealthConfig = field(default_factory=HealthConfig)

    @property
    def stream_name(self) -> str:
        return self.nats.stream or f"SR_{self.tenant.upper().replace('-', '_')}"


def _fill(obj: Any, data: dict[str, Any], path: str) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"[{path}] must be a table")
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        if not hasattr(obj, key) or key.startswith("_"):
            known = ", ".join(k for k in vars(obj))
            raise ConfigError(f"{where}: unknown key (known: {known})")
        current = getattr(obj, key)
        if hasattr(current, "__dataclass_fields__"):
            _fill(current, value, where)
            continue
        expected = type(current)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or isinstance(value, bool) != isinstance(current, bool):
            raise ConfigError(f"{where}: expected {expected.__name__}, got {type(value).__name__} {value!r}")
        setattr(obj, key, value)


def validate(cfg: AdapterConfig) -> AdapterConfig:
    """Check values; raises :class:`ConfigError` naming the key."""
    if not cfg.tenant or not all(c.isalnum() or c in "-_" for c in cfg.tenant):
        raise ConfigError("tenant: required; letters, digits, '-' or '_' (it becomes a NATS subject token)")
    host, sep, port = cfg.server.listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f'server.listen: must be "host:port", got {cfg.server.listen!r}')
    if urlsplit(cfg.nats.url).scheme not in ("nats", "tls"):
        raise ConfigError(f'nats.url: must be a URL like "nats://127.0.0.1:4222", got {cfg.nats.url!r}')
    for where, value in (("server.packet_timeout", cfg.server.packet_timeout),
                         ("server.idle_timeout", cfg.server.idle_timeout),
                         ("server.max_connections", cfg.server.max_connections),
                         ("server.max_block_mb", cfg.server.max_block_mb),
                         ("nats.max_inflight", cfg.nats.max_inflight),
                         ("nats.publish_timeout", cfg.nats.publish_timeout),
                         ("nats.duplicate_window", cfg.nats.duplicate_window),
                         ("nats.stream_max_mb", cfg.nats.stream_max_mb)):  # fmt: skip
        if value <= 0:
            raise ConfigError(f"{where}: must be greater than 0, got {value}")
    if bool(cfg.server.tls_cert) != bool(cfg.server.tls_key):
        raise ConfigError("server.tls_cert and server.tls_key go together")
    if cfg.server.allowed_spiffe_ids and not cfg.server.tls_ca:
        raise ConfigError("server.allowed_spiffe_ids needs server.tls_ca (client certificates are verified)")
    for where, f in (("server.tls_cert", cfg.server.tls_cert), ("server.tls_key", cfg.server.tls_key),
                     ("server.tls_ca", cfg.server.tls_ca), ("nats.creds", cfg.nats.creds),
                     ("nats.tls_cert", cfg.nats.tls_cert), ("nats.tls_key", cfg.nats.tls_key),
                     ("nats.tls_ca", cfg.nats.tls_ca)):  # fmt: skip
        if f and not Path(f).is_file():
            raise ConfigError(f"{where}: file {f!r} does not exist")
    from streams.catalog import CATALOG

    for s in cfg.server.streams:
        if CATALOG.by_stream(s) is None and CATALOG.get(s) is None:
            raise ConfigError(f"server.streams: {s!r} is not a catalog stream")
    return cfg


def load(path: str | Path | None, overrides: dict[str, Any] | None = None) -> AdapterConfig:
    """Read ``path`` (optional), apply flag ``overrides`` (dotted keys), validate."""
    cfg = AdapterConfig()
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
        _fill(cfg, data, "")
    for dotted, value in (overrides or {}).items():
        if value in (None, ""):
            continue
        obj = cfg
        *parents, last = dotted.split(".")
        for p in parents:
            obj = getattr(obj, p)
        setattr(obj, last, value)
    return validate(cfg)
