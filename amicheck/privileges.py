"""AMI privilege classes, the action -> required-class table, and ``(Priv: ...)`` parsing.

Bits and names are Asterisk's (``include/asterisk/manager.h`` EVENT_FLAG_*, ``main/manager.c``
``perms[]``); see ami-reference.md section 4. Privilege lists in a profile use UCM names, which
are a subset of Asterisk's. Two rules from ``main/manager.c`` drive everything here:

* an action runs if it needs no class or ``writeperm & authority != 0`` (ANY listed class);
* an event is sent if ``(send_events & class) == class`` (ALL of its classes).

``all`` is ``INT_MAX``, so it covers every class.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "Privilege",
    "ALL_MASK",
    "PERM_NAMES",
    "UCM_PRIVILEGES",
    "ASTERISK_PRIVILEGES",
    "STOCK_ACTION_PRIVILEGES",
    "ASTERISK22_EXTRA_ACTION_PRIVILEGES",
    "ACTION_PRIVILEGES",
    "UCM_PRIVILEGED_BRIDGE_ACTIONS",
    "ListedCommand",
    "get_perm",
    "strings_to_mask",
    "names_to_mask",
    "mask_to_names",
    "may_run",
    "event_visible",
    "parse_priv_list",
    "parse_listcommands_line",
    "parse_listcommands",
    "privilege_header",
    "required_classes",
]


class Privilege(enum.IntFlag):
    """Asterisk's EVENT_FLAG_* bits (manager.h)."""

    NONE = 0
    SYSTEM = 1 << 0
    CALL = 1 << 1
    LOG = 1 << 2
    VERBOSE = 1 << 3
    COMMAND = 1 << 4
    AGENT = 1 << 5
    USER = 1 << 6
    CONFIG = 1 << 7
    DTMF = 1 << 8
    REPORTING = 1 << 9
    CDR = 1 << 10
    DIALPLAN = 1 << 11
    ORIGINATE = 1 << 12
    AGI = 1 << 13
    # bit 14 is EVENT_FLAG_HOOKRESPONSE (internal, no name)
    CC = 1 << 15
    AOC = 1 << 16
    TEST = 1 << 17
    SECURITY = 1 << 18
    MESSAGE = 1 << 30


#: ``all`` is INT_MAX in Asterisk: every bit, including unnamed ones.
ALL_MASK = 0x7FFFFFFF

#: The ``perms[]`` array of main/manager.c, in its order (which is the order of
#: ``Privilege:`` headers and ``(Priv: ...)`` lists); ``all`` and ``none`` come last.
PERM_NAMES: tuple[tuple[str, int], ...] = (
    ("system", Privilege.SYSTEM),
    ("call", Privilege.CALL),
    ("log", Privilege.LOG),
    ("verbose", Privilege.VERBOSE),
    ("command", Privilege.COMMAND),
    ("agent", Privilege.AGENT),
    ("user", Privilege.USER),
    ("config", Privilege.CONFIG),
    ("dtmf", Privilege.DTMF),
    ("reporting", Privilege.REPORTING),
    ("cdr", Privilege.CDR),
    ("dialplan", Privilege.DIALPLAN),
    ("originate", Privilege.ORIGINATE),
    ("agi", Privilege.AGI),
    ("cc", Privilege.CC),
    ("aoc", Privilege.AOC),
    ("test", Privilege.TEST),
    ("security", Privilege.SECURITY),
    ("message", Privilege.MESSAGE),
    ("all", ALL_MASK),
    ("none", 0),
)
_BITS: dict[str, int] = {name: int(bit) for name, bit in PERM_NAMES}
_CLASS_ORDER: tuple[str, ...] = tuple(n for n, _ in PERM_NAMES if n not in ("all", "none"))

#: Every class name Asterisk knows (without ``all``/``none``).
ASTERISK_PRIVILEGES: frozenset[str] = frozenset(_CLASS_ORDER)

#: The privileges a UCM6XXX offers (UCM guide): no system, command or config.
UCM_PRIVILEGES: tuple[str, ...] = (
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
)

_NONE: frozenset[str] = frozenset()


def _p(*names: str) -> frozenset[str]:
    return frozenset(names)


