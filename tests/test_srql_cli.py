"""The srql command line, run as a real subprocess (the installed console script)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRQL = [str(Path(sys.executable).with_name("srql"))]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SRQL, *args], capture_output=True, text=True, timeout=60)


def test_compile_prints_sql() -> None:
    r = run("compile", "STREAM logs WHERE message CONTAINS 'Failed password for root' GROUP BY device WINDOW 5m "
                       "HAVING login_attempts >= 5")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "SELECT window_start, window_end, device, count(*) AS login_attempts FROM tumble(syslog_stream, timestamp, 5m) "
        "WHERE message LIKE '%Failed password for root%' GROUP BY window_start, window_end, device "
        "HAVING login_attempts >= 5;\n"
    )


def test_compile_error_goes_to_stderr_with_a_caret() -> None:
    r = run("compile", "STREAM logs WHERE mesage CONTAINS 'x'")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == (
        "error: line 1, column 19: unknown field 'mesage' in logs; did you mean 'message'?\n"
        "  STREAM logs WHERE mesage CONTAINS 'x'\n"
        "                    ^^^^^^\n"
    )


def test_compile_materialized_view_and_warnings() -> None:
    r = run("compile", "--proton-version", "1.6", "--mv", "lat", "--into", "alerts",
            "STREAM devices WHERE metric = 'latency' GROUP BY device WINDOW 1m DELAY 5s HAVING avg_value > 100")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("CREATE EXTERNAL STREAM IF NOT EXISTS alerts SETTINGS type = 'timeplus'")
    assert "CREATE MATERIALIZED VIEW IF NOT EXISTS lat INTO alerts AS SELECT" in r.stdout
    assert "EMIT AFTER WATERMARK WITH DELAY 5s" in r.stdout
    assert r.stderr.startswith("warning: 'devices' resolved to entity 'metrics'")


def test_ddl_targets() -> None:
    r = run("ddl", "--target", "proton", "inventory")
    assert r.returncode == 0
    assert "PRIMARY KEY (device)" in r.stdout and "mode = 'versioned_kv'" in r.stdout


def test_archive_subcommand_reaches_the_history_store(tmp_path) -> None:
    from srql_compiler.cli import archive_argv

    assert archive_argv(["--days", "3", "--data-dir", "D"]) == ["--data-dir", "D", "archive", "--days", "3"]
    assert archive_argv(["show", "SHOW logs", "--archive-dir=A"]) == ["--archive-dir=A", "show", "SHOW logs"]
    r = run("archive", "--days", "0", "--data-dir", str(tmp_path / "chdb"), "--archive-dir", str(tmp_path / "a"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "nothing older than 0 days"
