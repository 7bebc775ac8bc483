"""privileges.py against Asterisk's rules and the recorded ListCommands output."""

from __future__ import annotations

import pytest
from _conformance import CONFORMANCE_DIR
from hypothesis import given, settings
from hypothesis import strategies as st

from amicheck.privileges import (
    ACTION_PRIVILEGES,
    ALL_MASK,
    ASTERISK22_EXTRA_ACTION_PRIVILEGES,
    STOCK_ACTION_PRIVILEGES,
    UCM_PRIVILEGES,
    Privilege,
    event_visible,
    get_perm,
    mask_to_names,
    may_run,
    names_to_mask,
    parse_listcommands,
    parse_listcommands_line,
    parse_priv_list,
    privilege_header,
    strings_to_mask,
)

CONFORMANCE = CONFORMANCE_DIR


def _listings(version: str) -> dict[str, dict[str, frozenset[str]]]:
    """user -> {action: classes} from a *-decoded.txt recording."""
    path = CONFORMANCE / version / "06-listcommands-decoded.txt"
    out: dict[str, dict[str, frozenset[str]]] = {}
    user = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## as "):
            user = line.split()[2]
            out[user] = {}
            continue
        lc = parse_listcommands_line(line)
        if lc is not None and user:
            out[user][lc.name.lower()] = lc.privileges
    return out


def test_bits_match_manager_h() -> None:
    assert int(Privilege.SYSTEM) == 1
    assert Privilege.ORIGINATE == 1 << 12
    assert Privilege.CC == 1 << 15
    assert Privilege.SECURITY == 1 << 18
    assert Privilege.MESSAGE == 1 << 30
    assert ALL_MASK == 2**31 - 1


def test_ucm_privileges() -> None:
    assert set(UCM_PRIVILEGES) == {
        "all",
        "originate",
        "call",
        "cdr",
        "agent",
        "cc",
        "dtmf",
        "dialplan",
        "reporting",
        "user",
        "security",
    }
    assert not {"system", "command", "config"} & set(UCM_PRIVILEGES)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("CC,DTMF", ()),
        ("system, call", ("system",)),
        ("sys,call", ("system", "call")),
        ("s,x", ("system", "security")),
        ("call,", ("call",)),
        ("call,reporting", ("call", "reporting")),
        ("none", ()),
        ("", ()),
    ],
)
def test_get_perm_quirks(text: str, names: tuple[str, ...]) -> None:
    assert mask_to_names(get_perm(text)) == names


@pytest.mark.parametrize("text", ["all", "call,,user", ",call", "a,x"])
def test_get_perm_grants_all(text: str) -> None:
    assert get_perm(text) == ALL_MASK


@pytest.mark.parametrize(
    ("value", "mask"),
    [("1", 1), ("0", 0), ("off", 0), ("No", 0), ("call", 2), ("", None)],
)
def test_strings_to_mask(value: str, mask: int | None) -> None:
    assert strings_to_mask(value) == mask


def test_strings_to_mask_on_is_everything() -> None:
    m = strings_to_mask("on")
    assert m is not None and event_visible(m, ["security", "call"])


def test_may_run_any_class_suffices() -> None:
    assert may_run(["reporting"], "Status")
    assert may_run(["call"], "status")
    assert not may_run(["cdr"], "Status")
    assert may_run(["all"], "Originate")
    assert not may_run(["reporting"], "Originate")
    assert may_run([], "Ping")
    assert not may_run(["all"], "NoSuchAction")


def test_bridge_actions_need_call_on_ucm_only() -> None:
    for action in ("BridgeKick", "BridgeDestroy", "BridgeList", "BridgeInfo"):
        assert not may_run(["reporting"], action)
        assert may_run(["call"], action)
        assert may_run(["reporting"], action, STOCK_ACTION_PRIVILEGES)


def test_event_visible_needs_every_class() -> None:
    assert event_visible(["call"], ["call"])
    assert not event_visible(["call"], ["call", "security"])
    assert event_visible(["all"], ["security"])
    assert event_visible(ALL_MASK, ["system", "message"])
    assert not event_visible(["reporting"], ["call"])
    assert event_visible(names_to_mask(["agent", "call"]), names_to_mask(["agent"]))


