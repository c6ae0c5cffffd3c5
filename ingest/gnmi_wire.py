"""SubscribeResponse bytes → ``metrics`` Arrow rows, vectorised over the protobuf wire format.

Why not the generated classes: reading every Update through the protobuf Python API costs a Python
call per field (about 0.24 M updates/s on this kind of machine, see benchmarks/bench_bmp_gnmi.py). Here
a chunk of responses is joined into one buffer and each nesting level (response → notification →
update → typed value) is walked with NumPy: step ``k`` reads the k-th field of every message at that
level at once, so the Python work is per field *position*, not per update. A message whose fields run
on much longer than its siblings' is finished by a small scalar walker (so one huge notification does
not cost one NumPy round per field).

Paths are not decoded per update: every (device, prefix, path) byte slice is hashed with a polynomial
rolling hash (prefix sums over the buffer, wrapping uint64 arithmetic), distinct keys are decoded once
with the generated ``gnmi_pb2.Path`` and remembered in a bounded :class:`PathCache`, and the metric,
labels and device columns are built with ``take``. Keys are 64-bit hashes plus the lengths: two
different paths of one target colliding is about n²/2⁶⁵ (n distinct paths), negligible for telemetry.

Numbers (int, uint, bool, float, double) and strings are decoded vectorised; the rarer kinds (JSON and
JSON_IETF bodies, which become one row per leaf, decimal, leaf-lists, bytes, Any) go through the
generated classes one update at a time. :func:`reference_decode` does everything with the generated
classes; it is the benchmark's baseline and the oracle of the differential tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import DecodeError
from numpy.lib.stride_tricks import sliding_window_view

from ingest.gnmi_proto import gnmi_pb2
from streams.catalog import CATALOG

SCHEMA = CATALOG["metrics"].arrow_schema()
_PAD = 264  # zero bytes after the joined buffer so fixed-width windows (varints, 256-byte hash rows) fit
_HASH_P = 0x100000001B3  # FNV prime: odd, so invertible modulo 2**64
_HASH_P_INV = pow(_HASH_P, -1, 2**64)
_SCALAR_TAIL = 4  # when this few messages of a level are still being walked, finish them in Python
_FAST_TYPES = (1, 2, 3, 4, 6, 12, 14)
# odd per-word multipliers of the short-slice hash (up to 256 bytes = 32 words)
_MIX = (np.arange(1, 33, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)


# ---- shared flattening (used by both decoders) --------------------------------------------------------
def path_info(prefix: gnmi_pb2.Path | None, path: gnmi_pb2.Path) -> tuple[str, dict[str, str], str]:
    """(metric, labels from the keys, target) of ``prefix`` + ``path``."""
    names: list[str] = []
    labels: dict[str, str] = {}
    target = ""
    for p in (prefix, path):
        if p is None:
            continue
        target = p.target or target
        names += list(p.element)  # the deprecated string form (gNMI < 0.4)
        for e in p.elem:
            names.append(e.name)
            for k in sorted(e.key):
                labels[k if k not in labels else f"{e.name}_{k}"] = e.key[k]
    return "/".join(names), labels, target


def typed_leaves(tv: gnmi_pb2.TypedValue) -> list[tuple[str, dict[str, str], float, str | None]]:
    """(metric suffix, extra labels, value, value_str) rows of one TypedValue (JSON → one per leaf)."""
    kind = tv.WhichOneof("value")
    if kind in ("json_val", "json_ietf_val"):
        raw = getattr(tv, kind)
        out: list = []
        try:
            _flatten_json(json.loads(raw), "", {}, out)
        except (ValueError, UnicodeDecodeError, RecursionError):  # not JSON, or nested beyond reason: keep the text
            return [("", {}, math.nan, raw.decode("utf-8", "replace"))]
        return out
    value, text = scalar(tv)
    return [("", {}, value, text)]


def scalar(tv: gnmi_pb2.TypedValue) -> tuple[float, str | None]:
    """(value, value_str) of a non-JSON TypedValue."""
    kind = tv.WhichOneof("value")
    if kind in ("int_val", "uint_val", "float_val", "double_val"):
        return float(getattr(tv, kind)), None
    if kind == "bool_val":
        return (1.0 if tv.bool_val else 0.0), ("true" if tv.bool_val else "false")
    if kind in ("string_val", "ascii_val"):
        return math.nan, getattr(tv, kind)
    if kind in ("bytes_val", "proto_bytes"):
        return math.nan, getattr(tv, kind).hex()
    if kind == "decimal_val":
        d = tv.decimal_val
        return d.digits / 10**d.precision, _decimal_text(d.digits, d.precision)
    if kind == "leaflist_val":
        return math.nan, json.dumps([_element(e) for e in tv.leaflist_val.element])
    if kind == "any_val":
        return math.nan, tv.any_val.type_url
    return math.nan, None  # an empty TypedValue


def _decimal_text(digits: int, precision: int) -> str:
    if precision <= 0:
        return str(digits)
    sign, s = ("-" if digits < 0 else ""), str(abs(digits)).rjust(precision + 1, "0")
    return f"{sign}{s[:-precision]}.{s[-precision:]}"


def _element(tv: gnmi_pb2.TypedValue) -> object:
    kind = tv.WhichOneof("value")
    if kind in ("json_val", "json_ietf_val", "bytes_val", "proto_bytes", "decimal_val", "leaflist_val", "any_val"):
        return scalar(tv)[1] if kind != "json_val" and kind != "json_ietf_val" else getattr(tv, kind).decode(
            "utf-8", "replace")  # fmt: skip
    return getattr(tv, kind) if kind else None


def _flatten_json(doc: object, suffix: str, labels: dict[str, str], out: list) -> None:
    if isinstance(doc, dict):
        for k, v in doc.items():
            name = k.rpartition(":")[2]  # JSON_IETF module prefixes ("openconfig-interfaces:name")
            _flatten_json(v, f"{suffix}/{name}", labels, out)
    elif isinstance(doc, list) and any(isinstance(x, dict | list) for x in doc):
        key = (suffix.rpartition("/")[2] or "list") + "_index"
        for i, v in enumerate(doc):
            _flatten_json(v, suffix, {**labels, key: str(i)}, out)
    elif isinstance(doc, bool):
        out.append((suffix, labels, 1.0 if doc else 0.0, "true" if doc else "false"))
    elif isinstance(doc, int | float):
        out.append((suffix, labels, float(doc), None))
    elif isinstance(doc, list):  # a leaf-list of scalars
        out.append((suffix, labels, math.nan, json.dumps(doc)))
    elif doc is None:
        out.append((suffix, labels, math.nan, None))
    else:
        text = str(doc)
        try:  # JSON_IETF encodes 64-bit integers and decimals as strings (RFC 7951 §6.1)
            out.append((suffix, labels, float(text), text))
        except ValueError:
            out.append((suffix, labels, math.nan, text))


class _Columns:
    """Row-wise lists for the slow paths; one Arrow batch at the end."""

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.device: list[str] = []
        self.metric: list[str] = []
        self.value: list[float] = []
        self.value_str: list[str | None] = []
        self.labels: list[list[tuple[str, str]]] = []
        self.deleted: list[bool] = []

    def add(self, ts: int, device: str, metric: str, value: float, text: str | None, labels: dict, deleted: bool):
        self.ts.append(ts)
        self.device.append(device)
        self.metric.append(metric)
        self.value.append(value)
        self.value_str.append(text)
        self.labels.append(list(labels.items()))
        self.deleted.append(deleted)

    def table(self) -> pa.Table:
        return pa.table(
            [pa.array(self.ts, pa.int64()).cast(SCHEMA.field("timestamp").type), pa.array(self.device, pa.string()),
             pa.array(self.metric, pa.string()), pa.array(self.value, pa.float64()),
             pa.array(self.value_str, pa.string()), pa.array(self.labels, SCHEMA.field("labels").type),
             pa.array(self.deleted, pa.bool_())],
            schema=SCHEMA,
        )  # fmt: skip


def _ts_ms(ns: int, now_ms: int) -> int:
    return ns // 1_000_000 if ns > 0 else now_ms


def reference_decode(
    responses: Sequence[bytes], devices: Sequence[str], labels: dict[str, dict[str, str]] | None = None, now_ms: int = 0
) -> tuple[pa.Table, list[int]]:
    """The straightforward decoder: generated classes, field by field. Returns (rows, bad response indices)."""
    cols, bad = _Columns(), []
    labels = labels or {}
    for i, raw in enumerate(responses):
        try:
            resp = gnmi_pb2.SubscribeResponse.FromString(raw)
        except DecodeError:
            bad.append(i)
            continue
        if resp.WhichOneof("response") != "update":
            continue
        n = resp.update
        ts = _ts_ms(n.timestamp, now_ms)
        prefix = n.prefix if n.HasField("prefix") else None
        base = labels.get(devices[i], {})
        for u in n.update:
            metric, keys, target = path_info(prefix, u.path)
            for suffix, extra, value, text in typed_leaves(u.val):
                cols.add(ts, target or devices[i], _join(metric, suffix), value, text, {**base, **keys, **extra}, False)
        for d in n.delete:
            metric, keys, target = path_info(prefix, d)
            cols.add(ts, target or devices[i], metric, math.nan, None, {**base, **keys}, True)
    return cols.table(), bad


def _join(metric: str, suffix: str) -> str:
    if not suffix:
        return metric
    return f"{metric}{suffix}" if metric else suffix.lstrip("/")


# ---- the vectorised decoder ------------------------------------------------------------------------
class PathCache:
    """Distinct (device, prefix, path) keys → metric, labels, device; bounded (cleared when full)."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self.index: dict[int, int] = {}
        self.metric: list[str] = []
        self.device: list[str] = []
        self.labels: list[list[tuple[str, str]]] = []
        self.base: list[tuple[str, dict[str, str], str]] = []  # for the slow (JSON) path
        self._arrays: tuple[pa.Array, pa.Array, pa.Array] | None = None
        self.broken: set[int] = set()  # slots of keys whose path bytes do not parse

    def arrays(self) -> tuple[pa.Array, pa.Array, pa.Array]:
        """(metric, device, labels) of every slot as Arrow arrays, rebuilt only after the cache grew."""
        if self._arrays is None or len(self._arrays[0]) != len(self.metric):
            self._arrays = (pa.array(self.metric, pa.string()), pa.array(self.device, pa.string()),
                            pa.array(self.labels, SCHEMA.field("labels").type))  # fmt: skip
        return self._arrays

    def lookup(self, keys: np.ndarray, make: callable) -> np.ndarray:  # type: ignore[valid-type]
        """Cache slots for ``keys`` (distinct), creating missing ones with ``make(position)``."""
        if len(self.index) + len(keys) > self.max_entries:
            self.__init__(self.max_entries)  # type: ignore[misc]
        slots = np.empty(len(keys), np.int64)
        for i, k in enumerate(keys.tolist()):
            s = self.index.get(k)
            if s is None:
                s = self.index[k] = len(self.metric)
                made = make(i)
                if made is None:
                    self.broken.add(s)
                    made = ("", [], "", ("", {}, ""))
                metric, labels, device, base = made
                self.metric.append(metric)
                self.labels.append(labels)
                self.device.append(device)
                self.base.append(base)
            slots[i] = s
        return slots


