"""The sans-I/O server session: tables, pre-auth rules, login, and real Asterisk 13 traffic.

No sockets: requests come from :class:`RequestParser`, verdicts from a small oracle here.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterator
from pathlib import Path

import _conformance
import pytest

from amicheck.privileges import ALL_MASK, names_to_mask
from amicheck.protocol import server_session as ss_mod
from amicheck.protocol.encoder import encode
from amicheck.protocol.grammar import LINE_TOO_LONG, MAX_LINE, TOO_MANY_LINES
from amicheck.protocol.message import Message, MessageKind
from amicheck.protocol.parser import Parser
from amicheck.protocol.request import Request, RequestParser
from amicheck.protocol.server_session import (
    MISSING_ACTION,
    TRANSITIONS,
    UNKNOWN_COMMAND,
    Authenticate,
    AuthFailed,
    Close,
    CloseReason,
    Crash,
    Greeting,
    Input,
    LoggedIn,
    Reply,
    RunAction,
    SecurityEvent,
    ServerEvent,
    ServerRules,
    ServerSession,
    ServerSessionError,
    State,
    Verdict,
    may_run,
)

BANNER = "Asterisk Call Manager/2.10.6"
ACTIONS = frozenset({"ping", "corestatus", "listcommands", "originate", "command"})


def req(text: str) -> Request:
    reqs = RequestParser().feed(text.replace("\n", "\r\n").encode() + b"\r\n\r\n")
    assert len(reqs) == 1
    return reqs[0]


def challenges(*values: str) -> Iterator[str]:
    yield from values
    raise AssertionError("a second challenge was made")


def session(rules: ServerRules | None = None, *chal: str) -> ServerSession:
    it = challenges(*(chal or ("123456789",)))
    s = ServerSession(BANNER, rules=rules, actions=ACTIONS, new_challenge=lambda: next(it))
    assert s.start() == [Greeting(BANNER)]
    return s


def replies(events: list[ServerEvent]) -> list[list[tuple[str, str]]]:
    return [e.message.items for e in events if isinstance(e, Reply)]


def state(s: ServerSession) -> State:
    """The state, read through a call (mypy would narrow a repeated attribute read)."""
    return s.state


def logged_in(privs: tuple[str, ...] = ("all",), events: str = "") -> ServerSession:
    s = session()
    extra = f"\nEvents: {events}" if events else ""
    out = s.receive(req(f"Action: Login\nUsername: u\nSecret: p{extra}"))
    assert out == [Authenticate("u", False, "p", "", "")]
    s.login_verdict(Verdict.accept(privs))
    assert s.state is State.AUTHENTICATED
    return s


# -- tables -----------------------------------------------------------------------------------

def test_tables_name_only_real_states_and_every_state_can_be_lost() -> None:
    for (state, inp), new in TRANSITIONS.items():
        assert isinstance(state, State) and isinstance(inp, Input) and isinstance(new, State)
    assert {s for s in State} == {s for s, i in TRANSITIONS if i is Input.LOST}
    assert all(TRANSITIONS[s, Input.LOST] is State.CLOSED for s in State)
    assert not any(s is State.CLOSED and new is not State.CLOSED
                   for (s, _), new in TRANSITIONS.items())


def test_md5_login_walks_every_state() -> None:
    s = session(None, "555000111")
    assert state(s) is State.UNAUTHENTICATED
    out = s.receive(req("Action: Challenge\nAuthType: MD5\nActionID: c1"))
    assert replies(out) == [[("Response", "Success"), ("ActionID", "c1"),
                             ("Challenge", "555000111")]]
    assert state(s) is State.CHALLENGED
    out = s.receive(req("Action: Login\nAuthType: md5\nUsername: Bob\nKey: k\nActionID: l"))
    assert out == [Authenticate("Bob", True, "", "k", "555000111")]
    assert state(s) is State.LOGGING_IN
    out = s.login_verdict(Verdict.accept(("system", "call")))
    assert [type(e) for e in out] == [LoggedIn, Reply, Reply, SecurityEvent]
    assert out[0] == LoggedIn("Bob", ("system", "call"))
    assert out[3] == SecurityEvent("SuccessfulAuth", "Bob", (("UsingPassword", "0"),))
    assert replies(out) == [
        [("Response", "Success"), ("ActionID", "l"), ("Message", "Authentication accepted")],
        [("Event", "FullyBooted"), ("Privilege", "system,all"), ("Status", "Fully Booted")],
    ]
    assert state(s) is State.AUTHENTICATED and s.username == "Bob"
    assert s.event_bits == names_to_mask(("system", "call"))
    out = s.receive(req("Action: Logoff\nActionID: z"))
    assert replies(out) == [[("Response", "Goodbye"), ("ActionID", "z"),
                             ("Message", "Thanks for all the fish.")]]
    assert out[-1] == Close(CloseReason.LOGOFF)
    assert state(s) is State.CLOSING
    assert s.receive(req("Action: Ping")) == []  # closing: input is not processed
    s.connection_lost()
    assert state(s) is State.CLOSED


def test_challenge_is_fixed_per_session_and_needs_md5() -> None:
    s = session(None, "111222333")  # a second new_challenge() call fails the test
    for n in range(3):
        out = s.receive(req(f"Action: Challenge\nAuthType: {'md5' if n else 'MD5'}"))
        assert replies(out) == [[("Response", "Success"), ("Challenge", "111222333")]]
    out = s.receive(req("Action: Challenge\nAuthType: plain\nActionID: x"))
    assert replies(out) == [[("Response", "Error"), ("ActionID", "x"),
                             ("Message", "Must specify AuthType")]]


# -- before login -----------------------------------------------------------------------------

def test_only_login_logoff_challenge_before_login() -> None:
    s = session()
    for action in ("Ping", "Events", "NoSuchAction", "CoreStatus"):
        out = s.receive(req(f"Action: {action}\nActionID: a"))
        assert out == [Reply(out[0].message),  # type: ignore[union-attr]
                       SecurityEvent("RequestNotAllowed", "",
                                     (("RequestType", f"Action: {action}"),))]
        assert replies(out) == [[("Response", "Error"), ("ActionID", "a"),
                                 ("Message", "Permission denied")]]
    assert s.state is State.UNAUTHENTICATED


def test_missing_action_is_answered_and_reported_after_the_reply() -> None:
    s = session()
    for text in ("ActionID: b5\nFoo: bar", "Action: \nActionID: b5"):
        out = s.receive(req(text))
        assert replies(out) == [[("Response", "Error"), ("ActionID", "b5"),
                                 ("Message", MISSING_ACTION)]]
        assert out[1] == SecurityEvent("RequestBadFormat", "", (("RequestType", "Action: NONE"),))


def test_without_login_required_actions_run_as_all() -> None:
    s = session(ServerRules(login_required=False))
    (run,) = s.receive(req("Action: PING\nActionID: p"))
    assert run == RunAction(run.request, "ping", "PING", "p", "",  # type: ignore[union-attr]
                            frozenset({"all"}))
    assert s.state is State.UNAUTHENTICATED


def test_the_auth_timeout_closes_only_sessions_not_logged_in() -> None:
    s = session()
    assert s.auth_timeout() == [Close(CloseReason.AUTH_TIMEOUT, graceful=False)]
    assert s.state is State.CLOSED
    assert logged_in().auth_timeout() == []
    over = ServerSession(BANNER, new_challenge=lambda: "1")
    assert over.start(over_auth_limit=True) == [Close(CloseReason.AUTH_LIMIT, graceful=False)]
    assert over.state is State.CLOSED


def test_misuse_by_the_io_layer_is_an_error() -> None:
    s = ServerSession(BANNER, new_challenge=lambda: "1")
    with pytest.raises(ServerSessionError):
        s.receive(req("Action: Ping"))
    s.start()
    with pytest.raises(ServerSessionError):
        s.start()
    with pytest.raises(ServerSessionError):
        s.login_verdict(Verdict.accept(("all",)))
    s.receive(req("Action: Login\nUsername: u\nSecret: p"))
    with pytest.raises(ServerSessionError, match="verdict is pending"):
        s.receive(req("Action: Ping"))


# -- login ------------------------------------------------------------------------------------

def test_refused_logins_fail_after_their_security_event() -> None:
    s = session()
    s.receive(req("Action: Login\nUsername: u\nSecret: bad\nActionID: f1"))
    out = s.login_verdict(Verdict.refuse("InvalidPassword"))
    assert out == [SecurityEvent("InvalidPassword", "u"),
                   AuthFailed(out[1].reply)]  # type: ignore[union-attr]
    assert out[1].reply.items == [  # type: ignore[union-attr]
        ("Response", "Error"), ("ActionID", "f1"), ("Message", "Authentication failed")]
    assert s.state is State.CLOSING and not s.authenticated and s.username == ""
    # an auth timeout during the fail delay still closes at once
    assert s.auth_timeout() == [Close(CloseReason.AUTH_TIMEOUT, graceful=False)]


def test_login_without_username_fails_without_asking() -> None:
    s = session()
    (fail,) = s.receive(req("Action: Login\nSecret: test123\nActionID: f5"))
    assert isinstance(fail, AuthFailed) and s.state is State.CLOSING


def test_unknown_user_is_revealed_only_when_the_rules_say_so() -> None:
    for reveal in (False, True):
        s = session(ServerRules(reveal_unknown_user=reveal))
        s.receive(req("Action: Login\nUsername: nobody\nSecret: x"))
        out = s.login_verdict(Verdict.refuse("InvalidAccountID", unknown_user=True))
        assert out[0] == SecurityEvent("InvalidAccountID", "nobody")
        if reveal:
            assert replies(out) == [[("Response", "Error"), ("Message", "Invalid username")]]
            assert out[-1] == Close(CloseReason.UNKNOWN_USER)
        else:
            assert isinstance(out[-1], AuthFailed)


def test_second_login_is_already_authenticated() -> None:
    s = logged_in()
    out = s.receive(req("Action: Login\nUsername: other\nSecret: x\nActionID: l3"))
    assert replies(out) == [[("Response", "Success"), ("ActionID", "l3"),
                             ("Message", "Already authenticated")]]
    assert s.username == "u"


@pytest.mark.parametrize(("privs", "events", "booted", "bits"), [
    (("all",), "", True, ALL_MASK),
    (("all",), "off", False, 0),
    (("call",), "on", False, names_to_mask(("call",))),
    (("system",), "call", False, 0),
])
def test_login_events_mask_and_fully_booted(privs: tuple[str, ...], events: str,
                                            booted: bool, bits: int) -> None:
    s = session()
    extra = f"\nEvents: {events}" if events else ""
    s.receive(req(f"Action: Login\nUsername: u\nSecret: p{extra}"))
    out = s.login_verdict(Verdict.accept(privs))
    assert (len(replies(out)) == 2) is booted
    assert s.event_bits == bits


def test_events_action_is_limited_by_the_read_privilege() -> None:
    s = logged_in(("call",))
    out = s.receive(req("Action: Events\nEventMask: on\nActionID: e"))
    assert replies(out) == [[("Response", "Success"), ("ActionID", "e"), ("Events", "On")]]
    assert s.event_bits == names_to_mask(("call",))
    out = s.receive(req("Action: Events\nEventMask: off"))
    assert replies(out) == [[("Response", "Success"), ("Events", "Off")]] and s.event_bits == 0
    out = s.receive(req("Action: Events"))  # no EventMask
    assert replies(out) == [[("Response", "Error"), ("Message", "Invalid event mask")]]
    loose = ServerSession(BANNER, rules=ServerRules(events_by_read_privilege=False),
                          new_challenge=lambda: "1")
    loose.start()
    loose.receive(req("Action: Login\nUsername: u\nSecret: p"))
    loose.login_verdict(Verdict.accept(("call",)))
    assert loose.event_bits == ALL_MASK


# -- after login: may-run ---------------------------------------------------------------------

def test_unknown_and_forbidden_actions_after_login() -> None:
    s = logged_in(("call", "originate"))
    out = s.receive(req("Action: Frobnicate\nActionID: q"))
    assert replies(out) == [[("Response", "Error"), ("ActionID", "q"),
                             ("Message", UNKNOWN_COMMAND.format("Frobnicate"))]]
    assert out[1] == SecurityEvent("RequestBadFormat", "u",
                                   (("RequestType", "Action: Frobnicate"),))
    for _ in range(2):  # the second answer comes from the per-session cache
        out = s.receive(req("Action: Command\nCommand: core show version"))
        assert replies(out) == [[("Response", "Error"), ("Message", "Permission denied")]]
        assert isinstance(out[1], SecurityEvent) and out[1].account == "u"
    (run,) = s.receive(req("Action: Originate\nActionID: o"))
    assert isinstance(run, RunAction) and run.privileges == frozenset({"call", "originate"})


def test_may_run_rules() -> None:
    rules = ServerRules()
    assert may_run(rules, ("all",), "ping")  # authority 0
    assert not may_run(rules, ("call",), "command")
    assert may_run(rules, ("command",), "command")
    assert not may_run(rules, ("command",), "notinthetable")
    assert may_run(rules, ("all",), "notinthetable")
    assert may_run(ServerRules(unchecked_classes=frozenset({"command"})), ("call",), "command")
    assert may_run(ServerRules(unchecked_actions=frozenset({"command"})), (), "command")


# -- framing errors ---------------------------------------------------------------------------

def _hostile(kind: str) -> Request:
    if kind == "long":
        data = b"Action: Ping\r\nX: " + b"a" * (MAX_LINE + 10) + b"\r\n\r\n"
    else:
        data = b"Action: Ping\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(140)) + b"\r\n"
    (r,) = RequestParser().feed(data)
    assert r.error == (LINE_TOO_LONG if kind == "long" else TOO_MANY_LINES)
    return r


@pytest.mark.parametrize("kind", ["long", "many"])
def test_framing_errors_are_answered_or_ignored_as_the_rules_say(kind: str) -> None:
    s = logged_in()
    out = s.receive(_hostile(kind))
    assert replies(out) == [[("Response", "Error"), ("Message", _hostile(kind).error or "")]]
    lax = ServerRules(refuse_long_lines=False, refuse_many_headers=False, crash_on_hostile=True)
    s = session(lax)
    out = s.receive(_hostile(kind))
    assert out[0] == Crash()
    assert replies(out)[0][1] == ("Message", "Permission denied")  # processed as Ping


def test_server_session_module_does_no_io() -> None:
    tree = ast.parse(Path(ss_mod.__file__).read_text(encoding="utf-8"))
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
             for a in n.names}
    names |= {(n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {n.split(".")[0] for n in names} & {
        "socket", "ssl", "asyncio", "time", "select", "selectors", "random", "hashlib"}
    assert not any(n.startswith("amicheck.sim") for n in names)


# -- recorded Asterisk 13 traffic -------------------------------------------------------------

#: The recording's users (tests/data/conformance/README.md): secret, privileges, source IPs.
_USERS = {
    "ucmamiuser1": ("test123", ("all",), None),
    "aclblocked1": ("Passw0rd!", ("all",), "127.0.0.2"),
    "nopermit01": ("Passw0rd!", ("all",), ""),
}
_REPLAYED = ("02-login-ok", "03-login-failures", "04-action-before-login",
             "05-challenge-md5", "10-logoff-ping")


def _oracle(auth: Authenticate, ip: str) -> Verdict:
    """authenticate() for the recording's users (lookup case-insensitive)."""
    user = _USERS.get(auth.username.lower())
    if user is None:
        return Verdict.refuse("InvalidAccountID", unknown_user=True)
    secret, privs, permitted = user
    if permitted is not None and permitted != ip:
        return Verdict.refuse("FailedACL")
    if auth.md5:
        want = hashlib.md5((auth.challenge + secret).encode()).hexdigest()
        ok = bool(auth.challenge) and auth.key == want
        return Verdict.accept(privs) if ok else Verdict.refuse()
    return Verdict.accept(privs) if auth.secret == secret else Verdict.refuse("InvalidPassword")


