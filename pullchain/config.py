"""TOML configuration of the pull-chain daemons: schema, defaults, validation with clear errors.

Each daemon reads one file. Unknown keys are errors (a typo must not silently keep a default).
The schemas are documented in docs/wrpc.md and by ``serviceradar-<role> --help``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file, key and problem."""


REQUIRED: Any = object()


@dataclass(frozen=True)
class Key:
    """One configuration key: its type, default (or REQUIRED) and an extra check."""

    type: type | tuple[type, ...]
    default: Any = REQUIRED
    check: Callable[[Any], str | None] | None = None
    doc: str = ""


def positive(v: Any) -> str | None:
    """Check: a number above zero."""
    return None if v > 0 else "must be greater than 0"


def port_number(v: Any) -> str | None:
    """Check: a TCP port."""
    return None if 1 <= v <= 65535 else "must be a port number 1..65535"


def address(v: Any) -> str | None:
    """Check: ``"host:port"``."""
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return 'must be "host:port"'
    return None


def nats_url(v: Any) -> str | None:
    """Check: a NATS URL."""
    return None if urlsplit(v).scheme in ("nats", "tls", "ws", "wss") else 'must be a URL like "nats://host:4222"'


def token(v: Any) -> str | None:
    """Check: usable as one NATS subject token."""
    ok = v and all(c.isalnum() or c in "-_" for c in v)
    return None if ok else "must be letters, digits, '-' or '_' (it becomes a NATS subject token)"


