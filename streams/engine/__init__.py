"""The embedded streaming engine: SRQL plans over Arrow batches with Proton's window semantics.

- :class:`QueryRunner` runs one plan (push batches, advance time on idle, finish);
- :func:`replay` runs a query over bounded data (notebooks, tests) and returns an Arrow table;
- :class:`Engine` runs standing queries live, delivering results to callbacks and async iterators.
"""

from streams.engine.query import QueryRunner, concat_results, result_schema
from streams.engine.replay import ReplayResult, replay, run

__all__ = ["Engine", "QueryRunner", "ReplayResult", "StandingQuery", "concat_results", "replay",
           "result_schema", "run"]


def __getattr__(name: str):
    if name in ("Engine", "StandingQuery"):
        from streams.engine import live

        return getattr(live, name)
    raise AttributeError(name)
