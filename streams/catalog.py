"""The telemetry catalog: every entity and every field, declared once.

DDL for Proton, ClickHouse and DuckDB (:mod:`streams.ddl`), Arrow schemas, the SRQL binder and the
collectors' decoders all derive from the declarations below. Adding a field here is the only step
needed to make it queryable, storable and decodable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import pyarrow as pa

from streams.types import (
    BOOL,
    FLOAT64,
    IP,
    LC_STRING,
    STRING,
    STRING_ARRAY,
    STRING_MAP,
    TIMESTAMP,
    UINT8,
    UINT16,
    UINT32,
    UINT32_ARRAY,
    UINT64,
    ColumnType,
)

# RFC 5424 §6.2.1 severities, with the spellings users type (upstream SRQL compared severity to 'warn').
SYSLOG_SEVERITIES: Mapping[str, int] = MappingProxyType(
    {
        "emerg": 0, "emergency": 0, "panic": 0,
        "alert": 1,
        "crit": 2, "critical": 2,
        "err": 3, "error": 3,
        "warn": 4, "warning": 4,
        "notice": 5,
        "info": 6, "informational": 6,
        "debug": 7,
    }
)  # fmt: skip


@dataclass(frozen=True)
class Field:
    """One column of an entity."""

    name: str
    type: ColumnType
    doc: str = ""
    aliases: tuple[str, ...] = ()
    nullable: bool = False
    # Named values a user may compare with (severity = 'warn'); compiled to the stored number.
    named_values: Mapping[str, int] | None = None


@dataclass(frozen=True)
class Measure:
    """A named aggregate an entity offers: ``func(field)``, over the rows where ``field = value`` if ``where``."""

    name: str
    func: str
    field: str | None = None
    where: tuple[str, str | int] | None = None
    doc: str = ""


@dataclass(frozen=True)
class Entity:
    """A typed telemetry stream (``kind='events'``) or a latest-row-per-key inventory (``kind='inventory'``)."""

    name: str
    stream: str
    fields: tuple[Field, ...]
    event_time: str
    aliases: tuple[str, ...] = ()
    kind: str = "events"
    keys: tuple[str, ...] = ()
    order_by: tuple[str, ...] = ()
    measures: tuple[Measure, ...] = ()
    doc: str = ""
    ttl_days: int | None = 90
    _by_name: Mapping[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Field] = {}
        for f in self.fields:
            for n in (f.name, *f.aliases):
                if n in by_name:
                    raise ValueError(f"{self.name}: field name {n!r} declared twice")
                by_name[n] = f
        object.__setattr__(self, "_by_name", MappingProxyType(by_name))
        if self.event_time not in by_name:
            raise ValueError(f"{self.name}: event-time field {self.event_time!r} is not a field")

    @property
    def is_inventory(self) -> bool:
        return self.kind == "inventory"

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def field(self, name: str) -> Field | None:
        """The field called ``name`` or having it as an alias.

        Names are case-sensitive, but a name that matches nothing exactly falls back to its lower-case
        form (every catalog name is lower case), so upstream queries such as ``WHERE IP = ...`` work.
        """
        return self._by_name.get(name) or self._by_name.get(name.lower())

    def field_names(self) -> list[str]:
        """Every name a field answers to (canonical names and aliases)."""
        return list(self._by_name)

    def measure(self, name: str) -> Measure | None:
        return next((m for m in self.measures if m.name == name), None)

    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of this entity's record batches (collectors produce exactly this)."""
        return pa.schema(
            [pa.field(f.name, f.type.arrow(), nullable=f.nullable or f.name != self.event_time) for f in self.fields]
        )


def _f(name: str, type_: ColumnType, doc: str = "", *aliases: str, **kw: object) -> Field:
    return Field(name, type_, doc, tuple(aliases), **kw)  # type: ignore[arg-type]


DEVICES = Entity(
    name="devices",
    aliases=("inventory",),
    stream="device_inventory",
    kind="inventory",
    keys=("device",),
    event_time="last_seen",
    order_by=("device",),
    ttl_days=None,
    doc="Device inventory: the latest row per device.",
    fields=(
        _f("device", STRING, "device name (the key)"),
        _f("ip", IP, "management address"),
        _f("hostname", STRING, "DNS or configured host name", "host"),
        _f("mac", STRING, "MAC address of the management interface"),
        _f("site", LC_STRING, "site or location"),
        _f("role", LC_STRING, "role in the network (core, edge, access, ...)"),
        _f("vendor", LC_STRING, "hardware vendor"),
        _f("model", LC_STRING, "hardware model"),
        _f("last_seen", TIMESTAMP, "when the device was last seen", "_tp_time"),
    ),
)

