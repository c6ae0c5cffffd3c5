"""The srql REPL, driven for real: keystrokes through prompt_toolkit's pipe input, output from rich.

Every REPL test runs :func:`srql_compiler.repl.main` in a prompt_toolkit app session whose input is a
pipe we type into and whose output is a DummyOutput (the prompt's screen drawing is not asserted; what
the REPL prints through rich goes to stdout and is). Expected SQL comes from ``srql_compiler.compile``
called directly, and is compared whole.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prompt_toolkit.application import create_app_session
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

import srql_compiler
from srql_compiler import plan as p
from srql_compiler.errors import SRQLError
from srql_compiler.repl import Repl, main, split_statements
from srql_compiler.repl_completer import SRQLCompleter
from srql_compiler.repl_lexer import SRQLLexer, statement_is_complete, tokenize
from srql_compiler.repl_render import arrow_table, plan_tree
from srql_compiler.repl_runner import CompileOnlyRunner, EngineUnavailable, QueryRunner
from streams.catalog import CATALOG
from streams.simulate import Simulator
from streams.sinks.clickhouse import ClickHouseSink

BANNER = "srql — SRQL to SQL. \\help for commands, Ctrl-D to leave.\n"
COMPILE_ONLY_NOTE = "(execution is off (--compile-only); showing the compiled SQL)\n"
ENTER = "\r"  # what a terminal sends for the Enter key


@pytest.fixture
def repl(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """``repl(keys, *argv) -> stdout``: run the REPL on typed keys until they run out (then Ctrl-D)."""
    monkeypatch.setenv("SRQL_HISTORY", str(tmp_path / "history"))
    monkeypatch.setenv("COLUMNS", "120")  # rich's width when stdout is not a terminal

    def run(keys: str, *argv: str) -> str:
        capsys.readouterr()
        with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
            pipe.send_text(keys + "\x04")  # Ctrl-D on the empty prompt ends the session
            assert main(["--compile-only", *argv]) == 0
        return capsys.readouterr().out

    return run


def sql_block(query: str, target: str = "proton", version: str = "3") -> str:
    return srql_compiler.compile(query, target, proton_version=version, pretty=True).sql.rstrip() + "\n"


# -- queries through the prompt --------------------------------------------------------------------

SYSLOG_QUERY = "STREAM logs WHERE message CONTAINS 'Failed password for root' GROUP BY device WINDOW 5m " \
    "HAVING login_attempts >= 5"
HISTORY_QUERY = "SHOW logs WHERE severity <= 3 ORDER BY timestamp DESC LIMIT 10"


def test_a_query_prints_its_compiled_sql(repl) -> None:
    out = repl(SYSLOG_QUERY + ENTER)
    assert out == BANNER + sql_block(SYSLOG_QUERY) + COMPILE_ONLY_NOTE


def test_a_bad_query_prints_the_caret_diagnostic(repl) -> None:
    bad = "STREAM logs WHERE devcie = 'r1'"
    with pytest.raises(SRQLError) as err:
        srql_compiler.compile(bad)
    out = repl(bad + ENTER)
    assert out == BANNER + str(err.value) + "\n"
    assert "^" in out and "devcie" in out


def test_target_switches_the_sql_dialect(repl) -> None:
    proton, clickhouse = sql_block(HISTORY_QUERY), sql_block(HISTORY_QUERY, "clickhouse")
    assert proton != clickhouse  # otherwise this test could not tell the targets apart
    out = repl(f"{HISTORY_QUERY}{ENTER}\\target clickhouse{ENTER}{HISTORY_QUERY}{ENTER}")
    assert out == BANNER + proton + COMPILE_ONLY_NOTE + "target: clickhouse\n" + clickhouse


def test_target_on_the_command_line_and_duckdb(repl) -> None:
    out = repl(HISTORY_QUERY + ENTER, "--target", "duckdb")
    assert out == BANNER + sql_block(HISTORY_QUERY, "duckdb") + COMPILE_ONLY_NOTE


def test_version_switches_the_emit_spelling(repl) -> None:
    query = "STREAM metrics WHERE metric = 'latency' GROUP BY device WINDOW 1m DELAY 10s HAVING avg_value > 1"
    v3, v16 = sql_block(query), sql_block(query, version="1.6")
    assert v3 != v16
    out = repl(f"\\version 1.6{ENTER}{query}{ENTER}")
    assert out == BANNER + "Proton version: 1.6\n" + v16 + COMPILE_ONLY_NOTE


def test_an_unknown_target_is_refused_and_the_target_is_kept(repl) -> None:
    out = repl(f"\\target oracle{ENTER}{HISTORY_QUERY}{ENTER}")
    assert "unknown target 'oracle': choose one of proton, clickhouse, duckdb" in out
    assert out.endswith(sql_block(HISTORY_QUERY) + COMPILE_ONLY_NOTE)


def test_an_unfinished_line_continues_and_a_blank_line_runs_it(repl) -> None:
    typed = f"STREAM logs WHERE{ENTER}severity <= 3{ENTER}{ENTER}"
    out = repl(typed)
    assert out == BANNER + sql_block("STREAM logs WHERE\nseverity <= 3") + COMPILE_ONLY_NOTE


def test_a_semicolon_runs_a_multi_line_statement_and_separates_statements(repl) -> None:
    out = repl(f"SHOW logs WHERE{ENTER}severity <= 3; COUNT logs;{ENTER}")
    expected = sql_block("SHOW logs WHERE\nseverity <= 3") + COMPILE_ONLY_NOTE + sql_block("COUNT logs")
    assert out == BANNER + expected


def test_ctrl_c_clears_the_line_and_the_session_goes_on(repl) -> None:
    out = repl(f"STREAM lo\x03{HISTORY_QUERY}{ENTER}")
    assert out == BANNER + sql_block(HISTORY_QUERY) + COMPILE_ONLY_NOTE


def test_sql_toggle_shows_the_sql_of_the_last_query(repl) -> None:
    out = repl(f"{HISTORY_QUERY}{ENTER}\\sql{ENTER}\\sql{ENTER}")
    sql = sql_block(HISTORY_QUERY)
    assert out == BANNER + sql + COMPILE_ONLY_NOTE + "showing compiled SQL: on\n" + sql + \
        "showing compiled SQL: off\n"


def test_sql_with_a_query_shows_sql_and_columns_without_running(repl) -> None:
    out = repl(f"\\sql {SYSLOG_QUERY}{ENTER}")
    assert out.startswith(BANNER + sql_block(SYSLOG_QUERY))
    for name, type_ in srql_compiler.compile(SYSLOG_QUERY).columns:
        assert name in out and str(type_) in out
    assert "execution is off" not in out


def test_explain_prints_the_plan_tree_of_the_last_query(repl) -> None:
    expected = io.StringIO()
    Console(file=expected, width=120).print(plan_tree(srql_compiler.bind(SYSLOG_QUERY)))
    out = repl(f"{SYSLOG_QUERY}{ENTER}\\explain{ENTER}")
    assert out.endswith(expected.getvalue())
    assert "window: tumble 5m" in out and "login_attempts" in out


def test_explain_with_nothing_to_explain_says_so(repl) -> None:
    assert "nothing to explain yet" in repl(f"\\explain{ENTER}")


def test_unknown_meta_command_suggests_the_nearest(repl) -> None:
    out = repl(f"\\tagret proton{ENTER}")
    assert "unknown command \\tagret; did you mean \\target?" in out


def test_describe_lists_an_entitys_fields(repl) -> None:
    out = repl(f"\\describe syslog{ENTER}")
    for field in ("timestamp (event time)", "message", "severity", "app_name"):
        assert field in out


def test_help_lists_every_meta_command(repl) -> None:
    out = repl(f"\\help{ENTER}")
    for command in ("\\target", "\\version", "\\sql", "\\explain", "\\describe", "\\help", "\\quit"):
        assert command in out


def test_quit_ends_the_session_before_later_input(repl) -> None:
    out = repl(f"\\quit{ENTER}{HISTORY_QUERY}{ENTER}")
    assert out == BANNER


def test_history_file_is_written(repl, tmp_path: Path) -> None:
    repl(f"{HISTORY_QUERY}{ENTER}STREAM logs WHERE{ENTER}severity <= 3;{ENTER}")
    entries = [line[1:] for line in (tmp_path / "history").read_text().splitlines() if line.startswith("+")]
    assert entries == [HISTORY_QUERY, "STREAM logs WHERE", "severity <= 3;"]


def test_history_path_flag_beats_the_environment(repl, tmp_path: Path) -> None:
    explicit = tmp_path / "sub" / "h2"
    repl(f"COUNT logs{ENTER}", "--history", str(explicit))
    assert "+COUNT logs" in explicit.read_text()
    assert not (tmp_path / "history").exists()


# -- the Enter rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "runs"),
    [
        ("SHOW logs", True),
        ("\\target clickhouse", True),
        ("STREAM logs WHERE", False),
        ("STREAM logs WHERE severity <=", False),
        ("STREAM logs GROUP BY device,", False),
        ("SHOW logs WHERE severity IN (1, 2", False),
        ("SHOW logs WHERE message = 'it''", False),
        ("SHOW logs WHERE message = 'it'''", True),
        ("STREAM logs -- a comment", True),
        ("STREAM logs\nWHERE severity <= 3", False),
        ("STREAM logs\nWHERE severity <= 3\n", True),
        ("STREAM logs\nWHERE severity <= 3;", True),
        ("SHOW logs WHERE message = 'a;b'", True),
    ],
)
def test_enter_rule(text: str, runs: bool) -> None:
    assert statement_is_complete(text) is runs


def test_statements_split_at_semicolons_outside_strings() -> None:
    assert split_statements("SHOW logs WHERE message = 'a;b'; COUNT logs;\n") == [
        "SHOW logs WHERE message = 'a;b'",
        "COUNT logs",
    ]


# -- completion --------------------------------------------------------------------------------------


def completions(text: str) -> list[str]:
    event = CompleteEvent(completion_requested=True)
    return [c.text for c in SRQLCompleter().get_completions(Document(text), event)]


def test_completion_of_statements_entities_and_fields() -> None:
    assert completions("STR") == ["STREAM"]
    assert completions("sh") == ["show"]
    assert completions("STREAM sys") == ["syslog"]
    assert completions("STREAM logs WHERE sev") == ["severity", "severity_text"]
    assert completions("STREAM logs AS l WHERE l.mes") == ["message"]


def test_completion_of_fields_follows_the_entity_named() -> None:
    assert "bytes" in completions("STREAM netflow WHERE ")
    assert "bytes" not in completions("STREAM logs WHERE ")
    assert "message" in completions("STREAM netflow JOIN logs ON src_ip = ")


def test_completion_of_measure_names() -> None:
    assert completions("STREAM netflow GROUP BY application WINDOW 5m HAVING sum_b") == ["sum_bytes"]
    assert "avg_value" in completions("STREAM metrics GROUP BY device WINDOW 1m HAVING av")
    numeric_only = completions("STREAM metrics GROUP BY device WINDOW 1m HAVING avg_")
    assert "avg_value" in numeric_only and "avg_device" not in numeric_only
    assert "total_bytes" in completions("STREAM netflow GROUP BY application WINDOW 5m HAVING tot")


def test_completion_of_time_ranges_and_meta_commands() -> None:
    assert completions("SHOW logs FROM ") == ["TODAY", "YESTERDAY", "LAST", "BETWEEN"]
    assert completions("\\ta") == ["\\target"]
    assert completions("\\target cl") == ["clickhouse"]
    assert completions("\\version ") == ["1.6", "3"]


def test_no_completion_inside_a_string() -> None:
    assert completions("STREAM logs WHERE message = 'sev") == []


# -- highlighting ------------------------------------------------------------------------------------


def test_highlighting_token_classes() -> None:
    line = "STREAM logs WHERE message CONTAINS 'it''s' AND count(*) >= 5 WINDOW 5m -- note"
    get_line = SRQLLexer().lex_document(Document(line))
    styled = [(style, text) for style, text in get_line(0) if text.strip()]
    assert styled == [
        ("class:srql.keyword", "STREAM"),
        ("class:srql.entity", "logs"),
        ("class:srql.keyword", "WHERE"),
        ("class:srql.identifier", "message"),
        ("class:srql.keyword", "CONTAINS"),
        ("class:srql.string", "'it''s'"),
        ("class:srql.keyword", "AND"),
        ("class:srql.function", "count"),
        ("class:srql.punctuation", "("),
        ("class:srql.operator", "*"),
        ("class:srql.punctuation", ")"),
        ("class:srql.operator", ">="),
        ("class:srql.number", "5"),
        ("class:srql.keyword", "WINDOW"),
        ("class:srql.duration", "5m"),
        ("class:srql.comment", "-- note"),
    ]


def test_highlighting_a_meta_command() -> None:
    expected = [("meta", "\\target"), ("whitespace", " "), ("identifier", "clickhouse")]
    assert tokenize("\\target clickhouse") == expected


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("SHOWstream logs WHERE=<>!'\"`();,.-%5m\n\\ _a"), max_size=60))
def test_lexer_and_enter_rule_take_any_text(text: str) -> None:
    assert "".join(t for _, t in tokenize(text)) == text
    statement_is_complete(text)  # never raises
    completions(text)


# -- rendering and the runner ------------------------------------------------------------------------


def test_result_table_rendering() -> None:
    table = pa.table({"device": ["r1", "r2", None], "attempts": [7, 12, 3]})
    buf = io.StringIO()
    Console(file=buf, width=80).print(arrow_table(table, max_rows=2))
    out = buf.getvalue()
    assert "device" in out and "attempts" in out and "r1" in out and "12" in out
    assert "NULL" not in out  # third row cut
    assert "2 of 3 rows" in out


def test_runner_explains_a_missing_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("srql_compiler.repl_runner.LIVE_MODULE", "streams.no_such_engine_module")
    with pytest.raises(EngineUnavailable, match=r"the embedded engine is not available: streams\.no_such"):
        QueryRunner(Console(file=io.StringIO())).run_stream("STREAM logs")


def test_plan_tree_shows_every_clause() -> None:
    """A plan built by hand from the plan contract (no compiler involved), rendered whole."""
    logs = CATALOG["logs"]
    device = p.Col("device", "logs", logs.field("device").type)
    message = p.Col("message", "logs", logs.field("message").type)
    severity = p.Col("severity", "logs", logs.field("severity").type)
    count_type = CATALOG["netflow"].field("bytes").type
    plan = p.Plan(
        statement="stream",
        source=p.Source("logs", "syslog_stream", "logs", "timestamp"),
        columns=(
            p.OutputColumn("window_start", logs.field("timestamp").type),
            p.OutputColumn("device", device.type),
            p.OutputColumn("attempts", count_type),
        ),
        where=p.And((p.Contains(message, "it's"), p.Not(p.InList(severity, (p.Lit(6), p.Lit(7)))))),
        group_by=(device,),
        window=p.Window("hop", timedelta(minutes=5), step=timedelta(minutes=1), delay=timedelta(seconds=10)),
        aggregates=(p.Aggregate("attempts", "count", None, count_type),),
        having=p.Cmp(">=", p.MeasureRef("attempts", count_type), p.Lit(5)),
        order_by=(p.OrderKey(p.MeasureRef("attempts", count_type), desc=True),),
        limit=3,
        emit=p.Emit("on_close"),
        warnings=("logs resolved to syslog",),
    )
    buf = io.StringIO()
    Console(file=buf, width=120).print(plan_tree(plan))
    assert buf.getvalue() == (
        "STREAM\n"
        "├── source: logs AS logs → stream syslog_stream (events; event time timestamp)\n"
        "├── where: (logs.message CONTAINS 'it''s' AND NOT logs.severity IN (6, 7))\n"
        "├── window: hop 5m every 1m, delay 10s\n"
        "├── group by: logs.device\n"
        "├── aggregates\n"
        "│   └── attempts = count(*) : uint64\n"
        "├── having: attempts >= 5\n"
        "├── order by: attempts DESC\n"
        "├── limit: 3 per window (top-n)\n"
        "├── emit: on close\n"
        "├── output columns\n"
        "│   ├── window_start : timestamp\n"
        "│   ├── device : string\n"
        "│   └── attempts : uint64\n"
        "└── warning: logs resolved to syslog\n"
    )


_PIECES = [*"SHOWstrEAM logs WHERE=<>!'();,.-5m\n\\ _aGROUPBY", "STREAM ", "SHOW ", "\\target ", "\\explain ",
           "\\sql ", "\\describe ", "WINDOW ", "devices ", "'x'", "severity ", "GROUP BY ", "HAVING "]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=30).map("".join))
def test_the_repl_answers_any_input_without_raising(text: str) -> None:
    """Garbage in: the REPL prints a diagnostic or a note, never raises (and never quits unless asked)."""
    console = Console(file=io.StringIO(), width=100)
    keep_going = Repl(console, CompileOnlyRunner(console)).execute(text)
    assert keep_going or text.strip().split()[0] in ("\\quit", "\\q", "\\exit")
    assert "internal compiler error" not in console.file.getvalue()


# -- execution: the real embedded engine and the real history store ----------------------------------

BRUTE_FORCE = (
    "STREAM logs WHERE message CONTAINS 'Failed password' GROUP BY device WINDOW 1m HAVING login_attempts >= 5"
)


def test_stream_runs_live_on_the_embedded_engine() -> None:
    """STREAM goes to streams.live.run_live: simulators → engine → a results table (3 steps of 1 minute)."""
    console = Console(file=io.StringIO(), width=120)
    live_options = {"devices": 5, "step_ms": 60_000, "speed": 1e9, "max_steps": 3}
    Repl(console, QueryRunner(console, live_options=live_options)).execute(BRUTE_FORCE)
    out = console.file.getvalue()
    assert "window_start" in out and "login_attempts" in out
    assert re.search(r"\b[1-9]\d* result rows · 0 late events", out), out
    assert out.rstrip().endswith("stopped")
    assert "SELECT" not in out  # it ran: no SQL shown instead


def test_show_runs_over_the_chdb_history(tmp_path: Path) -> None:
    """SHOW/COUNT go to the ClickHouse history (real chdb, in a child process: one chdb directory per process)."""
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.run([sys.executable, __file__, str(tmp_path)], capture_output=True, text=True, timeout=240,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    out = result["out"]
    count = pa.table({"count": pa.array([result["count"]], pa.uint64())})
    groups = pa.table({"device": [d for d, _ in result["groups"]],
                       "count": pa.array([n for _, n in result["groups"]], pa.uint64())})
    for table in (count, groups):
        rendered = io.StringIO()
        Console(file=rendered, width=120).print(arrow_table(table))
        assert rendered.getvalue() in out
    assert len(result["groups"]) > 1 and "SELECT" not in out


def _history_scenario(root: Path) -> dict:
    """In a child process: simulated syslog into chdb, then the REPL (``--data-dir``) queries it."""
    # Recent event times: the history tables have a 90-day TTL, so older simulated rows would expire.
    sim = Simulator(devices=4, seed=1, start_ms=int(time.time() * 1000) - 180_000)
    logs = sim.syslog(sim.now_ms, sim.now_ms + 120_000)
    ClickHouseSink(path=root / "chdb").insert("logs", logs)
    warn = logs.filter(pc.less_equal(logs["severity"], 4))
    groups = warn.group_by("device").aggregate([("device", "count")]).sort_by("device")
    keys = f"COUNT logs{ENTER}SHOW logs WHERE severity <= 4 GROUP BY device ORDER BY device{ENTER}\x04"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), create_pipe_input() as pipe, \
            create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text(keys)
        main(["--data-dir", str(root), "--history", str(root / "history")])
    return {"out": out.getvalue(), "count": logs.num_rows,
            "groups": list(zip(groups["device"].to_pylist(), groups["device_count"].to_pylist(), strict=True))}


if __name__ == "__main__":
    print(json.dumps(_history_scenario(Path(sys.argv[1]))))


def test_the_diagnostic_is_red_on_a_colour_terminal() -> None:
    console = Console(file=io.StringIO(), width=120, force_terminal=True, color_system="standard")
    Repl(console, CompileOnlyRunner(console)).execute("STREAM logs WHERE devcie = 'r1'")
    out = console.file.getvalue()
    assert "\x1b[1;31mline 1, column 19: unknown field 'devcie'" in out  # bold red
