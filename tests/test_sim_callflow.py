"""Call flows across channels (amicheck.sim.callflow), no sockets: Dial into a bridge, the
bridge dissolving, a dialplan thread ending at a missing extension, 22's Local device state.

Expected sequences are what reference Asterisk 13.38.3 / 22.10.1 gave to the fidelity
scripts originate-dial-bridge, redirect-live and originate-local-wait (tests/fidelity.py).
"""

from __future__ import annotations

from test_sim_handlers_kit import BANNERS, Harness, names

from amicheck.protocol.message import Message

DIAL = {"Channel": "Local/1000@from-internal", "Application": "Dial",
        "Data": "Local/2000@from-internal", "Async": "true", "ChannelId": "b1",
        "OtherChannelId": "b2"}
WAIT = {"Channel": "Local/2000@from-internal", "Application": "Wait", "Data": "10",
        "Async": "true", "ChannelId": "r1", "OtherChannelId": "r2"}


def _harness(dialect: str = "13") -> Harness:
    return Harness(banner=BANNERS[dialect])


def _of(events: list[Message], *wanted: str) -> list[Message]:
    return [m for m in events if m.name in wanted]


def test_originate_dial_bridges_caller_and_callee() -> None:
    h = _harness()
    h.act("Originate", **DIAL)
    ev = h.run(1.0)
    dials = _of(ev, "DialBegin", "DialEnd")
    assert [(m.name, m.get("Channel"), m["DestChannel"][:24]) for m in dials] == [
        ("DialBegin", None, "Local/1000@from-internal"),
        ("DialEnd", None, "Local/1000@from-internal"),
        ("DialBegin", dials[0]["DestChannel"], "Local/2000@from-internal"),
        ("DialEnd", dials[0]["DestChannel"], "Local/2000@from-internal"),
    ]
    # app_dial: the callee has the caller's exten as caller id, its exten cleared on answer
    assert (dials[2]["DestCallerIDNum"], dials[2]["DestExten"]) == ("1000", "1000")
    assert (dials[3]["DestExten"], dials[3]["DialStatus"]) == ("", "ANSWER")
    assert dials[2]["DestLinkedid"] == "b1"
    bridge = _of(ev, "BridgeCreate", "BridgeEnter")
    callee = dials[2]["DestChannel"]
    assert [(m.name, m.get("Channel"), m["BridgeNumChannels"]) for m in bridge] == [
        ("BridgeCreate", None, "0"), ("BridgeEnter", callee, "1"),
        ("BridgeEnter", dials[0]["DestChannel"], "2"),
    ]
    assert bridge[0]["BridgeVideoSourceMode"] == "none"
    lst = h.act("BridgeList")
    assert names(lst[1:]) == ["BridgeListItem", "BridgeListComplete"]
    uid = lst[1]["BridgeUniqueid"]
    info = h.act("BridgeInfo", BridgeUniqueid=uid)
    assert [m.get("Channel") for m in info[1:3]] == [callee, dials[0]["DestChannel"]]
    status = h.act("Status", Channel="b1")[1]
    assert (status["BridgeID"], status["Application"], status["Data"]) == (
        uid, "Dial", "Local/2000@from-internal")
    assert _of(ev, "Hangup") == []


def test_hanging_up_the_caller_dissolves_the_dial_bridge() -> None:
    h = _harness()
    h.act("Originate", **DIAL)
    h.run(1.0)
    start = len(h.events)
    assert h.one("Hangup", Channel="b1")["Message"] == "Channel Hungup"
    h.run(0.5)
    ends = _of(h.events[start:], "BridgeLeave", "BridgeDestroy", "Hangup")
    # each channel's own order is Asterisk's (the harness compares per channel)
    assert [(m.name, (m.get("Channel") or "")[-2:], m.get("Cause"), m["BridgeNumChannels"]
             if m.name != "Hangup" else None) for m in ends] == [
        ("BridgeLeave", ";1", None, "1"), ("Hangup", ";1", "16", None),  # the caller
        ("BridgeLeave", ";1", None, "0"), ("BridgeDestroy", "", None, "0"),  # the callee
        ("Hangup", ";1", "16", None), ("Hangup", ";2", "16", None),
        ("Hangup", ";2", "16", None),  # the caller's dialplan half
    ]
    assert [m["Channel"][:24] for m in ends if m.name == "Hangup"] == [
        "Local/1000@from-internal", "Local/2000@from-internal", "Local/2000@from-internal",
        "Local/1000@from-internal"]
    assert h.pbx.channels == {} and h.pbx.bridges == {}


def test_the_dial_call_ends_when_the_callee_hangs_up() -> None:
    h = _harness()
    h.act("Originate", **DIAL)
    ev = h.run(10.0)  # 2000: Answer, Wait(5), Hangup
    assert len(_of(ev, "Hangup")) == 4 and len(_of(ev, "BridgeDestroy")) == 1
    assert h.pbx.channels == {} and h.pbx.bridges == {}


