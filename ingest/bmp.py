"""BMP collector (RFC 7854, Loc-RIB per RFC 9069): routers connect over TCP, rows go to the catalog.

    serviceradar-ingest bmp --listen HOST:PORT [--config FILE]
        [--output FILE.parquet | --engine | --proton URL]

Data path: one asyncio task per router reads the TCP stream and splits it on the BMP common header
(:class:`BmpFramer`); whole messages go through the shared :class:`ingest.collector.Collector` queue to
:class:`BmpDecoder` in the decode thread, which writes

* ``bgp`` (stream ``bgp_updates``): one row per prefix per Route Monitoring UPDATE, action 'announce'
  or 'withdraw', with the path attributes, pre/post-policy and Loc-RIB flags;
* ``bgp_peers`` (stream ``bgp_peer_events``): Peer Up (the OPENs' capabilities summarised) and Peer
  Down (the reason), written to a second sink (``FILE.peers.parquet`` beside ``--output``).

A malformed message (bad common header, per-peer header, OPEN or UPDATE) is counted as
``drop_malformed`` for that router, logged with the reason, and closes that router's session only;
the collector keeps serving the others. Statistics, Initiation, Termination and Route Mirroring are
decoded too: the first three into the per-router health, mirrored UPDATEs into ``bgp`` rows.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import signal
import struct
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ingest.bgp import (
    Attributes,
    BgpError,
    Update,
    UpdateDecoder,
    add_path_families,
    ipv4_text,
    ipv6_text,
    notification_text,
    parse_open,
    split_header,
)
from ingest.cli import _health_server
from ingest.collector import Collector, Framer, FramingError, RuntimeOptions, now_ms
from ingest.config import (
    Config,
    ConfigError,
    HealthOptions,
    apply_output_and_batch,
    fill_dataclass,
    parse_hostport,
    read_toml,
)
from ingest.core import MALFORMED, OVERSIZED, Counters, DecodeResult, Packet
from ingest.sinks import EngineSink, MemorySink, ParquetSink, ProtonSink, Sink, SinkError
from streams.catalog import CATALOG

log = logging.getLogger("ingest.bmp")

ROUTE_MONITORING, STATISTICS, PEER_DOWN, PEER_UP, INITIATION, TERMINATION, ROUTE_MIRRORING = range(7)
TYPE_NAMES = ("route_monitoring", "statistics", "peer_down", "peer_up", "initiation", "termination",
              "route_mirroring")  # fmt: skip
PEER_TYPE_LOC_RIB = 3
FLAG_V, FLAG_L, FLAG_A = 0x80, 0x40, 0x20  # IPv6 peer, post-policy, legacy 2-byte AS_PATH
_CLOSE = "bmp-close"  # transport of the sentinel packet a router task queues when its session ends
_PER_PEER = struct.Struct("!BB8s16sI4sII")  # 42 bytes
_TLV = struct.Struct("!HH")

PEER_DOWN_REASONS = {
    1: "local system closed",
    2: "local system closed, FSM event",
    3: "remote system closed",
    4: "remote system closed without notification",
    5: "peer de-configured",
    6: "local system closed, Loc-RIB no longer monitored",
}
STAT_NAMES = {0: "rejected_prefixes", 1: "duplicate_prefix_advertisements", 2: "duplicate_withdraws",
              3: "cluster_list_loop", 4: "as_path_loop", 5: "originator_id_loop", 6: "as_confed_loop",
              7: "adj_rib_in_routes", 8: "loc_rib_routes", 11: "duplicate_updates",
              14: "adj_rib_out_pre_routes", 15: "adj_rib_out_post_routes"}  # fmt: skip


@dataclass
class BmpOptions:
    """The ``[bmp]`` config section."""

    max_message: int = 1024 * 1024  # largest BMP message accepted (RFC 8654 extended UPDATEs fit)
    max_routers: int = 1024  # concurrent router sessions; more are refused (bounded memory)
    attribute_cache: int = 4096  # parsed path-attribute blocks remembered per decoder
    peers_output: str = ""  # Parquet file for peer events (default: <output>.peers.parquet)


class BmpError(ValueError):
    """A BMP message does not parse."""


class BmpFramer(Framer):
    """Splits a router's byte stream on the BMP common header (version 3, length, type)."""

    def __init__(self, max_message: int = 1024 * 1024) -> None:
        self.buf = bytearray()
        self.max_message = max_message

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out: list[bytes] = []
        pos, buf = 0, self.buf
        while len(buf) - pos >= 6:
            version, length, mtype = buf[pos], int.from_bytes(buf[pos + 1 : pos + 5], "big"), buf[pos + 5]
            if version != 3:
                del buf[:pos]
                raise FramingError(f"BMP version {version}, expected 3", out)
            if length < 6 or length > self.max_message:
                del buf[:pos]
                what = "too long" if length > self.max_message else "too short"
                raise FramingError(f"BMP message length {length} {what}", out)
            if mtype > ROUTE_MIRRORING:
                del buf[:pos]
                raise FramingError(f"unknown BMP message type {mtype}", out)
            if len(buf) - pos < length:
                break
            out.append(bytes(buf[pos : pos + length]))
            pos += length
        del buf[:pos]
        return out


