"""Certificates the simulator makes itself: the self-signed default and the faulty ones.

A UCM with TLS on and no uploaded files still serves *something*; the simulator makes a
self-signed pair so that TLS works out of the box. The TLS fault profiles need certificates
that are wrong in one way each (expired, RSA-1024/SHA-1, a different one).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

__all__ = ["write_cert_pair"]


def write_cert_pair(
    cert_path: Path,
    key_path: Path,
    *,
    common_name: str = "ucm-simulator.localhost",
    key_size: int = 2048,
    sha1: bool = False,
    expired: bool = False,
) -> None:
    """Write a self-signed certificate and its private key as PEM files.

    Args:
        common_name: CN and DNS SAN of the certificate (also ``localhost``/127.0.0.1 SANs).
        key_size: RSA modulus size (1024 for the weak-cert-key fault).
        sha1: sign with SHA-1 instead of SHA-256 (weak-cert-key fault).
        expired: validity ended a day ago (expired-cert fault).
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    now = dt.datetime.now(dt.UTC)
    if expired:
        not_before, not_after = now - dt.timedelta(days=400), now - dt.timedelta(days=1)
    else:
        not_before, not_after = now - dt.timedelta(hours=1), now + dt.timedelta(days=365)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "amicheck simulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    san = x509.SubjectAlternativeName(
        [
            x509.DNSName(common_name),
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA1() if sha1 else hashes.SHA256())  # type: ignore[arg-type]
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
