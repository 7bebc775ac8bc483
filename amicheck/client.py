"""A blocking AMI client: a thin I/O loop over the parser and the sans-I/O session.

Bytes come from a :class:`~amicheck.transport.Stream`, go through
:class:`amicheck.protocol.Parser` and :class:`amicheck.protocol.session.ClientSession`
(ActionID correlation, event lists, login state, deviations), and the events the session
returns are kept here: replies until collected, unclaimed messages for ``wait_event`` and
``read_messages``. Every byte read is kept (``received``) and recorded, redacted, in a
:class:`~amicheck.transcript.Transcript`; every wait runs on one
:class:`~amicheck.deadline.Deadline` whose error names what was awaited. What a client
keeps of an endless event stream is capped (``cap_note`` says when a cap was hit). Not
thread-safe: one client per thread.
"""

from __future__ import annotations

import itertools
import math
import os
import ssl
from collections.abc import Callable
from types import TracebackType

from amicheck.deadline import Deadline
from amicheck.errors import AmiTimeoutError, ConnectionClosedError, RemoteProtocolError
from amicheck.login import LoginMixin, LoginRefused
from amicheck.protocol import Message, MessageKind, Parser
from amicheck.protocol.events import EventSearch, MessageQueue
from amicheck.protocol.grammar import DEFAULT_MAX_MESSAGE_SIZE
from amicheck.protocol.session import (
    HEADER_COST,
    ClientSession,
    Deviation,
    FirstLine,
    HeaderValue,
    ListItem,
    Reply,
    State,
)
from amicheck.transcript import Direction, Transcript
from amicheck.transport import RECV_SIZE, ByteRecord, Stream, open_tcp, tls_client_context

__all__ = [
    "AmiClient",
    "Response",
    "LoginRefused",
    "HeaderValue",
    "DEFAULT_MAX_EVENTS",
    "DEFAULT_MAX_EVENT_BYTES",
    "DEFAULT_MAX_RECEIVED",
]


_EVENT = MessageKind.EVENT
#: Default bound on unclaimed messages (mostly events) kept for wait_event/read_messages.
DEFAULT_MAX_EVENTS = 2_000
#: Default bound on their estimated memory (a parsed 340-byte event costs ~4.4 KB).
DEFAULT_MAX_EVENT_BYTES = 2 * 1024 * 1024
#: Default bound on the raw bytes kept in ``received`` (framing checks read a few KB).
DEFAULT_MAX_RECEIVED = 1024 * 1024
_MB = 1024 * 1024
_INF = math.inf
_RECEIVED = Direction.RECEIVED


#: The answer to one action: ``response``, ``events``, ``complete``, ``ok``, ``text``...
Response = Reply


