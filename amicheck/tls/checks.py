"""Verdicts on a :class:`~amicheck.tls.model.ScanResult`, one function per requirement.

Pure functions (no I/O): the TLS suite calls them and turns the :class:`Verdict` into pass,
fail, error or skip; the comparison test with sslyze calls them directly. Honest outcomes: a
check whose probe could not run is ``ERROR`` with the reason, never ``PASS``; when no handshake
completed, every live check is ``ERROR`` pointing at AMI-TLS-001. Failure messages name every
weakness (the class and the suites, the attack and its CVE).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography import x509

from amicheck.tls.certificate import cert_info, end_entity_problems
from amicheck.tls.model import (
    MIN_DH_BITS,
    MIN_EC_BITS,
    Probe,
    ScanResult,
    ScanStatus,
    TlsVersion,
)

__all__ = [
    "Check",
    "Outcome",
    "Verdict",
    "unscanned",
    "handshake",
    "ssl_versions",
    "legacy_versions",
    "weak_ciphers",
    "heartbleed",
    "ccs_injection",
    "robot",
    "renegotiation",
    "compression",
    "key_exchange",
    "end_entity_leaf",
    "tls13_offered",
    "LIVE_CHECKS",
]

#: Suites named per class in a failure message (the rest are counted).
_SHOW = 4


class Outcome(enum.StrEnum):
    """The four outcomes of a check (style guide rule 14)."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"


@dataclass(frozen=True)
class Verdict:
    """One check's outcome and the sentence that explains it."""

    outcome: Outcome
    message: str = ""

    @property
    def passed(self) -> bool:
        """The requirement holds."""
        return self.outcome is Outcome.PASS


#: A live check: a scan in, a verdict out.
Check = Callable[[ScanResult], Verdict]


def _ok(message: str = "") -> Verdict:
    return Verdict(Outcome.PASS, message)


def _fail(message: str) -> Verdict:
    return Verdict(Outcome.FAIL, message)


def _error(message: str) -> Verdict:
    return Verdict(Outcome.ERROR, message)


def unscanned(r: ScanResult) -> Verdict | None:
    """ERROR when the scan did not complete (the live checks have nothing to judge), else
    None."""
    if r.status is ScanStatus.COMPLETED:
        return None
    if r.status is ScanStatus.NO_HANDSHAKE:
        return _error(f"no TLS handshake with {r.endpoint} (AMI-TLS-001 fails): {r.reason}")
    return _error(f"the TLS scan of {r.endpoint} could not run: {r.reason}")


def _names(names: Iterable[str]) -> str:
    items = list(dict.fromkeys(names))
    shown = ", ".join(items[:_SHOW])
    return shown + (f" and {len(items) - _SHOW} more" if len(items) > _SHOW else "")


def handshake(r: ScanResult) -> Verdict:
    """AMI-TLS-001 (live part): a TLS handshake completes on the TLS port."""
    if r.status is ScanStatus.COMPLETED:
        versions = ", ".join(v.value for v in r.accepted_versions())
        return _ok(f"handshake with {r.endpoint} ({versions})")
    if r.status is ScanStatus.NO_HANDSHAKE:
        return _fail(f"the TLS port {r.endpoint} completes no TLS handshake: {r.reason}")
    return _error(f"the TLS scan of {r.endpoint} could not run: {r.reason}")


def _versions_check(r: ScanResult, versions: tuple[TlsVersion, ...], why: str) -> Verdict:
    if (v := unscanned(r)) is not None:
        return v
    accepted = [r.version(v) for v in versions if r.version(v).accepted]
    if accepted:
        parts = [f"{vs.version} ({_names(s.name for s in vs.suites)})" for vs in accepted]
        return _fail(f"{why} accepted: " + "; ".join(parts))
    untested = [r.version(v) for v in versions if r.version(v).accepted is None]
    if untested:
        return _error("could not test " + "; ".join(f"{vs.version}: {vs.error}" for vs in untested))
    return _ok(", ".join(v.value for v in versions) + " refused")


def ssl_versions(r: ScanResult) -> Verdict:
    """SSL 2.0 (RFC 6176) and SSL 3.0 (RFC 7568, POODLE) are refused."""
    return _versions_check(
        r, (TlsVersion.SSL2_0, TlsVersion.SSL3_0), "prohibited SSL protocol versions"
    )


def legacy_versions(r: ScanResult) -> Verdict:
    """AMI-TLS-005: TLS 1.0 and 1.1 refused (RFC 8996); TLS 1.2 or 1.3 accepted."""
    v = _versions_check(
        r, (TlsVersion.TLS1_0, TlsVersion.TLS1_1), "deprecated TLS versions (RFC 8996)"
    )
    if v.outcome is not Outcome.PASS:
        return v
    modern = [x for x in (TlsVersion.TLS1_2, TlsVersion.TLS1_3) if r.version(x).accepted]
    if not modern:
        return _fail(
            "neither TLS 1.2 nor TLS 1.3 is accepted (only: "
            f"{', '.join(x.value for x in r.accepted_versions()) or 'nothing'})"
        )
    return _ok(v.message + "; " + ", ".join(x.value for x in modern) + " accepted")


def weak_ciphers(r: ScanResult) -> Verdict:
    """AMI-TLS-006: no NULL/anon/EXPORT/RC4/DES/3DES/static-RSA/static-DH suite accepted."""
    if (v := unscanned(r)) is not None:
        return v
    weak = r.weak_classes()
    if weak:
        return _fail(
            "weak cipher suites accepted: "
            + "; ".join(f"{cls} ({_names(names)})" for cls, names in weak.items())
        )
    untested = r.untested_versions()
    if untested:
        return _error(
            "cipher suites not tested at "
            + "; ".join(f"{vs.version}: {vs.error}" for vs in untested)
        )
    return _ok(f"{len(r.suites())} suites accepted, none weak")


