"""A development CA issuing X.509 SVIDs (SPIFFE IDs in URI SANs), with the ``cryptography`` package.

For development and tests only: production SVIDs come from SPIRE. The CA is per trust domain
(its certificate carries ``spiffe://<trust-domain>`` as URI SAN, per the X.509-SVID spec).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Issued:
    cert_pem: bytes
    key_pem: bytes

    def write(self, directory: Path, name: str) -> tuple[str, str]:
        """Write ``<name>.pem`` and ``<name>-key.pem``; returns their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        key.chmod(0o600)
        return str(cert), str(key)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    fmt = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


class DevCA:
    """A self-signed CA for one trust domain."""

    def __init__(self, trust_domain: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.trust_domain = trust_domain
        self.key = key
        self.cert = cert

    @classmethod
    def create(cls, trust_domain: str, days: int = 365) -> DevCA:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "serviceradar dev CA"),
                          x509.NameAttribute(NameOID.COMMON_NAME, trust_domain)])  # fmt: skip
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]),
                           critical=False)
            .sign(key, hashes.SHA256())
        )  # fmt: skip
        return cls(trust_domain, key, cert)

    @classmethod
    def load(cls, directory: Path) -> DevCA:
        cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca-key.pem").read_bytes(), None)
        td = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return cls(str(td), key, cert)  # type: ignore[arg-type]

    def save(self, directory: Path) -> str:
        Issued(self.cert.public_bytes(serialization.Encoding.PEM), _key_pem(self.key)).write(directory, "ca")
        return str(directory / "ca.pem")

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, path: str, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), days: float = 30,
              not_before: dt.datetime | None = None, spiffe_id: str | None = None) -> Issued:
        """An X.509 SVID for ``spiffe://<trust domain>/<path>`` usable as TLS server and client certificate."""
        sid = spiffe_id or f"spiffe://{self.trust_domain}/{path.lstrip('/')}"
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(sid)]
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "serviceradar")]))
            .issuer_name(self.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))
