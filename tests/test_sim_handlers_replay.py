"""End to end: the action handlers behind the real simulator, over loopback sockets.

Replays the client bytes of the Asterisk 13 recordings 06-listcommands, 12-queues and
13-originate-events and holds the answers against the recorded server bytes, masking what
differs by nature (Uniqueid/Linkedid, channel-name counters, timestamps). The UCM's
``Queues`` deliberately differs from 13.x's raw CLI text: it is checked against the guide's
event-list shape instead. Waits are bounded; nothing waits for the recordings' 5 s pauses.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from _conformance import CONFORMANCE_DIR, Connection, load
from test_sim_core_kit import Conn, make_profile, sim_running

from amicheck.privileges import parse_listcommands
from amicheck.profile import User
from amicheck.protocol import Message, Parser
from amicheck.sim import Simulator

A13 = CONFORMANCE_DIR / "asterisk-13"
REC_SECRET = "test123"
REC_PRIV_SECRET = "Passw0rd!"


def _profile() -> object:
    users = [
        User("ucmamiuser1", REC_SECRET, ("127.0.0.1/32",), ("all",)),
        *(User(f"priv_{c}", REC_PRIV_SECRET, ("127.0.0.1/32",), (c,))
          for c in ("reporting", "call", "originate", "agent")),
        User("priv_user000", REC_PRIV_SECRET, ("127.0.0.1/32",), ("user",)),
    ]
    return make_profile(users, banner="Asterisk Call Manager/2.10.6")


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with sim_running(_profile()) as s:  # type: ignore[arg-type]
        yield s


@pytest.fixture()
def fresh(sim: Simulator) -> Simulator:
    sim.reset()
    return sim


def _steps(conn: Connection) -> list[tuple[bytes, bytes]]:
    """(client bytes, server bytes until the next client bytes) per ``>>>``."""
    steps: list[tuple[bytes, bytes]] = []
    for f in conn.frames:
        if f.direction == ">>>":
            steps.append((f.data, b""))
        elif f.direction == "<<<" and steps:
            steps[-1] = (steps[-1][0], steps[-1][1] + f.data)
    return steps


def _exchange(c: Conn, data: bytes, size: int, timeout: float = 3.0,
              *, whole_message: bool = False) -> bytes:
    """Send ``data``; read until ``size`` bytes came back (or, with ``whole_message``, until
    the first message is complete), then a short grace period for anything extra."""
    start = len(c.raw)
    c.send(data)
    deadline = time.monotonic() + timeout

    def done() -> bool:
        if whole_message:
            return b"\r\n\r\n" in c.raw[start:]
        return len(c.raw) - start >= size

    while not done() and c._recv(deadline):
        pass
    c._recv(time.monotonic() + 0.05)
    return bytes(c.raw[start:])


_MASKS = [
    (re.compile(rb"(Uniqueid|Linkedid): \d+\.\d+"), rb"\1: <uid>"),
    (re.compile(rb"-[0-9a-f]{8};([12])"), rb"-<seq>;\1"),
    (re.compile(rb"Timestamp: \d+\.\d{6}"), rb"Timestamp: <ts>"),
]


def _mask(data: bytes) -> bytes:
    for rx, repl in _MASKS:
        data = rx.sub(repl, data)
    return data


# --- 12-queues -------------------------------------------------------------------------------

def test_queues_recording_replay(fresh: Simulator) -> None:
    steps = _steps(load(A13 / "12-queues.txt")["c1"])
    with Conn.to(fresh) as c:
        assert c.banner() == "Asterisk Call Manager/2.10.6"
        for sent, expected in steps:
            if b"Action: Queues\r\n" in sent:
                got = _exchange(c, sent, 1)
                _check_ucm_queues(got, sent)
                continue
            got = _exchange(c, sent, len(expected))
            assert got == expected, sent


def _check_ucm_queues(got: bytes, sent: bytes) -> None:
    """The guide's form: Response + EventList, QueueStatus/QueueMemberStatus, QueuesComplete."""
    msgs = Parser(banner=False).feed(got)
    aid = re.search(rb"ActionID: (\S+)", sent)
    assert [m.name for m in msgs] == ["Success", "QueueStatus", "QueueMemberStatus",
                                      "QueueMemberStatus", "QueuesComplete"], got
    assert msgs[0].event_list == "start" and msgs[-1].event_list == "complete"
    assert msgs[-1]["ListItems"] == "3"
    for m in msgs:
        assert m.get("ActionID") == (aid[1].decode() if aid else None)
    assert [m["MemberName"] for m in msgs[2:4]] == ["Agent 1001", "Agent 1000"]


