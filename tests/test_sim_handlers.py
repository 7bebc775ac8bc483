"""Unit tests of the simulator's action handlers (no sockets: a fake core, a fake clock).

Expected answers come from the Asterisk 13.38 recordings in tests/data/conformance/ where
they exist, else from Asterisk 13's source texts (ami-reference.md).
"""

from __future__ import annotations

import re

import pytest
from _conformance import CONFORMANCE_DIR, load
from test_sim_handlers_kit import BANNERS, Harness, names, raw_action

from amicheck.privileges import may_run, parse_listcommands
from amicheck.protocol import Message, Parser
from amicheck.sim import handlers as H
from amicheck.sim.handlers import HANDLERS, SYNOPSIS, HandlerError

A13 = CONFORMANCE_DIR / "asterisk-13"


def _recorded_messages(filename: str, conn: str = "c1") -> list[Message]:
    data = load(A13 / filename)[conn].received
    p = Parser()
    return p.feed(data)


def _recorded_after(filename: str, sent_marker: bytes, conn: str = "c1") -> bytes:
    """The server bytes between the ``>>>`` containing ``sent_marker`` and the next ``>>>``."""
    frames = load(A13 / filename)[conn].frames
    out = b""
    on = False
    for f in frames:
        if f.direction == ">>>":
            if on:
                break
            on = sent_marker in f.data
        elif f.direction == "<<<" and on:
            out += f.data
    assert on or out, sent_marker
    return out


def _wire(msgs: list[Message]) -> bytes:
    return b"".join(bytes(m) for m in msgs)


# --- Ping ------------------------------------------------------------------------------------

def test_ping_shape_with_and_without_actionid() -> None:
    h = Harness()
    m = h.one("Ping", ActionID="ping1")
    assert m.keys() == ["Response", "ActionID", "Ping", "Timestamp"]
    assert m["Ping"] == "Pong" and re.fullmatch(r"\d+\.\d{6}", m["Timestamp"])
    assert h.one("Ping").keys() == ["Response", "Ping", "Timestamp"]


# --- ListCommands ----------------------------------------------------------------------------

def _decoded_listcommands() -> dict[str, list[str]]:
    text = (A13 / "06-listcommands-decoded.txt").read_text()
    out: dict[str, list[str]] = {}
    cur: list[str] | None = None
    for line in text.splitlines():
        m = re.match(r"## as (\S+)", line)
        if m:
            cur = out.setdefault(m[1], [])
        elif cur is not None and "(Priv:" in line:
            cur.append(line)
    return out


_UCM_BRIDGE = {"BridgeDestroy", "BridgeInfo", "BridgeKick", "BridgeList"}
_UCM_EXTRA = {"AgentLogoff", "Agents", "Park", "ParkedCalls", "Parkinglots"}


def _lines(m: Message) -> list[str]:
    return [f"{k}: {v}" for k, v in m.items[2:]]


def test_listcommands_all_user_matches_recording_plus_ucm_rules() -> None:
    h = Harness()
    m = h.one("ListCommands", ActionID="lc-ucmamiuser1")
    assert m.items[:2] == [("Response", "Success"), ("ActionID", "lc-ucmamiuser1")]
    ours = _lines(m)
    recorded = _decoded_listcommands()["ucmamiuser1"]
    expected = [
        re.sub(r"\(Priv: <none>\)", "(Priv: call,all)", line)
        if line.split(":")[0] in _UCM_BRIDGE else line
        for line in recorded
    ]
    assert [x for x in ours if x.split(":")[0] not in _UCM_EXTRA] == expected
    assert {x.split(":")[0] for x in ours} - {x.split(":")[0] for x in recorded} == _UCM_EXTRA


@pytest.mark.parametrize(("user", "priv"), [("priv_reporting", "reporting"),
                                            ("priv_user000", "user")])
def test_listcommands_lists_only_permitted(user: str, priv: str) -> None:
    h = Harness(privileges=(priv,))
    ours = _lines(h.one("ListCommands", ActionID=f"lc-{user}"))
    recorded = [x for x in _decoded_listcommands()[user] if x.split(":")[0] not in _UCM_BRIDGE]
    assert ours == recorded
    for name in parse_listcommands(h.replies[-1].items):
        assert may_run((priv,), name)


