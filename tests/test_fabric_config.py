"""serviceradar-nats: generated hub/leaf configs accepted by nats-server's own config check, the dev CA's
SVIDs, SPIFFE ID checks, and the receiver's config errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from adapter_fabric_helpers import ROOT, private_tmp
from cryptography import x509

from fabric import natsconf
from fabric.process import nats_server_binary
from fabric.spiffe import SpiffeError, check_id, spiffe_id_of

work = pytest.fixture(private_tmp)


def cli(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from fabric.cli import nats_main; sys.exit(nats_main())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


def nats_check(conf: Path) -> subprocess.CompletedProcess:
    return subprocess.run([nats_server_binary(), "-t", "-c", str(conf)], capture_output=True, text=True, timeout=60)


def test_fabric_cli_configs_pass_nats_server_check(work: Path) -> None:
    tenants = [{"name": "acme", "leaf_user": "acme-leaf", "leaf_password": "p1", "receiver_user": "rx",
                "receiver_password": "p2"}, {"name": "beta", "spiffe_ids": ["spiffe://td/tenant/beta/edge/n1"]}]
    (work / "tenants.json").write_text(json.dumps(tenants))
    ca = cli("ca", "--dir", str(work / "ca"), "--trust-domain", "td")
    assert ca.returncode == 0, ca.stderr
    hub_svid = cli("ca", "--dir", str(work / "ca"), "--issue", "hub", "--name", "hub")
    cert, key = hub_svid.stdout.split()
    hub = cli("hub", "--store", str(work / "hub"), "--tenants", str(work / "tenants.json"),
              "--tls-cert", cert, "--tls-key", key, "--tls-ca", str(work / "ca" / "ca.pem"))  # fmt: skip
    assert hub.returncode == 0, hub.stderr
    (work / "hub.conf").write_text(hub.stdout)
    assert nats_check(work / "hub.conf").returncode == 0, nats_check(work / "hub.conf").stderr
    assert "verify_and_map: true" in hub.stdout and "TENANT_acme" in hub.stdout
    leaf = cli("leaf", "--tenant", "acme", "--node", "n1", "--store", str(work / "leaf"),
               "--hub", "nats-leaf://hub.example:7422", "--user", "acme-leaf", "--password", "p1")  # fmt: skip
    assert leaf.returncode == 0, leaf.stderr
    (work / "leaf.conf").write_text(leaf.stdout)
    assert nats_check(work / "leaf.conf").returncode == 0
    # one-way: local listener only, hub data never imported into the edge's subjects
    assert 'listen: "127.0.0.1:4222"' in leaf.stdout and 'deny_imports: ["serviceradar.>"]' in leaf.stdout
    assert "domain: edge-acme-n1" in leaf.stdout


def test_fabric_config_rejects_unsafe_values() -> None:
    with pytest.raises(natsconf.FabricConfigError, match="tenant"):
        natsconf.Tenant("acme.>")
    with pytest.raises(natsconf.FabricConfigError, match="loopback"):
        natsconf.leaf_config(tenant="acme", listen="0.0.0.0:4222", store_dir="/x", hub_leaf_url="nats-leaf://h:1")
    bad = cli("leaf", "--tenant", "a b", "--store", "/x", "--hub", "nats-leaf://h:1")
    assert bad.returncode == 2 and "tenant" in bad.stderr


def test_fabric_svids_and_spiffe_id_checks(work: Path) -> None:
    from fabric.ca import DevCA

    ca = DevCA.create("serviceradar.test")
    svid = ca.issue("tenant/acme/edge/n1")
    cert = x509.load_pem_x509_certificate(svid.cert_pem)
    assert spiffe_id_of(cert) == "spiffe://serviceradar.test/tenant/acme/edge/n1"
    check_id("spiffe://serviceradar.test/tenant/acme/edge/n1", ["spiffe://serviceradar.test/tenant/acme/edge/*"])
    with pytest.raises(SpiffeError):
        check_id("spiffe://serviceradar.test/tenant/beta/edge/n1", ["spiffe://serviceradar.test/tenant/acme/edge/*"])
    with pytest.raises(SpiffeError):
        check_id("spiffe://evil.example/tenant/acme/edge/n1", ["spiffe://serviceradar.test/tenant/acme/edge/*"])
    ca.save(work)
    again = DevCA.load(work)
    assert again.trust_domain == "serviceradar.test" and again.cert == ca.cert


def test_fabric_receiver_config_errors(work: Path) -> None:
    (work / "r.toml").write_text('tenant = "acme"\nnats_url = "nats://x:4222"\ncolour = "red"\n')
    out = subprocess.run([sys.executable, "-m", "fabric", "--config", str(work / "r.toml")], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert out.returncode == 2 and "colour: unknown key" in out.stderr
    (work / "r.toml").write_text('tenant = "acme"\nnats_url = "nats://x:4222"\n')
    out = subprocess.run([sys.executable, "-m", "fabric", "--config", str(work / "r.toml")], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert out.returncode == 2 and "chdb_path or clickhouse_url" in out.stderr
