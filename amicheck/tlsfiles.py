"""The TLS files a UCM takes for AMI: the size cap, one bounded read, the key/cert match.

Both the profile rules (:mod:`amicheck.rules`, tls-files) and the certificate audit
(:mod:`amicheck.tlsaudit`) read the uploaded ``ami_certificate.pem`` / ``ami_private.pem``;
this module is the one place that does, so rules never imports the audit (no cycle) and the
two cannot disagree on the cap. cryptography and pyOpenSSL load only when a key is checked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from amicheck.filekind import not_regular

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["MAX_TLS_FILE_BYTES", "TlsFileError", "read_tls_file", "key_matches_cert"]

#: The UCM refuses uploaded TLS key/certificate files of 2 MB or more.
MAX_TLS_FILE_BYTES = 2 * 1024 * 1024


class TlsFileError(Exception):
    """A TLS file that cannot be used: ``code`` is ``too-big`` or ``unreadable``.

    ``reason`` is the short why (``2500000 bytes``, ``No such file or directory``); ``size``
    is the file's size when known.
    """

    def __init__(self, code: str, reason: str, size: int | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.size = size


def read_tls_file(path: Path) -> tuple[bytes, int]:
    """The file's bytes and size; refused before reading unless a regular file under the cap.

    Raises:
        TlsFileError: too big (``code == "too-big"``) or not readable as a regular file.
    """
    try:
        st = os.stat(path)
        refused = not_regular(st.st_mode, "a PEM file")
        if refused:
            raise TlsFileError("unreadable", refused)
        if st.st_size >= MAX_TLS_FILE_BYTES:
            raise TlsFileError("too-big", f"{st.st_size} bytes", st.st_size)
        with open(path, "rb") as fh:
            data = fh.read(MAX_TLS_FILE_BYTES)
    except OSError as exc:
        raise TlsFileError("unreadable", exc.strerror or str(exc)) from None
    if len(data) >= MAX_TLS_FILE_BYTES:  # grew after the stat
        raise TlsFileError("too-big", f"at least {len(data)} bytes", len(data))
    return data, len(data)


def key_matches_cert(cert: x509.Certificate, key_pem: bytes) -> bool:
    """``SSL_CTX_check_private_key`` (what Asterisk runs): False on mismatch or bad key."""
    from cryptography.hazmat.primitives import serialization
    from OpenSSL import SSL

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
