"""AMI-TLS: the TLS listener, its certificate, protocol versions, cipher suites and
plaintext exposure. Probes come from :mod:`amicheck.tlsaudit` (pyOpenSSL, every handshake
with a deadline); a probe this machine's OpenSSL cannot make is reported, never passed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from amicheck import tlsaudit
from amicheck.client import AmiClient
from amicheck.errors import AmiCheckError
from amicheck.plugin import Target
from amicheck.profile import Profile
from amicheck.tlsaudit import ProbeStatus, TlsVersion

from ._support import STEP_TIMEOUT, describe, known_users

#: A certificate must stay valid at least this long.
MIN_REMAINING = dt.timedelta(days=30)
#: Seconds to wait for a plaintext banner before speaking first.
BANNER_WAIT = 0.3
#: Status codes of :func:`tlsaudit.cert_report` that make the key/signature check fail.
STRENGTH_CODES = frozenset({"weak-key", "weak-signature"})
#: Codes of the static file check (parse, size, pair).
FILE_CODES = frozenset({"bad-pem", "too-big", "unreadable", "key-mismatch"})


def _tls_port(target: Target) -> int:
    if target.tls_port is None:
        pytest.skip("TLS is not enabled in the profile (settings.tls_enable = false)")
    return target.tls_port


def _served_leaf(target: Target) -> x509.Certificate:
    port = _tls_port(target)
    try:
        chain = tlsaudit.fetch_certificate_chain(target.host, port, timeout=STEP_TIMEOUT)
    except AmiCheckError as exc:
        pytest.fail(f"no certificate from the TLS port {target.host}:{port}: {exc}")
    return chain[0]


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
    ami_target: Target, ami_profile: Profile, ami_connect: Callable[..., AmiClient]
) -> None:
    """The TLS port speaks TLS, greets with the AMI banner and logs in; without TLS enabled
    nothing listens there."""
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
        pytest.fail(f"TLS is disabled in the profile but {ami_target.host}:{s.tls_port} "
                    "accepts connections")
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
def test_certificate_validity(ami_target: Target) -> None:
    """The served certificate is valid now and for at least 30 more days."""
    leaf = _served_leaf(ami_target)
    info = tlsaudit.cert_info(leaf)
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
def test_certificate_strength(ami_target: Target) -> None:
    """The served key is RSA >= 2048 or EC >= 256 bits and is signed with SHA-256 or better."""
    report = tlsaudit.cert_report(_served_leaf(ami_target), source="served certificate")
    bad = [p for p in report.problems if p.code in STRENGTH_CODES]
    info = report.info
    desc = f"{info.key_type}-{info.key_bits}, {info.signature_hash}" if info else "?"
    assert not bad, f"weak certificate ({desc}): " + "; ".join(p.message for p in bad)


@pytest.mark.requirement("AMI-TLS-004")
def test_certificate_files(ami_target: Target, ami_profile: Profile) -> None:
    """The profile's PEM files parse, are under 2 MB and match each other, and the TLS port
    serves exactly that certificate."""
    files = _profile_files(ami_profile, ami_target)
    if files is None:
        pytest.skip("the profile names no TLS certificate file ([tls] cert)")
    cert_path, key_path = files
    report = tlsaudit.audit_pem_files(cert_path, key_path)
    problems = [p.message for p in report.problems if p.code in FILE_CODES]
    if report.info is not None and ami_target.tls_port is not None:
        served = tlsaudit.cert_info(_served_leaf(ami_target))
        if served.fingerprint_sha256 != report.info.fingerprint_sha256:
            problems.append(
                f"the TLS port serves {served.subject} (SHA-256 {served.fingerprint_sha256[:16]}"
                f"...), not the certificate in {cert_path.name} ({report.info.subject}, "
                f"{report.info.fingerprint_sha256[:16]}...)"
            )
    assert not problems, "TLS files:\n" + "\n".join(problems)


@pytest.mark.requirement("AMI-TLS-005")
def test_protocol_versions(ami_target: Target) -> None:
    """TLS 1.0 and 1.1 are refused; TLS 1.2 or 1.3 is accepted."""
    port = _tls_port(ami_target)
    probes = tlsaudit.probe_versions(ami_target.host, port, timeout=STEP_TIMEOUT)
    by_version = {p.version: p for p in probes}
    errors = [f"{p.version}: {p.detail}" for p in probes if p.status is ProbeStatus.ERROR]
    assert not errors, "version probes could not connect: " + "; ".join(errors)
    legacy = [f"{p.version} ({p.cipher})" for p in probes
              if p.version.legacy and p.status is ProbeStatus.ACCEPTED]
    assert not legacy, "legacy protocol versions accepted: " + ", ".join(legacy)
    modern = [v for v in (TlsVersion.TLS1_2, TlsVersion.TLS1_3)
              if by_version[v].status is ProbeStatus.ACCEPTED]
    assert modern, "neither TLS 1.2 nor TLS 1.3 is accepted: " + "; ".join(
        f"{p.version}: {p.status} {p.detail}" for p in probes)
    untested = [str(p.version) for p in probes if p.status is ProbeStatus.NOT_TESTABLE]
    if untested and all(by_version[v].status is ProbeStatus.NOT_TESTABLE
                        for v in (TlsVersion.TLS1_0, TlsVersion.TLS1_1)):
        pytest.skip("this machine's OpenSSL cannot offer TLS 1.0 or 1.1 "
                    f"({', '.join(untested)} not testable); TLS 1.2+ is accepted")


@pytest.mark.requirement("AMI-TLS-006")
def test_cipher_suites(ami_target: Target) -> None:
    """No NULL, anonymous, EXPORT, RC4, DES, 3DES or static-RSA (no forward secrecy) suite is
    accepted."""
    port = _tls_port(ami_target)
    probes = tlsaudit.probe_cipher_classes(ami_target.host, port, timeout=STEP_TIMEOUT)
    errors = [f"{p.name}: {p.detail}" for p in probes if p.status is ProbeStatus.ERROR]
    assert not errors, "cipher probes could not connect: " + "; ".join(errors)
    weak = [f"{p.name} ({p.cipher})" for p in probes if p.status is ProbeStatus.ACCEPTED]
    assert not weak, "weak cipher suites accepted: " + ", ".join(weak)
    if all(p.status is ProbeStatus.NOT_TESTABLE for p in probes):
        pytest.skip("this machine's OpenSSL can offer none of the weak cipher classes")


@pytest.mark.requirement("AMI-TLS-007")
def test_plaintext_on_tls_port(ami_target: Target) -> None:
    """Plaintext AMI spoken to the TLS port gets no AMI banner or reply."""
    port = _tls_port(ami_target)
    probe = tlsaudit.probe_plaintext(
        ami_target.host, port, timeout=STEP_TIMEOUT, banner_wait=BANNER_WAIT
    )
    assert probe.status is not ProbeStatus.ERROR, f"could not connect to {port}: {probe.detail}"
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
    probe = tlsaudit.probe_plaintext(
        ami_target.host, ami_target.port, timeout=STEP_TIMEOUT, banner_wait=BANNER_WAIT
    )
    assert probe.status is not ProbeStatus.ACCEPTED, (
        f"plaintext AMI answers on {ami_target.host}:{ami_target.port} while TLS is on and the "
        f"profile sets tls.plaintext_allowed = false ({probe.reply})"
    )
