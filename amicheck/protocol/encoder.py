"""Message -> wire bytes. Refuses header injection (CR or LF inside a key or value)."""

from __future__ import annotations

from amicheck.errors import LocalProtocolError
from amicheck.protocol.grammar import END_COMMAND
from amicheck.protocol.message import Message

__all__ = ["encode"]


def _check(msg: Message, body: str) -> None:
    """Find the header that smuggles a line end or has an empty key (else return)."""
    for index, (key, sep, value) in enumerate(msg._t):
        for what, text in (("key", key), ("value", value)):
            if "\r" in text or "\n" in text:
                raise LocalProtocolError(
                    f"refusing to encode header #{index} {key!r}: its {what} contains CR or LF "
                    "(header injection); split it into separate headers instead",
                    rule="header-injection",
                )
        if not key and sep:
            raise LocalProtocolError(
                f"refusing to encode header #{index}: empty key", rule="empty-key"
            )


def encode(msg: Message) -> bytes:
    """The CRLF wire form of ``msg``: ``Key: value`` lines and an empty line.

    ``Response: Follows`` messages append their ``text`` and ``--END COMMAND--``; RAW
    messages (headerless text) are written as their text and an empty line; a message with
    neither headers nor text is a bare empty line. Bytes are produced with the
    message's own encoding, so a parsed message encodes back to the bytes it came from.

    Raises:
        LocalProtocolError: a key or value contains CR or LF, or a key is empty.
    """
    triples = msg._t
    enc = msg.encoding
    errors = "surrogateescape" if enc == "utf-8" else "strict"
    if not triples:
        if msg.text is None:  # an empty message is a bare blank line
            return b"\r\n"
        return msg.text.encode(enc, errors) + b"\r\n\r\n"
    body = "\r\n".join([k + s + v for k, s, v in triples])
    # C-level scans instead of a per-header loop: n headers joined by n-1 CRLFs, and an
    # empty key shows as a line starting with its ":" separator. _check finds the culprit
    # (and merely returns when a key itself starts with ":").
    n = len(triples) - 1
    if body.count("\n") != n or body.count("\r") != n or body.startswith(":") or "\n:" in body:
        _check(msg, body)
    if msg.text is not None:
        return (
            (body + "\r\n").encode(enc, errors)
            + msg.text.encode(enc, errors)
            + END_COMMAND
            + b"\r\n\r\n"
        )
    return (body + "\r\n\r\n").encode(enc, errors)
