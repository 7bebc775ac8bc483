"""TLS test material: certificate authorities, end-entity leaves and server contexts.

trustme-style: :meth:`Authority.generate` makes a CA, :meth:`Authority.issue` signs a leaf
(``CA:FALSE``, serverAuth, subjectAltName covering the names and addresses given), and
:class:`CertPair` writes it where a server loads it. The simulator's default certificate and
its TLS faults (expired, RSA-1024/SHA-1, a different certificate) come from here, and so do
the certificates of the legacy servers in the tests. :func:`make_self_signed` keeps the old
self-signed maker (a CA-flagged root that is its own leaf) for the static-rule tests.

SHA-1 and MD5 signatures: cryptography refuses to make them, so the certificate is signed with
SHA-256 and then re-signed by hand with the legacy hash (same-length OID swap).
"""

from __future__ import annotations

import datetime as _dt
import functools
import ipaddress
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dh, ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DEFAULT_SAN",
    "DH1024_P",
    "dh_params_pem",
    "Authority",
    "CertPair",
    "default_authority",
    "simulator_pair",
    "make_self_signed",
    "make_server_context",
]

#: Names a leaf covers unless told otherwise: what a loopback client connects to.
DEFAULT_SAN: tuple[str, ...] = ("localhost", "127.0.0.1")

#: RFC 2409 Oakley group 2 (1024-bit MODP): a DH group below 2048 bits (Logjam-class).
DH1024_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E"
    "3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF"
    "5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
    16,
)


def dh_params_pem(p: int = DH1024_P, g: int = 2) -> bytes:
    """PKCS#3 ``DH PARAMETERS`` PEM (``load_dh_params``, gnutls-serv ``--dhparams``); the
    default is the weak 1024-bit group of the tls-weak-dh fault and the legacy servers."""
    params = dh.DHParameterNumbers(p, g).parameters()
    return params.parameter_bytes(serialization.Encoding.PEM, serialization.ParameterFormat.PKCS3)


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
_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _new_key(key_type: str, key_bits: int) -> _PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=key_bits)
    if key_type == "ec":
        curves: dict[int, ec.EllipticCurve] = {256: ec.SECP256R1(), 384: ec.SECP384R1()}
        if key_bits not in curves:
            raise ValueError(f"EC key_bits must be 256 or 384, not {key_bits}")
        return ec.generate_private_key(curves[key_bits])
    raise ValueError(f"key_type must be 'rsa' or 'ec', not {key_type!r}")


def _check_hash(hash_name: str, signer: _PrivateKey) -> str:
    h = hash_name.lower()
    if h in _OID_LEGACY_RSA:
        if not isinstance(signer, rsa.RSAPrivateKey):
            raise ValueError(f"hash {hash_name!r} is only supported with RSA keys")
    elif h not in _HASHES:
        raise ValueError(f"unsupported hash {hash_name!r}")
    return h


def _alt_names(names: Sequence[str]) -> list[x509.GeneralName]:
    alt: list[x509.GeneralName] = []
    for entry in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            alt.append(x509.DNSName(entry))
    return alt