def test_listcommands_wire_form_and_sort_order() -> None:
    h = Harness(privileges=("user",))
    wire = bytes(h.one("ListCommands", ActionID="x"))
    assert wire.startswith(b"Response: Success\r\nActionID: x\r\nBridgeTechnologyList: ")
    assert b"UserEvent: Send an arbitrary event.  (Priv: user,all)\r\n" in wire
    assert wire.endswith(b"(Priv: <none>)\r\n\r\n")
    keys = h.replies[-1].keys()[2:]
    assert keys == sorted(keys, key=str.lower)


def test_listcommands_faults() -> None:
    h = Harness(privileges=("user",))
    leak = parse_listcommands(h.one("ListCommands", faults=("listcommands-leak",)).items)
    assert set(leak) == {n.lower() for n in SYNOPSIS}
    assert leak["originate"].privileges == {"originate"}
    stock = parse_listcommands(h.one("ListCommands", faults=("bridge-unprivileged",)).items)
    assert "bridgekick" in stock and stock["bridgekick"].privileges == frozenset()


# --- Originate -------------------------------------------------------------------------------

ORIG1 = (b"Action: Originate\r\nActionID: orig1\r\nChannel: Local/1000@from-internal\r\n"
         b"Context: from-internal\r\nExten: 2000\r\nPriority: 1\r\nAsync: true\r\n"
         b"CallerID: amicheck <1234>\r\nTimeout: 10000\r\n\r\n")


def _recorded_call_events(marker: bytes, linked: str | None = None) -> list[Message]:
    msgs = Parser().feed(_recorded_after("13-originate-events.txt", marker))
    return msgs


def test_originate_async_local_events_match_recording() -> None:
    h = Harness()
    reply = h.one(ORIG1)
    assert bytes(reply) == (b"Response: Success\r\nActionID: orig1\r\n"
                            b"Message: Originate successfully queued\r\n\r\n")
    got = h.run(1.0)
    recorded = _recorded_call_events(b"ActionID: orig1")[1:]  # skip the Response
    # QueueMemberStatus comes from an asynchronous device-state thread in Asterisk, so its
    # position varies between runs (compare orig1 and orig6); everything else is in order.
    assert names(got).count("QueueMemberStatus") == names(recorded).count("QueueMemberStatus")
    got = [m for m in got if m.name != "QueueMemberStatus"]
    recorded = [m for m in recorded if m.name != "QueueMemberStatus"]
    assert names(got) == names(recorded)
    for ours, rec in zip(got, recorded, strict=True):
        assert ours.keys() == rec.keys(), rec.name
        for key in ("Channel", "ChannelState", "Context", "Exten", "Priority", "Application",
                    "AppData", "Response", "Reason", "CallerIDNum", "Status", "DialStatus"):
            if key in rec and key != "Channel":
                assert ours[key] == rec[key], (rec.name, key)
        if "Channel" in rec:
            assert re.sub(r"-[0-9a-f]{8};", "-X;", ours["Channel"]) == \
                re.sub(r"-[0-9a-f]{8};", "-X;", rec["Channel"])
    first = got[0]
    assert re.fullmatch(r"\d+\.\d+", first["Uniqueid"]) and first["Linkedid"] == first["Uniqueid"]
    assert got[1]["Linkedid"] == first["Uniqueid"] != got[1]["Uniqueid"]
    # five seconds later 2000's Hangup() ends the call, as recorded at t=6.012
    later = h.run(5.0)
    assert names(later) == ["Newexten", "SoftHangupRequest", "HangupRequest", "Hangup",
                            "SoftHangupRequest", "Hangup", "QueueMemberStatus",
                            "QueueMemberStatus"]
    assert [m["Cause"] for m in later if m.name == "Hangup"] == ["16", "16"]
    assert h.pbx.channels == {}


def test_originate_application_system_sequence_matches_recording() -> None:
    h = Harness()
    raw = (b"Action: Originate\r\nActionID: orig6\r\nChannel: Local/1000@from-internal\r\n"
           b"Application: System\r\nData: true\r\n\r\n")
    reply = h.one(raw)
    assert reply["Message"] == "Originate successfully queued"
    got = h.run(1.0)
    recorded = _recorded_call_events(b"ActionID: orig6")[1:]
    assert names(got) == names(recorded)
    assert [m.get("Cause") for m in got] == [m.get("Cause") for m in recorded]


