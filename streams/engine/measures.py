"""Grouped measures over a table of rows, vectorised with NumPy (no Python loop per row or per group).

Rows get a dense group id; every measure is then a ``bincount`` or a reduction over the rows sorted by
group id. All measures are exact: quantiles interpolate linearly between the two nearest ranks (DuckDB's
``quantile_cont``, ClickHouse's ``quantileExactInterpolated``); ``first``/``last`` take the value at the
smallest/largest event time, earlier arrival first among equal times. NULL arguments are ignored; a
measure over no qualifying rows is NULL (``count`` is 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from srql_compiler.plan import QUANTILES

_MAX_COMBINED = 1 << 62


def group_ids(columns: Sequence[pa.ChunkedArray | pa.Array | np.ndarray], n: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dense group ids (0..G-1) of rows keyed by ``columns``, and one row index of each group.

    Groups are numbered in the order of their first key column's sorted codes, so results come out in a
    stable order (window start first when it is the first column). With no columns the ``n`` rows are
    one group, which exists even over no rows (SQL gives an aggregate without GROUP BY one row).
    """
    if not columns:
        return np.zeros(n, np.int64), np.zeros(1, np.int64)
    n = len(columns[0])
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    gid = np.zeros(n, np.int64)
    size = 1
    for col in columns:
        codes, card = _codes(col)
        if size * card >= _MAX_COMBINED:
            _, gid = np.unique(gid, return_inverse=True)
            size = int(gid.max()) + 1
        gid = gid * card + codes
        size *= card
    if size <= max(8 * n, 1 << 16):
        # small key space: a bincount maps ids to dense ones without sorting (faster, less memory)
        present = np.bincount(gid, minlength=size) > 0
        remap = np.cumsum(present) - 1
        dense = remap[gid]
        rep = np.empty(int(present.sum()), np.int64)
        rep[dense] = np.arange(n)  # any row of a group will do: its keys are the group's keys
        return dense, rep
    _, first, dense = np.unique(gid, return_index=True, return_inverse=True)
    return dense.astype(np.int64, copy=False), first


def _codes(col) -> tuple[np.ndarray, int]:
    if isinstance(col, np.ndarray):
        lo = int(col.min()) if len(col) else 0
        if col.dtype.kind in "iu":
            d = (col - lo).astype(np.int64, copy=False)
            step = int(np.gcd.reduce(d)) if len(d) else 0  # window starts are multiples of the step
            if step > 1:
                d = d // step
            span = int(d.max()) + 1 if len(d) else 1
            if span < max(8 * len(col), 1 << 16):
                return d, span
        uniq, inv = np.unique(col, return_inverse=True)
        return inv.astype(np.int64, copy=False), max(len(uniq), 1)
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_integer(arr.type) or pa.types.is_timestamp(arr.type):
        values = arr.cast(pa.int64()).to_numpy(zero_copy_only=False) if arr.null_count == 0 else None
        if values is not None:
            return _codes(values)
    enc = pc.dictionary_encode(arr, null_encoding="encode")
    # dictionary codes follow first appearance; rank them by value so group order is by key value
    order = pc.rank(enc.dictionary, sort_keys="ascending").to_numpy() - 1
    return order[enc.indices.to_numpy(zero_copy_only=False)].astype(np.int64), max(len(enc.dictionary), 1)


def compute(
    func: str,
    arg: pa.ChunkedArray | None,
    selected: np.ndarray | None,
    gid: np.ndarray,
    n_groups: int,
    ts: np.ndarray,
    out_type: pa.DataType,
) -> pa.Array:
    """One measure per group: ``func(arg)`` over the rows where ``selected`` (all when None)."""
    n = len(gid)
    keep = np.ones(n, bool) if selected is None else selected.copy()
    if func == "count" and arg is None:
        return cast(pa.array(np.bincount(gid[keep], minlength=n_groups).astype(np.uint64)), out_type)
    arr = arg.combine_chunks() if isinstance(arg, pa.ChunkedArray) else arg
    if arr.null_count:
        keep &= pc.is_valid(arr).to_numpy(zero_copy_only=False)
    if func == "count":
        return cast(pa.array(np.bincount(gid[keep], minlength=n_groups).astype(np.uint64)), out_type)
    rows = np.flatnonzero(keep)
    g = gid[rows]
    counts = np.bincount(g, minlength=n_groups)
    present = counts > 0
    if func in ("sum", "avg"):
        return cast(_sum_avg(func, arr, rows, g, counts, present, n_groups), out_type)
    if func == "count_distinct":
        codes = _order_codes(arr)[rows]
        order = np.lexsort((codes, g))
        gs, cs = g[order], codes[order]
        new = np.ones(len(gs), bool)
        new[1:] = (gs[1:] != gs[:-1]) | (cs[1:] != cs[:-1])
        return cast(pa.array(np.bincount(gs[new], minlength=n_groups).astype(np.uint64)), out_type)
    if func in ("min", "max"):
        codes = _order_codes(arr)[rows]
        order = np.lexsort((codes, g))
        pick = _group_edge(g[order], n_groups, last=(func == "max"))
        return _take(arr, rows[order], pick, present, out_type)
    if func in ("first", "last"):
        order = np.lexsort((ts[rows], g))  # stable: equal times keep arrival order
        pick = _group_edge(g[order], n_groups, last=(func == "last"))
        return _take(arr, rows[order], pick, present, out_type)
    if func in QUANTILES:
        return cast(_quantile(arr, rows, g, counts, present, QUANTILES[func]), out_type)
    raise ValueError(f"unknown measure {func!r}")


