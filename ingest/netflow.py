"""NetFlow v5, v9 (RFC 3954) and IPFIX (RFC 7011) decoding into the catalog's ``netflow`` batches.

Hot path: records are never decoded one by one. Every fixed-length template gets a NumPy structured
dtype; the data sets of a chunk of packets that use one template are joined and decoded by a single
``np.frombuffer``, and each catalog column is computed from the structured array in bulk (addresses
formatted by :mod:`ingest.addr`, times by integer arithmetic, applications by a port lookup table).
NetFlow v5 is treated as one more fixed template. Only templates with variable-length IPFIX fields
take a per-record path, which copies the fixed fields into the same normalised layout.

Robustness: flowsets are walked by their length, never by the header's record count (softflowd's v9
count is wrong); every length is checked before use; templates, held data sets and their bytes are
bounded per exporter; a bad packet is counted (``drop_malformed``) and skipped.
"""

from __future__ import annotations

import operator
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ingest.addr import ipv4_strings, ipv6_strings
from ingest.collector import BufferedFramer, FramingError
from ingest.core import MALFORMED, UNKNOWN_TEMPLATE, UNSUPPORTED, Counters, DecodeResult, Packet
from streams.catalog import CATALOG

SCHEMA = CATALOG["netflow"].arrow_schema()
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01

# IANA IPFIX information elements the catalog uses (NetFlow v9 shares the numbering below 128).
IE_BYTES, IE_PACKETS, IE_PROTO, IE_TOS, IE_FLAGS, IE_SPORT = 1, 2, 4, 5, 6, 7
IE_SRC4, IE_IN_IF, IE_DPORT, IE_DST4, IE_OUT_IF, IE_NH4 = 8, 10, 11, 12, 14, 15
IE_SRC_AS, IE_DST_AS, IE_BGP_NH4, IE_LAST_UP, IE_FIRST_UP = 16, 17, 18, 21, 22
IE_SRC6, IE_DST6, IE_SAMPLING, IE_NH6, IE_BGP_NH6 = 27, 28, 34, 62, 63
IE_TOTAL_BYTES, IE_TOTAL_PACKETS, IE_APP_ID, IE_APP_NAME = 85, 86, 95, 96
IE_START_S, IE_END_S, IE_START_MS, IE_END_MS = 150, 151, 152, 153
IE_START_US, IE_END_US, IE_START_NS, IE_END_NS = 154, 155, 156, 157
IE_SYS_INIT_MS, IE_SAMPLING_PKT, IE_SAMPLER_RANDOM = 160, 305, 50
IE_ICMP4, IE_ICMP6 = 32, 139
USED_IES = frozenset(
    {1, 2, 4, 5, 6, 7, 8, 10, 32, 139, 11, 12, 14, 15, 16, 17, 18, 21, 22, 27, 28, 34, 62, 63, 85, 86, 95,
     150, 151, 152, 153, 154, 155, 156, 157, 160, 305, 50}
)  # fmt: skip
VARIABLE = 65535

# NetFlow v5's fixed 48-byte record, expressed as a template (IE, length); 0 is padding.
V5_FIELDS = [(8, 4), (12, 4), (15, 4), (10, 2), (14, 2), (2, 4), (1, 4), (22, 4), (21, 4), (7, 2),
             (11, 2), (0, 1), (6, 1), (4, 1), (5, 1), (16, 2), (17, 2), (0, 4)]  # fmt: skip


@dataclass(eq=False)
class Template:
    """A data or options template: its fields and, when every field is fixed-length, its dtype."""

    tid: int
    fields: list[tuple[int, int, int]]  # (IE id, length, enterprise number; 0 for IANA)
    options: bool = False
    refreshed_ms: int = 0
    raw: bytes = b""  # the template record as sent: a re-sent template is recognised by its bytes
    record_len: int = 0  # for fixed templates; minimum length for variable ones
    variable: bool = False
    bulk: bool = False  # a fixed-layout data template: its data sets are decoded by one frombuffer
    dtype: np.dtype = field(default=None)  # type: ignore[assignment]
    norm_dtype: np.dtype = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.variable = any(ln == VARIABLE for _, ln, _ in self.fields)
        self.bulk = not (self.variable or self.options)
        self.record_len = sum(1 if ln == VARIABLE else ln for _, ln, _ in self.fields)
        names, formats, offsets, off = [], [], [], 0
        norm_names, norm_formats, norm_offsets, noff = [], [], [], 0
        for ie, ln, pen in self.fields:
            if pen == 0 and ie in USED_IES and ln != VARIABLE and f"f{ie}" not in names:
                names.append(f"f{ie}")
                formats.append(_numpy_format(ln))
                offsets.append(off)
                norm_names.append(f"f{ie}")
                norm_formats.append(_numpy_format(ln))
                norm_offsets.append(noff)
                noff += ln
            off += 0 if ln == VARIABLE else ln
        if not self.variable:
            self.dtype = np.dtype(
                {"names": names, "formats": formats, "offsets": offsets, "itemsize": self.record_len}
            )
        # the layout the per-record path writes variable-template records into
        self.norm_dtype = np.dtype(
            {"names": norm_names, "formats": norm_formats, "offsets": norm_offsets, "itemsize": max(noff, 1)}
        )


