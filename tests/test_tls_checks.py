"""amicheck.tls.checks: each verdict on hand-built scan results (pure data, no network):
pass on a clean scan, fail naming the weakness, error (never pass) when a probe did not run."""

from __future__ import annotations

import dataclasses
import functools

import pytest
from cryptography import x509

from amicheck.tls import checks
from amicheck.tls.checks import Outcome
from amicheck.tls.material import Authority, make_self_signed
from amicheck.tls.model import (
    AcceptedSuite,
    Curve,
    KeyExchange,
    Probe,
    ScanResult,
    ScanStatus,
    TlsVersion,
    VersionScan,
    classify,
)

ECDHE = KeyExchange("ECDH", 253, "X25519")


@functools.cache
def _leaf() -> x509.Certificate:
    return Authority.generate().issue().certificate


def _suite(v: TlsVersion, name: str, kx: KeyExchange | None = ECDHE) -> AcceptedSuite:
    return AcceptedSuite(v, name, name, 128, classify(name), kx)


def _clean(**over: object) -> ScanResult:
    T12, T13 = TlsVersion.TLS1_2, TlsVersion.TLS1_3
    versions = tuple(VersionScan(v, False) for v in TlsVersion if v not in (T12, T13)) + (
        VersionScan(T12, True, (_suite(T12, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),)),
        VersionScan(T13, True, (_suite(T13, "TLS_AES_128_GCM_SHA256"),)),
    )
    leaf = _leaf()
    base = ScanResult(
        "127.0.0.1",
        5039,
        "127.0.0.1",
        ScanStatus.COMPLETED,
        versions=versions,
        chain=(leaf,),
        heartbleed=Probe(False),
        ccs_injection=Probe(False),
        robot=Probe(False, "NOT_VULNERABLE_NO_ORACLE"),
        secure_renegotiation=Probe(True),
        client_renegotiation=Probe(False, "0 client renegotiations accepted"),
        compression=Probe(False),
        fallback_scsv=Probe(True),
        extended_master_secret=Probe(True),
        curves=(Curve("X25519", 253), Curve("secp256r1", 256)),
    )
    return dataclasses.replace(base, **over)  # type: ignore[arg-type]


def _with_version(r: ScanResult, vs: VersionScan) -> ScanResult:
    return dataclasses.replace(
        r, versions=tuple(vs if x.version is vs.version else x for x in r.versions)
    )


def test_clean_scan_passes_everything() -> None:
    r = _clean()
    for name, check in checks.LIVE_CHECKS.items():
        assert check(r).outcome is Outcome.PASS, (name, check(r))
    assert checks.handshake(r).passed
    assert checks.end_entity_leaf(r, ["127.0.0.1", "localhost"]).passed


@pytest.mark.parametrize("status", [ScanStatus.NO_HANDSHAKE, ScanStatus.ERROR])
def test_no_scan_is_error_everywhere(status: ScanStatus) -> None:
    r = ScanResult("127.0.0.1", 5039, "127.0.0.1", status, "it speaks first")
    hs = checks.handshake(r)
    assert hs.outcome is (Outcome.FAIL if status is ScanStatus.NO_HANDSHAKE else Outcome.ERROR)
    for name, check in checks.LIVE_CHECKS.items():
        v = check(r)
        assert v.outcome is Outcome.ERROR and "it speaks first" in v.message, name
    assert checks.end_entity_leaf(r, ["127.0.0.1"]).outcome is Outcome.ERROR


def test_ssl3_named() -> None:
    v3 = TlsVersion.SSL3_0
    r = _with_version(_clean(), VersionScan(v3, True, (_suite(v3, "TLS_RSA_WITH_RC4_128_SHA"),)))
    v = checks.ssl_versions(r)
    assert v.outcome is Outcome.FAIL and "SSLv3 (TLS_RSA_WITH_RC4_128_SHA)" in v.message
    w = checks.weak_ciphers(r)
    assert "RC4 (TLS_RSA_WITH_RC4_128_SHA)" in w.message and "static-RSA" in w.message


