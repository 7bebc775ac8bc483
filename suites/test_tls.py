"""AMI-TLS: the TLS listener, its certificate, protocol versions, cipher suites, known
attacks, and plaintext exposure.

Every live handshake probe is one sslyze scan of the TLS port (:func:`amicheck.tls.scan`,
about a second on loopback, cached for the session) judged by :mod:`amicheck.tls.checks`.
Honest outcomes: a check whose probe could not run is an *error* with the reason (raised in
the fixture), never a pass; a TLS port that completes no handshake fails AMI-TLS-001 and
makes every other live TLS check an error that says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from amicheck.client import AmiClient
from amicheck.errors import AmiCheckError
from amicheck.plugin import Target
from amicheck.profile import Profile
from amicheck.tls import checks
from amicheck.tls.certificate import audit_pem_files, cert_info, cert_report
from amicheck.tls.checks import Outcome, Verdict
from amicheck.tls.model import ScanResult
from amicheck.tls.plaintext import ProbeStatus, probe_plaintext
from amicheck.tls.scan import scan

from ._support import STEP_TIMEOUT, describe, known_users

#: A certificate must stay valid at least this long.
MIN_REMAINING = dt.timedelta(days=30)
#: Seconds to wait for a plaintext banner before speaking first.
BANNER_WAIT = 0.3
#: The whole sslyze scan of one endpoint (issue 8: the TLS suite in < 20 s per endpoint).
SCAN_DEADLINE = 60.0
#: Status codes of :func:`cert_report` that make the key/signature check fail.
STRENGTH_CODES = frozenset({"weak-key", "weak-signature"})
#: Codes of the static file check (parse, size, pair).
FILE_CODES = frozenset({"bad-pem", "too-big", "unreadable", "key-mismatch"})
#: user_properties name carrying the scan evidence (versions and suites accepted, curves,
#: DH groups, vulnerabilities) as report text; :meth:`ScanResult.evidence` is the JSON form.
EVIDENCE_PROPERTY = "ami_tls_evidence"

_SCANS: dict[tuple[str, int], ScanResult] = {}


class TlsCheckError(AmiCheckError):
    """The check could not run (raised in setup: the report shows an error, not a pass)."""


def _tls_port(target: Target) -> int:
    if target.tls_port is None:
        pytest.skip("TLS is not enabled in the profile (settings.tls_enable = false)")
    return target.tls_port


def _scan(target: Target) -> ScanResult:
    """One sslyze scan per TLS endpoint and session."""
    port = _tls_port(target)
    key = (target.host, port)
    if key not in _SCANS:
        _SCANS[key] = scan(target.host, port, timeout=STEP_TIMEOUT, deadline=SCAN_DEADLINE)
    return _SCANS[key]


def _evidence(request: pytest.FixtureRequest, result: ScanResult) -> None:
    request.node.user_properties.append((EVIDENCE_PROPERTY, result.evidence_text()))


_LIVE: dict[str, checks.Check] = {
    "AMI-TLS-005": checks.legacy_versions,
    "AMI-TLS-006": checks.weak_ciphers,
    "AMI-TLS-009": checks.ssl_versions,
    "AMI-TLS-010": checks.heartbleed,
    "AMI-TLS-011": checks.ccs_injection,
    "AMI-TLS-012": checks.robot,
    "AMI-TLS-013": checks.renegotiation,
    "AMI-TLS-014": checks.compression,
    "AMI-TLS-015": checks.key_exchange,
    "AMI-TLS-017": checks.tls13_offered,
}


def _settle(v: Verdict) -> Verdict:
    """ERROR and SKIP end the test here (setup); PASS and FAIL go to the test body."""
    if v.outcome is Outcome.ERROR:
        raise TlsCheckError(v.message)
    if v.outcome is Outcome.SKIP:
        pytest.skip(v.message)
    return v


@pytest.fixture
def tls_scan(ami_target: Target, request: pytest.FixtureRequest) -> ScanResult:
    """The session's scan of the TLS port (skip when TLS is off), evidence recorded."""
    result = _scan(ami_target)
    _evidence(request, result)
    return result


@pytest.fixture
def verdict(tls_scan: ScanResult, request: pytest.FixtureRequest) -> Verdict:
    """The verdict of the test's own requirement on the scan."""
    marker = request.node.get_closest_marker("requirement")
    assert marker is not None
    return _settle(_LIVE[str(marker.args[0])](tls_scan))


def _served_leaf(result: ScanResult) -> x509.Certificate:
    """The leaf the TLS port served; TlsCheckError when there is none."""
    if (v := checks.unscanned(result)) is not None:
        raise TlsCheckError(v.message)
    if result.leaf is None:
        raise TlsCheckError(
            f"no certificate received from {result.endpoint}: {result.chain_error}"
        )
    return result.leaf


@pytest.fixture
def served_leaf(tls_scan: ScanResult) -> x509.Certificate:
    """The served leaf, or an error in setup (never a pass) when no handshake completed."""
    return _served_leaf(tls_scan)


