"""nats-server configuration for the cloud hub and the edge leaf nodes (``serviceradar-nats``).

Hub: JetStream (domain ``hub``), one account per tenant with its own JetStream limits, a leafnode
listener binding each tenant's leaf credentials (a user/password, or with mTLS the SPIFFE ID in
the leaf's X.509 SVID through ``verify_and_map``) to that tenant's account only.

Edge leaf: listens on 127.0.0.1 only, JetStream in its own domain ``edge-<tenant>[-<node>]`` with a
bounded store, one outbound remote to the hub in the tenant's account. One-way flow: the leaf
opens the connection (the hub never dials the edge) and denies imports of ``serviceradar.>``, so
nothing published in the cloud reaches the edge's subjects; the cloud stream *sources* the edge
stream through the edge domain's JetStream API (store-and-forward across leaf outages).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


class FabricConfigError(ValueError):
    """A tenant or node definition that cannot become a safe nats-server config."""


def check_token(kind: str, value: str) -> str:
    if not _TOKEN.match(value or ""):
        raise FabricConfigError(f"{kind} {value!r} must be letters, digits, '-' or '_' (it is a NATS subject token)")
    return value


def q(value: str) -> str:
    """A quoted string in nats-server config syntax (JSON strings are valid)."""
    return json.dumps(value)


@dataclass
class Tenant:
    """One tenant's account on the hub."""

    name: str
    leaf_user: str = ""
    leaf_password: str = ""
    receiver_user: str = ""
    receiver_password: str = ""
    spiffe_ids: list[str] = field(default_factory=list)  # leaf SVIDs mapped to this account (mTLS)
    max_file: str = "10G"
    max_mem: str = "256M"

    def __post_init__(self) -> None:
        check_token("tenant", self.name)

    @property
    def account(self) -> str:
        return f"TENANT_{self.name}"


@dataclass
class TLSFiles:
    cert: str
    key: str
    ca: str


def subject_root(tenant: str) -> str:
    return f"serviceradar.{tenant}"


def edge_domain(tenant: str, node: str = "") -> str:
    return f"edge-{tenant}" + (f"-{node}" if node else "")


def hub_config(
    *, listen: str, leaf_listen: str, store_dir: str, tenants: list[Tenant], tls: TLSFiles | None = None,
    http: str | None = None, server_name: str = "hub",
) -> str:
    """The cloud hub's nats-server config (config-file accounts, for small and medium installs)."""
    accounts, leaf_users = [], []
    for t in tenants:
        users = []
        if t.receiver_user:
            users.append(f"{{user: {q(t.receiver_user)}, password: {q(t.receiver_password)}}}")
        accounts.append(
            f"  {t.account}: {{\n    jetstream: {{max_file: {t.max_file}, max_mem: {t.max_mem}}}\n"
            f"    users: [{', '.join(users)}]\n  }}"
        )
        if t.leaf_user:
            leaf_users.append(f"{{user: {q(t.leaf_user)}, password: {q(t.leaf_password)}, account: {t.account}}}")
        leaf_users += [f"{{user: {q(sid)}, account: {t.account}}}" for sid in t.spiffe_ids]
    leaf_tls = ""
    if tls:
        leaf_tls = (
            f"  tls {{\n    cert_file: {q(tls.cert)}\n    key_file: {q(tls.key)}\n    ca_file: {q(tls.ca)}\n"
            f"    verify_and_map: true\n    timeout: 5\n  }}\n"
        )
    lines = [
        f"server_name: {q(server_name)}",
        f"listen: {q(listen)}",
        *( [f"http: {q(http)}"] if http else [] ),
        f"jetstream {{\n  store_dir: {q(store_dir)}\n  domain: hub\n}}",
        "accounts {\n" + "\n".join(accounts) + "\n}",
        f"leafnodes {{\n  listen: {q(leaf_listen)}\n{leaf_tls}"
        f"  authorization {{\n    users: [\n      " + ",\n      ".join(leaf_users) + "\n    ]\n  }\n}",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def leaf_config(
    *, tenant: str, listen: str, store_dir: str, hub_leaf_url: str, node: str = "",
    user: str = "", password: str = "", tls: TLSFiles | None = None,
    max_file: str = "2G", max_mem: str = "64M", creds: str = "",
) -> str:
    """An edge leaf's nats-server config: local-only listener, bounded JetStream, one remote to the hub."""
    check_token("tenant", tenant)
    if node:
        check_token("node", node)
    host = listen.rpartition(":")[0]
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
        raise FabricConfigError(f"the edge leaf listens on loopback only, not {listen!r}")
    url = hub_leaf_url
    if user:
        scheme, _, rest = hub_leaf_url.partition("://")
        url = f"{scheme}://{user}:{password}@{rest}"
    remote_tls = ""
    if tls:
        remote_tls = f"\n      tls {{cert_file: {q(tls.cert)}, key_file: {q(tls.key)}, ca_file: {q(tls.ca)}}}"
    if creds:  # operator/JWT mode: the tenant's leaf user JWT + nkey seed
        remote_tls += f"\n      credentials: {q(creds)}"
    return (
        f"server_name: {q('leaf-' + edge_domain(tenant, node))}\n"
        f"listen: {q(listen)}\n"
        f"jetstream {{\n  store_dir: {q(store_dir)}\n  domain: {edge_domain(tenant, node)}\n"
        f"  max_file_store: {max_file}\n  max_memory_store: {max_mem}\n}}\n"
        f"leafnodes {{\n  reconnect: 1s\n  remotes: [\n    {{\n      url: {q(url)}\n"
        f"      deny_imports: [\"serviceradar.>\"]{remote_tls}\n    }}\n  ]\n}}\n"
    )
