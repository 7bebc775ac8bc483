"""Hand-written pyOpenSSL handshake probes (legacy: sslyze replaces them, issue 8).

Kept only while ``suites/test_tls.py`` still calls them through :mod:`amicheck.tlsaudit`;
:mod:`amicheck.tls.scan` is the engine for every live handshake probe. The probing client
runs at ``@SECLEVEL=0`` with the protocol floor lowered; :func:`local_support` says what this
machine's OpenSSL can still offer (a class it cannot offer is "not testable").
"""

from __future__ import annotations

import datetime as _dt
import enum
import functools
import ipaddress
import select
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

from amicheck.errors import ConnectError
from amicheck.tls.certificate import CertReport, cert_report
from amicheck.tls.material import make_self_signed
from amicheck.tls.plaintext import PlaintextProbe, ProbeStatus, probe_plaintext

#: Client cipher list that offers everything this OpenSSL has (no PSK/SRP: they need secrets).
_OFFER_ALL = "ALL:COMPLEMENTOFALL:!PSK:!SRP:@SECLEVEL=0"


class TlsVersion(enum.StrEnum):
    """Protocol versions probed (SSLv2/3 are not even compiled into current OpenSSL)."""

    TLS1_0 = "TLSv1.0"
    TLS1_1 = "TLSv1.1"
    TLS1_2 = "TLSv1.2"
    TLS1_3 = "TLSv1.3"

    @property
    def legacy(self) -> bool:
        """TLS 1.0 and 1.1 are deprecated (RFC 8996)."""
        return self in (TlsVersion.TLS1_0, TlsVersion.TLS1_1)


_SSL_VERSIONS: dict[TlsVersion, int] = {
    TlsVersion.TLS1_0: SSL.TLS1_VERSION,
    TlsVersion.TLS1_1: SSL.TLS1_1_VERSION,
    TlsVersion.TLS1_2: SSL.TLS1_2_VERSION,
    TlsVersion.TLS1_3: SSL.TLS1_3_VERSION,
}
_VERSION_NAMES: dict[str, TlsVersion] = {
    "TLSv1": TlsVersion.TLS1_0,
    "TLSv1.1": TlsVersion.TLS1_1,
    "TLSv1.2": TlsVersion.TLS1_2,
    "TLSv1.3": TlsVersion.TLS1_3,
}

#: Weak cipher classes: name -> (OpenSSL cipher string, why it is weak). Probed at TLS <= 1.2
#: (TLS 1.3 suites are all AEAD with PFS).
CIPHER_CLASSES: dict[str, tuple[str, str]] = {
    "NULL": ("eNULL:!PSK:!SRP", "no encryption"),
    "anon": ("aNULL:!eNULL:!PSK:!SRP", "no server authentication"),
    "EXPORT": ("EXP", "40/56-bit export crypto"),
    "RC4": ("RC4:!PSK", "RC4 stream cipher (RFC 7465)"),
    "DES": ("DES:!3DES", "single DES"),
    "3DES": ("3DES:!PSK", "64-bit block cipher (Sweet32)"),
    "static-RSA": ("kRSA:!eNULL:!PSK", "RSA key exchange: no forward secrecy"),
}


