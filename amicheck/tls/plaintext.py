"""Plaintext exposure: does a port answer plaintext AMI (a banner or a reply)?

Not a TLS handshake: a plaintext AMI client's view of a port, for AMI-TLS-007 (the TLS port
must not answer plaintext) and AMI-TLS-008 (the plain port with TLS only). Every wait has a
deadline; a refused connection is "no listener", not an error.
"""

from __future__ import annotations

import enum
import socket
from dataclasses import dataclass

__all__ = ["ProbeStatus", "PlaintextProbe", "probe_plaintext"]


class ProbeStatus(enum.StrEnum):
    """Outcome of one live probe."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    NOT_TESTABLE = "not testable"  # this machine's OpenSSL cannot offer it
    ERROR = "error"  # could not connect / timed out: no verdict


@dataclass(frozen=True)
class PlaintextProbe:
    """What a plaintext AMI client sees on the port: ``banner`` means plaintext AMI answered."""

    status: ProbeStatus  # ACCEPTED: plaintext AMI answered (bad on a TLS port)
    reply: str  # banner, ami-response, tls-alert, closed, silent, no-listener, error
    data: bytes = b""
    detail: str = ""


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