def test_privilege_header() -> None:
    assert privilege_header(["call"]) == "call,all"
    assert privilege_header(["reporting", "system", "call"]) == "system,call,reporting,all"
    assert privilege_header([]) == "<none>"
    assert privilege_header(Privilege.SECURITY) == "security,all"


def test_parse_priv_list() -> None:
    assert parse_priv_list("(Priv: call,reporting,all)") == {"call", "reporting"}
    assert parse_priv_list("(Priv: <none>)") == frozenset()
    assert parse_priv_list("system,all") == {"system"}
    with pytest.raises(ValueError, match="bogus"):
        parse_priv_list("(Priv: bogus,all)")


def test_parse_listcommands_line() -> None:
    lc = parse_listcommands_line("Originate: Originate a call.  (Priv: originate,all)")
    assert lc is not None
    assert (lc.name, lc.synopsis, lc.privileges) == (
        "Originate",
        "Originate a call.",
        frozenset({"originate"}),
    )
    assert parse_listcommands_line("Response: Success") is None


def test_parse_listcommands_pairs() -> None:
    got = parse_listcommands(
        [
            ("Response", "Success"),
            ("Ping", "Keepalive command.  (Priv: <none>)"),
            ("Status", "List channel status.  (Priv: system,call,reporting,all)"),
        ]
    )
    assert set(got) == {"ping", "status"}
    assert got["status"].privileges == {"system", "call", "reporting"}


def test_stock_table_matches_asterisk13_recording() -> None:
    full = _listings("asterisk-13")["ucmamiuser1"]
    assert len(full) == 69
    for action, classes in full.items():
        assert STOCK_ACTION_PRIVILEGES[action] == classes, action


def test_asterisk22_differs_only_by_new_actions() -> None:
    full = _listings("asterisk-22")["ucmamiuser1"]
    known = {a: c for a, c in full.items() if a in STOCK_ACTION_PRIVILEGES}
    for action, classes in known.items():
        assert STOCK_ACTION_PRIVILEGES[action] == classes, action
    assert "queues" not in full  # removed after 13
    extra = {a: c for a, c in full.items() if a not in STOCK_ACTION_PRIVILEGES}
    assert extra == ASTERISK22_EXTRA_ACTION_PRIVILEGES


@pytest.mark.parametrize("user", ["priv_reporting", "priv_user000"])
def test_restricted_listing_is_what_may_run_allows(user: str) -> None:
    listing = _listings("asterisk-13")[user]
    cls = user.removeprefix("priv_").rstrip("0")
    recorded = set(_listings("asterisk-13")["ucmamiuser1"])
    allowed = {a for a in recorded if may_run([cls], a, STOCK_ACTION_PRIVILEGES)}
    assert allowed == set(listing)


def test_ucm_table_covers_stock() -> None:
    assert set(ACTION_PRIVILEGES) == set(STOCK_ACTION_PRIVILEGES)
    assert all(a == a.lower() for a in ACTION_PRIVILEGES)


def _c_instring(bigstr: str, smallstr: str) -> bool:
    """A line-by-line port of Asterisk's ast_instring(bigstr, smallstr, ',') as a reference."""
    s = bigstr + "\0"
    val = 0
    while True:
        nxt = s.find(",", val)
        if nxt != -1 and nxt < len(bigstr):
            n = nxt - val
            if s[val : val + n] == (smallstr + "\0" * n)[:n]:  # strncmp(val, smallstr, n) == 0
                return True
        else:
            return smallstr == bigstr[val:]
        val = nxt + 1
        if s[val] == "\0":
            return False


@given(st.text(alphabet="acdeglmnorstuy,ASC ", max_size=30))
@settings(max_examples=300, deadline=None)
def test_get_perm_matches_c_reference(text: str) -> None:
    from amicheck.privileges import PERM_NAMES

    expected = 0
    for name, bit in PERM_NAMES:
        if text and _c_instring(text, name):
            expected |= int(bit)
    assert get_perm(text) == expected