def test_originate_async_to_missing_context_fails_like_recording() -> None:
    h = Harness()
    raw = (b"Action: Originate\r\nActionID: orig3\r\nChannel: Local/5555@nonexistent-ctx\r\n"
           b"Context: from-internal\r\nExten: 2000\r\nPriority: 1\r\nAsync: true\r\n\r\n")
    assert h.one(raw)["Message"] == "Originate successfully queued"
    got = h.run(1.0)
    recorded = [m for m in _recorded_call_events(b"ActionID: orig3")[1:]
                if "nonexistent" in (m.get("Channel") or "")]
    assert names(got) == names(recorded)
    assert got[-1].items[2:] == recorded[-1].items[2:]  # OriginateResponse Failure, verbatim


@pytest.mark.parametrize(("headers", "message"), [
    ({"Context": "from-internal", "Exten": "2000"}, "Channel not specified"),
    ({"Channel": "Bogus/xyz", "Context": "from-internal", "Exten": "2000", "Priority": "1"},
     "Originate failed"),
    ({"Channel": "nodash", "Exten": "2000", "Priority": "1"}, "Invalid channel"),
    ({"Channel": "PJSIP/1000", "Exten": "2000", "Priority": "x"}, "Invalid priority"),
    ({"Channel": "PJSIP/1000", "Exten": "2000", "Priority": "1", "Timeout": "soon"},
     "Invalid timeout"),
    ({"Channel": "Local/1000@from-internal", "Exten": "2000"},
     "Originate with 'Exten' requires 'Context' and 'Priority'"),
    ({"Channel": "Local/5555@nonexistent-ctx", "Exten": "2000", "Context": "from-internal",
      "Priority": "1"}, "Originate failed"),
])
def test_originate_errors(headers: dict[str, str], message: str) -> None:
    h = Harness()
    m = h.one("Originate", ActionID="o", **headers)
    assert m.items == [("Response", "Error"), ("ActionID", "o"), ("Message", message)]


@pytest.mark.parametrize(("app", "data", "what"), [
    ("System", "true", "Application"), ("TrySystem", "id", "Application"),
    ("Exec", "NoOp()", "Application"), ("EAGI", "x", "Application"),
    ("AGI", "agi://h", "Application"), ("MixMonitor", "a.wav", "Application"),
    ("ExternalIVR", "x", "Application"), ("NoOp", "${SHELL(id)}", "Data"),
    ("NoOp", "${EVAL(${X})}", "Data"),
])
def test_originate_guard_without_system(app: str, data: str, what: str) -> None:
    h = Harness(privileges=("originate",))
    hdrs = {"Channel": "Local/1000@from-internal", "Application": app, "Data": data}
    m = h.one("Originate", **hdrs)
    assert m.items == [("Response", "Error"), ("Message", f"Originate Access Forbidden: {what}")]
    ok = h.one("Originate", faults=("originate-system",), **hdrs)
    assert ok["Response"] == "Success"
    assert h.one("Originate", privileges=("all",), **hdrs)["Response"] == "Success"


def test_originate_guard_is_case_sensitive_for_data_only() -> None:
    h = Harness(privileges=("originate",))
    m = h.one("Originate", Channel="Local/1000@from-internal", Application="NoOp",
              Data="${shell(id)}")
    assert m["Response"] == "Success"  # strstr(appdata, "SHELL") is case-sensitive


def test_originate_pjsip_rings_then_answers() -> None:
    h = Harness()
    assert h.one("Originate", ActionID="p", Channel="PJSIP/1001", Context="from-internal",
                 Exten="2000", Priority="1", Async="yes")["Response"] == "Success"
    ring = h.run(0.1)
    assert names(ring) == ["Newchannel", "ExtensionStatus", "DeviceStateChange", "Newstate"]
    assert (ring[1]["Status"], ring[1]["StatusText"]) == ("8", "Ringing")
    assert ring[2]["State"] == "RINGING" and ring[3]["ChannelStateDesc"] == "Ringing"
    assert re.fullmatch(r"PJSIP/1001-[0-9a-f]{8}", ring[0]["Channel"])
    up = h.run(1.0)
    assert names(up)[:5] == ["Newstate", "ExtensionStatus", "DeviceStateChange",
                             "OriginateResponse", "Newexten"]
    assert up[3]["Response"] == "Success" and up[3]["Reason"] == "4"