@dataclass
class PeerHeader:
    """The RFC 7854 §4.2 per-peer header."""

    peer_type: int
    flags: int
    distinguisher: bytes
    address: str
    asn: int
    bgp_id: str
    timestamp_ms: int

    @property
    def loc_rib(self) -> bool:
        return self.peer_type == PEER_TYPE_LOC_RIB

    @property
    def post_policy(self) -> bool:
        return not self.loc_rib and bool(self.flags & FLAG_L)

    @property
    def asn_size(self) -> int:
        return 2 if not self.loc_rib and self.flags & FLAG_A else 4


def parse_peer_header(msg: bytes, received_ms: int) -> PeerHeader:
    """Decode the per-peer header that follows the 6-byte common header."""
    if len(msg) < 6 + 42:
        raise BmpError(f"{len(msg)}-byte message too short for the per-peer header")
    ptype, flags, dist, addr, asn, bgp_id, sec, usec = _PER_PEER.unpack_from(msg, 6)
    if ptype > PEER_TYPE_LOC_RIB:
        raise BmpError(f"unknown peer type {ptype}")
    ipv6 = ptype != PEER_TYPE_LOC_RIB and flags & FLAG_V
    address = ipv6_text(addr) if ipv6 else ipv4_text(addr[12:])
    ts = sec * 1000 + usec // 1000 if sec else received_ms
    return PeerHeader(ptype, flags, dist, address, asn, ipv4_text(bgp_id), ts)


