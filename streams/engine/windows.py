"""Window assignment, watermark and lateness, vectorised over int64 event times in milliseconds.

Rules (the same as Proton's, stated precisely so the differential tests can recompute them in SQL):

- the watermark is the largest event time seen so far minus ``DELAY``; it moves per event, in arrival
  order (computed with a running maximum, so the result never depends on how input is cut into batches);
- tumble windows are ``[k*size, (k+1)*size)`` from the Unix epoch; hop windows are ``[k*step, k*step+size)``;
  a window is emitted once the watermark reaches its end (``window_end <= watermark``);
- tumble/hop: an event is dropped from a window that was already emitted when it arrived, and counted
  as late once per event when it missed at least one of its windows (a hop event still counts in its
  windows that are open);
- session windows (per group): a new session starts when an event comes ``gap`` or more after the
  previous one, and at every multiple of the maximum length (5 x gap, Proton's default) since the
  epoch; a session ``[first, last]`` is emitted once the watermark reaches ``last + gap`` or the end of
  its maximum-length slot; an event older than the watermark when it arrives is late (it could
  otherwise extend an emitted session).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

NEG_INF = np.iinfo(np.int64).min // 4
POS_INF = np.iinfo(np.int64).max // 4


def ms(d: timedelta | None) -> int:
    """A duration in whole milliseconds (the event-time resolution)."""
    return 0 if d is None else int(d / timedelta(milliseconds=1))


def watermark_before(ts: np.ndarray, prev_max: int, delay: int) -> np.ndarray:
    """For each event, the watermark when it arrived (max of all earlier event times, minus ``delay``)."""
    if len(ts) == 0:
        return np.zeros(0, np.int64)
    before = np.empty(len(ts), np.int64)
    before[0] = prev_max
    if len(ts) > 1:
        np.maximum.accumulate(ts[:-1], out=before[1:])
        np.maximum(before[1:], prev_max, out=before[1:])
    return before - delay


def first_window_end(ts: np.ndarray, size: int, step: int) -> np.ndarray:
    """End of the earliest window ``[k*step, k*step+size)`` containing each time."""
    return ((ts - size) // step + 1) * step + size


def last_window_end(ts: np.ndarray, size: int, step: int) -> np.ndarray:
    """End of the latest window containing each time."""
    return (ts // step) * step + size


def expand(ts: np.ndarray, size: int, step: int, after: int, upto: int, wm: np.ndarray | None):
    """(row index, window start) pairs of windows ending in ``(after, upto]`` that accepted the row.

    ``wm`` is each row's watermark on arrival (None: every window accepted it).
    """
    last_start = (ts // step) * step
    rows, starts = [], []
    for j in range(-(-size // step)):  # windows per event: a small constant, not a loop over events
        start = last_start - j * step
        end = start + size
        ok = (end > ts) & (end > after) & (end <= upto)
        if wm is not None:
            ok &= end > wm
        idx = np.flatnonzero(ok)
        rows.append(idx)
        starts.append(start[idx])
    return np.concatenate(rows), np.concatenate(starts)


def session_max_length(gap: int) -> int:
    """Longest session: Proton's default ``max_length`` of five idle timeouts."""
    return 5 * gap


def sessions(gid: np.ndarray, ts: np.ndarray, gap: int):
    """Split each group's events into sessions.

    A session also ends at every multiple of :func:`session_max_length` since the epoch, so a group
    that never goes quiet still emits (and frees) its sessions.

    Returns (order, session id per sorted row, session first time, session last time), rows sorted
    by (group, time) in ``order``.
    """
    order = np.lexsort((ts, gid))
    g, t = gid[order], ts[order]
    max_len = session_max_length(gap)
    new = np.ones(len(g), bool)
    if len(g) > 1:
        new[1:] = (g[1:] != g[:-1]) | (t[1:] - t[:-1] >= gap) | (t[1:] // max_len != t[:-1] // max_len)
    sid = np.cumsum(new) - 1
    n = int(sid[-1]) + 1 if len(sid) else 0
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:] - 1, len(g) - 1] if n else starts
    return order, sid, t[starts], t[ends]
