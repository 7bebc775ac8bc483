"""TLS certificate checks and live handshake probes for the AMI TLS listener.

Results are frozen dataclasses (sslyze style): a check that could not run says so
(:attr:`ProbeStatus.NOT_TESTABLE` / :attr:`ProbeStatus.ERROR`) instead of passing.

* Static: :func:`audit_pem_files` / :func:`cert_report` parse PEM, size (< 2 MB, the UCM
  upload limit), key matches cert, key type/size, signature hash, validity, self-signed,
  CN/SAN -> :class:`CertReport`.
* Live: :func:`fetch_certificate_chain`, :func:`probe_versions`, :func:`probe_cipher_classes`,
  :func:`probe_plaintext`, or everything at once with :func:`audit_endpoint`.
* Test material: :func:`make_self_signed` (also RSA-1024 + SHA-1 and expired certificates,
  which the simulator's faults serve) and :func:`make_server_context`.

The probing client runs at ``@SECLEVEL=0`` with the protocol floor lowered, so that legacy
versions and weak suites can be *offered* at all; :func:`local_support` reports what this
machine's OpenSSL can still negotiate (a class it cannot offer is "not testable").
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import functools
import hashlib
import ipaddress
import select
import socket
import ssl
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from amicheck.errors import ConnectError
from amicheck.rules import MAX_TLS_FILE_BYTES, Level

__all__ = [
    "TlsVersion",
    "ProbeStatus",
    "CertProblem",
    "CertInfo",
    "CertReport",
    "HandshakeResult",
    "VersionProbe",
    "CipherProbe",
    "PlaintextProbe",
    "LocalSupport",
    "EndpointReport",
    "CIPHER_CLASSES",
    "MIN_RSA_BITS",
    "EXPIRY_WARNING_DAYS",
    "same_certificate",
    "MIN_EC_BITS",
    "make_self_signed",
    "make_server_context",
    "load_pem_chain",
    "cert_info",
    "cert_report",
    "audit_pem_files",
    "key_matches_cert",
    "fingerprint",
    "local_support",
    "handshake",
    "fetch_certificate_chain",
    "probe_versions",
    "probe_cipher_classes",
    "probe_plaintext",
    "audit_endpoint",
    "as_dict",
]

MIN_RSA_BITS = 2048
#: A certificate with fewer days left than this gets an ``expires-soon`` warning.
EXPIRY_WARNING_DAYS = 30
MIN_EC_BITS = 256
_WEAK_HASHES = frozenset({"md5", "sha1", "md2", "md4"})
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


class ProbeStatus(enum.StrEnum):
    """Outcome of one live probe."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    NOT_TESTABLE = "not testable"  # this machine's OpenSSL cannot offer it
    ERROR = "error"  # could not connect / timed out: no verdict


# --- certificate generation --------------------------------------------------------------

