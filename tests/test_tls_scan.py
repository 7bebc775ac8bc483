"""amicheck.tls.scan: sslyze on the simulator (compliant and each TLS fault) and on real
legacy servers (tests/tls_servers.py), plus the pure suite classification."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from tls_servers import scanned_legacy, scanned_sim

from amicheck.profile import default_profile
from amicheck.sim import FAULTS, Simulator
from amicheck.tls.certificate import cert_info, cert_report, end_entity_problems, same_certificate
from amicheck.tls.model import (
    CipherClass,
    KeyExchange,
    ScanResult,
    ScanStatus,
    TlsVersion,
    classify,
)
from amicheck.tls.scan import scan

HOST = "127.0.0.1"
#: Issue 8: the TLS suite against one endpoint in under 20 s; one scan is most of it.
SCAN_BUDGET = 20.0


def _sim_scan(*faults: str) -> tuple[ScanResult, bytes]:
    """The simulator's TLS port scanned (shared with test_tls_vs_sslyze), and its cert file."""
    r, _, cert = scanned_sim(faults[0] if faults else None)
    return r, cert


@pytest.fixture(scope="module")
def compliant() -> tuple[ScanResult, bytes]:
    return _sim_scan()


# --- classification (pure) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", {"AEAD"}),
        ("TLS_AES_256_GCM_SHA384", {"AEAD"}),
        ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", {"AEAD"}),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", {"CBC"}),
        ("TLS_RSA_WITH_AES_128_GCM_SHA256", {"static-RSA", "AEAD"}),
        ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", {"static-RSA", "3DES", "CBC"}),
        ("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", {"3DES", "CBC"}),
        ("TLS_RSA_WITH_RC4_128_SHA", {"static-RSA", "RC4"}),
        ("TLS_RSA_WITH_NULL_SHA256", {"static-RSA", "NULL"}),
        ("TLS_ECDH_anon_WITH_AES_128_CBC_SHA", {"anon", "CBC"}),
        ("TLS_DH_anon_WITH_3DES_EDE_CBC_SHA", {"anon", "3DES", "CBC"}),
        ("TLS_RSA_EXPORT_WITH_RC4_40_MD5", {"static-RSA", "EXPORT", "RC4"}),
        ("TLS_RSA_EXPORT_WITH_DES40_CBC_SHA", {"static-RSA", "EXPORT", "DES", "CBC"}),
        ("TLS_DHE_RSA_WITH_DES_CBC_SHA", {"DES", "CBC"}),
        ("TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256", {"static-DH", "AEAD"}),
        ("SSL_CK_DES_192_EDE3_CBC_WITH_MD5", {"static-RSA", "3DES", "CBC"}),
        ("SSL_CK_RC4_128_EXPORT40_WITH_MD5", {"static-RSA", "EXPORT", "RC4"}),
        ("SSL_CK_DES_64_CBC_WITH_MD5", {"static-RSA", "DES", "CBC"}),
    ],
)
def test_classify(name: str, expected: set[str]) -> None:
    assert {c.value for c in classify(name)} == expected


def test_key_exchange_strength() -> None:
    assert KeyExchange("DH", 1024).weak and not KeyExchange("DH", 2048).weak
    assert KeyExchange("ECDH", 192, "secp192r1").weak
    assert not KeyExchange("ECDH", 253, "X25519").weak  # RFC 7748: 128-bit security
    assert not KeyExchange("ECDH", 256, "secp256r1").weak


# --- the simulator --------------------------------------------------------------------------


def test_compliant_simulator(compliant: tuple[ScanResult, bytes]) -> None:
    r, cert_file = compliant
    assert r.status is ScanStatus.COMPLETED, r.reason
    assert r.accepted_versions() == (TlsVersion.TLS1_2, TlsVersion.TLS1_3)
    assert all(v.accepted is not None for v in r.versions), r.untested_versions()
    assert not r.weak_classes()
    assert {c for s in r.suites() for c in s.classes} == {CipherClass.AEAD}
    assert r.heartbleed.value is False and r.ccs_injection.value is False
    assert r.robot.value is False, r.robot
    assert r.secure_renegotiation.value is True and r.client_renegotiation.value is False
    assert r.compression.value is False
    assert r.curves and not [c for c in r.curves if c.weak]
    assert not r.weak_key_exchanges() and not r.errors, r.errors
    assert r.leaf is not None and same_certificate(r.leaf, cert_file)
    assert r.elapsed < SCAN_BUDGET, f"scan took {r.elapsed:.1f} s"


