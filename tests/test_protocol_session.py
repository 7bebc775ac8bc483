"""ClientSession without sockets: tables, correlation, event lists, deviations, replays."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import _conformance
import pytest

import amicheck.protocol.events as events_mod
import amicheck.protocol.session as session_mod
from amicheck.protocol import Message, MessageKind, Parser, RequestParser
from amicheck.protocol.events import EventSearch
from amicheck.protocol.grammar import MAX_BANNER
from amicheck.protocol.session import (
    ANSWER_TRANSITIONS,
    HEADER_COST,
    MAX_DEVIATIONS,
    SEND_TRANSITIONS,
    Banner,
    ClientSession,
    Closed,
    DeviationRule,
    FirstLine,
    ListItem,
    MessageQueue,
    Reply,
    SessionEvent,
    State,
    Stray,
    Unsolicited,
)

BANNER = "Asterisk Call Manager/2.7.0"


def msgs(data: bytes) -> list[Message]:
    return Parser(banner=False).feed(data)


def one(text: str) -> Message:
    (m,) = msgs(text.replace("\n", "\r\n").encode() + b"\r\n\r\n")
    return m


def st(s: ClientSession) -> State:
    """The state, read through a call (mypy would narrow the attribute across calls)."""
    return s.state


def greeted(prefix: str = "t-") -> ClientSession:
    s = ClientSession(prefix)
    assert st(s) is State.GREETING
    assert s.receive_banner(BANNER) == Banner(BANNER)
    assert st(s) is State.CONNECTED and s.banner == BANNER
    return s


def ask(s: ClientSession, action: str) -> str:
    aid = s.next_action_id()
    s.send_action(action, aid)
    return aid


def logged_in(prefix: str = "t-") -> ClientSession:
    s = greeted(prefix)
    s.receive(one(f"Response: Success\nActionID: {ask(s, 'Login')}"))
    assert st(s) is State.LOGGED_IN
    return s


# -- the login dialogue ----------------------------------------------------------------------

def test_md5_login_walks_every_state() -> None:
    s = greeted()
    ch = ask(s, "Challenge")
    r = s.receive(one(f"Response: Success\nActionID: {ch}\nChallenge: 840415273"))
    assert isinstance(r, Reply) and r.ok and r.get("Challenge") == "840415273"
    assert st(s) is State.CHALLENGED
    lg = ask(s, "Login")
    assert st(s) is State.LOGGING_IN
    ping = ask(s, "Ping")  # pipelined before the Login answer: no state change
    s.receive(one(f"Response: Success\nActionID: {lg}\nMessage: Authentication accepted"))
    assert st(s) is State.LOGGED_IN
    booted = s.receive(one("Event: FullyBooted\nPrivilege: system,all\nStatus: Fully Booted"))
    assert isinstance(booted, Unsolicited) and booted.message.name == "FullyBooted"
    assert isinstance(s.receive(one(f"Response: Success\nActionID: {ping}\nPing: Pong")), Reply)
    off = ask(s, "Logoff")
    assert st(s) is State.LOGGING_OFF
    bye = s.receive(one(f"Response: Goodbye\nActionID: {off}\nMessage: Thanks for all the fish."))
    assert isinstance(bye, Reply) and bye.ok and bye.status == "Goodbye"
    assert st(s) is State.LOGGING_OFF  # until the server actually closes
    assert s.connection_closed() == Closed(())
    assert st(s) is State.CLOSED
    assert not s.deviations


def test_refused_login_goes_back_to_connected() -> None:
    s = greeted()
    lg = ask(s, "login")
    r = s.receive(one(f"Response: Error\nActionID: {lg}\nMessage: Authentication failed"))
    assert isinstance(r, Reply) and not r.ok and r.message == "Authentication failed"
    assert st(s) is State.CONNECTED
    assert s.connection_closed().unanswered == ()


def test_actions_outside_the_tables_leave_the_state() -> None:
    s = greeted()
    ask(s, "Ping")  # before login: allowed to send (checks do), no transition
    assert st(s) is State.CONNECTED
    lg = ask(s, "Login")
    s.receive(one(f"Response: Success\nActionID: {lg}"))
    again = ask(s, "Login")  # a second Login while logged in
    s.receive(one(f"Response: Error\nActionID: {again}\nMessage: Already logged in"))
    assert st(s) is State.LOGGED_IN


def test_tables_name_only_real_states_and_lower_case_actions() -> None:
    for (state, action), new in SEND_TRANSITIONS.items():
        assert isinstance(state, State) and isinstance(new, State) and action == action.lower()
        assert State.CLOSED not in (state, new)
    for (state, action, _ok), new in ANSWER_TRANSITIONS.items():
        assert isinstance(state, State) and isinstance(new, State) and action == action.lower()
    # every state but CLOSED is reachable from GREETING through the tables
    seen, todo = {State.GREETING}, [State.GREETING]
    while todo:
        cur = todo.pop()
        nxt = [n for (st, _), n in SEND_TRANSITIONS.items() if st is cur]
        nxt += [n for (st, _, _), n in ANSWER_TRANSITIONS.items() if st is cur]
        for n in nxt:
            if n not in seen:
                seen.add(n)
                todo.append(n)
    assert seen == set(State) - {State.CLOSED}


def test_pending_unanswered_at_close() -> None:
    s = greeted()
    aid = ask(s, "Status")
    assert s.is_pending(aid) and s.pending == (aid,) and s.pending_action(aid) == ("status", False)
    assert s.connection_closed() == Closed((aid,))


def test_prefix_with_line_end_refused() -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        ClientSession("a\r\nAction: Originate")


# -- correlation, event lists, command output ------------------------------------------------

def test_event_list_assembled_with_unsolicited_event_inside() -> None:
    s = logged_in()
    aid = ask(s, "QueueStatus")
    stream = (f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n\r\n"
              "Event: PeerStatus\r\nPeer: PJSIP/1000\r\n\r\n"
              f"Event: QueueParams\r\nActionID: {aid}\r\nQueue: 6500\r\n\r\n"
              f"Event: QueueMember\r\nActionID: {aid}\r\nName: Agent 1001\r\n\r\n"
              f"Event: QueueStatusComplete\r\nActionID: {aid}\r\nEventList: Complete\r\n"
              "ListItems: 2\r\n\r\n").encode()
    evs = [s.receive(m) for m in msgs(stream)]
    assert [type(e) for e in evs] == [ListItem, Unsolicited, ListItem, ListItem, Reply]
    assert s.pending_action(aid) is None
    reply = evs[-1]
    assert isinstance(reply, Reply)
    assert reply.request_id == aid and reply.action == "queuestatus"
    assert [e.name for e in reply.events] == ["QueueParams", "QueueMember"]
    assert reply.complete is not None and reply.complete["ListItems"] == "2"
    assert not s.deviations


def test_cancelled_list_ends_it() -> None:
    s = greeted()
    aid = ask(s, "Status")
    s.receive(one(f"Response: Success\nActionID: {aid}\nEventList: start"))
    assert s.pending_action(aid) == ("status", True)
    r = s.receive(one(f"Event: StatusComplete\nActionID: {aid}\nEventList: Cancelled"))
    assert isinstance(r, Reply) and r.events == []


def test_follows_output_and_out_of_order_replies() -> None:
    s = greeted()
    a, b = ask(s, "Ping"), ask(s, "Command")
    out = msgs(f"Response: Follows\r\nPrivilege: Command\r\nActionID: {b}\r\n"
               "0 active channels\n--END COMMAND--\r\n\r\n"
               f"Response: Success\r\nActionID: {a}\r\nPing: Pong\r\n\r\n".encode())
    first, second = (s.receive(m) for m in out)
    assert isinstance(first, Reply) and first.request_id == b and first.status == "Follows"
    assert first.text == "0 active channels\n"
    assert isinstance(second, Reply) and second.request_id == a and second["Ping"] == "Pong"


def test_raw_queues_answers_the_oldest_pending_queues() -> None:
    s = greeted()
    q1, ping, q2 = ask(s, "Queues"), ask(s, "Ping"), ask(s, "Queues")
    raw = msgs(b"6500 has 0 calls (max unlimited)\r\n   No Callers\r\n\r\n\r\n")
    assert raw[0].kind is MessageKind.RAW
    r = s.receive(raw[0])
    assert isinstance(r, Reply) and r.request_id == q1 and r.ok and r.status is None
    assert r.action_id is None  # a RAW answer carries no ActionID
    # UCM: Queues answered as an event list with headers, so no RAW block is its answer
    s.receive(one(f"Response: Success\nActionID: {q2}\nEventList: start"))
    stray = s.receive(raw[0])
    assert isinstance(stray, Stray) and stray.deviation is not None
    assert stray.deviation.rule is DeviationRule.UNEXPECTED_RAW
    assert s.is_pending(ping)


# -- deviations are recorded, and the message still comes out --------------------------------

def test_response_for_an_unknown_action_id() -> None:
    s = greeted()
    ev = s.receive(one("Response: Success\nActionID: nobody-asked\nPing: Pong"))
    assert isinstance(ev, Stray) and ev.message["Ping"] == "Pong"
    assert ev.deviation is not None and ev.deviation.rule is DeviationRule.UNKNOWN_ACTION_ID
    assert "nobody-asked" in str(ev.deviation)
    assert s.unmatched_responses == 1 and s.deviation_count == 1


def test_second_response_for_one_action_id() -> None:
    s = greeted()
    aid = ask(s, "Ping")
    assert isinstance(s.receive(one(f"Response: Success\nActionID: {aid}")), Reply)
    ev = s.receive(one(f"Response: Success\nActionID: {aid}"))
    assert isinstance(ev, Stray) and ev.deviation is not None
    assert ev.deviation.rule is DeviationRule.DUPLICATE_RESPONSE
    lst = ask(s, "Status")
    s.receive(one(f"Response: Success\nActionID: {lst}\nEventList: start"))
    ev = s.receive(one(f"Response: Error\nActionID: {lst}"))
    assert isinstance(ev, Stray) and ev.deviation is not None
    assert ev.deviation.rule is DeviationRule.DUPLICATE_RESPONSE
    assert s.is_pending(lst)


def test_missing_action_id_is_a_deviation_unless_raw_bytes_went_out() -> None:
    s = greeted()
    ask(s, "Ping")
    ev = s.receive(one("Response: Success\nPing: Pong"))
    assert isinstance(ev, Stray) and ev.deviation is not None
    assert ev.deviation.rule is DeviationRule.MISSING_ACTION_ID
    s.send_raw()  # e.g. a framing check wrote "Action: Ping" without an ActionID
    ev = s.receive(one("Response: Success\nPing: Pong"))
    assert isinstance(ev, Stray) and ev.deviation is None
    ev = s.receive(one("Response: Success\nActionID: sentinel-1"))
    assert isinstance(ev, Stray) and ev.deviation is None
    assert s.unmatched_responses == 3 and s.deviation_count == 1


def test_event_before_login_and_odd_messages() -> None:
    s = greeted()
    ev = s.receive(one("Event: Newchannel\nChannel: PJSIP/1000-1"))
    assert isinstance(ev, Unsolicited)
    assert [d.rule for d in s.deviations] == [DeviationRule.EVENT_BEFORE_LOGIN]
    ev = s.receive(one("Action: Ping"))  # a server sending an action
    assert isinstance(ev, Stray) and ev.deviation is not None
    assert ev.deviation.rule is DeviationRule.UNEXPECTED_MESSAGE


def test_no_banner_and_reused_action_id_recorded() -> None:
    s = ClientSession()
    s.receive_banner(None)
    assert st(s) is State.CONNECTED
    s.send_action("Ping", "same")
    s.send_action("Ping", "same")
    assert [d.rule for d in s.deviations] == [DeviationRule.NO_BANNER,
                                              DeviationRule.REUSED_ACTION_ID]


def test_deviations_are_bounded() -> None:
    s = greeted()
    stray = one("Response: Success\nActionID: nobody")
    for _ in range(MAX_DEVIATIONS + 50):
        s.receive(stray)
    assert len(s.deviations) == MAX_DEVIATIONS and s.deviation_count == MAX_DEVIATIONS + 50


def test_endless_event_list_is_capped_and_counted() -> None:
    s = ClientSession("t-", max_list_items=3, max_list_bytes=10**9)
    s.receive_banner(BANNER)
    aid = ask(s, "Status")
    s.receive(one(f"Response: Success\nActionID: {aid}\nEventList: start"))
    item = one(f"Event: Status\nActionID: {aid}\nChannel: PJSIP/1000-1")
    for _ in range(10):
        assert isinstance(s.receive(item), ListItem)
    r = s.receive(one(f"Event: StatusComplete\nActionID: {aid}\nEventList: Complete"))
    assert isinstance(r, Reply) and len(r.events) == 3 and r.dropped == 7
    assert s.dropped_list_items == 7
    assert [d.rule for d in s.deviations] == [DeviationRule.LIST_TOO_LONG]  # once per list
    b = ClientSession("b-", max_list_bytes=3 * (400 + 3 * HEADER_COST) + 10)
    b.receive_banner(BANNER)
    aid = ask(b, "Status")
    b.receive(one(f"Response: Success\nActionID: {aid}\nEventList: start"))
    item = one(f"Event: Status\nActionID: {aid}\nChannel: PJSIP/1000-1")
    for _ in range(5):
        b.receive(item, 400)  # 400 wire bytes + 3 headers each: three fit
    assert b.dropped_list_items == 2


# -- the first line and the unclaimed-message queue ---------------------------------------------

def test_first_line_banner_split_across_reads() -> None:
    first = FirstLine()
    assert first.feed(b"Asterisk Call") is None and not first.done
    assert first.feed(b" Manager/2.7.0\r\nResponse: Success\r\n") == (
        BANNER, b"Response: Success\r\n")
    assert first.done and first.close() is None


@pytest.mark.parametrize(("data", "closed"), [
    (b"Asterisk Call Manager/2.7.0\nAction: x\r\n", False),  # bare LF: not the banner
    (b"SSH-2.0-OpenSSH_9.6\r\n", False),
    (b"x" * (MAX_BANNER + 1), False),  # no line end in sight
    (b"Asterisk Call Man", True),  # the peer closed mid-line
])
def test_first_line_that_is_not_a_banner_is_handed_on_whole(data: bytes, closed: bool) -> None:
    first = FirstLine()
    if closed:
        assert first.feed(data) is None and first.close() == data
    else:
        assert first.feed(data) == (None, data)
    assert first.done


def test_event_search_resumes_after_the_queue_dropped_its_oldest() -> None:
    queue = MessageQueue(max_count=3, max_bytes=10**6)
    search = EventSearch(queue, lambda m: m.name == "Hangup")
    assert not search()
    for i in range(3):
        queue.append(one(f"Event: Newchannel\nUniqueid: {i}"), 10)
    assert not search()
    queue.append(one("Event: Newstate"), 10)  # the oldest goes
    queue.append(one("Event: Hangup"), 10)  # and the next: the search must still see this
    assert search() and search.found is not None and search.found.name == "Hangup"
    assert [m.name for m in queue.msgs] == ["Newchannel", "Newstate"] and queue.dropped == 2
    assert queue.cap_note is not None and "2 dropped" in queue.cap_note


@pytest.mark.parametrize("module", [session_mod, events_mod])
def test_session_modules_do_no_io(module: ModuleType) -> None:
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
             for a in n.names}
    names |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom)}
    assert not names & {"socket", "ssl", "asyncio", "time", "select", "selectors", "scapy"}


def test_event_classes_are_the_same_objects_from_both_modules() -> None:
    """The split kept every name where callers import it, as the same object."""
    moved = ("DeviationRule", "Deviation", "Banner", "Reply", "ListItem", "Unsolicited",
             "Stray", "Closed", "SessionEvent", "MessageQueue")
    for name in moved:
        assert name in events_mod.__all__, name
        assert name in session_mod.__all__, name
        assert getattr(session_mod, name) is getattr(events_mod, name), name


# -- recorded real Asterisk traffic, byte by byte ----------------------------------------------

def _replay(conn: _conformance.Connection, step: int | None) -> tuple[
        ClientSession, list[SessionEvent]]:
    s = ClientSession("x-")
    parser = Parser()
    requests = RequestParser()
    events: list[SessionEvent] = []
    for frame in conn.frames:
        if frame.direction == ">>>":
            for req in requests.feed(frame.data):
                aid = req.message.get("ActionID")
                if aid:
                    s.send_action(req.message.get("Action") or "", aid)
                else:
                    s.send_raw()
        elif frame.direction == "<<<":
            data = frame.data
            size = step or len(data) or 1
            for i in range(0, len(data), size):
                for msg in parser.feed(data[i:i + size]):
                    events.append(s.receive(msg))
                if s.state is State.GREETING and parser.banner is not None:
                    events.append(s.receive_banner(parser.banner))
    events.append(s.connection_closed())
    return s, events


def _shape(events: list[SessionEvent]) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for e in events:
        if isinstance(e, Reply):
            out.append(("reply", (e.request_id, e.response.items, e.response.text,
                                  [m.items for m in e.events],
                                  e.complete.items if e.complete else None)))
        elif isinstance(e, (Unsolicited, Stray, ListItem)):
            out.append((type(e).__name__, e.message.items))
        else:
            out.append((type(e).__name__, e))
    return out


CONNECTIONS = [
    pytest.param(conn, id=f"{path.parent.name}/{path.stem}/{name}")
    for version in ("asterisk-13", "asterisk-22")
    for path in _conformance.recordings(version)
    for name, conn in _conformance.load(path).items()
    if any(f.direction == "<<<" for f in conn.frames)
]


@pytest.mark.parametrize("conn", CONNECTIONS)
def test_real_asterisk_traffic_byte_by_byte(conn: _conformance.Connection) -> None:
    s, events = _replay(conn, 1)
    whole_session, whole = _replay(conn, None)
    assert _shape(events) == _shape(whole)  # the chunking changes nothing
    assert list(s.deviations) == [], "real Asterisk must show no session deviation"
    assert s.pending == ()  # every action sent with an ActionID got its whole answer
    assert s.banner is not None and s.banner.startswith("Asterisk Call Manager/")
    sent = [r.message["ActionID"] for r in RequestParser().feed(conn.sent)
            if r.message.get("ActionID")]
    replied = [e.request_id for e in events if isinstance(e, Reply)]
    assert sorted(replied) == sorted(sent)
    for e in events:
        if isinstance(e, Reply) and e.response.kind is MessageKind.RESPONSE:
            assert e.response.action_id == e.request_id
        if isinstance(e, Reply) and e.response.get("EventList") == "start":
            assert e.complete is not None


def test_replays_cover_lists_logins_and_queues() -> None:
    """The recordings exercise what the session is for (else the replay proves little)."""
    seen: set[str] = set()
    for param in CONNECTIONS:
        conn = param.values[0]
        assert isinstance(conn, _conformance.Connection)
        s, events = _replay(conn, None)
        for e in events:
            if isinstance(e, Reply):
                if e.complete is not None and e.events:
                    seen.add("list")
                if e.response.kind is MessageKind.RAW:
                    seen.add("raw-queues")
                if e.action == "login" and e.ok:
                    seen.add("login")
                if e.action == "challenge":
                    seen.add("challenge")
            if isinstance(e, Unsolicited):
                seen.add("event")
        if s.state is State.CLOSED:
            seen.add("closed")
    assert seen == {"list", "raw-queues", "login", "challenge", "event", "closed"}
