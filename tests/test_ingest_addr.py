"""Vectorised address formatting (``ingest.addr``) against Python's ``ipaddress`` on random columns.

Both IPv4 paths are exercised: the direct formatter (columns of mostly distinct addresses) and the
dictionary path (columns long enough to probe, with repeats).
"""

from __future__ import annotations

import ipaddress

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import addr

ADDRESSES = st.integers(0, 2**32 - 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(ADDRESSES, max_size=300))
def test_ipv4_direct_matches_ipaddress(values: list[int]) -> None:
    got = addr.ipv4_strings(np.array(values, np.uint32)).to_pylist()
    assert got == [str(ipaddress.IPv4Address(v)) for v in values]


@settings(max_examples=25, deadline=None)
@given(st.lists(ADDRESSES, min_size=1, max_size=50), st.integers(0, 2**32 - 1))
def test_ipv4_dictionary_path_matches_ipaddress(pool: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.choice(np.array(pool, np.uint32), 3 * addr.PROBE)  # repeats: the dictionary path
    got = addr.ipv4_strings(values).to_pylist()
    assert got == [str(ipaddress.IPv4Address(int(v))) for v in values]


def test_ipv4_long_distinct_column_takes_the_direct_path_and_is_right() -> None:
    values = np.random.default_rng(3).integers(0, 2**32, 3 * addr.PROBE, dtype=np.uint32)
    assert addr.ipv4_strings(values).to_pylist() == [str(ipaddress.IPv4Address(int(v))) for v in values]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=16, max_size=16), max_size=100))
def test_ipv6_matches_ipaddress(values: list[bytes]) -> None:
    raw = np.frombuffer(b"".join(values), np.uint8).reshape(-1, 16)
    got = addr.ipv6_strings(raw).to_pylist()
    assert got == [ipaddress.IPv6Address(v).compressed for v in values]