def _sum_avg(func, arr, rows, g, counts, present, n_groups) -> pa.Array:
    values = numeric(arr)[rows]
    if func == "avg" or values.dtype.kind == "f":
        sums = np.bincount(g, weights=values.astype(np.float64), minlength=n_groups)
        if func == "avg":
            with np.errstate(invalid="ignore", divide="ignore"):
                sums = sums / counts
        return pa.array(sums, mask=~present)
    acc = np.uint64 if values.dtype.kind == "u" else np.int64
    return pa.array(int_sums(g, values.astype(acc), n_groups), mask=~present)


def int_sums(gid: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Exact per-group sums of integers, wrapping like ClickHouse (``bincount`` would round through float64)."""
    out = np.zeros(n_groups, values.dtype)
    if len(gid):
        order = np.argsort(gid, kind="stable")
        gs = gid[order]
        starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
        out[gs[starts]] = np.add.reduceat(values[order], starts)
    return out


def _quantile(arr, rows, g, counts, present, q: float) -> pa.Array:
    values = numeric(arr)[rows].astype(np.float64)
    order = np.lexsort((values, g))
    vs = values[order]
    starts = np.zeros(len(counts), np.int64)
    starts[1:] = np.cumsum(counts)[:-1]
    pos = (np.maximum(counts, 1) - 1) * q
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(counts - 1, 0))
    frac = pos - lo
    out = np.full(len(counts), np.nan)
    idx = np.flatnonzero(present)
    if len(idx):
        a, b = vs[starts[idx] + lo[idx]], vs[starts[idx] + hi[idx]]
        out[idx] = a + (b - a) * frac[idx]
    return pa.array(out, mask=~present)


def _group_edge(gs: np.ndarray, n_groups: int, last: bool) -> np.ndarray:
    """Index into the group-sorted rows of each group's first (or last) row; -1 for empty groups."""
    pick = np.full(n_groups, -1, np.int64)
    if len(gs):
        if last:
            ends = np.flatnonzero(np.r_[gs[1:] != gs[:-1], True])
            pick[gs[ends]] = ends
        else:
            starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
            pick[gs[starts]] = starts
    return pick


def _take(arr: pa.Array, sorted_rows: np.ndarray, pick: np.ndarray, present: np.ndarray, out_type) -> pa.Array:
    idx = np.where(present, sorted_rows[np.maximum(pick, 0)] if len(sorted_rows) else 0, 0)
    taken = arr.take(pa.array(idx, pa.int64(), mask=~present)) if len(arr) else pa.nulls(len(pick), arr.type)
    return cast(taken, out_type)


def numeric(arr: pa.Array) -> np.ndarray:
    """The values as NumPy numbers (booleans as 0/1, timestamps as int64, NULLs as 0)."""
    if pa.types.is_boolean(arr.type):
        arr = arr.cast(pa.uint8())
    if pa.types.is_timestamp(arr.type):
        arr = arr.cast(pa.int64())
    return arr.fill_null(0).to_numpy(zero_copy_only=False)


def _order_codes(arr: pa.Array) -> np.ndarray:
    """Integers whose order is the values' order (the values themselves when numeric)."""
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_timestamp(t) or pa.types.is_boolean(t):
        return numeric(arr)
    return pc.rank(arr, sort_keys="ascending", tiebreaker="dense").to_numpy(zero_copy_only=False)


def cast(arr: pa.Array, out_type: pa.DataType) -> pa.Array:
    """``arr`` as ``out_type`` where Arrow can cast it, else unchanged."""
    if arr.type == out_type:
        return arr
    try:
        return arr.cast(out_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return arr