def _key_pem(key: _PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _sign(
    builder: x509.CertificateBuilder, signer: _PrivateKey, hash_name: str
) -> x509.Certificate:
    """Sign, re-signing by hand for SHA-1/MD5 (which cryptography will not sign with)."""
    if hash_name not in _OID_LEGACY_RSA:
        return builder.sign(signer, _HASHES[hash_name])
    assert isinstance(signer, rsa.RSAPrivateKey)
    der = builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    # Swap the signature algorithm OID (same length) in tbsCertificate and in the outer
    # AlgorithmIdentifier, then replace the signature (the last bytes of the DER).
    der = der.replace(_OID_SHA256_RSA, _OID_LEGACY_RSA[hash_name])
    tbs = x509.load_der_x509_certificate(der).tbs_certificate_bytes
    algo: hashes.HashAlgorithm = hashes.SHA1() if hash_name == "sha1" else hashes.MD5()
    sig = signer.sign(tbs, padding.PKCS1v15(), algo)
    return x509.load_der_x509_certificate(der[: -len(sig)] + sig)


@dataclass(frozen=True)
class CertPair:
    """A certificate (PEM, leaf first; ``chain_pem`` adds the issuing CA) and its key."""

    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes = b""

    @property
    def chain_pem(self) -> bytes:
        """Leaf followed by its CA: what a server serving the whole chain loads."""
        return self.cert_pem + self.ca_pem

    @property
    def certificate(self) -> x509.Certificate:
        """The leaf, parsed."""
        return x509.load_pem_x509_certificate(self.cert_pem)

    def write(self, cert_path: Path, key_path: Path, *, ca_path: Path | None = None) -> None:
        """Write the leaf and key (mode 0600) and, if asked, the CA certificate."""
        key_path.write_bytes(self.key_pem)
        key_path.chmod(0o600)
        cert_path.write_bytes(self.cert_pem)
        if ca_path is not None:
            ca_path.write_bytes(self.ca_pem)


@dataclass(frozen=True)
class Authority:
    """A generated certificate authority that signs leaves (trustme's ``CA``)."""

    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def generate(cls, common_name: str = "amicheck test CA", *, key_bits: int = 2048) -> Authority:
        """A fresh RSA root CA (``CA:TRUE, pathlen:0``), valid for ten years."""
        key = _new_key("rsa", key_bits)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        t0 = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(t0 - _dt.timedelta(days=1))
            .not_valid_after(t0 + _dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        cert = builder.sign(key, hashes.SHA256())
        return cls(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    @property
    def certificate(self) -> x509.Certificate:
        """The CA certificate, parsed."""
        return x509.load_pem_x509_certificate(self.cert_pem)

    def _key(self) -> _PrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        return key

    def issue(
        self,
        common_name: str = "amicheck",
        *,
        san: Sequence[str] = DEFAULT_SAN,
        key_bits: int = 2048,
        key_type: str = "rsa",
        hash: str = "sha256",  # noqa: A002 - trustme's and openssl's name
        not_before: _dt.timedelta = _dt.timedelta(hours=-1),
        not_after: _dt.timedelta = _dt.timedelta(days=365),
        now: _dt.datetime | None = None,
    ) -> CertPair:
        """An end-entity leaf: ``CA:FALSE``, serverAuth, subjectAltName = ``san``.

        ``key_bits``/``key_type``/``hash`` as :func:`make_self_signed` (``sha1``/``md5``
        for the weak-certificate faults); ``not_after`` negative makes it expired.
        """
        key = _new_key(key_type, key_bits)
        signer = self._key()
        h = _check_hash(hash, signer)
        ca = self.certificate
        t0 = now or _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(t0 + not_before)
            .not_valid_after(t0 + not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, True, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
            )
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(_alt_names(san)), False)
        cert = _sign(builder, signer, h)
        return CertPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key), self.cert_pem)


@functools.lru_cache(maxsize=1)
def default_authority() -> Authority:
    """This process's CA for the simulator's certificates (one RSA key generation, cached)."""
    return Authority.generate("amicheck simulator CA")


def simulator_pair(
    common_name: str = "ucm-simulator.localhost",
    *,
    key_size: int = 2048,
    sha1: bool = False,
    expired: bool = False,
    san: Sequence[str] | None = None,
) -> CertPair:
    """The simulator's leaf: CA-signed, ``CA:FALSE``, SAN = CN, localhost, 127.0.0.1.

    ``key_size=1024, sha1=True`` for the weak-cert-key fault, ``expired`` for expired-cert
    (validity ended a day ago), ``san=()`` for a CN-only leaf. The CA is in
    :attr:`CertPair.ca_pem` for verifying clients.
    """
    if expired:
        before, after = _dt.timedelta(days=-400), _dt.timedelta(days=-1)
    else:
        before, after = _dt.timedelta(hours=-1), _dt.timedelta(days=365)
    return default_authority().issue(
        common_name,
        san=(common_name, *DEFAULT_SAN) if san is None else san,
        key_bits=key_size,
        hash="sha1" if sha1 else "sha256",
        not_before=before,
        not_after=after,
    )


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
    """A self-signed (``CA:TRUE``) certificate and its key as ``(cert_pem, key_pem)``.

    Args:
        common_name: subject CN (also a SAN unless ``san`` is given).
        key_bits: RSA modulus size (1024 for a weak key) or EC curve size (256/384).
        key_type: ``"rsa"`` or ``"ec"``.
        hash: ``sha256``/``sha384``/``sha512``, or ``sha1``/``md5`` (RSA only).
        not_before, not_after: validity offsets from now (negative ``not_after``: expired).
        san: DNS names / IP addresses for subjectAltName (default: CN and 127.0.0.1).
    """
    key = _new_key(key_type, key_bits)
    h = _check_hash(hash, key)
    t0 = now or _now()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
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
    alt = _alt_names(san if san is not None else (common_name, "127.0.0.1"))
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = _sign(builder, key, h)
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


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
    accepts TLS 1.0/1.1; ``weak_ciphers`` adds static-RSA (and 3DES/RC4 when this OpenSSL
    has them); ``weak_key_ok`` drops the security level so RSA-1024/SHA-1 certificates load.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if weak_ciphers:
        ctx.set_ciphers(
            "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES:kRSA:3DES:RC4:!aNULL:!eNULL:!PSK"
            ":!SRP:@SECLEVEL=0"
        )
    elif legacy_versions or weak_key_ok:
        ctx.set_ciphers("ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES:!aNULL:!eNULL:@SECLEVEL=0")
    if legacy_versions:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx
