"""amicheck: test-and-compliance harness for the Asterisk Manager Interface (AMI).

The protocol core lives in :mod:`amicheck.protocol` (sans-I/O). Everything else builds on it.
"""

from __future__ import annotations

from amicheck.errors import (
    AmiCheckError,
    AmiTimeoutError,
    AuthenticationError,
    ConnectError,
    ConnectionClosedError,
    LocalProtocolError,
    ProfileError,
    ProtocolError,
    RemoteProtocolError,
    TransportError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "AmiCheckError",
    "AmiTimeoutError",
    "AuthenticationError",
    "ConnectError",
    "ConnectionClosedError",
    "LocalProtocolError",
    "ProfileError",
    "ProtocolError",
    "RemoteProtocolError",
    "TransportError",
]