def _where(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate(data: dict[str, Any], schema: dict[str, Key], path: str) -> dict[str, Any]:
    """Apply a schema to one TOML table: defaults, types, checks, no unknown keys."""
    if not isinstance(data, dict):
        raise ConfigError(f"[{path}] must be a table")
    unknown = sorted(set(data) - set(schema))
    if unknown:
        raise ConfigError(f"{_where(path, unknown[0])}: unknown key (known: {', '.join(sorted(schema))})")
    out = {}
    for name, key in schema.items():
        if name not in data:
            if key.default is REQUIRED:
                raise ConfigError(f"{_where(path, name)}: required key is missing")
            out[name] = key.default
            continue
        v = data[name]
        types = key.type if isinstance(key.type, tuple) else (key.type,)
        if float in types and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if (isinstance(v, bool) and bool not in types) or not isinstance(v, types):
            want = " or ".join(t.__name__ for t in types)
            raise ConfigError(f"{_where(path, name)}: must be {want}, got {type(v).__name__} {v!r}")
        problem = key.check(v) if key.check else None
        if problem:
            raise ConfigError(f"{_where(path, name)}: {problem}, got {v!r}")
        out[name] = v
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file; syntax errors and missing files become :class:`ConfigError`."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None


def table_list(data: dict[str, Any], name: str, schema: dict[str, Key], min_items: int = 0) -> list[dict[str, Any]]:
    """Validate an array of tables (``[[name]]``)."""
    items = data.get(name, [])
    if not isinstance(items, list):
        raise ConfigError(f"{name}: must be an array of tables ([[{name}]])")
    if len(items) < min_items:
        raise ConfigError(f"{name}: at least {min_items} [[{name}]] table(s) required")
    return [validate(item, schema, f"{name}[{i}]") for i, item in enumerate(items)]


def only_sections(data: dict[str, Any], allowed: set[str], path: str | Path) -> None:
    """Reject unknown top-level sections."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{path}: unknown section [{unknown[0]}] (known: {', '.join(sorted(allowed))})")


# --- per-role schemas ------------------------------------------------------------------------

LOG_KEYS = {
    "log_level": Key(
        str,
        "info",
        lambda v: None if v in ("debug", "info", "warning", "error") else "must be debug, info, warning or error",
    )
}

CHECKER = {
    "listen": Key(str, "127.0.0.1:50051", address, "host:port the wRPC TCP server binds"),
    "timeout": Key(float, 10.0, positive, "deadline of one invocation, seconds"),
    **LOG_KEYS,
}
CHECK_COMMON = {
    "name": Key(str, REQUIRED, lambda v: None if v else "must not be empty"),
    "type": Key(
        str, REQUIRED, lambda v: None if v in ("port", "http", "host-metrics") else "must be port, http or host-metrics"
    ),
    "timeout": Key(float, 3.0, positive),
}
CHECK_TYPES = {
    "port": {"host": Key(str, REQUIRED), "port": Key(int, REQUIRED, port_number)},
    "http": {
        "url": Key(
            str, REQUIRED, lambda v: None if urlsplit(v).scheme in ("http", "https") else "must be an http(s) URL"
        ),
        "expect_status": Key(int, 0, lambda v: None if v == 0 or 100 <= v <= 599 else "must be an HTTP status"),
    },
    "host-metrics": {
        "disk_path": Key(str, "/"),
        "max_load1": Key(float, 0.0, doc="unavailable above this 1-minute load (0 = no limit)"),
        "min_free_disk_percent": Key(float, 0.0, doc="unavailable below this free disk share (0 = no limit)"),
        "min_available_memory_mb": Key(float, 0.0, doc="unavailable below this (0 = no limit)"),
    },
}
AGENT = {
    "id": Key(str, REQUIRED, lambda v: None if v else "must not be empty"),
    "listen": Key(str, "127.0.0.1:50052", address),
    "timeout": Key(float, 10.0, positive),
    **LOG_KEYS,
}
AGENT_CHECKER = {"address": Key(str, REQUIRED, address), "timeout": Key(float, 5.0, positive)}
POLLER = {
    "id": Key(str, REQUIRED, token),
    "tenant": Key(str, REQUIRED, token),
    "interval": Key(float, 30.0, positive),
    "nats_url": Key(str, "nats://127.0.0.1:4222", nats_url),
    "stream": Key(str, "", doc='JetStream stream (default "SR_<TENANT>"), created if missing'),
    "jetstream_domain": Key(str, "", doc="JetStream domain of the stream (e.g. the edge leaf node's); empty = local"),
    "timeout": Key(float, 10.0, positive),
    **LOG_KEYS,
}
POLLER_AGENT = {"address": Key(str, REQUIRED, address), "timeout": Key(float, 10.0, positive)}
CORE = {
    "tenant": Key(str, REQUIRED, token),
    "nats_url": Key(str, "nats://127.0.0.1:4222", nats_url),
    "stream": Key(str, ""),
    "durable": Key(str, "core", token),
    "jetstream_domain": Key(str, "", doc="JetStream domain of the stream (e.g. an edge leaf node's); empty = local"),
    "output": Key(str, REQUIRED, doc="JSON-lines file the reports are appended to"),
    "batch": Key(int, 64, positive),
    **LOG_KEYS,
}


@dataclass
class Config:
    """A validated configuration: the role's main table plus its lists."""

    path: str
    main: dict[str, Any]
    items: list[dict[str, Any]] = field(default_factory=list)


def load(role: str, path: str | Path) -> Config:
    """Load and validate the configuration of ``role`` (checker, agent, poller, core)."""
    data = load_toml(path)
    try:
        if role == "checker":
            only_sections(data, {"checker", "checks"}, path)
            main = validate(data.get("checker", {}), CHECKER, "checker")
            checks = []
            for i, raw in enumerate(data.get("checks", [])):
                kind = raw.get("type") if isinstance(raw, dict) else None
                schema = {**CHECK_COMMON, **CHECK_TYPES.get(kind, {})}
                checks.append(validate(raw, schema, f"checks[{i}]"))
            if not checks:
                raise ConfigError("checks: at least one [[checks]] table required")
            names = [c["name"] for c in checks]
            if len(set(names)) != len(names):
                raise ConfigError("checks: check names must be unique")
            return Config(str(path), main, checks)
        if role == "agent":
            only_sections(data, {"agent", "checkers"}, path)
            return Config(
                str(path),
                validate(data.get("agent", {}), AGENT, "agent"),
                table_list(data, "checkers", AGENT_CHECKER, 1),
            )
        if role == "poller":
            only_sections(data, {"poller", "agents"}, path)
            main = validate(data.get("poller", {}), POLLER, "poller")
            main["stream"] = main["stream"] or f"SR_{main['tenant'].upper()}"
            return Config(str(path), main, table_list(data, "agents", POLLER_AGENT, 1))
        if role == "core":
            only_sections(data, {"core"}, path)
            main = validate(data.get("core", {}), CORE, "core")
            main["stream"] = main["stream"] or f"SR_{main['tenant'].upper()}"
            return Config(str(path), main)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    raise ValueError(f"unknown role {role!r}")


def split_address(addr: str) -> tuple[str, int]:
    """``"host:port"`` -> (host, port); IPv6 hosts may be bracketed."""
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)
