"""Running per-group state of an un-windowed streaming aggregate (``STREAM logs GROUP BY device``).

Such a query never closes a window, so keeping its input rows would grow without bound and make every
emission re-read the whole history. Like Proton's aggregate states, :class:`GroupPartials` keeps one row
per group with the partial value of each measure and merges every new batch into it:

========================  =========================================================================
measure                   partial kept per group (``v`` value, ``c`` non-null count, ``t`` time)
========================  =========================================================================
``count``                 ``v``: the count
``sum``                   ``v``: the sum (exact integers, as the batch path), ``c``: values seen
``avg``                   ``v``: the float sum, ``c``: values seen
``min`` / ``max``         ``v``: the extreme value so far
``first`` / ``last``      ``v``: the value, ``t``: its event time (equal times: earlier arrival first)
``count_distinct``        a side table of the distinct (group keys, value) pairs seen
========================  =========================================================================

The exact quantiles need every value, so a query using them keeps its rows as before
(:meth:`GroupPartials.supports` says which). A merge is a vectorised pass over the state
rows followed by the batch's rows: the same :mod:`measures` run over them, so an extreme, first or last
of the state competes with the batch exactly as its raw row would have (the state rows come first, so
ties keep arrival order). Only ``avg`` and float ``sum`` may differ from a one-shot sum in the last bits
of a float (a different summation order, as in Proton).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from srql_compiler import plan as P
from streams.engine import measures

DECOMPOSABLE = frozenset({"count", "sum", "avg", "min", "max", "first", "last", "count_distinct"})


class GroupPartials:
    """One row per group: the group keys ``k*`` and each measure's partial columns (``v*``, ``c*``, ``t*``)."""

    def __init__(self, plan: P.Plan) -> None:
        self._aggs = plan.aggregates
        self._n_keys = len(plan.group_by)
        self._state: pa.Table | None = None
        self._pairs: dict[int, pa.Table] = {}  # count_distinct i: its distinct (k*, v) pairs
        self._touched: np.ndarray | None = None  # groups the last merged batch changed

    @staticmethod
    def supports(plan: P.Plan) -> bool:
        """Whether every measure of ``plan`` can be kept as a partial value."""
        return all(a.func in DECOMPOSABLE for a in plan.aggregates)

    @property
    def num_rows(self) -> int:
        return (0 if self._state is None else self._state.num_rows) + sum(t.num_rows for t in self._pairs.values())

    @property
    def nbytes(self) -> int:
        return (0 if self._state is None else self._state.nbytes) + sum(t.nbytes for t in self._pairs.values())

    def merge(self, rows: pa.Table) -> None:
        """Fold projected rows (``__ts``, ``k*``, ``a*``, ``f*``, as the query's buffer holds them) in."""
        old = self._state
        n_old = 0 if old is None else old.num_rows
        keys = [self._concat(old, rows, f"k{i}") for i in range(self._n_keys)]
        gid, first = measures.group_ids(keys, n_old + rows.num_rows)
        n_groups = len(first)
        cols: dict[str, pa.Array] = {f"k{i}": keys[i].take(pa.array(first)) for i in range(self._n_keys)}
        ts = rows.column("__ts").to_numpy()
        for i, agg in enumerate(self._aggs):
            if agg.func == "count_distinct":
                self._merge_pairs(i, agg, rows)
            else:
                cols.update(self._merge_measure(i, agg, old, rows, ts, gid, n_groups))
        self._state = pa.table(cols)
        self._touched = np.bincount(gid[n_old:], minlength=n_groups) > 0

    def values(self, key_names: list[str], updated_only: bool) -> pa.Table:
        """The groups' measures as the batch path computes them (only the last batch's groups if asked)."""
        state = self._state
        assert state is not None
        cols: dict[str, pa.Array] = {}
        for i, name in enumerate(key_names):
            cols[name] = state.column(f"k{i}")
        for i, agg in enumerate(self._aggs):
            value = self._distinct_counts(i, state) if agg.func == "count_distinct" else self._final(i, agg, state)
            cols[agg.name] = measures.cast(value, agg.type.arrow())
        table = pa.table(cols)
        if updated_only and self._touched is not None:
            table = table.filter(pa.array(self._touched))
        return table

    # ------------------------------------------------------------------------------------------

    @staticmethod
    def _concat(old: pa.Table | None, rows: pa.Table, name: str) -> pa.Array:
        """Column ``name`` of ``old`` (if any) followed by that of ``rows``, in ``rows``' type."""
        new = rows.column(name).combine_chunks()
        if old is None:
            return new
        prev = old.column(name).combine_chunks()
        if prev.type != new.type:
            prev = prev.cast(new.type)
        return pa.concat_arrays([prev, new])

    def _merge_measure(self, i: int, agg: P.Aggregate, old: pa.Table | None, rows: pa.Table, ts: np.ndarray,
                       gid: np.ndarray, n_groups: int) -> dict[str, pa.Array]:
        n_old = 0 if old is None else old.num_rows
        n_new = rows.num_rows
        sel = np.ones(n_new, bool)
        if agg.filter is not None:
            sel &= rows.column(f"f{i}").to_numpy(zero_copy_only=False).astype(bool)
        arg = rows.column(f"a{i}").combine_chunks() if agg.arg is not None else None
        if arg is not None and arg.null_count:
            sel &= pc.is_valid(arg).to_numpy(zero_copy_only=False)
        func = agg.func
        if func == "count":
            counts = np.concatenate([_column(old, f"v{i}", np.uint64), sel.astype(np.uint64)])
            return {f"v{i}": pa.array(measures.int_sums(gid, counts, n_groups))}
        if func in ("sum", "avg"):
            values = measures.numeric(arg) if arg is not None else np.zeros(n_new)
            if func == "avg" or values.dtype.kind == "f":
                values = np.concatenate([_column(old, f"v{i}", np.float64), np.where(sel, values, 0.0)])
                sums = np.bincount(gid, weights=values, minlength=n_groups)
            else:
                acc = np.uint64 if values.dtype.kind == "u" else np.int64
                values = np.concatenate([_column(old, f"v{i}", acc), np.where(sel, values, 0).astype(acc)])
                sums = measures.int_sums(gid, values, n_groups)
            seen = np.concatenate([_column(old, f"c{i}", np.uint64), sel.astype(np.uint64)])
            return {f"v{i}": pa.array(sums), f"c{i}": pa.array(measures.int_sums(gid, seen, n_groups))}
        # min, max, first, last: the state's value competes with the batch's rows, state rows first
        assert arg is not None
        kept = pa.concat_arrays([old.column(f"v{i}").combine_chunks().cast(arg.type), arg]) if old else arg
        valid = np.concatenate([np.ones(n_old, bool), sel])
        if n_old:  # a group whose rows were all NULL so far holds NULL: not a candidate
            valid[:n_old] = pc.is_valid(kept.slice(0, n_old)).to_numpy(zero_copy_only=False)
        times = np.concatenate([_column(old, f"t{i}", np.int64), ts]) if func in ("first", "last") else None
        when = times if times is not None else np.zeros(n_old + n_new, np.int64)
        out = {f"v{i}": measures.compute(func, kept, valid, gid, n_groups, when, kept.type)}
        if times is not None:
            out[f"t{i}"] = measures.compute(func, pa.array(times), valid, gid, n_groups, when, pa.int64())
        return out

    def _merge_pairs(self, i: int, agg: P.Aggregate, rows: pa.Table) -> None:
        """Add the batch's (group keys, value) pairs to count_distinct ``i``'s set (NULLs are not values)."""
        keep = pc.is_valid(rows.column(f"a{i}"))
        if agg.filter is not None:
            keep = pc.and_(keep, rows.column(f"f{i}"))
        new = rows.select([*(f"k{j}" for j in range(self._n_keys)), f"a{i}"]).filter(keep)
        new = new.rename_columns([*(f"k{j}" for j in range(self._n_keys)), "v"])
        old = self._pairs.get(i)
        both = new if old is None else pa.concat_tables([old.cast(new.schema), new])
        _, first = measures.group_ids([both.column(c) for c in both.column_names])
        self._pairs[i] = both.take(np.sort(first)) if both.num_rows else both

    def _distinct_counts(self, i: int, state: pa.Table) -> pa.Array:
        """Distinct values per state group: the pairs counted by their group keys."""
        pairs = self._pairs.get(i)
        n_pairs = 0 if pairs is None else pairs.num_rows
        if not self._n_keys:
            return pa.array([n_pairs], pa.uint64())
        if not n_pairs:
            return pa.array(np.zeros(state.num_rows, np.uint64))
        keys = [self._concat(state, pairs, f"k{j}") for j in range(self._n_keys)]
        gid, _ = measures.group_ids(keys)
        n = state.num_rows
        counts = np.bincount(gid[n:], minlength=int(gid.max()) + 1).astype(np.uint64)
        return pa.array(counts[gid[:n]])

    @staticmethod
    def _final(i: int, agg: P.Aggregate, state: pa.Table) -> pa.Array:
        v = state.column(f"v{i}").combine_chunks()
        if agg.func not in ("sum", "avg"):
            return v
        seen = state.column(f"c{i}").to_numpy()
        values = v.to_numpy(zero_copy_only=False)
        if agg.func == "avg":
            with np.errstate(invalid="ignore", divide="ignore"):
                values = values / seen
        return pa.array(values, mask=seen == 0)


def _column(state: pa.Table | None, name: str, dtype) -> np.ndarray:
    """A partial column of the state as NumPy (NULLs as 0: they only occur where nothing was seen)."""
    if state is None:
        return np.zeros(0, dtype)
    col = state.column(name).combine_chunks()
    return col.fill_null(0).to_numpy(zero_copy_only=False).astype(dtype, copy=False)

