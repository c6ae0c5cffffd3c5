"""Operator/JWT mode on a real nats-server: a tenant added to the running hub (no restart) gets its own
JetStream and its leaf binds to its account with a .creds file; another operator's account is refused;
tenants stay isolated."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import nats
import pytest
from adapter_fabric_helpers import private_tmp, wait_for

from fabric import natsconf
from fabric.jwtmode import Operator, hub_config_jwt, push_account
from fabric.process import NatsProcess, free_port

work = pytest.fixture(private_tmp)


def test_fabric_jwt_tenants_added_at_run_time(work: Path) -> None:
    op = Operator()
    pub_acme, jwt_acme = op.account_jwt("acme")
    hp, lp, http = free_port(), free_port(), free_port()
    hub = NatsProcess(work, "hub", hub_config_jwt(op, listen=f"127.0.0.1:{hp}", leaf_listen=f"127.0.0.1:{lp}",
                                                 store_dir=str(work / "js"), resolver_dir=str(work / "resolver"),
                                                 preload={pub_acme: jwt_acme}, http=f"127.0.0.1:{http}"), hp)
    hub.start()
    for name, tenant in (("sys", None), ("acme-rx", "acme")):
        (work / f"{name}.creds").write_text(op.user_creds(tenant, name))
    leaf: NatsProcess | None = None

    def leafz() -> list[dict]:
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/leafz", timeout=5) as r:
            return json.loads(r.read()).get("leafs") or []

    async def main() -> None:
        nonlocal leaf
        sys_nc = await nats.connect(hub.url, user_credentials=str(work / "sys.creds"))
        pub_beta, jwt_beta = op.account_jwt("beta", max_file="1G", max_mem="64M")
        assert (await push_account(sys_nc, jwt_beta))["data"]["code"] == 200  # no restart
        for name in ("beta-rx", "beta-leaf"):
            (work / f"{name}.creds").write_text(op.user_creds("beta", name))
        beta = await nats.connect(hub.url, user_credentials=str(work / "beta-rx.creds"))
        acme = await nats.connect(hub.url, user_credentials=str(work / "acme-rx.creds"))
        await beta.jetstream().add_stream(name="SR_BETA_CLOUD", subjects=["serviceradar.beta.>"])
        with pytest.raises(nats.js.errors.NotFoundError):  # isolated: not visible in acme's account
            await acme.jetstream().stream_info("SR_BETA_CLOUD")

        lport = free_port()
        leaf = NatsProcess(work, "leaf", natsconf.leaf_config(
            tenant="beta", listen=f"127.0.0.1:{lport}", store_dir=str(work / "leaf-js"),
            hub_leaf_url=f"nats-leaf://127.0.0.1:{lp}", creds=str(work / "beta-leaf.creds")), lport).start()
        leafs = await asyncio.to_thread(wait_for, leafz, 30, "the beta leaf")
        assert [lf["account"] for lf in leafs] == [pub_beta]

        # an account made by another operator is useless on this hub: its users are refused
        evil = Operator()
        _, forged = evil.account_jwt("mallory")
        await push_account(sys_nc, forged)
        (work / "mallory.creds").write_text(evil.user_creds("mallory", "m"))
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(hub.url, user_credentials=str(work / "mallory.creds"), allow_reconnect=False,
                               max_reconnect_attempts=0)  # fmt: skip
        for nc in (sys_nc, beta, acme):
            await nc.close()

    try:
        asyncio.run(asyncio.wait_for(main(), 90))
    finally:
        if leaf is not None:
            leaf.stop()
        hub.stop()


def test_fabric_jwt_cli_init_tenant_hub(work: Path) -> None:
    import subprocess
    import sys

    from adapter_fabric_helpers import ROOT

    from fabric.process import nats_server_binary

    def cli(*args: str) -> subprocess.CompletedProcess:
        code = "import sys; from fabric.cli import nats_main; sys.exit(nats_main())"
        return subprocess.run([sys.executable, "-c", code, "jwt", *args, "--dir", str(work / "op")],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)  # fmt: skip

    assert cli("init").returncode == 0
    tenant = cli("tenant", "--tenant", "acme", "--max-file", "1G")
    assert tenant.returncode == 0 and tenant.stdout.startswith("A"), tenant.stderr
    assert (work / "op" / "acme-leaf.creds").read_text().startswith("-----BEGIN NATS USER JWT-----")
    hub = cli("hub", "--store", str(work / "store"))
    assert hub.returncode == 0 and tenant.stdout.strip() in hub.stdout
    (work / "hub.conf").write_text(hub.stdout)
    check = subprocess.run([nats_server_binary(), "-t", "-c", str(work / "hub.conf")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert cli("tenant").returncode == 2  # --tenant missing: a clear error