class AmiClient(LoginMixin):
    """One AMI connection (``challenge``, ``login`` and ``logoff`` come from
    :class:`~amicheck.login.LoginMixin`).

    Args:
        stream: a connected :class:`~amicheck.transport.Stream`.
        timeout: default seconds for every wait.
        action_id_prefix: ActionIDs are ``prefix + counter``; default ``ac<pid>-<n>-``.
        max_message_size: passed to the Parser.
        record: keep a redacted transcript (on by default; off only for benchmarks).
        max_events, max_event_bytes: caps on the unclaimed messages kept (count, estimated
            memory); the oldest go first and ``dropped_events`` counts them.
        max_received: cap on the raw bytes kept in ``received`` (the newest are kept).

    Use :meth:`connect` to open a TCP/TLS connection.
    """

    _instances = itertools.count(1)

    def __init__(
        self,
        stream: Stream,
        *,
        timeout: float = 5.0,
        action_id_prefix: str | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        record: bool = True,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_received: int = DEFAULT_MAX_RECEIVED,
    ) -> None:
        Deadline(timeout, "the default timeout")  # refuses NaN, inf and negatives
        self.stream = stream
        self.timeout = timeout
        self.local = stream.local
        self.remote = stream.remote
        self.peer = f"{stream.remote[0]}:{stream.remote[1]}"
        self.parser = Parser(banner=True, max_message_size=max_message_size)
        self._max_message_size = max_message_size
        if action_id_prefix is None:
            action_id_prefix = f"ac{os.getpid()}-{next(self._instances)}-"
        self.session = ClientSession(action_id_prefix)  # raises ValueError on CR/LF
        self.action_id_prefix = action_id_prefix
        self._replies: dict[str, Reply] = {}
        self._inbox = MessageQueue(max_events, max_event_bytes)
        self._head = FirstLine()  # bytes before the banner line ended
        self._eof_head: bytes | None = None  # what came before the peer closed, no banner
        self._received = ByteRecord(max_received)
        self._buffered = 0  # parser.buffered after the last feed
        self.transcript = Transcript(stream.local, stream.remote)
        self._record = record
        self._eof = False
        self.closed = False

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        *,
        tls: bool | ssl.SSLContext | None = None,
        timeout: float = 5.0,
        source_address: str | tuple[str, int] | None = None,
        read_banner: bool = True,
        server_hostname: str | None = None,
        ca: str | None = None,
        **kwargs: object,
    ) -> AmiClient:
        """Open a connection and (by default) read the banner.

        Args:
            tls: ``True`` = TLS without certificate verification (self-signed UCMs),
                an ``ssl.SSLContext`` to use as is, ``None``/``False`` = plaintext.
            ca: a CA file: TLS with the chain and the host name verified.
            source_address: bind this local IP first (``"127.0.0.2"`` as "another host").
            read_banner: wait (``timeout``) for the ``Asterisk Call Manager/x`` line.
            kwargs: passed to the constructor (``action_id_prefix``, ``record``...).

        Raises:
            ConnectError: refused, unreachable, or TLS handshake failure.
            AmiTimeoutError: no banner within ``timeout``.
            ConnectionClosedError: the server closed before sending its banner.
        """
        if ca is not None:
            tls = tls if isinstance(tls, ssl.SSLContext) else tls_client_context(ca=ca)
        stream = open_tcp(host, port, timeout=timeout, source_address=source_address,
                          tls=tls, server_hostname=server_hostname)
        try:
            client = cls(stream, timeout=timeout, **kwargs)  # type: ignore[arg-type]
        except BaseException:
            stream.close()
            raise
        if read_banner:
            try:
                client.read_banner(timeout)
            except BaseException:
                client.close()
                raise
        return client

    @property
    def banner(self) -> str | None:
        """``Asterisk Call Manager/2.7.0`` once seen, else None."""
        return self.session.banner if self.session.banner is not None else self.parser.banner

    def read_banner(self, timeout: float | None = None) -> str | None:
        """Wait for the first line; returns it if it is an AMI banner, else None.

        A first line that is not a banner stays in the stream (the parser records a
        ``banner`` violation) so that the caller can inspect what the server said.
        """
        deadline = self._deadline(timeout, "the banner", "banner")
        done = self._pump(deadline, self._banner_done)
        head = self._eof_head
        if head is not None:
            raise ConnectionClosedError(
                f"{self.peer} closed the connection before sending a banner"
                + (f" (got {head!r})" if head else ""), peer=self.peer)
        if not done:
            raise deadline.error(self.peer)
        return self.session.banner

    def _banner_done(self) -> bool:
        return self._head.done

    def _take_head(self, data: bytes) -> None:
        """Bytes while the first line is incomplete: once decided, banner or not, parse."""
        decided = self._head.feed(data)
        if decided is not None:
            banner, rest = decided
            self.session.receive_banner(banner)
            if banner is not None:  # the parser need not look for it again
                self.parser = Parser(banner=False, max_message_size=self._max_message_size)
                self._buffered = 0
            self._feed(rest)

    def _end_head(self) -> None:
        """End of stream before the first line ended: hand what came to the parser."""
        head = self._head.close()
        if head is not None:
            self._eof_head = head
            self.session.receive_banner(None)
            if head:
                self._feed(head)

    # -- sending ----------------------------------------------------------------------------
    def next_action_id(self) -> str:
        return self.session.next_action_id()

    def send(self, action: str | Message, /, **headers: HeaderValue) -> str:
        """Send an action without waiting; returns its ActionID (for :meth:`wait_response`).

        ``c.send("Originate", Channel="PJSIP/1000", Variable=["A=1", "B=2"])``; an ActionID
        given in the message (or as a keyword) is kept, otherwise one is generated.

        Raises:
            LocalProtocolError: a header value contains CR or LF (header injection).
        """
        aid, data = self.session.send(action, headers)
        self._replies.pop(aid, None)
        if self._record:
            self.transcript.record(Direction.SENT, data)
        self.stream.send_all(data, self.timeout)
        return aid

    def send_bytes(self, data: bytes) -> None:
        """Write raw bytes (framing tests); replies land in :meth:`read_messages`."""
        self.session.send_raw()
        if self._record:
            self.transcript.record(Direction.SENT, data)
        self.stream.send_all(bytes(data), self.timeout)

    # -- receiving --------------------------------------------------------------------------
    def _deadline(self, timeout: float | None, what: str,
                  waiting_for: str | None = None) -> Deadline:
        return Deadline(self.timeout if timeout is None else timeout, what,
                        waiting_for=waiting_for)

    def _pump(self, deadline: Deadline, done: Callable[[], bool]) -> bool:
        """Read until ``done()``, end of stream or the deadline; returns ``done()``.

        The one read loop of the client: every wait is this loop with its own condition,
        so a deadline is honoured the same way everywhere. Per-request hot path.
        """
        recv = self.stream.recv
        remaining = deadline.remaining
        transcript = self.transcript if self._record else None
        keep = self._received.append
        # The first read asks for the whole timeout, not the few microseconds less that
        # are left: the socket then keeps the same timeout armed from one request to the
        # next (TcpStream skips re-arming it, two syscalls a read).
        left = math.inf if deadline.timeout is None else deadline.timeout
        while not done():
            if self._eof or left <= 0:
                return False
            try:
                data = recv(RECV_SIZE, None if left == _INF else left)
            except AmiTimeoutError:
                left = remaining()
                continue
            if not data:
                self._eof = True
                self._end_head()
                self.session.connection_closed()
                return done()
            left = remaining()
            if transcript is not None:
                transcript.record(_RECEIVED, data)
            keep(data)
            if self._head.done:
                self._feed(data)
            else:
                self._take_head(data)
        return True

    def _feed(self, data: bytes) -> None:
        """Parse ``data``; keep replies and unclaimed messages the session hands back."""
        parser = self.parser
        msgs = parser.feed(data)
        before = self._buffered
        self._buffered = after = parser.buffered
        if not msgs:
            return
        share = (before + len(data) - after) // len(msgs)  # wire bytes, spread evenly
        receive = self.session.receive
        replies = self._replies
        for msg in msgs:
            ev = receive(msg, share)
            if isinstance(ev, Reply):
                replies[ev.request_id] = ev
            elif ev.__class__ is not ListItem:
                self._inbox.append(msg, share + HEADER_COST * len(msg))

    def _fail(self, deadline: Deadline) -> Exception:
        if self._eof:
            return ConnectionClosedError(
                f"{self.peer} closed the connection while we waited for {deadline.what}",
                peer=self.peer)
        extra = ""
        n = self.session.unmatched_responses
        if n:
            extra = (f" ({n} response(s) without a known ActionID arrived; "
                     "see read_messages())")
        return deadline.error(self.peer, extra)

    def wait_response(self, action_id: str, timeout: float | None = None) -> Response:
        """The response (and list items) of a sent action.

        Raises:
            AmiTimeoutError: naming the action and its ActionID.
            ConnectionClosedError: the server closed first.
            KeyError: nothing was sent with that ActionID (or it was already collected).
        """
        replies = self._replies
        reply = replies.pop(action_id, None)
        if reply is None:
            if not self.session.is_pending(action_id):
                raise KeyError(f"no pending action with ActionID {action_id!r}")
            deadline = Deadline(self.timeout if timeout is None else timeout, "")
            if not self._pump(deadline, lambda: action_id in replies):
                action, listing = self.session.pending_action(action_id) or ("", False)
                what = (f"the end of the {action} event list" if listing
                        else f"the response to {action or 'the action'}")
                deadline.what = deadline.waiting_for = f"{what} (ActionID {action_id})"
                raise self._fail(deadline)
            reply = replies.pop(action_id)
        return reply

    def request(self, action: str | Message, /, timeout: float | None = None,
                **headers: HeaderValue) -> Response:
        """Send an action and wait for its response (and its event list, if it has one).

        ``c.request("Ping")``, ``c.request("Status", Channel="...")``,
        ``c.request(Message.action("QueueStatus"), timeout=10)``.
        """
        return self.wait_response(self.send(action, **headers), timeout)

    def wait_event(self, match: str | Callable[[Message], bool],
                   timeout: float | None = None) -> Message:
        """The first unclaimed event named ``match`` (case-insensitive) or matching it.

        Earlier events stay queued for later calls; :meth:`drain_events` empties the queue.
        """
        pred: Callable[[Message], bool]
        if isinstance(match, str):
            low = match.lower()
            what = f"event {match}"

            def pred(m: Message) -> bool:
                return (m.name or "").lower() == low
        else:
            pred = match
            what = f"an event matching {getattr(match, '__name__', 'the predicate')}"
        search = EventSearch(self._inbox, pred)
        if not search():
            deadline = self._deadline(timeout, what)
            if not self._pump(deadline, search):
                raise self._fail(deadline)
        assert search.found is not None
        return search.found

    @property
    def events(self) -> list[Message]:
        """Unclaimed events received so far (not removed)."""
        return [m for m in self._inbox.msgs if m.kind is _EVENT]

    def drain_events(self) -> list[Message]:
        """Remove and return every unclaimed event."""
        return self._inbox.take(events_only=True)

    def read_messages(self, timeout: float = 1.0, *, count: int | None = 1) -> list[Message]:
        """Remove and return unclaimed messages, waiting up to ``timeout`` for ``count``.

        Returns as soon as at least ``count`` messages are there (after taking what is
        already readable), or what arrived when the time is up or the server closed; never
        raises on timeout. ``count=None`` waits the whole ``timeout``.
        """
        inbox = self._inbox
        self._pump(Deadline(timeout, "messages"),
                   lambda: count is not None and len(inbox.msgs) >= count)
        return inbox.take()

    def wait_closed(self, timeout: float | None = None) -> bool:
        """True if the server closes the connection within ``timeout`` (data is kept)."""
        try:
            self._pump(self._deadline(timeout, "the server to close"), self._at_eof)
        except ConnectionClosedError:
            self._eof = True
        return self._eof

    def _at_eof(self) -> bool:
        return self._eof

    @property
    def received(self) -> bytes:
        """Raw bytes received so far (the last ``max_received`` bytes at most)."""
        return self._received.data

    @property
    def received_dropped(self) -> int:
        """Bytes dropped from the front of ``received`` to stay under its cap."""
        return self._received.dropped

    @property
    def received_truncated(self) -> bool:
        """``received`` lost its oldest bytes to the cap."""
        return self._received.dropped > 0

    @property
    def dropped_events(self) -> int:
        """Unclaimed messages (mostly events) dropped, oldest first, to stay under the cap."""
        return self._inbox.dropped

    dropped_messages = dropped_events

    @property
    def unmatched_responses(self) -> int:
        """Responses that matched no pending ActionID (they stay in read_messages)."""
        return self.session.unmatched_responses

    @property
    def deviations(self) -> list[Deviation]:
        """Session-level deviations: stray responses, early events, overlong lists..."""
        return list(self.session.deviations)

    @property
    def state(self) -> State:
        """The login state (``State.LOGGED_IN`` after a successful login...)."""
        return self.session.state

    @property
    def cap_note(self) -> str | None:
        """One line for a report when a memory cap dropped something, else None."""
        parts = [self._inbox.cap_note, self.session.cap_note, self._received.cap_note]
        frames = self.transcript.dropped_frames
        if frames:
            parts.append(f"transcript capped at {self.transcript.max_bytes / _MB:.3g} MB; "
                         f"{frames:,} frames dropped")
        notes = [p for p in parts if p]
        return "; ".join(notes) if notes else None

    @property
    def at_eof(self) -> bool:
        """The server has closed its side."""
        return self._eof

    @property
    def violations(self) -> list[object]:
        """Stream-level violations the parser recorded (per-message ones are on messages)."""
        return list(self.parser.violations)

    # -- AMI conveniences (challenge, login, logoff: LoginMixin) ----------------------------
    def ping(self, timeout: float | None = None) -> Response:
        r = self.request("Ping", timeout)
        if not r.ok:
            raise RemoteProtocolError(f"Ping answered {r.status}: {r.message}", rule="ping")
        return r

    # -- closing ----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (idempotent; no Logoff is sent)."""
        if not self.closed:
            self.closed = True
            self.stream.close()
            self.session.connection_closed()

    def __enter__(self) -> AmiClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("eof" if self._eof else "open")
        return f"<AmiClient {self.peer} {state} banner={self.banner!r}>"