def test_originate_sync_pjsip_answers_when_phone_answers() -> None:
    h = Harness()
    assert h.act("Originate", ActionID="s", Channel="PJSIP/1002", Context="from-internal",
                 Exten="2000", Priority="1") == []
    h.run(0.5)
    assert len(h.replies) == 0
    h.run(1.0)
    assert h.replies[-1]["Message"] == "Originate successfully queued"


def test_originate_no_answer_and_unregistered() -> None:
    h = Harness()
    h.one("Originate", ActionID="n", Channel="PJSIP/1004", Context="from-internal",
          Exten="2000", Priority="1", Async="1", Timeout="3000")
    evs = h.run(4.0)
    resp = [m for m in evs if m.name == "OriginateResponse"]
    assert resp[0]["Response"] == "Failure" and resp[0]["Reason"] == "3"
    assert [m["Cause"] for m in evs if m.name == "Hangup"] == ["19"]
    m = h.one("Originate", Channel="PJSIP/1005", Context="from-internal", Exten="2000",
              Priority="1")
    assert m["Message"] == "Originate failed"


def test_originate_variables_and_callerid() -> None:
    h = Harness()
    h.one("Originate", Channel="Local/1000@from-internal", Context="from-internal",
          Exten="2000", Priority="1", Variable="A=1,B=two", CallerID='"Bob" <555-12>')
    h.run(0.1)
    one = next(c for c in h.pbx.channels.values() if c.name.endswith(";1"))
    assert one.variables == {"A": "1", "B": "two"}
    assert (one.cid_name, one.cid_num) == ("Bob", "55512")


# --- Hangup, Status, CoreShowChannels, AbsoluteTimeout -----------------------------------------

def _call(h: Harness) -> str:
    h.one("Originate", Channel="Local/1000@from-internal", Context="from-internal",
          Exten="2000", Priority="1")
    h.run(0.1)
    return next(n for n in h.pbx.channels if n.endswith(";1"))


def test_hangup() -> None:
    h = Harness()
    assert h.one("Hangup", ActionID="hg1", Channel="Local/nonexist-00000000;1").items == [
        ("Response", "Error"), ("ActionID", "hg1"), ("Message", "No such channel")]
    assert h.one("Hangup")["Message"] == "No channel specified"
    name = _call(h)
    h.take_events()
    assert h.one("Hangup", Channel=name)["Message"] == "Channel Hungup"
    evs = h.take_events()
    # a Local half, as reference Asterisk 13/22 do it (tests/fidelity.py hangup scripts)
    assert names(evs)[:4] == ["HangupRequest", "Hangup", "SoftHangupRequest", "Hangup"]
    assert not h.pbx.channels


def test_hangup_regex_lists_channels() -> None:
    h = Harness()
    _call(h)
    out = h.act("Hangup", ActionID="r", Channel="/^Local/")
    assert out[0].items[:3] == [("Response", "Success"), ("ActionID", "r"),
                                ("EventList", "start")]
    assert names(out[1:]) == ["ChannelHungup", "ChannelHungup", "ChannelsHungupListComplete"]
    assert out[-1]["ListItems"] == "2"
    assert not h.pbx.channels


def test_coreshowchannels_empty_is_byte_exact() -> None:
    h = Harness()
    got = _wire(h.act("CoreShowChannels", ActionID="csc"))
    assert got == _recorded_after("13-originate-events.txt", b"ActionID: csc")


def test_status_and_coreshowchannels_with_a_call() -> None:
    h = Harness()
    name = _call(h)
    out = h.act("Status", ActionID="st", Variables="CHANNEL")
    assert names(out[1:]) == ["Status", "Status", "StatusComplete"]
    assert out[1].items[1] == ("Privilege", "Call") and out[1].items[-1] == ("ActionID", "st")
    assert out[-1]["Items"] == "2" and out[-1]["EventList"] == "Complete"
    one = h.act("Status", Channel=name)
    assert len(one) == 3 and one[1]["Channel"] == name
    assert h.one("Status", Channel="nope")["Message"] == "No such channel"
    csc = h.act("CoreShowChannels", ActionID="c")
    assert csc[1].items[:2] == [("Event", "CoreShowChannel"), ("ActionID", "c")]
    assert csc[-1]["ListItems"] == "2"


