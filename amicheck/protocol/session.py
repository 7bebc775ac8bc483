"""The client side of an AMI session as a pure state machine (h11-style; no I/O, no time).

Messages go in (what :meth:`Parser.feed` returned), events come out: the answer to an
action (:class:`Reply`, with its event list assembled up to the ``*Complete`` event),
:class:`ListItem` for each list entry on the way, :class:`Unsolicited` events, and
:class:`Stray` messages that answer nothing we asked. The login state follows tables
(:data:`SEND_TRANSITIONS`, :data:`ANSWER_TRANSITIONS`), like h11's ``_state.py``. What the
peer does wrong is recorded as a :class:`Deviation`, never repaired silently: a response
for an ActionID we never sent still reaches the caller, as a Stray, with its deviation.

The event classes are in :mod:`amicheck.protocol.events`. The I/O loop around this object
(``amicheck.client``) reads bytes, feeds the parser and this object, and keeps what the
events carry.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from enum import StrEnum
from typing import Final

from amicheck.protocol.encoder import encode
from amicheck.protocol.events import (
    OK_STATUSES,
    Banner,
    Closed,
    Deviation,
    DeviationRule,
    ListItem,
    MessageQueue,
    Reply,
    SessionEvent,
    Stray,
    Unsolicited,
)
from amicheck.protocol.grammar import BANNER_PREFIX, MAX_BANNER
from amicheck.protocol.message import Message, MessageKind

# The event classes live in amicheck.protocol.events; they stay importable from here,
# where the client, the suites and the tests have always taken them.
__all__ = [
    "State",
    "DeviationRule",
    "Deviation",
    "Banner",
    "Reply",
    "ListItem",
    "Unsolicited",
    "Stray",
    "Closed",
    "SessionEvent",
    "HeaderValue",
    "ClientSession",
    "FirstLine",
    "MessageQueue",
    "SEND_TRANSITIONS",
    "ANSWER_TRANSITIONS",
    "DEFAULT_MAX_LIST_ITEMS",
    "DEFAULT_MAX_LIST_BYTES",
    "MAX_DEVIATIONS",
    "HEADER_COST",
]

#: A header value for :meth:`ClientSession.send`: repeated keys (``Variable``) as a list.
HeaderValue = str | int | Iterable[str]

_EVENT = MessageKind.EVENT
_RESPONSE = MessageKind.RESPONSE
_RAW = MessageKind.RAW

#: Bound on the items one event list keeps (a target that never sends ``*Complete``).
DEFAULT_MAX_LIST_ITEMS = 50_000
#: Bound on the estimated memory of one event list's items.
DEFAULT_MAX_LIST_BYTES = 64 * 1024 * 1024
#: Estimated memory of one parsed header (tuple, strings, index entry), in bytes: a parsed
#: 340-byte event with 16 headers takes about 4.4 KB.
HEADER_COST = 256
#: Deviations kept (oldest dropped first; ``deviation_count`` counts them all).
MAX_DEVIATIONS = 1_000


class State(StrEnum):
    """Where the login dialogue stands."""

    GREETING = "greeting"  # connected, banner not seen yet
    CONNECTED = "connected"  # banner seen (or not a banner), not logged in
    CHALLENGED = "challenged"  # an MD5 challenge was handed out
    LOGGING_IN = "logging in"  # Login sent, not answered
    LOGGED_IN = "logged in"
    LOGGING_OFF = "logging off"  # Logoff sent (answered Goodbye or not), still connected
    CLOSED = "closed"


_G, _C, _CH, _LI, _IN, _LO = (State.GREETING, State.CONNECTED, State.CHALLENGED,
                              State.LOGGING_IN, State.LOGGED_IN, State.LOGGING_OFF)
_NOT_LOGGED_IN: Final = frozenset({_G, _C, _CH})

#: (state, lower-case action sent) -> state. Actions not listed leave the state as it is:
#: a compliance checker must be able to send anything (Ping before Login, a second Login).
SEND_TRANSITIONS: Final[dict[tuple[State, str], State]] = {
    (_G, "login"): _LI,
    (_C, "login"): _LI,
    (_CH, "login"): _LI,
    (_G, "logoff"): _LO,
    (_C, "logoff"): _LO,
    (_CH, "logoff"): _LO,
    (_LI, "logoff"): _LO,
    (_IN, "logoff"): _LO,
}

#: (state, lower-case action answered, answer ok) -> state.
ANSWER_TRANSITIONS: Final[dict[tuple[State, str, bool], State]] = {
    (_G, "challenge", True): _CH,
    (_C, "challenge", True): _CH,
    (_LI, "login", True): _IN,
    (_LI, "login", False): _C,
}

_ANSWER_ACTIONS: Final = frozenset(action for _, action, _ in ANSWER_TRANSITIONS)
#: Actions whose sending needs more than a pending record (a transition, the Queues FIFO).
_SEND_ACTIONS: Final = frozenset(action for _, action in SEND_TRANSITIONS) | {"queues"}


class _Pending:
    __slots__ = ("action_id", "action", "response", "events", "listing", "size", "dropped")

    def __init__(self, action_id: str, action: str) -> None:
        self.action_id = action_id
        self.action = action
        self.response: Message | None = None
        self.events: list[Message] = []
        self.listing = False
        self.size = 0
        self.dropped = 0


def _is_list_end(msg: Message) -> bool:
    el = msg.event_list
    if el is not None:
        return el in ("complete", "cancelled")
    name = msg.name
    return name is not None and name.lower().endswith("complete")


def _ok(msg: Message) -> bool:
    return msg.kind is _RAW or (msg.name or "").lower() in OK_STATUSES


class ClientSession:
    """The client's view of one AMI connection.

    Args:
        action_id_prefix: generated ActionIDs are ``prefix + counter`` (from 1).
        max_list_items: items one event list keeps; later items are dropped and counted.
        max_list_bytes: the same bound on the estimated memory (``size`` given to
            :meth:`receive`) of one list's items.

    Use: :meth:`next_action_id` and :meth:`send_action` for every action written,
    :meth:`send_raw` for bytes written outside that, :meth:`receive_banner` for the first
    line, :meth:`receive` for every parsed message, :meth:`connection_closed` at the end.
    """

    def __init__(
        self,
        action_id_prefix: str = "",
        *,
        max_list_items: int = DEFAULT_MAX_LIST_ITEMS,
        max_list_bytes: int = DEFAULT_MAX_LIST_BYTES,
    ) -> None:
        if "\r" in action_id_prefix or "\n" in action_id_prefix:
            raise ValueError(f"action_id_prefix must not contain CR or LF: {action_id_prefix!r}")
        self.action_id_prefix = action_id_prefix
        self.state = State.GREETING
        self.banner: str | None = None
        self.max_list_items = max_list_items
        self.max_list_bytes = max_list_bytes
        self._counter = itertools.count(1)
        self._issued = 0
        self._pending: dict[str, _Pending] = {}
        self._prefixes: dict[str, bytes] = {}  # "Action: X\r\nActionID: " per action name
        self._lower: dict[str, str] = {}  # action name -> lower case, for the hot path
        self._queues: deque[_Pending] = deque()  # 13.x Queues awaiting their RAW answer
        self._raw_sent = False
        self._early = False  # an event-before-login deviation was recorded
        self.deviations: deque[Deviation] = deque(maxlen=MAX_DEVIATIONS)
        self.deviation_count = 0
        #: Responses (and raw blocks) that matched no pending ActionID.
        self.unmatched_responses = 0
        #: List items dropped over the caps, over all lists.
        self.dropped_list_items = 0

    # -- what we write ----------------------------------------------------------------------
    def next_action_id(self) -> str:
        """A fresh ActionID (``prefix + n``)."""
        n = next(self._counter)
        self._issued = n
        return f"{self.action_id_prefix}{n}"

    def send(self, action: str | Message, headers: dict[str, HeaderValue] | None = None,
             ) -> tuple[str, bytes]:
        """Encode an action (an ActionID is added unless given) and await its answer.

        Returns ``(action_id, wire bytes)``; like h11's ``send``, the caller writes them.

        Raises:
            LocalProtocolError: a key or value contains CR or LF (header injection).
        """
        headers = {} if headers is None else headers
        if isinstance(action, Message):
            if headers:
                raise TypeError("pass headers either in the Message or as keywords, not both")
            aid = action.action_id
            name = action.get("Action") or ""
            if aid is None:
                aid = self.next_action_id()
                items = action.items
                items.insert(1 if items else 0, ("ActionID", aid))
                action = Message(items)
            data = encode(action)
        elif not headers:
            # the hot path (Ping & co): a cached, already validated prefix per action name
            prefix = self._prefixes.get(action)
            if prefix is None:
                if "\r" in action or "\n" in action:
                    encode(Message([("Action", action)]))  # raises LocalProtocolError
                prefix = self._prefixes[action] = f"Action: {action}\r\nActionID: ".encode()
            n = next(self._counter)
            self._issued = n
            aid = f"{self.action_id_prefix}{n}"
            low = self._lower.get(action)
            if low is None:
                low = self._lower[action] = action.lower()
            if low not in _SEND_ACTIONS:  # send_action() inlined: the per-request path
                self._pending[aid] = _Pending(aid, low)
                return aid, prefix + aid.encode() + b"\r\n\r\n"
            name = action
            data = prefix + aid.encode() + b"\r\n\r\n"
        else:
            name = action
            given = headers.pop("ActionID", None)
            aid = self.next_action_id() if given is None else str(given)
            items = [("Action", action), ("ActionID", aid)]
            for key, value in headers.items():
                if isinstance(value, (str, int)):
                    items.append((key, str(value)))
                else:
                    items.extend((key, str(v)) for v in value)
            # encode() without building a Message: n header lines hold exactly n CRLFs
            # unless a key or value smuggles a line end (then encode() raises).
            text = "".join([f"{k}: {v}\r\n" for k, v in items]) + "\r\n"
            n = len(items) + 1
            if text.count("\n") != n or text.count("\r") != n:
                data = encode(Message(items))  # raises LocalProtocolError
            else:
                data = text.encode("utf-8", "surrogateescape")
        self.send_action(name, aid)
        return aid, data

    def send_action(self, action: str, action_id: str) -> None:
        """An action with ``action_id`` was written (encoded elsewhere); await its answer."""
        low = action.lower()
        if action_id in self._pending:
            self._deviate(DeviationRule.REUSED_ACTION_ID,
                          f"ActionID {action_id} sent again before its answer arrived")
        p = _Pending(action_id, low)
        self._pending[action_id] = p
        if low in _SEND_ACTIONS:
            if low == "queues":
                self._queues.append(p)
            new = SEND_TRANSITIONS.get((self.state, low))
            if new is not None:
                self.state = new

    def send_raw(self) -> None:
        """Bytes went out that this object did not see as actions (framing tests).

        From now on answers without a known ActionID, raw text and early events may be
        answers to those bytes, so they are no longer recorded as deviations.
        """
        self._raw_sent = True

    def is_pending(self, action_id: str) -> bool:
        return action_id in self._pending

    def pending_action(self, action_id: str) -> tuple[str, bool] | None:
        """``(action, listing)`` of a pending ActionID (listing: its list has started)."""
        p = self._pending.get(action_id)
        return None if p is None else (p.action, p.listing)

    @property
    def pending(self) -> tuple[str, ...]:
        """ActionIDs awaiting their answer, oldest first."""
        return tuple(self._pending)

    # -- what we read -----------------------------------------------------------------------
    def receive_banner(self, banner: str | None) -> Banner:
        """The first line was read (``None``: it was not an AMI banner)."""
        self.banner = banner
        if banner is None:
            self._deviate(DeviationRule.NO_BANNER, "the first line is not an AMI banner")
        if self.state is State.GREETING:
            self.state = State.CONNECTED
        return Banner(banner)

    def receive(self, msg: Message, size: int = 0) -> SessionEvent:
        """One parsed message in, one event out. ``size``: its wire bytes, for the caps."""
        aid = msg.get("ActionID")
        kind = msg.kind
        if aid is not None:
            p = self._pending.get(aid)
            if p is not None:
                if kind is _RESPONSE:
                    if p.response is None:
                        p.response = msg
                        action = p.action
                        if action == "queues":
                            self._drop_queues(p)  # answered with headers (UCM: a list)
                        el = msg.get("EventList")
                        if el is not None and el.lower() == "start":
                            p.listing = True
                            return ListItem(aid, msg)
                        del self._pending[aid]  # _finish() inlined: the per-request path
                        if action in _ANSWER_ACTIONS:
                            self._transition(action, msg)
                        return Reply(msg, p.events, None, action, aid, p.dropped)
                    return self._stray(msg, DeviationRule.DUPLICATE_RESPONSE,
                                       f"a second response for ActionID {aid}")
                if kind is _EVENT and p.listing:
                    if _is_list_end(msg):
                        return self._finish(p, msg)
                    size += HEADER_COST * len(msg)  # what a parsed header costs in memory
                    if p.size + size > self.max_list_bytes or len(p.events) >= self.max_list_items:
                        if not p.dropped:
                            self._deviate(DeviationRule.LIST_TOO_LONG,
                                          f"the {p.action} event list (ActionID {aid}) passed "
                                          f"{len(p.events):,} items; later items are dropped", msg)
                        p.dropped += 1
                        self.dropped_list_items += 1
                    else:
                        p.events.append(msg)
                        p.size += size
                    return ListItem(aid, msg)
            elif kind is _RESPONSE:
                return self._unknown_id(msg, aid)
        if kind is _EVENT:
            if self.state in _NOT_LOGGED_IN and not self._raw_sent and not self._early:
                self._early = True  # once: a flood must not cost a record per event
                self._deviate(DeviationRule.EVENT_BEFORE_LOGIN,
                              f"event {msg.name} reached a session that is not logged in", msg)
            return Unsolicited(msg)
        if kind is _RESPONSE:
            if self._raw_sent:
                self.unmatched_responses += 1
                return Stray(msg, None)
            return self._stray(msg, DeviationRule.MISSING_ACTION_ID,
                               "a response without an ActionID (every action we sent had one)")
        if kind is _RAW:
            queues = self._queues
            if queues:
                # 13.x Queues answers with bare CLI text: no Response, no ActionID.
                p = queues.popleft()
                p.response = msg
                return self._finish(p, None)
            if self._raw_sent:
                return Stray(msg, None)
            return self._stray(msg, DeviationRule.UNEXPECTED_RAW,
                               "headerless text while no Queues action was pending")
        return self._stray(msg, DeviationRule.UNEXPECTED_MESSAGE,
                           f"a {kind} message from the server ({msg.name!r})")

    def connection_closed(self) -> Closed:
        """The peer closed (or we did): every state ends in CLOSED."""
        self.state = State.CLOSED
        return Closed(tuple(self._pending))

    @property
    def cap_note(self) -> str | None:
        """One line for a report when the list caps dropped items, else None."""
        if not self.dropped_list_items:
            return None
        return (f"event lists capped at {self.max_list_items:,} items; "
                f"{self.dropped_list_items:,} dropped")

    def forget(self, action_id: str) -> None:
        """Stop waiting for ``action_id`` (its answer, if it comes, is a Stray)."""
        p = self._pending.pop(action_id, None)
        if p is not None and p.action == "queues":
            self._drop_queues(p)

    # -- internals --------------------------------------------------------------------------
    def _finish(self, p: _Pending, complete: Message | None) -> Reply:
        del self._pending[p.action_id]
        response = p.response
        assert response is not None
        if p.action in _ANSWER_ACTIONS:
            self._transition(p.action, response)
        return Reply(response, p.events, complete, p.action, p.action_id, p.dropped)

    def _transition(self, action: str, response: Message) -> None:
        new = ANSWER_TRANSITIONS.get((self.state, action, _ok(response)))
        if new is not None:
            self.state = new

    def _drop_queues(self, p: _Pending) -> None:
        try:
            self._queues.remove(p)
        except ValueError:
            pass

    def _unknown_id(self, msg: Message, aid: str) -> Stray:
        if self._raw_sent:
            self.unmatched_responses += 1
            return Stray(msg, None)
        prefix = self.action_id_prefix
        tail = aid[len(prefix):] if aid.startswith(prefix) else ""
        if tail.isdigit() and 0 < int(tail) <= self._issued:
            return self._stray(msg, DeviationRule.DUPLICATE_RESPONSE,
                               f"a response for ActionID {aid}, which was already answered")
        return self._stray(msg, DeviationRule.UNKNOWN_ACTION_ID,
                           f"a response for ActionID {aid}, which we never sent")

    def _stray(self, msg: Message, rule: DeviationRule, detail: str) -> Stray:
        if msg.kind is _RESPONSE:
            self.unmatched_responses += 1
        return Stray(msg, self._deviate(rule, detail, msg))

    def _deviate(self, rule: DeviationRule, detail: str, msg: Message | None = None) -> Deviation:
        d = Deviation(rule, detail, msg)
        self.deviations.append(d)
        self.deviation_count += 1
        return d


class FirstLine:
    """The bytes before the first line ends, and whether that line is the AMI banner.

    Asterisk writes ``Asterisk Call Manager/x.y.z`` and CRLF first. Anything else (a bare LF,
    another text, or over :data:`~amicheck.protocol.grammar.MAX_BANNER` bytes without a line
    end) is not a banner, and every byte goes to the parser, which records what it makes of
    them: the caller sees what the server said instead of a repaired version.
    """

    __slots__ = ("_head",)

    def __init__(self) -> None:
        self._head: bytearray | None = bytearray()

    @property
    def done(self) -> bool:
        """The first line was decided (or the stream ended before it was)."""
        return self._head is None

    def feed(self, data: bytes) -> tuple[str | None, bytes] | None:
        """None while undecided; then ``(banner or None, the bytes for the parser)``."""
        head = self._head
        assert head is not None, "feed() after the first line was decided"
        head += data
        nl = head.find(b"\n")
        if nl < 0 and len(head) <= MAX_BANNER:
            return None
        self._head = None
        line = bytes(head[:nl] if nl >= 0 else head).rstrip(b"\r")
        text = line.decode("utf-8", "replace")
        if nl >= 0 and text.startswith(BANNER_PREFIX) and head[nl - 1:nl] == b"\r":
            return text, bytes(head[nl + 1:])
        return None, bytes(head)

    def close(self) -> bytes | None:
        """End of stream: the bytes of an undecided first line (None if it was decided)."""
        head, self._head = self._head, None
        return None if head is None else bytes(head)
