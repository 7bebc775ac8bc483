"""What a :class:`~amicheck.protocol.session.ClientSession` hands back, as plain data.

The session turns each parsed message into one of these events (h11's ``_events.py`` is the
model): the whole :class:`Reply` to an action, a :class:`ListItem` on the way, an
:class:`Unsolicited` event, a :class:`Stray` message with its :class:`Deviation`, the
:class:`Banner` and :class:`Closed` at the ends. :class:`MessageQueue` is the bounded store
the I/O loop keeps unclaimed messages in. No I/O, no time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from amicheck.protocol.message import Message, MessageKind

__all__ = [
    "DeviationRule",
    "Deviation",
    "Banner",
    "Reply",
    "ListItem",
    "Unsolicited",
    "Stray",
    "Closed",
    "SessionEvent",
    "MessageQueue",
    "EventSearch",
    "OK_STATUSES",
]

_EVENT = MessageKind.EVENT
_RESPONSE = MessageKind.RESPONSE
_RAW = MessageKind.RAW
_MB = 1024 * 1024
#: Response statuses that mean the action worked (lower case).
OK_STATUSES: Final = frozenset({"success", "follows", "goodbye"})


class DeviationRule(StrEnum):
    """What the peer (or our own use of an ActionID) did outside the protocol."""

    NO_BANNER = "no-banner"  # the first line is not ``Asterisk Call Manager/x``
    UNKNOWN_ACTION_ID = "unknown-actionid"  # a response for an ActionID we never sent
    MISSING_ACTION_ID = "missing-actionid"  # a response without the ActionID we sent
    DUPLICATE_RESPONSE = "duplicate-response"  # a second response for one ActionID
    UNEXPECTED_RAW = "unexpected-raw"  # headerless text while no 13.x Queues is pending
    UNEXPECTED_MESSAGE = "unexpected-message"  # neither a response, an event nor raw text
    EVENT_BEFORE_LOGIN = "event-before-login"  # events reach a session not logged in
    LIST_TOO_LONG = "list-too-long"  # an event list over the cap (items dropped, counted)
    REUSED_ACTION_ID = "reused-actionid"  # we sent an ActionID still awaiting its answer


@dataclass(frozen=True, slots=True)
class Deviation:
    """One recorded deviation; ``message`` is the offending message, if any."""

    rule: DeviationRule
    detail: str
    message: Message | None = None

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"


@dataclass(slots=True)
class Banner:
    """The first line was read: ``banner`` is the AMI banner, or None if it was not one."""

    banner: str | None


@dataclass(slots=True)
class Reply:
    """The whole answer to one action (``amicheck.client.Response`` is this class).

    Attributes:
        response: the ``Response:`` message (or the RAW text block of 13.x ``Queues``).
        events: the items of an event list, in order, without the final event.
        complete: the ``*Complete`` (or ``EventList: Cancelled``) event, if a list.
        action: the action name, lower-case.
        request_id: the ActionID the action was sent with.
        dropped: list items dropped over the cap (see :class:`ClientSession`).
    """

    response: Message
    events: list[Message] = field(default_factory=list)
    complete: Message | None = None
    action: str = ""
    request_id: str = ""
    dropped: int = 0

    @property
    def ok(self) -> bool:
        """Success, Follows or Goodbye (or a RAW answer, which has no status)."""
        msg = self.response
        if msg.kind is _RAW:
            return True
        return msg.kind is _RESPONSE and (msg.name or "").lower() in OK_STATUSES

    @property
    def status(self) -> str | None:
        """``Success``, ``Error``, ``Follows``, ``Goodbye``... (None for RAW answers)."""
        return self.response.name if self.response.kind is _RESPONSE else None

    @property
    def message(self) -> str | None:
        """The ``Message:`` header."""
        return self.response.get("Message")

    @property
    def action_id(self) -> str | None:
        """The ActionID the response carries (None for a RAW answer)."""
        return self.response.action_id

    @property
    def text(self) -> str | None:
        """Command output (13.x Follows body, 14+ ``Output:`` lines) or RAW text."""
        if self.response.text is not None:
            return self.response.text
        lines = self.response.getall("Output")
        return "\n".join(lines) + "\n" if lines else None

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.response.get(key, default)

    def __getitem__(self, key: str) -> str:
        return self.response[key]


@dataclass(slots=True)
class ListItem:
    """An item of an open event list (also kept for its :class:`Reply`)."""

    action_id: str
    message: Message


@dataclass(slots=True)
class Unsolicited:
    """An event that belongs to no open event list."""

    message: Message


@dataclass(slots=True)
class Stray:
    """A message that answers nothing pending; ``deviation`` says why, when it is one."""

    message: Message
    deviation: Deviation | None


@dataclass(slots=True)
class Closed:
    """The connection ended; ``unanswered`` are the ActionIDs still waiting."""

    unanswered: tuple[str, ...]


SessionEvent = Banner | Reply | ListItem | Unsolicited | Stray | Closed


class MessageQueue:
    """Unclaimed messages (events, stray responses), oldest first, capped by count and by
    estimated memory. Over a cap the OLDEST go (a check waits for what a streaming target
    says next); ``dropped`` counts them.
    """

    __slots__ = ("msgs", "_sizes", "size", "max_count", "max_bytes", "dropped")

    def __init__(self, max_count: int, max_bytes: int) -> None:
        self.msgs: deque[Message] = deque()
        self._sizes: deque[int] = deque()
        self.size = 0
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.dropped = 0

    def append(self, msg: Message, size: int) -> None:
        msgs, sizes = self.msgs, self._sizes
        msgs.append(msg)
        sizes.append(size)
        self.size += size
        while len(msgs) > 1 and (len(msgs) > self.max_count or self.size > self.max_bytes):
            msgs.popleft()
            self.size -= sizes.popleft()
            self.dropped += 1

    @property
    def cap_note(self) -> str | None:
        """One line for a report when the caps dropped messages, else None."""
        if not self.dropped:
            return None
        return (f"event stream capped at {self.max_count:,} events / "
                f"{self.max_bytes / _MB:.3g} MB; {self.dropped:,} dropped")

    def take_event(self, pred: Callable[[Message], bool], start: int) -> tuple[Message | None, int]:
        """Remove and return the first event from index ``start`` on that ``pred`` accepts;
        else ``(None, len)``, the index to resume from."""
        msgs = self.msgs
        for i in range(start, len(msgs)):
            msg = msgs[i]
            if msg.kind is _EVENT and pred(msg):
                del msgs[i]
                self.size -= self._sizes[i]
                del self._sizes[i]
                return msg, i
        return None, len(msgs)

    def take(self, events_only: bool = False) -> list[Message]:
        """Remove and return every message (or every event, leaving the rest)."""
        out: list[Message] = []
        msgs: deque[Message] = deque()
        sizes: deque[int] = deque()
        for msg, size in zip(self.msgs, self._sizes, strict=True):
            if events_only and msg.kind is not _EVENT:
                msgs.append(msg)
                sizes.append(size)
            else:
                out.append(msg)
        self.msgs, self._sizes, self.size = msgs, sizes, sum(sizes)
        return out


class EventSearch:
    """A look for the first event ``pred`` accepts in a :class:`MessageQueue`, made again
    after every read: each call scans only what arrived since the last one (shifted back by
    what the queue dropped meanwhile), so waiting in a long stream stays linear.

    Call it (``True`` once found); ``found`` is the event, removed from the queue.
    """

    __slots__ = ("queue", "pred", "found", "_pos", "_dropped")

    def __init__(self, queue: MessageQueue, pred: Callable[[Message], bool]) -> None:
        self.queue = queue
        self.pred = pred
        self.found: Message | None = None
        self._pos = 0
        self._dropped = queue.dropped

    def __call__(self) -> bool:
        queue = self.queue
        if self.found is None and (len(queue.msgs) > self._pos
                                   or queue.dropped != self._dropped):
            self._pos = max(0, self._pos - (queue.dropped - self._dropped))
            self._dropped = queue.dropped
            self.found, self._pos = queue.take_event(self.pred, self._pos)
        return self.found is not None
