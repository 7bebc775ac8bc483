"""Hostile input on many sessions at once: the server survives, others are undisturbed."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sim_core_kit import SECRET, Conn, make_profile, sim_running

from amicheck.sim import Simulator

FRAGMENTS = [
    b"Action: Ping\r\n", b"ActionID: f\r\n", b"\r\n", b"\n", b"\r", b"\0", b":", b" ",
    b"x" * 1100, b"Variable: " + b"v" * 1013, b"X: y\r\n" * 130, b"action: ping\n",
    b"Action: Login\r\nUsername: ucmamiuser1\r\nSecret: " + SECRET.encode() + b"\r\n",
    b"Action: Login\r\nUsername: nosuchuser9\r\nSecret: x\r\n",
    b"Action: Challenge\r\nAuthType: MD5\r\n", b"Action: Events\r\nEventMask: on\r\n",
    b"Action: Status\r\n", b"Action: ListCommands\r\n", b"Action: CoreStatus\r\n",
    b"Action: UserEvent\r\nUserEvent: fuzz\r\n", b"Action: Logoff\r\n", b"\xff\xfe\x80",
]

stream = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=200)),
                  max_size=30).map(b"".join)


@pytest.fixture(scope="module")
def fuzz_sim() -> Iterator[tuple[Simulator, Conn]]:
    with sim_running(make_profile(auth_limit=500)) as sim:
        control = Conn.to(sim)
        control.login(events="off")
        yield sim, control
        control.close()


def _blast(sim: Simulator, payloads: list[bytes]) -> None:
    socks = []
    for data in payloads:
        s = socket.create_connection((sim.host, sim.port), timeout=5)
        socks.append(s)
        try:
            s.sendall(data)
        except OSError:
            pass          # the server may already have closed it (Logoff, NUL...)
    for s in socks:
        s.close()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(payloads=st.lists(stream, min_size=1, max_size=12))
def test_arbitrary_bytes_on_many_sessions(fuzz_sim: tuple[Simulator, Conn],
                                          payloads: list[bytes]) -> None:
    sim, control = fuzz_sim
    _blast(sim, payloads)
    control.action("Ping", ActionID="control")
    reply = control.one()
    assert reply["ActionID"] == "control" and reply["Ping"] == "Pong"
    # per-session input stays within the RequestParser's 1024-byte line buffer
    assert sim.call(lambda core: max(s.parser.buffered for s in core.sessions)) <= 1024
    sim.check_errors()


def test_many_concurrent_sessions_and_a_new_one_still_works(
        fuzz_sim: tuple[Simulator, Conn]) -> None:
    sim, control = fuzz_sim
    conns = [Conn.to(sim) for _ in range(60)]
    for i, c in enumerate(conns):
        c.banner()
        c.send(b"Action: Login\r\nUsername: ucmamiuser1\r\nSecret: " + SECRET.encode()
               + b"\r\nEvents: off\r\n\r\n" + b"Action: Ping\r\nActionID: %d\r\n\r\n" % i)
    for i, c in enumerate(conns):
        login, pong = c.read(2)
        assert login["Message"] == "Authentication accepted" and pong["ActionID"] == str(i)
        c.close()
    with Conn.to(sim) as c:
        assert c.banner()
    sim.check_errors()