def _template_fields(body: bytes, pos: int, count: int, ipfix: bool) -> tuple[list[tuple[int, int, int]], int]:
    """Field specifiers of one template record: ([(IE, length, enterprise)], end offset)."""
    if pos + 4 * count > len(body):
        raise ValueError("template beyond its set")
    flat = struct.unpack_from(f">{2 * count}H", body, pos)
    if not ipfix or not any(ie & 0x8000 for ie in flat[::2]):
        return [(flat[i], flat[i + 1], 0) for i in range(0, 2 * count, 2)], pos + 4 * count
    fields = []  # IPFIX with enterprise-specific fields: each is followed by a 4-byte PEN
    for _ in range(count):
        ie, ln = struct.unpack_from(">HH", body, pos)
        pos += 4
        pen = 0
        if ie & 0x8000:
            pen = struct.unpack_from(">I", body, pos)[0]
            pos += 4
            ie &= 0x7FFF
        fields.append((ie, ln, pen))
    return fields, pos


def _numpy_format(length: int) -> str:
    return {1: "u1", 2: ">u2", 4: ">u4", 8: ">u8"}.get(length, f"V{length}")


@dataclass
class DomainState:
    """Per (exporter, version, source id / observation domain): templates, options, held data."""

    templates: dict[int, Template] = field(default_factory=dict)
    sampling: int = 0  # from options data; 0 = not announced
    sys_init_ms: int | None = None  # IPFIX systemInitTimeMilliseconds from options data
    pending: deque = field(default_factory=deque)  # (tid, body, meta, arrival_ms)
    pending_bytes: int = 0


@dataclass
class NetflowOptions:
    """The ``[netflow]`` config section."""

    template_ttl_s: float = 1800.0  # a template not refreshed for this long is forgotten
    pending_ttl_s: float = 10.0  # data sets held waiting for their template this long, then dropped
    max_pending_sets: int = 256  # held data sets per exporter domain (then oldest dropped)
    max_pending_bytes: int = 1 << 20  # held bytes per exporter domain
    max_templates: int = 1024  # templates per exporter domain (template-bomb bound)
    max_domains: int = 65536  # exporter domains remembered
    apply_sampling: bool = True  # multiply bytes/packets by the announced 1-in-N interval
    sampling_interval: int = 0  # force this interval for every exporter (0 = use what they announce)


@dataclass
class _Group:
    """Data records of one template gathered over a chunk of packets, decoded together at the end.

    A template belongs to one exporter domain, so a group has one exporter and version. Records come
    from the set walk (``chunks``, one per data set) and/or from :class:`_Bulk` (``bulk``). Within a
    chunk of datagrams, a group's rows are the bulk datagrams' records, then the walked ones: rows of
    one decode call are not in arrival order (flow records never are in time order anyway).
    """

    template: Template
    exporter: str
    version: int
    chunks: list[bytes] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    # (export ms, sys uptime ms or -1, system init ms or -1, sampling interval) per chunk
    meta: list[tuple[int, int, int, int]] = field(default_factory=list)
    app_names: list[str | None] | None = None  # per record, variable templates only
    bulk: _BulkPart | None = None

    def records(self) -> int:
        return sum(self.counts) + (0 if self.bulk is None else int(self.bulk.counts.sum()))


@dataclass
class _BulkPart:
    """The records :class:`_Bulk` cut for one group: structured records and per-datagram columns."""

    records: np.ndarray
    counts: np.ndarray
    meta: np.ndarray  # (datagrams, 4) int64, the columns of _Group.meta


@dataclass
class _Route:
    """One (exporter domain, data template) that bulk-decoded datagrams use, and the state they saw."""

    key: tuple[str, int, int]
    template: Template
    dom: DomainState
    sampling: int
    sys_init_ms: int | None
    live: bool = True


