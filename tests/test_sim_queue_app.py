"""The simulator's Queue application (amicheck.sim.queue_app): the app_queue event sequence
a client author relies on, per strategy, timeout, pause and hangup side (no sockets)."""

from __future__ import annotations

from test_sim_handlers_kit import B22, BANNERS, Harness

from amicheck.protocol import Message
from amicheck.sim import queue_app
from amicheck.sim.actions.queues import queue_show
from amicheck.sim.pbx import QueueMember

_A = "Local/1000@from-internal"
_B = "Local/1001@from-internal"
_QUEUE_EVENTS = {"QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "AgentCalled",
                 "AgentConnect", "AgentComplete", "AgentRingNoAnswer", "QueueMemberStatus"}


def _call(h: Harness, n: str = "q", exten: str = "6500") -> None:
    h.act("Originate", Channel=f"Local/{exten}@from-internal", Application="Wait", Data="60",
          Async="true", ChannelId=f"fid-{n}1", OtherChannelId=f"fid-{n}2")


def _run(h: Harness, seconds: float) -> list[Message]:
    """Advance time; every event since the last call (those an action emitted at once too)."""
    h.run(seconds)
    return h.take_events()


def _queue(events: list[Message]) -> list[str]:
    return [m.name or "" for m in events if (m.name or "") in _QUEUE_EVENTS]


def _pause(h: Harness, iface: str, paused: bool = True) -> None:
    h.act("QueuePause", Queue="6500", Interface=iface, Paused="true" if paused else "false")


def _first(events: list[Message], name: str) -> Message:
    return next(m for m in events if m.name == name)


def test_ringall_one_member_paused_rings_the_other_and_connects() -> None:
    h = Harness()
    _pause(h, _B)
    h.take_events()
    _call(h)
    ev = _run(h, 3.0)
    assert _queue(ev) == ["QueueCallerJoin", "AgentCalled", "QueueMemberStatus",
                          "QueueMemberStatus", "QueueCallerLeave", "AgentConnect"]
    join, called = _first(ev, "QueueCallerJoin"), _first(ev, "AgentCalled")
    assert (join["Queue"], join["Position"], join["Count"], join["Priority"]) == (
        "6500", "1", "1", "3")
    assert join["Uniqueid"] == "fid-q2" and join["Linkedid"] == "fid-q1"
    assert called["Interface"] == _A and called["MemberName"] == "Agent 1000"
    assert called["DestChannel"].startswith("Local/1000@from-internal-")
    assert called["DestChannel"].endswith(";1")
    assert (called["DestChannelState"], called["DestExten"], called["DestCallerIDNum"]) == (
        "0", "6500", "6500")
    assert called["DestLinkedid"] == "fid-q1"
    connect = _first(ev, "AgentConnect")
    assert connect["DestChannelState"] == "6" and connect["HoldTime"] == "0"
    assert "RingTime" in connect
    assert _first(ev, "QueueCallerLeave")["Count"] == "0"
    assert [m["Status"] for m in ev if m.name == "QueueMemberStatus"] == ["2", "2"]
    assert [m.name for m in ev if m.name and m.name.startswith("Bridge")] == [
        "BridgeCreate", "BridgeEnter", "BridgeEnter"]
    dial = [(m.name, m.get("DialStatus")) for m in ev if m.name in ("DialBegin", "DialEnd")
            and m.get("Channel") == join["Channel"]]
    assert dial == [("DialBegin", None), ("DialEnd", "ANSWER")]
    status = h.act("QueueStatus", Queue="6500")
    member = next(m for m in status if m.get("Location") == _A)
    assert member["Status"] == "2"  # in use while talking
    h.act("Hangup", Channel="fid-q1")
    ev = _run(h, 1.0)
    assert _queue(ev) == ["AgentComplete", "QueueMemberStatus", "QueueMemberStatus"]
    done = _first(ev, "AgentComplete")
    assert done["Reason"] == "caller" and done["Channel"] == join["Channel"]
    assert done["DestChannel"] == called["DestChannel"] and "TalkTime" in done
    assert h.pbx.channels == {}
    m = h.pbx.queues["6500"].members[1]
    assert (m.interface, m.calls_taken, m.in_call) == (_A, 1, 0)
    assert h.pbx.queues["6500"].completed == 1


