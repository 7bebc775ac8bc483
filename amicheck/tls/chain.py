"""The certificate chain a TLS port serves, from one handshake (no audit: :mod:`.scan` does
that). For callers that only need the served certificates quickly, e.g. onboarding a UCM.

pyOpenSSL, because the stdlib's ``ssl`` (Python 3.11) hands out the leaf only. The client
verifies nothing and offers everything this OpenSSL has (``@SECLEVEL=0``), so an old or
weak server still shows its certificate; the handshake has a deadline.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import time

from cryptography import x509
from OpenSSL import SSL

from amicheck.errors import ConnectError

__all__ = ["fetch_certificate_chain"]


def _wait(sock: socket.socket, deadline: float, write: bool = False) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("TLS handshake timed out")
    r, w, _ = select.select([] if write else [sock], [sock] if write else [], [], left)
    if not r and not w:
        raise TimeoutError("TLS handshake timed out")


def _context() -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_verify(SSL.VERIFY_NONE, lambda *a: True)
    ctx.set_min_proto_version(SSL.TLS1_VERSION)
    ctx.set_cipher_list(b"ALL:COMPLEMENTOFALL:!PSK:!SRP:@SECLEVEL=0")
    ctx.set_options(SSL.OP_NO_TICKET)
    return ctx


def _reason(exc: SSL.Error) -> str:
    try:
        return "; ".join(str(e[2]) for e in exc.args[0]) or str(exc)
    except (IndexError, TypeError):
        return str(exc)


def fetch_certificate_chain(
    host: str, port: int, *, timeout: float = 5.0, server_name: str | None = None
) -> tuple[x509.Certificate, ...]:
    """The certificates ``host:port`` sends, leaf first.

    Raises:
        ConnectError: no connection, no completed handshake within ``timeout``, or an empty
            chain (the message says which).
    """
    peer = f"{host}:{port}"
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise ConnectError(f"no TLS certificate from {peer}: connect: {exc}", peer=peer) from None
    try:
        sock.setblocking(False)
        conn = SSL.Connection(_context(), sock)
        sni = server_name or host
        try:
            ipaddress.ip_address(sni)
        except ValueError:
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
        chain = tuple(c.to_cryptography() for c in conn.get_peer_cert_chain() or [])
    except TimeoutError as exc:
        raise ConnectError(f"no TLS certificate from {peer}: {exc}", peer=peer) from None
    except SSL.SysCallError as exc:
        raise ConnectError(
            f"no TLS certificate from {peer}: connection closed ({exc.args[-1]})", peer=peer
        ) from None
    except SSL.Error as exc:
        raise ConnectError(f"no TLS certificate from {peer}: {_reason(exc)}", peer=peer) from None
    except OSError as exc:
        raise ConnectError(f"no TLS certificate from {peer}: {exc}", peer=peer) from None
    finally:
        sock.close()
    if not chain:
        raise ConnectError(f"no TLS certificate from {peer}: empty chain", peer=peer)
    return chain
