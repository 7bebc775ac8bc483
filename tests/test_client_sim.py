"""AmiClient end to end against amicheck's own simulator (loopback, TCP and TLS)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from amicheck.client import AmiClient, LoginRefused
from amicheck.protocol import Message

pytest.importorskip("amicheck.sim.server")

from amicheck.sim import Simulator  # noqa: E402


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    from amicheck.profile import default_profile

    with Simulator(default_profile(), fail_delay=0.05) as s:
        yield s
        s.check_errors()


def _user(sim: Simulator, priv: str = "all") -> tuple[str, str]:
    user = next(u for u in sim.profile.users if priv in u.privileges)
    assert user.secret is not None
    return user.username, user.secret


@pytest.mark.parametrize("md5", [False, True])
def test_login_ping_logoff(sim: Simulator, md5: bool) -> None:
    name, secret = _user(sim)
    with AmiClient.connect(sim.host, sim.port) as c:
        assert c.banner == sim.profile.settings.banner
        assert c.login(name, secret, md5=md5).message == "Authentication accepted"
        assert c.ping().get("Ping") == "Pong"
        assert c.logoff() is not None
        assert c.wait_closed(2)
        assert secret.encode() not in c.transcript.data()


def test_event_lists_command_and_events(sim: Simulator) -> None:
    name, secret = _user(sim)
    with AmiClient.connect(sim.host, sim.port) as c:
        c.login(name, secret)
        r = c.request("QueueStatus")
        assert r.ok and r.events and r.complete is not None
        assert r.complete.get("ListItems") == str(len(r.events))
        q = c.request("Queues")
        assert q.ok and q.complete is not None
        cmd = c.request("Command", Command="core show channels")
        assert cmd.status == "Follows" and cmd.text is not None
        ids = [c.send("Ping") for _ in range(50)]
        assert all(c.wait_response(i).ok for i in ids)
        orig = c.request(Message.action("Originate", Channel="Local/1000@from-internal",
                                        Context="from-internal", Exten="1000", Priority="1",
                                        Async="true"))
        assert orig.ok
        ev = c.wait_event(lambda m: m.is_event("OriginateResponse"), timeout=10)
        assert ev.get("ActionID") == orig.action_id


def test_failed_login_refused_and_closed(sim: Simulator) -> None:
    name, _ = _user(sim)
    with AmiClient.connect(sim.host, sim.port) as c:
        with pytest.raises(LoginRefused, match="Authentication failed"):
            c.login(name, "Wrong-passw0rd")
        assert c.wait_closed(3)
        assert b"Wrong-passw0rd" not in c.transcript.data()


def test_acl_from_another_host(sim: Simulator) -> None:
    name, secret = _user(sim)
    with AmiClient.connect(sim.host, sim.port,
                           source_address="127.0.0.2") as c:
        with pytest.raises(LoginRefused):
            c.login(name, secret)


def test_tls_port(sim: Simulator) -> None:
    if sim.tls_port is None:
        pytest.skip("the default profile has TLS off")
    name, secret = _user(sim)
    with AmiClient.connect(sim.host, sim.tls_port, tls=True) as c:
        assert c.stream.is_tls
        c.login(name, secret)
        assert c.ping().ok
