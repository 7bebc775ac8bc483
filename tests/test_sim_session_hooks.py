"""Filter and WaitEvent over real loopback sessions: per-session regex filters and a wait
that holds one session without holding the others (manager.c action_filter/waitevent)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from test_sim_core_kit import Conn, make_profile, sim_running

from amicheck.protocol import Message
from amicheck.sim import Simulator
from amicheck.sim.filters import EventFilters, compile_posix


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with sim_running() as s:
        yield s


def _user_events(c: Conn, t: float = 0.3) -> list[str]:
    return [m.get("UserEvent") or "" for m in c.quiet(t) if m.name == "UserEvent"]


def _answer(c: Conn, aid: str) -> Message:
    return c.until(lambda m: m.get("ActionID") == aid and m.kind.value == "response")


def test_filters_are_per_session_include_then_exclude(sim: Simulator) -> None:
    with Conn.to(sim) as a, Conn.to(sim) as b:
        a.login()
        b.login()
        a.action("Filter", Operation="Add", Filter="UserEvent: keep", ActionID="f1")
        assert _answer(a, "f1").get("Message") == "Success"
        a.action("Filter", Operation="Add", Filter="!UserEvent: keep2", ActionID="f2")
        assert _answer(a, "f2").get("Response") == "Success"
        a.quiet(0.1)
        b.quiet(0.1)
        for name in ("keep", "drop", "keep2"):
            b.action("UserEvent", UserEvent=name)
        assert _user_events(a) == ["keep"]  # include must match, exclude drops keep2
        assert _user_events(b) == ["keep", "drop", "keep2"]  # b has no filters


def test_filter_errors(sim: Simulator) -> None:
    with Conn.to(sim) as c:
        c.login()
        c.action("Filter", Operation="Add", Filter="(unclosed", ActionID="x")
        assert _answer(c, "x").get("Message") == (
            "Filter did not compile.  Check the syntax of the filter given."
        )
        c.action("Filter", Operation="Del", Filter="x", ActionID="y")
        assert _answer(c, "y").get("Message") == "Unknown operation"


def test_filter_regex_is_posix_over_the_whole_text() -> None:
    f = EventFilters()
    assert f.add("^Event: UserEvent.*UserEvent: [[:digit:]]+")
    assert f.passes(b"Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: 42\r\n\r\n")
    assert not f.passes(b"Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: x\r\n\r\n")
    assert compile_posix("a{2") is None or compile_posix("(") is None


def test_waitevent_blocks_until_an_event_without_blocking_others(sim: Simulator) -> None:
    with Conn.to(sim) as w, Conn.to(sim) as other:
        w.login()
        other.login()
        w.quiet(0.1)
        start = time.monotonic()
        # one write: the Ping is pipelined behind the wait and runs after it
        w.send(b"Action: WaitEvent\r\nTimeout: 5\r\nActionID: w\r\n\r\n"
               b"Action: Ping\r\nActionID: p\r\n\r\n")
        assert w.quiet(0.4) == []
        other.action("Ping", ActionID="o")  # the other session is answered meanwhile
        assert _answer(other, "o").get("Response") == "Success"
        other.action("UserEvent", UserEvent="wake")
        msgs = w.read(4, timeout=2)
        assert [(m.name or m.get("Response")) for m in msgs] == [
            "Success", "UserEvent", "WaitEventComplete", "Success"]
        assert msgs[0].get("Message") == "Waiting for Event completed."
        assert msgs[3].get("Ping") == "Pong"
        assert time.monotonic() - start < 3


def test_waitevent_timeout_and_client_write(sim: Simulator) -> None:
    with Conn.to(sim) as w:
        w.login(events="off")
        start = time.monotonic()
        w.action("WaitEvent", Timeout="1", ActionID="t")
        assert _answer(w, "t").get("Message") == "Waiting for Event completed."
        assert w.one().name == "WaitEventComplete"
        assert 0.9 < time.monotonic() - start < 2.5
        w.action("WaitEvent", ActionID="forever")  # no Timeout: until something happens
        assert w.quiet(0.3) == []
        w.action("Ping", ActionID="p")  # a client write ends the wait
        got = [m.get("ActionID") for m in w.read(3, timeout=2)]
        assert got == ["forever", "forever", "p"]


@pytest.mark.parametrize(("banner", "fields"), [
    ("Asterisk Call Manager/2.10.6", ["Event", "Privilege", "Status"]),
    ("Asterisk Call Manager/11.0.0", ["Event", "Privilege", "Uptime", "LastReload", "Status"]),
])
def test_fully_booted_per_dialect(banner: str, fields: list[str]) -> None:
    with sim_running(make_profile(banner=banner)) as s, Conn.to(s) as c:
        c.login()
        booted = c.until(lambda m: m.name == "FullyBooted")
        assert [k for k, _ in booted] == fields
        if "Uptime" in fields:
            assert booted["Uptime"].isdigit() and booted["LastReload"].isdigit()