def test_ringall_rings_every_free_member_and_cancels_the_losers() -> None:
    h = Harness()
    _call(h)
    ev = _run(h, 3.0)
    called = [m["Interface"] for m in ev if m.name == "AgentCalled"]
    assert sorted(called) == [_A, _B]
    assert len([m for m in ev if m.name == "AgentConnect"]) == 1
    ends = sorted(m["DialStatus"] for m in ev if m.name == "DialEnd" and m.get("Channel"))
    assert ends == ["ANSWER", "CANCEL"]
    assert "AgentRingNoAnswer" not in _queue(ev)
    h.act("Hangup", Channel="fid-q1")
    h.run(2.0)
    assert h.pbx.channels == {}


def test_paused_members_are_not_rung_and_the_timeout_abandons() -> None:
    h = Harness()
    _pause(h, _A)
    _pause(h, _B)
    h.take_events()
    _call(h)
    ev = _run(h, 2.0)
    assert _queue(ev) == ["QueueCallerJoin"]
    status = h.act("QueueStatus", Queue="6500")
    assert _first(status, "QueueParams")["Calls"] == "1"
    entry = _first(status, "QueueEntry")
    assert (entry["Position"], entry["Uniqueid"], entry["CallerIDNum"]) == (
        "1", "fid-q2", "unknown")
    assert _first(h.act("QueueSummary", Queue="6500"), "QueueSummary")["Callers"] == "1"
    shown = queue_show(h.pbx)
    assert "6500 has 1 calls" in shown and "1. Local/6500@from-internal-" in shown
    ev = _run(h, 27.0)  # Queue(6500,,,,30): still waiting before 30 s
    assert _queue(ev) == []
    ev = _run(h, 5.0)
    assert _queue(ev) == ["QueueCallerAbandon", "QueueCallerLeave"]
    abandon = _first(ev, "QueueCallerAbandon")
    assert (abandon["Position"], abandon["OriginalPosition"]) == ("1", "1")
    assert int(abandon["HoldTime"]) >= 30
    assert any(m.name == "VarSet" and m["Variable"] == "QUEUESTATUS" and m["Value"] == "TIMEOUT"
               for m in ev)
    assert not any(c.uniqueid == "fid-q2" for c in h.pbx.channels.values())  # Hangup ran
    assert queue_app.callers(h.pbx, "6500") == []
    assert h.pbx.queues["6500"].abandoned == 1


def test_caller_hanging_up_while_waiting_abandons() -> None:
    h = Harness()
    _pause(h, _A)
    _pause(h, _B)
    _call(h)
    h.run(2.0)
    h.take_events()
    h.act("Hangup", Channel="fid-q1")
    ev = _run(h, 1.0)
    assert _queue(ev) == ["QueueCallerAbandon", "QueueCallerLeave"]
    assert queue_app.callers(h.pbx, "6500") == []


def _pjsip_queue(h: Harness, strategy: str) -> None:
    q = h.pbx.queues["6500"]
    q.strategy = strategy
    q.members = [QueueMember("PJSIP/1004", "Never", "PJSIP/1004"),
                 QueueMember("PJSIP/1001", "Bob", "PJSIP/1001"),
                 QueueMember("PJSIP/1005", "Gone", "PJSIP/1005")]


def test_rrmemory_rings_one_at_a_time_and_remembers_where_it_was() -> None:
    h = Harness()
    _pjsip_queue(h, "rrmemory")
    _call(h)
    ev = _run(h, 0.5)
    assert [m["Interface"] for m in ev if m.name == "AgentCalled"] == ["PJSIP/1004"]
    ev = _run(h, 15.0)
    rna = _first(ev, "AgentRingNoAnswer")
    assert rna["Interface"] == "PJSIP/1004" and rna["RingTime"] == "15000"
    assert not [m for m in ev if m.name == "AgentCalled"]  # the retry wait
    ev = _run(h, 7.0)
    assert [m["Interface"] for m in ev if m.name == "AgentCalled"] == ["PJSIP/1001"]
    assert _first(ev, "AgentConnect")["MemberName"] == "Bob"
    h.act("Hangup", Channel="fid-q1")
    h.run(1.0)
    _call(h, "r")  # the next caller starts after Bob: 1005 is unregistered, so 1004
    ev = _run(h, 0.5)
    assert [m["Interface"] for m in ev if m.name == "AgentCalled"] == ["PJSIP/1004"]