def test_untested_version_is_error_not_pass() -> None:
    r = _with_version(_clean(), VersionScan(TlsVersion.SSL2_0, None, error="timed out"))
    assert checks.ssl_versions(r).outcome is Outcome.ERROR
    assert "SSLv2: timed out" in checks.ssl_versions(r).message
    assert checks.weak_ciphers(r).outcome is Outcome.ERROR


def test_legacy_versions() -> None:
    t10 = TlsVersion.TLS1_0
    r = _with_version(
        _clean(), VersionScan(t10, True, (_suite(t10, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),))
    )
    v = checks.legacy_versions(r)
    assert v.outcome is Outcome.FAIL and "TLSv1.0" in v.message and "RFC 8996" in v.message
    assert checks.weak_ciphers(r).passed  # CBC alone is not a weak class
    only_old = dataclasses.replace(
        _clean(), versions=tuple(VersionScan(x, False) for x in TlsVersion)
    )
    assert "neither TLS 1.2 nor TLS 1.3" in checks.legacy_versions(only_old).message


def test_weak_cipher_message_counts_the_rest() -> None:
    t12 = TlsVersion.TLS1_2
    names = [f"TLS_RSA_WITH_AES_{n}_CBC_SHA" for n in range(6)]
    r = _with_version(_clean(), VersionScan(t12, True, tuple(_suite(t12, n, None) for n in names)))
    v = checks.weak_ciphers(r)
    assert v.outcome is Outcome.FAIL and "static-RSA" in v.message and "and 2 more" in v.message


@pytest.mark.parametrize(
    ("field", "check", "text"),
    [
        ("heartbleed", checks.heartbleed, "CVE-2014-0160"),
        ("ccs_injection", checks.ccs_injection, "CVE-2014-0224"),
        ("robot", checks.robot, "ROBOT"),
        ("compression", checks.compression, "CRIME"),
    ],
)
def test_vulnerability_probes(field: str, check: checks.Check, text: str) -> None:
    assert check(_clean(**{field: Probe(True, "x")})).outcome is Outcome.FAIL
    assert text in check(_clean(**{field: Probe(True, "x")})).message
    err = check(_clean(**{field: Probe(None, error="connection reset")}))
    assert err.outcome is Outcome.ERROR and "connection reset" in err.message


def test_renegotiation() -> None:
    v = checks.renegotiation(_clean(secure_renegotiation=Probe(False)))
    assert v.outcome is Outcome.FAIL and "RFC 5746" in v.message
    v = checks.renegotiation(_clean(client_renegotiation=Probe(True, "10 accepted")))
    assert v.outcome is Outcome.FAIL and "client-initiated" in v.message
    v = checks.renegotiation(_clean(client_renegotiation=Probe(None, error="reset")))
    assert v.outcome is Outcome.ERROR


def test_key_exchange() -> None:
    t12 = TlsVersion.TLS1_2
    dhe = _suite(t12, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", KeyExchange("DH", 1024))
    r = _with_version(_clean(), VersionScan(t12, True, (dhe,)))
    v = checks.key_exchange(r)
    assert v.outcome is Outcome.FAIL and "DH group of 1024 bits" in v.message
    r = _clean(curves=(Curve("X25519", 253), Curve("secp192r1", 192)))
    assert "secp192r1 (192 bits)" in checks.key_exchange(r).message
    assert checks.key_exchange(_clean(curves=(), curves_error="reset")).outcome is Outcome.ERROR


def test_end_entity_leaf() -> None:
    pem, _ = make_self_signed("asterisk", san=())
    cn_only = x509.load_pem_x509_certificate(pem)
    v = checks.end_entity_leaf(_clean(chain=(cn_only,)), ["127.0.0.1"])
    assert v.outcome is Outcome.FAIL and "CA:TRUE" in v.message and "subjectAltName" in v.message
    v = checks.end_entity_leaf(_clean(), ["ucm.example"])
    assert v.outcome is Outcome.FAIL and "'ucm.example'" in v.message
    assert checks.end_entity_leaf(_clean(chain=()), ["x"]).outcome is Outcome.ERROR


def test_tls13() -> None:
    r = _with_version(_clean(), VersionScan(TlsVersion.TLS1_3, False))
    v = checks.tls13_offered(r)
    assert v.outcome is Outcome.FAIL and "best: TLSv1.2" in v.message
