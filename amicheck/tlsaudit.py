"""Compatibility shim: the TLS code now lives in the :mod:`amicheck.tls` package.

* :mod:`amicheck.tls.material` -- CAs, end-entity leaves, self-signed pairs, server contexts.
* :mod:`amicheck.tls.certificate` -- static PEM rules (dates, key size, hash, key match, size).
* :mod:`amicheck.tls.scan` -- the live scan (sslyze) as frozen result data.
* :mod:`amicheck.tls.plaintext` -- plaintext AMI exposure of a port.

The hand-written handshake probes (:func:`probe_versions`, :func:`probe_cipher_classes`,
:func:`fetch_certificate_chain`, :func:`audit_endpoint`) are re-exported from the legacy
module until the TLS suite runs on :func:`amicheck.tls.scan.scan`. New code imports from
:mod:`amicheck.tls`.
"""

from __future__ import annotations

from amicheck.tls._probes import (
    CIPHER_CLASSES,
    CipherProbe,
    EndpointReport,
    HandshakeResult,
    LocalSupport,
    TlsVersion,
    VersionProbe,
    audit_endpoint,
    fetch_certificate_chain,
    handshake,
    local_support,
    probe_cipher_classes,
    probe_versions,
)
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
from amicheck.tls.material import make_self_signed, make_server_context
from amicheck.tls.plaintext import PlaintextProbe, ProbeStatus, probe_plaintext

__all__ = [
    "TlsVersion",
    "ProbeStatus",
    "Severity",
    "CertProblem",
    "CertInfo",
    "CertReport",
    "HandshakeResult",
    "VersionProbe",
    "CipherProbe",
    "PlaintextProbe",
    "LocalSupport",
    "EndpointReport",
    "CIPHER_CLASSES",
    "MAX_TLS_FILE_BYTES",
    "MIN_RSA_BITS",
    "EXPIRY_WARNING_DAYS",
    "same_certificate",
    "MIN_EC_BITS",
    "make_self_signed",
    "make_server_context",
    "load_pem_chain",
    "cert_info",
    "cert_report",
    "audit_pem_files",
    "key_matches_cert",
    "fingerprint",
    "local_support",
    "handshake",
    "fetch_certificate_chain",
    "probe_versions",
    "probe_cipher_classes",
    "probe_plaintext",
    "audit_endpoint",
    "as_dict",
]