class _Buf:
    """The joined responses as a NumPy byte array with hashing prefix sums, built lazily."""

    _pw = np.ones(1, np.uint64)
    _ipw = np.ones(1, np.uint64)

    def __init__(self, data: bytes) -> None:
        self.raw = data
        self.b = np.frombuffer(data + b"\0" * _PAD, np.uint8)
        self.n = len(data)
        self._h: np.ndarray | None = None

    def hash(self, s: np.ndarray, e: np.ndarray) -> np.ndarray:
        """A 64-bit hash of each slice [s, e), independent of where the slice sits.

        Short slices (paths are) are copied into a zero-padded (n, W) block read as 64-bit words, summed
        with odd per-word multipliers and mixed; long ones use prefix sums of a polynomial hash over the
        whole buffer. Either way the hash depends only on the slice's bytes and length.
        """
        lens = e - s
        width = int(lens.max()) if len(lens) else 0
        if width <= 256:
            return self._hash_short(s, lens, (width + 7) // 8 * 8)
        if self._h is None:
            self._powers(self.n + 1)
            h = np.zeros(self.n + 1, np.uint64)
            np.cumsum(self.b[: self.n].astype(np.uint64) * _Buf._pw[: self.n], out=h[1:])
            self._h = h
        with np.errstate(over="ignore"):
            return (self._h[e] - self._h[s]) * _Buf._ipw[s] + (e - s).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)

    def _hash_short(self, s: np.ndarray, lens: np.ndarray, width: int) -> np.ndarray:
        with np.errstate(over="ignore"):
            out = lens.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            if width == 0:
                return out
            # rows of a sliding-window view: a 'width'-byte copy per slice, no (n, width) index array
            block = sliding_window_view(self.b, width)[s]
            block *= (np.arange(width) < lens[:, None]).astype(np.uint8)  # zero the bytes past each slice
            words = block.view("<u8")
            out += (words * _MIX[: words.shape[1]]).sum(axis=1, dtype=np.uint64)
            out ^= out >> np.uint64(31)
            out *= np.uint64(0x94D049BB133111EB)
            return out

    @classmethod
    def _powers(cls, n: int) -> None:
        if len(cls._pw) >= n:
            return
        size = max(n, 2 * len(cls._pw))
        with np.errstate(over="ignore"):
            pw = np.full(size, _HASH_P, np.uint64)
            pw[0] = 1
            ipw = np.full(size, _HASH_P_INV, np.uint64)
            ipw[0] = 1
            cls._pw, cls._ipw = np.cumprod(pw, dtype=np.uint64), np.cumprod(ipw, dtype=np.uint64)