def test_absolutetimeout_hangs_up_later() -> None:
    h = Harness()
    name = _call(h)
    assert h.one("AbsoluteTimeout", Channel=name, Timeout="2")["Message"] == "Timeout Set"
    h.run(1.0)
    assert name in h.pbx.channels
    h.run(1.5)
    assert name not in h.pbx.channels
    assert h.one("AbsoluteTimeout", Channel="x", Timeout="2")["Message"] == "No such channel"


def test_redirect_and_park() -> None:
    h = Harness()
    name = _call(h)
    assert h.one("Redirect", Channel=name, Context="from-internal", Exten="1001",
                 Priority="1")["Message"] == "Redirect successful"
    assert h.one("Redirect", Channel="x", Context="c", Exten="e",
                 Priority="1")["Message"] == "Channel does not exist: x"
    assert h.one("Park", Channel=name)["Message"] == "Park successful"
    out = h.act("ParkedCalls", ActionID="pc")
    assert names(out[1:]) == ["ParkedCall", "ParkedCallsComplete"]
    assert out[1]["ParkingSpace"] == "701"


# --- Core status -----------------------------------------------------------------------------

def test_coresettings_and_corestatus() -> None:
    h = Harness()
    s = h.one("CoreSettings", ActionID="cs")
    assert s.keys()[:3] == ["Response", "ActionID", "AMIversion"]
    assert s["AMIversion"] == "2.7.0" and s["AsteriskVersion"].startswith("13.")
    c = h.one("CoreStatus")
    assert c.keys() == ["Response", "CoreStartupDate", "CoreStartupTime", "CoreReloadDate",
                        "CoreReloadTime", "CoreCurrentCalls"]


# --- Getvar / Setvar -------------------------------------------------------------------------

def test_getvar_setvar_roundtrip() -> None:
    h = Harness()
    assert h.one("Setvar", Variable="FOO", Value="bar")["Message"] == "Variable Set"
    g = h.one("Getvar", ActionID="g", Variable="FOO")
    assert g.items == [("Response", "Success"), ("ActionID", "g"), ("Variable", "FOO"),
                       ("Value", "bar")]
    name = _call(h)
    h.take_events()
    h.one("Setvar", Channel=name, Variable="X", Value="1")
    assert names(h.take_events()) == ["VarSet"]
    assert h.one("Getvar", Channel=name, Variable="X")["Value"] == "1"
    assert h.one("Getvar", Channel=name, Variable="CHANNEL(name)")["Value"] == name
    assert h.one("Getvar", Variable="")["Message"] == "No variable specified"
    assert h.one("Getvar", Channel="zz", Variable="X")["Message"] == "No such channel"


def test_setvar_connectedline_on_a_local_half() -> None:
    """Asterisk: Variable Set, NewConnectedLine on the channel; the other Local half reads
    the update as its caller id (NewCallerid) when it next services frames (its hangup)."""
    h = Harness()
    name = _call(h)
    h.take_events()
    assert h.one("Setvar", Variable="CONNECTEDLINE(all)", Value='"Fid" <555>')[
        "Message"] == "Variable not set"  # no channel
    ok = h.one("Setvar", Channel=name, Variable="CONNECTEDLINE(all)", Value='"Fid Line" <5551234>')
    assert ok["Message"] == "Variable Set"
    ev = h.take_events()
    assert names(ev) == ["NewConnectedLine"]
    assert (ev[0]["Channel"], ev[0]["ConnectedLineNum"], ev[0]["ConnectedLineName"]) == (
        name, "5551234", "Fid Line")
    assert h.one("Getvar", Channel=name, Variable="CONNECTEDLINE(num)")["Value"] == "5551234"
    h.one("Setvar", Channel=name, Variable="X", Value="1")
    assert h.take_events()[0]["ConnectedLineNum"] == "5551234"  # in every snapshot now
    h.one("Hangup", Channel=name)
    cid = [m for m in h.run(0.5) + h.take_events() if m.name == "NewCallerid"]
    assert [(m["Channel"], m["CallerIDNum"], m["CallerIDName"]) for m in cid] == [
        (name[:-1] + "2", "5551234", "Fid Line")]


