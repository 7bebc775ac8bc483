"""What a TLS scan found, as frozen data (no I/O here): versions, suites, vulnerabilities.

:func:`amicheck.tls.scan.scan` fills a :class:`ScanResult`; suites and reports read it. A
probe that could not run says so (:attr:`Probe.value` is None and :attr:`Probe.error` says
why), and a scan that never reached a handshake is :attr:`ScanStatus.NO_HANDSHAKE` or
:attr:`ScanStatus.ERROR` with the reason: nothing is ever "refused" by default.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from cryptography import x509

__all__ = [
    "TlsVersion",
    "ScanStatus",
    "CipherClass",
    "WEAK_CLASSES",
    "MIN_DH_BITS",
    "MIN_EC_BITS",
    "classify",
    "curve_bits",
    "KeyExchange",
    "AcceptedSuite",
    "VersionScan",
    "Probe",
    "Curve",
    "ScanResult",
]

#: A finite-field DH group smaller than this is weak (Logjam; NIST SP 800-57: 2048).
MIN_DH_BITS = 2048
#: An EC curve smaller than this is weak; X25519/X448 (RFC 7748) count as strong.
MIN_EC_BITS = 256
_STRONG_SMALL_CURVES = frozenset({"X25519"})


class TlsVersion(enum.StrEnum):
    """Protocol versions scanned, oldest first."""

    SSL2_0 = "SSLv2"
    SSL3_0 = "SSLv3"
    TLS1_0 = "TLSv1.0"
    TLS1_1 = "TLSv1.1"
    TLS1_2 = "TLSv1.2"
    TLS1_3 = "TLSv1.3"

    @property
    def ssl(self) -> bool:
        """SSL 2.0 (RFC 6176) and 3.0 (RFC 7568) are prohibited."""
        return self in (TlsVersion.SSL2_0, TlsVersion.SSL3_0)

    @property
    def legacy(self) -> bool:
        """TLS 1.0 and 1.1 are deprecated (RFC 8996)."""
        return self in (TlsVersion.TLS1_0, TlsVersion.TLS1_1)


class ScanStatus(enum.StrEnum):
    """Whether the scan ran: only COMPLETED results carry versions and probes."""

    COMPLETED = "completed"
    NO_HANDSHAKE = "no handshake"  # something answers, but no TLS handshake completes
    ERROR = "error"  # the scan could not run (no listener, timeout, engine failure)


class CipherClass(enum.StrEnum):
    """Properties of a cipher suite; a suite has one or more (``static-RSA`` + ``CBC``)."""

    NULL = "NULL"  # no encryption
    ANON = "anon"  # no server authentication
    EXPORT = "EXPORT"  # 40/56-bit export crypto (FREAK, Logjam)
    RC4 = "RC4"  # RFC 7465 prohibits it
    DES = "DES"  # single DES, 56-bit
    TDES = "3DES"  # 64-bit block: Sweet32 (CVE-2016-2183)
    STATIC_RSA = "static-RSA"  # RSA key exchange: no forward secrecy, ROBOT-prone
    STATIC_DH = "static-DH"  # fixed (EC)DH key exchange: no forward secrecy
    CBC = "CBC"  # MAC-then-encrypt block mode (Lucky13, POODLE-TLS); not weak by itself
    AEAD = "AEAD"  # GCM, CCM, ChaCha20-Poly1305


#: The classes no compliant AMI listener accepts (CBC and AEAD are informational).
WEAK_CLASSES: tuple[CipherClass, ...] = (
    CipherClass.NULL,
    CipherClass.ANON,
    CipherClass.EXPORT,
    CipherClass.RC4,
    CipherClass.DES,
    CipherClass.TDES,
    CipherClass.STATIC_RSA,
    CipherClass.STATIC_DH,
)

_DES = re.compile(r"_DES(40)?_CBC|_DES_64_CBC|_DES_40_CBC")
_TDES = re.compile(r"3DES|DES_192_EDE3")
_STATIC_DH = re.compile(r"^TLS_(ECDH|DH)_(RSA|ECDSA|DSS)_")


def classify(name: str, *, anonymous: bool = False) -> frozenset[CipherClass]:
    """The classes of one suite from its IANA name (as sslyze reports it).

    SSLv2 suites (``SSL_CK_*``) all use RSA key exchange. ``anonymous`` is sslyze's own flag.
    """
    n = name.upper()
    out: set[CipherClass] = set()
    if "_WITH_NULL" in n or n.endswith("_NULL_NULL"):
        out.add(CipherClass.NULL)
    if anonymous or "_ANON_" in n:
        out.add(CipherClass.ANON)
    if "EXPORT" in n:
        out.add(CipherClass.EXPORT)
    if "_RC4_" in n:
        out.add(CipherClass.RC4)
    if _TDES.search(n):
        out.add(CipherClass.TDES)
    elif _DES.search(n):
        out.add(CipherClass.DES)
    if n.startswith(("TLS_RSA_", "SSL_CK_")):
        out.add(CipherClass.STATIC_RSA)
    if _STATIC_DH.search(n):
        out.add(CipherClass.STATIC_DH)
    if "_CBC" in n:
        out.add(CipherClass.CBC)
    if "_GCM" in n or "_CCM" in n or "CHACHA20_POLY1305" in n:
        out.add(CipherClass.AEAD)
    return frozenset(out)


def curve_bits(name: str) -> int:
    """Key size of a named curve as OpenSSL reports it (X25519: 253); 0 if unknown."""
    fixed = {"X25519": 253, "X448": 448, "PRIME256V1": 256, "PRIME192V1": 192}
    if name.upper() in fixed:
        return fixed[name.upper()]
    m = re.search(r"(\d{3})", name)
    return int(m.group(1)) if m else 0


@dataclass(frozen=True)
class KeyExchange:
    """The ephemeral key a suite negotiated: ``ECDH`` (with its curve) or ``DH``."""

    kind: str
    bits: int
    curve: str | None = None

    @property
    def weak(self) -> bool:
        """DH below :data:`MIN_DH_BITS`, or a curve below :data:`MIN_EC_BITS`."""
        if self.kind == "DH":
            return self.bits < MIN_DH_BITS
        return self.bits < MIN_EC_BITS and (self.curve or "") not in _STRONG_SMALL_CURVES


@dataclass(frozen=True)
class AcceptedSuite:
    """One cipher suite the server accepted at one protocol version."""

    version: TlsVersion
    name: str  # IANA name (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
    openssl_name: str
    key_bits: int
    classes: frozenset[CipherClass]
    key_exchange: KeyExchange | None = None


@dataclass(frozen=True)
class VersionScan:
    """One protocol version: ``accepted`` None means it could not be tested (``error``)."""

    version: TlsVersion
    accepted: bool | None
    suites: tuple[AcceptedSuite, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class Probe:
    """A yes/no finding (vulnerable? supported?): ``value`` None when the probe could not run."""

    value: bool | None
    detail: str = ""
    error: str = ""

    @property
    def ran(self) -> bool:
        """The probe produced a verdict."""
        return self.value is not None


@dataclass(frozen=True)
class Curve:
    """A named elliptic curve the server accepts for ECDH."""

    name: str
    bits: int

    @property
    def weak(self) -> bool:
        """Below :data:`MIN_EC_BITS` (X25519 is not)."""
        return self.bits < MIN_EC_BITS and self.name not in _STRONG_SMALL_CURVES


def _not_run(reason: str) -> Probe:
    return Probe(None, error=reason)


@dataclass(frozen=True)
class ScanResult:
    """Everything one scan found about one TLS endpoint.

    Booleans read as the question: ``heartbleed.value`` True means *vulnerable*,
    ``secure_renegotiation.value`` True means *supported*, ``client_renegotiation.value``
    True means *client-initiated renegotiation accepted*, ``compression.value`` True means
    *compression enabled*. ``errors`` lists every probe that could not run.
    """

    host: str
    port: int
    server_name: str
    status: ScanStatus
    reason: str = ""
    elapsed: float = 0.0
    engine: str = ""
    versions: tuple[VersionScan, ...] = ()
    chain: tuple[x509.Certificate, ...] = ()
    chain_error: str = ""
    heartbleed: Probe = _not_run("not scanned")
    ccs_injection: Probe = _not_run("not scanned")
    robot: Probe = _not_run("not scanned")
    secure_renegotiation: Probe = _not_run("not scanned")
    client_renegotiation: Probe = _not_run("not scanned")
    compression: Probe = _not_run("not scanned")
    fallback_scsv: Probe = _not_run("not scanned")
    extended_master_secret: Probe = _not_run("not scanned")
    curves: tuple[Curve, ...] = ()
    curves_error: str = ""
    errors: tuple[str, ...] = ()

    @property
    def completed(self) -> bool:
        """A handshake completed and the probes ran (some may still have failed: ``errors``)."""
        return self.status is ScanStatus.COMPLETED

    @property
    def endpoint(self) -> str:
        """``host:port`` as scanned."""
        return f"{self.host}:{self.port}"

    @property
    def leaf(self) -> x509.Certificate | None:
        """The served leaf certificate (None if no chain was received)."""
        return self.chain[0] if self.chain else None

    def version(self, v: TlsVersion) -> VersionScan:
        """The result for one version (``accepted`` None if it was not scanned)."""
        for vs in self.versions:
            if vs.version is v:
                return vs
        return VersionScan(v, None, error=self.reason or "not scanned")

    def accepted_versions(self) -> tuple[TlsVersion, ...]:
        """Versions the server negotiated, oldest first."""
        return tuple(vs.version for vs in self.versions if vs.accepted)

    def suites(self) -> tuple[AcceptedSuite, ...]:
        """Every accepted suite, every version."""
        return tuple(s for vs in self.versions for s in vs.suites)

    def by_class(self, cls: CipherClass) -> tuple[AcceptedSuite, ...]:
        """Accepted suites of one class."""
        return tuple(s for s in self.suites() if cls in s.classes)

    def weak_classes(self) -> dict[CipherClass, tuple[str, ...]]:
        """Weak class -> distinct suite names accepted (only classes with at least one)."""
        out: dict[CipherClass, tuple[str, ...]] = {}
        for cls in WEAK_CLASSES:
            names = tuple(dict.fromkeys(s.name for s in self.by_class(cls)))
            if names:
                out[cls] = names
        return out

    def dh_groups(self) -> tuple[int, ...]:
        """Sizes of the finite-field DH groups negotiated, ascending and distinct."""
        return tuple(
            sorted(
                {
                    s.key_exchange.bits
                    for s in self.suites()
                    if s.key_exchange and s.key_exchange.kind == "DH"
                }
            )
        )

    def weak_key_exchanges(self) -> tuple[AcceptedSuite, ...]:
        """Accepted suites whose ephemeral DH/ECDH key is too small."""
        return tuple(s for s in self.suites() if s.key_exchange and s.key_exchange.weak)

    def vulnerabilities(self) -> tuple[str, ...]:
        """Names of the attacks the server is vulnerable to (probes that ran and said so)."""
        found = [
            ("Heartbleed (CVE-2014-0160)", self.heartbleed.value is True),
            ("CCS injection (CVE-2014-0224)", self.ccs_injection.value is True),
            ("ROBOT", self.robot.value is True),
            ("insecure renegotiation (no RFC 5746)", self.secure_renegotiation.value is False),
            ("client-initiated renegotiation", self.client_renegotiation.value is True),
            ("TLS compression (CRIME)", self.compression.value is True),
        ]
        return tuple(name for name, hit in found if hit)

    def evidence(self) -> dict[str, Any]:
        """What an auditor reads next to the verdicts: JSON-ready, small (names, no keys)."""
        return {
            "endpoint": self.endpoint,
            "server_name": self.server_name,
            "status": self.status.value,
            "reason": self.reason,
            "engine": self.engine,
            "elapsed_s": round(self.elapsed, 2),
            "accepted": {
                vs.version.value: [s.name for s in vs.suites] for vs in self.versions if vs.accepted
            },
            "refused": [vs.version.value for vs in self.versions if vs.accepted is False],
            "untested": {vs.version.value: vs.error for vs in self.versions if vs.accepted is None},
            "weak_classes": {c.value: list(n) for c, n in self.weak_classes().items()},
            "curves": [c.name for c in self.curves],
            "dh_groups": list(self.dh_groups()),
            "vulnerable": list(self.vulnerabilities()),
            "errors": list(self.errors),
        }

    def evidence_text(self) -> str:
        """:meth:`evidence` as the lines a report shows under the TLS section."""
        lines = [
            f"TLS scan of {self.endpoint} (SNI {self.server_name}, {self.engine}): "
            f"{self.status.value}" + (f" -- {self.reason}" if self.reason else "")
        ]
        for vs in self.versions:
            if vs.accepted:
                lines.append(f"  {vs.version}: " + ", ".join(s.name for s in vs.suites))
            elif vs.accepted is None:
                lines.append(f"  {vs.version}: not tested ({vs.error})")
            else:
                lines.append(f"  {vs.version}: refused")
        if self.curves:
            lines.append("  curves: " + ", ".join(c.name for c in self.curves))
        if self.dh_groups():
            lines.append("  DH groups: " + ", ".join(f"{b} bits" for b in self.dh_groups()))
        if self.vulnerabilities():
            lines.append("  vulnerable: " + "; ".join(self.vulnerabilities()))
        lines += [f"  probe error: {e}" for e in self.errors]
        return "\n".join(lines)

    def untested_versions(self) -> tuple[VersionScan, ...]:
        """Versions the scan could not test (their ``error`` says why)."""
        return tuple(vs for vs in self.versions if vs.accepted is None)