def _varint(b: np.ndarray, pos: np.ndarray, limit: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, byte length, ok) of the varint at each position; ok is False past ``limit`` or > 10 bytes.

    Byte k is read only for the varints still continuing after k bytes, so the usual 1-3 byte varints
    cost a few passes over shrinking subsets rather than a 10-byte window each.
    """
    byte = b[pos]
    value = (byte & 0x7F).astype(np.uint64)
    length = np.ones(len(pos), np.int64)
    more = np.nonzero(byte & 0x80)[0]
    k = 1
    while len(more) and k < 10:
        nxt = b[np.minimum(pos[more] + k, len(b) - 1)]
        value[more] |= (nxt & 0x7F).astype(np.uint64) << np.uint64(7 * k)
        length[more] += 1
        more = more[(nxt & 0x80) != 0]
        k += 1
    ok = pos + length <= limit
    if len(more):
        ok[more] = False
    return value, length, ok


class _Fields:
    """Every field of a set of messages at one nesting level (parallel arrays)."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, msg, field, wt, vs, ve, val) -> None:
        self.parts.append((msg, field, wt, vs, ve, val))

    def arrays(self) -> tuple[np.ndarray, ...]:
        if not self.parts:
            z = np.zeros(0, np.int64)
            return z, z, z, z, z, np.zeros(0, np.uint64)
        return tuple(np.concatenate([p[i] for p in self.parts]) for i in range(6))