@dataclass(frozen=True)
class HandshakeResult:
    """One handshake attempt: negotiated parameters, or why it failed."""

    status: ProbeStatus
    version: TlsVersion | None = None
    cipher: str | None = None
    chain: tuple[x509.Certificate, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class VersionProbe:
    """Whether the server accepts one protocol version."""

    version: TlsVersion
    status: ProbeStatus
    cipher: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class CipherProbe:
    """Whether the server accepts any suite of a weak class (at TLS <= 1.2)."""

    name: str
    status: ProbeStatus
    cipher: str | None = None
    offered: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class LocalSupport:
    """What this machine's OpenSSL can negotiate as a client (probed in memory)."""

    openssl: str  # the probing client's (pyOpenSSL, from cryptography's wheel)
    server_openssl: str  # stdlib ssl's, which make_server_context and the simulator use
    versions: dict[TlsVersion, bool]
    cipher_classes: dict[str, tuple[str, ...]]  # class -> suites it can offer (empty: none)


def _client_context(min_v: TlsVersion, max_v: TlsVersion, ciphers: str = _OFFER_ALL) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_verify(SSL.VERIFY_NONE, lambda *a: True)
    ctx.set_min_proto_version(_SSL_VERSIONS[min_v])
    ctx.set_max_proto_version(_SSL_VERSIONS[max_v])
    ctx.set_cipher_list(ciphers.encode())
    ctx.set_options(SSL.OP_NO_TICKET)
    return ctx


def _offered(ciphers: str) -> tuple[str, ...]:
    """Suites (TLS <= 1.2) a client context with ``ciphers`` would offer; () if none."""
    try:
        ctx = _client_context(TlsVersion.TLS1_0, TlsVersion.TLS1_2, ciphers)
    except SSL.Error:
        return ()
    conn = SSL.Connection(ctx, None)
    tls13 = {
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_128_CCM_SHA256",
        "TLS_AES_128_CCM_8_SHA256",
    }
    return tuple(c for c in conn.get_cipher_list() if c not in tls13)


@functools.lru_cache(maxsize=1)
def _local_server_material() -> tuple[bytes, bytes]:
    return make_self_signed("amicheck-selftest", key_bits=1024, san=())


def _memory_handshake(client: SSL.Context, server: SSL.Context) -> bool:
    c = SSL.Connection(client, None)
    s = SSL.Connection(server, None)
    c.set_connect_state()
    s.set_accept_state()
    for _ in range(20):
        done = 0
        for conn in (c, s):
            try:
                conn.do_handshake()
                done += 1
            except SSL.WantReadError:
                pass
        for src, dst in ((c, s), (s, c)):
            try:
                dst.bio_write(src.bio_read(65536))
            except SSL.WantReadError:
                pass
        if done == 2:
            return True
    return False


@functools.lru_cache(maxsize=1)
def local_support() -> LocalSupport:
    """Which versions and weak classes this OpenSSL can offer (cached; ~20 ms)."""
    cert_pem, key_pem = _local_server_material()
    server = SSL.Context(SSL.TLS_SERVER_METHOD)
    server.set_cipher_list(_OFFER_ALL.encode())
    server.set_min_proto_version(SSL.TLS1_VERSION)
    server.use_certificate(x509.load_pem_x509_certificate(cert_pem))  # type: ignore[arg-type]
    server.use_privatekey(serialization.load_pem_private_key(key_pem, None))  # type: ignore[arg-type]
    versions: dict[TlsVersion, bool] = {}
    for v in TlsVersion:
        try:
            versions[v] = _memory_handshake(_client_context(v, v), server)
        except SSL.Error:
            versions[v] = False
    classes = {name: _offered(spec + ":@SECLEVEL=0") for name, (spec, _) in CIPHER_CLASSES.items()}
    return LocalSupport(
        SSL.SSLeay_version(SSL.SSLEAY_VERSION).decode(), ssl.OPENSSL_VERSION, versions, classes
    )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _wait(sock: socket.socket, deadline: float, write: bool = False) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("TLS handshake timed out")
    r, w, _ = select.select([] if write else [sock], [sock] if write else [], [], left)
    if not r and not w:
        raise TimeoutError("TLS handshake timed out")


def handshake(
    host: str,
    port: int,
    ctx: SSL.Context,
    *,
    timeout: float = 5.0,
    server_name: str | None = None,
) -> HandshakeResult:
    """One TLS handshake with ``ctx``; connection problems give ``ProbeStatus.ERROR``."""
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return HandshakeResult(ProbeStatus.ERROR, detail=f"connect to {host}:{port}: {exc}")
    try:
        sock.setblocking(False)
        conn = SSL.Connection(ctx, sock)
        sni = server_name or (None if _is_ip(host) else host)
        if sni:
            conn.set_tlsext_host_name(sni.encode("idna"))
        conn.set_connect_state()
        while True:
            try:
                conn.do_handshake()
                break
            except SSL.WantReadError:
                _wait(sock, deadline)
            except SSL.WantWriteError:
                _wait(sock, deadline, write=True)
        ver = _VERSION_NAMES.get(conn.get_protocol_version_name())
        chain = [c.to_cryptography() for c in conn.get_peer_cert_chain() or []]
        cipher = conn.get_cipher_name()
        try:
            conn.shutdown()
        except SSL.Error:
            pass
        return HandshakeResult(ProbeStatus.ACCEPTED, ver, cipher, tuple(chain))
    except TimeoutError as exc:
        return HandshakeResult(ProbeStatus.ERROR, detail=f"{host}:{port}: {exc}")
    except SSL.ZeroReturnError:
        return HandshakeResult(ProbeStatus.REFUSED, detail="server closed the TLS session")
    except SSL.SysCallError as exc:
        return HandshakeResult(ProbeStatus.REFUSED, detail=f"connection closed: {exc.args[-1]}")
    except SSL.Error as exc:
        return HandshakeResult(ProbeStatus.REFUSED, detail=_ssl_reason(exc))
    except OSError as exc:
        return HandshakeResult(ProbeStatus.REFUSED, detail=f"connection failed: {exc}")
    finally:
        sock.close()


def _ssl_reason(exc: SSL.Error) -> str:
    try:
        return "; ".join(str(e[2]) for e in exc.args[0]) or str(exc)
    except (IndexError, TypeError):
        return str(exc)


def fetch_certificate_chain(
    host: str, port: int, *, timeout: float = 5.0, server_name: str | None = None
) -> tuple[x509.Certificate, ...]:
    """The certificates the server sends (leaf first); raises ConnectError if no handshake."""
    ctx = _client_context(TlsVersion.TLS1_0, TlsVersion.TLS1_3)
    res = handshake(host, port, ctx, timeout=timeout, server_name=server_name)
    if res.status is not ProbeStatus.ACCEPTED or not res.chain:
        raise ConnectError(
            f"no TLS certificate from {host}:{port}: {res.detail or 'empty chain'}",
            peer=f"{host}:{port}",
        )
    return res.chain


def probe_versions(
    host: str,
    port: int,
    *,
    timeout: float = 5.0,
    versions: Iterable[TlsVersion] = tuple(TlsVersion),
) -> tuple[VersionProbe, ...]:
    """Which protocol versions the server accepts, one handshake each."""
    local = local_support()
    out: list[VersionProbe] = []
    for v in versions:
        if not local.versions.get(v):
            out.append(
                VersionProbe(
                    v, ProbeStatus.NOT_TESTABLE, detail=f"{local.openssl} cannot offer {v}"
                )
            )
            continue
        res = handshake(host, port, _client_context(v, v), timeout=timeout)
        if res.status is ProbeStatus.ACCEPTED and res.version is not v:  # cannot happen in
            # OpenSSL (min = max), but never count another version as this one's pass
            out.append(VersionProbe(v, ProbeStatus.ERROR, None, f"negotiated {res.version}"))
            continue
        out.append(VersionProbe(v, res.status, res.cipher, res.detail))
    return tuple(out)


def probe_cipher_classes(
    host: str,
    port: int,
    *,
    timeout: float = 5.0,
    classes: Iterable[str] = tuple(CIPHER_CLASSES),
) -> tuple[CipherProbe, ...]:
    """Whether the server accepts any suite of each weak class, at TLS 1.0-1.2."""
    local = local_support()
    out: list[CipherProbe] = []
    for name in classes:
        spec, why = CIPHER_CLASSES[name]
        offered = local.cipher_classes.get(name, ())
        if not offered:
            out.append(
                CipherProbe(
                    name,
                    ProbeStatus.NOT_TESTABLE,
                    detail=f"{local.openssl} has no {name} suites ({why})",
                )
            )
            continue
        ctx = _client_context(TlsVersion.TLS1_0, TlsVersion.TLS1_2, spec + ":@SECLEVEL=0")
        res = handshake(host, port, ctx, timeout=timeout)
        out.append(CipherProbe(name, res.status, res.cipher, offered, res.detail or why))
    return tuple(out)


@dataclass(frozen=True)
class EndpointReport:
    """Everything :func:`audit_endpoint` found about one TLS listener."""

    host: str
    port: int
    openssl: str
    certificate: CertReport | None
    chain_length: int
    versions: tuple[VersionProbe, ...]
    ciphers: tuple[CipherProbe, ...]
    plaintext: PlaintextProbe
    errors: tuple[str, ...] = field(default=())

    def accepted_versions(self) -> frozenset[TlsVersion]:
        """Versions the server negotiated."""
        return frozenset(p.version for p in self.versions if p.status is ProbeStatus.ACCEPTED)

    def accepted_weak_classes(self) -> frozenset[str]:
        """Weak cipher classes the server accepted."""
        return frozenset(p.name for p in self.ciphers if p.status is ProbeStatus.ACCEPTED)


def audit_endpoint(
    host: str,
    port: int,
    *,
    timeout: float = 5.0,
    expected_names: Iterable[str] = (),
    now: _dt.datetime | None = None,
    plaintext_wait: float = 1.0,
) -> EndpointReport:
    """Certificate, versions, weak cipher classes and plaintext exposure of one TLS port."""
    errs: list[str] = []
    cert: CertReport | None = None
    chain: tuple[x509.Certificate, ...] = ()
    res = handshake(
        host, port, _client_context(TlsVersion.TLS1_0, TlsVersion.TLS1_3), timeout=timeout
    )
    if res.status is ProbeStatus.ACCEPTED and res.chain:
        chain = res.chain
        cert = cert_report(
            chain[0], source=f"{host}:{port}", now=now, expected_names=expected_names
        )
    else:
        errs.append(f"no certificate: {res.detail or res.status}")
    return EndpointReport(
        host=host,
        port=port,
        openssl=local_support().openssl,
        certificate=cert,
        chain_length=len(chain),
        versions=probe_versions(host, port, timeout=timeout),
        ciphers=probe_cipher_classes(host, port, timeout=timeout),
        plaintext=probe_plaintext(
            host, port, timeout=min(timeout, 2.0), banner_wait=plaintext_wait
        ),
        errors=tuple(errs),
    )
