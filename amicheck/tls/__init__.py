"""TLS audit for the AMI TLS listener: test material, static certificate rules, live scan.

* :mod:`~amicheck.tls.material` -- generated CAs and end-entity leaves (trustme-style), the
  simulator's certificates, stdlib server contexts.
* :mod:`~amicheck.tls.certificate` -- static rules on PEM files and served leaves (dates, key
  size, signature hash, key match, CA flag, subjectAltName, 2 MB upload limit).
* :mod:`~amicheck.tls.scan` -- :func:`scan`: sslyze on one endpoint, as the frozen
  :class:`ScanResult` of :mod:`~amicheck.tls.model`.
* :mod:`~amicheck.tls.plaintext` -- does a port answer plaintext AMI?

Importing this package is cheap (sslyze, about 1 s to import, loads on the first scan) and
loads every submodule, so that a process importing it once never mixes two copies of the
result classes (pytester's in-process runs restore ``sys.modules`` between runs).
"""

from __future__ import annotations

from amicheck.tls import chain, checks, plaintext
from amicheck.tls.certificate import (
    MAX_TLS_FILE_BYTES,
    CertInfo,
    CertProblem,
    CertReport,
    Severity,
    audit_pem_files,
    cert_info,
    cert_report,
    end_entity_problems,
    key_matches_cert,
    san_covers,
)
from amicheck.tls.material import Authority, CertPair, make_self_signed
from amicheck.tls.model import (
    WEAK_CLASSES,
    AcceptedSuite,
    CipherClass,
    Probe,
    ScanResult,
    ScanStatus,
    TlsVersion,
    VersionScan,
)
from amicheck.tls.scan import scan

__all__ = [
    "MAX_TLS_FILE_BYTES",
    "WEAK_CLASSES",
    "AcceptedSuite",
    "Authority",
    "CertInfo",
    "CertPair",
    "CertProblem",
    "CertReport",
    "CipherClass",
    "Probe",
    "ScanResult",
    "ScanStatus",
    "Severity",
    "TlsVersion",
    "VersionScan",
    "audit_pem_files",
    "chain",
    "checks",
    "plaintext",
    "cert_info",
    "cert_report",
    "end_entity_problems",
    "key_matches_cert",
    "make_self_signed",
    "san_covers",
    "scan",
]