def test_the_other_half_shows_the_new_caller_id_as_each_dialect_does() -> None:
    """The ;2 half's end after a CONNECTEDLINE update on ;1 (setvar-connectedline against
    Asterisk 13.38 and 22.10): NewCallerid follows its Hangup in both; 13's HangupRequest
    and SoftHangupRequest already show the new caller id (fresh snapshots), 22's do not."""
    for dialect, early in (("13", "5551234"), ("22", "<unknown>")):
        h = Harness(banner=BANNERS[dialect])
        name = _call(h)
        h.one("Setvar", Channel=name, Variable="CONNECTEDLINE(all)", Value='"Fid Line" <5551234>')
        h.take_events()
        h.one("Hangup", Channel=name)
        two = name[:-1] + "2"
        ev = [m for m in h.run(0.5) + h.take_events() if m.get("Channel") == two
              and m.name != "DeviceStateChange"]
        assert [(m.name, m.get("CallerIDNum")) for m in ev] == [
            ("HangupRequest", early), ("SoftHangupRequest", early), ("Hangup", "5551234"),
            ("NewCallerid", "5551234")], dialect


@pytest.mark.parametrize("var", ["SHELL(id)", "EVAL(${X})", "X${SHELL(id)}"])
def test_getvar_shell_guard(var: str) -> None:
    h = Harness(privileges=("call",))
    assert h.one("Getvar", Variable=var)["Message"] == "GetVar Access Forbidden: Variable"
    leaked = h.one("Getvar", Variable=var, faults=("getvar-shell",))
    assert leaked["Response"] == "Success"
    assert h.one("Getvar", Variable="SHELL(id)", privileges=("all",))["Value"].startswith("uid=")


# --- Queues ----------------------------------------------------------------------------------

@pytest.mark.parametrize("marker", [b"ActionID: qs1", b"ActionID: qs2", b"ActionID: qs3",
                                    b"ActionID: qsum"])
def test_queue_lists_are_byte_exact(marker: bytes) -> None:
    expected = _recorded_after("12-queues.txt", marker)
    frames = load(A13 / "12-queues.txt")["c1"].frames
    sent = next(f.data for f in frames if f.direction == ">>>" and marker in f.data)
    h = Harness()
    assert _wire(h.act(sent)) == expected


def test_queues_ucm_event_list_shape() -> None:
    h = Harness()
    out = h.act("Queues", ActionID="q1")
    assert out[0].items == [("Response", "Success"), ("ActionID", "q1"),
                            ("EventList", "start"), ("Message", "Queues will follow")]
    assert names(out[1:]) == ["QueueStatus", "QueueMemberStatus", "QueueMemberStatus",
                              "QueuesComplete"]
    assert out[1]["Queue"] == "6500" and out[1]["Strategy"] == "ringall"
    assert [m["Interface"] for m in out[2:4]] == ["Local/1001@from-internal",
                                                 "Local/1000@from-internal"]
    assert all(m.items[-1] == ("ActionID", "q1") for m in out[1:4])
    assert out[-1].items == [("Event", "QueuesComplete"), ("ActionID", "q1"),
                             ("EventList", "Complete"), ("ListItems", "3")]
    assert "ActionID" not in h.act("Queues")[1]


def test_queue_add_pause_remove() -> None:
    h = Harness(privileges=("agent",))
    assert h.one("QueueAdd", Queue="6500", Interface="PJSIP/1002", MemberName="Bob",
                 Penalty="2")["Message"] == "Added interface to queue"
    ev = h.take_events()
    assert names(ev) == ["QueueMemberAdded"] and ev[0]["Membership"] == "dynamic"
    assert h.one("QueueAdd", Queue="6500", Interface="PJSIP/1002")["Message"] == \
        "Unable to add interface: Already there"
    assert h.one("QueueAdd", Queue="9", Interface="PJSIP/1")["Message"] == \
        "Unable to add interface to queue: No such queue"
    assert h.one("QueueAdd", Interface="x")["Message"] == "'Queue' not specified."
    assert h.one("QueuePause", Interface="PJSIP/1002", Paused="true")["Message"] == \
        "Interface paused successfully"
    assert h.take_events()[0]["Paused"] == "1"
    assert h.one("QueuePause", Interface="nope", Paused="0")["Message"] == "Interface not found"
    st = h.act("QueueStatus", Member="PJSIP/1002")
    assert names(st[1:]) == ["QueueParams", "QueueMember", "QueueStatusComplete"]
    assert h.one("QueueRemove", Queue="6500", Interface="Local/1000@from-internal")[
        "Message"] == "Member not dynamic"
    assert h.one("QueueRemove", Queue="6500", Interface="PJSIP/1002")["Message"] == \
        "Removed interface from queue"
    assert h.one("QueueRemove", Queue="6500", Interface="PJSIP/1002")["Message"] == \
        "Unable to remove interface: Not there"


