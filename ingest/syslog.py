"""Syslog (RFC 5424 and RFC 3164) decoding into the catalog's ``logs`` batches, and RFC 6587 framing.

Hot path: a chunk of messages is joined into one byte buffer and parsed with NumPy, not one regex
call per line: the positions of every ``<``, ``>``, space and ``]`` are found in single passes over
the buffer, each message's delimiters are located with ``searchsorted``, the PRI digits are summed
as vectors, and every field is cut out as a (start, end) range and gathered into an Arrow string
array in one step. (Measured against pyarrow's ``extract_regex``: RE2 sub-match extraction of the
RFC 5424 header cost several µs per line; see ``benchmarks/bench_ingest.py``.)

Malformed lines are kept: ``parse_error`` is true and ``message`` holds the raw line (facility 1,
severity 5, the RFC 3164 §4.3.3 defaults). Messages are grouped per format inside a batch (all RFC
5424 rows, then the others), so rows of one chunk are not in arrival order.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest import strings
from ingest.collector import BufferedFramer, FramingError
from ingest.core import Counters, DecodeResult, Packet
from streams.catalog import CATALOG

SCHEMA = CATALOG["logs"].arrow_schema()
LT, GT, SP, LBR, RBR, COLON, DASH, BSL = (ord(c) for c in "<> []:-\\")
BOM = (0xEF, 0xBB, 0xBF)
PAD = 32  # bytes of zero padding after the buffer so fixed-offset probes never read past it
_PAD_BYTES = bytes(PAD)
BLOCK_BYTES = 1 << 20  # message bytes parsed together (see parse_lines)


@dataclass
class SyslogOptions:
    """The ``[syslog]`` config section."""

    max_message: int = 64 * 1024  # longer stream frames close the connection (counted 'oversized')
    rfc3164_utc_offset_minutes: int = 0  # RFC 3164 times carry no zone: the senders' offset from UTC


class SyslogDecoder:
    """Decodes syslog datagrams and stream frames; never drops a message it received."""

    entity = "logs"

    def __init__(self, options: SyslogOptions | None = None) -> None:
        self.options = options or SyslogOptions()

    def housekeeping(self, now_ms: int, counters: Counters) -> None:
        pass

    def decode(self, packets: list[Packet], counters: Counters) -> DecodeResult:
        if not packets:
            return DecodeResult()
        datas = list(map(_DATA, packets))
        sources = list(map(_SOURCE, packets))
        index = {src: i for i, src in enumerate(dict.fromkeys(sources))}
        names = list(index)
        pkt_codes = np.fromiter(map(index.__getitem__, sources), np.int32, len(sources))
        try:  # datagrams: one message per packet
            lines, codes, frames = datas, pkt_codes, None
            lens = np.fromiter(map(len, lines), np.int64, len(lines))
            batches = parse_lines(lines, codes, names, _Received(packets), self.options, lens)
        except _StreamFrames:  # stream transports: a packet holds a list of frames
            frames = np.fromiter((len(d) if d.__class__ is list else 1 for d in datas), np.int64, len(datas))
            lines = [x for d in datas for x in (d if d.__class__ is list else (d,))]
            codes = np.repeat(pkt_codes, frames)
            lens = np.fromiter(map(len, lines), np.int64, len(lines))
            batches = parse_lines(lines, codes, names, _Received(packets, frames), self.options, lens)
        n_pk = np.bincount(pkt_codes, minlength=len(names))
        n_rec = np.bincount(codes, minlength=len(names))
        n_by = np.bincount(codes, weights=lens, minlength=len(names))
        for i, src in enumerate(names):
            counters.add(src, packets=int(n_pk[i]), records=int(n_rec[i]), nbytes=int(n_by[i]))
        return DecodeResult(batches)


class _StreamFrames(Exception):
    """Raised by :func:`parse_lines` when an element is a list of frames rather than one message."""


class _Received:
    """Receive times per message, read from the packets only when a row needs them.

    RFC 5424 messages carry their own time, so a chunk of them never pays for this column; RFC 3164
    rows need it for the year, and rows without a usable timestamp fall back to it.
    """

    def __init__(self, packets: list[Packet], frames: np.ndarray | None = None) -> None:
        self._packets, self._frames, self._ms = packets, frames, None

    def __call__(self) -> np.ndarray:
        if self._ms is None:
            ms = np.fromiter(map(_RECEIVED, self._packets), np.int64, len(self._packets))
            self._ms = ms if self._frames is None else np.repeat(ms, self._frames)
        return self._ms


_DATA = operator.attrgetter("data")
_SOURCE = operator.attrgetter("source")
_RECEIVED = operator.attrgetter("received_ms")
_MONTHS = sorted(((m[0] << 16) | (m[1] << 8) | m[2], i + 1) for i, m in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec")))  # fmt: skip
_MONTH_KEYS = np.array([k for k, _ in _MONTHS], np.int64)
_MONTH_NUM = np.array([m for _, m in _MONTHS], np.int64)


def _ranges(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """A string array of ``buf[starts[i]:ends[i]]`` (null where ``valid`` is false).

    Built through Arrow's string-view layout (:mod:`ingest.strings`); ``buf`` ends with ``PAD`` bytes.
    """
    n = len(starts)
    lens = ends - starts
    if valid is not None:
        lens = np.where(valid, lens, 0)
    np.maximum(lens, 0, out=lens)
    bitmap, nulls = None, 0
    if valid is not None and not valid.all():
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
        nulls = int(n - valid.sum())
    if len(buf) >= 2**31:  # view offsets are 32-bit: a (never seen) 2 GiB chunk takes the byte gather
        return _ranges_large(buf, starts, lens, bitmap, nulls)
    starts = np.minimum(starts, len(buf) - PAD)  # rows without a value may carry a sentinel start
    return strings.from_views(strings.views(buf, starts, lens), buf, bitmap, nulls)


def _ranges_large(buf: np.ndarray, starts: np.ndarray, lens: np.ndarray, bitmap: pa.Buffer | None,
                  nulls: int) -> pa.Array:  # fmt: skip
    """:func:`_ranges` for buffers past 32-bit offsets: a per-byte gather into a large string array."""
    n = len(starts)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    total = int(offsets[-1])
    data = buf[np.repeat(starts - offsets[:-1], lens) + np.arange(total)] if total else np.zeros(0, np.uint8)
    arr = pa.Array.from_buffers(pa.large_string(), n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)], nulls)
    return arr.cast(pa.string())


def _next(positions: np.ndarray, at: np.ndarray) -> np.ndarray:
    """For each index in ``at``, the first element of sorted ``positions`` that is >= it (or a sentinel)."""
    k = np.searchsorted(positions, at)
    ext = np.append(positions, np.iinfo(np.int64).max // 2)
    return ext[np.minimum(k, len(positions))]


def _nth_after(positions: np.ndarray, at: np.ndarray, count: int) -> list[np.ndarray]:
    """The first ``count`` elements of ``positions`` at or after each ``at`` (sentinel when missing)."""
    k = np.searchsorted(positions, at)
    ext = np.append(positions, np.full(count, np.iinfo(np.int64).max // 2))
    return [ext[np.minimum(k + j, len(positions) + j)] for j in range(count)]


def parse_lines(lines: list[bytes], src_idx: np.ndarray, sources: list[str],
                received: np.ndarray | Callable[[], np.ndarray], options: SyslogOptions | None = None,
                lens: np.ndarray | None = None) -> list[pa.RecordBatch]:  # fmt: skip
    """Parse syslog messages (one per element of ``lines``) into ``logs`` record batches.

    ``received`` holds the receive time (ms) of each line, or computes it when first needed. The
    chunk is joined and parsed in blocks of about ``BLOCK_BYTES``: a block's bytes are still in the
    CPU cache when its passes run, which makes a large chunk about twice as fast as one piece, and
    no buffer of the whole chunk is ever allocated.
    """
    options = options or SyslogOptions()
    if lens is None:
        lens = np.fromiter(map(len, lines), np.int64, len(lines))
    if isinstance(received, np.ndarray):
        received = _constant(received)
    ends = np.cumsum(lens)
    cuts = np.searchsorted(ends, np.arange(BLOCK_BYTES, int(ends[-1]) if len(ends) else 0, BLOCK_BYTES), "right")
    out: list[pa.RecordBatch] = []
    for r0, r1 in zip([0, *cuts], [*cuts, len(lines)], strict=True):
        if r1 > r0:
            block = lines[r0:r1]
            try:
                data = b"".join([*block, _PAD_BYTES])
            except TypeError:
                raise _StreamFrames from None
            block_lens = lens[r0:r1]
            block_ends = np.cumsum(block_lens)
            if not _valid_utf8(data, (block_ends - block_lens)[block_lens > 0]):
                # rare: repair only then, line by line, so slices stay valid UTF-8
                block = [ln.decode("utf-8", "replace").encode() for ln in block]
                data = b"".join([*block, _PAD_BYTES])
                block_lens = np.fromiter(map(len, block), np.int64, len(block))
                block_ends = np.cumsum(block_lens)
            out += _parse_block(np.frombuffer(data, np.uint8), block_ends - block_lens, block_ends, src_idx[r0:r1],
                                sources, _rows_of(received, r0, r1), options)  # fmt: skip
    return out


def _valid_utf8(data: bytes, starts: np.ndarray) -> bool:
    """Whether every line of the joined ``data`` is valid UTF-8 on its own (``starts``: non-empty lines).

    Arrow's (SIMD) validation of the whole buffer at once, plus the line boundaries: a valid buffer can
    still join a line ending in the middle of a character to a line starting with its continuation
    bytes (``b"\xc2"`` + ``b"\x80"``), so no non-empty line may start with a continuation byte.
    """
    if starts.size and ((np.frombuffer(data, np.uint8)[starts] & 0xC0) == 0x80).any():
        return False
    try:
        pa.Array.from_buffers(pa.large_string(), 1, [None, pa.py_buffer(np.array([0, len(data)], np.int64)),
                                                     pa.py_buffer(data)]).validate(full=True)  # fmt: skip
    except pa.ArrowInvalid:
        return False
    return True


def _constant(values: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: values


def _rows_of(received: Callable[[], np.ndarray], r0: int, r1: int) -> Callable[[], np.ndarray]:
    return lambda: received()[r0:r1]


def _parse_block(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, src_idx: np.ndarray, sources: list[str],
                 received: Callable[[], np.ndarray], options: SyslogOptions) -> list[pa.RecordBatch]:  # fmt: skip
    """Parse the messages at ``buf[starts[i]:ends[i]]`` (``buf`` ends with ``PAD`` readable bytes)."""
    n = len(starts)
    for _ in range(3):  # trailing LF, CR, NUL (rsyslog puts a LF inside octet-counted frames)
        last = buf[np.maximum(ends - 1, 0)]
        ends = ends - ((ends > starts) & ((last == 10) | (last == 13) | (last == 0)))
    # PRI: "<" 1-3 digits ">", so ">" is the 3rd, 4th or 5th byte (probed, no pass over the buffer)
    gt = np.where(buf[starts + 2] == GT, starts + 2,
                  np.where(buf[starts + 3] == GT, starts + 3, np.where(buf[starts + 4] == GT, starts + 4, ends)))
    plen = gt - starts - 1
    ok = (buf[starts] == LT) & (plen >= 1) & (plen <= 3) & (gt < ends)
    pri = np.zeros(n, np.int64)
    for j in range(1, 4):
        d = buf[np.minimum(starts + j, len(buf) - 1)].astype(np.int64) - 48
        use = ok & (plen >= j)
        ok &= ~use | ((d >= 0) & (d <= 9))
        pri = np.where(use, pri * 10 + d, pri)
    ok &= pri <= 191
    body = np.where(ok, gt + 1, starts)
    is5424 = ok & (buf[body] == ord("1")) & (buf[body + 1] == SP)
    spaces = np.flatnonzero(buf[: len(buf) - PAD] == SP)  # the padding may hold the next block's bytes
    ctx = _Ctx(buf, spaces, starts, ends, body, pri, ok, src_idx, sources, received, options)
    out = []
    if is5424.any():
        out.append(ctx.rfc5424(np.flatnonzero(is5424)))
    rest = np.flatnonzero(~is5424)
    if len(rest):
        out.append(ctx.rfc3164(rest))
    return out


@dataclass
class _Ctx:
    buf: np.ndarray
    spaces: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    body: np.ndarray
    pri: np.ndarray
    ok: np.ndarray
    src_idx: np.ndarray
    sources: list[str]
    received: Callable[[], np.ndarray]
    options: SyslogOptions

    def rfc5424(self, rows: np.ndarray) -> pa.RecordBatch:
        buf, end = self.buf, self.ends[rows]
        s = _nth_after(self.spaces, self.body[rows], 6)
        good = s[5] < end
        s = [np.minimum(x, end) for x in s]  # missing delimiters: clamp so every probe stays in the buffer
        p = np.where(good, s[5] + 1, end)  # STRUCTURED-DATA starts here
        first = buf[p]
        nil_sd = good & (first == DASH) & ((p + 1 >= end) | (buf[p + 1] == SP))
        # SD ends at the first "]" that is followed by a space (or the end) and is not escaped
        rb = np.flatnonzero(buf[: len(buf) - PAD] == RBR)
        closing = rb[(buf[rb + 1] == SP) & (buf[np.maximum(rb - 1, 0)] != BSL)]
        close = _next(closing, p)
        at_end = buf[np.maximum(end - 1, 0)] == RBR
        sd_end = np.where(close < end, close + 1, np.where(at_end, end, -1))
        has_sd = good & (first == LBR) & (sd_end > p)
        good &= nil_sd | has_sd
        msg_start = np.where(nil_sd, p + 2, np.where(has_sd, sd_end + 1, end))
        msg_start = np.minimum(msg_start, end)
        bom = (buf[msg_start] == BOM[0]) & (buf[msg_start + 1] == BOM[1]) & (buf[msg_start + 2] == BOM[2])
        msg_start = np.where(bom & (msg_start + 3 <= end), msg_start + 3, msg_start)
        fields = [(s[j] + 1, s[j + 1]) for j in range(5)]  # TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
        nil = [good & ~((b - a == 1) & (buf[a] == DASH)) for a, b in fields]
        ts_text = _ranges(buf, *fields[0], nil[0])
        try:
            ts = pc.cast(pc.cast(ts_text, pa.timestamp("ns", tz="UTC")), pa.timestamp("ms", tz="UTC"), safe=False)
        except pa.ArrowInvalid:
            ts = _timestamps_slow(ts_text)
        sd = _ranges(buf, p, np.where(has_sd, sd_end, p), has_sd)
        return self._batch(
            rows, good, ts,
            host=_ranges(buf, *fields[1], nil[1] & (fields[1][1] > fields[1][0])), app=_ranges(buf, *fields[2], nil[2]),
            procid=_ranges(buf, *fields[3], nil[3]), msgid=_ranges(buf, *fields[4], nil[4]),
            msg=_ranges(buf, np.where(good, msg_start, self.starts[rows]), end), sd=sd,
        )  # fmt: skip

    def rfc3164(self, rows: np.ndarray) -> pa.RecordBatch:
        buf, end, r = self.buf, self.ends[rows], self.body[rows]
        ok = self.ok[rows]
        # "Mmm dd hh:mm:ss " (15 characters and a space)
        c = [buf[r + j] for j in range(16)]
        digit = [(x >= 48) & (x <= 57) for x in c]
        bsd_ts = ok & (c[0] >= 65) & (c[0] <= 90) & (c[1] >= 97) & (c[1] <= 122) & (c[2] >= 97) & (c[2] <= 122)
        bsd_ts &= (c[3] == SP) & ((c[4] == SP) | digit[4]) & digit[5] & (c[6] == SP) & digit[7] & digit[8]
        bsd_ts &= (c[9] == COLON) & digit[10] & digit[11] & (c[12] == COLON) & digit[13] & digit[14]
        bsd_ts &= (c[15] == SP) & (r + 16 <= end)
        # or an RFC 3339 time ("YYYY-" up to the next space), as rsyslog's forward formats send
        sp1 = _next(self.spaces, r)
        iso_ts = ok & ~bsd_ts & digit[0] & digit[1] & digit[2] & digit[3] & (c[4] == DASH) & (sp1 < end)
        has_ts = bsd_ts | iso_ts
        h = np.where(bsd_ts, r + 16, np.where(iso_ts, sp1 + 1, r))
        t1 = np.minimum(_next(self.spaces, h), end)
        # hostname, unless the first token is already the tag ("tag:" / "tag[pid]:")
        tag_first = buf[np.maximum(t1 - 1, 0)] == COLON
        has_host = has_ts & ~tag_first & (t1 < end)
        a = np.where(has_host, t1 + 1, h)
        b = np.minimum(_next(self.spaces, a), end)
        has_tag = has_ts & (buf[np.maximum(b - 1, 0)] == COLON) & (b > a + 1)
        lb = _next(np.flatnonzero(buf[: len(buf) - PAD] == LBR), a)
        with_pid = has_tag & (lb < b) & (buf[np.maximum(b - 2, 0)] == RBR)
        app_end = np.where(with_pid, lb, b - 1)
        msg_start = np.where(has_tag, np.minimum(b + 1, end), np.where(has_ts, h, r))
        msg_start = np.where(ok, msg_start, self.starts[rows])  # unparsable: the raw line
        ts = self._bsd_times(rows, r, bsd_ts)
        if iso_ts.any():
            iso_text = _ranges(buf, r, sp1, iso_ts)
            try:
                iso = pc.cast(pc.cast(iso_text, pa.timestamp("ns", tz="UTC")), ts.type, safe=False)
            except pa.ArrowInvalid:
                iso = _timestamps_slow(iso_text)
            ts = pc.coalesce(ts, iso)
        return self._batch(
            rows, ok, ts,
            host=_ranges(buf, h, t1, has_host & (t1 > h)), app=_ranges(buf, a, app_end, has_tag),
            procid=_ranges(buf, lb + 1, b - 2, with_pid), msgid=pa.nulls(len(rows), pa.string()),
            msg=_ranges(buf, msg_start, end), sd=pa.nulls(len(rows), pa.string()),
        )  # fmt: skip

    def _bsd_times(self, rows: np.ndarray, r: np.ndarray, valid: np.ndarray) -> pa.Array:
        """RFC 3164 "Mmm dd hh:mm:ss" by integer arithmetic (no year: the receive year, or the year
        before when that would put the message more than a day in the future)."""
        buf = self.buf
        c = [buf[r + j].astype(np.int64) for j in range(15)]
        key = (c[0] << 16) | (c[1] << 8) | c[2]
        k = np.minimum(np.searchsorted(_MONTH_KEYS, key), 11)
        month = _MONTH_NUM[k]
        day = np.where(c[4] == SP, 0, c[4] - 48) * 10 + c[5] - 48
        secs = ((c[7] - 48) * 10 + c[8] - 48) * 3600 + ((c[10] - 48) * 10 + c[11] - 48) * 60
        secs += (c[13] - 48) * 10 + c[14] - 48
        ok = valid & (_MONTH_KEYS[k] == key) & (day >= 1) & (day <= 31) & (secs < 86400 + 1)
        recv = self.received()[rows]
        year = recv.astype("datetime64[ms]").astype("datetime64[Y]").astype(np.int64)  # years since 1970

        def at(y: np.ndarray) -> np.ndarray:
            months = (y * 12 + month - 1).astype("datetime64[M]")
            days = months.astype("datetime64[D]").astype(np.int64) + day - 1
            return (days * 86400 + secs) * 1000 - self.options.rfc3164_utc_offset_minutes * 60_000

        ms = at(year)
        ms = np.where(ms > recv + 86_400_000, at(year - 1), ms)
        return pa.array(np.where(ok, ms, 0), pa.int64(), mask=~ok).cast(pa.timestamp("ms", tz="UTC"))

    def _batch(self, rows: np.ndarray, good: np.ndarray, ts: pa.Array, **f: pa.Array) -> pa.RecordBatch:
        n = len(rows)
        pri = np.where(self.ok[rows], self.pri[rows], 13)  # no PRI: user.notice (RFC 3164 §4.3.3)
        src_names = pa.array(self.sources, pa.string())
        source_ip = src_names.take(pa.array(self.src_idx[rows]))
        message = f["msg"]
        # an empty or absent HOSTNAME (null here) falls back to the sender's address
        host = f["host"] if f["host"].null_count == 0 else pc.coalesce(f["host"], source_ip)
        sd = f["sd"]
        trace = pa.nulls(n, pa.string())
        if sd.null_count < n and _mentions_trace(sd):  # the regex runs only when some SD may hold one
            trace = pc.struct_field(pc.extract_regex(pc.fill_null(sd, ""), r'(?i)trace_?id="(?P<t>[^"]*)"'), "t")
        cols = {
            "timestamp": ts if ts.null_count == 0 else pc.coalesce(ts, self._received_ts(rows)),
            "device": host,
            "source_ip": source_ip,
            "facility": pa.array((pri >> 3).astype(np.uint8)),
            "severity": pa.array((pri & 7).astype(np.uint8)),
            "app_name": pc.fill_null(f["app"], ""),
            "proc_id": f["procid"],
            "msg_id": f["msgid"],
            "message": message,
            "structured_data": sd,
            "trace_id": trace,
            "parse_error": pa.array(~good),
        }
        return pa.RecordBatch.from_arrays([cols[fl.name].cast(fl.type) for fl in SCHEMA], schema=SCHEMA)


    def _received_ts(self, rows: np.ndarray) -> pa.Array:
        return pa.array(self.received()[rows], pa.int64()).cast(pa.timestamp("ms", tz="UTC"))


def _mentions_trace(values: pa.StringArray) -> bool:
    """Whether any value may contain "trace" in any letter case (a cheap superset test).

    OR-ing 0x20 into every byte lower-cases ASCII letters (and changes no byte into a letter of
    "trace" that was not one), then ``bytes.find`` scans the values' data buffer at memchr speed.
    """
    offsets = np.frombuffer(values.buffers()[1], np.int32, len(values) + 1, values.offset * 4)
    data = np.frombuffer(values.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    return (data | 0x20).tobytes().find(b"trace") >= 0


def _timestamps_slow(text: pa.Array) -> pa.Array:
    """Per-value fallback when a chunk holds a timestamp Arrow's ISO 8601 parser refuses."""
    out = []
    for v in text.to_pylist():
        try:
            t = dt.datetime.fromisoformat(v.replace("Z", "+00:00")) if v else None
            out.append(int(t.timestamp() * 1000) if t and t.tzinfo else None)
        except (ValueError, OverflowError):
            out.append(None)
    return pa.array(out, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))