_OID_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")
_OID_LEGACY_RSA = {
    "sha1": bytes.fromhex("06092a864886f70d010105"),
    "md5": bytes.fromhex("06092a864886f70d010104"),
}
_HASHES: dict[str, hashes.SHA256 | hashes.SHA384 | hashes.SHA512] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def make_self_signed(
    common_name: str = "amicheck",
    *,
    key_bits: int = 2048,
    key_type: str = "rsa",
    hash: str = "sha256",  # noqa: A002 - the brief's name
    not_before: _dt.timedelta = _dt.timedelta(days=-1),
    not_after: _dt.timedelta = _dt.timedelta(days=365),
    san: Sequence[str] | None = None,
    now: _dt.datetime | None = None,
) -> tuple[bytes, bytes]:
    """A self-signed certificate and its key as ``(cert_pem, key_pem)`` (PKCS#8, unencrypted).

    Args:
        common_name: subject CN (also a SAN unless ``san`` is given).
        key_bits: RSA modulus size (1024 for the weak-key fault) or EC curve size (256/384).
        key_type: ``"rsa"`` or ``"ec"``.
        hash: ``sha256``/``sha384``/``sha512``, or ``sha1``/``md5`` (RSA only: cryptography
            refuses to sign with them, so the certificate is re-signed by hand).
        not_before, not_after: validity offsets from now (negative ``not_after``: expired).
        san: DNS names / IP addresses for subjectAltName (default: CN and 127.0.0.1).
    """
    if key_type == "rsa":
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = rsa.generate_private_key(
            public_exponent=65537, key_size=key_bits
        )
    elif key_type == "ec":
        curves: dict[int, ec.EllipticCurve] = {256: ec.SECP256R1(), 384: ec.SECP384R1()}
        if key_bits not in curves:
            raise ValueError(f"EC key_bits must be 256 or 384, not {key_bits}")
        key = ec.generate_private_key(curves[key_bits])
    else:
        raise ValueError(f"key_type must be 'rsa' or 'ec', not {key_type!r}")
    legacy = hash.lower() in _OID_LEGACY_RSA
    if legacy and key_type != "rsa":
        raise ValueError(f"hash {hash!r} is only supported with RSA keys")
    if not legacy and hash.lower() not in _HASHES:
        raise ValueError(f"unsupported hash {hash!r}")

    t0 = now or _now()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    alt: list[x509.GeneralName] = []
    for entry in san if san is not None else (common_name, "127.0.0.1"):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            alt.append(x509.DNSName(entry))
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(t0 + not_before)
        .not_valid_after(t0 + not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(key, hashes.SHA256() if legacy else _HASHES[hash.lower()])
    der = cert.public_bytes(serialization.Encoding.DER)
    if legacy:
        assert isinstance(key, rsa.RSAPrivateKey)
        # Swap the signature algorithm OID (same length) in tbsCertificate and in the outer
        # AlgorithmIdentifier, then replace the signature (last bytes of the DER).
        der = der.replace(_OID_SHA256_RSA, _OID_LEGACY_RSA[hash.lower()])
        tbs = x509.load_der_x509_certificate(der).tbs_certificate_bytes
        algo: hashes.HashAlgorithm = hashes.SHA1() if hash.lower() == "sha1" else hashes.MD5()
        sig = key.sign(tbs, padding.PKCS1v15(), algo)
        der = der[: -len(sig)] + sig
        cert = x509.load_der_x509_certificate(der)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def make_server_context(
    cert_file: str | Path,
    key_file: str | Path,
    *,
    legacy_versions: bool = False,
    weak_ciphers: bool = False,
    weak_key_ok: bool = False,
) -> ssl.SSLContext:
    """A stdlib server context as a compliant UCM would run it, or deliberately not.

    Compliant: TLS 1.2+, Python's default suites (ECDHE/DHE + AEAD). ``legacy_versions`` also
    accepts TLS 1.0/1.1; ``weak_ciphers`` adds static-RSA and 3DES/RC4 when OpenSSL has
    them; ``weak_key_ok`` drops the security level so RSA-1024/SHA-1 certificates load.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    low = legacy_versions or weak_ciphers or weak_key_ok
    if weak_ciphers:
        ctx.set_ciphers(
            "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES:kRSA:3DES:RC4:!aNULL:!eNULL:!PSK"
            ":!SRP:@SECLEVEL=0"
        )
    elif low:
        ctx.set_ciphers("ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES:!aNULL:!eNULL:@SECLEVEL=0")
    if legacy_versions:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


# --- static certificate checks -----------------------------------------------------------


@dataclass(frozen=True)
class CertProblem:
    """One finding about a certificate/key: stable ``code``, message, severity."""

    code: str
    message: str
    severity: Level = Level.ERROR


@dataclass(frozen=True)
class CertInfo:
    """What a certificate says about itself."""

    subject: str
    issuer: str
    common_name: str | None
    san: tuple[str, ...]
    self_signed: bool
    not_before: _dt.datetime
    not_after: _dt.datetime
    key_type: str  # "RSA", "EC", "Ed25519", "Ed448", "DSA"
    key_bits: int
    signature_hash: str | None  # "sha256", "sha1", ... (None: Ed25519/Ed448)
    fingerprint_sha256: str
    serial: int


@dataclass(frozen=True)
class CertReport:
    """Static audit of a certificate (and key): every problem, none hidden.

    ``info`` is None when the certificate could not be parsed; ``key_matches`` is None when
    no key was given (or could not be parsed).
    """

    source: str
    info: CertInfo | None
    key_matches: bool | None = None
    file_size: int | None = None
    problems: tuple[CertProblem, ...] = ()
    #: Whole days until ``not_after`` at audit time (negative: expired), None if unparsed.
    days_left: int | None = None

    @property
    def codes(self) -> frozenset[str]:
        """Problem codes, e.g. ``{"expired", "weak-key"}``."""
        return frozenset(p.code for p in self.problems)

    @property
    def ok(self) -> bool:
        """No ERROR-level problem."""
        return not any(p.severity is Level.ERROR for p in self.problems)


def load_pem_chain(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM blob (ValueError when there is none)."""
    certs = x509.load_pem_x509_certificates(data)
    if not certs:
        raise ValueError("no certificate found")
    return certs


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint, upper-case hex with colons (as browsers show it)."""
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def same_certificate(a: x509.Certificate, b: x509.Certificate | bytes | str | Path) -> bool:
    """Whether ``a`` is the (first) certificate of ``b`` (parsed, PEM bytes or a PEM file)."""
    if isinstance(b, str | Path):
        b = Path(b).read_bytes()
    if isinstance(b, bytes):
        b = load_pem_chain(b)[0]
    return fingerprint(a) == fingerprint(b)


def _key_desc(cert: x509.Certificate) -> tuple[str, int]:
    pub = cert.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        return "RSA", pub.key_size
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return "EC", pub.curve.key_size
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(pub, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(pub, dsa.DSAPublicKey):
        return "DSA", pub.key_size
    return type(pub).__name__, 0


def _self_signed(cert: x509.Certificate) -> bool:
    """Issuer == subject and the certificate's own key verifies its signature."""
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
        return True
    except InvalidSignature:
        return False
    except (ValueError, TypeError, UnsupportedAlgorithm):
        pass  # SHA-1/MD5: cryptography will not verify certificates signed with them
    pub = cert.public_key()
    algo = cert.signature_hash_algorithm
    if isinstance(pub, rsa.RSAPublicKey) and algo is not None:
        try:
            pub.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algo)
            return True
        except InvalidSignature:
            return False
        except (ValueError, TypeError, UnsupportedAlgorithm):
            pass
    return True  # cannot verify here: issuer == subject decides


