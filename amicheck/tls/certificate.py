"""Static certificate rules: what a PEM certificate (and its key) says, and what is wrong.

Used for the files a profile names (``ami_certificate.pem`` / ``ami_private.pem``, each under
2 MB, the UCM upload limit) and for the leaf a TLS port serves (from :mod:`amicheck.tls.scan`).
Every finding is a :class:`CertProblem` with a stable code; nothing here does network I/O.
The 2 MB cap, the bounded file read and the key/certificate match are
:mod:`amicheck.tlsfiles`' (shared with the profile rules); nothing here imports rules.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from amicheck.tlsfiles import MAX_TLS_FILE_BYTES, TlsFileError, key_matches_cert, read_tls_file

__all__ = [
    "MAX_TLS_FILE_BYTES",
    "MIN_RSA_BITS",
    "MIN_EC_BITS",
    "EXPIRY_WARNING_DAYS",
    "Severity",
    "CertProblem",
    "CertInfo",
    "CertReport",
    "load_pem_chain",
    "fingerprint",
    "same_certificate",
    "cert_info",
    "key_matches_cert",
    "san_covers",
    "end_entity_problems",
    "cert_report",
    "audit_pem_files",
    "as_dict",
]

MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
#: A certificate with fewer days left than this gets an ``expires-soon`` warning.
EXPIRY_WARNING_DAYS = 30
_WEAK_HASHES = frozenset({"md5", "sha1", "md2", "md4"})


class Severity(enum.StrEnum):
    """How bad a certificate problem is (same values as :class:`amicheck.rules.Level`)."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


@dataclass(frozen=True)
class CertProblem:
    """One finding about a certificate/key: stable ``code``, message, severity."""

    code: str
    message: str
    severity: Severity = Severity.ERROR


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
    #: basicConstraints CA:TRUE (a CA certificate, not an end-entity leaf).
    is_ca: bool = False


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
        return not any(p.severity is Severity.ERROR for p in self.problems)


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
        is_ca=_is_ca(cert),
    )


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _name_matches(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        return "." in name and name.split(".", 1)[1] == pattern[2:]
    return pattern == name


def san_covers(info: CertInfo, name: str) -> bool:
    """Whether the subjectAltName covers ``name`` as a verifying client checks it.

    RFC 6125 / RFC 5280: an IP address must be an iPAddress entry; a DNS name a dNSName entry
    (one left-most ``*`` label at most). The subject CN is not looked at: clients that verify
    (browsers, Python, Go) ignore it when matching.
    """
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return any(_name_matches(entry, name) for entry in info.san if not _is_ip_text(entry))
    return any(_is_ip_text(entry) and ipaddress.ip_address(entry) == ip for entry in info.san)


def _is_ip_text(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def end_entity_problems(info: CertInfo, names: Iterable[str] = ()) -> tuple[CertProblem, ...]:
    """Why a served leaf is not a proper end-entity certificate for ``names``.

    Codes: ``ca-leaf`` (basicConstraints CA:TRUE on the leaf), ``no-san`` (no subjectAltName:
    CN-only, as the reference Asterisk certificate), ``name-not-covered`` (a name the client
    uses is not in the subjectAltName).
    """
    out: list[CertProblem] = []
    if info.is_ca:
        out.append(CertProblem("ca-leaf", f"the leaf {info.subject} is a CA certificate (CA:TRUE)"))
    if not info.san:
        out.append(
            CertProblem(
                "no-san",
                f"no subjectAltName (CN={info.common_name}): verifying clients ignore the CN",
            )
        )
    else:
        for n in names:
            if n and not san_covers(info, n):
                out.append(
                    CertProblem(
                        "name-not-covered", f"{n!r} is not in the subjectAltName {list(info.san)}"
                    )
                )
    return tuple(out)


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
                Severity.WARNING,
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
            CertProblem("self-signed", "self-signed: clients must pin it", Severity.WARNING)
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
                        Severity.WARNING,
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
            return read_tls_file(p)
        except TlsFileError as exc:
            limit = " (UCM: < 2 MB)" if exc.code == "too-big" else ""
            problems.append(CertProblem(exc.code, f"{what} {p}: {exc.reason}{limit}"))
            return None, exc.size

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


def as_dict(obj: object) -> Any:
    """Any result of the TLS package as JSON-ready data (enums as values, datetimes ISO 8601,
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
