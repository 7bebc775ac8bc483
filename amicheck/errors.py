"""One exception tree for amicheck, split by who is to blame.

``AmiCheckError`` is the root. ``LocalProtocolError`` means *we* (or our caller) tried
to break the protocol, ``RemoteProtocolError`` means the peer did. Transport, timeout,
authentication and profile problems have their own branches so that callers (the CLI,
the pytest plugin) can turn each into one clear line without a traceback.
"""

from __future__ import annotations

__all__ = [
    "AmiCheckError",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "TransportError",
    "ConnectError",
    "AmiTimeoutError",
    "ConnectionClosedError",
    "AuthenticationError",
    "ProfileError",
]


class AmiCheckError(Exception):
    """Root of every error amicheck raises on purpose."""


class ProtocolError(AmiCheckError):
    """AMI bytes or messages that break a grammar rule.

    Attributes:
        rule: short name of the rule that was broken (e.g. ``"header-syntax"``).
        offset: byte offset in the parsed stream where it happened, if known.
    """

    def __init__(self, message: str, *, rule: str = "", offset: int | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.offset = offset


class LocalProtocolError(ProtocolError):
    """We were about to send something that is not valid AMI (e.g. CR/LF in a value)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something that is not valid AMI."""


class TransportError(AmiCheckError):
    """The connection itself failed (refused, reset, TLS handshake, ...)."""

    def __init__(self, message: str, *, peer: str = "") -> None:
        super().__init__(message)
        self.peer = peer


class ConnectError(TransportError):
    """Could not connect (refused, unreachable, TLS handshake failed)."""


class ConnectionClosedError(TransportError):
    """The peer closed the connection while we were waiting for something."""


class AmiTimeoutError(TransportError):
    """A wait ran out of time; the message names what was awaited."""

    def __init__(self, message: str, *, peer: str = "", waiting_for: str = "") -> None:
        super().__init__(message, peer=peer)
        self.waiting_for = waiting_for


class AuthenticationError(AmiCheckError):
    """Login was refused (the server answered ``Authentication failed`` or similar)."""


class ProfileError(AmiCheckError):
    """A target profile is invalid; ``problems`` lists every ``key.path: reason``."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{path}: invalid profile ({len(self.problems)} problem(s))\n{lines}")