class SyslogFramer(BufferedFramer):
    """RFC 6587 framing, detected per frame: octet counting ("LEN SP MSG") or LF-terminated lines."""

    default_max_frame = 64 * 1024

    def _split(self, data: bytes, out: list[bytes]) -> None:
        self.buf += data
        while self.buf:
            if 48 <= self.buf[0] <= 57:  # octet counting
                sp = self.buf.find(b" ", 0, 12)
                if sp < 0:
                    if len(self.buf) >= 12:
                        raise FramingError("octet count without a space")
                    break
                digits = bytes(self.buf[:sp])
                if not digits.isdigit():
                    raise FramingError("bad octet count")
                n = int(digits)
                if n > self.max_frame:
                    raise FramingError(f"frame too long ({n} bytes)")
                if len(self.buf) < sp + 1 + n:
                    break
                out.append(bytes(self.buf[sp + 1 : sp + 1 + n]))
                del self.buf[: sp + 1 + n]
            else:
                nl = self.buf.find(b"\n")
                if nl < 0:
                    if len(self.buf) > self.max_frame:
                        raise FramingError(f"line too long (over {self.max_frame} bytes)")
                    break
                if nl:
                    out.append(bytes(self.buf[:nl]))
                del self.buf[: nl + 1]



OPTIONS = SyslogOptions


def build(options: SyslogOptions) -> tuple[SyslogDecoder, object]:
    """The decoder and stream framer for the CLI."""
    return SyslogDecoder(options), lambda: SyslogFramer(options.max_message)