METRICS = Entity(
    name="metrics",
    aliases=("gnmi", "devices"),
    stream="gnmi_stream",
    event_time="timestamp",
    order_by=("device", "metric", "timestamp"),
    doc="gNMI streaming telemetry: one row per leaf update.",
    fields=(
        _f("timestamp", TIMESTAMP, "event time from the notification", "_tp_time"),
        _f("device", STRING, "target name", "host", "target"),
        _f("metric", LC_STRING, "the path without keys (e.g. interfaces/interface/state/counters/in-octets)",
           "path", "name"),
        _f("value", FLOAT64, "numeric value (NaN when the leaf is not numeric)", nullable=True),
        _f("value_str", STRING, "the value as text, for strings, enums and JSON leaves", nullable=True),
        _f("labels", STRING_MAP, "path keys and the subscription's labels"),
        _f("deleted", BOOL, "the update was a delete"),
    ),
)

NETFLOW = Entity(
    name="netflow",
    aliases=("flows",),
    stream="netflow_stream",
    event_time="timestamp",
    order_by=("exporter", "timestamp"),
    doc="NetFlow v5/v9 and IPFIX flow records.",
    measures=(
        Measure("total_bytes", "sum", "bytes", doc="sum of bytes"),
        Measure("total_packets", "sum", "packets", doc="sum of packets"),
        Measure("flow_count", "count", doc="number of flow records"),
    ),
    fields=(
        _f("timestamp", TIMESTAMP, "flow end time (event time)", "_tp_time"),
        _f("exporter", IP, "exporter address"),
        _f("src_ip", IP, "source address"),
        _f("dst_ip", IP, "destination address"),
        _f("src_port", UINT16, "source port"),
        _f("dst_port", UINT16, "destination port"),
        _f("protocol", UINT8, "IP protocol number", "proto"),
        _f("bytes", UINT64, "octets (sampling applied)", "octets"),
        _f("packets", UINT64, "packets (sampling applied)"),
        _f("tcp_flags", UINT8, "cumulative TCP flags"),
        _f("tos", UINT8, "type of service"),
        _f("src_as", UINT32, "source AS"),
        _f("dst_as", UINT32, "destination AS"),
        _f("in_if", UINT32, "input interface index"),
        _f("out_if", UINT32, "output interface index"),
        _f("next_hop", IP, "next-hop address", nullable=True),
        _f("flow_start", TIMESTAMP, "first packet of the flow"),
        _f("sampling_interval", UINT32, "1 in N sampling applied to bytes/packets"),
        _f("application", LC_STRING, "application (IANA IE 95/96 or port/protocol map)", "app"),
        _f("version", UINT16, "export protocol version (5, 9, 10 = IPFIX)"),
    ),
)

LOGS = Entity(
    name="logs",
    aliases=("syslog",),
    stream="syslog_stream",
    event_time="timestamp",
    order_by=("device", "timestamp"),
    doc="Syslog messages (RFC 3164 and RFC 5424).",
    fields=(
        _f("timestamp", TIMESTAMP, "message time (receive time when the message has none)", "_tp_time"),
        _f("device", STRING, "HOSTNAME, or the sender's address when absent", "host", "hostname"),
        _f("source_ip", IP, "sender address"),
        _f("facility", UINT8, "facility (PRI / 8)"),
        _f("severity", UINT8, "severity 0 (emerg) .. 7 (debug); names such as 'warn' compare too",
           "level", "severity_text", named_values=SYSLOG_SEVERITIES),
        _f("app_name", LC_STRING, "APP-NAME / TAG", "service", "service_name", "program"),
        _f("proc_id", STRING, "PROCID", nullable=True),
        _f("msg_id", STRING, "MSGID (RFC 5424)", nullable=True),
        _f("message", STRING, "the message text", "msg"),
        _f("structured_data", STRING, "RFC 5424 structured data, as sent", nullable=True),
        _f("trace_id", STRING, "trace id when the sender put one in structured data", "trace", nullable=True),
        _f("parse_error", BOOL, "the line did not parse; message holds the raw line"),
    ),
)