def test_ringall_with_a_silent_member_retries_until_the_timeout() -> None:
    h = Harness()
    _pjsip_queue(h, "ringall")
    h.pbx.queues["6500"].members.pop(1)  # only 1004 (never answers) and 1005 (unregistered)
    _call(h)
    ev = _run(h, 40.0)
    names = _queue(ev)
    assert names.count("AgentCalled") == 2 and names.count("AgentRingNoAnswer") == 2
    assert names[-2:] == ["QueueCallerAbandon", "QueueCallerLeave"]
    assert all(m["Interface"] == "PJSIP/1004" for m in ev if m.name == "AgentCalled")
    assert h.pbx.device_state("PJSIP/1004") == 1  # nothing left ringing


def test_member_hanging_up_ends_the_call_with_reason_agent() -> None:
    h = Harness()
    h.pbx.queues["6500"].members = [
        QueueMember("Local/2000@from-internal", "Short", "Local/2000@from-internal")]
    _call(h)
    ev = _run(h, 10.0)  # 2000: Answer, Wait(5), Hangup
    assert "AgentConnect" in _queue(ev)
    done = _first(ev, "AgentComplete")
    assert done["Reason"] == "agent" and done["Interface"] == "Local/2000@from-internal"
    assert int(done["TalkTime"]) >= 5
    assert h.pbx.channels == {}


def test_dialect_22_reports_a_member_status_change_once() -> None:
    h = Harness(banner=B22)
    _pause(h, _B)
    h.take_events()
    _call(h)
    ev = _run(h, 3.0)
    assert [m["Status"] for m in ev if m.name == "QueueMemberStatus"] == ["2"]
    assert "Wrapuptime" in _first(ev, "QueueMemberStatus")
    h.act("Hangup", Channel="fid-q1")
    ev = _run(h, 1.0)
    assert [m["Status"] for m in ev if m.name == "QueueMemberStatus"] == ["1"]


def test_unknown_queue_continues_the_dialplan_and_reset_forgets_callers() -> None:
    h = Harness()
    h.pbx.dialplan["from-internal"]["6600"] = [("Answer", ""), ("Queue", "nosuch"),
                                               ("Wait", "30")]
    _call(h, "u", "6600")
    ev = _run(h, 2.0)
    assert any(m.name == "VarSet" and m["Value"] == "UNKNOWN" for m in ev)
    assert not _queue(ev)
    _pause(h, _A)
    _pause(h, _B)
    _call(h)
    h.run(2.0)
    assert len(queue_app.callers(h.pbx, "6500")) == 1
    h.pbx.reset()
    assert queue_app.callers(h.pbx, "6500") == []


def test_rrmemory_rotates_through_answering_members() -> None:
    h = Harness()
    q = h.pbx.queues["6500"]
    q.strategy = "rrmemory"
    q.members = [QueueMember(f"PJSIP/{n}", n, f"PJSIP/{n}") for n in ("1001", "1002", "1003")]
    answered = []
    for n in range(4):
        _call(h, f"r{n}")
        ev = _run(h, 3.0)
        answered.append(_first(ev, "AgentConnect")["Interface"])
        assert len([m for m in ev if m.name == "AgentCalled"]) == 1
        h.act("Hangup", Channel=f"fid-r{n}1")
        _run(h, 1.0)
    assert answered == ["PJSIP/1001", "PJSIP/1002", "PJSIP/1003", "PJSIP/1001"]


def test_a_busy_member_with_ringinuse_off_is_not_rung() -> None:
    h = Harness()
    _pause(h, _B)
    h.act("QueueMemberRingInUse", Queue="6500", Interface=_A, RingInUse="false")
    h.act("Originate", Channel="Local/1000@from-internal", Application="Wait", Data="30",
          Async="true")  # 1000 is in use
    _run(h, 2.0)
    _call(h)
    ev = _run(h, 3.0)
    assert _queue(ev) == ["QueueCallerJoin"]