def parse_tlvs(data: bytes, where: str) -> list[tuple[int, bytes]]:
    """Information TLVs (Initiation, Termination, Route Mirroring): (type, value) pairs."""
    out, pos = [], 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise BmpError(f"{where}: TLV header truncated")
        t, n = _TLV.unpack_from(data, pos)
        if pos + 4 + n > len(data):
            raise BmpError(f"{where}: TLV {t} of {n} bytes runs past the message")
        out.append((t, data[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    return out


@dataclass
class RouterState:
    """What the decoder knows about one router session (bounded: dropped when the session ends)."""

    router: str
    port: int
    sys_name: str = ""
    sys_descr: str = ""
    messages: dict[str, int] = field(default_factory=dict)
    # (distinguisher, peer address) → families whose UPDATEs carry ADD-PATH ids
    add_path: dict[tuple[bytes, str], frozenset] = field(default_factory=dict)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)  # peer → statistic → value
    closed_reason: str = ""  # set when a malformed message closed the session


class _Rows:
    """Column lists for one decode chunk; turned into Arrow once per chunk."""

    def __init__(self, names: list[str]) -> None:
        self.cols: dict[str, list] = {n: [] for n in names}

    def batch(self, schema: pa.Schema) -> pa.RecordBatch:
        arrays = []
        for f in schema:
            vals = self.cols[f.name]
            if f.name == "timestamp":
                arrays.append(pa.array(np.asarray(vals, np.int64), pa.int64()).cast(f.type))
            else:
                arrays.append(pa.array(vals, f.type))
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def __len__(self) -> int:
        return len(self.cols["timestamp"])


class _UpdateRows:
    """bgp rows of one decode chunk, kept as per-message values plus per-prefix indices.

    Per message only the header values and one reference to its (shared, cached) attributes are kept;
    per prefix only its text, path id, message index and kind. The Arrow columns are then built with a
    few ``take`` calls, so the Python work per prefix is three list appends.
    """

    ANNOUNCE, ANNOUNCE_MP, WITHDRAW = 0, 1, 2

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.router: list[str] = []
        self.peer: list[str] = []
        self.peer_as: list[int] = []
        self.post: list[bool] = []
        self.loc: list[bool] = []
        self.attr_id: list[int] = []
        self.nh: list[str | None] = []
        self.mp_nh: list[str | None] = []
        self.attrs: list[Attributes] = []
        self._attr_ids: dict[int, int] = {}  # id(Attributes) → index (the decoder's cache shares objects)
        self.msg: list[int] = []
        self.prefix: list[str] = []
        self.path_id: list[int] = []
        self.kind: list[int] = []

    def add(self, router: str, hdr: PeerHeader, upd: Update) -> None:
        n_ann, n_wd = len(upd.announced), len(upd.withdrawn)
        if not n_ann + n_wd:
            return  # End-of-RIB marker or attribute-only UPDATE
        m = len(self.ts)
        self.ts.append(hdr.timestamp_ms)
        self.router.append(router)
        self.peer.append(hdr.address)
        self.peer_as.append(hdr.asn)
        self.post.append(hdr.post_policy)
        self.loc.append(hdr.loc_rib)
        a = upd.attrs
        aid = self._attr_ids.get(id(a))
        if aid is None or self.attrs[aid] is not a:
            aid = self._attr_ids[id(a)] = len(self.attrs)
            self.attrs.append(a)
        self.attr_id.append(aid)
        self.nh.append(a.next_hop)
        self.mp_nh.append(upd.mp_next_hop)
        for prefixes in (upd.announced, upd.withdrawn):
            for p, pid in prefixes:
                self.prefix.append(p)
                self.path_id.append(pid)
        self.msg += [m] * (n_ann + n_wd)
        self.kind += [self.ANNOUNCE_MP] * upd.mp_count + [self.ANNOUNCE] * (n_ann - upd.mp_count) + [
            self.WITHDRAW] * n_wd  # fmt: skip

    def mark(self) -> tuple[int, int]:
        return len(self.ts), len(self.prefix)

    def truncate(self, mark: tuple[int, int]) -> None:
        """Forget the messages and prefixes added after ``mark`` (a message that turned out malformed)."""
        m, r = mark
        for col in (self.ts, self.router, self.peer, self.peer_as, self.post, self.loc, self.attr_id, self.nh,
                    self.mp_nh):  # fmt: skip
            del col[m:]
        for col in (self.msg, self.prefix, self.path_id, self.kind):
            del col[r:]

    def __len__(self) -> int:
        return len(self.prefix)

    def batch(self, schema: pa.Schema) -> pa.RecordBatch:
        msg = np.asarray(self.msg, np.int64)
        kind = np.asarray(self.kind, np.int8)
        nmsg = len(self.ts)
        by_msg = pa.array(msg)
        wd = kind == self.WITHDRAW
        # attributes: one entry per distinct Attributes, plus an empty one that withdrawals point to
        na = len(self.attrs)
        attr_idx = pa.array(np.where(wd, na, np.asarray(self.attr_id, np.int64)[msg]))
        a = self.attrs
        attr_cols = {
            "as_path": pa.array([list(x.as_path) for x in a] + [[]], schema.field("as_path").type),
            "origin": pa.array([x.origin for x in a] + [None], pa.string()),
            "med": pa.array([x.med for x in a] + [None], pa.uint32()),
            "local_pref": pa.array([x.local_pref for x in a] + [None], pa.uint32()),
            "communities": pa.array([list(x.communities) for x in a] + [[]], schema.field("communities").type),
            "large_communities": pa.array([list(x.large_communities) for x in a] + [[]],
                                          schema.field("large_communities").type),
        }
        # next hop: the message's NEXT_HOP for IPv4 NLRI, its MP_REACH next hop for MP NLRI, none for withdrawals
        nh_idx = np.where(wd, 2 * nmsg, msg + np.where(kind == self.ANNOUNCE_MP, nmsg, 0))
        next_hop = pa.array(self.nh + self.mp_nh + [None], pa.string()).take(pa.array(nh_idx))
        cols = {
            "timestamp": pa.array(np.asarray(self.ts, np.int64)).cast(schema.field("timestamp").type).take(by_msg),
            "router": pa.array(self.router, pa.string()).take(by_msg),
            "peer": pa.array(self.peer, pa.string()).take(by_msg),
            "peer_as": pa.array(self.peer_as, pa.uint32()).take(by_msg),
            "prefix": pa.array(self.prefix, pa.string()),
            "action": pa.array(["announce", "withdraw"]).take(pa.array(wd.astype(np.int8))),
            "next_hop": next_hop,
            "path_id": pa.array(self.path_id, pa.uint32()),
            "post_policy": pa.array(self.post, pa.bool_()).take(by_msg),
            "loc_rib": pa.array(self.loc, pa.bool_()).take(by_msg),
            **{k: v.take(attr_idx) for k, v in attr_cols.items()},
        }
        return pa.RecordBatch.from_arrays([cols[f.name] for f in schema], schema=schema)


class BmpDecoder:
    """BMP messages → ``bgp`` batches (returned) and ``bgp_peers`` batches (:meth:`take_peer_events`)."""

    entity = "bgp"

    def __init__(self, options: BmpOptions | None = None) -> None:
        self.options = options or BmpOptions()
        self.schema = CATALOG["bgp"].arrow_schema()
        self.peer_schema = CATALOG["bgp_peers"].arrow_schema()
        self.updates = UpdateDecoder(self.options.attribute_cache)
        self.routers: dict[tuple[str, int], RouterState] = {}
        # called (router, port, reason) from the decode thread when a malformed message ends a session
        self.on_malformed: Callable[[str, int, str], None] | None = None
        self._peer_batches: list[pa.RecordBatch] = []
        self._lock = threading.Lock()

    # ---- public ----------------------------------------------------------------------------------
    def decode(self, packets: list[Packet], counters: Counters) -> DecodeResult:
        rows, peers = _UpdateRows(), _Rows(self.peer_schema.names)
        for p in packets:
            key = (p.source, p.port)
            if p.transport == _CLOSE:
                self.routers.pop(key, None)
                continue
            state = self.routers.get(key)
            if state is None:
                state = self.routers[key] = RouterState(p.source, p.port)
            frames = p.data if isinstance(p.data, list) else [p.data]
            counters.add(p.source, packets=len(frames), nbytes=sum(len(f) for f in frames))
            for msg in frames:
                if state.closed_reason:
                    counters.drop(p.source, MALFORMED)  # queued after the bad one: the session is gone
                    continue
                before = rows.mark()
                try:
                    self._message(state, msg, p.received_ms, rows, peers)
                except (BmpError, BgpError) as e:
                    self._malformed(state, counters, msg, str(e), rows, before)
        result = DecodeResult()
        if len(rows):
            result.batches.append(rows.batch(self.schema))
            self._count_records(rows, counters)
        if len(peers):
            with self._lock:
                self._peer_batches.append(peers.batch(self.peer_schema))
        return result

    def housekeeping(self, now_ms: int, counters: Counters) -> None:
        pass

    def take_peer_events(self) -> pa.Table | None:
        """Peer events decoded since the last call, as one table (None when there were none)."""
        with self._lock:
            batches, self._peer_batches = self._peer_batches, []
        return pa.Table.from_batches(batches) if batches else None

    def router_status(self) -> list[dict[str, Any]]:
        """Per-router health: identity from Initiation, message counts, latest statistics."""
        return [
            {"router": s.router, "port": s.port, "sys_name": s.sys_name, "sys_descr": s.sys_descr,
             "messages": dict(s.messages), "peers_up": len(s.add_path), "stats": dict(s.stats)}
            for s in list(self.routers.values())
        ]  # fmt: skip

    # ---- message types ---------------------------------------------------------------------------
    def _message(self, state: RouterState, msg: bytes, received_ms: int, rows: _UpdateRows, peers: _Rows) -> None:
        mtype = msg[5]
        name = TYPE_NAMES[mtype]
        state.messages[name] = state.messages.get(name, 0) + 1
        if mtype == INITIATION:
            for t, v in parse_tlvs(msg[6:], "Initiation"):
                if t == 1:
                    state.sys_descr = v.decode("utf-8", "replace")
                elif t == 2:
                    state.sys_name = v.decode("utf-8", "replace")
            return
        if mtype == TERMINATION:
            parse_tlvs(msg[6:], "Termination")
            return
        hdr = parse_peer_header(msg, received_ms)
        body = memoryview(msg)[48:]
        if mtype == ROUTE_MONITORING:
            self._route_monitoring(state, hdr, body, rows)
        elif mtype == PEER_UP:
            self._peer_up(state, hdr, body, peers)
        elif mtype == PEER_DOWN:
            self._peer_down(state, hdr, body, peers)
        elif mtype == STATISTICS:
            self._statistics(state, hdr, body)
        else:
            self._mirroring(state, hdr, bytes(body), rows)

    def _route_monitoring(self, state: RouterState, hdr: PeerHeader, body: memoryview, rows: _UpdateRows) -> None:
        mtype, length = split_header(body, "Route Monitoring")
        if length != len(body):
            raise BmpError(f"Route Monitoring holds {len(body)} bytes but its BGP message says {length}")
        if mtype != 2:
            raise BmpError(f"Route Monitoring carries BGP message type {mtype}, not an UPDATE")
        add_path = state.add_path.get((hdr.distinguisher, hdr.address), frozenset())
        rows.add(state.router, hdr, self.updates.decode(body, hdr.asn_size, add_path))

    def _peer_up(self, state: RouterState, hdr: PeerHeader, body: memoryview, peers: _Rows) -> None:
        if len(body) < 20:
            raise BmpError("Peer Up shorter than its local address and ports")
        local = bytes(body[:16])
        local_addr = ipv6_text(local) if hdr.flags & FLAG_V and not hdr.loc_rib else ipv4_text(local[12:])
        local_port, remote_port = struct.unpack_from("!HH", body, 16)
        rest = body[20:]
        _, sent_len = split_header(rest, "Peer Up sent OPEN")
        sent = parse_open(rest[:sent_len])
        rest = rest[sent_len:]
        _, recv_len = split_header(rest, "Peer Up received OPEN")
        received = parse_open(rest[:recv_len])
        parse_tlvs(bytes(rest[recv_len:]), "Peer Up information")
        state.add_path[(hdr.distinguisher, hdr.address)] = add_path_families(sent, received)
        reason = (f"local {local_addr}:{local_port} remote port {remote_port}; "
                  f"peer open: {received.summary()}; local open: {sent.summary()}")  # fmt: skip
        _peer_row(peers, state, hdr, "up", reason)

    def _peer_down(self, state: RouterState, hdr: PeerHeader, body: memoryview, peers: _Rows) -> None:
        if len(body) < 1:
            raise BmpError("Peer Down without a reason")
        code = body[0]
        reason = f"{code}: {PEER_DOWN_REASONS.get(code, 'unknown reason')}"
        if code in (1, 3) and len(body) > 1:
            reason += ", " + notification_text(body[1:])
        elif code == 2:
            if len(body) < 3:
                raise BmpError("Peer Down reason 2 without its FSM event code")
            reason += f" {struct.unpack_from('!H', body, 1)[0]}"
        state.add_path.pop((hdr.distinguisher, hdr.address), None)
        _peer_row(peers, state, hdr, "down", reason)

    def _statistics(self, state: RouterState, hdr: PeerHeader, body: memoryview) -> None:
        if len(body) < 4:
            raise BmpError("Statistics Report without its count")
        count = struct.unpack_from("!I", body, 0)[0]
        tlvs = parse_tlvs(bytes(body[4:]), "Statistics Report")
        if len(tlvs) != count:
            raise BmpError(f"Statistics Report says {count} counters but holds {len(tlvs)}")
        stats = state.stats.setdefault(hdr.address, {})
        for t, v in tlvs:
            if len(v) in (4, 8):
                stats[STAT_NAMES.get(t, f"type_{t}")] = int.from_bytes(v, "big")
            elif len(v) == 11:  # per-AFI/SAFI gauges (types 9, 10): afi u16, safi u8, u64
                stats[f"{STAT_NAMES.get(t, f'type_{t}')}_{v[0] << 8 | v[1]}_{v[2]}"] = int.from_bytes(v[3:], "big")

    def _mirroring(self, state: RouterState, hdr: PeerHeader, body: bytes, rows: _UpdateRows) -> None:
        for t, v in parse_tlvs(body, "Route Mirroring"):
            if t == 0 and len(v) >= 19 and v[18] == 2:  # a mirrored UPDATE becomes rows like a monitored one
                add_path = state.add_path.get((hdr.distinguisher, hdr.address), frozenset())
                rows.add(state.router, hdr, self.updates.decode(v, hdr.asn_size, add_path))

    # ---- errors ----------------------------------------------------------------------------------
    def _malformed(self, state: RouterState, counters: Counters, msg: bytes, reason: str, rows: _UpdateRows,
                   before: tuple[int, int]) -> None:  # fmt: skip
        rows.truncate(before)  # rows of a half-decoded message are not kept
        counters.drop(state.router, MALFORMED)
        state.closed_reason = reason
        log.warning(json.dumps({"event": "bmp_malformed", "router": state.router, "port": state.port,
                                "type": TYPE_NAMES[msg[5]] if len(msg) > 5 and msg[5] < 7 else "?",
                                "reason": reason, "action": "session closed"}))  # fmt: skip
        if self.on_malformed is not None:
            self.on_malformed(state.router, state.port, reason)

    @staticmethod
    def _count_records(rows: _UpdateRows, counters: Counters) -> None:
        per_msg = np.bincount(np.asarray(rows.msg, np.int64), minlength=len(rows.router))
        totals: dict[str, int] = collections.defaultdict(int)
        for router, n in zip(rows.router, per_msg.tolist(), strict=True):  # per message, not per row
            totals[router] += n
        for router, n in totals.items():
            counters.add(router, records=n)


def _peer_row(peers: _Rows, state: RouterState, hdr: PeerHeader, up: str, reason: str) -> None:
    c = peers.cols
    c["timestamp"].append(hdr.timestamp_ms)
    c["router"].append(state.router)
    c["peer"].append(hdr.address)
    c["peer_as"].append(hdr.asn)
    c["state"].append(up)
    c["reason"].append(reason)


# ---- the collector -------------------------------------------------------------------------------
class BmpCollector:
    """A BMP TCP server: one task per router, the shared Collector for ``bgp`` rows, a second sink for peers."""

    def __init__(self, sink: Sink, peer_sink: Sink, options: BmpOptions | None = None,
                 runtime: RuntimeOptions | None = None) -> None:  # fmt: skip
        self.options = options or BmpOptions()
        self.decoder = BmpDecoder(self.options)
        self.collector = Collector(self.decoder, sink, runtime)
        self.peer_sink = peer_sink
        self.peer_rows_flushed = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: dict[tuple[str, int], asyncio.StreamWriter] = {}
        self._tasks: set[asyncio.Task] = set()
        self._flusher: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.refused = 0

    @property
    def counters(self) -> Counters:
        return self.collector.counters

    async def listen(self, host: str, port: int) -> int:
        """Accept routers on HOST:PORT (0 picks a port); returns the bound port."""
        self._loop = asyncio.get_running_loop()
        self.decoder.on_malformed = self._close_from_thread
        self._server = await asyncio.start_server(self._serve_router, host, port, reuse_address=True)
        bound = self._server.sockets[0].getsockname()[1]
        self.collector.bound.append(("tcp", host, bound))
        self.collector.start()
        self._flusher = asyncio.create_task(self._flush_peers_periodically())
        return bound

    async def _serve_router(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        key = (peer[0], peer[1])
        if len(self._writers) >= self.options.max_routers:
            self.refused += 1
            log.warning(json.dumps({"event": "bmp_refused", "router": key[0], "reason": "max_routers"}))
            writer.close()
            return
        self._writers[key] = writer
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        log.info(json.dumps({"event": "bmp_router_connected", "router": key[0], "port": key[1]}))
        framer = BmpFramer(self.options.max_message)
        reason = "closed by router"
        try:
            while data := await reader.read(256 * 1024):
                try:
                    frames = framer.feed(data)
                except FramingError as e:
                    self._offer(key, e.frames)
                    self.counters.drop(key[0], OVERSIZED if "too long" in str(e) else MALFORMED)
                    reason = f"malformed: {e}"
                    log.warning(json.dumps({"event": "bmp_malformed", "router": key[0], "port": key[1],
                                            "reason": str(e), "action": "session closed"}))  # fmt: skip
                    break
                self._offer(key, frames)
        except (ConnectionError, asyncio.CancelledError) as e:
            reason = f"{type(e).__name__}"
        finally:
            self._writers.pop(key, None)
            self.collector.offer(Packet([], key[0], key[1], now_ms(), _CLOSE))
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)
            log.info(json.dumps({"event": "bmp_router_disconnected", "router": key[0], "port": key[1],
                                 "reason": reason}))  # fmt: skip

    def _offer(self, key: tuple[str, int], frames: list[bytes]) -> None:
        if frames:
            self.collector.offer(Packet(frames, key[0], key[1], now_ms(), "tcp"))

    def _close_from_thread(self, router: str, port: int, reason: str) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._close_router, router, port)

    def _close_router(self, router: str, port: int) -> None:
        w = self._writers.get((router, port))
        if w is not None:
            w.close()

    async def _flush_peers_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.collector.options.flush_ms / 1000)
            await self._flush_peers()

    async def _flush_peers(self) -> None:
        table = self.decoder.take_peer_events()
        if table is not None:
            await asyncio.to_thread(self.peer_sink.write, table)
            self.peer_rows_flushed += table.num_rows

    async def flush_peer_events(self) -> None:
        """Write the peer events decoded so far now (update rows are flushed by the runtime's worker by
        rows or age, and on stop(); ``Collector.flush()`` must not run beside that worker: both would
        decode chunks at once in two threads)."""
        await self._flush_peers()

    async def stop(self) -> None:
        """Stop accepting, end router sessions, decode what is queued, flush both sinks, close them."""
        if self._server is not None:
            self._server.close()
        for w in list(self._writers.values()):
            w.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._flusher is not None:
            self._flusher.cancel()
        await self.collector.stop()
        await self._flush_peers()
        await asyncio.to_thread(self.peer_sink.close)

    def health(self) -> dict[str, Any]:
        h = self.collector.health()
        h.update(routers=self.decoder.router_status(), connected=len(self._writers), refused=self.refused,
                 peer_rows_flushed=self.peer_rows_flushed)  # fmt: skip
        return h


