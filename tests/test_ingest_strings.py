"""``ingest.strings``: string arrays from byte ranges through string views, against Python slicing."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import strings


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=400), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 40)), max_size=60))
def test_views_cut_the_same_ranges_as_slicing(data: bytes, ranges: list[tuple[int, int]]) -> None:
    ranges = [(min(s, len(data)), min(n, len(data) - min(s, len(data)))) for s, n in ranges]
    buf = np.frombuffer(data + bytes(strings.READ_AHEAD), np.uint8)
    starts = np.array([s for s, _ in ranges], np.int64)
    lens = np.array([n for _, n in ranges], np.int64)
    # compared as bytes: the cast checks no UTF-8 (callers validate their buffer first)
    got = strings.from_views(strings.views(buf, starts, lens), buf).cast("binary").to_pylist()
    assert got == [data[s : s + n] for s, n in ranges]
