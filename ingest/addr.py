"""Vectorised address formatting: uint32 IPv4 arrays and 16-byte IPv6 arrays to Arrow strings.

pyarrow has no integer-to-dotted-quad kernel, and a Python ``str(IPv4Address(x))`` per record costs
about 1 µs; this builds the string buffer with NumPy instead (tens of ns per address).
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Each 16-bit half of an address is "a.b" (3 to 7 characters). HI holds it right-aligned in 7
    # NUL-padded bytes followed by the middle '.', LO left-aligned in 8 NUL-padded bytes, so the row
    # HI[hi] + LO[lo] is the address with NULs only as padding; dropping the NULs compacts all rows.
    hi = np.zeros((65536, 8), np.uint8)
    lo = np.zeros((65536, 8), np.uint8)
    lengths = np.zeros(65536, np.int64)
    for v in range(65536):
        s = np.frombuffer(f"{v >> 8}.{v & 255}".encode(), np.uint8)
        hi[v, 7 - len(s) : 7] = s
        hi[v, 7] = ord(".")
        lo[v, : len(s)] = s
        lengths[v] = len(s)
    return hi.view(np.uint64).ravel(), lo.view(np.uint64).ravel(), lengths


_HI, _LO, _LEN = _tables()


# Dictionary path: a column whose first PROBE values hold at most REPEATS_AT distinct addresses is
# hash-encoded (Arrow, C++) and only its distinct values are formatted, then gathered; the probe keeps
# the worst case (every address distinct) on the direct path, which that encode would slow 2-3x.
PROBE = 4096
REPEATS_AT = 0.75


def ipv4_strings(addrs: np.ndarray) -> pa.StringArray:
    """Dotted-quad strings of an array of IPv4 addresses held as integers.

    Flow exporters repeat addresses heavily (next hops, local hosts): when a probe of the column shows
    repeats, each distinct address is formatted once, which is 2-4x faster than formatting them all.
    """
    u = np.asarray(addrs).astype(np.uint32, copy=False)
    if len(u) > 2 * PROBE and len(pc.unique(pa.array(u[:PROBE]))) <= REPEATS_AT * PROBE:
        encoded = pc.dictionary_encode(pa.array(u))
        return _ipv4_format(encoded.dictionary.to_numpy()).take(encoded.indices)
    return _ipv4_format(u)


def _ipv4_format(u: np.ndarray) -> pa.StringArray:
    n = len(u)
    hi, lo = u >> 16, u & 0xFFFF
    rows = np.empty((n, 2), np.uint64)
    rows[:, 0] = _HI[hi]
    rows[:, 1] = _LO[lo]
    flat = rows.view(np.uint8).ravel()
    data = flat[flat != 0]
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(_LEN[hi] + 1 + _LEN[lo], out=offsets[1:])
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def ipv6_strings(raw: np.ndarray) -> pa.StringArray:
    """RFC 5952 strings of an (n, 16) uint8 array of IPv6 addresses.

    IPv6 flows are formatted once per distinct address (exporters repeat addresses heavily), which
    keeps the Python work proportional to the number of distinct addresses, not records.
    """
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1, 16)
    if len(raw) == 0:
        return pa.array([], pa.string())
    keys = raw.view("V16").ravel()
    uniq, inverse = np.unique(keys, return_inverse=True)
    names = pa.array([ipaddress.IPv6Address(bytes(k)).compressed for k in uniq], pa.string())
    return names.take(pa.array(inverse.ravel().astype(np.int64)))
