"""Tenant isolation and SPIFFE mTLS on real nats-server processes, and SPIFFE ID checks in the adapter.

Isolation: one account per tenant on the hub; a tenant's credentials bind its users and leaf
connections to its own account, so its messages and streams never appear in another tenant's.
mTLS: the hub's leafnode listener verifies the leaf's X.509 SVID (chain, validity) and maps its
SPIFFE ID to the tenant's account (``verify_and_map``); other trust domains, expired SVIDs and
unknown SPIFFE IDs are rejected. The adapter's Proton port checks the client's SPIFFE ID itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import nats
import pytest
from adapter_fabric_helpers import Fabric, private_tmp, wait_for
from nats.js.api import ExternalStream, StreamSource
from proton_driver import Client

from adapter.config import AdapterConfig
from adapter.daemon import Adapter
from fabric.ca import DevCA
from fabric.natsconf import TLSFiles
from fabric.process import NatsProcess, free_port

work = pytest.fixture(private_tmp)
TD = "serviceradar.test"
GOOD_ID = f"spiffe://{TD}/tenant/acme/edge/n1"


async def hub_client(fab: Fabric, tenant: str) -> nats.NATS:
    t = fab.tenants[tenant]
    return await nats.connect(fab.hub.url, user=t.receiver_user, password=t.receiver_password)


async def collect(nc: nats.NATS, subject: str) -> list:
    got: list = []

    async def cb(msg) -> None:
        got.append(msg.data)

    await nc.subscribe(subject, cb=cb)
    await nc.flush()
    return got


def test_fabric_tenant_isolation_accounts_and_leaf_credentials(work: Path) -> None:
    fab = Fabric(work)
    fab.hub.start()
    fab.add_leaf("acme").start()
    # a leaf that *claims* tenant beta's subjects but holds acme's leaf credentials
    fab.add_leaf("beta", user="acme-leaf", password="pw-acme-leaf", name="rogue").start()
    fab.add_leaf("beta", password="wrong-password", name="badpw").start()

    async def main() -> None:
        acme, beta = await hub_client(fab, "acme"), await hub_client(fab, "beta")
        acme_got, beta_got = await collect(acme, "serviceradar.>"), await collect(beta, "serviceradar.>")
        await asyncio.to_thread(wait_for, lambda: len(fab.leafz()) == 2, 30, "two leaf connections")
        # the rogue leaf is bound to acme's account (its credentials), the wrong password is refused
        assert sorted(lf["account"] for lf in fab.leafz()) == ["TENANT_acme", "TENANT_acme"]
        assert "authentication error" in fab.hub.log_text() or "Authorization Violation" in fab.hub.log_text()

        # acme publishing on beta's subjects at the hub stays in acme's own account
        await acme.publish("serviceradar.beta.proton.publish", b"x")
        await acme.flush()
        await beta.flush()
        await asyncio.to_thread(wait_for, lambda: b"x" in acme_got, 10, "acme's own message")
        assert beta_got == []

        # the rogue leaf stores 'beta' data at its edge; only acme's account can source it
        leaf = await nats.connect(fab.leaves["rogue"].url)
        await leaf.jetstream().add_stream(name="SR_BETA", subjects=["serviceradar.beta.>"])
        for i in range(5):
            await leaf.jetstream().publish("serviceradar.beta.proton.publish", b"y%d" % i)
        src = StreamSource(name="SR_BETA", external=ExternalStream(api="$JS.edge-beta.API", deliver=""))
        for nc in (acme, beta):
            await nc.jetstream().add_stream(name="SR_BETA_CLOUD", subjects=[], sources=[src])

        async def count(nc: nats.NATS) -> int:
            return (await nc.jetstream().stream_info("SR_BETA_CLOUD")).state.messages

        for _ in range(300):  # positive control: acme's copy fills
            if await count(acme) == 5:
                break
            await asyncio.sleep(0.1)
        assert await count(acme) == 5
        assert await count(beta) == 0  # beta's account cannot reach a leaf bound to acme
        assert beta_got == []
        for nc in (acme, beta, leaf):
            await nc.close()

    try:
        asyncio.run(asyncio.wait_for(main(), 90))
    finally:
        fab.close()


def test_fabric_mtls_rejects_other_trust_domain_expired_and_wrong_spiffe_id(work: Path) -> None:
    ca = DevCA.create(TD)
    ca_file = ca.save(work / "ca")
    hub_cert, hub_key = ca.issue("hub").write(work / "certs", "hub")
    fab = Fabric(work, tls=TLSFiles(hub_cert, hub_key, ca_file), spiffe_ids={"acme": [GOOD_ID]})
    fab.hub.start()
    other = DevCA.create("evil.example")
    cases = {
        "good": ca.issue("tenant/acme/edge/n1"),
        "other_domain": other.issue("tenant/acme/edge/n1", spiffe_id=GOOD_ID),
        "expired": ca.issue("tenant/acme/edge/n1", not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=10), days=1),
        "wrong_id": ca.issue("tenant/beta/edge/n9"),
    }
    try:
        for name, svid in cases.items():
            cert, key = svid.write(work / "certs", name)
            fab.add_leaf("acme", name=name, tls=TLSFiles(cert, key, ca_file)).start()
        wait_for(lambda: fab.leafz(), 30, "the good leaf to connect")
        log = wait_for(lambda: (t := fab.hub.log_text()).count("authentication error") >= 1
                       and t.count("handshake error") >= 2 and t, 30, "three rejected leaf connections")
        # Go's TLS client withholds a certificate the hub's CA list does not name, so the other trust
        # domain's SVID never even reaches verification; either way the handshake fails
        assert "certificate signed by unknown authority" in log or "didn't provide a certificate" in log
        assert "expired" in log
        leafs = fab.leafz()
        assert len(leafs) == 1 and leafs[0]["account"] == "TENANT_acme"
    finally:
        fab.close()


def test_fabric_adapter_port_checks_the_client_spiffe_id(work: Path) -> None:
    ca = DevCA.create(TD)
    ca_file = ca.save(work / "ca")
    srv_cert, srv_key = ca.issue("tenant/acme/edge/n1/adapter").write(work, "adapter")
    proton_cert, proton_key = ca.issue("tenant/acme/edge/n1/proton").write(work, "proton")
    wrong_cert, wrong_key = ca.issue("tenant/acme/edge/n1/intruder").write(work, "intruder")
    port = free_port()
    nats_proc = NatsProcess(work, "nats", f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: "{work}/js" }}\n', port)
    nats_proc.start()
    cfg = AdapterConfig(tenant="acme")
    cfg.nats.url = nats_proc.url
    cfg.server.listen = "127.0.0.1:0"
    cfg.server.tls_cert, cfg.server.tls_key, cfg.server.tls_ca = srv_cert, srv_key, ca_file
    cfg.server.allowed_spiffe_ids = [f"spiffe://{TD}/tenant/acme/edge/*/proton"]

    def insert(p: int, cert: str, key: str) -> int:
        c = Client("127.0.0.1", port=p, secure=True, ca_certs=ca_file, certfile=cert, keyfile=key)
        try:
            return c.execute("INSERT INTO gnmi_stream (device) VALUES", [("d1",)])
        finally:
            c.disconnect()

    async def main() -> None:
        adapter = Adapter(cfg)
        _, p = await adapter.start()
        try:
            assert await asyncio.to_thread(insert, p, proton_cert, proton_key) == 1
            with pytest.raises(Exception):  # noqa: B017 - rejected: connection closed after the handshake
                await asyncio.to_thread(insert, p, wrong_cert, wrong_key)
            assert adapter.server.stats.inserts == 1
        finally:
            await adapter.stop(5)

    try:
        asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        nats_proc.stop()