def memory_collector(options: BmpOptions | None = None, runtime: RuntimeOptions | None = None) -> BmpCollector:
    """A collector writing into two :class:`MemorySink` (``.collector.sink`` and ``.peer_sink``)."""
    return BmpCollector(MemorySink(), MemorySink(), options, runtime)


# ---- configuration and CLI -----------------------------------------------------------------------
def load_config(path: str | None) -> Config:
    """Read a BMP TOML config: [listen] tcp, [output], [batch], [health], [bmp] (see docs/bmp-gnmi.md)."""
    raw = read_toml(path)
    known = {"listen", "output", "batch", "health", "bmp"}
    for k in raw:
        if k not in known:
            raise ConfigError(f"unknown section [{k}] for the bmp collector (known: {', '.join(sorted(known))})")
    cfg = Config()
    listen = raw.get("listen", {})
    if not isinstance(listen, dict) or set(listen) - {"tcp"}:
        raise ConfigError("[listen] of the bmp collector takes only tcp = [\"HOST:PORT\", ...]")
    cfg.tcp = [parse_hostport(str(x), "listen.tcp") and str(x) for x in listen.get("tcp", [])]
    apply_output_and_batch(cfg, raw)
    cfg.health = fill_dataclass(HealthOptions, raw.get("health", {}), "health")
    cfg.protocol = fill_dataclass(BmpOptions, raw.get("bmp", {}), "bmp")
    for k in ("max_message", "max_routers", "attribute_cache"):
        if getattr(cfg.protocol, k) <= 0:
            raise ConfigError(f"bmp.{k} must be positive")
    return cfg


