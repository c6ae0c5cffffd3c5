"""SRQL: parse, bind against the catalog, plan, and emit Proton / ClickHouse / DuckDB SQL.

    >>> import srql_compiler
    >>> srql_compiler.compile("STREAM logs WHERE severity <= 3 GROUP BY device WINDOW 1m").sql
    'SELECT window_start, window_end, device, count(*) AS count FROM tumble(syslog_stream, timestamp, 1m) ...'
"""

from srql_compiler.api import TARGETS, Compiled, compile
from srql_compiler.binder import bind
from srql_compiler.errors import SRQLError
from srql_compiler.parser import parse

__all__ = ["TARGETS", "Compiled", "SRQLError", "bind", "compile", "parse"]