# --- 06-listcommands -------------------------------------------------------------------------

_BRIDGE = {"bridgedestroy", "bridgeinfo", "bridgekick", "bridgelist"}
_EXTRA = {"agentlogoff", "agents", "park", "parkedcalls", "parkinglots"}


@pytest.mark.parametrize("user", ["ucmamiuser1", "priv_reporting", "priv_user000"])
def test_listcommands_recording_replay(fresh: Simulator, user: str) -> None:
    steps = _steps(load(A13 / "06-listcommands.txt")[user])
    (login, login_reply), (lc, recorded) = steps
    with Conn.to(fresh) as c:
        c.banner()
        assert _exchange(c, login, len(login_reply)) == login_reply
        got = _exchange(c, lc, 0, whole_message=True)
        ours = Parser(banner=False).feed(got)
        rec = Parser(banner=False).feed(recorded)
    assert len(ours) == 1 and ours[0].items[:2] == rec[0].items[:2]
    mine, theirs = parse_listcommands(ours[0].items), parse_listcommands(rec[0].items)
    allowed_extra = _EXTRA if user == "ucmamiuser1" else set()
    assert set(mine) - set(theirs) == allowed_extra
    assert set(theirs) - set(mine) == (set() if user == "ucmamiuser1" else _BRIDGE)
    for name in set(mine) & set(theirs):
        if name in _BRIDGE:  # the UCM requires call; stock Asterisk nothing
            assert mine[name].privileges == {"call"}
            continue
        assert mine[name] == theirs[name], name
    # line form: "Name: Synopsis  (Priv: ...)" exactly as 13.x, in its order
    names_in_order = [k for k, _ in ours[0].items[2:]]
    assert names_in_order == sorted(names_in_order, key=str.lower)


# --- 13-originate-events ---------------------------------------------------------------------

def _orig_steps() -> dict[str, tuple[bytes, bytes]]:
    out = {}
    for sent, expected in _steps(load(A13 / "13-originate-events.txt")["c1"]):
        m = re.search(rb"ActionID: (\S+)", sent)
        if m:
            out[m[1].decode()] = (sent, expected)
    return out


def _logged_in(sim: Simulator) -> Conn:
    c = Conn.to(sim)
    c.banner()
    c.send(b"Action: Login\r\nUsername: ucmamiuser1\r\nSecret: test123\r\nActionID: lg\r\n\r\n")
    c.until(lambda m: m.name == "SuccessfulAuth")
    c.quiet(0.05)
    return c


def _collect(c: Conn, n: int, timeout: float = 3.0) -> list[Message]:
    msgs = c.read(n, timeout)
    return msgs + c.quiet(0.05)


def _call_events(msgs: list[Message], marker: str) -> list[Message]:
    return [m for m in msgs if marker in (m.get("Channel") or m.get("DestChannel")
                                          or m.get("LocalOneChannel") or "")
            or m.name in ("OriginateResponse", "QueueMemberStatus")
            or m.kind.value == "response"]


@pytest.mark.parametrize("aid", ["orig4", "orig5"])
def test_originate_errors_replay(fresh: Simulator, aid: str) -> None:
    sent, expected = _orig_steps()[aid]
    with _logged_in(fresh) as c:
        assert _exchange(c, sent, len(expected)) == expected


