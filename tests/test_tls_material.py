"""amicheck.tls.material and the end-entity rules of amicheck.tls.certificate: generated
leaves are what a verifying client accepts (checked with a real handshake on loopback)."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509

from amicheck import rules
from amicheck.tls.certificate import (
    MAX_TLS_FILE_BYTES,
    audit_pem_files,
    cert_info,
    cert_report,
    end_entity_problems,
    san_covers,
)
from amicheck.tls.material import Authority, CertPair, make_self_signed

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def ca() -> Authority:
    return Authority.generate("test CA")


@pytest.fixture(scope="module")
def good(ca: Authority) -> CertPair:
    return ca.issue("ucm.localhost")


def test_leaf_is_end_entity(ca: Authority, good: CertPair) -> None:
    cert = good.certificate
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert cert.issuer == ca.certificate.subject
    cert.verify_directly_issued_by(ca.certificate)
    info = cert_info(cert)
    assert not info.is_ca and not info.self_signed
    assert set(info.san) == {"localhost", "127.0.0.1"}
    assert end_entity_problems(info, [HOST, "localhost"]) == ()
    assert cert_report(cert).ok and not cert_report(cert).problems
    assert ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def _verify_handshake(pair: CertPair, ca: Authority, tmp: Path, server_name: str) -> str:
    """A verifying stdlib client against a stdlib server serving ``pair``: version or error."""
    cert, key, cafile = tmp / "c.pem", tmp / "k.pem", tmp / "ca.pem"
    pair.write(cert, key, ca_path=cafile)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    srv = socket.create_server((HOST, 0))
    srv.settimeout(5)

    def serve() -> None:
        try:
            conn, _ = srv.accept()
            with sctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError):
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    cctx = ssl.create_default_context(cafile=str(cafile))
    try:
        with socket.create_connection(srv.getsockname(), timeout=5) as raw:
            with cctx.wrap_socket(raw, server_hostname=server_name) as tls:
                return str(tls.version())
    except ssl.SSLCertVerificationError as exc:
        return f"verify failed: {exc.verify_message}"
    finally:
        t.join(5)
        srv.close()


@pytest.mark.parametrize("name", [HOST, "localhost"])
def test_verifying_client_accepts_leaf(
    ca: Authority, good: CertPair, tmp_path: Path, name: str
) -> None:
    assert _verify_handshake(good, ca, tmp_path, name).startswith("TLSv1.")


def test_verifying_client_rejects_uncovered_name(
    ca: Authority, good: CertPair, tmp_path: Path
) -> None:
    result = _verify_handshake(good, ca, tmp_path, "ucm.example")
    assert result.startswith("verify failed"), result
    assert not san_covers(cert_info(good.certificate), "ucm.example")


def test_weak_and_expired_leaves(ca: Authority) -> None:
    weak = ca.issue(key_bits=1024, hash="sha1").certificate
    assert {"weak-key", "weak-signature"} <= cert_report(weak).codes
    assert cert_info(weak).signature_hash == "sha1"
    expired = ca.issue(not_before=-dt.timedelta(days=30), not_after=-dt.timedelta(days=1))
    assert "expired" in cert_report(expired.certificate).codes
    ec = ca.issue(key_type="ec", key_bits=256).certificate
    assert cert_info(ec).key_type == "EC" and cert_report(ec).ok


def test_end_entity_problems_name_each_defect() -> None:
    cert, _ = make_self_signed("asterisk", san=())  # the reference Asterisk leaf: CN only
    codes = [p.code for p in end_entity_problems(cert_info(x509.load_pem_x509_certificate(cert)))]
    assert codes == ["ca-leaf", "no-san"]
    cert, _ = make_self_signed("ucm", san=("ucm.lan", "10.0.0.5"))
    problems = end_entity_problems(cert_info(x509.load_pem_x509_certificate(cert)), [HOST])
    assert [p.code for p in problems] == ["ca-leaf", "name-not-covered"]
    assert "'127.0.0.1'" in problems[1].message


def test_san_covers_rules() -> None:
    cert, _ = make_self_signed("x", san=("*.ucm.lan", "127.0.0.1", "::1"))
    info = cert_info(x509.load_pem_x509_certificate(cert))
    assert san_covers(info, "a.ucm.lan") and not san_covers(info, "ucm.lan")
    assert not san_covers(info, "a.b.ucm.lan")
    assert san_covers(info, "127.0.0.1") and san_covers(info, "0:0::1")
    assert not san_covers(info, "127.0.0.2")
    cn_only, _ = make_self_signed("127.0.0.1", san=())
    assert not san_covers(cert_info(x509.load_pem_x509_certificate(cn_only)), "127.0.0.1")


def test_file_limit_matches_rules(tmp_path: Path, good: CertPair) -> None:
    """One UCM upload limit: tls/ and rules.py both use amicheck.tlsfiles."""
    assert MAX_TLS_FILE_BYTES == rules.MAX_TLS_FILE_BYTES
    big = tmp_path / "big.pem"
    big.write_bytes(good.cert_pem + b"\n" * MAX_TLS_FILE_BYTES)
    assert "too-big" in audit_pem_files(big).codes


def test_key_file_mode(tmp_path: Path, good: CertPair) -> None:
    good.write(tmp_path / "c.pem", tmp_path / "k.pem")
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600


def test_simulator_pair() -> None:
    from amicheck.tls.material import default_authority, simulator_pair

    pair = simulator_pair()
    info = cert_info(pair.certificate)
    assert not info.is_ca and set(info.san) == {"ucm-simulator.localhost", "localhost", HOST}
    assert pair.ca_pem == default_authority().cert_pem
    pair.certificate.verify_directly_issued_by(default_authority().certificate)
    weak = cert_report(simulator_pair(key_size=1024, sha1=True).certificate).codes
    assert {"weak-key", "weak-signature"} <= weak
    assert "expired" in cert_report(simulator_pair(expired=True).certificate).codes