def _recorded(conn: _conformance.Connection) -> tuple[str, list[list[tuple[str, str]]]]:
    """The banner and what the session itself decides: responses and FullyBooted."""
    parser = Parser()
    msgs = parser.feed(conn.received)
    assert parser.banner is not None
    return parser.banner, [m.items for m in msgs if m.kind is MessageKind.RESPONSE
                           or m.name == "FullyBooted"]


Items = list[tuple[str, str]]


def _replay(conn: _conformance.Connection) -> tuple[ServerSession, list[Items | None]]:
    banner, _ = _recorded(conn)
    recorded_chal = [v for m in Parser().feed(conn.received) for k, v in m if k == "Challenge"]
    ip = "127.0.0.2" if "src127.0.0.2" in conn.name else "127.0.0.1"
    s = ServerSession(banner, actions=ACTIONS, new_challenge=iter(recorded_chal).__next__)
    assert s.start() == [Greeting(banner)]
    parser = RequestParser()
    mine: list[Items | None] = []
    for data in conn.chunks(">>>"):
        for r in parser.feed(data):
            pending = s.receive(r)
            while pending:
                ev = pending.pop(0)
                if isinstance(ev, Authenticate):
                    pending[:0] = s.login_verdict(_oracle(ev, ip))
                elif isinstance(ev, Reply):
                    mine.append(ev.message.items)
                elif isinstance(ev, AuthFailed):
                    mine.append(ev.reply.items)
                elif isinstance(ev, RunAction):
                    mine.append(None)  # a handler answers (not the session's business)
    return s, mine