def test_originate_async_replay(fresh: Simulator) -> None:
    sent, expected = _orig_steps()["orig1"]
    recorded = Parser(banner=False).feed(expected)
    with _logged_in(fresh) as c:
        c.send(sent)
        got = _collect(c, len(recorded))
    assert got[0].items == recorded[0].items  # Originate successfully queued
    strip = [m for m in got if m.name != "QueueMemberStatus"]
    rec = [m for m in recorded if m.name != "QueueMemberStatus"]
    assert [m.name for m in strip] == [m.name for m in rec]
    for ours, theirs in zip(strip, rec, strict=True):
        assert _mask(bytes(ours)) == _mask(bytes(theirs)), theirs.name


@pytest.mark.parametrize("aid", ["orig6", "orig3"])
def test_originate_app_and_failure_replay(fresh: Simulator, aid: str) -> None:
    sent, expected = _orig_steps()[aid]
    marker = "Local/1000@from-internal-" if aid == "orig6" else "nonexistent-ctx"
    recorded = _call_events(Parser(banner=False).feed(expected), marker)
    if aid == "orig3":
        recorded = [m for m in recorded if m.name != "QueueMemberStatus"]
    with _logged_in(fresh) as c:
        c.send(sent)
        got = _collect(c, len(recorded))
    assert [m.name for m in got] == [m.name for m in recorded]
    for ours, theirs in zip(got, recorded, strict=True):
        assert _mask(bytes(ours)) == _mask(bytes(theirs)), theirs.name


def test_hangup_and_coreshowchannels_replay(fresh: Simulator) -> None:
    steps = _orig_steps()
    with _logged_in(fresh) as c:
        for aid in ("hg1", "csc"):
            sent, expected = steps[aid]
            assert _exchange(c, sent, len(expected)) == expected


def test_originate_events_respect_read_privileges(fresh: Simulator) -> None:
    """An agent-only reader sees QueueMemberStatus but no call events (``call`` class)."""
    sent, _ = _orig_steps()["orig1"]
    agent = Conn.to(fresh)
    agent.login("priv_agent", REC_PRIV_SECRET)
    agent.quiet(0.05)
    with _logged_in(fresh) as c, agent:
        c.send(sent)
        _collect(c, 10)
        seen = agent.quiet(0.3)
    assert seen and {m.name for m in seen} == {"QueueMemberStatus"}


def _per_call(msgs: list[Message]) -> list[list[str]]:
    """Event names grouped per call (by the channel-name counter), in order of first sight."""
    calls: dict[str, list[str]] = {}
    for m in msgs:
        if m.kind.value != "event" or m.name == "QueueMemberStatus":
            continue
        chan = " ".join(m.get(k) or "" for k in ("Channel", "DestChannel", "LocalOneChannel"))
        seq = re.search(r"-([0-9a-f]{8});", chan)
        key = seq[1] if seq else chan  # a failed OriginateResponse names the dial string
        calls.setdefault(key, []).append(m.name or "")
    return list(calls.values())


@pytest.mark.slow
def test_originate_recording_in_real_time(fresh: Simulator) -> None:
    """The whole 13-originate-events session at the recorded pace (about 20 s)."""
    conn = load(A13 / "13-originate-events.txt")["c1"]
    sends = [f for f in conn.frames if f.direction == ">>>"][1:]  # login done by _logged_in
    recorded = Parser().feed(conn.received)
    with _logged_in(fresh) as c:
        t0 = time.monotonic() - sends[0].t + 0.01
        for f in sends:
            c.quiet(max(0.0, t0 + f.t - time.monotonic()))
            c.send(f.data)
        c.quiet(3.0)
        got = Parser().feed(bytes(c.raw))
    rec_calls = [x for x in _per_call(recorded) if x != ["SuccessfulAuth"]]
    our_calls = [x for x in _per_call(got) if x != ["SuccessfulAuth"]]
    assert our_calls == rec_calls
    replies = [m for m in got if m.kind.value == "response"][1:]
    assert [m.get("Message") for m in replies] == \
        [m.get("Message") for m in recorded if m.kind.value == "response"][1:]