def _vars(events: list[Message], uniqueid: str) -> list[tuple[str, str]]:
    return [(m["Variable"], m["Value"]) for m in events
            if m.name == "VarSet" and m["Uniqueid"] == uniqueid]


def _caller_flow(events: list[Message]) -> list[str]:
    """The caller's (fid-q2's) queue events and variables, in order."""
    return [m["Variable"] if m.name == "VarSet" else m.name or "" for m in events
            if (m.get("Uniqueid") == "fid-q2" and m.name in ("VarSet", "Hangup",
                "SoftHangupRequest", "HangupRequest")) or m.name in _QUEUE_EVENTS - {
                "QueueMemberStatus", "AgentCalled"}]


def test_an_answered_caller_gets_app_queues_variables_per_dialect() -> None:
    """13: QUEUEPOSITION when it leaves for the member; 22 also resets its timing variables
    first, records QUEUEWAIT at the connect and ANSWEREDTIME/DIALEDTIME when the bridge ends
    (app_queue.c queue_exec, leave_queue, end_bridge_callback)."""
    for dialect, expected in (
        ("13", ["QueueCallerJoin", "QueueCallerLeave", "QUEUEPOSITION", "AgentConnect",
                "BRIDGEPEER"]),
        ("22", ["ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS", "QUEUEWAIT",
                "QUEUEWAIT_MS", "QueueCallerJoin", "QueueCallerLeave", "QUEUEPOSITION",
                "QUEUEWAIT", "QUEUEWAIT_MS", "AgentConnect", "BRIDGEPEER"]),
    ):
        h = Harness(banner=BANNERS[dialect])
        _pause(h, _B)
        h.take_events()
        _call(h)
        ev = _run(h, 3.0)
        assert _caller_flow(ev) == expected, dialect
        assert ("QUEUEPOSITION", "1") in _vars(ev, "fid-q2")
        member = _first(ev, "AgentConnect")["DestChannel"]
        assert ("BRIDGEPEER", member) in _vars(ev, "fid-q2")
        peer_number = [v for k, v in _vars(ev, "fid-q2") if k == "DIALEDPEERNUMBER"]
        assert peer_number == []  # set on the member's channels only
        members = {m["Uniqueid"] for m in ev if (m.get("Channel") or "").startswith(_A)}
        dialed = [(m["Variable"], m["Value"]) for m in ev
                  if m.name == "VarSet" and m["Uniqueid"] in members
                  and m["Variable"] == "DIALEDPEERNUMBER"]
        want = [] if dialect == "13" else [("DIALEDPEERNUMBER", "1000@from-internal")] * 2
        assert dialed == want  # 22's ring_entry, on ;1 and (local_call) ;2
        h.act("Hangup", Channel="fid-q1")
        ev = _run(h, 1.0)
        after = [k for k, _ in _vars(ev, "fid-q2")]
        assert after == (["BRIDGEPEER"] if dialect == "13" else [
            "BRIDGEPEER", "ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS"])
        # the bridged ;2 half leaves its bridge on the queued hangup, before its soft hangup,
        # and leaving gives it Normal Clearing (channel_set_cause)
        own = [m.name for m in ev if m.get("Uniqueid") == "fid-q2" and m.name != "VarSet"]
        assert own[:3] == ["HangupRequest", "BridgeLeave", "SoftHangupRequest"], dialect
        assert next(m for m in ev if m.name == "Hangup" and m["Uniqueid"] == "fid-q2")[
            "Cause"] == "16"