def build_sinks(cfg: Config, engine: object | None = None) -> tuple[Sink, Sink]:
    """The updates sink and the peer-events sink for the configured output."""
    chosen = [n for n, on in (("parquet", cfg.parquet), ("proton", cfg.proton), ("engine", cfg.engine)) if on]
    if len(chosen) != 1:
        raise ConfigError(f"choose exactly one output (--output, --proton or --engine); got {chosen or 'none'}")
    bgp, peers = CATALOG["bgp"], CATALOG["bgp_peers"]
    if cfg.parquet:
        peers_path = cfg.protocol.peers_output or _peers_path(cfg.parquet)
        return ParquetSink(cfg.parquet, bgp.arrow_schema()), ParquetSink(peers_path, peers.arrow_schema())
    if cfg.proton:
        base = cfg.proton.split("?", 1)[0]
        return (ProtonSink(cfg.proton, bgp.stream, bgp.arrow_schema()),
                ProtonSink(base, peers.stream, peers.arrow_schema()))  # fmt: skip
    sink = EngineSink("bgp", engine)
    return sink, EngineSink("bgp_peers", sink.engine)


def _peers_path(path: str) -> str:
    return (path[: -len(".parquet")] if path.endswith(".parquet") else path) + ".peers.parquet"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="serviceradar-ingest bmp", description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", action="append", default=[], metavar="HOST:PORT")
    p.add_argument("--config", metavar="FILE")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--output", metavar="FILE.parquet")
    out.add_argument("--engine", action="store_true")
    out.add_argument("--proton", metavar="URL")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def configure(args: argparse.Namespace) -> Config:
    """The collector's configuration from its file and flags (raises ConfigError)."""
    cfg = load_config(args.config)
    for spec in args.listen:
        parse_hostport(spec.removeprefix("tcp://"), "--listen")
        cfg.tcp.append(spec.removeprefix("tcp://"))
    if args.output or args.engine or args.proton:
        cfg.parquet, cfg.proton, cfg.engine = args.output or "", args.proton or "", bool(args.engine)
    if not cfg.tcp:
        raise ConfigError("nothing to listen on: give --listen HOST:PORT or [listen] tcp in the config")
    return cfg