def _vuln(probe: Probe, what: str) -> Verdict:
    if probe.value is None:
        return _error(f"the {what} probe could not run: {probe.error or probe.detail}")
    if probe.value:
        return _fail(f"vulnerable to {what}" + (f" ({probe.detail})" if probe.detail else ""))
    return _ok(f"not vulnerable to {what}")


def heartbleed(r: ScanResult) -> Verdict:
    """Not vulnerable to Heartbleed (CVE-2014-0160)."""
    return unscanned(r) or _vuln(r.heartbleed, "Heartbleed (CVE-2014-0160)")


def ccs_injection(r: ScanResult) -> Verdict:
    """Not vulnerable to OpenSSL CCS injection (CVE-2014-0224)."""
    return unscanned(r) or _vuln(r.ccs_injection, "OpenSSL CCS injection (CVE-2014-0224)")


def robot(r: ScanResult) -> Verdict:
    """Not vulnerable to ROBOT (Bleichenbacher oracle on RSA key exchange)."""
    return unscanned(r) or _vuln(r.robot, "ROBOT (RSA padding oracle, CVE-2017-13099 family)")


def renegotiation(r: ScanResult) -> Verdict:
    """Secure renegotiation (RFC 5746) supported and client-initiated renegotiation refused."""
    if (v := unscanned(r)) is not None:
        return v
    problems: list[str] = []
    for probe in (r.secure_renegotiation, r.client_renegotiation):
        if probe.value is None:
            return _error(f"the renegotiation probe could not run: {probe.error}")
    if r.secure_renegotiation.value is False:
        problems.append("secure renegotiation (RFC 5746) is not supported (CVE-2009-3555)")
    if r.client_renegotiation.value:
        problems.append(
            "client-initiated renegotiation is accepted (CVE-2011-1473, handshake DoS): "
            + r.client_renegotiation.detail
        )
    return _fail("; ".join(problems)) if problems else _ok("renegotiation is secure")


def compression(r: ScanResult) -> Verdict:
    """TLS compression is off (CRIME, CVE-2012-4929)."""
    if (v := unscanned(r)) is not None:
        return v
    p = r.compression
    if p.value is None:
        return _error(f"the compression probe could not run: {p.error}")
    if p.value:
        return _fail("TLS compression is enabled (CRIME, CVE-2012-4929)")
    return _ok("compression off")


def key_exchange(r: ScanResult) -> Verdict:
    """DH groups >= 2048 bits and EC curves >= 256 bits (X25519/X448 allowed) where offered."""
    if (v := unscanned(r)) is not None:
        return v
    problems: list[str] = []
    dh_small = sorted(b for b in r.dh_groups() if b < MIN_DH_BITS)
    if dh_small:
        problems.append(
            f"DH group of {', '.join(map(str, dh_small))} bits (need >= {MIN_DH_BITS}, Logjam)"
        )
    weak_curves = {c.name: c.bits for c in r.curves if c.weak}
    for s in r.suites():
        kx = s.key_exchange
        if kx is not None and kx.kind != "DH" and kx.weak:
            weak_curves[kx.curve or kx.kind] = kx.bits
    if weak_curves:
        problems.append(
            "EC curves below 256 bits: "
            + ", ".join(f"{n} ({b} bits)" for n, b in sorted(weak_curves.items()))
            + f" (need >= {MIN_EC_BITS})"
        )
    if problems:
        return _fail("; ".join(problems))
    ecdh = any(s.key_exchange and s.key_exchange.kind != "DH" for s in r.suites())
    if r.curves_error and ecdh:
        return _error(f"the curve probe could not run: {r.curves_error}")
    return _ok("key exchange groups are strong")


def end_entity_leaf(
    r: ScanResult, names: Iterable[str], *, leaf: x509.Certificate | None = None
) -> Verdict:
    """The served leaf is an end-entity certificate whose subjectAltName covers ``names``."""
    if (v := unscanned(r)) is not None:
        return v
    cert = leaf or r.leaf
    if cert is None:
        return _error(f"no certificate received from {r.endpoint}: {r.chain_error}")
    problems = end_entity_problems(cert_info(cert), names)
    if problems:
        return _fail("; ".join(p.message for p in problems))
    return _ok("end-entity leaf covering " + ", ".join(names))


def tls13_offered(r: ScanResult) -> Verdict:
    """TLS 1.3 is offered (informational: RFC 8446)."""
    if (v := unscanned(r)) is not None:
        return v
    vs = r.version(TlsVersion.TLS1_3)
    if vs.accepted is None:
        return _error(f"TLS 1.3 could not be tested: {vs.error}")
    if not vs.accepted:
        best = r.accepted_versions()[-1].value if r.accepted_versions() else "nothing"
        return _fail(f"TLS 1.3 is not offered (best: {best})")
    return _ok("TLS 1.3: " + _names(s.name for s in vs.suites))


#: Checks that need only the scan, by name (the comparison test runs them all).
LIVE_CHECKS: dict[str, Check] = {
    "ssl-versions": ssl_versions,
    "legacy-versions": legacy_versions,
    "weak-ciphers": weak_ciphers,
    "heartbleed": heartbleed,
    "ccs-injection": ccs_injection,
    "robot": robot,
    "renegotiation": renegotiation,
    "compression": compression,
    "key-exchange": key_exchange,
    "tls13": tls13_offered,
}
