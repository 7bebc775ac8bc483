"""The AMI message model: ordered raw ``(key, value)`` pairs, as on the wire.

Keys may repeat (``Variable``, ``ChanVariable``, ``Output``) and keep their order and their
spelling; lookups ignore case, like Asterisk's ``astman_get_header``. Nothing is folded
into a dict, so ``encode(parse(x))`` gives back ``x`` for every well-formed message.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from amicheck.protocol.encoder import encode_fields

__all__ = ["Message", "MessageKind", "Violation", "from_wire"]


class MessageKind(StrEnum):
    """What a message is, from its first header (``Action``/``Response``/``Event``).

    ``RAW`` is a headerless text block (Asterisk 13's ``Queues`` answer); ``UNKNOWN`` is a
    header block whose first key is none of the three.
    """

    ACTION = "action"
    RESPONSE = "response"
    EVENT = "event"
    RAW = "raw"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Violation:
    """One deviation from the AMI grammar, recorded instead of repaired silently.

    Attributes:
        rule: short rule name, e.g. ``"bare-lf"``, ``"header-syntax"``, ``"not-utf8"``.
        offset: byte offset in the stream fed to the parser where it was seen.
        detail: one human sentence.
    """

    rule: str
    offset: int
    detail: str

    def __str__(self) -> str:
        return f"{self.rule} at byte {self.offset}: {self.detail}"


_FIRST_KEY_KIND = {
    "action": MessageKind.ACTION,
    "response": MessageKind.RESPONSE,
    "event": MessageKind.EVENT,
}


_new = object.__new__


class Message:
    """One AMI packet.

    Args:
        items: ordered ``(key, value)`` pairs; keys may repeat.
        text: raw body text for ``Response: Follows`` command output (without the
            ``--END COMMAND--`` marker) and for headerless text blocks (``kind`` RAW).
        violations: deviations the parser recorded for this message.
        encoding: the text encoding the bytes were decoded with (``utf-8``, or ``latin-1``
            when the peer sent bytes that are not UTF-8); ``encode`` uses it again.

    A plain ``Message([("Action", "Ping"), ("ActionID", "1")])`` builds an action to send.
    """

    __slots__ = ("_t", "_index", "text", "violations", "encoding")

    def __init__(
        self,
        items: Iterable[tuple[str, str]] = (),
        *,
        text: str | None = None,
        violations: tuple[Violation, ...] = (),
        encoding: str = "utf-8",
    ) -> None:
        # Internally each header is the (key, separator, value) triple seen on the wire, so
        # that a message parsed with an odd separator ("Key:value") encodes back unchanged.
        self._t: list[tuple[str, str, str]] = [(k, ": ", v) for k, v in items]
        self._index: dict[str, str] | None = None
        self.text = text
        self.violations = violations
        self.encoding = encoding

    # -- construction helpers -------------------------------------------------------------
    @classmethod
    def action(cls, name: str, /, **headers: str | int) -> Message:
        """``Message.action("Originate", Channel="PJSIP/1000", Async="true")``."""
        items = [("Action", name)]
        items.extend((k, str(v)) for k, v in headers.items())
        return cls(items)

    # -- lookups ----------------------------------------------------------------------------
    def _build_index(self) -> dict[str, str]:
        # Reversed, so that the FIRST occurrence of a repeated key wins (astman_get_header).
        index = {k.lower(): v for k, _, v in reversed(self._t)}
        self._index = index
        return index

    def get(self, key: str, default: str | None = None) -> str | None:
        """First value of ``key`` (case-insensitive), or ``default``."""
        index = self._index if self._index is not None else self._build_index()
        return index.get(key.lower(), default)

    def getall(self, key: str) -> list[str]:
        """Every value of ``key`` (case-insensitive), in wire order."""
        low = key.lower()
        return [v for k, _, v in self._t if k.lower() == low]

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    # -- views ------------------------------------------------------------------------------
    @property
    def items(self) -> list[tuple[str, str]]:
        """The ordered ``(key, value)`` pairs (a copy: messages are treated as immutable)."""
        return [(k, v) for k, _, v in self._t]

    @property
    def raw_items(self) -> list[tuple[str, str, str]]:
        """``(key, separator, value)`` exactly as on the wire (separator usually ``": "``)."""
        return list(self._t)

    def keys(self) -> list[str]:
        return [k for k, _, _ in self._t]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((k, v) for k, _, v in self._t)

    def __len__(self) -> int:
        return len(self._t)

    @property
    def kind(self) -> MessageKind:
        """ACTION, RESPONSE or EVENT from the first header; RAW for text blocks."""
        if not self._t:
            return MessageKind.RAW if self.text is not None else MessageKind.UNKNOWN
        return _FIRST_KEY_KIND.get(self._t[0][0].lower(), MessageKind.UNKNOWN)

    @property
    def name(self) -> str | None:
        """The value of the first header (the action, response or event name)."""
        return self._t[0][2] if self._t else None

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    @property
    def event_list(self) -> str | None:
        """``start``/``Complete``/``Cancelled`` on event-list responses, lower-cased."""
        value = self.get("EventList")
        return value.lower() if value is not None else None

    def is_response(self, status: str | None = None) -> bool:
        if self.kind is not MessageKind.RESPONSE:
            return False
        return status is None or (self.name or "").lower() == status.lower()

    def is_event(self, name: str | None = None) -> bool:
        if self.kind is not MessageKind.EVENT:
            return False
        return name is None or (self.name or "").lower() == name.lower()

    # -- wire form --------------------------------------------------------------------------
    def __bytes__(self) -> bytes:
        """The CRLF wire form (``encode(msg)``); raises ``LocalProtocolError`` on header
        injection."""
        return encode_fields(self._t, self.text, self.encoding)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return self._t == other._t and self.text == other.text

    def __hash__(self) -> int:
        return hash((tuple(self._t), self.text))

    def __repr__(self) -> str:
        body = ", ".join(f"{k}: {v}" for k, _, v in self._t[:6])
        more = f", +{len(self._t) - 6}" if len(self._t) > 6 else ""
        text = f", text={len(self.text)} chars" if self.text is not None else ""
        return f"<Message {self.kind.value} [{body}{more}]{text}>"


def from_wire(
    triples: list[tuple[str, str, str]],
    text: str | None = None,
    violations: tuple[Violation, ...] = (),
    encoding: str = "utf-8",
) -> Message:
    """A message from the parsers: adopts their ``(key, separator, value)`` triples as they
    were on the wire (so odd separators encode back unchanged), without copying them.

    The parsers build one of these per packet; ``Message(items)`` copies and fixes every
    separator to ``": "``, which is right for a message being written, not for one read.
    """
    msg = _new(Message)
    msg._t = triples
    msg._index = None
    msg.text = text
    msg.violations = violations
    msg.encoding = encoding
    return msg