def main(argv: list[str] | None = None) -> int:
    """``serviceradar-ingest bmp``: serve until SIGTERM/SIGINT, then flush both sinks and exit."""
    args = parse_args(argv)
    _configure_logging(args.log_level)
    try:
        cfg = configure(args)
        sink, peer_sink = build_sinks(cfg)
    except (ConfigError, SinkError) as e:
        log.error(json.dumps({"event": "config_error", "error": str(e)}))
        return 2
    try:
        asyncio.run(_serve(cfg, sink, peer_sink))
    except OSError as e:
        log.error(json.dumps({"event": "start_error", "error": str(e)}))
        return 2
    return 0


async def _serve(cfg: Config, sink: Sink, peer_sink: Sink) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(cfg, sink, peer_sink, stop)


async def serve(cfg: Config, sink: Sink, peer_sink: Sink, stop: asyncio.Event,
                ready: asyncio.Event | None = None) -> None:  # fmt: skip
    """Listen and decode until ``stop`` is set, then flush both sinks (``ready``: listening)."""
    col = BmpCollector(sink, peer_sink, cfg.protocol, cfg.runtime)
    for spec in cfg.tcp:
        await col.listen(*parse_hostport(spec))
    log.info(json.dumps({"event": "listening", "entity": "bgp", "on": col.health()["listening"]}))
    if ready is not None:
        ready.set()
    tasks = []
    if cfg.health.stats_interval_s > 0:
        tasks.append(asyncio.create_task(_log_stats(col, cfg.health.stats_interval_s)))
    if cfg.health.listen:  # the framework's HTTP health endpoint, answering with col.health()
        tasks.append(asyncio.create_task(_health_server(col, cfg.health.listen)))  # type: ignore[arg-type]
    await stop.wait()
    for t in tasks:
        t.cancel()
    await col.stop()
    log.info(json.dumps({"event": "stopped", "rows_flushed": col.collector.rows_flushed,
                         "peer_rows_flushed": col.peer_rows_flushed,
                         "exporters": col.counters.snapshot()}))  # fmt: skip


async def _log_stats(col: BmpCollector, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        log.info(json.dumps({"event": "stats", **col.health()}))


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines())
    logging.basicConfig(level=level.upper(), handlers=[handler])


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return msg if msg.startswith("{") else json.dumps({"level": record.levelname.lower(), "event": msg})


if __name__ == "__main__":
    sys.exit(main())
