"""One AMI connection of the simulator, and the state all connections share.

:class:`SimCore` lives on the simulator's event loop: users, sessions, the PBX, the event
broadcast and the fault switches. :class:`AmiSession` is an asyncio protocol that frames the
client's bytes with :class:`~amicheck.protocol.RequestParser` (Asterisk 13's get_input and
do_message) and answers as ``main/manager.c`` does (ami-reference.md sections 1, 2 and 6):
the check order of process_message, Login/Challenge/Logoff/Events, the security events, the
auth timeout counted from connect, the auth limit and the write timeout. Every other action
goes to the handlers of :mod:`amicheck.sim.handlers` after the write-privilege check.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from amicheck.errors import LocalProtocolError
from amicheck.privileges import (
    ACTION_PRIVILEGES,
    ALL_MASK,
    STOCK_ACTION_PRIVILEGES,
    names_to_mask,
    required_classes,
    strings_to_mask,
)
from amicheck.profile import Profile, User
from amicheck.protocol.encoder import encode
from amicheck.protocol.grammar import LINE_TOO_LONG, TOO_MANY_LINES
from amicheck.protocol.message import Message
from amicheck.protocol.request import Request, RequestParser
from amicheck.rules import acl_allows
from amicheck.sim import handlers as _handlers
from amicheck.sim import replies
from amicheck.sim.handlers import ActionContext, HandlerError
from amicheck.sim.pbx import Pbx

__all__ = ["SimCore", "AmiSession", "MISSING_ACTION", "UNKNOWN_COMMAND", "WRITE_BUFFER_BOUND"]

#: M process_message texts.
MISSING_ACTION = "Missing action in request"
UNKNOWN_COMMAND = (
    "Invalid/unknown command: {}. Use Action: ListCommands to show available commands."
)
#: The error-text fault's versions (what a re-implementation might say instead).
_ALT_MISSING_ACTION = "Missing Action header"
_ALT_UNKNOWN_COMMAND = "Unknown action: {}"

#: Bytes queued in user space before a session counts as "not reading" (pause_writing); the
#: write timeout then runs. Asterisk has only the kernel buffer plus one blocking write.
WRITE_BUFFER_BOUND = 256 * 1024

_SECURITY = names_to_mask(("security",))
_SYSTEM = names_to_mask(("system",))
_PREAUTH = frozenset({"login", "logoff", "challenge"})
_BANNER_FAULT = "Asterisk Call Manager/1.1"
_SLOW_S = 0.025
_GETCONFIG = frozenset({"getconfig", "getconfigjson"})
_LEAK_CLASSES = frozenset({"originate", "call"})
_BARE_LF = re.compile(rb"(?<!\r)\n")
_FULLY_BOOTED = b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"

Handler = Callable[[ActionContext, Request], None]
_CORE_ACTIONS = frozenset({"login", "logoff", "challenge", "events"})


def _tv(when: float | None = None) -> str:
    """Security-event time: ``2016-08-19T10:21:41.128+0000``."""
    t = dt.datetime.fromtimestamp(time.time() if when is None else when, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+0000"


def _timestamp() -> str:
    """``Timestamp: <sec>.<6-digit usec>`` (Ping and timestampevents)."""
    return f"{time.time():.6f}"


def wire(msg: Message) -> bytes:
    """Wire bytes of an outgoing message.

    Asterisk echoes what it was sent (a lone CR inside an ActionID stays), so a value the
    encoder refuses as header injection is written raw instead of failing the session.
    """
    try:
        return encode(msg)
    except LocalProtocolError:
        body = "".join(f"{k}: {v}\r\n" for k, v in msg) + "\r\n"
        return body.encode("utf-8", "surrogateescape")


def _address(sockaddr: Any, tls: bool) -> tuple[str, str]:
    """(ip, ``IPV4/TCP/ip/port``) from a socket address."""
    if not sockaddr:
        return "", "IPV4/TCP/0.0.0.0/0"
    ip, port = str(sockaddr[0]), int(sockaddr[1])
    family = "IPV6" if ":" in ip else "IPV4"
    return ip, f"{family}/{'TLS' if tls else 'TCP'}/{ip}/{port}"


class SimCore:
    """Shared simulator state; every method runs on the simulator's event loop.

    Args:
        profile: the effective profile (faults applied).
        faults: active fault names.
        seed: makes challenges, session ids and the PBX deterministic.
        fail_delay: seconds before ``Authentication failed`` (Asterisk: ``sleep(1)``).
        errors: list that collects handler exceptions (re-raised by the Simulator).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        profile: Profile,
        faults: frozenset[str],
        *,
        seed: int = 0,
        fail_delay: float = 1.0,
        errors: list[BaseException] | None = None,
    ) -> None:
        self.loop = loop
        self.profile = profile
        self.faults = faults
        self.seed = seed
        self.fail_delay = fail_delay
        self.errors: list[BaseException] = [] if errors is None else errors
        self.rng = random.Random(seed)
        self.users: dict[str, User] = {}
        self.set_users(profile.users)
        self.sessions: set[AmiSession] = set()
        self.authed: dict[AmiSession, None] = {}  # ordered set: broadcast order = login order
        self.unauth = 0
        self.crashed = False
        self._session_seq = 0
        self._mask_cache: dict[frozenset[str], int] = {}
        s = profile.settings
        f = faults
        self.banner = ((_BANNER_FAULT if "banner-mismatch" in f else s.banner) + "\r\n").encode()
        self.auth_timeout: float | None = (
            None
            if "no-auth-timeout" in f
            else float(s.auth_timeout_s if s.auth_timeout_s >= 1 else 30)
        )
        self.auth_limit: int | None = None if "auth-limit-ignored" in f else s.auth_limit
        self.write_timeout = max(s.write_timeout_ms, 1) / 1000.0
        self.timestamps = s.timestamp_events != ("timestamp-mismatch" in f)
        self.table = STOCK_ACTION_PRIVILEGES if "bridge-unprivileged" in f else ACTION_PRIVILEGES
        # fault switches as plain attributes: the hot path tests booleans, not set membership
        self.fx_slow = "slow-responses" in f
        self.fx_nul_close = "nul-closes-session" in f
        self.fx_crash = "crash-on-hostile" in f
        self.fx_crlf_only = "crlf-only" in f
        self.fx_segment = "segment-sensitive" in f
        self.fx_pipeline_drop = "pipeline-drop" in f
        self.fx_tls_stall = "tls-pipeline-stall" in f
        self.fx_long_line = "long-line-desync" in f
        self.fx_header_limit = "header-limit-ignored" in f
        self.fx_case_keys = "case-sensitive-keys" in f
        self.fx_error_text = "error-text" in f
        self.fx_preauth = "preauth-actions" in f
        self.fx_user_enum = "user-enumeration" in f
        self.fx_acl_ignored = "acl-ignored" in f
        self.fx_empty_acl = "empty-acl-allows" in f
        self.fx_challenge = "challenge-broken" in f
        self.fx_logoff = "logoff-ignored" in f
        self.fx_event_leak = "event-leak" in f
        self.fx_priv_leak = "privilege-leak" in f
        self.fx_getconfig = "getconfig-traversal" in f
        self.handlers: dict[str, Handler] = {}
        self.pbx: Pbx
        self._load_handlers()

    # -- wiring -----------------------------------------------------------------------------
    def _load_handlers(self) -> None:
        """HANDLERS, plus ListCommands-listed actions without a handler (via dispatch)."""
        self.handlers.update(_handlers.HANDLERS)
        for name in _handlers.SYNOPSIS:
            low = name.lower()
            if low not in self.handlers and low not in _CORE_ACTIONS:
                self.handlers[low] = self._via_dispatch
        self.pbx = Pbx(self.seed, self.call_later, self.emit)

    def _via_dispatch(self, ctx: ActionContext, req: Request) -> None:
        err = _handlers.dispatch(ctx, req)
        if err is not None:
            self.errors.append(err)

    def call_later(self, delay: float, fn: Callable[[], None]) -> asyncio.TimerHandle:
        """PBX timers; exceptions are collected, never lost."""

        def run() -> None:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - collected and re-raised at teardown
                self.errors.append(exc)

        return self.loop.call_later(delay, run)

    def set_users(self, users: Iterable[User]) -> None:
        """Asterisk finds users case-insensitively; the first of equal names wins."""
        table: dict[str, User] = {}
        for u in users:
            table.setdefault(u.username.lower(), u)
        self.users = table

    def next_session_id(self) -> str:
        """``0x7efcac001068`` style (``%p`` of the session struct), deterministic."""
        self._session_seq += 1
        base = 0x7EFC00001068 + (self.seed % 0x100) * 0x100000000
        return f"0x{base + self._session_seq * 0xC000000:x}"

    def challenge(self) -> str:
        """``ast_random()`` cut to 9 characters: a 9-digit decimal string."""
        return str(self.rng.randrange(100_000_000, 1_000_000_000))

    def class_mask(self, classes: frozenset[str]) -> int:
        mask = self._mask_cache.get(classes)
        if mask is None:
            mask = self._mask_cache[classes] = names_to_mask(classes)
        return mask

    def crash(self) -> None:
        """crash-on-hostile: the listener stops accepting until reset()."""
        self.crashed = True

    def reset_sessions(self) -> None:
        """Close every session, clear the crash-on-hostile state, reset the PBX."""
        for sess in list(self.sessions):
            sess.abort()
        self.crashed = False
        if self.pbx is not None:
            self.pbx.reset()

    # -- events -----------------------------------------------------------------------------
    def emit(self, event: Message, classes: frozenset[str]) -> None:
        """Broadcast ``event`` to every logged-in session whose read privileges and event
        mask cover all of ``classes``; adds ``Timestamp:`` after ``Privilege:`` if enabled."""
        if not self.authed:
            return
        if self.timestamps:
            items = event.items
            items.insert(2, ("Timestamp", _timestamp()))
            event = Message(items)
        need = self.class_mask(classes)
        data = wire(event)
        for sess in list(self.authed):
            if sess.event_bits & need == need:
                sess.write(data)

    def security(
        self, name: str, sess: AmiSession, account: str, extras: Iterable[tuple[str, str]] = ()
    ) -> None:
        """A main/security_events.c event (ami-reference.md section 2 header order)."""
        if not self.authed:
            return
        items = [
            ("EventTV", _tv()),
            ("Severity", "Informational" if name == "SuccessfulAuth" else "Error"),
            ("Service", "AMI"),
            ("EventVersion", "2" if name == "InvalidPassword" else "1"),
            ("AccountID", account),
            ("SessionID", sess.session_id),
            ("LocalAddress", sess.local),
            ("RemoteAddress", sess.remote),
            *extras,
            ("SessionTV", sess.session_tv),
        ]
        self.emit(replies.event(name, ("security",), items), frozenset({"security"}))

    # -- checks -----------------------------------------------------------------------------
    def acl_ok(self, user: User, ip: str) -> bool:
        """The UCM rule (empty list denies all) unless a fault breaks it."""
        if self.fx_acl_ignored:
            return True
        if not user.permitted:
            return self.fx_empty_acl
        return acl_allows(user.permitted, ip)

    def allowed(self, privs: tuple[str, ...], action: str) -> bool:
        """process_message: authority 0, or any required class in the user's write perms."""
        if self.fx_getconfig and action in _GETCONFIG:
            return True   # getconfig-traversal: GetConfig for every user (handler reads ../)
        need = required_classes(action, self.table)
        if need is None:
            return "all" in privs  # an action the table does not know: only "all" runs it
        if not need:
            return True
        if self.fx_priv_leak and need & _LEAK_CLASSES:
            return True
        return names_to_mask(privs) & names_to_mask(need) != 0