def cert_info(cert: x509.Certificate) -> CertInfo:
    """Extract :class:`CertInfo` from a parsed certificate."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else None
    san: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        san += [str(v) for v in ext.value.get_values_for_type(x509.DNSName)]
        san += [str(v) for v in ext.value.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    ktype, kbits = _key_desc(cert)
    try:
        algo = cert.signature_hash_algorithm
        shash = algo.name if algo is not None else None
    except Exception:  # unsupported algorithm (e.g. md2)
        shash = "unknown"
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=cn,
        san=tuple(san),
        self_signed=_self_signed(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=ktype,
        key_bits=kbits,
        signature_hash=shash,
        fingerprint_sha256=fingerprint(cert),
        serial=cert.serial_number,
    )


def key_matches_cert(cert: x509.Certificate, key_pem: bytes) -> bool:
    """``SSL_CTX_check_private_key`` (what Asterisk runs): False on mismatch or bad key."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return False
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_cipher_list(b"ALL:@SECLEVEL=0")  # else OpenSSL refuses RSA-1024 before comparing
    try:
        ctx.use_certificate(cert)  # type: ignore[arg-type]  # stubs lag pyOpenSSL 24
        ctx.use_privatekey(key)  # type: ignore[arg-type]
        ctx.check_privatekey()
    except (SSL.Error, TypeError, ValueError):
        return False
    return True