@pytest.fixture
def served_leaf_if_tls(
    ami_target: Target, request: pytest.FixtureRequest
) -> x509.Certificate | None:
    """As ``served_leaf``, but None (no error, no skip) when TLS is off."""
    if ami_target.tls_port is None:
        return None
    result = _scan(ami_target)
    _evidence(request, result)
    return _served_leaf(result)


def _profile_files(profile: Profile, target: Target) -> tuple[Path, Path | None] | None:
    """The certificate (and key) the UCM was given; on the simulator, the files it stores."""
    if profile.tls.cert is not None:
        return profile.tls.cert, profile.tls.key
    sim = target.sim
    cert = getattr(sim, "tls_cert_path", None) if sim is not None else None
    if cert is not None:
        return Path(cert), getattr(sim, "tls_key_path", None)
    return None


@pytest.mark.requirement("AMI-TLS-001")
def test_tls_listener(
    ami_target: Target,
    ami_profile: Profile,
    ami_connect: Callable[..., AmiClient],
    request: pytest.FixtureRequest,
) -> None:
    """The TLS port completes a TLS handshake, greets with the AMI banner and logs in;
    without TLS enabled nothing listens there."""
    s = ami_profile.settings
    if not s.tls_enable:
        if ami_target.is_sim:
            assert ami_target.tls_port is None, "the simulator opened a TLS port with TLS off"
            return
        try:
            client = ami_connect(port=s.tls_port, timeout=STEP_TIMEOUT, read_banner=False)
        except AmiCheckError:
            return  # refused: nothing listens, as the profile says
        client.close()
        pytest.fail(
            f"TLS is disabled in the profile but {ami_target.host}:{s.tls_port} "
            "accepts connections"
        )
    result = _scan(ami_target)
    _evidence(request, result)
    hs = checks.handshake(result)
    if hs.outcome is Outcome.ERROR:
        raise TlsCheckError(hs.message)
    assert hs.passed, hs.message
    port = _tls_port(ami_target)
    try:
        client = ami_connect(tls=True, timeout=STEP_TIMEOUT)
    except AmiCheckError as exc:
        pytest.fail(f"no TLS AMI session on {ami_target.host}:{port}: {exc}")
    assert client.banner is not None and client.banner.startswith("Asterisk Call Manager/"), (
        f"no AMI banner over TLS: first bytes {client.received[:80]!r}"
    )
    users = known_users(ami_profile)
    if not users:
        return  # banner seen; login needs a secret
    user = users[0]
    assert user.secret is not None
    try:
        client.login(user.username, user.secret, events=False, timeout=STEP_TIMEOUT)
        reply = client.request("Ping", timeout=STEP_TIMEOUT)
    except AmiCheckError as exc:
        pytest.fail(f"login and Ping as {user.username} over TLS: {exc}")
    assert reply.ok, f"Ping over TLS answered {describe(reply.response)}"


@pytest.mark.requirement("AMI-TLS-002")
def test_certificate_validity(served_leaf: x509.Certificate) -> None:
    """The served certificate is valid now and for at least 30 more days."""
    info = cert_info(served_leaf)
    now = dt.datetime.now(dt.UTC)
    assert info.not_before <= now, f"certificate not valid before {info.not_before:%Y-%m-%d}"
    assert info.not_after > now, (
        f"certificate expired on {info.not_after:%Y-%m-%d %H:%M} UTC ({info.subject})"
    )
    left = info.not_after - now
    assert left >= MIN_REMAINING, (
        f"certificate expires in {left.days} days ({info.not_after:%Y-%m-%d}); renew it "
        f"before fewer than {MIN_REMAINING.days} days are left"
    )


@pytest.mark.requirement("AMI-TLS-003")
def test_certificate_strength(served_leaf: x509.Certificate) -> None:
    """The served key is RSA >= 2048 or EC >= 256 bits and is signed with SHA-256 or better."""
    report = cert_report(served_leaf, source="served certificate")
    bad = [p for p in report.problems if p.code in STRENGTH_CODES]
    info = report.info
    desc = f"{info.key_type}-{info.key_bits}, {info.signature_hash}" if info else "?"
    assert not bad, f"weak certificate ({desc}): " + "; ".join(p.message for p in bad)


@pytest.mark.requirement("AMI-TLS-004")
def test_certificate_files(
    ami_target: Target, ami_profile: Profile, served_leaf_if_tls: x509.Certificate | None
) -> None:
    """The profile's PEM files parse, are under 2 MB and match each other, and the TLS port
    serves exactly that certificate."""
    files = _profile_files(ami_profile, ami_target)
    if files is None:
        pytest.skip("the profile names no TLS certificate file ([tls] cert)")
    cert_path, key_path = files
    report = audit_pem_files(cert_path, key_path)
    problems = [p.message for p in report.problems if p.code in FILE_CODES]
    if report.info is not None and served_leaf_if_tls is not None:
        served = cert_info(served_leaf_if_tls)
        if served.fingerprint_sha256 != report.info.fingerprint_sha256:
            problems.append(
                f"the TLS port serves {served.subject} (SHA-256 {served.fingerprint_sha256[:16]}"
                f"...), not the certificate in {cert_path.name} ({report.info.subject}, "
                f"{report.info.fingerprint_sha256[:16]}...)"
            )
    assert not problems, "TLS files:\n" + "\n".join(problems)