# --- UserEvent, AstDB, Command -----------------------------------------------------------------

def test_userevent_carries_headers() -> None:
    h = Harness(privileges=("user",))
    m = h.one(b"Action: UserEvent\r\nActionID: u\r\nUserEvent: Hello\r\nFoo: bar\r\n\r\n")
    assert m.items == [("Response", "Success"), ("ActionID", "u"), ("Message", "Event Sent")]
    ev = h.take_events()[0]
    assert ev.items == [("Event", "UserEvent"), ("Privilege", "user,all"),
                        ("UserEvent", "Hello"), ("ActionID", "u"), ("Foo", "bar")]


def test_astdb() -> None:
    h = Harness()
    assert h.one("DBPut", Family="f", Key="k", Val="v")["Message"] == \
        "Updated database successfully"
    out = h.act("DBGet", ActionID="d", Family="f", Key="k")
    assert names(out) == ["Success", "DBGetResponse", "DBGetComplete"]
    assert out[1].items == [("Event", "DBGetResponse"), ("Family", "f"), ("Key", "k"),
                            ("Val", "v"), ("ActionID", "d")]
    assert h.one("DBGet", Family="f", Key="zz")["Message"] == "Database entry not found"
    assert h.one("DBGet", Key="k")["Message"] == "No family specified."
    assert h.one("DBDel", Family="f", Key="k")["Message"] == "Key deleted successfully"
    h.one("DBPut", Family="t", Key="a/b", Val="1")
    assert h.one("DBDelTree", Family="t", Key="a")["Message"] == "Key tree deleted successfully"
    assert h.one("DBDelTree", Family="t")["Message"] == "Database entry not found"


def test_command_follows_form() -> None:
    h = Harness()
    m = h.one("Command", ActionID="c1", Command="core show version")
    wire = bytes(m)
    assert wire.startswith(b"Response: Follows\r\nPrivilege: Command\r\nActionID: c1\r\n"
                           b"Asterisk 13.")
    assert wire.endswith(b"\n--END COMMAND--\r\n\r\n")
    assert Parser(banner=False).feed(wire)[0].text == m.text
    unknown = h.one("Command", Command="frobnicate now")
    assert unknown.text == ("No such command 'frobnicate now' (type 'core show help "
                            "frobnicate now' for other possible commands)\n")
    assert h.one("Command", Command="module load foo.so")["Message"] == "Command blacklisted"
    assert h.one("Command")["Message"] == "No command provided"
    queue = h.one("Command", Command="queue show").text or ""
    recorded = _recorded_after("12-queues.txt", b"ActionID: q1").decode()
    assert queue == recorded.replace("\r\n", "\n").rstrip("\n") + "\n\n"


# --- GetConfig -------------------------------------------------------------------------------

def test_getconfig_plain_and_traversal() -> None:
    h = Harness()
    m = h.one("GetConfig", ActionID="g", Filename="manager.conf")
    assert m.items[:4] == [("Response", "Success"), ("ActionID", "g"),
                           ("Category-000000", "general"), ("Line-000000-000000", "enabled=yes")]
    bad = h.one("GetConfig", Filename="../../../etc/passwd")
    assert bad["Message"] == "File requires escalated privileges"
    leak = h.one("GetConfig", Filename="../../../etc/passwd", faults=("getconfig-traversal",))
    assert leak["Category-000000"] == "root" and "root" in leak["Line-000000-000000"]
    assert h.one("GetConfig")["Message"] == "Filename not specified"
    assert h.one("GetConfig", Filename="nope.conf")["Message"] == "Config file not found"
    assert h.one("GetConfigJSON", Filename="queues.conf")["JSON"].startswith('{"general"')


# --- Bridges ---------------------------------------------------------------------------------

