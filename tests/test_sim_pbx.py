"""Unit tests of the simulator's PBX model: determinism, reset, device state, call teardown."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sim_handlers_kit import Harness, names

from amicheck.sim.handlers import SYNOPSIS
from amicheck.sim.pbx import ENDPOINTS, OriginateSpec, Pbx

ORIG = {"Channel": "Local/1000@from-internal", "Context": "from-internal", "Exten": "2000",
        "Priority": "1", "Async": "true", "ActionID": "o"}


def _script(seed: int) -> list[bytes]:
    h = Harness(seed=seed)
    h.act("Originate", **ORIG)
    h.act("Originate", **{**ORIG, "Channel": "PJSIP/1001"})
    h.run(30.0)
    return [bytes(m) for m in h.events]


def test_same_seed_same_events_different_seed_different_names() -> None:
    a, b = _script(7), _script(7)
    assert a == b and len(a) > 30
    c = _script(8)
    assert [re.sub(rb"\d+\.\d+|-[0-9a-f]{8}", b"", x) for x in a] == \
        [re.sub(rb"\d+\.\d+|-[0-9a-f]{8}", b"", x) for x in c]
    assert a != c


def test_channel_names_and_ids_look_like_asterisk() -> None:
    h = Harness()
    h.act("Originate", **ORIG)
    h.act("Originate", **ORIG)
    h.run(0.1)
    chans = list(h.pbx.channels.values())
    seqs = {re.search(r"-([0-9a-f]{8});", c.name)[1] for c in chans}  # type: ignore[index]
    assert len(seqs) == 2 and all(re.fullmatch(r"[0-9a-f]{8}", s) for s in seqs)
    ids = [c.uniqueid for c in chans]
    assert all(re.fullmatch(r"1795693512\.\d+", u) for u in ids)
    assert len(set(ids)) == 4
    counters = sorted(int(u.split(".")[1]) for u in ids)
    assert counters == list(range(counters[0], counters[0] + 4))


def test_calls_end_and_state_returns_to_idle() -> None:
    h = Harness()
    h.act("Originate", **ORIG)
    h.act("Originate", **{**ORIG, "Channel": "PJSIP/1000", "Exten": "1001"})
    h.act("Originate", **{**ORIG, "Channel": "Local/1000@from-internal", "Application": "Echo"})
    h.run(0.5)
    assert h.pbx.device_state("Local/1000@from-internal") == 2
    h.run(2.0)
    assert h.pbx.device_state("PJSIP/1000") == 2
    assert h.pbx.extension_state("from-internal", "1000") == (1, "PJSIP/1000")
    h.run(60.0)
    assert h.pbx.channels == {}
    assert h.pbx.device_state("Local/1000@from-internal") == 1
    assert h.pbx.extension_state("ext-local", "1000") == (0, "PJSIP/1000")
    assert h.loop.pending == 0
    hangups = [m for m in h.events if m.name == "Hangup"]
    assert len(hangups) == 5  # two Local pairs and one PJSIP channel


def test_reset_forgets_state_and_stale_timers() -> None:
    h = Harness()
    h.act("Originate", **ORIG)
    h.act("DBPut", Family="x", Key="y", Val="1")
    h.act("QueueAdd", Queue="6500", Interface="PJSIP/1003")
    h.run(0.1)
    assert h.pbx.channels
    h.pbx.reset()
    h.events.clear()
    h.run(60.0)
    assert h.events == [] and h.pbx.channels == {}
    assert ("x", "y") not in h.pbx.db
    assert [m.interface for m in h.pbx.queues["6500"].members] == [
        "Local/1001@from-internal", "Local/1000@from-internal"]


def test_endpoints_and_hints() -> None:
    h = Harness()
    for ext, how in ENDPOINTS.items():
        state, hint = h.pbx.extension_state("from-internal", ext)
        assert hint == f"PJSIP/{ext}"
        assert state == (4 if how == "unregistered" else 0)
    assert h.pbx.find_exten("from-internal", "1001") is not None
    assert h.pbx.find_exten("from-trunk", "1001") is None
    assert h.pbx.device_state("SIP/1000") == 4


def test_plan_originate() -> None:
    pbx = Pbx(0, lambda d, f: None, lambda m, c: None, clock=lambda: 0.0)
    assert pbx.plan_originate(OriginateSpec("Local", "1000@from-internal")).ok
    assert not pbx.plan_originate(OriginateSpec("Local", "1000@nowhere")).ok
    assert pbx.plan_originate(OriginateSpec("PJSIP", "1000")).delay == 1.0
    assert not pbx.plan_originate(OriginateSpec("PJSIP", "1000", timeout_ms=500)).ok
    assert not pbx.plan_originate(OriginateSpec("PJSIP", "1005")).ok
    assert not pbx.plan_originate(OriginateSpec("IAX2", "x")).ok


def test_event_classes() -> None:
    h = Harness()
    h.act("Originate", **ORIG)
    h.run(1.0)
    by_name = dict(zip(names(h.events), h.classes, strict=True))
    assert by_name["Newchannel"] == {"call"}
    assert by_name["QueueMemberStatus"] == {"agent"}
    assert all(m.items[1] == ("Privilege", f"{next(iter(c))},all")
               for m, c in zip(h.events, h.classes, strict=True))


_ACTIONS = sorted(n for n in SYNOPSIS if n.lower() not in ("login", "logoff", "challenge",
                                                           "events"))
_HEADERS = ["Channel", "Channel1", "Channel2", "Exten", "Context", "Priority", "Application",
            "Data", "Async", "Timeout", "Variable", "Value", "Queue", "Interface", "Paused",
            "Family", "Key", "Val", "Filename", "Command", "Mailbox", "BridgeUniqueid",
            "CallerID", "Cause", "Penalty", "Module", "LoadType", "UserEvent", "Message"]
_VALUES = st.one_of(
    st.sampled_from(["", "1", "-1", "true", "Local/1000@from-internal", "PJSIP/1001",
                     "from-internal", "2000", "6500", "../../etc/passwd", "SHELL(id)",
                     "/.*/", "core show channels", "A=1,B=2", "/[", "99999999999999999999"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_ACTIONS),
                          st.dictionaries(st.sampled_from(_HEADERS), _VALUES, max_size=5),
                          st.sampled_from([("all",), ("call",), ("originate",), ("agent",)]),
                          st.floats(0, 10)),
                min_size=1, max_size=12))
def test_random_action_sequences_never_crash(
        script: list[tuple[str, dict[str, str], tuple[str, ...], float]]) -> None:
    h = Harness()
    for action, headers, privs, wait in script:
        lines = [f"Action: {action}", "ActionID: f"] + [f"{k}: {v}" for k, v in headers.items()]
        out = h.act(("\r\n".join(lines) + "\r\n\r\n").encode(), privileges=privs)
        assert out and out[0]["ActionID"] == "f"
        for m in out:
            bytes(m)
        h.run(wait)
    h.run(120.0)
    for m in h.events:
        bytes(m)
    assert not [c for c in h.pbx.channels.values() if c.context != "parkedcalls"] or \
        h.loop.pending


def test_redirect_leaves_the_old_dialplan_thread() -> None:
    h = Harness()
    h.act("Originate", **ORIG)
    h.run(0.1)
    one = next(n for n in h.pbx.channels if n.endswith(";1"))
    h.act("Redirect", Channel=one, Context="from-internal", Exten="1001", Priority="1")
    h.run(6.0)  # 2000's Wait(5) + Hangup would have ended the call by now
    ch = h.pbx.channels[one]
    assert (ch.exten, ch.application, ch.appdata) == ("1001", "Wait", "20")
    h.act("Park", Channel=one)
    h.run(10.0)  # parked: no dialplan runs on it any more
    assert one in h.pbx.channels and h.pbx.parked == {"701": one}
    h.run(10.0)  # the ;2 half finishes its Wait(20) and takes the pair down
    assert h.pbx.channels == {} and h.pbx.parked == {}
