"""The server side of one AMI connection as a pure state machine (h11-style; no I/O, no time).

Framed requests go in (what :meth:`RequestParser.feed` returned), together with the
decisions only the I/O layer can make: the login verdict once it has looked the user up and
checked ACL and secret (:meth:`ServerSession.login_verdict`), the expiry of the auth
timeout (:meth:`ServerSession.auth_timeout`) and the end of the connection. Events come
out, in wire order: :class:`Reply` to write, :class:`RunAction` for a handler,
:class:`Authenticate` to decide, :class:`SecurityEvent` to broadcast, :class:`Close`.

What lives here is Asterisk 13's ``process_message`` / ``action_login`` /
``action_challenge`` / ``action_events`` of ``main/manager.c`` (ami-reference.md sections
1 and 2): only Login, Logoff and Challenge before login (``Permission denied``), ``Missing
action in request``, ``Already authenticated``, one challenge per session, the Events mask
limited by the read privilege, and the write-privilege check. Where a simulator fault
deviates, :class:`ServerRules` says how, as plain values (never fault names). The login
state follows :data:`TRANSITIONS`, like h11's ``_state.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from amicheck.privileges import (
    ACTION_PRIVILEGES,
    ALL_MASK,
    names_to_mask,
    required_classes,
    strings_to_mask,
)
from amicheck.protocol.grammar import LINE_TOO_LONG, TOO_MANY_LINES
from amicheck.protocol.message import Message
from amicheck.protocol.request import Request

__all__ = [
    "State", "Input", "CloseReason", "ServerRules", "Verdict", "Greeting", "Reply",
    "RunAction", "Authenticate", "LoggedIn", "SecurityEvent", "AuthFailed", "Crash", "Close",
    "ServerEvent", "ServerSession", "ServerSessionError", "TRANSITIONS", "PREAUTH_ACTIONS",
    "MISSING_ACTION", "UNKNOWN_COMMAND", "may_run",
]

#: process_message texts.
MISSING_ACTION = "Missing action in request"
UNKNOWN_COMMAND = (
    "Invalid/unknown command: {}. Use Action: ListCommands to show available commands."
)
#: Actions a session may send before it is logged in.
PREAUTH_ACTIONS: Final = frozenset({"login", "logoff", "challenge"})

_SYSTEM: Final = names_to_mask(("system",))
_ALL: Final = ("all",)


class State(StrEnum):
    """Where one connection stands."""

    GREETING = "greeting"  # accepted; the banner is not out yet
    UNAUTHENTICATED = "unauthenticated"  # banner sent, not logged in
    CHALLENGED = "challenged"  # an MD5 challenge was handed out, not logged in
    LOGGING_IN = "logging in"  # an Authenticate is out; the verdict is awaited
    AUTHENTICATED = "authenticated"
    CLOSING = "closing"  # no more input is processed; pending writes go out
    CLOSED = "closed"


class Input(StrEnum):
    """What moves the state (a request, or a decision the I/O layer feeds back)."""

    START = "start"  # the banner goes out
    OVER_LIMIT = "over auth limit"  # authlimit reached: closed before the banner
    CHALLENGE = "challenge"  # an MD5 challenge was answered
    LOGIN = "login"  # Login with a username: Authenticate is out
    ACCEPTED = "accepted"
    REFUSED = "refused"
    LOGOFF = "logoff"  # Logoff, and the behaviour closes on it
    AUTH_TIMEOUT = "auth timeout"
    LOST = "connection lost"


_G, _U, _CH, _LI, _A, _CL, _X = (State.GREETING, State.UNAUTHENTICATED, State.CHALLENGED,
                                 State.LOGGING_IN, State.AUTHENTICATED, State.CLOSING,
                                 State.CLOSED)

#: (state, input) -> state. A pair not listed leaves the state as it is (a second Challenge,
#: an auth timeout after login).
TRANSITIONS: Final[dict[tuple[State, Input], State]] = {
    (_G, Input.START): _U,
    (_G, Input.OVER_LIMIT): _X,
    (_U, Input.CHALLENGE): _CH,
    (_U, Input.LOGIN): _LI,
    (_CH, Input.LOGIN): _LI,
    (_U, Input.REFUSED): _CL,  # Login without a username
    (_CH, Input.REFUSED): _CL,
    (_LI, Input.REFUSED): _CL,
    (_LI, Input.ACCEPTED): _A,
    (_U, Input.LOGOFF): _CL,
    (_CH, Input.LOGOFF): _CL,
    (_A, Input.LOGOFF): _CL,
    (_U, Input.AUTH_TIMEOUT): _X,
    (_CH, Input.AUTH_TIMEOUT): _X,
    (_LI, Input.AUTH_TIMEOUT): _X,
    (_CL, Input.AUTH_TIMEOUT): _X,  # not logged in and still waiting out the fail delay
    **{(s, Input.LOST): _X for s in State},
}

#: States in which a framed request is processed (CLOSING and CLOSED ignore input).
_RECEIVING: Final = frozenset({_U, _CH, _A})


class CloseReason(StrEnum):
    AUTH_LIMIT = "auth limit"
    AUTH_TIMEOUT = "auth timeout"
    LOGOFF = "logoff"
    UNKNOWN_USER = "unknown user"
    AUTH_FAILED = "authentication failed"


def _action_of(req: Request) -> str:
    """astman_get_header(m, "Action"): case-insensitive key, first non-empty value."""
    return req.header("Action", skip_empty=True)


@dataclass(frozen=True)
class ServerRules:
    """How the served PBX applies the pre-auth and may-run rules; defaults are Asterisk's.

    The simulator fills it from its :class:`~amicheck.sim.behaviour.Behaviour` (same names).
    """

    login_required: bool = True
    close_on_logoff: bool = True
    events_by_read_privilege: bool = True
    reveal_unknown_user: bool = False
    refuse_long_lines: bool = True
    refuse_many_headers: bool = True
    crash_on_hostile: bool = False
    missing_action_text: str = MISSING_ACTION
    unknown_command_text: str = UNKNOWN_COMMAND
    action_of: Callable[[Request], str] = _action_of
    privilege_table: dict[str, frozenset[str]] = field(
        default_factory=lambda: ACTION_PRIVILEGES
    )
    unchecked_classes: frozenset[str] = frozenset()
    unchecked_actions: frozenset[str] = frozenset()


def may_run(rules: ServerRules, privs: Iterable[str], action: str) -> bool:
    """process_message: authority 0, or any required class in the user's write privileges.

    ``action`` is lower-case. An action the table does not know runs only for ``all``.
    """
    if action in rules.unchecked_actions:
        return True
    need = required_classes(action, rules.privilege_table)
    if need is None:
        return "all" in privs
    if not need or need & rules.unchecked_classes:
        return True
    return names_to_mask(privs) & names_to_mask(need) != 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """authenticate()'s answer, from the I/O layer (user lookup, ACL, secret or Key).

    Attributes:
        privileges: the user's privileges when accepted, None when refused.
        failure: the security event of a refusal (``InvalidPassword``...), "" for none.
        fields: that event's extra headers.
        unknown_user: the username is unknown (``reveal_unknown_user`` answers at once).
    """

    privileges: tuple[str, ...] | None
    failure: str = ""
    fields: tuple[tuple[str, str], ...] = ()
    unknown_user: bool = False

    @classmethod
    def accept(cls, privileges: Iterable[str]) -> Verdict:
        return cls(tuple(privileges))

    @classmethod
    def refuse(cls, failure: str = "", fields: Iterable[tuple[str, str]] = (),
               *, unknown_user: bool = False) -> Verdict:
        return cls(None, failure, tuple(fields), unknown_user)


# -- events out -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Greeting:
    """Write the banner line (``Asterisk Call Manager/x.y.z``)."""

    banner: str


@dataclass(frozen=True, slots=True)
class Reply:
    """Write this message."""

    message: Message


@dataclass(frozen=True, slots=True)
class RunAction:
    """Run the handler of ``action`` (lower-case; ``name`` as sent): it is known and the
    privileges allow it."""

    request: Request
    action: str
    name: str
    action_id: str | None
    username: str
    privileges: frozenset[str]


@dataclass(frozen=True, slots=True)
class Authenticate:
    """Decide a Login; answer with :meth:`ServerSession.login_verdict`.

    ``challenge`` is this session's challenge ("" before any); ``md5`` is AuthType MD5.
    """

    username: str
    md5: bool
    secret: str
    key: str
    challenge: str


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """The session is logged in (stop the auth timer, join the event broadcast)."""

    username: str
    privileges: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """Broadcast a main/security_events.c event for this session (after what precedes it)."""

    kind: str
    account: str
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class AuthFailed:
    """Stop reading, wait Asterisk's ``sleep(1)``, write ``reply``, close."""

    reply: Message