TRAPS = Entity(
    name="traps",
    aliases=("snmp_traps",),
    stream="snmp_traps",
    event_time="timestamp",
    order_by=("device", "timestamp"),
    doc="SNMP v1/v2c/v3 traps and informs.",
    fields=(
        _f("timestamp", TIMESTAMP, "receive time", "_tp_time"),
        _f("device", STRING, "agent address (v1 agent-addr, else the sender)", "host"),
        _f("source_ip", IP, "sender address"),
        _f("version", LC_STRING, "'v1', 'v2c' or 'v3'"),
        _f("community", STRING, "community (v1/v2c) or USM user name (v3)", "user"),
        _f("pdu_type", LC_STRING, "'trap', 'trap_v1' or 'inform'"),
        _f("trap_oid", STRING, "snmpTrapOID.0 (v1 traps translated per RFC 3584)", "oid"),
        _f("uptime", UINT32, "sysUpTime.0 in hundredths of a second"),
        _f("varbinds", STRING_MAP, "OID to value as text"),
        _f("varbind_types", STRING_MAP, "OID to SNMP type name"),
    ),
)

BGP = Entity(
    name="bgp",
    aliases=("bgp_updates", "flows"),
    stream="bgp_updates",
    event_time="timestamp",
    order_by=("router", "prefix", "timestamp"),
    doc="BGP updates from BMP: one row per prefix per update.",
    measures=(
        Measure("announcements", "count", None, ("action", "announce"), doc="announce rows"),
        Measure("withdrawals", "count", None, ("action", "withdraw"), doc="withdraw rows"),
    ),
    fields=(
        _f("timestamp", TIMESTAMP, "BMP per-peer header time", "_tp_time"),
        _f("router", IP, "the BMP speaker (router) address"),
        _f("peer", IP, "peer address", "peer_ip"),
        _f("peer_as", UINT32, "peer AS"),
        _f("prefix", STRING, "prefix in CIDR notation"),
        _f("action", LC_STRING, "'announce' or 'withdraw'"),
        _f("as_path", UINT32_ARRAY, "AS path (AS_SET members flattened)"),
        _f("next_hop", IP, "next hop", nullable=True),
        _f("origin", LC_STRING, "'igp', 'egp' or 'incomplete'", nullable=True),
        _f("med", UINT32, "MULTI_EXIT_DISC", nullable=True),
        _f("local_pref", UINT32, "LOCAL_PREF", nullable=True),
        _f("communities", STRING_ARRAY, "communities as 'asn:value'"),
        _f("large_communities", STRING_ARRAY, "large communities as 'a:b:c'"),
        _f("path_id", UINT32, "ADD-PATH path identifier (0 when not negotiated)"),
        _f("post_policy", BOOL, "post-policy Adj-RIB-In"),
        _f("loc_rib", BOOL, "Loc-RIB (RFC 9069)"),
    ),
)

BGP_PEERS = Entity(
    name="bgp_peers",
    aliases=("peer_events",),
    stream="bgp_peer_events",
    event_time="timestamp",
    order_by=("router", "peer", "timestamp"),
    doc="BMP peer up/down events.",
    fields=(
        _f("timestamp", TIMESTAMP, "event time", "_tp_time"),
        _f("router", IP, "the BMP speaker (router) address"),
        _f("peer", IP, "peer address", "peer_ip"),
        _f("peer_as", UINT32, "peer AS"),
        _f("state", LC_STRING, "'up' or 'down'"),
        _f("reason", STRING, "peer-down reason, or the capabilities summary on up", nullable=True),
    ),
)


class Catalog:
    """The set of entities, with name and alias resolution helpers (the binder applies SRQL's rules)."""

    def __init__(self, entities: tuple[Entity, ...]) -> None:
        self.entities = entities
        self._by_name = {e.name: e for e in entities}

    def __iter__(self) -> Iterator[Entity]:
        return iter(self.entities)

    def __getitem__(self, name: str) -> Entity:
        return self._by_name[name]

    def get(self, name: str) -> Entity | None:
        return self._by_name.get(name)

    def candidates(self, name: str) -> list[Entity]:
        """Entities answering to ``name``: the entity of that name first, then those aliasing it in order."""
        exact = [e for e in self.entities if e.name == name]
        found = exact + [e for e in self.entities if name in e.aliases]
        if not found and name != name.lower():
            return self.candidates(name.lower())  # same case fallback as Entity.field
        return found

    def all_names(self) -> list[str]:
        """Every entity name and alias, for completion and did-you-mean."""
        return sorted({n for e in self.entities for n in e.names})

    def by_stream(self, stream: str) -> Entity | None:
        return next((e for e in self.entities if e.stream == stream), None)


CATALOG = Catalog((DEVICES, METRICS, NETFLOW, LOGS, TRAPS, BGP, BGP_PEERS))
