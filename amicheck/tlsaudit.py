"""Compatibility shim: the TLS audit is the :mod:`amicheck.tls` package now.

* :mod:`amicheck.tls.material` -- CAs, end-entity leaves, self-signed pairs, server contexts.
* :mod:`amicheck.tls.certificate` -- static PEM rules (dates, key size, hash, key match, size).
* :mod:`amicheck.tls.scan` / :mod:`amicheck.tls.model` -- the live scan (sslyze) as data.
* :mod:`amicheck.tls.checks` -- one verdict per TLS requirement.
* :mod:`amicheck.tls.plaintext` -- plaintext AMI exposure of a port.

The hand-written handshake probes (``probe_versions``, ``probe_cipher_classes``,
``audit_endpoint``) are gone: :func:`amicheck.tls.scan.scan` replaces them;
:func:`fetch_certificate_chain` (one handshake, the served chain) is
:mod:`amicheck.tls.chain`'s. New code imports from :mod:`amicheck.tls`.
"""

from __future__ import annotations

from amicheck.tls.certificate import (
    EXPIRY_WARNING_DAYS,
    MAX_TLS_FILE_BYTES,
    MIN_EC_BITS,
    MIN_RSA_BITS,
    CertInfo,
    CertProblem,
    CertReport,
    Severity,
    as_dict,
    audit_pem_files,
    cert_info,
    cert_report,
    fingerprint,
    key_matches_cert,
    load_pem_chain,
    same_certificate,
)
from amicheck.tls.chain import fetch_certificate_chain
from amicheck.tls.material import make_self_signed, make_server_context
from amicheck.tls.model import ScanResult, ScanStatus, TlsVersion
from amicheck.tls.plaintext import PlaintextProbe, ProbeStatus, probe_plaintext
from amicheck.tls.scan import scan

__all__ = [
    "EXPIRY_WARNING_DAYS",
    "MAX_TLS_FILE_BYTES",
    "MIN_EC_BITS",
    "MIN_RSA_BITS",
    "CertInfo",
    "CertProblem",
    "CertReport",
    "PlaintextProbe",
    "ProbeStatus",
    "ScanResult",
    "ScanStatus",
    "Severity",
    "TlsVersion",
    "as_dict",
    "audit_pem_files",
    "cert_info",
    "cert_report",
    "fetch_certificate_chain",
    "fingerprint",
    "key_matches_cert",
    "load_pem_chain",
    "make_self_signed",
    "make_server_context",
    "probe_plaintext",
    "same_certificate",
    "scan",
]
