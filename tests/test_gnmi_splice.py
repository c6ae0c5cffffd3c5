"""The gNMI client against a third-party target: splice-gnmi's simulated OpenROADM device (PyPI,
AGPL-3.0, run from its own venv as a separate process, never imported), through ONCE, STREAM and POLL.
pygnmi (an independent client with its own generated code) subscribes to the same target; our rows
must equal what it decodes."""

from __future__ import annotations

import collections
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bmp_helpers import Daemon, free_port
from gnmi_helpers import LiveGnmi

from ingest.gnmi import SubscriptionOptions, TargetOptions

pytestmark = pytest.mark.timeout(900)  # the first test may install the splice-gnmi venv (about a minute)
ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "splice-gnmi"  # inside .venv: ignored by git, ruff and pytest collection
PATH = "/org-openroadm-device"

SPLICE_TARGET = """
import sys, threading, time
from splice.api.device import Device
port, poll = int(sys.argv[1]), float(sys.argv[2])
dev = Device("sim://placeholder", simulate="openroadm")
dev.connect()
tops = sorted({"/" + p.split("/")[1] for p in dev.catalog_paths})
def poller():  # splice's gNMI cache is filled by reads of the simulated device
    while True:
        for t in tops:
            dev.get(t)
        time.sleep(poll)
for t in tops:
    dev.get(t)
threading.Thread(target=poller, daemon=True).start()
dev.serve(port=port, bind="127.0.0.1", heartbeat_sec=2, blocking=True)
"""

PYGNMI_ONCE = """
import json, sys
from pygnmi.client import gNMIclient
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = []
with gNMIclient(target=(host, port), insecure=True, username="u", password="p", timeout=10) as gc:
    sub = {"subscription": [{"path": path, "mode": "sample", "sample_interval": 10**9}], "mode": "once",
           "encoding": "json_ietf"}
    for r in gc.subscribe2(subscribe=sub):
        if r.get("sync_response"):
            break
        out.extend(r.get("update", {}).get("update", []))
print(json.dumps(out))
"""


def _splice_venv() -> Path:
    """splice-gnmi and pygnmi in their own venv (heavy deps, AGPL): made on first use from PyPI."""
    py = VENV / "bin" / "python"
    if not (py.exists() and subprocess.run([py, "-c", "import splice, pygnmi"], capture_output=True).returncode == 0):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True, timeout=120)
        r = subprocess.run([py, "-m", "pip", "install", "-q", "splice-gnmi==0.1.1", "pygnmi==0.8.15"],
                           capture_output=True, text=True, timeout=600)  # fmt: skip
        assert r.returncode == 0, f"cannot install the splice-gnmi test peer: {r.stderr[-2000:]}"
    return py


@pytest.fixture(scope="module")
def splice(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("splice")
    py = _splice_venv()
    (d / "target.py").write_text(SPLICE_TARGET)
    (d / "pygnmi_once.py").write_text(PYGNMI_ONCE)
    port = free_port()
    proc = Daemon([str(py), str(d / "target.py"), str(port), "0.5"], d / "splice.log")
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.proc.poll() is None, f"splice-gnmi exited: {proc.output()[-2000:]}"
            assert time.monotonic() < deadline, "splice-gnmi did not start listening"
            time.sleep(0.3)
    time.sleep(1)  # let the first device poll fill its cache
    r = subprocess.run([str(py), str(d / "pygnmi_once.py"), "127.0.0.1", str(port), PATH], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    reference = [_from_pygnmi(u) for u in json.loads(r.stdout.splitlines()[-1])]
    assert len(reference) > 20
    yield {"port": port, "reference": collections.Counter(reference)}
    proc.stop()


def _from_pygnmi(update: dict) -> tuple:
    """pygnmi's "a/b[k=v]/c" path and value → (metric, labels, value text), our row's shape."""
    path = update["path"]
    labels = tuple(sorted(re.findall(r"\[([^=\]]+)=([^\]]*)\]", path)))
    return re.sub(r"\[[^\]]*\]", "", path), labels, str(update["val"])


def _ours(row: dict) -> tuple:
    return row["metric"], tuple(sorted(dict(row["labels"]).items())), row["value_str"]


def _target(port: int, mode: str, **kw) -> TargetOptions:
    subs = [SubscriptionOptions(path=PATH, sample_interval_s=1)]
    t = TargetOptions(name="roadm", address=f"127.0.0.1:{port}", mode=mode, encoding="json_ietf", username="u",
                      password="p", subscriptions=subs, **kw)  # fmt: skip
    t.validate("t")
    return t


def _snapshots(rows: list[dict], reference: collections.Counter) -> int:
    """How many whole copies of the reference snapshot the rows hold (and nothing else)."""
    got = collections.Counter(map(_ours, rows))
    if not got:
        return 0
    copies = min(got[k] // n for k, n in reference.items())
    extra = got - collections.Counter({k: n * copies for k, n in reference.items()})
    assert not extra or all(k in reference for k in extra), f"rows pygnmi did not see: {list(extra)[:5]}"
    return copies


def test_once_equals_pygnmi(splice: dict) -> None:
    live = LiveGnmi([_target(splice["port"], "once")])
    try:
        live.wait_for(lambda: live.col.done.is_set(), 30, "ONCE to finish")
        live.wait_for(lambda: collections.Counter(map(_ours, live.rows())) == splice["reference"], 10, "rows")
        rows = live.rows()
        assert collections.Counter(map(_ours, rows)) == splice["reference"]
        node = [r for r in rows if r["metric"] == "org-openroadm-device/node-id"]
        assert [(r["value_str"], r["device"], r["deleted"]) for r in node] == [("ROADM-SIM-01", "roadm", False)]
        assert live.status("roadm")["sync_responses"] == 1 and live.status("roadm")["state"] == "done"
    finally:
        live.stop()


def test_stream_sample_delivers_repeated_snapshots(splice: dict) -> None:
    live = LiveGnmi([_target(splice["port"], "stream")])
    try:
        live.wait_for(lambda: _snapshots(live.rows(), splice["reference"]) >= 3, 30, "3 sampled snapshots")
        st = live.status("roadm")
        assert st["state"] == "synced" and st["sync_responses"] == 1 and st["errors"] == 0
        assert live.col.counters.drops() == {}
    finally:
        live.stop()


def test_poll_snapshots_on_each_poll(splice: dict) -> None:
    live = LiveGnmi([_target(splice["port"], "poll", poll_interval_s=0.3)])
    try:
        live.wait_for(lambda: _snapshots(live.rows(), splice["reference"]) >= 4, 30, "initial + 3 polled snapshots")
        assert live.status("roadm")["errors"] == 0
    finally:
        live.stop()
