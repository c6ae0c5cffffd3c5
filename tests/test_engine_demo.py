"""The main job end to end: simulators → engine → chdb → SHOW over history (in a child process: chdb
allows one data directory per process)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_demo_runs_the_four_use_cases_and_stores_results(tmp_path: Path):
    code = "import sys; from streams.demo import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, "--no-live", "--minutes", "10", "--devices", "20", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=240, env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for title in ("gNMI: latency above 100 ms", "NetFlow: top applications", "SSH brute force", "flapping prefixes"):
        assert title in out, out
    # the injected incidents are found: the brute-forced router and the flapping prefix
    assert "rtr-sfo2-001" in out and "198.51.100.0/24" in out, out
    assert "results_ssh_brute_force" in out and "History: SHOW logs" in out
    assert (tmp_path / "chdb").is_dir()
    assert not re.search(r"(?<![\d,])0 result rows", out), out  # every use case found something


def _stored_counts(out: str) -> dict[str, int]:
    """The demo's "Stored in ClickHouse" table: rows per table."""
    return {m[1]: int(m[2].replace(",", "")) for m in re.finditer(r"│ (\w+)\s+│\s+([\d,]+) │", out)}


def test_a_second_run_replaces_its_time_range_instead_of_storing_it_twice(tmp_path: Path):
    code = "import sys; from streams.demo import main; sys.exit(main(sys.argv[1:]))"
    args = [sys.executable, "-c", code, "--no-live", "--minutes", "5", "--devices", "10", "--data-dir", str(tmp_path)]
    env = {"COLUMNS": "160", "PATH": "/usr/bin:/bin"}
    runs = [subprocess.run(args, capture_output=True, text=True, timeout=240, env=env) for _ in range(2)]
    for proc in runs:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    first, second = (_stored_counts(p.stdout) for p in runs)
    assert first["syslog_stream"] > 0 and first["device_inventory"] == 10, first
    assert second == first  # the same simulated range, stored once