@pytest.mark.requirement("AMI-TLS-005")
def test_protocol_versions(verdict: Verdict) -> None:
    """TLS 1.0 and 1.1 are refused; TLS 1.2 or 1.3 is accepted."""
    assert verdict.passed, verdict.message


@pytest.mark.requirement("AMI-TLS-006")
def test_cipher_suites(verdict: Verdict) -> None:
    """No NULL, anonymous, EXPORT, RC4, DES, 3DES or static-RSA/DH (no forward secrecy)
    suite is accepted, at any protocol version."""
    assert verdict.passed, verdict.message


@pytest.mark.requirement("AMI-TLS-007")
def test_plaintext_on_tls_port(ami_target: Target) -> None:
    """Plaintext AMI spoken to the TLS port gets no AMI banner or reply."""
    port = _tls_port(ami_target)
    probe = probe_plaintext(ami_target.host, port, timeout=STEP_TIMEOUT, banner_wait=BANNER_WAIT)
    if probe.status is ProbeStatus.ERROR:
        raise TlsCheckError(f"could not connect to {ami_target.host}:{port}: {probe.detail}")
    assert probe.status is not ProbeStatus.ACCEPTED, (
        f"the TLS port {ami_target.host}:{port} answers plaintext AMI ({probe.reply}): "
        f"{probe.data[:80]!r}"
    )


@pytest.mark.requirement("AMI-TLS-008")
def test_plaintext_next_to_tls(ami_target: Target, ami_profile: Profile) -> None:
    """With TLS on, the plain AMI port answers only if the profile allows plaintext."""
    if not ami_profile.settings.tls_enable:
        pytest.skip("TLS is off in the profile: plaintext AMI is the only AMI")
    if ami_profile.tls.plaintext_allowed:
        return  # plaintext next to TLS is accepted by the profile ([tls] plaintext_allowed)
    probe = probe_plaintext(
        ami_target.host, ami_target.port, timeout=STEP_TIMEOUT, banner_wait=BANNER_WAIT
    )
    assert probe.status is not ProbeStatus.ACCEPTED, (
        f"plaintext AMI answers on {ami_target.host}:{ami_target.port} while TLS is on and the "
        f"profile sets tls.plaintext_allowed = false ({probe.reply})"
    )


@pytest.mark.requirement("AMI-TLS-009")
def test_ssl_versions(verdict: Verdict) -> None:
    """SSL 2.0 and SSL 3.0 are refused."""
    assert verdict.passed, verdict.message


@pytest.mark.requirement("AMI-TLS-010")
def test_heartbleed(verdict: Verdict) -> None:
    """The TLS listener is not vulnerable to Heartbleed (CVE-2014-0160)."""
    assert verdict.passed, verdict.message


@pytest.mark.requirement("AMI-TLS-011")
def test_ccs_injection(verdict: Verdict) -> None:
    """The TLS listener is not vulnerable to OpenSSL CCS injection (CVE-2014-0224)."""
    assert verdict.passed, verdict.message


@pytest.mark.requirement("AMI-TLS-012")
def test_robot(verdict: Verdict) -> None:
    """The TLS listener is not vulnerable to ROBOT (an RSA padding oracle)."""
    assert verdict.passed, verdict.message


@pytest.mark.requirement("AMI-TLS-013")
def test_renegotiation(verdict: Verdict) -> None:
    """Secure renegotiation (RFC 5746) is supported; client-initiated renegotiation is
    refused."""
    assert verdict.passed, verdict.message


@pytest.mark.requirement("AMI-TLS-014")
def test_compression(verdict: Verdict) -> None:
    """TLS compression is off (CRIME)."""
    assert verdict.passed, verdict.message


@pytest.mark.requirement("AMI-TLS-015")
def test_key_exchange_groups(verdict: Verdict) -> None:
    """Finite-field DH groups have >= 2048 bits and EC curves >= 256 bits, where offered."""
    assert verdict.passed, verdict.message


@pytest.mark.requirement("AMI-TLS-016")
def test_end_entity_certificate(
    tls_scan: ScanResult, served_leaf: x509.Certificate, ami_target: Target
) -> None:
    """The served leaf is an end-entity certificate (no CA:TRUE) whose subjectAltName covers
    the address the target is reached at."""
    v = checks.end_entity_leaf(tls_scan, [ami_target.host], leaf=served_leaf)
    assert v.passed, v.message


@pytest.mark.requirement("AMI-TLS-017")
def test_tls13_offered(verdict: Verdict) -> None:
    """TLS 1.3 is offered (informational)."""
    assert verdict.passed, verdict.message