def test_bridge_actions() -> None:
    h = Harness()
    h.one("Originate", Channel="PJSIP/1000", Context="from-internal", Exten="1001",
          Priority="1", Async="1")
    h.one("Originate", Channel="PJSIP/1001", Context="from-internal", Exten="1000",
          Priority="1", Async="1")
    h.run(2.0)
    a, b = sorted(h.pbx.channels)
    assert h.one("Bridge", Channel1=a, Channel2="zz")["Message"] == "Channel2 does not exist: zz"
    assert h.one("Bridge", Channel1=a, Channel2=b)["Message"] == "Channels have been bridged"
    lst = h.act("BridgeList", ActionID="bl")
    assert names(lst[1:]) == ["BridgeListItem", "BridgeListComplete"]
    assert lst[1].items[1] == ("ActionID", "bl") and lst[1]["BridgeNumChannels"] == "2"
    uid = lst[1]["BridgeUniqueid"]
    info = h.act("BridgeInfo", BridgeUniqueid=uid)
    assert names(info[1:]) == ["BridgeInfoChannel", "BridgeInfoChannel", "BridgeInfoComplete"]
    assert h.one("BridgeInfo")["Message"] == "BridgeUniqueid must be provided"
    assert h.one("BridgeKick", Channel=a)["Message"] == "Channel has been kicked"
    h.run(0.1)
    assert a not in h.pbx.channels
    assert h.one("BridgeDestroy", BridgeUniqueid="nope")["Message"] == "Bridge nope not found"
    assert h.one("BridgeDestroy", BridgeUniqueid=uid)["Message"] == "Bridge has been destroyed"
    h.run(0.1)
    assert not h.pbx.channels and not h.pbx.bridges
    assert h.one("BridgeKick", Channel=b)["Message"] == "Channel does not exist"


# --- misc ------------------------------------------------------------------------------------

def test_extensionstate_and_mailboxes() -> None:
    h = Harness()
    m = h.one("ExtensionState", ActionID="e", Exten="1000", Context="from-internal")
    assert m.items == [("Response", "Success"), ("ActionID", "e"),
                       ("Message", "Extension Status"), ("Exten", "1000"),
                       ("Context", "from-internal"), ("Hint", "PJSIP/1000"), ("Status", "0"),
                       ("StatusText", "Idle")]
    assert h.one("ExtensionState", Exten="1005", Context="ext-local")["StatusText"] == \
        "Unavailable"
    assert h.one("ExtensionState", Exten="77")["Status"] == "-1"
    mc = h.one("MailboxCount", Mailbox="1000")
    assert mc.keys() == ["Response", "Message", "Mailbox", "UrgMessages", "NewMessages",
                         "OldMessages"]
    assert h.one("MailboxStatus", Mailbox="1000")["Message"] == "Mailbox Status"
    assert h.one("MailboxStatus")["Message"] == "Mailbox not specified"


def test_every_listed_action_answers_without_crashing() -> None:
    h = Harness()
    for name in SYNOPSIS:
        if name.lower() in ("login", "logoff", "challenge", "events"):
            continue
        for junk in ({}, {"Channel": "x", "Queue": "6500", "Filename": "../x", "Exten": "1"}):
            out = h.act(raw_action(name, ActionID="j", **junk))
            assert out, name
            assert out[0]["Response"] in ("Success", "Error", "Follows"), name
            assert out[0]["ActionID"] == "j", name
            for m in out:
                bytes(m)  # encodable: no CR/LF smuggled into a value
        h.run(30.0)
    assert {n.lower() for n in SYNOPSIS} - set(HANDLERS) == {"login", "logoff", "challenge",
                                                               "events"}


def test_dispatch_wraps_handler_bugs(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(ctx: H.ActionContext, req: H.RequestLike) -> None:
        raise ZeroDivisionError("oops")

    monkeypatch.setitem(HANDLERS, "ping", boom)
    h = Harness()
    with pytest.raises(HandlerError, match="ZeroDivisionError"):
        h.act("Ping", ActionID="z")
    assert h.replies[-1].items == [("Response", "Error"), ("ActionID", "z"),
                                   ("Message", "Internal simulator error")]


def test_dispatch_unknown_action() -> None:
    h = Harness()
    assert h.one("Frobnicate")["Message"] == ("Invalid/unknown command: Frobnicate. Use Action: "
                                              "ListCommands to show available commands.")
