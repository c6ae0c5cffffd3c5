"""Real processes for the adapter/fabric tests: a hub and an edge leaf nats-server, the adapter and the
receiver daemons (each a subprocess: chdb allows one data directory per process, and the adapter is
killed mid-INSERT in one test)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa

from fabric import natsconf
from fabric.process import NatsProcess, free_port

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent


def wait_for(pred, timeout: float, what: str, interval: float = 0.1):
    """Poll ``pred`` until truthy (a readiness wait; failing it fails the test with ``what``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Fabric:
    """hub (tenants acme, beta) + one leaf per tenant + adapter + receiver for tenant acme."""

    def __init__(self, root: Path, tenants=("acme", "beta"), tls: natsconf.TLSFiles | None = None,
                 spiffe_ids: dict[str, list[str]] | None = None) -> None:
        self.root = root
        self.tenants = {t: natsconf.Tenant(t, leaf_user=f"{t}-leaf", leaf_password=f"pw-{t}-leaf",
                                           receiver_user=f"{t}-rx", receiver_password=f"pw-{t}-rx")
                        for t in tenants}  # fmt: skip
        for t, ids in (spiffe_ids or {}).items():
            self.tenants[t].spiffe_ids = ids
        self.hub_port, self.hub_leaf_port, self.hub_http = free_port(), free_port(), free_port()
        (root / "hub").mkdir(parents=True, exist_ok=True)
        self.hub = NatsProcess(root / "hub", "hub", natsconf.hub_config(
            listen=f"127.0.0.1:{self.hub_port}", leaf_listen=f"127.0.0.1:{self.hub_leaf_port}",
            store_dir=str(root / "hub" / "js"), tenants=list(self.tenants.values()), tls=tls,
            http=f"127.0.0.1:{self.hub_http}"), self.hub_port)
        self.leaves: dict[str, NatsProcess] = {}
        self.procs: dict[str, subprocess.Popen] = {}

    def add_leaf(self, tenant: str, user: str | None = None, password: str | None = None, *, name: str = "",
                 tls: natsconf.TLSFiles | None = None) -> NatsProcess:
        t = self.tenants.get(tenant)
        port = free_port()
        name = name or tenant
        d = self.root / f"leaf-{name}"
        d.mkdir(parents=True, exist_ok=True)
        scheme = "tls" if tls else "nats-leaf"
        conf = natsconf.leaf_config(tenant=tenant, listen=f"127.0.0.1:{port}", store_dir=str(d / "js"),
                                    hub_leaf_url=f"{scheme}://127.0.0.1:{self.hub_leaf_port}", tls=tls,
                                    user="" if tls else (user or t.leaf_user),
                                    password="" if tls else (password or t.leaf_password))  # fmt: skip
        self.leaves[name] = NatsProcess(d, "leaf", conf, port)
        return self.leaves[name]

    def leafz(self) -> list[dict]:
        """The hub's leaf connections (its monitoring endpoint)."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.hub_http}/leafz", timeout=5) as r:
            return json.loads(r.read()).get("leafs") or []

    def start_adapter(self, tenant: str = "acme", **extra) -> int:
        port = extra.pop("port", None) or free_port()
        status = self.root / f"adapter-{tenant}.json"
        status.unlink(missing_ok=True)
        cmd = [PY, "-m", "adapter", "--listen", f"127.0.0.1:{port}", "--nats", self.leaves[tenant].url,
               "--tenant", tenant, "--status-file", str(status)]
        if extra.get("config"):
            cmd += ["--config", extra["config"]]
        log = open(self.root / f"adapter-{tenant}.log", "ab")  # noqa: SIM115
        self.procs[f"adapter-{tenant}"] = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=ROOT)
        wait_for(lambda: status.exists(), 30, f"adapter for {tenant} to start ({self.root}/adapter-{tenant}.log)")
        self.adapter_port = port
        return port

    def adapter_status(self, tenant: str = "acme") -> dict:
        return json.loads((self.root / f"adapter-{tenant}.json").read_text())

    def receiver_config(self, tenant: str = "acme", extra: str = "") -> Path:
        t = self.tenants[tenant]
        cfg = self.root / f"receiver-{tenant}.toml"
        if extra or not cfg.exists():
            cfg.write_text(
                f'tenant = "{tenant}"\nnats_url = "nats://127.0.0.1:{self.hub_port}"\nuser = "{t.receiver_user}"\n'
                f'password = "{t.receiver_password}"\nchdb_path = "{self.root / ("chdb-" + tenant)}"\n'
                f'status_file = "{self.root / ("receiver-" + tenant + ".json")}"\n{extra}')
        return cfg

    def start_receiver(self, tenant: str = "acme", extra: str = "") -> None:
        status = self.root / f"receiver-{tenant}.json"
        status.unlink(missing_ok=True)
        log = open(self.root / f"receiver-{tenant}.log", "ab")  # noqa: SIM115
        self.procs[f"receiver-{tenant}"] = subprocess.Popen(
            [PY, "-m", "fabric", "--config", str(self.receiver_config(tenant, extra))],
            stdout=log, stderr=log, cwd=ROOT)  # fmt: skip
        wait_for(lambda: status.exists(), 60, f"receiver for {tenant} ({self.root}/receiver-{tenant}.log)")

    def receiver_status(self, tenant: str = "acme") -> dict:
        p = self.root / f"receiver-{tenant}.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def receiver_rows(self, tenant: str = "acme") -> int:
        return self.receiver_status(tenant).get("rows", 0)

    def stop(self, name: str, sig: int = signal.SIGTERM) -> int:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(sig)
        return proc.wait(timeout=30)

    def query(self, sql: str, tenant: str = "acme") -> pa.Table:
        """Rows in the tenant's ClickHouse (the receiver must be stopped: one chdb process per directory)."""
        out = self.root / "query.arrow"
        subprocess.run([PY, "-m", "fabric", "--config", str(self.receiver_config(tenant)), "--query", sql,
                        "--out", str(out)], check=True, cwd=ROOT, capture_output=True, timeout=120)
        with pa.memory_map(str(out)) as f:
            return pa.ipc.open_file(f).read_all()

    def close(self) -> None:
        for name in list(self.procs):
            try:
                self.stop(name)
            except Exception:
                self.procs.get(name) and self.procs[name].kill()
        for leaf in self.leaves.values():
            leaf.stop()
        self.hub.stop()


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def private_tmp():
    """A temporary directory of our own: pytest's tmp_path roots are pruned by concurrent pytest runs
    on this shared machine (only the last three are kept), which would delete a hub's store mid-test."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="sr-fabric-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
