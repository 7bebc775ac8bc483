"""A blocking AMI client: a thin loop over :class:`amicheck.protocol.Parser` and a Stream.

It does what compliance checks need and nothing that hides the wire: every byte read is
kept (``received``) and recorded, redacted, in a :class:`~amicheck.transcript.Transcript`;
replies are matched to requests by ActionID only (never by ``Message:`` text); event lists
end on the ``*Complete`` event with the same ActionID; every wait has a deadline and its
error names what was awaited. Not thread-safe: one client per thread.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType

from amicheck.errors import (
    AmiTimeoutError,
    AuthenticationError,
    ConnectionClosedError,
    RemoteProtocolError,
)
from amicheck.protocol import Message, MessageKind, Parser, encode
from amicheck.protocol.grammar import BANNER_PREFIX, DEFAULT_MAX_MESSAGE_SIZE, MAX_BANNER
from amicheck.transcript import Direction, Transcript
from amicheck.transport import RECV_SIZE, Stream, open_tcp, tls_client_context

__all__ = ["AmiClient", "Response", "LoginRefused", "HeaderValue"]

HeaderValue = str | int | Iterable[str]

_EVENT = MessageKind.EVENT
_RESPONSE = MessageKind.RESPONSE
_RAW = MessageKind.RAW
_OK_STATUSES = frozenset({"success", "follows", "goodbye"})
#: Default bound on unclaimed messages (events, unmatched responses) kept for wait_event.
DEFAULT_MAX_INBOX = 100_000
#: Default bound on the raw bytes kept in ``received``.
DEFAULT_MAX_RECEIVED = 16 * 1024 * 1024


class LoginRefused(AuthenticationError):
    """The server answered Login (or Challenge) with an error; ``response`` is its reply."""

    def __init__(self, message: str, response: Message | None) -> None:
        super().__init__(message)
        self.response = response


@dataclass(slots=True)
class Response:
    """The answer to one action.

    Attributes:
        response: the ``Response:`` message (or the RAW text block of 13.x ``Queues``).
        events: the list items of an EventList action, in order, without the final event.
        complete: the ``*Complete`` event that ended the list (``ListItems``), if any.
    """

    response: Message
    events: list[Message] = field(default_factory=list)
    complete: Message | None = None

    @property
    def ok(self) -> bool:
        """Success, Follows or Goodbye (or a RAW answer, which has no status)."""
        msg = self.response
        if msg.kind is _RAW:
            return True
        return (msg.name or "").lower() in _OK_STATUSES and msg.kind is _RESPONSE

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


class _Pending:
    __slots__ = ("action", "response", "events", "complete", "listing", "done")

    def __init__(self, action: str) -> None:
        self.action = action
        self.response: Message | None = None
        self.events: list[Message] = []
        self.complete: Message | None = None
        self.listing = False
        self.done = False


def _is_list_end(msg: Message) -> bool:
    el = msg.event_list
    if el is not None:
        return el in ("complete", "cancelled")
    name = msg.name
    return name is not None and name.lower().endswith("complete")


class AmiClient:
    """One AMI connection.

    Args:
        stream: a connected :class:`~amicheck.transport.Stream`.
        timeout: default seconds for every wait.
        action_id_prefix: ActionIDs are ``prefix + counter``; default ``ac<pid>-<n>-``.
        max_message_size: passed to the Parser.
        record: keep a redacted transcript (on by default; off only for benchmarks).

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
        max_inbox: int = DEFAULT_MAX_INBOX,
        max_received: int = DEFAULT_MAX_RECEIVED,
    ) -> None:
        self.stream = stream
        self.timeout = timeout
        self.local = stream.local
        self.remote = stream.remote
        self.peer = f"{stream.remote[0]}:{stream.remote[1]}"
        self.parser = Parser(banner=True, max_message_size=max_message_size)
        self._max_message_size = max_message_size
        self._banner: str | None = None
        if action_id_prefix is None:
            action_id_prefix = f"ac{os.getpid()}-{next(self._instances)}-"
        if "\r" in action_id_prefix or "\n" in action_id_prefix:
            raise ValueError(f"action_id_prefix must not contain CR or LF: {action_id_prefix!r}")
        self.action_id_prefix = action_id_prefix
        self._ids = itertools.count(1)
        self._prefixes: dict[str, bytes] = {}
        self._pending: dict[str, _Pending] = {}
        self._raw_waiters: deque[_Pending] = deque()  # pending 13.x Queues (RAW answers)
        self._inbox: deque[Message] = deque()
        self._max_inbox = max_inbox
        self.dropped_messages = 0
        self.unmatched_responses = 0
        self._received = bytearray()
        self._max_received = max_received
        self.received_dropped = 0
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
        client = cls(stream, timeout=timeout, **kwargs)  # type: ignore[arg-type]
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
        return self._banner if self._banner is not None else self.parser.banner

    def read_banner(self, timeout: float | None = None) -> str | None:
        """Wait for the first line; returns it if it is an AMI banner, else None.

        A first line that is not a banner stays in the stream (the parser records a
        ``banner`` violation) so that the caller can inspect what the server said.
        """
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        head = bytearray()
        while b"\n" not in head and len(head) <= MAX_BANNER:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AmiTimeoutError(
                    f"timed out after {timeout:g}s waiting for the banner from {self.peer}",
                    peer=self.peer, waiting_for="banner")
            try:
                data = self.stream.recv(RECV_SIZE, left)
            except AmiTimeoutError:
                continue
            if not data:
                self._eof = True
                if head:
                    self._feed(bytes(head))
                raise ConnectionClosedError(
                    f"{self.peer} closed the connection before sending a banner"
                    + (f" (got {bytes(head)!r})" if head else ""), peer=self.peer)
            self._note_received(data)
            head += data
        nl = head.find(b"\n")
        line = bytes(head[:nl] if nl >= 0 else head).rstrip(b"\r")
        text = line.decode("utf-8", "replace")
        if nl >= 0 and text.startswith(BANNER_PREFIX) and head[nl - 1:nl] == b"\r":
            self._banner = text
            self.parser = Parser(banner=False, max_message_size=self._max_message_size)
            self._feed(bytes(head[nl + 1:]))
        else:
            self._feed(bytes(head))
        return self._banner

    # -- sending ----------------------------------------------------------------------------
    def next_action_id(self) -> str:
        return f"{self.action_id_prefix}{next(self._ids)}"

    def _build(self, action: str | Message, headers: dict[str, HeaderValue],
               ) -> tuple[bytes, str, str]:
        """Wire bytes, ActionID and action name of what ``send`` was given."""
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
            return encode(action), aid, name
        given = headers.pop("ActionID", None)
        if not headers and given is None:
            # the hot path (Ping & co): a cached, already validated prefix per action name
            prefix = self._prefixes.get(action)
            if prefix is None:
                if "\r" in action or "\n" in action:
                    encode(Message([("Action", action)]))  # raises LocalProtocolError
                prefix = f"Action: {action}\r\nActionID: {self.action_id_prefix}".encode()
                self._prefixes[action] = prefix
            n = next(self._ids)
            return prefix + b"%d\r\n\r\n" % n, f"{self.action_id_prefix}{n}", action
        aid = self.next_action_id() if given is None else str(given)
        items = [("Action", action), ("ActionID", aid)]
        for key, value in headers.items():
            if isinstance(value, (str, int)):
                items.append((key, str(value)))
            else:
                items.extend((key, str(v)) for v in value)
        # Fast path for the common case (what encode() does, without building a Message):
        # n header lines hold exactly n CRLFs unless a key or value smuggles a line end.
        text = "".join([f"{k}: {v}\r\n" for k, v in items]) + "\r\n"
        n = len(items) + 1
        if text.count("\n") != n or text.count("\r") != n:
            return encode(Message(items)), aid, action  # raises LocalProtocolError
        return text.encode("utf-8", "surrogateescape"), aid, action

    def send(self, action: str | Message, /, **headers: HeaderValue) -> str:
        """Send an action without waiting; returns its ActionID (for :meth:`wait_response`).

        ``c.send("Originate", Channel="PJSIP/1000", Variable=["A=1", "B=2"])``; an ActionID
        given in the message (or as a keyword) is kept, otherwise one is generated.

        Raises:
            LocalProtocolError: a header value contains CR or LF (header injection).
        """
        data, aid, name = self._build(action, headers)
        pending = _Pending(name.lower())
        self._pending[aid] = pending
        if pending.action == "queues":
            self._raw_waiters.append(pending)
        if self._record:
            self.transcript.record(Direction.SENT, data)
        self.stream.send_all(data, self.timeout)
        return aid

    def send_bytes(self, data: bytes) -> None:
        """Write raw bytes (framing tests); replies land in :meth:`read_messages`."""
        if self._record:
            self.transcript.record(Direction.SENT, data)
        self.stream.send_all(bytes(data), self.timeout)

    # -- receiving --------------------------------------------------------------------------
    def _note_received(self, data: bytes) -> None:
        if self._record:
            self.transcript.record(Direction.RECEIVED, data)
        rec = self._received
        rec += data
        if len(rec) > self._max_received:
            cut = len(rec) - self._max_received // 2
            del rec[:cut]
            self.received_dropped += cut

    def _feed(self, data: bytes) -> None:
        for msg in self.parser.feed(data):
            self._dispatch(msg)

    def _dispatch(self, msg: Message) -> None:
        aid = msg.get("ActionID")
        kind = msg.kind
        if aid is not None:
            p = self._pending.get(aid)
            if p is not None:
                if kind is _RESPONSE:
                    if p.response is None:
                        p.response = msg
                        if (msg.get("EventList") or "").lower() == "start":
                            p.listing = True
                        elif p.action == "queues":
                            self._finish(p)
                        else:
                            p.done = True
                        return
                elif kind is _EVENT and p.listing:
                    if _is_list_end(msg):
                        p.complete = msg
                        self._finish(p)
                    else:
                        p.events.append(msg)
                    return
        elif kind is _RESPONSE:
            self.unmatched_responses += 1
        elif kind is _RAW and self._raw_waiters:
            # 13.x Queues: raw CLI text without Response or ActionID answers the oldest
            # pending Queues request.
            p = self._raw_waiters.popleft()
            if p.response is None:
                p.response = msg
                p.done = True
                return
        inbox = self._inbox
        inbox.append(msg)
        if len(inbox) > self._max_inbox:
            inbox.popleft()
            self.dropped_messages += 1

    def _finish(self, p: _Pending) -> None:
        p.done = True
        if p.action == "queues":
            try:
                self._raw_waiters.remove(p)
            except ValueError:
                pass

    def _read(self, timeout: float | None) -> bool:
        """One recv (up to ``timeout``); False at end of stream. Raises AmiTimeoutError."""
        data = self.stream.recv(RECV_SIZE, timeout)
        if not data:
            self._eof = True
            return False
        self._note_received(data)
        for msg in self.parser.feed(data):
            self._dispatch(msg)
        return True

    def _fail(self, what: str, timeout: float, closed: bool) -> Exception:
        if closed:
            return ConnectionClosedError(
                f"{self.peer} closed the connection while we waited for {what}", peer=self.peer)
        extra = ""
        if self.unmatched_responses:
            extra = (f" ({self.unmatched_responses} response(s) without a known ActionID "
                     "arrived; see read_messages())")
        return AmiTimeoutError(
            f"timed out after {timeout:g}s waiting for {what} from {self.peer}{extra}",
            peer=self.peer, waiting_for=what)

    def wait_response(self, action_id: str, timeout: float | None = None) -> Response:
        """The response (and list items) of a sent action.

        Raises:
            AmiTimeoutError: naming the action and its ActionID.
            ConnectionClosedError: the server closed first.
            KeyError: nothing was sent with that ActionID (or it was already collected).
        """
        p = self._pending.get(action_id)
        if p is None:
            raise KeyError(f"no pending action with ActionID {action_id!r}")
        if not p.done:
            timeout = self.timeout if timeout is None else timeout
            monotonic = time.monotonic
            deadline = monotonic() + timeout
            # _read() inlined: this loop is the per-request hot path
            recv = self.stream.recv
            feed = self.parser.feed
            dispatch = self._dispatch
            left = timeout
            while not p.done and not self._eof and left > 0:
                try:
                    data = recv(RECV_SIZE, left)
                except AmiTimeoutError:
                    left = deadline - monotonic()
                    continue
                if not data:
                    self._eof = True
                    break
                self._note_received(data)
                for msg in feed(data):
                    dispatch(msg)
                left = deadline - monotonic()
            if not p.done:
                what = (f"the end of the {p.action} event list"
                        if p.listing else f"the response to {p.action or 'the action'}")
                raise self._fail(f"{what} (ActionID {action_id})", timeout, self._eof)
        del self._pending[action_id]
        assert p.response is not None
        return Response(p.response, p.events, p.complete)

    def request(self, action: str | Message, /, timeout: float | None = None,
                **headers: HeaderValue) -> Response:
        """Send an action and wait for its response (and its event list, if it has one).

        ``c.request("Ping")``, ``c.request("Status", Channel="...")``,
        ``c.request(Message.action("QueueStatus"), timeout=10)``.
        """
        return self.wait_response(self.send(action, **headers), timeout)

    def _take_event(self, pred: Callable[[Message], bool],
                    start: int) -> tuple[Message | None, int]:
        inbox = self._inbox
        for i in range(start, len(inbox)):
            msg = inbox[i]
            if msg.kind is _EVENT and pred(msg):
                del inbox[i]
                return msg, i
        return None, len(inbox)

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
        msg, pos = self._take_event(pred, 0)
        if msg is not None:
            return msg
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            if self._eof:
                raise self._fail(what, timeout, True)
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail(what, timeout, False)
            dropped = self.dropped_messages
            try:
                self._read(left)
            except AmiTimeoutError:
                continue
            pos = max(0, pos - (self.dropped_messages - dropped))
            msg, pos = self._take_event(pred, pos)
            if msg is not None:
                return msg

    @property
    def events(self) -> list[Message]:
        """Unclaimed events received so far (not removed)."""
        return [m for m in self._inbox if m.kind is _EVENT]

    def drain_events(self) -> list[Message]:
        """Remove and return every unclaimed event."""
        events = [m for m in self._inbox if m.kind is _EVENT]
        others = [m for m in self._inbox if m.kind is not _EVENT]
        self._inbox = deque(others)
        return events

    def read_messages(self, timeout: float = 1.0, *, count: int | None = 1) -> list[Message]:
        """Remove and return unclaimed messages, waiting up to ``timeout`` for ``count``.

        Returns as soon as at least ``count`` messages are there (after taking what is
        already readable), or what arrived when the time is up or the server closed; never
        raises on timeout. ``count=None`` waits the whole ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while not self._eof and (count is None or len(self._inbox) < count):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self._read(left)
            except AmiTimeoutError:
                break
        out = list(self._inbox)
        self._inbox.clear()
        return out

    def wait_closed(self, timeout: float | None = None) -> bool:
        """True if the server closes the connection within ``timeout`` (data is kept)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not self._eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                self._read(left)
            except AmiTimeoutError:
                return self._eof
            except ConnectionClosedError:
                self._eof = True
        return True

    @property
    def received(self) -> bytes:
        """Raw bytes received so far (the last ``max_received`` bytes at most)."""
        return bytes(self._received)

    @property
    def at_eof(self) -> bool:
        """The server has closed its side."""
        return self._eof

    @property
    def violations(self) -> list[object]:
        """Stream-level violations the parser recorded (per-message ones are on messages)."""
        return list(self.parser.violations)

    # -- AMI conveniences -------------------------------------------------------------------
    def challenge(self, timeout: float | None = None) -> str:
        """``Action: Challenge`` / ``AuthType: MD5``; returns the challenge string."""
        r = self.request("Challenge", timeout, AuthType="MD5")
        value = r.get("Challenge")
        if not r.ok or not value:
            raise LoginRefused(
                f"{self.peer} gave no MD5 challenge: {r.message or r.status!r}", r.response)
        return value

    def login(self, username: str, secret: str, *, md5: bool = False,
              events: bool | str = True, timeout: float | None = None) -> Response:
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
            challenge = self.challenge(timeout)
            key = hashlib.md5((challenge + secret).encode("utf-8")).hexdigest()
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

    def logoff(self, timeout: float | None = None) -> Response | None:
        """``Action: Logoff``; None if the server closed without answering."""
        try:
            return self.request("Logoff", timeout)
        except ConnectionClosedError:
            return None

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

    def __enter__(self) -> AmiClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("eof" if self._eof else "open")
        return f"<AmiClient {self.peer} {state} banner={self.banner!r}>"
