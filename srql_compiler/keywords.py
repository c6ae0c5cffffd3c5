"""SRQL's reserved words, shared by the grammar's diagnostics, the REPL's completion and highlighting."""

STATEMENTS = ("SHOW", "FIND", "COUNT", "STREAM", "SELECT")
CLAUSES = (
    "FROM", "WHERE", "GROUP", "BY", "WINDOW", "HAVING", "ORDER", "LIMIT", "LATEST", "JOIN", "ON", "WITHIN",
    "AS", "EMIT", "SINCE", "DISTINCT",
)
OPERATORS = ("AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "CONTAINS", "BETWEEN", "ASC", "DESC")
WINDOW_WORDS = ("TUMBLE", "HOP", "SESSION", "DELAY", "CLOSE", "PERIODIC", "UPDATE")
TIME_WORDS = (
    "TODAY", "YESTERDAY", "LAST", "NOW", "INTERVAL", "TRUE", "FALSE",
    "SECOND", "SECONDS", "MINUTE", "MINUTES", "HOUR", "HOURS", "DAY", "DAYS", "WEEK", "WEEKS", "MONTH", "MONTHS",
)
KEYWORDS = STATEMENTS + CLAUSES + OPERATORS + WINDOW_WORDS + TIME_WORDS

# Aggregate functions SRQL knows (measures), and the prefixes of <agg>_<field> measure names.
AGGREGATES = ("count", "count_distinct", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99", "first", "last")
SCALAR_FUNCTIONS = ("date", "lower", "upper", "length", "now")