#: Stock Asterisk 13 (13.4.0 source, 13.38.3 ListCommands recording): lower-case action ->
#: classes of which ANY one lets a user run it (empty: none needed). ``all`` is implied.
STOCK_ACTION_PRIVILEGES: dict[str, frozenset[str]] = {
    # main/manager.c
    "login": _NONE,
    "logoff": _NONE,
    "challenge": _NONE,
    "ping": _NONE,
    "events": _NONE,
    "listcommands": _NONE,
    "waitevent": _NONE,
    "originate": _p("originate"),
    "hangup": _p("system", "call"),
    "absolutetimeout": _p("system", "call"),
    "status": _p("system", "call", "reporting"),
    "getvar": _p("call", "reporting"),
    "extensionstate": _p("call", "reporting"),
    "extensionstatelist": _p("call", "reporting"),
    "presencestate": _p("call", "reporting"),
    "mailboxstatus": _p("call", "reporting"),
    "mailboxcount": _p("call", "reporting"),
    "setvar": _p("call"),
    "redirect": _p("call"),
    "atxfer": _p("call"),
    "cancelatxfer": _p("call"),
    "blindtransfer": _p("call"),
    "sendtext": _p("call"),
    "coreshowchannels": _p("system", "reporting"),
    "corestatus": _p("system", "reporting"),
    "coresettings": _p("system", "reporting"),
    "loggerrotate": _p("system", "reporting"),
    "command": _p("command"),
    "getconfig": _p("system", "config"),
    "getconfigjson": _p("system", "config"),
    "updateconfig": _p("config"),
    "createconfig": _p("config"),
    "listcategories": _p("config"),
    "showdialplan": _p("config", "reporting"),
    "reload": _p("system", "config"),
    "moduleload": _p("system"),
    "modulecheck": _p("system"),
    "filter": _p("system"),
    "userevent": _p("user"),
    "aocmessage": _p("aoc"),
    "messagesend": _p("message"),
    "dataget": _NONE,
    # main/db.c
    "dbget": _p("system", "reporting"),
    "dbput": _p("system"),
    "dbdel": _p("system"),
    "dbdeltree": _p("system"),
    # pbx / features / core_local
    "dialplanextensionadd": _p("system"),
    "dialplanextensionremove": _p("system"),
    "bridge": _p("call"),
    "localoptimizeaway": _p("system", "call"),
    # main/manager_bridges.c, bridge technologies: no class at all in stock Asterisk
    "bridgelist": _NONE,
    "bridgeinfo": _NONE,
    "bridgedestroy": _NONE,
    "bridgekick": _NONE,
    "bridgetechnologylist": _NONE,
    "bridgetechnologysuspend": _NONE,
    "bridgetechnologyunsuspend": _NONE,
    # apps/app_queue.c
    "queues": _NONE,
    "queuestatus": _NONE,
    "queuesummary": _NONE,
    "queuereload": _NONE,
    "queuereset": _NONE,
    "queuerule": _NONE,
    "queueadd": _p("agent"),
    "queueremove": _p("agent"),
    "queuepause": _p("agent"),
    "queuepenalty": _p("agent"),
    "queuelog": _p("agent"),
    "queuememberringinuse": _p("agent"),
    # res_parking / app_agent_pool (modules not loaded in the recording; classes from source)
    "park": _p("call"),
    "parkedcalls": _p("call"),
    "parkinglots": _p("call"),
    "agents": _p("agent"),
    "agentlogoff": _p("agent"),
}

#: Actions newer Asterisk (22.x ListCommands recording) has that 13.x lacks, with their
#: classes; 22 also dropped ``Queues`` and ``DataGet``. Not part of the simulated UCM.
ASTERISK22_EXTRA_ACTION_PRIVILEGES: dict[str, frozenset[str]] = {
    "coreshowchannelmap": _p("system", "reporting"),
    "dbgettree": _p("system", "reporting"),
    "devicestatelist": _p("call", "reporting"),
    "presencestatelist": _p("call", "reporting"),
    "queuechangeprioritycaller": _NONE,
    "queuewithdrawcaller": _NONE,
}

#: Actions the compliant UCM model restricts to ``call`` although stock Asterisk needs
#: nothing (the ``bridge-unprivileged`` fault restores the stock rule).
UCM_PRIVILEGED_BRIDGE_ACTIONS: frozenset[str] = frozenset(
    {"bridgekick", "bridgedestroy", "bridgelist", "bridgeinfo"}
)

#: The simulated UCM's table: stock, with the Bridge* actions above requiring ``call``.
ACTION_PRIVILEGES: dict[str, frozenset[str]] = {
    **STOCK_ACTION_PRIVILEGES,
    **{a: _p("call") for a in UCM_PRIVILEGED_BRIDGE_ACTIONS},
}


# --- masks ---------------------------------------------------------------------------------


def _instring(bigstr: str, smallstr: str) -> bool:
    """``ast_instring(bigstr, smallstr, ',')``: non-last tokens match as *prefixes*."""
    tokens = bigstr.split(",")
    for i, tok in enumerate(tokens):
        if i == len(tokens) - 1:
            return tok == smallstr
        if smallstr.startswith(tok):  # strncmp(val, smallstr, len(tok)) == 0
            return True
        if i == len(tokens) - 2 and tokens[-1] == "":
            return False  # "call," : the loop ends at the NUL after the last comma
    return False


def get_perm(instr: str | None) -> int:
    """Asterisk's ``get_perm``: a ``read=``/``write=`` comma list to a bitmask, quirks included.

    Case-sensitive (``CC`` grants nothing), no space trimming (``system, call`` is system
    only), non-last tokens match as prefixes (``sys,call``), an empty non-last token grants
    all (``call,,user``).
    """
    if not instr:
        return 0
    mask = 0
    for name, bit in PERM_NAMES:
        if _instring(instr, name):
            mask |= int(bit)
    return mask


_TRUE = frozenset({"yes", "true", "y", "t", "1", "on"})
_FALSE = frozenset({"no", "false", "n", "f", "0", "off"})