def test_the_bridge_action_bridge_does_not_dissolve() -> None:
    """Only a Dial's bridge hangs its parties up; the Bridge action's keeps the other."""
    h = _harness()
    h.act("Originate", **WAIT)
    h.act("Originate", **{**WAIT, "ChannelId": "s1", "OtherChannelId": "s2"})
    h.run(1.0)
    assert h.one("Bridge", Channel1="r1", Channel2="s1")["Message"] == "Channels have been bridged"
    h.act("Hangup", Channel="r1")
    h.run(0.5)
    assert "s1" in {c.uniqueid for c in h.pbx.channels.values()}


def _redirect_missing(dialect: str) -> list[Message]:
    h = _harness(dialect)
    h.act("Originate", **WAIT)
    h.run(1.0)
    h.act("Redirect", Channel="r2", Context="from-internal", Exten="1000", Priority="1")
    h.run(1.0)
    start = len(h.events)
    assert h.one("Redirect", Channel="r2", Context="from-internal", Exten="9999",
                 Priority="1")["Message"] == "Redirect successful"
    h.run(0.5)
    ev = _of(h.events[start:], "HangupRequest", "SoftHangupRequest", "Hangup")
    assert h.pbx.channels == {}
    return ev


def test_redirect_to_a_missing_extension_ends_the_pair_without_a_cause() -> None:
    for dialect, soft_exten in (("13", "9999"), ("22", "1000")):
        ev = _redirect_missing(dialect)
        got = [(m.name, m["Uniqueid"], m["Cause"], m["Exten"]) for m in ev]
        assert sorted(got, key=lambda t: t[1]) == [
            ("HangupRequest", "r1", "0", "2000"), ("Hangup", "r1", "0", "2000"),
            ("SoftHangupRequest", "r2", "16", soft_exten), ("Hangup", "r2", "0", "9999"),
        ], dialect


def test_22_publishes_local_device_state_and_newexten_as_dialplan() -> None:
    for dialect, states in (("13", []), ("22", ["INUSE", "INUSE"])):
        h = _harness(dialect)
        h.act("Originate", **WAIT)
        ev = h.run(1.0)
        dev = [(m["Device"], m["State"]) for m in _of(ev, "DeviceStateChange")]
        assert dev == [("Local/2000@from-internal", s) for s in states], dialect
        exten_classes = {c for m, c in zip(h.events, h.classes, strict=True)
                         if m.name == "Newexten"}
        assert exten_classes == {frozenset({"call" if dialect == "13" else "dialplan"})}
        start = len(h.events)
        h.act("Hangup", Channel="r1")
        h.run(0.5)
        after = [m["State"] for m in _of(h.events[start:], "DeviceStateChange")]
        assert after == ([] if dialect == "13" else ["NOT_INUSE", "NOT_INUSE"]), dialect


APP_QUEUE = {"Channel": "Local/2000@from-internal", "Application": "Queue", "Data": "6500",
             "Async": "true", "ChannelId": "aq1", "OtherChannelId": "aq2"}
_QUEUE_FLOW = ("QueueCallerJoin", "AgentCalled", "QueueCallerLeave", "AgentConnect",
               "AgentComplete", "BridgeEnter", "BridgeLeave", "BridgeDestroy")


def test_originate_application_queue_makes_the_channel_a_queue_caller() -> None:
    """Asterisk 13 and 22 (originate-app-queue): the originated ;1 half joins the queue,
    the member answers into a bridge; hanging the caller up ends both pairs with no
    AgentComplete (no HangupRequest reaches app_queue for either party)."""
    for dialect in ("13", "22"):
        h = _harness(dialect)
        h.act("QueuePause", Queue="6500", Interface="Local/1001@from-internal", Paused="true")
        h.act("Originate", **APP_QUEUE)
        ev = h.run(2.0)
        flow = _of(ev, *_QUEUE_FLOW)
        assert [m.name for m in flow] == ["QueueCallerJoin", "AgentCalled", "QueueCallerLeave",
                                          "AgentConnect", "BridgeEnter", "BridgeEnter"]
        join = flow[0]
        assert (join["Uniqueid"], join["Exten"], join["Queue"]) == ("aq1", "2000", "6500")
        begin = next(m for m in ev if m.name == "DialBegin" and m.get("Uniqueid") == "aq1")
        # the member's cached snapshot: its own extension, not yet the caller's
        assert (begin["DestExten"], begin["DialString"]) == (
            "1000", "Local/1000@from-internal")
        assert flow[1]["DestExten"] == "2000"
        newexten = [m for m in ev if m.name == "Newexten" and m["Application"] == "AppQueue"]
        assert len(newexten) == 2
        assert {m["Privilege"] for m in newexten} == {
            "call,all" if dialect == "13" else "dialplan,all"}
        assert h.act("Status", Channel="aq1")[1]["Application"] == "Queue"
        start = len(h.events)
        h.one("Hangup", Channel="aq1")
        h.run(1.0)
        ends = _of(h.events[start:], *_QUEUE_FLOW, "Hangup")
        assert [m.name for m in ends if m.name != "Hangup"] == [
            "BridgeLeave", "BridgeLeave", "BridgeDestroy"]
        assert sorted(m["Cause"] for m in ends if m.name == "Hangup") == ["16"] * 4
        assert h.pbx.channels == {} and h.pbx.bridges == {}
        member = h.pbx.queues["6500"].members[1]
        assert (member.interface, member.in_call) == ("Local/1000@from-internal", 0)


