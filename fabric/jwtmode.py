"""Operator/JWT mode for large installs: nkeys and NATS JWTs, so tenants are added without a restart.

The hub trusts one operator; every tenant is an account JWT signed by it, pushed to the running hub
(``$SYS.REQ.CLAIMS.UPDATE`` through the system account) and kept by the hub's ``full`` resolver in its
directory. Users (the tenant's leaf, its receiver) are user JWTs signed by the tenant's account key,
handed out as ``.creds`` files. Keys are ``nkeys`` (nats-io's library); the JWTs follow nats-io/jwt v2
(``ed25519-nkey`` signatures over ``header.claims``), written here because nats-io ships no Python
JWT issuer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import nkeys

from fabric.natsconf import check_token, q

_UNLIMITED = {"subs": -1, "conn": -1, "leaf": -1, "imports": -1, "exports": -1, "data": -1, "payload": -1,
              "wildcards": True}  # fmt: skip


def new_key(prefix: int) -> nkeys.KeyPair:
    """A fresh nkey of the given kind (``nkeys.PREFIX_BYTE_OPERATOR`` / ``_ACCOUNT`` / ``_USER``)."""
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _jti(claims: dict) -> str:
    try:
        digest = hashlib.new("sha512_256", json.dumps(claims, sort_keys=True).encode()).digest()
    except ValueError:  # OpenSSL without SHA-512/256: any stable unique id is accepted
        digest = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()
    return base64.b32encode(digest).decode().rstrip("=")


def encode_jwt(subject: str, name: str, nats_claims: dict, signer: nkeys.KeyPair) -> str:
    """A NATS JWT (v2) for ``subject`` signed by ``signer``."""
    claims = {"iat": int(time.time()), "iss": signer.public_key.decode(), "name": name, "sub": subject,
              "nats": {**nats_claims, "version": 2}}  # fmt: skip
    claims["jti"] = _jti(claims)
    signing_input = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode()) + b"." + \
        _b64(json.dumps(claims).encode())
    return (signing_input + b"." + _b64(signer.sign(signing_input))).decode()


def creds(user_jwt: str, user_key: nkeys.KeyPair) -> str:
    """The ``.creds`` file nats clients and leaf remotes read."""
    return (
        f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{user_key.seed.decode()}\n------END USER NKEY SEED------\n"
    )


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    text = text.strip().upper().rstrip("B")
    return int(float(text[:-1]) * units[text[-1]]) if text and text[-1] in units else int(text)


@dataclass
class Operator:
    """An operator with its system account; issues tenant accounts and their users."""

    key: nkeys.KeyPair = field(default_factory=lambda: new_key(nkeys.PREFIX_BYTE_OPERATOR))
    system: nkeys.KeyPair = field(default_factory=lambda: new_key(nkeys.PREFIX_BYTE_ACCOUNT))
    accounts: dict[str, nkeys.KeyPair] = field(default_factory=dict)

    @property
    def jwt(self) -> str:
        pub = self.key.public_key.decode()
        return encode_jwt(pub, "serviceradar", {"type": "operator", "system_account": self.system_pub}, self.key)

    @property
    def system_pub(self) -> str:
        return self.system.public_key.decode()

    def system_jwt(self) -> str:
        return encode_jwt(self.system_pub, "SYS", {"type": "account", "limits": _UNLIMITED}, self.key)

    def account_jwt(self, tenant: str, max_file: str = "10G", max_mem: str = "256M") -> tuple[str, str]:
        """(public key, JWT) of the tenant's account, with its JetStream limits."""
        check_token("tenant", tenant)
        kp = self.accounts.setdefault(tenant, new_key(nkeys.PREFIX_BYTE_ACCOUNT))
        limits = {**_UNLIMITED, "mem_storage": parse_size(max_mem), "disk_storage": parse_size(max_file),
                  "streams": -1, "consumer": -1}  # fmt: skip
        pub = kp.public_key.decode()
        return pub, encode_jwt(pub, f"TENANT_{tenant}", {"type": "account", "limits": limits}, self.key)

    def user_creds(self, tenant: str | None, name: str) -> str:
        """A ``.creds`` for a user of ``tenant``'s account (None: of the system account)."""
        account = self.system if tenant is None else self.accounts[tenant]
        user = new_key(nkeys.PREFIX_BYTE_USER)
        claims = {"type": "user", "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1}
        return creds(encode_jwt(user.public_key.decode(), name, claims, account), user)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        seeds = {"operator": self.key.seed.decode(), "system": self.system.seed.decode(),
                 "accounts": {t: kp.seed.decode() for t, kp in self.accounts.items()}}  # fmt: skip
        path = directory / "operator-seeds.json"
        path.write_text(json.dumps(seeds))
        path.chmod(0o600)

    @classmethod
    def load(cls, directory: Path) -> Operator:
        seeds = json.loads((directory / "operator-seeds.json").read_text())
        return cls(nkeys.from_seed(seeds["operator"].encode()), nkeys.from_seed(seeds["system"].encode()),
                   {t: nkeys.from_seed(s.encode()) for t, s in seeds["accounts"].items()})  # fmt: skip


def hub_config_jwt(op: Operator, *, listen: str, leaf_listen: str, store_dir: str, resolver_dir: str,
                   preload: dict[str, str], http: str | None = None) -> str:
    """Hub config in operator mode: a ``full`` resolver (accounts added at run time), preloaded accounts."""
    pre = "\n".join(f"  {pub}: {q(jwt)}" for pub, jwt in {op.system_pub: op.system_jwt(), **preload}.items())
    return "\n".join([
        'server_name: "hub"', f"listen: {q(listen)}", *([f"http: {q(http)}"] if http else []),
        f"operator: {q(op.jwt)}", f"system_account: {op.system_pub}",
        f"resolver: {{\n  type: full\n  dir: {q(resolver_dir)}\n  allow_delete: false\n  interval: \"2m\"\n}}",
        f"resolver_preload: {{\n{pre}\n}}",
        f"jetstream {{\n  store_dir: {q(store_dir)}\n  domain: hub\n}}",
        f"leafnodes {{\n  listen: {q(leaf_listen)}\n}}",
    ]) + "\n"  # fmt: skip


async def push_account(nc, account_jwt: str, timeout: float = 10.0) -> dict:
    """Add or update an account on a running hub (``nc`` connected as a system-account user)."""
    msg = await nc.request("$SYS.REQ.CLAIMS.UPDATE", account_jwt.encode(), timeout=timeout)
    reply = json.loads(msg.data)
    if reply.get("error"):
        raise RuntimeError(f"hub refused the account: {reply['error']}")
    return reply