def strings_to_mask(value: str) -> int | None:
    """Asterisk's ``strings_to_mask`` (``Events:``/``EventMask:``); None means invalid (-1)."""
    if value == "":
        return None
    if value.isascii() and value.isdigit():
        return int(value) & 0xFFFFFFFF if int(value) < 2**31 else ALL_MASK
    low = value.lower()
    if low in _FALSE:
        return 0
    if low in _TRUE:
        mask = 0
        for _, bit in PERM_NAMES:
            mask |= int(bit)
        return mask
    return get_perm(value)


def names_to_mask(names: Iterable[str]) -> int:
    """Bitmask of a set of class names (``all`` = every bit); unknown names add nothing."""
    mask = 0
    for n in names:
        mask |= _BITS.get(n, 0)
    return mask


def mask_to_names(mask: int) -> tuple[str, ...]:
    """Class names of ``mask`` in Asterisk order, without ``all``."""
    return tuple(n for n in _CLASS_ORDER if mask & _BITS[n])


def privilege_header(classes: Iterable[str] | int) -> str:
    """Asterisk's ``authority_to_str``: ``"call,all"``; ``"<none>"`` for no class."""
    mask = classes if isinstance(classes, int) else names_to_mask(classes)
    if mask == 0:
        return "<none>"
    names = [n for n in _CLASS_ORDER if mask & _BITS[n]]
    return ",".join([*names, "all"])


# --- the two checks ------------------------------------------------------------------------


def required_classes(
    action: str, table: dict[str, frozenset[str]] | None = None
) -> frozenset[str] | None:
    """Classes that grant ``action`` (any one suffices), or None if the action is unknown."""
    return (ACTION_PRIVILEGES if table is None else table).get(action.lower())


def may_run(
    user_privs: Iterable[str],
    action: str,
    table: dict[str, frozenset[str]] | None = None,
) -> bool:
    """Whether a user with ``user_privs`` (write) may run ``action`` (case-insensitive).

    Unknown actions return False (they do not exist on the target; the session core answers
    them with ``Invalid/unknown command`` before privileges are looked at).
    """
    need = required_classes(action, table)
    if need is None:
        return False
    if not need:
        return True
    return names_to_mask(user_privs) & names_to_mask(need) != 0


def event_visible(read_privs: Iterable[str] | int, event_classes: Iterable[str] | int) -> bool:
    """Whether an event of ``event_classes`` reaches a session with ``read_privs``.

    ``(send_events & class) == class``: the session needs EVERY class of the event. Pass the
    session's ``readperm & eventmask`` as an int to include an ``Events:`` mask.
    """
    have = read_privs if isinstance(read_privs, int) else names_to_mask(read_privs)
    need = event_classes if isinstance(event_classes, int) else names_to_mask(event_classes)
    return have & need == need


# --- ListCommands --------------------------------------------------------------------------

_PRIV_RE = re.compile(r"\(Priv:\s*([^)]*)\)\s*$")


def parse_priv_list(text: str) -> frozenset[str]:
    """``"(Priv: call,reporting,all)"`` -> ``{"call", "reporting"}``.

    The trailing ``all`` is an artefact of ``authority_to_str`` and is dropped, so the result
    compares equal to :data:`ACTION_PRIVILEGES` values; ``<none>`` gives the empty set.
    Accepts the bare list (``"call,all"``) too. Raises ValueError on anything else.
    """
    s = text.strip()
    m = _PRIV_RE.search(s)
    body = m.group(1) if m else s
    body = body.strip()
    if body in ("<none>", ""):
        return frozenset()
    names = [t.strip().lower() for t in body.split(",")]
    bad = [n for n in names if n not in _BITS]
    if bad:
        raise ValueError(f"unknown privilege class(es) {bad} in {text!r}")
    return frozenset(n for n in names if n not in ("all", "none"))


@dataclass(frozen=True)
class ListedCommand:
    """One ``Name: Synopsis  (Priv: ...)`` line of a ListCommands response."""

    name: str
    synopsis: str
    privileges: frozenset[str]


_LINE_RE = re.compile(r"^(?P<name>[A-Za-z0-9_]+):\s?(?P<syn>.*?)\s*\(Priv:\s*(?P<priv>[^)]*)\)\s*$")


def parse_listcommands_line(line: str) -> ListedCommand | None:
    """Parse ``Originate: Originate a call.  (Priv: originate,all)``; None if not that form."""
    m = _LINE_RE.match(line.rstrip("\r\n"))
    if m is None:
        return None
    return ListedCommand(m["name"], m["syn"], parse_priv_list(m["priv"]))


def parse_listcommands(headers: Iterable[tuple[str, str]]) -> dict[str, ListedCommand]:
    """The commands of a ListCommands response given as ``(key, value)`` pairs.

    Keys are the action names (lower-cased in the result); pairs without ``(Priv: ...)``
    (Response, ActionID, ...) are skipped.
    """
    out: dict[str, ListedCommand] = {}
    for key, value in headers:
        lc = parse_listcommands_line(f"{key}: {value}")
        if lc is not None:
            out[lc.name.lower()] = lc
    return out