def test_evidence_is_json(compliant: tuple[ScanResult, bytes]) -> None:
    r, _ = compliant
    ev = json.loads(json.dumps(r.evidence()))
    assert set(ev["accepted"]) == {"TLSv1.2", "TLSv1.3"}
    assert ev["refused"] == ["SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"]
    assert "TLS_AES_128_GCM_SHA256" in ev["accepted"]["TLSv1.3"]
    assert ev["weak_classes"] == {} and ev["vulnerable"] == [] and ev["untested"] == {}
    assert ev["engine"].startswith("sslyze 6.")
    text = r.evidence_text()
    assert "  TLSv1.3: TLS_" in text and "  SSLv3: refused" in text and "curves: X25519" in text


def test_compliant_leaf_is_an_end_entity(compliant: tuple[ScanResult, bytes]) -> None:
    """The simulator's default certificate: a CA-signed CA:FALSE leaf covering 127.0.0.1."""
    r, _ = compliant
    assert r.leaf is not None
    assert end_entity_problems(cert_info(r.leaf), [HOST, "localhost"]) == ()
    assert not cert_info(r.leaf).self_signed


@pytest.mark.parametrize(
    ("fault", "code"), [("tls-ca-leaf", "ca-leaf"), ("tls-no-san", "no-san")]
)
def test_fault_leaf_not_end_entity(fault: str, code: str) -> None:
    r, _ = _sim_scan(fault)
    assert r.leaf is not None
    assert [p.code for p in end_entity_problems(cert_info(r.leaf), [HOST])] == [code]


def test_fault_weak_dh_and_no_tls13() -> None:
    r, _ = _sim_scan("tls-weak-dh")
    assert r.dh_groups() == (1024,) and TlsVersion.TLS1_3 in r.accepted_versions()
    r, _ = _sim_scan("tls-no-tls13")
    assert r.accepted_versions() == (TlsVersion.TLS1_2,)


def test_fault_tls_legacy() -> None:
    r, _ = _sim_scan("tls-legacy")
    assert r.status is ScanStatus.COMPLETED, r.reason
    assert {TlsVersion.TLS1_0, TlsVersion.TLS1_1} <= set(r.accepted_versions())
    assert not r.version(TlsVersion.SSL3_0).accepted and not r.version(TlsVersion.SSL2_0).accepted


def test_fault_tls_weak_ciphers() -> None:
    r, _ = _sim_scan("tls-weak-ciphers")
    weak = r.weak_classes()
    assert {CipherClass.NULL, CipherClass.ANON, CipherClass.STATIC_RSA} <= set(weak), weak
    assert "TLS_RSA_WITH_AES_128_GCM_SHA256" in weak[CipherClass.STATIC_RSA]
    # issue 8 point 4: this OpenSSL serves no 3DES, and the description no longer claims it
    assert CipherClass.TDES not in weak
    assert "3DES" not in FAULTS["tls-weak-ciphers"].description
    assert all(w in FAULTS["tls-weak-ciphers"].description for w in ("NULL", "anonymous"))
    assert r.accepted_versions() == (TlsVersion.TLS1_2, TlsVersion.TLS1_3)


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("expired-cert", "expired"),
        ("weak-cert-key", "weak-key"),
        ("weak-cert-key", "weak-signature"),
    ],
)
def test_fault_served_certificate(fault: str, code: str) -> None:
    r, _ = _sim_scan(fault)
    assert r.leaf is not None, r.chain_error or r.reason
    assert code in cert_report(r.leaf).codes


def test_fault_weak_cert_key_is_one_deviation(compliant: tuple[ScanResult, bytes]) -> None:
    """Issue 8 point 4: weak-cert-key serves the weak certificate and nothing else differs."""
    r, _ = _sim_scan("weak-cert-key")
    assert not r.by_class(CipherClass.CBC)
    assert {s.name for s in r.suites()} == {s.name for s in compliant[0].suites()}


def test_fault_cert_mismatch() -> None:
    r, cert_file = _sim_scan("cert-mismatch")
    assert r.leaf is not None and not same_certificate(r.leaf, cert_file)


def test_plaintext_on_tls_port_is_no_handshake() -> None:
    r, _ = _sim_scan("plaintext-on-tls-port")
    assert r.status is ScanStatus.NO_HANDSHAKE
    assert "Asterisk Call Manager" in r.reason and "does not speak TLS" in r.reason
    assert r.elapsed < 2.0
    # nothing reads as "refused": every version and probe is untested, with the reason
    v = r.version(TlsVersion.TLS1_0)
    assert v.accepted is None and "does not speak TLS" in v.error
    assert r.heartbleed.value is None and r.heartbleed.error


