"""amicheck.tls.certificate: the static rules on PEM certificates and key files, and
amicheck.tls.plaintext on real loopback servers (plaintext AMI, TLS, nothing listening)."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from amicheck.tls.certificate import (
    Severity,
    as_dict,
    audit_pem_files,
    cert_report,
    key_matches_cert,
    load_pem_chain,
)
from amicheck.tls.material import make_self_signed, make_server_context
from amicheck.tls.plaintext import ProbeStatus, probe_plaintext

BANNER = b"Asterisk Call Manager/2.7.0\r\n"
DAY = dt.timedelta(days=1)


class LoopbackServer:
    """A tiny AMI-ish server on 127.0.0.1: optional TLS, sends the banner, then closes."""

    def __init__(self, ctx: ssl.SSLContext | None) -> None:
        self.ctx = ctx
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.handshakes: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5.0)
            try:
                if self.ctx is None:
                    conn.sendall(BANNER)
                    conn.recv(1024)
                else:
                    with self.ctx.wrap_socket(conn, server_side=True) as tls:
                        self.handshakes.append(str(tls.version()))
                        tls.sendall(BANNER)
                    continue
            except (OSError, ssl.SSLError):
                pass
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _write_pair(tmp: Path, name: str, **kw: object) -> tuple[Path, Path]:
    cert, key = make_self_signed(name, **kw)  # type: ignore[arg-type]
    cp, kp = tmp / f"{name}-cert.pem", tmp / f"{name}-key.pem"
    cp.write_bytes(cert)
    kp.write_bytes(key)
    return cp, kp


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    tmp = tmp_path_factory.mktemp("pems")
    return {
        "good": _write_pair(tmp, "good"),
        "weak": _write_pair(tmp, "weak", key_bits=1024, hash="sha1"),
        "expired": _write_pair(tmp, "expired", not_before=-30 * DAY, not_after=-DAY),
    }


def _server(ctx: ssl.SSLContext | None) -> Iterator[LoopbackServer]:
    srv = LoopbackServer(ctx)
    try:
        yield srv
    finally:
        srv.close()


# --- generation and static checks ----------------------------------------------------------


def test_make_self_signed_defaults() -> None:
    cert_pem, key_pem = make_self_signed("ucm.test")
    cert = load_pem_chain(cert_pem)[0]
    rep = cert_report(cert, key_pem=key_pem, expected_names=["ucm.test", "127.0.0.1"])
    assert rep.info is not None
    assert (rep.info.key_type, rep.info.key_bits, rep.info.signature_hash) == (
        "RSA",
        2048,
        "sha256",
    )
    assert rep.info.common_name == "ucm.test"
    assert set(rep.info.san) == {"ucm.test", "127.0.0.1"}
    assert rep.info.self_signed
    assert rep.key_matches is True
    assert rep.codes == {"self-signed"}
    assert rep.ok  # self-signed is a warning
    assert b"PRIVATE KEY" in key_pem and b"ENCRYPTED" not in key_pem


def test_weak_sha1_rsa1024() -> None:
    cert_pem, key_pem = make_self_signed("weak", key_bits=1024, hash="sha1")
    rep = cert_report(cert_pem, key_pem=key_pem)
    assert rep.info is not None and rep.info.signature_hash == "sha1"
    assert rep.info.key_bits == 1024 and rep.info.self_signed
    assert {"weak-key", "weak-signature"} <= rep.codes
    assert rep.key_matches is True
    assert not rep.ok


def test_md5_signature() -> None:
    cert_pem, _ = make_self_signed("m", key_bits=1024, hash="md5")
    rep = cert_report(cert_pem)
    assert rep.info is not None and rep.info.signature_hash == "md5"
    assert "weak-signature" in rep.codes


def test_validity_window() -> None:
    expired, _ = make_self_signed(
        "e", key_type="ec", key_bits=256, not_before=-9 * DAY, not_after=-DAY
    )
    future, _ = make_self_signed(
        "f", key_type="ec", key_bits=256, not_before=DAY, not_after=9 * DAY
    )
    assert "expired" in cert_report(expired).codes
    assert "not-yet-valid" in cert_report(future).codes
    later = dt.datetime.now(dt.UTC) + 30 * DAY
    assert "expired" in cert_report(future, now=later).codes
    soon, _ = make_self_signed("s", key_type="ec", key_bits=256, not_after=10 * DAY)
    rep = cert_report(soon)
    assert "expires-soon" in rep.codes and rep.ok
    assert rep.days_left is not None and 8 <= rep.days_left <= 10
    assert "expires-soon" not in cert_report(soon, min_days_left=5).codes
    assert cert_report(expired).days_left == -1 or cert_report(expired).days_left == -2


def test_ec_key_and_bad_args() -> None:
    cert_pem, key_pem = make_self_signed("ec", key_type="ec", key_bits=384, hash="sha384")
    rep = cert_report(cert_pem, key_pem=key_pem)
    assert rep.info is not None and (rep.info.key_type, rep.info.key_bits) == ("EC", 384)
    assert rep.codes == {"self-signed"}
    with pytest.raises(ValueError, match="EC key_bits"):
        make_self_signed("x", key_type="ec", key_bits=1024)
    with pytest.raises(ValueError, match="only supported with RSA"):
        make_self_signed("x", key_type="ec", key_bits=256, hash="sha1")
    with pytest.raises(ValueError, match="unsupported hash"):
        make_self_signed("x", hash="sha3")
    with pytest.raises(ValueError, match="key_type"):
        make_self_signed("x", key_type="dsa")


def test_trustme_chain_not_self_signed() -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("ucm.example")
    rep = cert_report(
        leaf.cert_chain_pems[0].bytes(),
        key_pem=leaf.private_key_pem.bytes(),
        expected_names=["other.example"],
    )
    assert rep.info is not None and not rep.info.self_signed
    assert rep.codes == {"name-mismatch"}
    assert [p.severity for p in rep.problems] == [Severity.WARNING]


def test_key_mismatch_and_bad_pem(tmp_path: Path, pems: dict[str, tuple[Path, Path]]) -> None:
    good_cert, _ = pems["good"]
    _, other_key = pems["weak"]
    rep = audit_pem_files(good_cert, other_key)
    assert "key-mismatch" in rep.codes and rep.key_matches is False
    cert = load_pem_chain(good_cert.read_bytes())[0]
    assert not key_matches_cert(cert, b"not a key")
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"hello")
    assert audit_pem_files(junk).codes == {"bad-pem"}
    assert audit_pem_files(tmp_path / "absent.pem").codes == {"unreadable"}


def test_pem_file_size_limit(tmp_path: Path, pems: dict[str, tuple[Path, Path]]) -> None:
    cert, key = pems["good"]
    assert audit_pem_files(cert, key).codes == {"self-signed"}
    big = tmp_path / "big.pem"
    big.write_bytes(cert.read_bytes() + b"\n" * (2 * 1024 * 1024))
    rep = audit_pem_files(big, key)
    assert rep.codes == {"too-big"} and rep.info is None


# --- plaintext exposure --------------------------------------------------------------------


@pytest.fixture(scope="module")
def plaintext() -> Iterator[LoopbackServer]:
    yield from _server(None)


@pytest.fixture(scope="module")
def tls_server(pems: dict[str, tuple[Path, Path]]) -> Iterator[LoopbackServer]:
    yield from _server(make_server_context(*pems["good"]))


def test_plaintext_banner(plaintext: LoopbackServer) -> None:
    pt = probe_plaintext("127.0.0.1", plaintext.port)
    assert (pt.status, pt.reply) == (ProbeStatus.ACCEPTED, "banner")
    assert pt.data.startswith(b"Asterisk Call Manager/")


def test_plaintext_on_tls_server_is_refused(tls_server: LoopbackServer) -> None:
    pt = probe_plaintext("127.0.0.1", tls_server.port, banner_wait=0.3)
    assert pt.status is ProbeStatus.REFUSED and pt.reply in ("tls-alert", "closed")


def test_plaintext_closed_port() -> None:
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    pt = probe_plaintext("127.0.0.1", port, timeout=1)
    assert (pt.status, pt.reply) == (ProbeStatus.REFUSED, "no-listener")


def test_report_as_json(pems: dict[str, tuple[Path, Path]]) -> None:
    rep = audit_pem_files(*pems["weak"])
    data = json.loads(json.dumps(as_dict(rep)))
    assert data["info"]["signature_hash"] == "sha1" and data["key_matches"] is True
    assert {p["code"] for p in data["problems"]} >= {"weak-key", "weak-signature"}


@pytest.mark.parametrize(
    ("pem", "options", "versions", "weak"),
    [
        ("good", {"legacy_versions": True}, {"TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"}, set()),
        ("weak", {"weak_key_ok": True}, {"TLSv1.2", "TLSv1.3"}, set()),
        ("good", {"weak_ciphers": True}, {"TLSv1.2", "TLSv1.3"}, {"static-RSA"}),
    ],
)
def test_server_context_one_deviation_each(
    pems: dict[str, tuple[Path, Path]],
    pem: str,
    options: dict[str, bool],
    versions: set[str],
    weak: set[str],
) -> None:
    """Each make_server_context option adds exactly its own deviation (sslyze's view)."""
    from amicheck.tls.scan import scan

    cert, key = pems[pem]
    ctx = make_server_context(
        cert, key,
        legacy_versions=options.get("legacy_versions", False),
        weak_ciphers=options.get("weak_ciphers", False),
        weak_key_ok=options.get("weak_key_ok", False),
    )
    for srv in _server(ctx):
        r = scan("127.0.0.1", srv.port, timeout=5.0)
        assert {v.value for v in r.accepted_versions()} == versions
        assert {c.value for c in r.weak_classes()} == weak


def test_fetch_certificate_chain(
    tls_server: LoopbackServer, plaintext: LoopbackServer, pems: dict[str, tuple[Path, Path]]
) -> None:
    from amicheck.errors import ConnectError
    from amicheck.tls.certificate import same_certificate
    from amicheck.tls.chain import fetch_certificate_chain

    chain = fetch_certificate_chain("127.0.0.1", tls_server.port, timeout=5)
    assert same_certificate(chain[0], pems["good"][0])
    with pytest.raises(ConnectError, match="no TLS certificate"):
        fetch_certificate_chain("127.0.0.1", plaintext.port, timeout=2)
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ConnectError, match="connect"):
        fetch_certificate_chain("127.0.0.1", port, timeout=1)
