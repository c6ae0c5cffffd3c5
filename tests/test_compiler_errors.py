"""Diagnostics and robustness: every malformed query raises SRQLError with a caret, never anything else."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from srql_helpers import mutate

import srql_compiler
from srql_compiler.keywords import KEYWORDS


def _error(query: str) -> srql_compiler.SRQLError:
    with pytest.raises(srql_compiler.SRQLError) as info:
        srql_compiler.compile(query)
    return info.value


def test_unknown_field_points_at_it_with_a_suggestion() -> None:
    err = _error("STREAM logs WHERE devcie = 'r1'")
    assert (err.line, err.column) == (1, 19)
    assert str(err) == (
        "line 1, column 19: unknown field 'devcie' in logs; did you mean 'device'?\n"
        "  STREAM logs WHERE devcie = 'r1'\n"
        "                    ^^^^^^"
    )


def test_unknown_entity_and_keyword_suggestions() -> None:
    assert _error("SHOW log").suggestion == "logs"
    assert _error("STREAM logs WHER severity < 3").suggestion == "WHERE"
    assert _error("shoe devices").suggestion == "SHOW"


def test_multiline_queries_report_the_right_line() -> None:
    err = _error("STREAM logs\nWHERE severity <= 3\nGROUP BY devcie WINDOW 1m")
    assert (err.line, err.column) == (3, 10)
    assert str(err).splitlines()[1:] == ["  GROUP BY devcie WINDOW 1m", "           ^^^^^^"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("STREAM netflow WHERE bytes CONTAINS 'x'", "CONTAINS needs a text field; 'bytes' is uint64"),
        ("SHOW logs WHERE severity = 'warnx'", "unknown severity 'warnx'"),
        ("SHOW netflow WHERE bytes = 'many'", "'bytes' is a number (uint64); cannot compare it with 'many'"),
        ("SHOW netflow WHERE application IN '10.0.0.0/8'", "tests address containment"),
        ("SHOW netflow WHERE src_ip IN '10.0.0.0/33'", "is not an IP prefix"),
        ("SHOW logs WHERE timestamp > 'yesterday-ish'", "is not a timestamp"),
        ("STREAM netflow JOIN logs ON src_ip = device", "needs WITHIN <duration>"),
        ("STREAM logs WHERE severity < 3 ORDER BY device", "ORDER BY on a STREAM needs a WINDOW"),
        ("STREAM logs GROUP BY device WINDOW 1m HAVING avg_vaule > 1", "unknown field 'vaule' in measure"),
        ("STREAM logs GROUP BY device WINDOW 1m HAVING severity > 1", "'severity' is neither grouped nor a measure"),
        ("STREAM logs WHERE count() > 3", "is a measure: use it in HAVING"),
        ("STREAM metrics WINDOW 1m HOP 5m", "step must not exceed its size"),
        ("SHOW logs WHERE severity", "WHERE needs a condition"),
        ("SHOW logs WHERE message = NULL", "use IS NULL"),
        ("STREAM logs EMIT ON CLOSE", "EMIT applies to aggregations"),
        ("SHOW logs LIMIT 0", "LIMIT must be a positive number"),
        ("SHOW logs FROM LAST 0 DAYS", "longer than zero"),
        ("STREAM devices JOIN logs ON device = device WITHIN 1m", "put it on the right of JOIN"),
        ("STREAM logs WINDOW 1 MONTH", "not a fixed duration"),
        ("SHOW logs WHERE frob(message) = 1", "unknown function 'frob'"),
        ("STREAM metrics JOIN logs ON device = device WITHIN 1m", "is a field of both joined entities"),
    ],
)
def test_semantic_errors(query: str, message: str) -> None:
    err = _error(query)
    assert message in err.message
    caret_line = str(err).splitlines()[-1]
    assert caret_line.strip().startswith("^")


def test_syntax_error_lists_what_was_expected() -> None:
    err = _error("SHOW logs WHERE severity <=")
    assert err.message.startswith("syntax error: the query ends too early; expected")
    err = _error("SHOW logs WHERE message = 'unterminated")
    assert err.message == "syntax error: unterminated string"


SAMPLE = [
    "STREAM logs WHERE message CONTAINS 'Failed password for root' GROUP BY device WINDOW 5m "
    "HAVING login_attempts >= 5",
    "SHOW netflow FROM LAST 2 HOURS WHERE src_ip IN '10.0.0.0/8' AND NOT (dst_port IN (22, 23) OR bytes < 10)",
    "STREAM device, avg_value FROM metrics WHERE metric = 'cpu' GROUP BY device WINDOW 10m HOP 1m DELAY 5s",
    "COUNT logs WHERE date(timestamp) = TODAY",
]
ALPHABET = st.sampled_from([*"abcdefghijklmnopqrstuvwxyz_0123456789 '\"`()*,.=<>!-+/%;\n\t", *KEYWORDS])


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80) | st.lists(ALPHABET, max_size=25).map(" ".join))
def test_garbage_only_raises_srql_error(text: str) -> None:
    try:
        srql_compiler.compile(text)
    except srql_compiler.SRQLError as err:
        assert err.line >= 1 and err.column >= 1
        assert "^" in str(err)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SAMPLE), st.data())
def test_mutated_queries_only_raise_srql_error(query: str, data: st.DataObject) -> None:
    mutated = mutate(query, data, "()',=<>*. 0a_")
    for target in ("proton", "clickhouse", "duckdb"):
        with contextlib.suppress(srql_compiler.SRQLError):
            srql_compiler.compile(mutated, target)


@pytest.mark.parametrize("depth", [50, 3000, 30000])
def test_deep_nesting_compiles_or_is_an_error_not_a_crash(depth: int) -> None:
    deep = "SHOW logs WHERE " + "(" * depth + "severity = 1" + ")" * depth
    try:
        assert "severity = 1" in srql_compiler.compile(deep).sql
    except srql_compiler.SRQLError as err:
        assert "nests too deeply" in err.message


def test_non_string_input() -> None:
    with pytest.raises(srql_compiler.SRQLError):
        srql_compiler.compile(42)  # type: ignore[arg-type]


def test_a_target_that_cannot_run_the_query_says_so_under_the_query() -> None:
    query = "STREAM netflow JOIN logs ON src_ip = device WITHIN 5m GROUP BY src_ip WINDOW 5m"
    with pytest.raises(srql_compiler.SRQLError) as info:
        srql_compiler.compile(query, "clickhouse")
    lines = str(info.value).splitlines()
    assert "JOIN over history" in lines[0] and "clickhouse" in lines[0]
    assert lines[1] == "  " + query