def _walk(buf: _Buf, starts: np.ndarray, ends: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """All fields of the messages [starts, ends): (msg, field, wire type, value start, end, varint), bad mask."""
    b = buf.b
    out = _Fields()
    bad = np.zeros(len(starts), bool)
    pos = starts.astype(np.int64).copy()
    active = np.nonzero(pos < ends)[0]
    while len(active) > _SCALAR_TAIL:
        p, lim = pos[active], ends[active]
        tag, tlen, ok = _varint(b, p, lim)
        wt = (tag & np.uint64(7)).astype(np.int64)
        field = (tag >> np.uint64(3)).astype(np.int64)
        vs = p + tlen
        val, vlen, vok = _varint(b, vs, lim)
        ve = np.select([wt == 0, wt == 1, wt == 5], [vs + vlen, vs + 8, vs + 4], vs + vlen + val.astype(np.int64))
        is_len = wt == 2
        vs = np.where(is_len, vs + vlen, vs)
        # a LEN value longer than the buffer would wrap the int64 above: check the raw length too
        ok &= (wt <= 2) | (wt == 5)
        ok &= ((wt != 0) & (wt != 2)) | vok
        ok &= (val < np.uint64(1 << 40)) | ~is_len
        ok &= (ve <= lim) & (field > 0)
        if ok.all():  # the usual case: no masked copies
            good = active
        else:
            bad[active[~ok]] = True
            good, field, wt, vs, ve, val = active[ok], field[ok], wt[ok], vs[ok], ve[ok], val[ok]
        out.add(good, field, wt, vs, ve, val)
        pos[good] = ve
        active = good[ve < ends[good]]
    for m in active.tolist():
        if not _walk_scalar(buf.raw, m, int(pos[m]), int(ends[m]), out):
            bad[m] = True
    return out.arrays(), bad


def _walk_scalar(raw: bytes, m: int, pos: int, end: int, out: _Fields) -> bool:
    """The same walk for one message in plain Python (for the few long messages left)."""
    rows: list[tuple[int, int, int, int, int]] = []
    while pos < end:
        tag, pos = _py_varint(raw, pos, end)
        if tag is None:
            return False
        field, wt = tag >> 3, tag & 7
        val = 0
        if wt == 0:
            val, ve = _py_varint(raw, pos, end)
            if val is None:
                return False
            vs = pos
        elif wt == 2:
            n, vs = _py_varint(raw, pos, end)
            if n is None:
                return False
            ve = vs + n
        elif wt in (1, 5):
            vs, ve = pos, pos + (8 if wt == 1 else 4)
        else:
            return False
        if ve > end or field == 0:
            return False
        rows.append((field, wt, vs, ve, val))
        pos = ve
    if rows:
        f, w, s, e, v = zip(*rows, strict=True)
        out.add(np.full(len(rows), m, np.int64), np.array(f, np.int64), np.array(w, np.int64), np.array(s, np.int64),
                np.array(e, np.int64), np.array(v, np.uint64))  # fmt: skip
    return True


def _py_varint(raw: bytes, pos: int, end: int) -> tuple[int | None, int]:
    val = shift = 0
    for i in range(10):
        if pos + i >= end:
            return None, pos
        byte = raw[pos + i]
        val |= (byte & 0x7F) << shift
        if byte < 0x80:
            return val & 0xFFFFFFFFFFFFFFFF, pos + i + 1
        shift += 7
    return None, pos


def _last(n: int, msg: np.ndarray, select: np.ndarray) -> np.ndarray:
    """Index (into the field arrays) of the last selected field of each message, -1 when none."""
    idx = np.nonzero(select)[0]
    last = np.full(n, -1, np.int64)
    last[msg[idx]] = idx  # later fields overwrite earlier ones: protobuf's "last one wins"
    return last


def _pick(values: np.ndarray, idx: np.ndarray, default: int) -> np.ndarray:
    """values[idx] where idx >= 0, else ``default`` (idx -1 means the field was absent)."""
    out = np.full(len(idx), default, values.dtype)
    present = idx >= 0
    out[present] = values[idx[present]]
    return out


def _strings(buf: _Buf, s: np.ndarray, e: np.ndarray) -> pa.StringArray:
    lens = (e - s).astype(np.int64)
    offsets = np.zeros(len(s) + 1, np.int32)
    np.cumsum(lens, out=offsets[1:])
    idx = np.repeat(s - offsets[:-1], lens) + np.arange(offsets[-1], dtype=np.int64)
    return pa.StringArray.from_buffers(len(s), pa.py_buffer(offsets), pa.py_buffer(buf.b[idx].tobytes()))


def decode_responses(responses: Sequence[bytes], devices: Sequence[str], cache: PathCache | None = None,
                     labels: dict[str, dict[str, str]] | None = None,
                     now_ms: int | np.ndarray = 0) -> tuple[pa.RecordBatch, list[int]]:  # fmt: skip
    """Decode raw SubscribeResponses; returns (rows, indices of responses dropped as malformed).

    ``now_ms`` (one value, or one per response: the receive time) stamps notifications without a timestamp.
    """
    cache = cache if cache is not None else PathCache()
    labels = labels or {}
    nresp = len(responses)
    if not nresp:
        return pa.RecordBatch.from_pylist([], schema=SCHEMA), []
    lens = np.fromiter(map(len, responses), np.int64, nresp)
    rstart = np.zeros(nresp, np.int64)
    np.cumsum(lens[:-1], out=rstart[1:])
    buf = _Buf(b"".join(responses))
    dev_names, dev_idx = np.unique(np.asarray(devices, dtype=object).astype(str), return_inverse=True)
    bad = np.zeros(nresp, bool)

    # level 0: SubscribeResponse → notifications (field 1)
    (r_msg, r_f, r_wt, r_vs, r_ve, _), r_bad = _walk(buf, rstart, rstart + lens)
    bad |= r_bad
    sel = (r_f == 1) & (r_wt == 2)
    n_last = _last(nresp, r_msg, sel)  # a oneof: the last notification wins
    n_resp = np.nonzero(n_last >= 0)[0]
    ns, ne = r_vs[n_last[n_resp]], r_ve[n_last[n_resp]]

    # level 1: Notification → timestamp (1), prefix (2), update (4), delete (5)
    (m, f, wt, vs, ve, val), nb = _walk(buf, ns, ne)
    bad[n_resp[nb]] = True
    nn = len(ns)
    t_last = _last(nn, m, (f == 1) & (wt == 0))
    ts_ns = _pick(val.view(np.int64), t_last, 0)
    received = np.broadcast_to(np.asarray(now_ms, np.int64), (nresp,))
    ts_ms = np.where(ts_ns > 0, ts_ns // 1_000_000, received[n_resp])
    p_last = _last(nn, m, (f == 2) & (wt == 2))
    p_s, p_e = _pick(vs, p_last, 0), _pick(ve, p_last, 0)
    up = np.nonzero((f == 4) & (wt == 2))[0]
    de = np.nonzero((f == 5) & (wt == 2))[0]
    u_notif, us, ue = m[up], vs[up], ve[up]
    d_notif, ds, dend = m[de], vs[de], ve[de]

    # level 2: Update → path (1), val (3); level 3: TypedValue → the oneof field
    nu = len(us)
    path_s, path_e, val_s, val_e, has_val, ub = _update_fields(buf, us, ue)
    bad[n_resp[u_notif[ub]]] = True
    kind, kwt, kvs, kve, kval, tb = _typed_values(buf, val_s, val_e, has_val)
    bad[n_resp[u_notif[tb]]] = True
    expected_wt = np.array([-9, 2, 0, 0, 0, 2, 5, 2, 2, 2, 2, 2, 2, 2, 1, -9], np.int64)
    kind_c = np.clip(kind, 0, 15)
    fast = np.isin(kind, _FAST_TYPES) & (kwt == expected_wt[kind_c])
    empty = ~has_val | (kind == 0)

    # keys of (device, prefix, path) for updates and deletes
    row_resp_u = n_resp[u_notif]
    row_resp_d = n_resp[d_notif]
    hp = buf.hash(p_s, p_e)  # once per notification
    key_u = _keys(buf, dev_idx[row_resp_u], hp[u_notif], path_s, path_e)
    key_d = _keys(buf, dev_idx[row_resp_d], hp[d_notif], ds, dend)
    all_keys = np.concatenate([key_u, key_d])
    all_resp = np.concatenate([row_resp_u, row_resp_d])
    all_ps = np.concatenate([p_s[u_notif], p_s[d_notif]])
    all_pe = np.concatenate([p_e[u_notif], p_e[d_notif]])
    all_s = np.concatenate([path_s, ds])
    all_e = np.concatenate([path_e, dend])
    uniq, first, inverse = np.unique(all_keys, return_index=True, return_inverse=True)
    raw = buf.raw

    def make(i: int) -> tuple:
        j = first[i]
        try:
            prefix = gnmi_pb2.Path.FromString(raw[all_ps[j] : all_pe[j]]) if all_pe[j] > all_ps[j] else None
            path = gnmi_pb2.Path.FromString(raw[all_s[j] : all_e[j]])
        except DecodeError:
            return None  # the cache keeps a placeholder marked broken: its responses are dropped
        metric, keys, target = path_info(prefix, path)
        device = target or str(dev_names[dev_idx[all_resp[j]]])
        merged = {**labels.get(str(dev_names[dev_idx[all_resp[j]]]), {}), **keys}
        return metric, list(merged.items()), device, (metric, merged, device)

    uniq_slots = cache.lookup(uniq, make)
    slots = uniq_slots[inverse.ravel()]
    if cache.broken:
        bad[all_resp[np.isin(slots, np.fromiter(cache.broken, np.int64))]] = True
    slot_u, slot_d = slots[:nu], slots[nu:]

    # fast rows: numbers and strings, vectorised
    fi = np.nonzero(fast | empty)[0]
    value, text = _fast_values(buf, kind[fi], kvs[fi], kve[fi], kval[fi])
    fast_tab = _table(cache, slot_u[fi], ts_ms[u_notif[fi]], value, text, np.zeros(len(fi), bool))
    keep = [~bad[row_resp_u[fi]]]
    tables = [fast_tab]
    # deletes
    del_tab = _table(cache, slot_d, ts_ms[d_notif], np.full(len(de), np.nan), pa.nulls(len(de), pa.string()),
                     np.ones(len(de), bool))  # fmt: skip
    tables.append(del_tab)
    keep.append(~bad[row_resp_d])
    # slow rows: JSON, decimal, leaf-lists, bytes, Any, wrong wire types
    slow = np.nonzero(~(fast | empty))[0]
    if len(slow):
        tab, resp_of_row = _slow_rows(buf, cache, slow, slot_u, val_s, val_e, ts_ms, u_notif, row_resp_u, bad)
        tables.append(tab)
        keep.append(~bad[resp_of_row])
    table = pa.concat_tables(tables)
    mask = np.concatenate(keep)
    if not mask.all():
        table = table.filter(pa.array(mask))
    bad_idx = np.nonzero(bad)[0].tolist()
    return table.combine_chunks().to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist(
        [], schema=SCHEMA), bad_idx  # fmt: skip


def _update_fields(buf: _Buf, us: np.ndarray, ue: np.ndarray) -> tuple[np.ndarray, ...]:
    """(path start, path end, val start, val end, has val, bad) of each Update [us, ue).

    Nearly every Update is exactly ``0A len <path> 1A len <val>``: that layout is checked and read in a
    few vectorised steps; anything else goes through the generic walk (last occurrence wins).
    """
    b, n = buf.b, len(us)
    path_len, l1, ok1 = _varint(b, us + 1, ue)
    ok1 &= (b[us] == 0x0A) & (path_len < np.uint64(1 << 40))
    path_s = us + 1 + l1
    raw_end = np.where(ok1, path_s + path_len.astype(np.int64), us)
    ok1 &= raw_end < ue
    path_e = np.where(ok1, raw_end, us)  # only in-buffer positions are read below
    val_len, l2, ok2 = _varint(b, path_e + 1, ue)
    val_s = path_e + 1 + l2
    val_e = np.where(val_len < np.uint64(1 << 40), val_s + val_len.astype(np.int64), -1)
    match = ok1 & ok2 & (b[path_e] == 0x1A) & (val_e == ue)
    has_val = match.copy()
    bad = np.zeros(n, bool)
    rest = np.nonzero(~match)[0]
    if len(rest):
        (um, uf, uwt, uvs, uve, _), rb = _walk(buf, us[rest], ue[rest])
        bad[rest[rb]] = True
        p_last = _last(len(rest), um, (uf == 1) & (uwt == 2))
        v_last = _last(len(rest), um, (uf == 3) & (uwt == 2))
        path_s[rest], path_e[rest] = _pick(uvs, p_last, 0), _pick(uve, p_last, 0)
        val_s[rest], val_e[rest] = _pick(uvs, v_last, 0), _pick(uve, v_last, 0)
        has_val[rest] = v_last >= 0
    return path_s, path_e, val_s, val_e, has_val, bad


def _typed_values(buf: _Buf, vs: np.ndarray, ve: np.ndarray, has_val: np.ndarray) -> tuple[np.ndarray, ...]:
    """(kind = oneof field number, wire type, value start, end, varint value, bad) of each TypedValue.

    The usual TypedValue is one field with a one-byte tag: read directly; others use the generic walk.
    """
    b, n = buf.b, len(vs)
    tag = b[vs].astype(np.int64)
    wt, field = tag & 7, tag >> 3
    val, vlen, vok = _varint(b, vs + 1, ve)
    is_len = wt == 2
    start = np.where(is_len, vs + 1 + vlen, vs + 1)
    end = np.select([wt == 0, wt == 1, wt == 5], [vs + 1 + vlen, vs + 9, vs + 5],
                    np.where(val < np.uint64(1 << 40), start + val.astype(np.int64), -1))  # fmt: skip
    ok = has_val & (tag < 0x80) & (field > 0) & (end == ve)
    ok &= (wt == 1) | (wt == 5) | (((wt == 0) | is_len) & vok)
    kind = np.where(ok, field, 0)
    kwt = np.where(ok, wt, -1)
    kvs, kve, kval = np.where(ok, start, 0), np.where(ok, end, 0), np.where(ok, val, np.uint64(0))
    bad = np.zeros(n, bool)
    rest = np.nonzero(has_val & ~ok)[0]
    if len(rest):
        (tm, tf, twt, tvs, tve, tval), tb = _walk(buf, vs[rest], ve[rest])
        bad[rest[tb]] = True
        t_last = _last(len(rest), tm, np.ones(len(tm), bool))
        kind[rest] = _pick(tf, t_last, 0)
        kwt[rest] = _pick(twt, t_last, -1)
        kvs[rest], kve[rest], kval[rest] = _pick(tvs, t_last, 0), _pick(tve, t_last, 0), _pick(tval, t_last, 0)
    return kind, kwt, kvs, kve, kval, bad


def _keys(buf: _Buf, dev: np.ndarray, hp: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = buf.hash(s, e)
        return (hp * np.uint64(0xC2B2AE3D27D4EB4F)) ^ h ^ (dev.astype(np.uint64) * np.uint64(0x165667B19E3779F9))


def _fast_values(buf: _Buf, kind: np.ndarray, s: np.ndarray, e: np.ndarray, val: np.ndarray):
    n = len(kind)
    value = np.full(n, np.nan)
    ints = kind == 2
    value[ints] = val[ints].view(np.int64).astype(np.float64)
    uints = kind == 3
    value[uints] = val[uints].astype(np.float64)
    bools = kind == 4
    value[bools] = (val[bools] != 0).astype(np.float64)
    b = buf.b
    dbl = np.nonzero(kind == 14)[0]
    if len(dbl):
        value[dbl] = b[s[dbl, None] + np.arange(8)].copy().view("<f8").ravel()
    flt = np.nonzero(kind == 6)[0]
    if len(flt):
        value[flt] = b[s[flt, None] + np.arange(4)].copy().view("<f4").ravel().astype(np.float64)
    is_str = (kind == 1) | (kind == 12)
    str_s = np.where(is_str, s, 0)
    str_e = np.where(is_str, e, 0)
    text = _strings(buf, str_s, str_e)
    if is_str.any():
        try:
            text.validate(full=True)
        except pa.ArrowInvalid:
            text = pa.array([x.decode("utf-8", "replace") for x in text.cast(pa.binary()).to_pylist()], pa.string())
    if bools.any():
        text = pc.if_else(pa.array(bools), pc.if_else(pa.array(val != 0), "true", "false"), text)
    return value, pc.if_else(pa.array(~(is_str | bools)), pa.scalar(None, pa.string()), text)


def _table(cache: PathCache, slots: np.ndarray, ts: np.ndarray, value: np.ndarray, text: pa.Array,
           deleted: np.ndarray) -> pa.Table:  # fmt: skip
    idx = pa.array(slots, pa.int64())
    metric, device, labels = (a.take(idx) for a in cache.arrays())
    return pa.table([pa.array(ts.astype(np.int64), pa.int64()).cast(SCHEMA.field("timestamp").type), device, metric,
                     pa.array(value, pa.float64()), text, labels, pa.array(deleted)], schema=SCHEMA)  # fmt: skip


def _slow_rows(buf, cache, slow, slot_u, val_s, val_e, ts_ms, u_notif, row_resp_u, bad):
    cols = _Columns()
    resp_rows: list[int] = []
    raw = buf.raw
    for u in slow.tolist():
        try:
            tv = gnmi_pb2.TypedValue.FromString(raw[val_s[u] : val_e[u]])
        except DecodeError:
            bad[row_resp_u[u]] = True
            continue
        metric, base, device = cache.base[slot_u[u]]
        ts = int(ts_ms[u_notif[u]])
        for suffix, extra, value, text in typed_leaves(tv):
            cols.add(ts, device, _join(metric, suffix), value, text, {**base, **extra}, False)
            resp_rows.append(int(row_resp_u[u]))
    return cols.table(), np.asarray(resp_rows, np.int64)