# --- ports without TLS ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def test_closed_port_is_error() -> None:
    r = scan(HOST, _free_port(), timeout=2.0)
    assert r.status is ScanStatus.ERROR and "connection refused" in r.reason
    assert r.version(TlsVersion.TLS1_2).accepted is None


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts, reads, never answers: a TLS client waits for a ServerHello in vain."""
    srv = socket.create_server((HOST, 0))
    srv.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                held.append(conn)
            except TimeoutError:
                continue
            except OSError:
                return

    t = threading.Thread(target=run, daemon=True)
    t.start()
    yield int(srv.getsockname()[1])
    stop.set()
    t.join(5)
    srv.close()
    for c in held:
        c.close()


def test_silent_port_is_no_handshake(silent_port: int) -> None:
    t0 = time.monotonic()
    r = scan(HOST, silent_port, timeout=1.0, deadline=30.0)
    assert r.status is ScanStatus.NO_HANDSHAKE, (r.status, r.reason)
    assert "did not answer a TLS ClientHello within 1 s" in r.reason
    assert time.monotonic() - t0 < 3.0


# --- real legacy servers ----------------------------------------------------------------------


def _legacy(name: str) -> ScanResult:
    r, _ = scanned_legacy(name)  # by IP, as the suite scans a UCM
    assert r.status is ScanStatus.COMPLETED, r.reason
    return r


def test_gnutls_rc4_3des_next_to_aes_gcm() -> None:
    """The issue-8 case amicheck called COMPLIANT: RC4 and 3DES next to AES-GCM."""
    r = _legacy("gnutls-rc4-3des")
    weak = r.weak_classes()
    assert CipherClass.RC4 in weak and CipherClass.TDES in weak, weak
    assert r.by_class(CipherClass.AEAD)


def test_gnutls_legacy_versions() -> None:
    r = _legacy("gnutls-tls10")
    assert {TlsVersion.TLS1_0, TlsVersion.TLS1_1} <= set(r.accepted_versions())


def test_gnutls_null_anon() -> None:
    weak = _legacy("gnutls-null-anon").weak_classes()
    assert CipherClass.NULL in weak and CipherClass.ANON in weak, weak


def test_gnutls_dh1024() -> None:
    r = _legacy("gnutls-dh1024")
    assert r.dh_groups() == (1024,)
    assert r.weak_key_exchanges()


def test_gnutls_p192() -> None:
    r = _legacy("gnutls-p192")
    weak = [c.name for c in r.curves if c.weak]
    assert weak == ["secp192r1"], r.curves


def test_gnutls_without_secure_renegotiation() -> None:
    r = _legacy("gnutls-no-secure-reneg")
    assert r.secure_renegotiation.value is False
    assert "insecure renegotiation (no RFC 5746)" in r.vulnerabilities()


def test_gnutls_client_renegotiation() -> None:
    r = _legacy("gnutls-client-reneg")
    assert r.client_renegotiation.value is True, r.client_renegotiation
    assert r.vulnerabilities() == ("client-initiated renegotiation",)
    assert r.accepted_versions() == (TlsVersion.TLS1_2, TlsVersion.TLS1_3)
    assert not r.weak_classes().keys() - {CipherClass.STATIC_RSA}


def test_tlslite_ssl3() -> None:
    r = _legacy("tlslite-ssl3")
    assert r.version(TlsVersion.SSL3_0).accepted is True
    assert r.version(TlsVersion.SSL2_0).accepted is False


def test_tlslite_rc4() -> None:
    r = _legacy("tlslite-rc4")
    assert CipherClass.RC4 in r.weak_classes()


def test_deadline_is_an_error() -> None:
    """A scan that overruns its deadline is an error result, not a partial pass."""
    with Simulator(default_profile(), host=HOST, port=0, tls_port=0) as sim:
        assert sim.tls_port is not None
        r = scan(HOST, sim.tls_port, timeout=5.0, deadline=0.01)
    assert r.status is ScanStatus.ERROR and "exceeded" in r.reason
    assert not r.accepted_versions() and r.heartbleed.value is None


@pytest.mark.parametrize(
    ("name", "attr", "detail"),
    [
        ("tlslite-heartbleed", "heartbleed", "CVE-2014-0160"),
        ("tlslite-ccs-injection", "ccs_injection", "CVE-2014-0224"),
        ("tlslite-robot", "robot", "VULNERABLE_WEAK_ORACLE"),
    ],
)
def test_old_openssl_bugs(name: str, attr: str, detail: str) -> None:
    """Servers reproducing Heartbleed, CCS injection and a ROBOT oracle on the wire."""
    r = _legacy(name)
    probes = {a: getattr(r, a) for a in ("heartbleed", "ccs_injection", "robot")}
    assert probes.pop(attr).value is True, getattr(r, attr)
    assert getattr(r, attr).detail == detail
    assert all(p.value is False for p in probes.values()), probes  # one flaw each
