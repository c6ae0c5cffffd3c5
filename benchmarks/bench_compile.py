"""SRQL compile latency: median and p99 per query, against sqlglot parsing and re-generating the same SQL.

The baseline (sqlglot's parse → generate of the Proton SQL we emit) is the cost of merely handling the
output once with a well-known library; the ratio says how close the whole SRQL pipeline (lark parse,
bind against the catalog, plan, build a sqlglot tree, generate) gets to it.
"""

from __future__ import annotations

import statistics
import time

import sqlglot

import srql_compiler
from benchmarks import Result
from srql_compiler.dialects import proton  # noqa: F401 - registers the dialect
from srql_compiler.examples import SRQL_MD_EXAMPLES

SRQL_MD = list(SRQL_MD_EXAMPLES)
MIXED = [
    ("clickhouse", "SHOW devices WHERE ip = '192.168.1.1'"),
    ("clickhouse", "SHOW logs FROM YESTERDAY WHERE service = 'serviceradar-sync' AND severity = 'info'"),
    ("duckdb", "SHOW metrics GROUP BY device, metric WINDOW 1h HAVING p95_value > 10 ORDER BY p95_value DESC LIMIT 3"),
    ("clickhouse", "FIND netflow WHERE src_ip IN '10.0.0.0/8' AND NOT dst_port IN (22, 23) OR protocol = 17"),
    ("proton", "STREAM metrics WHERE metric = 'cpu' GROUP BY device WINDOW 10m HOP 1m DELAY 10s HAVING p99_value > 90"),
    ("duckdb", "COUNT logs WHERE date(timestamp) = TODAY"),
]


def _timings(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _p99(xs: list[float]) -> float:
    return sorted(xs)[min(len(xs) - 1, int(len(xs) * 0.99))]


def run(quick: bool = False) -> list[Result]:
    n = 50 if quick else 500
    cases = [("proton", q) for q in SRQL_MD] + MIXED
    ours_all: list[float] = []
    base_all: list[float] = []
    results: list[Result] = []
    for target, q in cases:
        srql_compiler.compile(q, target)  # warm caches (grammar, dialect tables)
        sql = srql_compiler.compile(q, target).sql
        read = "proton" if target == "proton" else target
        ours = _timings(lambda q=q, t=target: srql_compiler.compile(q, t), n)
        base = _timings(lambda s=sql, r=read: sqlglot.parse_one(s, read=r).sql(dialect=r), n)
        ours_all += ours
        base_all += base
        results.append(Result(
            suite="srql compile", case=f"{target}: {q[:48]}…", unit="ms (median)", ours=statistics.median(ours) * 1e3,
            baseline_name="sqlglot parse+generate of the output", baseline=statistics.median(base) * 1e3,
            higher_is_better=False, target="< 1 ms", note=f"p99 {_p99(ours) * 1e3:.2f} ms",
        ))
    results.append(Result(
        suite="srql compile", case=f"all {len(cases)} queries", unit="ms (median)",
        ours=statistics.median(ours_all) * 1e3, baseline_name="sqlglot parse+generate of the output",
        baseline=statistics.median(base_all) * 1e3, higher_is_better=False, target="< 1 ms",
        note=f"p99 {_p99(ours_all) * 1e3:.2f} ms",
    ))
    return results
