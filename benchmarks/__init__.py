"""Side-by-side benchmarks. Each ``bench_*.py`` module exposes ``run(quick: bool) -> list[Result]``.

Every result compares our code against a named baseline measured in the same run, so the README
reports ratios that hold across machines, with absolute rates beside them for context.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Result:
    """One benchmark line: our rate against the baseline's rate on the same input, in the same run."""

    suite: str
    case: str
    unit: str  # e.g. "events/s", "queries/s", "ms (median)"
    ours: float
    baseline_name: str = ""
    baseline: float | None = None
    target: str = ""
    note: str = ""
    higher_is_better: bool = True

    @property
    def ratio(self) -> float | None:
        """How many times better than the baseline (>1 means we win)."""
        if not self.baseline:
            return None
        return self.ours / self.baseline if self.higher_is_better else self.baseline / self.ours


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Seconds taken by the fastest of ``repeat`` calls (the least disturbed by the other core's load)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
