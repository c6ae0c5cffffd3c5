"""SPIFFE X.509 SVIDs for our Python services: TLS contexts from files, and peer SPIFFE ID checks.

A chain check alone accepts any workload the CA ever signed; our services also check the peer's
SPIFFE ID (the single URI SAN, ``spiffe://<trust-domain>/<path>``) against what they expect.
Files on disk are the default source of SVIDs (a SPIRE agent can write them with ``spiffe-helper``).
"""

from __future__ import annotations

import fnmatch
import ssl
from typing import Any

from cryptography import x509


class SpiffeError(PermissionError):
    """The peer's certificate carries no acceptable SPIFFE ID."""


def spiffe_id_of(cert: x509.Certificate) -> str:
    """The SPIFFE ID of an X.509 SVID (exactly one ``spiffe://`` URI SAN, as the SVID spec requires)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise SpiffeError("certificate has no subject alternative names, so no SPIFFE ID") from None
    uris = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith("spiffe://")]
    if len(uris) != 1:
        raise SpiffeError(f"an SVID has exactly one spiffe:// URI SAN, this one has {len(uris)}")
    return uris[0]


def check_id(spiffe_id: str, allowed: list[str]) -> None:
    """Accept ``spiffe_id`` if it matches one of ``allowed`` (exact, or a glob like ``.../edge/*``)."""
    if not any(spiffe_id == a or fnmatch.fnmatchcase(spiffe_id, a) for a in allowed):
        raise SpiffeError(f"SPIFFE ID {spiffe_id} is not allowed here")


def peer_verifier(allowed: list[str]):
    """A callback for servers: ``verify(ssl_object)`` raises :class:`SpiffeError` for a wrong peer."""

    def verify(ssl_object: Any) -> None:
        if ssl_object is None:
            raise SpiffeError("connection is not TLS")
        der = ssl_object.getpeercert(binary_form=True)
        if not der:
            raise SpiffeError("peer sent no certificate")
        check_id(spiffe_id_of(x509.load_der_x509_certificate(der)), allowed)

    return verify


def server_context(cert: str, key: str, ca: str | None = None) -> ssl.SSLContext:
    """TLS server context; with ``ca`` the client must present a certificate chaining to it."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    if ca:
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(ca: str, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    """TLS client context trusting ``ca``; SVIDs name workloads, not hosts, so the SPIFFE ID is checked instead."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    ctx.check_hostname = False
    if cert and key:
        ctx.load_cert_chain(cert, key)
    return ctx