def _name_matches(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        return "." in name and name.split(".", 1)[1] == pattern[2:]
    return pattern == name


def cert_report(
    cert: x509.Certificate | bytes,
    *,
    key_pem: bytes | None = None,
    source: str = "<certificate>",
    now: _dt.datetime | None = None,
    expected_names: Iterable[str] = (),
    file_size: int | None = None,
    min_days_left: int = EXPIRY_WARNING_DAYS,
) -> CertReport:
    """Audit one certificate (PEM bytes or parsed), optionally with its key.

    Problem codes: ``expired``, ``not-yet-valid``, ``expires-soon`` (warning: fewer than
    ``min_days_left`` days left), ``weak-key``, ``weak-signature``, ``self-signed``
    (warning), ``name-mismatch`` (warning), ``key-mismatch``, ``bad-pem``.
    """
    problems: list[CertProblem] = []
    if isinstance(cert, bytes):
        try:
            cert = load_pem_chain(cert)[0]
        except ValueError as exc:
            return CertReport(
                source, None, None, file_size, (CertProblem("bad-pem", f"not a PEM cert: {exc}"),)
            )
    info = cert_info(cert)
    t = now or _now()
    if t > info.not_after:
        problems.append(CertProblem("expired", f"expired on {info.not_after:%Y-%m-%d %H:%M} UTC"))
    days_left = (info.not_after - t).days
    if t <= info.not_after and days_left < min_days_left:
        problems.append(
            CertProblem(
                "expires-soon",
                f"expires on {info.not_after:%Y-%m-%d} ({days_left} days left, "
                f"want >= {min_days_left})",
                Level.WARNING,
            )
        )
    if t < info.not_before:
        problems.append(
            CertProblem("not-yet-valid", f"valid only from {info.not_before:%Y-%m-%d %H:%M} UTC")
        )
    if (info.key_type in ("RSA", "DSA") and info.key_bits < MIN_RSA_BITS) or (
        info.key_type == "EC" and info.key_bits < MIN_EC_BITS
    ):
        floor = MIN_EC_BITS if info.key_type == "EC" else MIN_RSA_BITS
        problems.append(
            CertProblem("weak-key", f"{info.key_type}-{info.key_bits} key (need >= {floor})")
        )
    if info.signature_hash in _WEAK_HASHES or info.signature_hash == "unknown":
        problems.append(
            CertProblem("weak-signature", f"signed with {info.signature_hash} (need SHA-256+)")
        )
    if info.self_signed:
        problems.append(
            CertProblem("self-signed", "self-signed: clients must pin it", Level.WARNING)
        )
    names = [n for n in expected_names if n]
    if names:
        candidates = list(info.san) or ([info.common_name] if info.common_name else [])
        for n in names:
            if not any(_name_matches(c, n) for c in candidates):
                problems.append(
                    CertProblem(
                        "name-mismatch",
                        f"{n!r} is not among the certificate's names {candidates}",
                        Level.WARNING,
                    )
                )
    matches: bool | None = None
    if key_pem is not None:
        matches = key_matches_cert(cert, key_pem)
        if not matches:
            problems.append(
                CertProblem("key-mismatch", "the private key is invalid or does not match")
            )
    return CertReport(source, info, matches, file_size, tuple(problems), days_left)


def audit_pem_files(
    cert_path: str | Path,
    key_path: str | Path | None = None,
    *,
    now: _dt.datetime | None = None,
    expected_names: Iterable[str] = (),
) -> CertReport:
    """Audit the uploaded ``ami_certificate.pem`` (and ``ami_private.pem``) files."""
    cp = Path(cert_path)
    problems: list[CertProblem] = []

    def read(p: Path, what: str) -> tuple[bytes | None, int | None]:
        try:
            size = p.stat().st_size
            if size >= MAX_TLS_FILE_BYTES:
                problems.append(CertProblem("too-big", f"{what} {p}: {size} bytes (UCM: < 2 MB)"))
                return None, size
            return p.read_bytes(), size
        except OSError as exc:
            problems.append(CertProblem("unreadable", f"{what} {p}: {exc.strerror or exc}"))
            return None, None

    cert_pem, size = read(cp, "certificate")
    key_pem = None
    if key_path is not None:
        key_pem, _ = read(Path(key_path), "key")
        if key_pem is None and not problems:
            problems.append(CertProblem("unreadable", f"key {key_path}"))
    if cert_pem is None:
        return CertReport(str(cp), None, None, size, tuple(problems))
    rep = cert_report(
        cert_pem,
        key_pem=key_pem,
        source=str(cp),
        now=now,
        expected_names=expected_names,
        file_size=size,
    )
    return dataclasses.replace(rep, file_size=size, problems=(*problems, *rep.problems))


# --- live probes ---------------------------------------------------------------------------


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
class PlaintextProbe:
    """What a plaintext AMI client sees on the port: ``banner`` means plaintext AMI answered."""

    status: ProbeStatus  # ACCEPTED: plaintext AMI answered (bad on a TLS port)
    reply: str  # banner, ami-response, tls-alert, closed, silent, no-listener, error
    data: bytes = b""
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


def probe_plaintext(
    host: str, port: int, *, timeout: float = 2.0, banner_wait: float = 1.0
) -> PlaintextProbe:
    """Talk plaintext AMI to ``host:port``: does an AMI banner or reply come back?

    Waits ``banner_wait`` for a banner, then sends ``Action: Ping`` and reads until
    ``timeout``. ``ACCEPTED`` means plaintext AMI answered (on a TLS port: a finding);
    a refused connection is ``REFUSED`` with reply ``no-listener`` (nothing serves the port),
    other connect failures and timeouts are ``ERROR``.
    """
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError as exc:
        return PlaintextProbe(ProbeStatus.REFUSED, "no-listener", detail=f"connect: {exc}")
    except OSError as exc:
        return PlaintextProbe(ProbeStatus.ERROR, "error", detail=f"connect: {exc}")
    data = b""
    try:
        sock.settimeout(banner_wait)
        try:
            data = sock.recv(4096)
            if not data:
                return PlaintextProbe(ProbeStatus.REFUSED, "closed", detail="closed at once")
        except TimeoutError:
            pass
        if data.startswith(b"Asterisk Call Manager"):
            return PlaintextProbe(ProbeStatus.ACCEPTED, "banner", data, "plaintext AMI banner")
        sock.settimeout(timeout)
        try:
            sock.sendall(b"Action: Ping\r\nActionID: amicheck-plaintext\r\n\r\n")
            more = sock.recv(4096)
        except TimeoutError:
            return PlaintextProbe(ProbeStatus.REFUSED, "silent", data, "no answer to plaintext")
        except OSError as exc:
            return PlaintextProbe(ProbeStatus.REFUSED, "closed", data, f"connection: {exc}")
        data += more
        if not more:
            return PlaintextProbe(ProbeStatus.REFUSED, "closed", data, "closed after plaintext")
        if b"Response:" in data or b"Asterisk Call Manager" in data:
            return PlaintextProbe(ProbeStatus.ACCEPTED, "ami-response", data, "answered AMI")
        if data[:1] == b"\x15":  # TLS alert record
            return PlaintextProbe(ProbeStatus.REFUSED, "tls-alert", data, "TLS alert")
        return PlaintextProbe(ProbeStatus.REFUSED, "closed", data, "non-AMI bytes")
    finally:
        sock.close()


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


def as_dict(obj: object) -> Any:
    """Any result of this module as JSON-ready data (enums as values, datetimes ISO 8601,
    certificates as their SHA-256 fingerprint, bytes as latin-1 text)."""
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, _dt.datetime):
        return obj.isoformat()
    if isinstance(obj, x509.Certificate):
        return fingerprint(obj)
    if isinstance(obj, bytes):
        return obj.decode("latin-1")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: as_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(as_dict(k)): as_dict(v) for k, v in obj.items()}
    if isinstance(obj, frozenset | set):
        return sorted(as_dict(x) for x in obj)
    if isinstance(obj, list | tuple):
        return [as_dict(x) for x in obj]
    return obj
