"""One running query: filters, joins, windows with watermark and lateness, measures, HAVING, top-n.

A :class:`QueryRunner` is fed Arrow batches in arrival order (``push``), advanced on idle
(``advance_time``) and closed at end of input (``finish``); each call returns the result tables it
produced. All work is vectorised over the batch; state is the rows of windows still open (plus, for
joins, the rows that can still match), freed as windows are emitted, or for an un-windowed aggregate one
partial row per group (:mod:`streams.engine.partials`), and is observable through
:attr:`QueryRunner.state_rows` and :attr:`QueryRunner.state_bytes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from srql_compiler import plan as P
from streams.catalog import CATALOG
from streams.engine import measures, windows
from streams.engine.expr import TS_TYPE, EvalError, col_name, evaluate, mask
from streams.engine.partials import GroupPartials
from streams.engine.windows import NEG_INF, POS_INF, ms


@dataclass
class _Chunk:
    rows: pa.Table  # __ts [, __wm], k*, a*, f* (or working columns for joins/un-windowed)
    min_ts: int
    max_ts: int


class QueryRunner:
    """Runs one bound plan over pushed batches with Proton's streaming semantics."""

    def __init__(self, plan: P.Plan, now: datetime | None = None) -> None:
        self.plan = plan
        self.now = now
        w = plan.window
        self.delay = ms(w.delay) if w else 0
        self.size = ms(w.size) if w else 0
        self.step = (ms(w.step) if w and w.step else self.size) if w else 0
        self.kind = w.kind if w else None
        self.within = ms(plan.join.within) if plan.join and plan.join.kind == "interval" else 0
        self.late_events = 0
        self.untimed_events = 0  # rows dropped because their event time was NULL
        self.events_in = 0
        self._max_ts = NEG_INF  # largest event time seen (or advanced to on idle)
        self._closed_upto = NEG_INF  # every window ending at or before this was emitted
        self._buffer: list[_Chunk] = []
        self._inventory: pa.Table | None = None
        self._join_state: dict[str, list[_Chunk]] = {"left": [], "right": []}
        self._batch_no = 0
        self._needed = _columns_read(plan) if plan.is_aggregate else None
        # an un-windowed aggregate keeps one partial row per group instead of its input rows
        global_agg = plan.is_aggregate and not self.kind and GroupPartials.supports(plan)
        self._partials = GroupPartials(plan) if global_agg else None

    # ------------------------------------------------------------------------------------------
    # public API

    @property
    def watermark(self) -> int:
        """Current watermark in ms since the epoch (max event time seen minus DELAY, and WITHIN for joins)."""
        return self._max_ts - self.delay - self.within

    @property
    def state_rows(self) -> int:
        """Rows held in state (open windows, join buffers, inventory)."""
        n = sum(c.rows.num_rows for c in self._buffer)
        n += sum(c.rows.num_rows for side in self._join_state.values() for c in side)
        n += self._partials.num_rows if self._partials is not None else 0
        return n + (self._inventory.num_rows if self._inventory is not None else 0)

    @property
    def state_bytes(self) -> int:
        """Bytes of Arrow buffers held in state."""
        n = sum(c.rows.nbytes for c in self._buffer)
        n += sum(c.rows.nbytes for side in self._join_state.values() for c in side)
        n += self._partials.nbytes if self._partials is not None else 0
        return n + (self._inventory.nbytes if self._inventory is not None else 0)

    def sides(self, entity: str) -> list[str]:
        """Which inputs of this query (``left``, ``right``) a batch of ``entity`` feeds."""
        out = []
        if _matches(self.plan.source, entity):
            out.append("left")
        if self.plan.join is not None and _matches(self.plan.join.right, entity):
            out.append("right")
        return out

    def push(self, entity: str, batch: pa.Table | pa.RecordBatch) -> list[pa.Table]:
        """Feed one batch of ``entity``; returns the results it completes (possibly none)."""
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        out: list[pa.Table] = []
        for side in self.sides(entity):
            out += self._push_side(side, table)
        return out

    def advance_time(self, event_time_ms: int) -> list[pa.Table]:
        """Move event time forward without events (an idle tick); closes the windows it passes."""
        if event_time_ms > self._max_ts:
            self._max_ts = event_time_ms
        self._evict_join_state()
        return self._close(self.watermark) if self.kind else []

    def finish(self) -> list[pa.Table]:
        """End of input: every open window closes (un-windowed aggregates give their final value)."""
        if self.kind:
            return self._close(POS_INF)
        if self.plan.is_aggregate:
            return self._emit_global(updated_only=False)
        return []

    def snapshot(self) -> list[pa.Table]:
        """The current value of an un-windowed aggregate (EMIT PERIODIC calls this on its period)."""
        return self._emit_global(updated_only=False) if self.plan.is_aggregate and not self.kind else []

    def run_historical(self, left: pa.Table, right: pa.Table | None = None) -> pa.Table:
        """A bounded (SHOW/FIND/COUNT) query over whole tables: no watermark, every window complete."""
        src = self.plan.source
        work = _rename(self._accept(left, src), src.alias)
        join = self.plan.join
        if join is not None:
            rtable = right if right is not None else _empty(join.right)
            rwork = _rename(self._accept(rtable, join.right), join.right.alias)
            if join.kind == "lookup":
                self._update_inventory(rwork, join.right)
                work, _, _ = self._lookup(work, np.zeros(work.num_rows, np.int64), np.zeros(work.num_rows))
            else:
                self.within = ms(join.within)
                work = self._pair(work, rwork)
        keep = self._where(work)
        if keep is not None:
            work = work.filter(keep)
        if self.plan.statement == "count" and not self.plan.aggregates:
            name = self.plan.columns[0].name if self.plan.columns else "count"
            return pa.table({name: pa.array([work.num_rows], pa.uint64())})
        if not self.plan.is_aggregate:
            if self.plan.latest:
                work = self._latest(work)
            if self.plan.order_by or self.plan.limit is not None:
                work = self._order_limit(work, per_window=False)
            return self._output(work)
        ts = _event_ms(work, src)
        rows = self._project_rows(work, ts, None)
        if self.kind == "session":
            self._buffer = [_Chunk(rows, int(ts.min()), int(ts.max()))] if len(ts) else []
            out = self._close_sessions(POS_INF)
        elif self.kind:
            idx, starts = windows.expand(ts, self.size, self.step, NEG_INF, POS_INF, None)
            out = [self._aggregate(rows.take(idx), starts, starts + self.size)]
        else:
            out = [self._aggregate(rows, None, None)] if rows.num_rows or not self.plan.group_by else []
        return concat_results(self.plan, out)

    def _latest(self, work: pa.Table) -> pa.Table:
        """The newest row per key of the source (or the newest row when it has no key)."""
        src = self.plan.source
        ts = _event_ms(work, src)
        keys = [work.column(f"{src.alias}.{k}") for k in src.keys]
        gid = measures.group_ids(keys, len(ts))[0]
        order = np.lexsort((np.arange(len(ts)), ts, gid))
        gs = gid[order]
        return work.take(np.sort(order[np.flatnonzero(np.r_[gs[1:] != gs[:-1], True])])) if len(ts) else work

    # ------------------------------------------------------------------------------------------
    # input

    def _push_side(self, side: str, table: pa.Table) -> list[pa.Table]:
        src = self.plan.source if side == "left" else self.plan.join.right  # type: ignore[union-attr]
        work = _rename(self._accept(table, src), src.alias)
        if self._needed is not None:  # carry only the columns the query reads (filters copy every column)
            work = work.select([c for c in work.column_names if c in self._needed])
        if side == "right" and self.plan.join.kind == "lookup":  # type: ignore[union-attr]
            self._update_inventory(work, src)
            return []
        self.events_in += work.num_rows
        if work.num_rows == 0:
            return []
        ts = _event_ms(work, src)
        if self.plan.join is not None and self.plan.join.kind == "interval":
            return self._push_interval(side, work, ts)
        if self.plan.join is not None:
            # the watermark follows every stream row, matched or not: compute it before the join
            wm = windows.watermark_before(ts, self._max_ts, self.delay)
            batch_max = int(ts.max())
            work, ts, wm = self._lookup(work, ts, wm)
            return self._ingest(work, ts, check_late=True, wm_before=wm, batch_max=batch_max)
        return self._ingest(work, ts, check_late=True)

    def _accept(self, table: pa.Table, src: P.Source) -> pa.Table:
        """A batch checked against the catalog, without rows that have no event time (dropped, counted)."""
        table = _conform(table, src, self._needed)
        untimed = table.column(src.event_time).null_count if src.event_time in table.column_names else 0
        if untimed:  # an event without an event time cannot be placed in time
            self.untimed_events += untimed
            table = table.filter(pc.is_valid(table.column(src.event_time)))
        return table

    def _ingest(
        self,
        work: pa.Table,
        ts: np.ndarray,
        check_late: bool,
        wm_before: np.ndarray | None = None,
        batch_max: int | None = None,
    ) -> list[pa.Table]:
        """Filter, drop late rows, buffer the rest, then close what the new watermark passes."""
        prev_max = self._max_ts
        if batch_max is None:
            batch_max = int(ts.max()) if len(ts) else prev_max
        keep = self._where(work)
        if keep is not None:
            work, ts_all, ts = work.filter(keep), ts, ts[keep]
        else:
            ts_all = ts
        if not self.plan.is_aggregate:
            self._max_ts = max(prev_max, batch_max)
            return [self._output(work)] if work.num_rows else []
        wm_rows = None
        if self.kind and check_late and len(ts):
            ts, work, wm_rows = self._drop_late(ts, ts_all, keep, work, prev_max, batch_max, wm_before)
        self._max_ts = max(prev_max, batch_max)
        if len(ts):
            rows = self._project_rows(work, ts, wm_rows)
            if self._partials is not None:
                self._partials.merge(rows)
            else:
                self._buffer.append(_Chunk(rows, int(ts.min()), int(ts.max())))
        self._batch_no += 1
        if self.kind:
            return self._close(self.watermark)
        if self.plan.emit is not None and self.plan.emit.mode == "on_update" and len(ts):
            return self._emit_global(updated_only=True)
        return []

    def _where(self, work: pa.Table) -> np.ndarray | None:
        conds = [c for c in (self.plan.time_range, self.plan.where) if c is not None]
        if not conds:
            return None
        m = mask(conds[0] if len(conds) == 1 else P.And(tuple(conds)), work, self.now)
        return m.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)

    def _drop_late(self, ts, ts_all, keep, work, prev_max, batch_max, wm_before):
        """Count and drop rows whose window was already emitted; hop rows keep their arrival watermark."""
        bound = max(prev_max, batch_max) - self.delay  # no row saw a higher watermark
        if self.kind == "session":
            first_end = ts
        else:
            first_end = windows.first_window_end(ts, self.size, self.step)
        if int(first_end.min()) > bound:
            return ts, work, None  # nothing can be late in this batch (the common, in-order case)
        wm = windows.watermark_before(ts_all, prev_max, self.delay) if wm_before is None else wm_before
        if keep is not None:
            wm = wm[keep]
        if self.kind == "session":
            late = ts < wm
            dropped = late
        else:
            late = first_end <= wm
            dropped = windows.last_window_end(ts, self.size, self.step) <= wm
        self.late_events += int(late.sum())
        if dropped.any():
            kept = ~dropped
            ts, wm, work = ts[kept], wm[kept], work.filter(kept)
        multi = self.kind == "hop" and self.step < self.size
        return ts, work, (wm if multi else None)

    def _project_rows(self, work: pa.Table, ts: np.ndarray, wm: np.ndarray | None) -> pa.Table:
        """Keep only what the measures need: event time, group keys, measure arguments and filters."""
        cols: dict[str, pa.Array | pa.ChunkedArray] = {"__ts": pa.array(ts, pa.int64())}
        if wm is not None:
            cols["__wm"] = pa.array(wm, pa.int64())
        elif self.kind == "hop" and self.step < self.size:
            cols["__wm"] = pa.array(np.full(len(ts), NEG_INF, np.int64))
        for i, key in enumerate(self.plan.group_by):
            cols[f"k{i}"] = _as_array(evaluate(key, work, self.now), work.num_rows)
        for i, agg in enumerate(self.plan.aggregates):
            if agg.arg is not None:
                cols[f"a{i}"] = _as_array(evaluate(agg.arg, work, self.now), work.num_rows)
            if agg.filter is not None:
                cols[f"f{i}"] = mask(agg.filter, work, self.now).fill_null(False)
        if not self.kind:  # EMIT ON UPDATE needs to know which batch each row came from
            cols["__batch"] = pa.array(np.full(len(ts), self._batch_no, np.int32))
        return pa.table(cols)

    # ------------------------------------------------------------------------------------------
    # windows

    def _close(self, upto: int) -> list[pa.Table]:
        if upto <= self._closed_upto:
            return []
        if self.kind == "session":
            out = self._close_sessions(upto)
        else:
            out = self._close_hop(upto)
        self._closed_upto = upto
        return out

    def _close_hop(self, upto: int) -> list[pa.Table]:
        size, step = self.size, self.step
        first_end = lambda t: int(windows.first_window_end(np.array([t]), size, step)[0])  # noqa: E731
        affected = [i for i, c in enumerate(self._buffer) if first_end(c.min_ts) <= upto]
        if not affected:
            return []
        rows = pa.concat_tables([self._buffer[i].rows for i in affected])
        ts = rows.column("__ts").to_numpy()
        wm = rows.column("__wm").to_numpy() if "__wm" in rows.column_names else None
        idx, starts = windows.expand(ts, size, step, self._closed_upto, upto, wm)
        whole = len(idx) == rows.num_rows and (len(idx) < 2 or bool((np.diff(idx) == 1).all()))
        picked = rows if whole else rows.take(idx)  # tumble: usually every row, in order
        result = self._aggregate(picked, starts, starts + size) if len(idx) else None
        for i in affected:  # free rows whose every window has been emitted
            c = self._buffer[i]
            if windows.last_window_end(np.array([c.max_ts]), size, step)[0] <= upto:
                self._buffer[i] = None  # type: ignore[call-overload]
                continue
            t = c.rows.column("__ts").to_numpy()
            live = windows.last_window_end(t, size, step) > upto
            if not live.all():
                self._buffer[i] = _Chunk(c.rows.filter(live), int(t[live].min()), c.max_ts)
        self._buffer = [c for c in self._buffer if c is not None]
        return [result] if result is not None and result.num_rows else []

    def _close_sessions(self, upto: int) -> list[pa.Table]:
        if not self._buffer:
            return []
        oldest, max_len = min(c.min_ts for c in self._buffer), windows.session_max_length(self.size)
        if oldest + self.size > upto and (oldest // max_len + 1) * max_len > upto:
            return []  # no session can have closed yet
        rows = pa.concat_tables([c.rows for c in self._buffer])
        ts = rows.column("__ts").to_numpy()
        keys = [rows.column(f"k{i}") for i in range(len(self.plan.group_by))]
        gid = measures.group_ids(keys, len(ts))[0]
        order, sid, first, last = windows.sessions(gid, ts, self.size)
        max_len = windows.session_max_length(self.size)
        closed = np.minimum(last + self.size, (first // max_len + 1) * max_len) <= upto
        row_closed = closed[sid]
        done, live = order[row_closed], np.sort(order[~row_closed])
        self._buffer = []
        if len(live):
            kept = rows.take(live)
            self._buffer.append(_Chunk(kept, int(ts[live].min()), int(ts[live].max())))
        if not len(done):
            return []
        done_sorted = np.sort(done)  # arrival order, for first/last ties
        pos = np.empty(len(ts), np.int64)
        pos[order] = np.arange(len(ts))
        s = sid[pos[done_sorted]]
        result = self._aggregate(rows.take(done_sorted), first[s], last[s])
        return [result] if result.num_rows else []

    # ------------------------------------------------------------------------------------------
    # aggregation and output

    def _aggregate(
        self, rows: pa.Table, wstart: np.ndarray | None, wend: np.ndarray | None, touched_by: int | None = None
    ) -> pa.Table:
        keys = [rows.column(f"k{i}") for i in range(len(self.plan.group_by))]
        key_cols = ([wstart] if wstart is not None else []) + keys
        gid, first = measures.group_ids(key_cols, rows.num_rows)
        n_groups = len(first)
        ts = rows.column("__ts").to_numpy()
        cols: dict[str, pa.Array] = {}
        if wstart is not None:
            cols["window_start"] = pa.array(wstart[first], pa.int64()).cast(TS_TYPE)
            cols["window_end"] = pa.array(wend[first], pa.int64()).cast(TS_TYPE)
        for key, c in zip(self.plan.group_by, keys, strict=True):
            cols[_key_name(key)] = c.take(pa.array(first))
        for i, agg in enumerate(self.plan.aggregates):
            arg = rows.column(f"a{i}") if agg.arg is not None else None
            sel = rows.column(f"f{i}").to_numpy(zero_copy_only=False) if agg.filter is not None else None
            cols[agg.name] = measures.compute(
                agg.func, arg, sel, gid, n_groups, ts, agg.type.arrow()
            )
        table = pa.table(cols) if cols else pa.table({"__n": np.zeros(n_groups)})
        if touched_by is not None:  # EMIT ON UPDATE: only the groups the newest batch changed
            newest = rows.column("__batch").to_numpy() == touched_by
            table = table.filter(pa.array(np.bincount(gid[newest], minlength=n_groups) > 0))
        return self._finish_groups(table)

    def _finish_groups(self, table: pa.Table) -> pa.Table:
        """HAVING, then ORDER BY ... LIMIT (per window when windowed), then the output columns."""
        if self.plan.having is not None and table.num_rows:
            m = mask(self.plan.having, table, self.now).fill_null(False)
            table = table.filter(m)
        if (self.plan.order_by or self.plan.limit is not None) and table.num_rows:
            table = self._order_limit(table, per_window=self.kind is not None)
        return self._output(table)

    def _order_limit(self, table: pa.Table, per_window: bool) -> pa.Table:
        sort_cols: dict[str, pa.Array] = {}
        sort_keys: list[tuple[str, str]] = []
        if per_window:
            sort_cols["__w"] = table.column("window_start")
            sort_keys.append(("__w", "ascending"))
        for i, key in enumerate(self.plan.order_by):
            sort_cols[f"__o{i}"] = _as_array(evaluate(key.expr, table, self.now), table.num_rows)
            sort_keys.append((f"__o{i}", "descending" if key.desc else "ascending"))
        for key in self.plan.group_by:  # ties broken by the group keys, so results are deterministic
            sort_cols[f"__g{len(sort_cols)}"] = table.column(_key_name(key))
            sort_keys.append((f"__g{len(sort_cols) - 1}", "ascending"))
        order = pc.sort_indices(pa.table(sort_cols), sort_keys=sort_keys)
        table = table.take(order)
        if self.plan.limit is None:
            return table
        if not per_window:
            return table.slice(0, self.plan.limit)
        w = table.column("window_start").cast(pa.int64()).to_numpy()
        starts = np.flatnonzero(np.r_[True, w[1:] != w[:-1]])
        rank = np.arange(len(w)) - np.repeat(starts, np.diff(np.r_[starts, len(w)]))
        return table.filter(pa.array(rank < self.plan.limit))

    def _emit_global(self, updated_only: bool) -> list[pa.Table]:
        if self._partials is not None and self._partials.num_rows:
            table = self._partials.values([_key_name(k) for k in self.plan.group_by], updated_only)
            result = self._finish_groups(table)
            return [result] if result.num_rows else []
        if not self._buffer:
            if self.plan.group_by or updated_only:
                return []
            return [self._empty_global()]
        rows = pa.concat_tables([c.rows for c in self._buffer])
        self._buffer = [_Chunk(rows, min(c.min_ts for c in self._buffer), max(c.max_ts for c in self._buffer))]
        result = self._aggregate(rows, None, None, touched_by=self._batch_no - 1 if updated_only else None)
        return [result] if result.num_rows else []

    def _empty_global(self) -> pa.Table:
        cols = {}
        for agg in self.plan.aggregates:
            empty = agg.func == "count" or agg.func == "count_distinct"
            cols[agg.name] = pa.array([0 if empty else None], agg.type.arrow())
        return self._finish_groups(pa.table(cols)) if cols else pa.table({})

    def _output(self, table: pa.Table) -> pa.Table:
        """The plan's output columns, in order, with their declared types."""
        plan = self.plan
        names = [c.name for c in plan.columns]
        if plan.projection:
            arrays = [_as_array(evaluate(e, table, self.now), table.num_rows) for _, e in plan.projection]
            names = [n for n, _ in plan.projection]
        elif plan.is_aggregate:
            produced = (["window_start", "window_end"] if plan.window else []) + [
                _key_name(k) for k in plan.group_by
            ] + [a.name for a in plan.aggregates]
            if len(produced) != len(names):
                produced = names
            arrays = [table.column(p) for p in produced]
        else:
            arrays = [self._pass_column(table, n) for n in names]
        out = []
        for arr, oc in zip(arrays, plan.columns, strict=False):
            want = oc.type.arrow()
            out.append(arr.cast(want) if arr.type != want and _castable(arr.type, want) else arr)
        return pa.table(dict(zip(names, out, strict=False)))

    def _pass_column(self, table: pa.Table, name: str):
        aliases = [self.plan.source.alias] + ([self.plan.join.right.alias] if self.plan.join else [])
        for alias in aliases:
            if f"{alias}.{name}" in table.column_names:
                return table.column(f"{alias}.{name}")
        if "." in name and name in table.column_names:
            return table.column(name)
        raise EvalError(f"output column {name!r} is not produced by the query")

    # ------------------------------------------------------------------------------------------
    # joins

    def _update_inventory(self, work: pa.Table, src: P.Source) -> None:
        """Keep the newest row per key (by the version column, later arrival winning ties)."""
        keys = [f"{src.alias}.{k}" for k in (src.keys or [c.name for _, c in self.plan.join.on])]
        both = work if self._inventory is None else pa.concat_tables([self._inventory, work])
        gid, _ = measures.group_ids([both.column(k) for k in keys])
        version = _event_ms(both, src)
        order = np.lexsort((np.arange(len(gid)), version, gid))
        gs = gid[order]
        last = order[np.flatnonzero(np.r_[gs[1:] != gs[:-1], True])]
        self._inventory = both.take(np.sort(last))

    def _lookup(self, work: pa.Table, ts: np.ndarray, wm: np.ndarray):
        """Inner join of stream rows with the latest inventory row per key, in arrival order."""
        if self._inventory is None or self._inventory.num_rows == 0:
            return work.slice(0, 0), ts[:0], wm[:0]
        left_keys = [col_name(a) for a, _ in self.plan.join.on]  # type: ignore[union-attr]
        right_keys = [col_name(b) for _, b in self.plan.join.on]  # type: ignore[union-attr]
        tagged = work.append_column("__seq", pa.array(np.arange(work.num_rows)))
        inv = self._inventory
        for lk, rk in zip(left_keys, right_keys, strict=True):
            if inv.column(rk).type != tagged.column(lk).type:
                inv = inv.set_column(inv.column_names.index(rk), rk, inv.column(rk).cast(tagged.column(lk).type))
        joined = tagged.join(inv, keys=left_keys, right_keys=right_keys, join_type="inner", coalesce_keys=False)
        joined = joined.sort_by("__seq")
        seq = joined.column("__seq").to_numpy()
        return joined.drop_columns(["__seq"]), ts[seq], wm[seq]

    def _push_interval(self, side: str, work: pa.Table, ts: np.ndarray) -> list[pa.Table]:
        """Stream ⋈ stream WITHIN: each pair is made when its later row arrives; state ends at the horizon."""
        prev_max = self._max_ts
        wm = windows.watermark_before(ts, prev_max, self.delay)
        late = ts < wm
        self.late_events += int(late.sum())
        if late.any():
            work, ts = work.filter(pa.array(~late)), ts[~late]
        self._max_ts = max(prev_max, int(ts.max()) if len(ts) else prev_max)
        other = "right" if side == "left" else "left"
        pairs = None
        if len(ts) and self._join_state[other]:
            buf = pa.concat_tables([c.rows for c in self._join_state[other]])
            pairs = self._pair(work, buf) if side == "left" else self._pair(buf, work)
        if len(ts):
            self._join_state[side].append(_Chunk(work, int(ts.min()), int(ts.max())))
        self._evict_join_state()
        out: list[pa.Table] = []
        if pairs is not None and pairs.num_rows:
            left_ts = _event_ms(pairs, self.plan.source)
            saved = self._max_ts
            out = self._ingest(pairs, left_ts, check_late=False)
            self._max_ts = saved
        elif self.kind:
            out = self._close(self.watermark)
        return out

    def _pair(self, left: pa.Table, right: pa.Table) -> pa.Table:
        join = self.plan.join
        lk = [col_name(a) for a, _ in join.on]  # type: ignore[union-attr]
        rk = [col_name(b) for _, b in join.on]  # type: ignore[union-attr]
        left = left.append_column("__ls", pa.array(np.arange(left.num_rows)))
        right = right.append_column("__rs", pa.array(np.arange(right.num_rows)))
        joined = left.join(right, keys=lk, right_keys=rk, join_type="inner", coalesce_keys=False)
        lt = _event_ms(joined, self.plan.source)
        rt = _event_ms(joined, join.right)  # type: ignore[union-attr]
        near = np.abs(lt - rt) <= self.within
        joined = joined.filter(pa.array(near))
        joined = joined.sort_by([("__ls", "ascending"), ("__rs", "ascending")])
        return joined.drop_columns(["__ls", "__rs"])

    def _evict_join_state(self) -> None:
        horizon = self._max_ts - self.delay - self.within  # no accepted row can match older ones
        for side, chunks in self._join_state.items():
            kept = []
            for c in chunks:
                if c.max_ts < horizon:
                    continue
                if c.min_ts < horizon:
                    src = self.plan.source if side == "left" else self.plan.join.right  # type: ignore[union-attr]
                    t = _event_ms(c.rows, src)
                    c = _Chunk(c.rows.filter(pa.array(t >= horizon)), horizon, c.max_ts)
                kept.append(c)
            self._join_state[side] = kept


# ----------------------------------------------------------------------------------------------
# helpers


def _conform(table: pa.Table, src: P.Source, needed: set[str] | None) -> pa.Table:
    """Check a batch against the catalog before it touches any state: every column the query reads must
    be there with the catalog's type (or one that casts to it); otherwise a clear error, nothing changed."""
    ent = CATALOG.get(src.entity)
    if ent is None:
        return table
    schema = ent.arrow_schema()
    names = [f.name for f in schema if needed is None or f"{src.alias}.{f.name}" in needed]
    for name in names:
        want = schema.field(name).type
        if name not in table.column_names:
            if needed is None and name != src.event_time and ent.field(name) is not None:
                continue  # a pass-through query shows what the batch has
            raise EvalError(f"batch of {ent.name} has no column {name!r} (the query reads it)")
        got = table.column(name).type
        if got == want or (pa.types.is_timestamp(got) and pa.types.is_timestamp(want)):
            continue
        try:
            table = table.set_column(table.column_names.index(name), name, table.column(name).cast(want))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            raise EvalError(f"column {name!r} of {ent.name} is {got}, expected {want}: {e}") from e
    return table


def _columns_read(plan: P.Plan) -> set[str]:
    """Working-table names of every field the plan reads (plus the sources' event times)."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, P.Col):
            found.add(col_name(node))
        elif isinstance(node, tuple | list):
            for item in node:
                walk(item)
        elif hasattr(node, "__dataclass_fields__") and not isinstance(node, P.Source):
            for name in node.__dataclass_fields__:
                walk(getattr(node, name))

    walk(plan)
    for src in (plan.source, plan.join.right if plan.join else None):
        if src is not None:
            found.add(f"{src.alias}.{src.event_time}")
            found.update(f"{src.alias}.{k}" for k in src.keys)
    return found


def _matches(src: P.Source, entity: str) -> bool:
    if entity in (src.entity, src.stream):
        return True
    ent = CATALOG.get(src.entity)
    return ent is not None and entity in ent.aliases and not CATALOG.get(entity)


def _rename(table: pa.Table, alias: str) -> pa.Table:
    return table.rename_columns([f"{alias}.{n}" for n in table.column_names])


def _event_ms(work: pa.Table, src: P.Source) -> np.ndarray:
    name = f"{src.alias}.{src.event_time}"
    if name not in work.column_names:
        raise EvalError(f"{src.entity}: batch has no event-time column {src.event_time!r}")
    col = work.column(name)
    if pa.types.is_timestamp(col.type) and col.type.unit != "ms":
        col = pc.cast(col, pa.timestamp("ms", tz=col.type.tz), safe=False)
    return pc.cast(col, pa.int64()).to_numpy()


def _key_name(col: P.Expr) -> str:
    return col_name(col) if isinstance(col, P.Col) else str(col)


def _as_array(value, n: int):
    if isinstance(value, pa.Scalar):
        return pa.array([value.as_py()] * n, value.type) if n else pa.array([], value.type)
    return value


def _castable(src: pa.DataType, dst: pa.DataType) -> bool:
    try:
        pa.array([], src).cast(dst)
        return True
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False


def _empty(src: P.Source) -> pa.Table:
    return CATALOG[src.entity].arrow_schema().empty_table()


def result_schema(plan: P.Plan) -> pa.Schema:
    """The Arrow schema of a plan's results."""
    if plan.projection:
        return pa.schema([(n, _expr_type(e)) for n, e in plan.projection])
    return pa.schema([(c.name, c.type.arrow()) for c in plan.columns])


def _expr_type(e: P.Expr) -> pa.DataType:
    t = getattr(e, "type", None)
    if t is not None:
        return t.arrow()
    return TS_TYPE if isinstance(e, P.WindowBound) else pa.null()


def concat_results(plan: P.Plan, tables: list[pa.Table]) -> pa.Table:
    """One table from result batches (an empty table of the plan's schema when there are none)."""
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return result_schema(plan).empty_table()
    return pa.concat_tables(tables, promote_options="permissive")


def now_utc() -> datetime:
    return datetime.now(UTC)
