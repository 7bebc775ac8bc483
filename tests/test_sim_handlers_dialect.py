"""The simulator's Asterisk 22 dialect and the gaps the fidelity harness found (no sockets).

Expected answers are what reference Asterisk 13.38.3 / 22.10.1 gave to the scripts of
tests/fidelity.py (see test_fidelity_asterisk.py, which compares them on the wire).
"""

from __future__ import annotations

import dataclasses

import pytest
from test_sim_handlers_kit import B13, B22, Harness

from amicheck.profile import default_profile
from amicheck.sim.actions.dialect import dialect_of


@pytest.mark.parametrize(
    ("banner", "want"),
    [(B13, "13"), (B22, "22"), ("Asterisk Call Manager/2.7.0", "13"), ("garbage", "13")],
)
def test_dialect_follows_the_banner(banner: str, want: str) -> None:
    prof = default_profile()
    prof = dataclasses.replace(prof, settings=dataclasses.replace(prof.settings, banner=banner))
    assert dialect_of(prof) == want


def test_command_framing_per_dialect() -> None:
    m13 = Harness(banner=B13).one("Command", Command="core show channels", ActionID="c")
    assert m13.keys()[:3] == ["Response", "Privilege", "ActionID"] and m13["Response"] == "Follows"
    assert m13.text is not None and m13.text.endswith("0 active calls\n0 calls processed\n")
    m22 = Harness(banner=B22).one("Command", Command="core show channels", ActionID="c")
    assert m22["Response"] == "Success" and m22["Message"] == "Command output follows"
    out = m22.getall("Output")
    assert out[0].startswith("Channel" + " " * 57 + " Location")
    assert out[1:] == ["0 active channels", "0 active calls", "0 calls processed"]


def test_queues_and_listcommands_per_dialect() -> None:
    h13, h22 = Harness(banner=B13), Harness(banner=B22)
    assert h13.act("Queues")[0]["EventList"] == "start"
    assert h22.one("Queues")["Message"].startswith("Invalid/unknown command: Queues.")
    lc13, lc22 = h13.one("ListCommands"), h22.one("ListCommands")
    assert "Queues" in lc13.keys() and "DeviceStateList" not in lc13.keys()
    assert "Queues" not in lc22.keys() and "DataGet" not in lc22.keys()
    assert lc22["DeviceStateList"].endswith("(Priv: call,reporting,all)")
    assert lc22["QueueWithdrawCaller"].endswith("(Priv: <none>)")
    st = h22.one("CoreStatus")
    assert st.keys()[-1] == "CoreProcessedCalls"
    assert "CoreProcessedCalls" not in h13.one("CoreStatus").keys()


def test_queue_member_events_carry_the_snapshot() -> None:
    h = Harness(banner=B13)
    iface = "Local/1000@from-internal"
    assert h.one("QueuePenalty", Queue="6500", Interface=iface, Penalty="2")["Response"] == (
        "Success"
    )
    ev = h.events[-1]
    assert ev.name == "QueueMemberPenalty" and ev["MemberName"] == "Agent 1000"
    assert ev["Penalty"] == "2" and ev.keys()[-1] == "Ringinuse"
    for bad in ("-1",):
        assert h.one("QueuePenalty", Interface=iface, Penalty=bad)["Message"] == (
            "Invalid interface, queuename or penalty"
        )
    h.one("QueuePause", Queue="6500", Interface=iface, Paused="true", Reason="lunch")
    assert h.events[-1].items[-1] == ("Reason", "lunch")  # 13.38's trailing Reason
    h22 = Harness(banner=B22)
    h22.one("QueuePause", Queue="6500", Interface=iface, Paused="true", Reason="lunch")
    ev22 = h22.events[-1]
    assert ev22.keys()[-1] == "Wrapuptime" and "LoginTime" in ev22.keys()


_SRC = {"SrcFilename": "queues.conf", "DstFilename": "new.conf"}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Action-000000": "Frobnicate", "Cat-000000": "x"}, "Unknown action command"),
        ({"Action-000000": "NewCat"}, "Category not specified"),
        ({"Action-000000": "NewCat", "Cat-000000": "general"},
         "Create category did not complete successfully"),
        ({"Action-000000": "Update", "Cat-000000": "nosuch", "Var-000000": "a"},
         "Given category does not exist"),
        ({"Action-000000": "Append", "Cat-000000": "general"},
         "Problem with category, value, or line (if required)"),
        ({"Action-000000": "DelCat", "Cat-000000": "nosuch"}, "Given category does not exist"),
        ({"Action-000000": "Delete", "Cat-000000": "general", "Var-000000": "nosuch"},
         "Update did not complete successfully"),
        ({"Action-000000": "EmptyCat", "Cat-000000": "nosuch"},
         "Given category does not exist"),
    ],
)
def test_updateconfig_error_cases(headers: dict[str, str], message: str) -> None:
    h = Harness(banner=B13)
    m = h.one("UpdateConfig", **_SRC, **headers)
    assert (m["Response"], m["Message"]) == ("Error", message)
    assert h.one("GetConfig", Filename="new.conf")["Message"] == "Config file not found"


def test_updateconfig_writes_what_getconfig_reads() -> None:
    h = Harness(banner=B13)
    edits = {
        "Action-000000": "DelCat", "Cat-000000": "general",
        "Action-000001": "DelCat", "Cat-000001": "6500",
        "Action-000002": "NewCat", "Cat-000002": "fid",
        "Action-000003": "Append", "Cat-000003": "fid", "Var-000003": "size",
        "Value-000003": "3",
        "Action-000004": "Update", "Cat-000004": "fid", "Var-000004": "size",
        "Value-000004": "4",
    }  # fmt: skip
    assert h.one("UpdateConfig", **_SRC, **edits).keys() == ["Response"]
    got = h.one("GetConfig", Filename="new.conf")
    assert got.items[1:] == [("Category-000000", "fid"), ("Line-000000-000000", "size=4")]
    m = h.one("UpdateConfig", SrcFilename="queues.conf", DstFilename="/tmp/x.conf")
    assert m["Message"] == "File requires escalated privileges"
    assert h.one("CreateConfig", Filename="new.conf")["Message"] == "File exists"


def test_updateconfig_22_needs_existing_files() -> None:
    h = Harness(banner=B22)
    assert h.one("UpdateConfig", **_SRC)["Message"] == "File requires escalated privileges"
    h.one("CreateConfig", Filename="new.conf")
    assert h.one("UpdateConfig", **_SRC)["Response"] == "Success"
