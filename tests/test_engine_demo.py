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