class NetflowDecoder:
    """Decodes NetFlow v5/v9/IPFIX datagrams (and IPFIX over TCP frames) into ``netflow`` batches."""

    entity = "netflow"

    def __init__(self, options: NetflowOptions | None = None) -> None:
        self.options = options or NetflowOptions()
        self.domains: dict[tuple[str, int, int], DomainState] = {}

    # ---- entry points ----------------------------------------------------------------------------
    vectorised = True  # decode one-data-set datagrams with :class:`_Bulk` (tests switch it off to compare)

    def decode(self, packets: list[Packet], counters: Counters) -> DecodeResult:
        datas, sources, received = _messages(packets)
        index = {src: i for i, src in enumerate(dict.fromkeys(sources))}
        names = list(index)
        codes = np.fromiter(map(index.__getitem__, sources), np.int64, len(sources))
        lens = np.fromiter(map(len, datas), np.int64, len(datas))
        n_pk = np.bincount(codes, minlength=len(names))
        n_by = np.bincount(codes, weights=lens, minlength=len(names))
        for i, src in enumerate(names):
            counters.add(src, packets=int(n_pk[i]), nbytes=int(n_by[i]))
        groups: dict[Template, _Group] = {}
        bulk = _Bulk(self, datas, lens, codes, names) if self.vectorised and datas else None
        walk = deque(np.flatnonzero(~bulk.mask).tolist() if bulk else range(len(datas)))
        while walk:  # everything else, in arrival order, through the set walk
            i = walk.popleft()
            try:
                self._packet(datas[i], sources[i], received(i), groups, counters)
            except (struct.error, ValueError, IndexError, OverflowError):
                counters.drop(sources[i], MALFORMED)  # records before the bad set are kept
            if bulk is not None:
                later = bulk.invalidate_after(i)  # this datagram changed state later bulk ones relied on
                if len(later):
                    walk = deque(sorted([*walk, *later.tolist()]))
        if bulk is not None:
            bulk.emit(groups)
        for g in groups.values():
            counters.add(g.exporter, records=g.records())
        batches = []
        for g in groups.values():
            try:
                b = self._batch(g)
            except (ValueError, TypeError, OverflowError, pa.ArrowException):
                # defence in depth: a template the checks above let through but NumPy cannot decode
                counters.drop(g.exporter, MALFORMED)
                continue
            if b is not None:
                batches.append(b)
        return DecodeResult(batches)

    def housekeeping(self, now_ms: int, counters: Counters) -> None:
        """Forget stale templates; drop data sets held past ``pending_ttl_s`` (counted)."""
        ttl_ms = self.options.template_ttl_s * 1000
        hold_ms = self.options.pending_ttl_s * 1000
        for (exporter, _, _), dom in list(self.domains.items()):
            for tid, t in list(dom.templates.items()):
                if now_ms - t.refreshed_ms > ttl_ms:
                    del dom.templates[tid]
            while dom.pending and now_ms - dom.pending[0][3] > hold_ms:
                _, body, _, _ = dom.pending.popleft()
                dom.pending_bytes -= len(body)
                counters.drop(exporter, UNKNOWN_TEMPLATE)

    # ---- packets ---------------------------------------------------------------------------------
    def _packet(self, data: bytes, exporter: str, now: int, groups: dict, counters: Counters) -> int:
        if len(data) < 4:
            raise ValueError("short header")
        version = (data[0] << 8) | data[1]
        if version == 5:
            return self._v5(data, exporter, groups)
        if version == 9:
            if len(data) < 20:
                raise ValueError("short v9 header")
            _, _, uptime, secs, _, domain = _V9_HEADER.unpack_from(data)
            return self._sets(data, 20, len(data), exporter, 9, domain, secs * 1000, uptime,
                              now, groups, counters)  # fmt: skip
        if version == 10:
            if len(data) < 16:
                raise ValueError("short IPFIX header")
            _, length, secs, _, domain = struct.unpack_from(">HHIII", data)
            if length < 16 or length > len(data):
                raise ValueError("IPFIX length beyond datagram")
            return self._sets(data, 16, length, exporter, 10, domain, secs * 1000, None, now,
                              groups, counters)  # fmt: skip
        counters.drop(exporter, UNSUPPORTED)
        return 0

    def _v5(self, data: bytes, exporter: str, groups: dict) -> int:
        if len(data) < 24:
            raise ValueError("short v5 header")
        _, count, uptime, secs, nsecs, _, _, _, sampling = struct.unpack_from(">HHIIIIBBH", data)
        n = min(count, (len(data) - 24) // 48)
        if n <= 0:
            return 0
        dom = self._domain(exporter, 5, 0)
        t = dom.templates.get(0)
        if t is None:
            t = dom.templates[0] = Template(0, [(ie, ln, 0) for ie, ln in V5_FIELDS])
        t.refreshed_ms = 1 << 62  # never expires
        export_ms = secs * 1000 + nsecs // 1_000_000
        interval = self.options.sampling_interval or (sampling & 0x3FFF)
        meta = (exporter, 5, export_ms, uptime, -1, interval)
        self._add(groups, t, data[24 : 24 + n * 48], n, meta)
        return n

    def _domain(self, exporter: str, version: int, domain: int) -> DomainState:
        key = (exporter, version, domain)
        dom = self.domains.get(key)
        if dom is None:
            if len(self.domains) >= self.options.max_domains:
                self.domains.pop(next(iter(self.domains)))  # forget the oldest exporter domain
            dom = self.domains[key] = DomainState()
        return dom

    def _sets(self, data: bytes, pos: int, end: int, exporter: str, version: int, domain: int,
              export_ms: int, uptime_ms: int | None, now: int, groups: dict,
              counters: Counters) -> int:  # fmt: skip
        dom = self._domain(exporter, version, domain)
        templates = dom.templates
        records = 0
        meta = (exporter, version, export_ms, uptime_ms)
        fast_meta = None
        unpack = _SET_HEADER.unpack_from
        while pos + 4 <= end:
            set_id, set_len = unpack(data, pos)
            if set_len < 4 or pos + set_len > end:
                raise ValueError("set length beyond packet")
            start = pos + 4
            pos += set_len
            if set_id >= 256:
                t = templates.get(set_id)
                if t is not None and t.bulk:
                    # hot path: a fixed-layout data set is only sliced here; decoding happens in bulk
                    n = (set_len - 4) // t.record_len  # the remainder is padding
                    if n:
                        if fast_meta is None:
                            fast_meta = self._meta(meta, dom)
                        self._add(groups, t, data[start : start + n * t.record_len], n, fast_meta)
                        records += n
                elif t is None:
                    self._hold(dom, set_id, data[start:pos], meta, now, exporter, counters)
                else:
                    records += self._data(t, data[start:pos], meta, dom, groups)
            elif set_id in (0, 2) and (version == 9) == (set_id == 0):
                self._templates(data[start:pos], version, dom, now, False, exporter, groups, counters)
            elif set_id in (1, 3) and (version == 9) == (set_id == 1):
                self._templates(data[start:pos], version, dom, now, True, exporter, groups, counters)
            # set ids 4..255 are reserved: skipped by length
        return records

    def _meta(self, meta: tuple, dom: DomainState) -> tuple:
        """(exporter, version, export ms, sys uptime or -1, system init or -1, sampling) of a data set."""
        exporter, version, export_ms, uptime_ms = meta
        boot_ms = dom.sys_init_ms if dom.sys_init_ms is not None else -1
        sampling = self.options.sampling_interval or dom.sampling
        return (exporter, version, export_ms, -1 if uptime_ms is None else uptime_ms, boot_ms, sampling)

    def _templates(self, body: bytes, version: int, dom: DomainState, now: int, options: bool,
                   exporter: str, groups: dict, counters: Counters) -> None:  # fmt: skip
        pos = 0
        while pos + 4 <= len(body):
            tid, count = struct.unpack_from(">HH", body, pos)
            if tid == 0 and count == 0:
                break  # zero padding at the end of the set
            pos += 4
            if options and version == 9:
                # v9 options record: template id, scope length, option length (bytes), then fields
                if pos + 2 > len(body):
                    raise ValueError("short options template")
                opt_len = struct.unpack_from(">H", body, pos)[0]
                pos += 2
                count = (count + opt_len) // 4
            elif options:
                if count == 0:
                    self._withdraw(dom, tid, version)
                    continue
                if pos + 2 > len(body):
                    raise ValueError("short options template")
                pos += 2  # scope field count: scopes are decoded like any other field
            if count == 0:
                if version == 10:
                    self._withdraw(dom, tid, version)
                    continue
                raise ValueError("empty template")
            if tid < 256:
                raise ValueError("template id below 256")
            old = dom.templates.get(tid)
            if (old is not None and old.options == options and len(old.fields) == count
                    and body.startswith(old.raw, pos)):  # fmt: skip
                old.refreshed_ms = now  # a refresh: keep the object so decode groups stay merged
                pos += len(old.raw)
                continue
            fields, end = _template_fields(body, pos, count, version == 10)
            if any(ln == 0 for _, ln, _ in fields):
                raise ValueError("zero-length field in template")
            raw = body[pos:end]
            pos = end
            t = Template(tid, fields, options=options, refreshed_ms=now, raw=raw)
            if t.record_len == 0:
                raise ValueError("zero-length template")
            if len(dom.templates) >= self.options.max_templates and tid not in dom.templates:
                counters.drop(exporter, MALFORMED)  # template bomb: refuse more templates
                continue
            dom.templates[tid] = t
            self._release(dom, t, groups)

    def _withdraw(self, dom: DomainState, tid: int, version: int) -> None:
        if tid in (2, 3):  # withdraw all (data or options) templates
            for k in [k for k, t in dom.templates.items() if t.options == (tid == 3)]:
                del dom.templates[k]
        else:
            dom.templates.pop(tid, None)

    def _hold(self, dom: DomainState, tid: int, body: bytes, meta: tuple, now: int,
              exporter: str, counters: Counters) -> None:  # fmt: skip
        """Keep a data set whose template has not arrived yet, within the per-domain bounds."""
        dom.pending.append((tid, body, meta, now))
        dom.pending_bytes += len(body)
        opts = self.options
        while len(dom.pending) > opts.max_pending_sets or dom.pending_bytes > opts.max_pending_bytes:
            _, old, _, _ = dom.pending.popleft()
            dom.pending_bytes -= len(old)
            counters.drop(exporter, UNKNOWN_TEMPLATE)

    def _release(self, dom: DomainState, t: Template, groups: dict) -> None:
        if not dom.pending:
            return
        keep: deque = deque()
        for item in dom.pending:
            if item[0] == t.tid:
                dom.pending_bytes -= len(item[1])
                self._data(t, item[1], item[2], dom, groups)
            else:
                keep.append(item)
        dom.pending = keep

    def _data(self, t: Template, body: bytes, meta: tuple, dom: DomainState, groups: dict) -> int:
        if t.options:
            self._options_data(t, body, dom)
            return 0
        meta5 = self._meta(meta, dom)
        if not t.variable:
            n = len(body) // t.record_len  # the remainder is padding
            if n:
                self._add(groups, t, body[: n * t.record_len], n, meta5)
            return n
        rows, names = _walk_variable(t, body)
        if rows:
            g = self._add(groups, t, b"".join(rows), len(rows), meta5)
            if g.app_names is None:
                g.app_names = [None] * (sum(g.counts) - len(rows))
            g.app_names.extend(names)
        return len(rows)

    def _add(self, groups: dict, t: Template, chunk: bytes, n: int, meta: tuple) -> _Group:
        g = groups.get(t)
        if g is None:
            g = groups[t] = _Group(t, meta[0], meta[1])
        g.chunks.append(chunk)
        g.counts.append(n)
        g.meta.append(meta[2:])
        return g

    def _options_data(self, t: Template, body: bytes, dom: DomainState) -> None:
        if t.variable:
            rows, _ = _walk_variable(t, body)
            arr = np.frombuffer(b"".join(rows), dtype=t.norm_dtype) if rows else None
        else:
            n = len(body) // t.record_len
            arr = np.frombuffer(body, dtype=t.dtype, count=n) if n else None
        if arr is None or len(arr) == 0:
            return
        names = arr.dtype.names or ()
        for ie in (IE_SAMPLING, IE_SAMPLING_PKT, IE_SAMPLER_RANDOM):
            if f"f{ie}" in names:
                dom.sampling = int(_uint(arr[f"f{ie}"])[-1])
                break
        if f"f{IE_SYS_INIT_MS}" in names:
            dom.sys_init_ms = int(_uint(arr[f"f{IE_SYS_INIT_MS}"])[-1])

    # ---- columns ---------------------------------------------------------------------------------
    def _records(self, g: _Group) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(structured records, records per data set, per-set meta (k, 4)) of a group."""
        t = g.template
        walked = np.frombuffer(b"".join(g.chunks), dtype=t.norm_dtype if t.variable else t.dtype)
        counts = np.asarray(g.counts, np.int64)
        meta = np.asarray(g.meta, np.int64).reshape(-1, 4)
        if g.bulk is None:
            return walked, counts, meta
        b = g.bulk
        if not g.chunks:
            return b.records, b.counts, b.meta
        # both kinds: the bulk datagrams' records first, then the walked ones (one copy, no reordering)
        records = np.concatenate([b.records.view(opaque := f"V{walked.dtype.itemsize}"), walked.view(opaque)])
        return records.view(walked.dtype), np.concatenate([b.counts, counts]), np.concatenate([b.meta, meta])

    def _batch(self, g: _Group) -> pa.RecordBatch | None:
        arr, counts, meta = self._records(g)
        n = len(arr)
        if n == 0:
            return None
        exporter, version = g.exporter, g.version
        export = _per_record(meta[:, 0], counts, n)
        uptime = _per_record(meta[:, 1], counts, n)
        boot = _per_record(meta[:, 2], counts, n)
        names = arr.dtype.names or ()

        def col(ie: int, alt: int | None = None) -> np.ndarray | None:
            if f"f{ie}" in names:
                return _uint(arr[f"f{ie}"])
            if alt is not None and f"f{alt}" in names:
                return _uint(arr[f"f{alt}"])
            return None

        def zeros_or(ie: int, dtype: type, alt: int | None = None) -> np.ndarray:
            c = col(ie, alt)
            return np.zeros(n, dtype) if c is None else c.astype(dtype)

        end_ms, start_ms = _times(arr, names, export, uptime, boot)
        interval = np.maximum(_per_record(meta[:, 3], counts, n), 1)
        rec_interval = col(IE_SAMPLING, IE_SAMPLING_PKT)
        if rec_interval is not None:
            interval = np.where(rec_interval > 0, rec_interval.astype(np.int64), interval)
        nbytes = zeros_or(IE_BYTES, np.uint64, IE_TOTAL_BYTES)
        npkts = zeros_or(IE_PACKETS, np.uint64, IE_TOTAL_PACKETS)
        if self.options.apply_sampling and (interval > 1).any():
            nbytes = nbytes * interval.astype(np.uint64)
            npkts = npkts * interval.astype(np.uint64)
        sport = zeros_or(IE_SPORT, np.uint16)
        dport = zeros_or(IE_DPORT, np.uint16)
        icmp = col(IE_ICMP4, IE_ICMP6)
        if icmp is not None:  # ICMP type*256+code goes in the destination port, as in NetFlow v5
            dport = np.where(dport == 0, icmp.astype(np.uint16), dport)
        proto = zeros_or(IE_PROTO, np.uint8)
        app = _application(arr, names, g.app_names, proto, sport, dport)
        columns = {
            "timestamp": pa.array(end_ms).view(_TS),
            "exporter": pa.repeat(pa.scalar(exporter, pa.string()), n),
            "src_ip": _addr(arr, names, IE_SRC4, IE_SRC6, n),
            "dst_ip": _addr(arr, names, IE_DST4, IE_DST6, n),
            "src_port": sport,
            "dst_port": dport,
            "protocol": proto,
            "bytes": nbytes,
            "packets": npkts,
            "tcp_flags": (zeros_or(IE_FLAGS, np.uint16) & 0xFF).astype(np.uint8),
            "tos": zeros_or(IE_TOS, np.uint8),
            "src_as": zeros_or(IE_SRC_AS, np.uint32),
            "dst_as": zeros_or(IE_DST_AS, np.uint32),
            "in_if": zeros_or(IE_IN_IF, np.uint32),
            "out_if": zeros_or(IE_OUT_IF, np.uint32),
            "next_hop": _next_hop(arr, names, n),
            "flow_start": pa.array(start_ms).view(_TS),
            "sampling_interval": interval.astype(np.uint32),
            "application": app,
            "version": np.full(n, version, np.uint16),
        }
        return pa.RecordBatch.from_arrays([pa.array(columns[f.name], f.type) if isinstance(
            columns[f.name], np.ndarray) else columns[f.name] for f in SCHEMA], schema=SCHEMA)  # fmt: skip


_TS = pa.timestamp("ms", tz="UTC")
_SET_HEADER = struct.Struct(">HH")
_V9_HEADER = struct.Struct(">HHIIII")
def _messages(packets: list[Packet]) -> tuple[list[bytes], list[str], Callable[[int], int]]:
    """The datagrams (or IPFIX-over-TCP messages) of a chunk, their senders, and their receive times."""
    datas = list(map(_DATA, packets))
    if list not in set(map(type, datas)):
        return datas, list(map(_SOURCE, packets)), lambda i: packets[i].received_ms
    owner = [i for i, d in enumerate(datas) for _ in (d if d.__class__ is list else (d,))]  # TCP: message lists
    messages = [m for d in datas for m in (d if d.__class__ is list else (d,))]
    return messages, [packets[i].source for i in owner], lambda i: packets[owner[i]].received_ms


_DATA = operator.attrgetter("data")
_SOURCE = operator.attrgetter("source")
_BULK_PAD = bytes(24)  # after the joined datagrams: header probes of a short last datagram stay inside


class _Bulk:
    """The datagrams of a chunk that are exactly one data set of a known fixed-layout template.

    That is what exporters send between template refreshes, and it is found and cut without a
    Python loop per datagram: the chunk is joined into one buffer, every header is read with NumPy
    gathers, datagrams are routed by (exporter, version, domain, set id) through ``np.unique`` (one
    dict lookup per route, not per datagram), and the records of each route are gathered as rows of
    the template's dtype from an unaligned view of the buffer. Everything else takes the set walk.

    Routes see the template and options state as the chunk starts. The set walk runs over the other
    datagrams in arrival order, and after each one :meth:`invalidate_after` checks whether it changed
    that state (a template redefined or withdrawn, a sampling interval announced, the domain
    forgotten); the route's later datagrams then join the walk, so each record is decoded with the
    state its datagram saw, exactly as a datagram-by-datagram decoder would.
    """

    def __init__(self, dec: NetflowDecoder, datas: list[bytes], lens: np.ndarray, codes: np.ndarray,
                 names: list[str]) -> None:  # fmt: skip
        self.dec, self.codes, self.names = dec, codes, names
        self.buf = buf = np.frombuffer(b"".join([*datas, _BULK_PAD]), np.uint8)
        self.off = off = np.cumsum(lens) - lens

        def u16(at: np.ndarray) -> np.ndarray:
            return (buf[at].astype(np.int64) << 8) | buf[at + 1]

        def u32(at: np.ndarray) -> np.ndarray:
            return (u16(at) << 16) | u16(at + 2)

        version = u16(off)
        ipfix = version == 10
        self.head = head = np.where(ipfix, 16, 20)  # where the first set starts
        set_id, set_len = u16(off + head), u16(off + head + 2)
        one_set = (lens >= 24) & ((version == 9) | ipfix) & (set_len == lens - head) & (set_id >= 256)
        one_set &= ~ipfix | (u16(off + 2) == lens)  # IPFIX: the message length is the datagram's
        self.version = version
        self.domain = domain = u32(off + np.where(ipfix, 12, 16))
        self.export_ms = u32(off + np.where(ipfix, 4, 8)) * 1000
        self.uptime = np.where(ipfix, -1, u32(off + 4))
        self.mask = np.zeros(len(datas), bool)
        self.route_of = np.full(len(datas), -1, np.int64)
        self.n_rec = np.zeros(len(datas), np.int64)
        self.routes: list[_Route | None] = []
        self.by_domain: dict[tuple[str, int, int], list[int]] = {}
        self.domain_count = len(dec.domains)
        cand = np.flatnonzero(one_set)
        if not len(cand) or len(names) >= 1 << 13:  # (the route key packs the exporter in 13 bits)
            return
        key = (codes[cand] << 50) | (ipfix[cand].astype(np.int64) << 49) | (domain[cand] << 16) | set_id[cand]
        ukeys, inv = np.unique(key, return_inverse=True)
        reclen = np.array([self._route(k, names) for k in ukeys.tolist()], np.int64)
        n_rec = (set_len[cand] - 4) // np.maximum(reclen[inv], 1)  # the remainder is padding
        take = (reclen[inv] > 0) & (n_rec > 0)
        self.mask[cand[take]] = True
        self.route_of[cand] = inv
        self.n_rec[cand] = n_rec

    def _route(self, key: int, names: list[str]) -> int:
        """Register the route of a packed key; its record length, or 0 when it cannot be bulk-decoded."""
        dkey = (names[key >> 50], 10 if (key >> 49) & 1 else 9, (key >> 16) & 0xFFFFFFFF)
        dom = self.dec.domains.get(dkey)
        t = None if dom is None else dom.templates.get(key & 0xFFFF)
        if dom is None or t is None or not t.bulk:
            self.routes.append(None)
            return 0
        self.by_domain.setdefault(dkey, []).append(len(self.routes))
        self.routes.append(_Route(dkey, t, dom, dom.sampling, dom.sys_init_ms))
        return t.record_len

    def invalidate_after(self, i: int) -> np.ndarray:
        """Indices (> i) of bulk datagrams whose route the walked datagram ``i`` changed; now walked."""
        domains = self.dec.domains
        if len(domains) != self.domain_count or len(domains) >= self.dec.options.max_domains:
            # a domain was created, so one may have been forgotten to make room
            self.domain_count = len(domains)
            suspects = [j for j, r in enumerate(self.routes) if r is not None and r.live]
        else:  # only a v9/IPFIX datagram of the same exporter domain can change a route's state
            key = (self.names[self.codes[i]], int(self.version[i]), int(self.domain[i]))
            suspects = self.by_domain.get(key, [])
        dead = []
        for j in suspects:
            r = self.routes[j]
            dom = domains.get(r.key)
            if r.live and not (dom is r.dom and dom.templates.get(r.template.tid) is r.template
                               and dom.sampling == r.sampling and dom.sys_init_ms == r.sys_init_ms):  # fmt: skip
                r.live = False
                dead.append(j)
        if not dead:
            return np.zeros(0, np.int64)
        later = np.flatnonzero(self.mask & np.isin(self.route_of, dead))
        later = later[later > i]
        self.mask[later] = False
        return later

    def emit(self, groups: dict[Template, _Group]) -> None:
        """Cut the records of every bulk datagram, one gather per route, into the decode groups."""
        idx = np.flatnonzero(self.mask)
        if not len(idx):
            return
        route_of = self.route_of[idx]
        for j in np.unique(route_of).tolist():
            sel = idx[route_of == j]
            r = self.routes[j]
            t = r.template
            counts = self.n_rec[sel]
            first = self.off[sel] + self.head[sel] + 4
            starts = np.repeat(first - t.record_len * (np.cumsum(counts) - counts), counts)
            starts += t.record_len * np.arange(int(counts.sum()))
            # records as opaque rows (copied with memcpy; a gather of the structured dtype goes field by
            # field, 4x slower), from an unaligned view that has a row starting at every byte
            rows = np.ndarray((len(self.buf) - t.record_len + 1,), f"V{t.record_len}", buffer=self.buf, strides=(1,))
            boot = -1 if r.sys_init_ms is None else r.sys_init_ms
            sampling = self.dec.options.sampling_interval or r.sampling
            meta = np.stack([self.export_ms[sel], self.uptime[sel], np.full(len(sel), boot, np.int64),
                             np.full(len(sel), sampling, np.int64)], axis=1)  # fmt: skip
            g = groups.get(t)
            if g is None:
                g = groups[t] = _Group(t, r.key[0], r.key[1])
            g.bulk = _BulkPart(rows[starts].view(t.dtype), counts, meta)


def _per_record(values: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """Per-flowset values spread over the flowset's records (one fill when all are equal)."""
    if (values == values[0]).all():
        return np.full(n, values[0], np.int64)
    return np.repeat(values, counts)


def _walk_variable(t: Template, body: bytes) -> tuple[list[bytes], list[str | None]]:
    """Per-record walk of a template with variable-length fields (RFC 7011 §7).

    Fixed-length fields are copied into the template's normalised layout; applicationName (IE 96)
    is kept as text. Stops at the first record that does not fit (the rest is padding or garbage).
    """
    rows: list[bytes] = []
    names: list[str | None] = []
    pos, end = 0, len(body)
    while pos + t.record_len <= end:
        out = bytearray(t.norm_dtype.itemsize)
        app: str | None = None
        seen: set[int] = set()
        noff = 0
        ok = True
        for ie, ln, pen in t.fields:
            if ln == VARIABLE:
                if pos >= end:
                    ok = False
                    break
                ln = body[pos]
                pos += 1
                if ln == 255:
                    if pos + 2 > end:
                        ok = False
                        break
                    ln = (body[pos] << 8) | body[pos + 1]
                    pos += 2
                if pos + ln > end:
                    ok = False
                    break
                if pen == 0 and ie == IE_APP_NAME:
                    app = body[pos : pos + ln].decode("utf-8", "replace").rstrip("\x00")
                pos += ln
                continue
            if pos + ln > end:
                ok = False
                break
            if pen == 0 and ie in USED_IES and ie not in seen:
                seen.add(ie)
                out[noff : noff + ln] = body[pos : pos + ln]
                noff += ln
            pos += ln
        if not ok:
            break
        rows.append(bytes(out))
        names.append(app)
    return rows, names


def _uint(a: np.ndarray) -> np.ndarray:
    """An unsigned integer column from a structured field of any width (odd widths via bytes)."""
    if a.dtype.kind == "u":
        return a
    width = a.dtype.itemsize
    b = np.ascontiguousarray(a).view(np.uint8).reshape(-1, width)[:, -8:].astype(np.uint64)
    out = np.zeros(len(b), np.uint64)
    for i in range(b.shape[1]):
        out = (out << np.uint64(8)) | b[:, i]
    return out


def _times(
    arr: np.ndarray, names: tuple, export: np.ndarray, uptime: np.ndarray, boot: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(end, start) in ms since the epoch, from whichever time elements the template carries."""

    def one(ms: int, s: int, us: int, ns: int, up_ie: int) -> np.ndarray | None:
        if f"f{ms}" in names:
            return _uint(arr[f"f{ms}"]).astype(np.int64)
        if f"f{s}" in names:
            return _uint(arr[f"f{s}"]).astype(np.int64) * 1000
        for ie in (us, ns):
            if f"f{ie}" in names:  # NTP timestamp: 32-bit seconds since 1900, 32-bit fraction
                v = _uint(arr[f"f{ie}"])
                return ((v >> np.uint64(32)).astype(np.int64) - NTP_EPOCH_OFFSET) * 1000 + (
                    ((v & np.uint64(0xFFFFFFFF)) * np.uint64(1000)) >> np.uint64(32)
                ).astype(np.int64)
        if f"f{up_ie}" in names:
            rel = _uint(arr[f"f{up_ie}"]).astype(np.int64)
            # v5/v9: switched times are sysUpTime values; their distance to the header's sysUpTime
            # is a signed 32-bit difference (exporters such as softflowd send times "before boot").
            behind = ((uptime - rel) & 0xFFFFFFFF).astype(np.uint32).view(np.int32).astype(np.int64)
            return np.where(uptime >= 0, export - behind, np.where(boot >= 0, boot + rel, export))
        return None

    end = one(IE_END_MS, IE_END_S, IE_END_US, IE_END_NS, IE_LAST_UP)
    start = one(IE_START_MS, IE_START_S, IE_START_US, IE_START_NS, IE_FIRST_UP)
    if end is None:
        end = export if start is None else start
    return end, end if start is None else start


def _addr(arr: np.ndarray, names: tuple, ie4: int, ie6: int, n: int) -> pa.Array:
    if f"f{ie4}" in names:
        return ipv4_strings(_uint(arr[f"f{ie4}"]))
    if f"f{ie6}" in names and arr.dtype[f"f{ie6}"].itemsize == 16:
        return ipv6_strings(np.ascontiguousarray(arr[f"f{ie6}"]).view(np.uint8))
    return pa.nulls(n, pa.string())


def _next_hop(arr: np.ndarray, names: tuple, n: int) -> pa.Array:
    for ie4, ie6 in ((IE_NH4, IE_NH6), (IE_BGP_NH4, IE_BGP_NH6)):
        if f"f{ie4}" in names or f"f{ie6}" in names:
            return _addr(arr, names, ie4, ie6, n)
    return pa.nulls(n, pa.string())


# Well-known services for the port/protocol fallback of `application` (IANA service names).
SERVICES = {
    20: "ftp-data", 21: "ftp", 22: "ssh", 23: "telnet", 25: "smtp", 53: "dns", 67: "dhcp", 68: "dhcp",
    69: "tftp", 80: "http", 110: "pop3", 123: "ntp", 137: "netbios-ns", 138: "netbios-dgm",
    139: "netbios-ssn", 143: "imap", 161: "snmp", 162: "snmptrap", 179: "bgp", 389: "ldap", 443: "https",
    445: "microsoft-ds", 465: "smtps", 500: "isakmp", 514: "syslog", 587: "submission", 636: "ldaps",
    853: "domain-s", 993: "imaps", 995: "pop3s", 1194: "openvpn", 1433: "mssql", 1812: "radius",
    1813: "radius-acct", 2055: "netflow", 3306: "mysql", 3389: "rdp", 4739: "ipfix", 5060: "sip",
    5353: "mdns", 5432: "postgresql", 6379: "redis", 6514: "syslog-tls", 8080: "http-alt",
    8443: "https-alt", 9092: "kafka", 9200: "elasticsearch", 27017: "mongodb",
}  # fmt: skip
_APP_NAMES = pa.array(["", *dict.fromkeys(SERVICES.values()), "icmp", "ipv6-icmp", "gre", "esp", "ospf"])
_APP_INDEX = {name: i for i, name in enumerate(_APP_NAMES.to_pylist())}
assert len(_APP_NAMES) < 256, "the port and protocol tables below hold uint8 indices"
_PORT_APP = np.zeros(65536, np.uint8)  # small tables: the gathers stay in cache
for _port, _name in SERVICES.items():
    _PORT_APP[_port] = _APP_INDEX[_name]
_PROTO_APP = np.zeros(256, np.uint8)
for _proto, _name in {1: "icmp", 58: "ipv6-icmp", 47: "gre", 50: "esp", 89: "ospf"}.items():
    _PROTO_APP[_proto] = _APP_INDEX[_name]


def _application(arr: np.ndarray, names: tuple, app_names: list | None, proto: np.ndarray,
                 sport: np.ndarray, dport: np.ndarray) -> pa.Array:  # fmt: skip
    """IE 96 applicationName, else IE 95 applicationId ('engine:selector'), else the port/protocol map."""
    by_dport = _PORT_APP[dport]
    idx = np.where(by_dport > 0, by_dport, _PORT_APP[sport])
    by_proto = _PROTO_APP[proto]
    mapped = _APP_NAMES.take(np.where(by_proto > 0, by_proto, idx))
    exported: list | None = None
    if app_names is not None and any(a is not None for a in app_names):
        exported = app_names
    elif f"f{IE_APP_ID}" in names:
        raw = np.ascontiguousarray(arr[f"f{IE_APP_ID}"]).view(np.uint8).reshape(len(arr), -1)
        uniq, inv = np.unique(raw, axis=0, return_inverse=True)
        texts = [f"{r[0]}:{int.from_bytes(bytes(r[1:]), 'big')}" if len(r) > 1 else str(r[0]) for r in uniq]
        exported = [texts[i] for i in inv.ravel()]
    if exported is None:
        return mapped
    import pyarrow.compute as pc

    return pc.coalesce(pa.array(exported, pa.string()), mapped)


class IpfixFramer(BufferedFramer):
    """Splits an IPFIX-over-TCP stream (RFC 7011 §10.4) into messages by the header's length field."""

    def _split(self, data: bytes, out: list[bytes]) -> None:
        self.buf += data
        while len(self.buf) >= 4:
            length = (self.buf[2] << 8) | self.buf[3]
            if length < 16:
                raise FramingError("IPFIX message length below the header size")
            if len(self.buf) < length:
                break
            out.append(bytes(self.buf[:length]))
            del self.buf[:length]


OPTIONS = NetflowOptions


def build(options: NetflowOptions) -> tuple[NetflowDecoder, type[IpfixFramer]]:
    """The decoder and stream framer for the CLI (IPFIX over TCP uses the framer)."""
    return NetflowDecoder(options), IpfixFramer