CONNECTIONS = [
    pytest.param(conn, id=f"{path.stem}/{name}")
    for path in _conformance.recordings("asterisk-13") if path.stem in _REPLAYED
    for name, conn in _conformance.load(path).items()
    if any(f.direction == ">>>" for f in conn.frames)
]


@pytest.mark.parametrize("conn", CONNECTIONS)
def test_recorded_asterisk_13_answers(conn: _conformance.Connection) -> None:
    s, mine = _replay(conn)
    _, recorded = _recorded(conn)
    assert len(mine) == len(recorded)
    for got, want in zip(mine, recorded, strict=True):
        if got is not None:
            assert got == want
            assert encode(Message(got)) == encode(Message(want))
    closed = any(f.note.startswith("EOF: server closed") for f in conn.frames)
    assert (s.state is State.CLOSING) is closed


def test_replay_covers_the_session_rules() -> None:
    assert len(CONNECTIONS) >= 15
    seen: set[str] = set()
    for param in CONNECTIONS:
        conn = param.values[0]
        assert isinstance(conn, _conformance.Connection)
        s, mine = _replay(conn)
        for items in mine:
            if items is None:
                seen.add("run")
                continue
            text = dict(items).get("Message", "")
            seen.add(text or ("challenge" if "Challenge" in dict(items) else "other"))
        seen.add(str(s.state))
    assert {"run", "challenge", "Authentication accepted", "Authentication failed",
            "Permission denied", MISSING_ACTION, "Already authenticated",
            "Must specify AuthType", "closing", "authenticated"} <= seen
