"""Certificates the simulator makes itself: the self-signed default and the faulty ones.

A UCM with TLS on and no uploaded files still serves *something*; the simulator makes a
self-signed pair so that TLS works out of the box. The TLS fault profiles need certificates
that are wrong in one way each (expired, RSA-1024/SHA-1, a different one). The certificate
maker itself is :func:`amicheck.tlsaudit.make_self_signed`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

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
        common_name: CN of the certificate (SANs: CN, ``localhost``, 127.0.0.1).
        key_size: RSA modulus size (1024 for the weak-cert-key fault).
        sha1: sign with SHA-1 instead of SHA-256 (weak-cert-key fault).
        expired: validity ended a day ago (expired-cert fault).
    """
    from amicheck.tlsaudit import make_self_signed

    if expired:
        before, after = dt.timedelta(days=-400), dt.timedelta(days=-1)
    else:
        before, after = dt.timedelta(hours=-1), dt.timedelta(days=365)
    cert_pem, key_pem = make_self_signed(
        common_name, key_bits=key_size, hash="sha1" if sha1 else "sha256",
        not_before=before, not_after=after, san=(common_name, "localhost", "127.0.0.1"))
    key_path.write_bytes(key_pem)
    key_path.chmod(0o600)
    cert_path.write_bytes(cert_pem)