def test_originate_application_queue_unknown_queue_hangs_up() -> None:
    h = _harness()
    h.act("Originate", **{**APP_QUEUE, "Data": "nosuchqueue"})
    ev = h.run(1.0)
    assert _of(ev, "QueueCallerJoin") == []
    assert [m["Cause"] for m in _of(ev, "Hangup")] == ["0", "0"]  # the app returned at once
    assert h.pbx.channels == {}


def _vars(events: list[Message], channel: str | None = None) -> list[tuple[str, str]]:
    return [(m["Variable"], m["Value"]) for m in events
            if m.name == "VarSet" and (channel is None or m["Channel"] == channel)]


def test_dial_sets_its_variables_and_bridgepeer_as_app_dial_does() -> None:
    """dial_exec_full resets its results, the callee halves get DIALEDPEERNUMBER, the answer
    sets DIALSTATUS/DIALEDPEERNAME/DIALEDPEERNUMBER, the bridge each party's BRIDGEPEER."""
    h = _harness()
    h.act("Originate", **DIAL)
    ev = h.run(1.0)
    caller = next(c for c in h.pbx.channels.values() if c.uniqueid == "b1").name
    callee = _of(ev, "DialBegin")[1]["DestChannel"]
    assert _vars(ev, caller) == [
        ("DIALSTATUS", ""), ("DIALEDPEERNUMBER", ""), ("DIALEDPEERNAME", ""),
        ("ANSWEREDTIME", ""), ("ANSWEREDTIME_MS", ""), ("DIALEDTIME", ""),
        ("DIALEDTIME_MS", ""), ("RINGTIME", ""), ("RINGTIME_MS", ""), ("PROGRESSTIME", ""),
        ("PROGRESSTIME_MS", ""),
        ("DIALSTATUS", "ANSWER"), ("DIALEDPEERNAME", callee),
        ("DIALEDPEERNUMBER", "2000@from-internal"), ("BRIDGEPEER", callee),
    ]
    assert _vars(ev, callee) == [("DIALEDPEERNUMBER", "2000@from-internal"),
                                 ("BRIDGEPEER", caller)]
    assert _vars(ev, callee[:-1] + "2") == [("DIALEDPEERNUMBER", "2000@from-internal")]
    # the callee's own events around the call, in Asterisk's order
    mine = [m.name for m in ev if m.get("Channel") == callee and m.name != "VarSet"]
    assert mine == ["Newchannel", "Newexten", "NewCallerid", "Newstate", "Newexten",
                    "BridgeEnter"]
    assert h.one("Getvar", Channel="b1", Variable="BRIDGEPEER")["Value"] == callee
    h.run(2.0)
    h.take_events()
    h.act("Hangup", Channel="b1")
    h.run(0.5)
    ev = h.take_events()
    got = dict(_vars(ev, caller)[1:])
    assert [k for k, _ in _vars(ev, caller)] == [
        "BRIDGEPEER", "ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS",
        "DIALSTATUS"]
    assert _vars(ev, caller)[0] == ("BRIDGEPEER", "")
    assert got["DIALSTATUS"] == "ANSWER"
    assert int(got["ANSWEREDTIME_MS"]) // 1000 == int(got["ANSWEREDTIME"])
    assert 2000 <= int(got["ANSWEREDTIME_MS"]) <= 3000  # answered within the first second
    assert int(got["DIALEDTIME_MS"]) >= int(got["ANSWEREDTIME_MS"])
    assert _vars(ev, callee) == [("BRIDGEPEER", "")]
    first = [(m.name, m.get("Variable")) for m in ev if m.name in ("VarSet", "BridgeLeave")][:3]
    # bridge_dissolve tells every party to leave (BRIDGEPEER cleared) before the first leaves
    assert first == [("VarSet", "BRIDGEPEER"), ("VarSet", "BRIDGEPEER"), ("BridgeLeave", None)]


def test_unsetting_a_variable_is_a_varset_only_when_it_had_a_value() -> None:
    """pbx_builtin_setvar_helper(chan, name, NULL): deleting an empty or missing variable
    publishes nothing; deleting a set one publishes an empty Value."""
    h = _harness()
    h.act("Originate", **WAIT)
    h.run(0.5)
    ch = next(c for c in h.pbx.channels.values() if c.uniqueid == "r1")
    h.take_events()
    h.pbx.set_var(ch, "GONE", None)
    h.pbx.set_var(ch, "EMPTY", "")
    h.pbx.set_var(ch, "EMPTY", None)
    h.pbx.set_var(ch, "FULL", "x")
    h.pbx.set_var(ch, "FULL", None)
    assert _vars(h.take_events()) == [("EMPTY", ""), ("FULL", "x"), ("FULL", "")]
    assert "FULL" not in ch.variables
