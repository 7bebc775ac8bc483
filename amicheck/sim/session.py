"""One AMI connection of the simulator: a thin asyncio loop over the sans-I/O session.

:class:`AmiSession` frames the client's bytes with :class:`~amicheck.protocol.RequestParser`
(Asterisk 13's get_input), hands each request to a
:class:`~amicheck.protocol.server_session.ServerSession` (process_message, the login rules)
and carries out the events it returns: writes, the handlers of :mod:`amicheck.sim.handlers`,
the login verdict (:mod:`amicheck.sim.auth`), security events, closes. What needs a clock or
the socket stays here (ami-reference.md sections 1, 2 and 6): the auth timeout counted from
connect, the auth limit, the fail delay, the write timeout, byte-level framing faults.
Deviations are read from the core's :class:`~amicheck.sim.behaviour.Behaviour`.

Fairness: a session runs at most :data:`ACTIONS_PER_TURN` actions (and about
:data:`TURN_BUDGET_S` of work) per event-loop turn and stops reading while it has a
backlog, so one client's pipelined burst (each action perhaps broadcasting events to
hundreds of listeners) cannot keep the loop from the others.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from typing import Any

from amicheck.protocol.message import Message
from amicheck.protocol.request import Request, RequestParser
from amicheck.protocol.server_session import (
    Authenticate,
    AuthFailed,
    Close,
    Crash,
    Greeting,
    LoggedIn,
    Reply,
    RunAction,
    SecurityEvent,
    ServerEvent,
    ServerSession,
    State,
)
from amicheck.sim import auth, replies
from amicheck.sim.actions.dialect import dialect_of
from amicheck.sim.behaviour import MISSING_ACTION, UNKNOWN_COMMAND
from amicheck.sim.core import SimCore, tv, wire
from amicheck.sim.filters import EventFilters
from amicheck.sim.handlers import ActionContext, HandlerError

__all__ = [
    "SimCore",
    "AmiSession",
    "MISSING_ACTION",
    "UNKNOWN_COMMAND",
    "WRITE_BUFFER_BOUND",
    "ACTIONS_PER_TURN",
    "TURN_BUDGET_S",
    "wire",
]

#: Bytes queued in user space before a session counts as "not reading" (pause_writing); the
#: write timeout then runs. Asterisk has only the kernel buffer plus one blocking write.
WRITE_BUFFER_BOUND = 256 * 1024
#: Events a session holds while its WaitEvent is being answered (the first one wakes it).
HELD_EVENTS = 4096
#: Actions one session runs per event-loop turn before yielding to the others ...
ACTIONS_PER_TURN = 512
#: ... or fewer, once the turn has taken this long (an action may broadcast to hundreds).
TURN_BUDGET_S = 0.004

_BARE_LF = re.compile(rb"(?<!\r)\n")


def _address(sockaddr: Any, tls: bool) -> tuple[str, str]:
    """(ip, ``IPV4/TCP/ip/port``) from a socket address."""
    if not sockaddr:
        return "", "IPV4/TCP/0.0.0.0/0"
    ip, port = str(sockaddr[0]), int(sockaddr[1])
    family = "IPV6" if ":" in ip else "IPV4"
    return ip, f"{family}/{'TLS' if tls else 'TCP'}/{ip}/{port}"


class AmiSession(asyncio.Protocol):
    """One client connection (TCP or TLS), answered like Asterisk 13's session_do."""

    def __init__(self, core: SimCore, *, tls: bool = False) -> None:
        self.core = core
        self.tls = tls
        self.transport: asyncio.Transport | None = None
        self.parser = RequestParser()
        self.ss = ServerSession(core.banner.decode().removesuffix("\r\n"), rules=core.rules,
                                actions=core.handlers, new_challenge=core.challenge)
        self.counted = False  # counted in core.unauth
        self.closing = False  # no more input is processed
        self.stalled = False
        #: what a broadcast needs to reach this session (copied from the session state)
        self.event_bits = 0
        self.session_id = ""
        self.session_tv = ""
        self.ip = ""
        self.local = ""
        self.remote = ""
        self._auth_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._slowq: deque[bytes] = deque()
        self._batch: list[bytes] | None = None
        self._close_after_slow = False
        self._last_cr = False
        self._backlog: deque[Request] = deque()
        self._turn: asyncio.Handle | None = None
        self._write_paused = False
        #: the Filter action's filters; ``screened``: events go through :meth:`deliver`
        self.filters = EventFilters()
        self.screened = False
        #: a WaitEvent being answered: (response, complete), the events held meanwhile
        self._waiting: tuple[Message, Message] | None = None
        self._held: list[bytes] = []
        self._wait_timer: asyncio.TimerHandle | None = None
        self._wake: asyncio.Handle | None = None

    # -- connection -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        core = self.core
        if core.crashed:
            self.closing = True
            transport.abort()
            return
        core.sessions.add(self)
        # session_do: over authlimit the stream is closed before the banner
        over = core.auth_limit is not None and core.unauth >= core.auth_limit
        if not over:
            core.unauth += 1
            self.counted = True
            self.ip, self.remote = _address(transport.get_extra_info("peername"), self.tls)
            self.local = _address(transport.get_extra_info("sockname"), self.tls)[1]
            self.session_id = core.next_session_id()
            self.session_tv = tv()
            transport.set_write_buffer_limits(high=WRITE_BUFFER_BOUND)
            if core.auth_timeout is not None:
                self._auth_timer = core.loop.call_later(core.auth_timeout, self._auth_expired)
        self._apply(self.ss.start(over_auth_limit=over))

    def connection_lost(self, exc: Exception | None) -> None:
        core = self.core
        self.closing = True
        self.ss.connection_lost()
        core.sessions.discard(self)
        core.authed.pop(self, None)
        if self.counted:
            core.unauth -= 1
            self.counted = False
        for timer in (self._auth_timer, self._write_timer, self._turn, self._wait_timer,
                      self._wake):
            if timer is not None:
                timer.cancel()
        self._turn = None
        self._waiting = None
        self._held = []
        core.waiting.discard(self)
        self._slowq.clear()
        self._backlog.clear()

    def abort(self) -> None:
        """Drop the connection now; the bookkeeping is immediate (reset() relies on it)."""
        if self.transport is not None:
            self.transport.abort()
        self.connection_lost(None)

    def _auth_expired(self) -> None:
        if self.transport is not None:
            self._apply(self.ss.auth_timeout())

    def close_after_writes(self) -> None:
        self.closing = True
        self._backlog.clear()
        self._flush()
        if self._slowq:
            self._close_after_slow = True
        elif self.transport is not None:
            self.transport.close()

    # -- output -----------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Queue one message's bytes.

        Answers to one turn's worth of pipelined actions go out in one write (like the
        segments a busy Asterisk coalesces); a lone action's answer is one write.
        """
        if self._batch is not None:
            self._batch.append(data)
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        delay = self.core.behaviour.reply_delay_s
        if delay:
            self._slowq.append(data)
            self.core.loop.call_later(delay, self._slow_pop)
            return
        transport.write(data)

    def _flush(self) -> None:
        batch = self._batch
        if batch:
            self._batch = None
            self.write(batch[0] if len(batch) == 1 else b"".join(batch))
            self._batch = []

    def _slow_pop(self) -> None:
        if not self._slowq or self.transport is None or self.transport.is_closing():
            return
        self.transport.write(self._slowq.popleft())
        if not self._slowq and self._close_after_slow:
            self.transport.close()

    def send(self, msg: Message) -> None:
        self.write(wire(msg))

    def pause_writing(self) -> None:
        # The peer is not reading: stop reading it too (bounded memory, like Asterisk's
        # blocking write) and drop it if the backlog lasts longer than writetimeout.
        self._write_paused = True
        self._reading(False)
        self._write_timer = self.core.loop.call_later(
            self.core.write_timeout, self._write_timed_out
        )

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        self._reading(not self._backlog)

    def _write_timed_out(self) -> None:
        self._write_timer = None
        self.abort()

    def _reading(self, on: bool) -> None:
        """Pause or resume reading; resumed only when nothing holds it (closing, a full
        write buffer, a backlog of framed actions)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not on:
            transport.pause_reading()
        elif not (self.closing or self._write_paused or self.stalled
                  or (self._backlog and self._waiting is None)):
            transport.resume_reading()

    # -- input ------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.closing or self.stalled:
            return
        if self._waiting is not None:  # ast_wait_for_input: a client write ends the wait
            self.end_wait()
        core = self.core
        b = core.behaviour
        if b"\0" in data:
            if b.crash_on_hostile:
                core.crash()
            if b.nul_closes_session:
                self.abort()
                return
        if not b.bare_lf_ends_line:
            data = self._hide_bare_lf(data)
        if not b.keep_partial_lines:
            cut = data.rfind(b"\n")
            if cut < 0:
                return
            data = data[: cut + 1]
        reqs = self.parser.feed(data)
        if not reqs:
            return
        if len(reqs) > 1:
            if b.actions_per_read is not None:
                reqs = reqs[: b.actions_per_read]
            if b.tls_stall_on_pipeline and self.tls:
                reqs = reqs[:1]
                self.stalled = True
        self._backlog.extend(reqs)
        if self._turn is None:
            self._run_turn()

    def _run_turn(self) -> None:
        """Run up to ACTIONS_PER_TURN framed actions; the rest waits for the next turn."""
        self._turn = None
        backlog = self._backlog
        self._batch = []
        end = time.monotonic() + TURN_BUDGET_S
        try:
            for _ in range(min(len(backlog), ACTIONS_PER_TURN)):
                if self.closing or self._waiting is not None:
                    break
                self.process(backlog.popleft())
                if time.monotonic() > end:
                    break
            self._flush()
        except Exception as exc:  # noqa: BLE001 - a simulator bug must not kill the loop
            self.core.errors.append(exc)
            self.abort()
            return
        finally:
            self._batch = None
        if self.closing:
            backlog.clear()
        elif self._waiting is not None:
            self._reading(True)
        elif backlog:
            self._reading(False)
            self._turn = self.core.loop.call_soon(self._run_turn)
        else:
            self._reading(True)

    def _hide_bare_lf(self, data: bytes) -> bytes:
        """crlf-only: a bare LF is not a line end (turned into a space)."""
        head = b""
        if self._last_cr and data[:1] == b"\n":
            head, data = b"\n", data[1:]
        if data:
            self._last_cr = data[-1:] == b"\r"
        return head + _BARE_LF.sub(b" ", data)

    def process(self, req: Request) -> None:
        """process_message / do_message for one framed request."""
        self._apply(self.ss.receive(req))

    # -- carrying out the session's events ----------------------------------------------------
    def _apply(self, events: list[ServerEvent]) -> None:
        for ev in events:
            kind = type(ev)
            if kind is RunAction:
                assert isinstance(ev, RunAction)
                self._run(ev)
            elif kind is Reply:
                assert isinstance(ev, Reply)
                msg = ev.message
                if msg.name == "FullyBooted" and dialect_of(self.core.profile) == "22":
                    msg = self._booted_22(msg)
                self.send(msg)
            elif kind is SecurityEvent:
                assert isinstance(ev, SecurityEvent)
                self.core.security(ev.kind, self, ev.account, ev.fields)
            elif kind is Authenticate:
                assert isinstance(ev, Authenticate)
                self._apply(self.ss.login_verdict(auth.verdict(self.core, self.ip, ev)))
            elif kind is LoggedIn:
                self._logged_in()
            elif kind is AuthFailed:
                assert isinstance(ev, AuthFailed)
                self._fail(ev.reply)
            elif kind is Close:
                assert isinstance(ev, Close)
                if ev.graceful:
                    self.close_after_writes()
                else:
                    self.closing = True
                    if self.transport is not None:
                        self.transport.close()
            elif kind is Greeting:
                assert isinstance(ev, Greeting)
                self.write(self.core.banner)
            elif kind is Crash:
                self.core.crash()
        self.event_bits = self.ss.event_bits

    def _booted_22(self, msg: Message) -> Message:
        """22's FullyBooted carries Uptime and LastReload (seconds) after Privilege."""
        pbx = self.core.pbx
        now = pbx.now()
        items = msg.items
        items[2:2] = [("Uptime", str(int(now - pbx.started))),
                      ("LastReload", str(int(now - pbx.reloaded)))]
        return Message(items)

    def _run(self, ev: RunAction) -> None:
        core = self.core
        handler = core.handlers[ev.action]
        ctx = ActionContext(
            session_id=self.session_id,
            username=ev.username,
            privileges=ev.privileges,
            action_id=ev.action_id,
            faults=core.faults,
            profile=core.profile,
            pbx=core.pbx,
            reply=self.send,
            local=self.local,
            remote=self.remote,
            tls=self.tls,
            behaviour=core.behaviour,
            hooks=self,
        )
        try:
            handler(ctx, ev.request)
        except Exception as exc:  # noqa: BLE001 - collected, re-raised by check_errors()
            core.errors.append(HandlerError(ev.name, exc))
            self.send(replies.error(ev.action_id, "Internal simulator error"))

    # -- the handlers' session hooks (actions.base.SessionHooks) -------------------------------
    def add_filter(self, pattern: str) -> bool:
        ok = self.filters.add(pattern)
        self.screened = bool(self.filters) or self._waiting is not None
        return ok

    def wait_event(self, timeout: float | None, response: Message, complete: Message) -> None:
        """action_waitevent: no more actions run until an event is queued (any event, as
        Asterisk signals the waiting thread for each), the client writes, or ``timeout``."""
        self._waiting = (response, complete)
        self.screened = True
        self.core.waiting.add(self)
        if timeout is not None:
            self._wait_timer = self.core.loop.call_later(timeout, self.end_wait)

    def deliver(self, data: bytes) -> None:
        """An event this session's privileges and mask let through: filtered (match_filter),
        held while a WaitEvent waits."""
        if self.filters and not self.filters.passes(data):
            return
        if self._waiting is not None:
            if len(self._held) < HELD_EVENTS:
                self._held.append(data)
            return
        self.write(data)

    def wake(self) -> None:
        """An event was queued: the WaitEvent answers (after the events queued with it)."""
        if self._waiting is not None and self._wake is None:
            self._wake = self.core.loop.call_soon(self.end_wait)

    def end_wait(self) -> None:
        """Answer the WaitEvent: the response, the held events, WaitEventComplete; then the
        actions that came meanwhile run."""
        msgs = self._waiting
        if msgs is None:
            return
        for timer in (self._wait_timer, self._wake):
            if timer is not None:
                timer.cancel()
        self._wait_timer = self._wake = None
        self._waiting = None
        self.core.waiting.discard(self)
        self.screened = bool(self.filters)
        held, self._held = self._held, []
        self.send(msgs[0])
        for data in held:
            self.write(data)
        self.send(msgs[1])
        if self._backlog and self._turn is None and not self.closing:
            self._turn = self.core.loop.call_soon(self._run_turn)

    def _logged_in(self) -> None:
        """A successful Login: no longer unauthenticated, no auth timer, in the broadcast."""
        if self.counted:
            self.core.unauth -= 1
            self.counted = False
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        self.session_tv = tv()
        self.event_bits = self.ss.event_bits
        self.core.authed[self] = None

    def _fail(self, reply: Message) -> None:
        """authenticate() failed: sleep(1), ``Authentication failed``, close."""
        self.closing = True
        self._backlog.clear()
        self._reading(False)
        self.core.loop.call_later(self.core.fail_delay, self._fail_finish, reply)

    def _fail_finish(self, reply: Message) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.send(reply)
        self.close_after_writes()

    @property
    def state(self) -> State:
        """Where the sans-I/O session stands."""
        return self.ss.state
