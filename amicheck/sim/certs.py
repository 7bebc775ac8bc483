"""Certificates the simulator makes itself: the default leaf and the faulty ones.

A UCM with TLS on and no uploaded files still serves *something*; the simulator serves an
end-entity leaf (``CA:FALSE``, subjectAltName CN, localhost, 127.0.0.1) signed by a CA it
generates once per process; the CA goes to ``ami_ca.pem`` (``Simulator.tls_ca_path``) for
clients that verify. The TLS fault profiles need certificates that are wrong in
one way each (expired, RSA-1024/SHA-1, a different one, a self-signed CA as leaf, CN only).
The makers are :mod:`amicheck.tls.material`.
"""

from __future__ import annotations

from pathlib import Path

from amicheck.tls.material import make_self_signed, simulator_pair

__all__ = ["write_cert_pair"]


def write_cert_pair(
    cert_path: Path,
    key_path: Path,
    *,
    common_name: str = "ucm-simulator.localhost",
    key_size: int = 2048,
    sha1: bool = False,
    expired: bool = False,
    ca_path: Path | None = None,
    self_signed_ca: bool = False,
    cn_only: bool = False,
) -> None:
    """Write a certificate and its private key (mode 0600) as PEM files.

    Args:
        common_name: CN of the certificate (SANs: CN, ``localhost``, 127.0.0.1).
        key_size: RSA modulus size (1024 for the weak-cert-key fault).
        sha1: sign with SHA-1 instead of SHA-256 (weak-cert-key fault).
        expired: validity ended a day ago (expired-cert fault).
        ca_path: where to write the issuing CA (verifying clients load it).
        self_signed_ca: a self-signed ``CA:TRUE`` certificate as leaf (tls-ca-leaf fault).
        cn_only: no subjectAltName, CN only (tls-no-san fault; verifying clients ignore the
            CN).
    """
    if self_signed_ca:
        cert_pem, key_pem = make_self_signed(
            common_name, san=(common_name, "localhost", "127.0.0.1")
        )
        key_path.write_bytes(key_pem)
        key_path.chmod(0o600)
        cert_path.write_bytes(cert_pem)
        return
    pair = simulator_pair(
        common_name, key_size=key_size, sha1=sha1, expired=expired, san=() if cn_only else None
    )
    pair.write(cert_path, key_path, ca_path=ca_path)
