"""Message -> wire bytes. Refuses header injection (CR or LF inside a key or value).

The encoder works on a message's wire fields, not on the Message class: message.py imports
it for ``bytes(msg)``, and nothing here imports message.py, so there is no cycle.
"""

from __future__ import annotations

from typing import Protocol

from amicheck.errors import LocalProtocolError
from amicheck.protocol.grammar import END_COMMAND

__all__ = ["encode", "encode_fields", "Encodable"]

Triples = list[tuple[str, str, str]]


class Encodable(Protocol):
    """What ``encode`` needs of a message (``Message`` is one)."""

    @property
    def raw_items(self) -> Triples: ...

    @property
    def text(self) -> str | None: ...

    @property
    def encoding(self) -> str: ...


def _check(triples: Triples) -> None:
    """Find the header that smuggles a line end or has an empty key (else return)."""
    for index, (key, sep, value) in enumerate(triples):
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


def encode(msg: Encodable) -> bytes:
    """The CRLF wire form of ``msg`` (the same as ``bytes(msg)``).

    Raises:
        LocalProtocolError: a key or value contains CR or LF, or a key is empty.
    """
    return encode_fields(msg.raw_items, msg.text, msg.encoding)


def encode_fields(triples: Triples, text: str | None, enc: str) -> bytes:
    """The CRLF wire form of a message's fields: ``Key: value`` lines and an empty line.

    ``Response: Follows`` messages append their ``text`` and ``--END COMMAND--``; RAW
    messages (headerless text) are written as their text and an empty line; a message with
    neither headers nor text is a bare empty line. Bytes are produced with the
    message's own encoding, so a parsed message encodes back to the bytes it came from.

    Raises:
        LocalProtocolError: a key or value contains CR or LF, or a key is empty.
    """
    errors = "surrogateescape" if enc == "utf-8" else "strict"
    if not triples:
        if text is None:  # an empty message is a bare blank line
            return b"\r\n"
        return text.encode(enc, errors) + b"\r\n\r\n"
    body = "\r\n".join([k + s + v for k, s, v in triples])
    # C-level scans instead of a per-header loop: n headers joined by n-1 CRLFs, and an
    # empty key shows as a line starting with its ":" separator. _check finds the culprit
    # (and merely returns when a key itself starts with ":").
    n = len(triples) - 1
    if body.count("\n") != n or body.count("\r") != n or body.startswith(":") or "\n:" in body:
        _check(triples)
    if text is not None:
        return (
            (body + "\r\n").encode(enc, errors)
            + text.encode(enc, errors)
            + END_COMMAND
            + b"\r\n\r\n"
        )
    return (body + "\r\n\r\n").encode(enc, errors)