@dataclass(frozen=True, slots=True)
class Crash:
    """Hostile input with ``crash_on_hostile``: the listener stops until reset."""


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection; ``graceful``: after the writes already queued."""

    reason: CloseReason
    graceful: bool = True


ServerEvent = (Greeting | Reply | RunAction | Authenticate | LoggedIn | SecurityEvent
               | AuthFailed | Crash | Close)


class ServerSessionError(RuntimeError):
    """The I/O layer used the session out of order (a request while a verdict is pending)."""


def _response(status: str, aid: str | None, message: str | None = None,
              extra: Iterable[tuple[str, str]] = ()) -> Message:
    """astman_send_response_full: ActionID only when present and non-empty, then Message."""
    items = [("Response", status)]
    if aid is not None:
        items.append(("ActionID", aid))
    if message is not None:
        items.append(("Message", message))
    items.extend(extra)
    return Message(items)


def _error(aid: str | None, message: str) -> Reply:
    return Reply(_response("Error", aid, message))


def _fully_booted() -> Message:
    return Message([("Event", "FullyBooted"), ("Privilege", "system,all"),
                    ("Status", "Fully Booted")])


class ServerSession:
    """Asterisk's view of one AMI connection.

    Args:
        banner: the banner line, without CRLF.
        rules: how the pre-auth and may-run rules apply (default: Asterisk's).
        actions: lower-case names of the actions a handler can run (others are unknown).
        new_challenge: makes a challenge (called once per session, on the first MD5
            Challenge); randomness stays with the caller.
    """

    def __init__(self, banner: str, *, rules: ServerRules | None = None,
                 actions: Collection[str] = (),
                 new_challenge: Callable[[], str]) -> None:
        self.banner = banner
        self.rules = ServerRules() if rules is None else rules
        self.actions = actions
        self._new_challenge = new_challenge
        self.state = State.GREETING
        self.authenticated = False
        self.username = ""
        self.privileges: tuple[str, ...] = ()
        self.read_mask = 0
        self.send_events = ALL_MASK
        #: what a broadcast event needs to reach this session (read & send masks)
        self.event_bits = 0
        self.challenge = ""
        self._privset: frozenset[str] = frozenset(_ALL)
        self._allowed: dict[str, bool] = {}
        self._login_aid: str | None = None
        self._login_events = ""

    def _move(self, inp: Input) -> bool:
        new = TRANSITIONS.get((self.state, inp))
        if new is None:
            return False
        self.state = new
        return True

    # -- connection ---------------------------------------------------------------------------
    def start(self, *, over_auth_limit: bool = False) -> list[ServerEvent]:
        """session_do: the banner, or a silent close over the authlimit."""
        if self.state is not _G:
            raise ServerSessionError(f"start() in state {self.state}")
        if over_auth_limit:
            self._move(Input.OVER_LIMIT)
            return [Close(CloseReason.AUTH_LIMIT, graceful=False)]
        self._move(Input.START)
        return [Greeting(self.banner)]

    def auth_timeout(self) -> list[ServerEvent]:
        """do_message: authtimeout (counted from connect) ran out; silent close if not in."""
        if self.authenticated or not self._move(Input.AUTH_TIMEOUT):
            return []
        return [Close(CloseReason.AUTH_TIMEOUT, graceful=False)]

    def connection_lost(self) -> None:
        self._move(Input.LOST)

    # -- requests -----------------------------------------------------------------------------
    def receive(self, req: Request) -> list[ServerEvent]:
        """process_message for one framed request."""
        state = self.state
        if state not in _RECEIVING:
            if state is _LI:
                raise ServerSessionError("a request arrived while a login verdict is pending")
            if state is _G:
                raise ServerSessionError("a request arrived before start()")
            return []
        rules = self.rules
        out: list[ServerEvent] = []
        aid = req.header("ActionID") or None
        error = req.error
        if error is not None:
            if rules.crash_on_hostile:
                out.append(Crash())
            if not ((error == LINE_TOO_LONG and not rules.refuse_long_lines)
                    or (error == TOO_MANY_LINES and not rules.refuse_many_headers)):
                out.append(_error(aid, error))
                return out
        action = rules.action_of(req)
        if not action:
            out.append(_error(aid, rules.missing_action_text))
            # security events travel through stasis in Asterisk: they arrive after the reply
            out.append(SecurityEvent("RequestBadFormat", self.username,
                                     (("RequestType", "Action: NONE"),)))
            return out
        low = action.lower()
        if low in PREAUTH_ACTIONS:
            if low == "login":
                out.extend(self._login(req, aid))
            elif low == "logoff":
                out.append(Reply(_response("Goodbye", aid, "Thanks for all the fish.")))
                if rules.close_on_logoff:
                    self._move(Input.LOGOFF)
                    out.append(Close(CloseReason.LOGOFF))
            else:
                out.append(self._challenge(req, aid))
            return out
        authed = self.authenticated
        if not authed and rules.login_required:
            return self._refuse(out, aid, action)
        if low == "events":
            out.append(self._events(req, aid))
            return out
        if low not in self.actions:
            out.append(_error(aid, rules.unknown_command_text.format(action)))
            out.append(SecurityEvent("RequestBadFormat", self.username,
                                     (("RequestType", f"Action: {action}"),)))
            return out
        if authed:
            ok = self._allowed.get(low)
            if ok is None:
                ok = self._allowed[low] = may_run(rules, self.privileges, low)
        else:
            ok = may_run(rules, _ALL, low)  # no login required: runs as "all"
        if not ok:
            return self._refuse(out, aid, action)
        out.append(RunAction(req, low, action, aid, self.username, self._privset))
        return out

    def _refuse(self, out: list[ServerEvent], aid: str | None,
                action: str) -> list[ServerEvent]:
        out.append(_error(aid, "Permission denied"))
        out.append(SecurityEvent("RequestNotAllowed", self.username,
                                 (("RequestType", f"Action: {action}"),)))
        return out

    def _challenge(self, req: Request, aid: str | None) -> Reply:
        """action_challenge: one challenge per session, made on the first MD5 Challenge."""
        if req.header("AuthType").lower() != "md5":
            return _error(aid, "Must specify AuthType")
        if not self.challenge:
            self.challenge = self._new_challenge()
        self._move(Input.CHALLENGE)
        return Reply(_response("Success", aid, None, [("Challenge", self.challenge)]))

    def _update_event_bits(self) -> None:
        read = self.read_mask if self.rules.events_by_read_privilege else ALL_MASK
        self.event_bits = read & self.send_events

    def _events(self, req: Request, aid: str | None) -> Reply:
        """action_events: the event mask, always limited by the read privilege."""
        mask = strings_to_mask(req.header("EventMask"))
        if mask is None:
            return _error(aid, "Invalid event mask")
        self.send_events = mask
        self._update_event_bits()
        return Reply(_response("Success", aid, None, [("Events", "On" if mask else "Off")]))

    # -- login --------------------------------------------------------------------------------
    def _login(self, req: Request, aid: str | None) -> list[ServerEvent]:
        """action_login up to authenticate(): the decision goes out as Authenticate."""
        if self.authenticated:
            return [Reply(_response("Success", aid, "Already authenticated"))]
        username = req.header("Username")
        if not username:
            self._move(Input.REFUSED)
            return [AuthFailed(_response("Error", aid, "Authentication failed"))]
        self._move(Input.LOGIN)
        self.username = username
        self._login_aid = aid
        self._login_events = req.header("Events")
        return [Authenticate(username, req.header("AuthType").lower() == "md5",
                             req.header("Secret"), req.header("Key"), self.challenge)]

    def login_verdict(self, verdict: Verdict) -> list[ServerEvent]:
        """The rest of action_login, once the I/O layer decided the Authenticate."""
        if self.state is not _LI:
            raise ServerSessionError(f"login_verdict() in state {self.state}")
        aid, username = self._login_aid, self.username
        out: list[ServerEvent] = []
        if verdict.failure:
            out.append(SecurityEvent(verdict.failure, username, verdict.fields))
        privs = verdict.privileges
        if privs is None:
            self.username = ""
            self._move(Input.REFUSED)
            if verdict.unknown_user and self.rules.reveal_unknown_user:
                out.append(_error(aid, "Invalid username"))
                out.append(Close(CloseReason.UNKNOWN_USER))
            else:
                out.append(AuthFailed(_response("Error", aid, "Authentication failed")))
            return out
        self._move(Input.ACCEPTED)
        self.authenticated = True
        self.privileges = privs
        self._privset = frozenset(privs)
        self._allowed.clear()
        self.read_mask = names_to_mask(privs)
        mask = strings_to_mask(self._login_events)
        if mask is not None:
            self.send_events = mask
        self._update_event_bits()
        out.append(LoggedIn(username, privs))
        out.append(Reply(_response("Success", aid, "Authentication accepted")))
        if self.send_events & _SYSTEM and self.read_mask & _SYSTEM:
            out.append(Reply(_fully_booted()))
        out.append(SecurityEvent("SuccessfulAuth", username, (("UsingPassword", "0"),)))
        return out