class AmiSession(asyncio.Protocol):
    """One client connection (TCP or TLS), answered like Asterisk 13's session_do."""

    def __init__(self, core: SimCore, *, tls: bool = False) -> None:
        self.core = core
        self.tls = tls
        self.transport: asyncio.Transport | None = None
        self.parser = RequestParser()
        self.authed = False
        self.counted = False  # counted in core.unauth
        self.closing = False  # no more input is processed
        self.stalled = False
        self.username = ""
        self.privs: tuple[str, ...] = ()
        self.read_mask = 0
        self.send_events = ALL_MASK
        self.event_bits = 0
        self.challenge_value = ""
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
        self._allowed: dict[str, bool] = {}

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
        if core.auth_limit is not None and core.unauth >= core.auth_limit:
            # session_do: over authlimit the stream is closed before the banner
            self.closing = True
            transport.close()
            return
        core.unauth += 1
        self.counted = True
        self.ip, self.remote = _address(transport.get_extra_info("peername"), self.tls)
        self.local = _address(transport.get_extra_info("sockname"), self.tls)[1]
        self.session_id = core.next_session_id()
        self.session_tv = _tv()
        transport.set_write_buffer_limits(high=WRITE_BUFFER_BOUND)
        if core.auth_timeout is not None:
            self._auth_timer = core.loop.call_later(core.auth_timeout, self._auth_expired)
        self.write(core.banner)

    def connection_lost(self, exc: Exception | None) -> None:
        core = self.core
        self.closing = True
        core.sessions.discard(self)
        core.authed.pop(self, None)
        if self.counted:
            core.unauth -= 1
            self.counted = False
        for timer in (self._auth_timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        self._slowq.clear()

    def abort(self) -> None:
        """Drop the connection now; the bookkeeping is immediate (reset() relies on it)."""
        if self.transport is not None:
            self.transport.abort()
        self.connection_lost(None)

    def _auth_expired(self) -> None:
        # do_message: authtimeout counted from authstart (connect); silent close
        if not self.authed and self.transport is not None:
            self.closing = True
            self.transport.close()

    def close_after_writes(self) -> None:
        self.closing = True
        self._flush()
        if self._slowq:
            self._close_after_slow = True
        elif self.transport is not None:
            self.transport.close()

    # -- output -----------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Queue one message's bytes.

        Answers to one read's worth of pipelined actions go out in one write (like the
        segments a busy Asterisk coalesces); a lone action's answer is one write.
        """
        if self._batch is not None:
            self._batch.append(data)
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.core.fx_slow:
            self._slowq.append(data)
            self.core.loop.call_later(_SLOW_S, self._slow_pop)
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
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
        self._write_timer = self.core.loop.call_later(
            self.core.write_timeout, self._write_timed_out
        )

    def resume_writing(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        if self.transport is not None and not self.transport.is_closing() and not self.closing:
            self.transport.resume_reading()

    def _write_timed_out(self) -> None:
        self._write_timer = None
        self.abort()

    # -- input ------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.closing or self.stalled:
            return
        core = self.core
        if b"\0" in data:
            if core.fx_crash:
                core.crash()
            if core.fx_nul_close:
                self.abort()
                return
        if core.fx_crlf_only:
            data = self._hide_bare_lf(data)
        if core.fx_segment:
            cut = data.rfind(b"\n")
            if cut < 0:
                return
            data = data[: cut + 1]
        reqs = self.parser.feed(data)
        if not reqs:
            return
        if len(reqs) > 1:
            if core.fx_pipeline_drop:
                reqs = reqs[:1]
            elif core.fx_tls_stall and self.tls:
                reqs = reqs[:1]
                self.stalled = True
        self._batch = []
        try:
            for req in reqs:
                if self.closing:
                    break
                self.process(req)
            self._flush()
        except Exception as exc:  # noqa: BLE001 - a simulator bug must not kill the loop
            core.errors.append(exc)
            self.abort()
        finally:
            self._batch = None

    def _hide_bare_lf(self, data: bytes) -> bytes:
        """crlf-only: a bare LF is not a line end (turned into a space)."""
        head = b""
        if self._last_cr and data[:1] == b"\n":
            head, data = b"\n", data[1:]
        if data:
            self._last_cr = data[-1:] == b"\r"
        return head + _BARE_LF.sub(b" ", data)

    def _action_id(self, req: Request) -> str | None:
        # astman_send_response_full: ActionID only when present and non-empty
        return req.header("ActionID") or None

    def process(self, req: Request) -> None:
        """process_message / do_message for one framed request."""
        core = self.core
        error = req.error
        if error is not None:
            if core.fx_crash:
                core.crash()
            if not (
                (error == LINE_TOO_LONG and core.fx_long_line)
                or (error == TOO_MANY_LINES and core.fx_header_limit)
            ):
                self.send(replies.error(self._action_id(req), error))
                return
        if core.fx_case_keys:
            action = next(
                (
                    ln[7:].lstrip()
                    for ln in req.lines
                    if ln.startswith("Action:") and ln[7:].strip()
                ),
                "",
            )
        else:
            action = req.header("Action", skip_empty=True)
        aid = req.header("ActionID") or None
        if not action:
            self.send(
                replies.error(aid, _ALT_MISSING_ACTION if core.fx_error_text else MISSING_ACTION)
            )
            # security events travel through stasis in Asterisk: they arrive after the reply
            core.security(
                "RequestBadFormat", self, self.username, [("RequestType", "Action: NONE")]
            )
            return
        low = action.lower()
        if low in _PREAUTH:
            if low == "login":
                self._login(req, aid)
            elif low == "logoff":
                self.send(replies.response("Goodbye", aid, "Thanks for all the fish."))
                if not core.fx_logoff:
                    self.close_after_writes()
            else:
                self._challenge(req, aid)
            return
        privs = self.privs
        if not self.authed:
            if not core.fx_preauth:
                self.send(replies.error(aid, "Permission denied"))
                core.security(
                    "RequestNotAllowed", self, self.username, [("RequestType", f"Action: {action}")]
                )
                return
            privs = ("all",)
        if low == "events":
            self._events(req, aid)
            return
        handler = core.handlers.get(low)
        if handler is None:
            text = _ALT_UNKNOWN_COMMAND if core.fx_error_text else UNKNOWN_COMMAND
            self.send(replies.error(aid, text.format(action)))
            core.security(
                "RequestBadFormat", self, self.username, [("RequestType", f"Action: {action}")]
            )
            return
        ok = self._allowed.get(low) if privs is self.privs else None
        if ok is None:
            ok = core.allowed(privs, low)
            if privs is self.privs:
                self._allowed[low] = ok
        if not ok:
            self.send(replies.error(aid, "Permission denied"))
            core.security(
                "RequestNotAllowed", self, self.username, [("RequestType", f"Action: {action}")]
            )
            return
        ctx = ActionContext(
            session_id=self.session_id,
            username=self.username,
            privileges=frozenset(privs),
            action_id=aid,
            faults=core.faults,
            profile=core.profile,
            pbx=core.pbx,
            reply=self.send,
            local=self.local,
            remote=self.remote,
            tls=self.tls,
        )
        try:
            handler(ctx, req)
        except Exception as exc:  # noqa: BLE001 - collected, re-raised by check_errors()
            core.errors.append(HandlerError(action, exc))
            self.send(replies.error(aid, "Internal simulator error"))

    # -- core actions -----------------------------------------------------------------------
    def _challenge(self, req: Request, aid: str | None) -> None:
        if req.header("AuthType").lower() == "md5":
            if not self.challenge_value:
                self.challenge_value = self.core.challenge()
            self.send(replies.response("Success", aid, None, [("Challenge", self.challenge_value)]))
        else:
            self.send(replies.error(aid, "Must specify AuthType"))

    def _events(self, req: Request, aid: str | None) -> None:
        mask = strings_to_mask(req.header("EventMask"))
        if mask is None:
            self.send(replies.error(aid, "Invalid event mask"))
            return
        self.send_events = mask
        self._update_event_bits()
        self.send(replies.response("Success", aid, None, [("Events", "On" if mask else "Off")]))

    def _update_event_bits(self) -> None:
        read = ALL_MASK if self.core.fx_event_leak else self.read_mask
        self.event_bits = read & self.send_events

    def _login(self, req: Request, aid: str | None) -> None:
        core = self.core
        if self.authed:
            self.send(replies.success(aid, "Already authenticated"))
            return
        username = req.header("Username")
        user = core.users.get(username.lower()) if username else None
        ok = False
        if not username:
            pass
        elif user is None:
            core.security("InvalidAccountID", self, username)
            if core.fx_user_enum:
                self.send(replies.error(aid, "Invalid username"))
                self.close_after_writes()
                return
        elif not core.acl_ok(user, self.ip):
            core.security("FailedACL", self, username)
        elif req.header("AuthType").lower() == "md5":
            key = req.header("Key")
            if key and self.challenge_value and user.secret is not None:
                # challenge-broken: the digest of the pieces in the wrong order
                text = (
                    user.secret + self.challenge_value
                    if core.fx_challenge
                    else self.challenge_value + user.secret
                )
                expected = hashlib.md5(text.encode("utf-8", "surrogateescape")).hexdigest()
                if key == expected:
                    ok = True
                else:
                    core.security(
                        "ChallengeResponseFailed",
                        self,
                        username,
                        [
                            ("Challenge", self.challenge_value),
                            ("Response", key),
                            ("ExpectedResponse", expected),
                        ],
                    )
        elif user.secret is not None:
            if req.header("Secret") == user.secret:
                ok = True
            else:
                core.security("InvalidPassword", self, username)
        if not ok or user is None:
            self._fail(aid)
            return
        # success (action_login after authenticate)
        self.authed = True
        if self.counted:
            core.unauth -= 1
            self.counted = False
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        self.username = username
        self.privs = tuple(user.privileges)
        self.read_mask = names_to_mask(self.privs)
        self._allowed.clear()
        events = strings_to_mask(req.header("Events"))
        if events is not None:
            self.send_events = events
        self._update_event_bits()
        self.session_tv = _tv()
        self.send(replies.success(aid, "Authentication accepted"))
        if self.send_events & _SYSTEM and self.read_mask & _SYSTEM:
            self.write(_FULLY_BOOTED)
        core.authed[self] = None
        core.security("SuccessfulAuth", self, username, [("UsingPassword", "0")])

    def _fail(self, aid: str | None) -> None:
        """authenticate() failed: sleep(1), ``Authentication failed``, close."""
        self.closing = True
        if self.transport is not None:
            self.transport.pause_reading()
        self.core.loop.call_later(self.core.fail_delay, self._fail_finish, aid)

    def _fail_finish(self, aid: str | None) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.send(replies.error(aid, "Authentication failed"))
        self.close_after_writes()