def test_an_abandoning_caller_leaves_the_queue_before_it_hangs_up() -> None:
    """A hangup queued to a waiting caller: app_queue sees it and records the abandon
    (ABANDONED, QueueCallerAbandon, QueueCallerLeave, QUEUEPOSITION) before the channel's
    SoftHangupRequest and Hangup; 22 first fills in its timing variables (queue_exec stop:)."""
    for dialect, expected in (
        ("13", ["HangupRequest", "ABANDONED", "QueueCallerAbandon", "QueueCallerLeave",
                "QUEUEPOSITION", "SoftHangupRequest", "Hangup"]),
        ("22", ["HangupRequest", "QUEUEWAIT", "QUEUEWAIT_MS", "DIALEDTIME", "DIALEDTIME_MS",
                "ANSWEREDTIME", "ANSWEREDTIME_MS", "ABANDONED", "QueueCallerAbandon",
                "QueueCallerLeave", "QUEUEPOSITION", "SoftHangupRequest", "Hangup"]),
    ):
        h = Harness(banner=BANNERS[dialect])
        _pause(h, _A)
        _pause(h, _B)
        _call(h)
        h.run(2.0)
        h.take_events()
        h.act("Hangup", Channel="fid-q1")
        ev = _run(h, 1.0)
        assert _caller_flow(ev) == expected, dialect
        got = dict(_vars(ev, "fid-q2"))
        assert got["ABANDONED"] == "TRUE" and got["QUEUEPOSITION"] == "1"
        if dialect == "22":
            assert (got["ANSWEREDTIME"], got["ANSWEREDTIME_MS"]) == ("0", "0")
            assert got["QUEUEWAIT_MS"] == str(int(got["QUEUEWAIT"]) * 1000)


def test_a_queue_timeout_records_the_abandon_then_the_timing_in_22() -> None:
    """22: the loop's record_abandoned comes before queue_exec's stop: on a timeout."""
    h = Harness(banner=B22)
    _pause(h, _A)
    _pause(h, _B)
    _call(h)
    h.run(2.0)
    h.take_events()
    ev = _run(h, 35.0)
    flow = [f for f in _caller_flow(ev) if f not in ("Hangup", "SoftHangupRequest")]
    assert flow[:10] == ["ABANDONED", "QueueCallerAbandon", "QUEUEWAIT", "QUEUEWAIT_MS",
                         "DIALEDTIME", "DIALEDTIME_MS", "ANSWEREDTIME", "ANSWEREDTIME_MS",
                         "QueueCallerLeave", "QUEUEPOSITION"]
    assert ("QUEUESTATUS", "TIMEOUT") in _vars(ev, "fid-q2")


def _devices(events: list[Message]) -> list[tuple[str, str]]:
    return [(m["Device"], m["State"]) for m in events if m.name == "DeviceStateChange"
            and m["Device"].startswith("Queue:")]


def test_22_publishes_the_queue_devices_on_a_change_only() -> None:
    """app_queue's Queue:Q (RINGING while a caller waits), Queue:Q_pause_IFACE and
    Queue:Q_avail are cached device states: a repeated pause shows nothing (fidelity script
    queue-pause-devstate against Asterisk 22); 13 shows none of them."""
    for dialect in ("13", "22"):
        h = Harness(banner=BANNERS[dialect])
        _pause(h, _B)
        _pause(h, _B)
        _pause(h, _A)  # nobody free now
        _pause(h, _A, False)
        seen = _devices(h.take_events())
        assert seen == ([] if dialect == "13" else [
            (f"Queue:6500_pause_{_B}", "INUSE"), (f"Queue:6500_pause_{_A}", "INUSE"),
            ("Queue:6500_avail", "INUSE"), (f"Queue:6500_pause_{_A}", "NOT_INUSE"),
            ("Queue:6500_avail", "NOT_INUSE")]), dialect
        _call(h)
        ev = _run(h, 3.0)
        order = [m.name for m in ev if m.name in ("DeviceStateChange", "QueueCallerJoin",
                                                  "QueueCallerLeave")
                 and (m.name != "DeviceStateChange" or m["Device"] == "Queue:6500")]
        assert order == (["QueueCallerJoin", "QueueCallerLeave"] if dialect == "13" else [
            "DeviceStateChange", "QueueCallerJoin", "DeviceStateChange", "QueueCallerLeave"])
        assert _devices(ev) == ([] if dialect == "13" else [
            ("Queue:6500", "RINGING"), ("Queue:6500", "NOT_INUSE")])
        # 22: both halves of the answering member's Local pair publish its device state
        local = [m["State"] for m in ev if m.name == "DeviceStateChange" and m["Device"] == _A]
        assert local == ([] if dialect == "13" else ["INUSE", "INUSE"])
