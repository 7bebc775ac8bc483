"""Logging in to AMI and out again: plain ``Secret`` or MD5 ``Key``, the challenge, Logoff.

:class:`LoginMixin` gives :class:`amicheck.client.AmiClient` these actions on top of its
``request``. They live apart from the I/O loop because they decide what to send and which
values are secrets (the secret, the MD5 key derived from it) that the transcript must mask
before a byte is written, not how bytes move.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amicheck.errors import AuthenticationError, ConnectionClosedError
from amicheck.protocol.events import Reply
from amicheck.protocol.message import Message
from amicheck.protocol.session import HeaderValue
from amicheck.redaction import md5_key
from amicheck.transcript import Transcript

__all__ = ["LoginRefused", "LoginMixin"]


class LoginRefused(AuthenticationError):
    """The server answered Login (or Challenge) with an error; ``response`` is its reply."""

    def __init__(self, message: str, response: Message | None) -> None:
        super().__init__(message)
        self.response = response


class LoginMixin:
    """``challenge``, ``login`` and ``logoff`` for a client that has ``request``."""

    peer: str
    transcript: Transcript

    if TYPE_CHECKING:
        def request(self, action: str | Message, /, timeout: float | None = None,
                    **headers: HeaderValue) -> Reply: ...

    def challenge(self, timeout: float | None = None) -> str:
        """``Action: Challenge`` / ``AuthType: MD5``; returns the challenge string."""
        r = self.request("Challenge", timeout, AuthType="MD5")
        value = r.get("Challenge")
        if not r.ok or not value:
            raise LoginRefused(
                f"{self.peer} gave no MD5 challenge: {r.message or r.status!r}", r.response)
        return value

    def login(self, username: str, secret: str, *, md5: bool = False,
              events: bool | str = True, timeout: float | None = None) -> Reply:
        """Log in (plain ``Secret`` or MD5 ``Key``); the secret is masked in the transcript.

        Args:
            events: True sends no ``Events`` header (server default, on); False sends
                ``Events: off``; a string is sent as the event mask.

        Raises:
            LoginRefused: the server answered with an error (its ``Message`` is quoted).
        """
        self.transcript.add_secret(secret)
        headers: dict[str, HeaderValue] = {"Username": username}
        if md5:
            key = md5_key(self.challenge(timeout), secret)  # registered as secret-derived
            self.transcript.add_secret(key)
            headers = {"AuthType": "MD5", "Username": username, "Key": key}
        else:
            headers["Secret"] = secret
        if events is False:
            headers["Events"] = "off"
        elif isinstance(events, str):
            headers["Events"] = events
        r = self.request("Login", timeout, **headers)
        if not r.ok:
            raise LoginRefused(
                f"login as {username!r} refused by {self.peer}: "
                f"{r.message or r.status or 'no message'}", r.response)
        return r

    def logoff(self, timeout: float | None = None) -> Reply | None:
        """``Action: Logoff``; None if the server closed without answering."""
        try:
            return self.request("Logoff", timeout)
        except ConnectionClosedError:
            return None
