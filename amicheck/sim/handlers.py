"""AMI action handlers of the simulated UCM: what each action answers, Asterisk 13's way.

The session core (server.py/session.py) frames input, handles Login/Logoff/Challenge/Events
and checks the write privilege; every other action lands here through :func:`dispatch`.
Each handler answers exactly as Asterisk 13.38 does in ../shared/conformance/ (reply text,
header order, ActionID placement, event lists), except where the UCM guide says otherwise:

- ``Queues`` answers as an event list (the guide), not as 13.x raw CLI text:
  ``Response: Success`` + ``EventList: start`` + ``Message: Queues will follow``, then per
  queue ``Event: QueueStatus`` (the fields of QueueStatus's ``QueueParams`` item), per member
  ``Event: QueueMemberStatus`` (the fields of the broadcast QueueMemberStatus event: Queue,
  MemberName, Interface, StateInterface, ...), and ``Event: QueuesComplete`` with
  ``EventList: Complete`` and ``ListItems``. Every item carries the ActionID last.
- ListCommands lists only what the user may run (``privileges.may_run``), ``(Priv: ...)``
  from the UCM table (Bridge* need ``call``), unless a fault says otherwise.
- GetConfig refuses paths outside the config directory (``File requires escalated
  priveledges``, the post-2022 text) unless the ``getconfig-traversal`` fault is on.

Handlers never do I/O and never sleep; ``ctx.reply`` queues a message to the session and
the PBX (``ctx.pbx``) emits events and schedules delays through the core.
"""

from __future__ import annotations

import json
import posixpath
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from amicheck.errors import AmiCheckError
from amicheck.privileges import (
    ACTION_PRIVILEGES,
    STOCK_ACTION_PRIVILEGES,
    Privilege,
    may_run,
    names_to_mask,
    privilege_header,
)
from amicheck.profile import Profile
from amicheck.protocol.message import Message
from amicheck.sim import replies
from amicheck.sim.pbx import (
    ENDPOINTS,
    EXTENSION_STATES,
    STATE_DESC,
    Bridge,
    Channel,
    OriginateSpec,
    Pbx,
    Queue,
    QueueMember,
)

__all__ = [
    "ActionContext",
    "Handler",
    "HANDLERS",
    "SYNOPSIS",
    "HandlerError",
    "RequestLike",
    "dispatch",
    "ASTERISK_VERSION",
]

#: What CoreSettings/``core show version`` report (13.x; the banner's AMI version is the
#: profile's).
ASTERISK_VERSION = "13.4.0"


class RequestLike(Protocol):
    """The part of :class:`amicheck.protocol.Request` the handlers use."""

    def header(self, name: str, *, skip_empty: bool = False, last: bool = False) -> str: ...

    @property
    def message(self) -> Message: ...


@dataclass
class ActionContext:
    """Everything a handler may touch for one action of one session (docs/internals.md)."""

    session_id: str
    username: str
    privileges: frozenset[str]
    action_id: str | None
    faults: frozenset[str]
    profile: Profile
    pbx: Pbx
    reply: Callable[[Message], None]
    local: str
    remote: str
    tls: bool


Handler = Callable[[ActionContext, RequestLike], None]


class HandlerError(AmiCheckError):
    """A handler raised: a simulator bug, collected by the core and re-raised at teardown."""

    def __init__(self, action: str, cause: BaseException) -> None:
        super().__init__(f"simulator handler for {action!r} raised "
                         f"{type(cause).__name__}: {cause}")
        self.action = action
        self.cause = cause


# --- the UCM's action list (ListCommands) ----------------------------------------------------

#: Action name -> synopsis, as Asterisk 13.38 lists them (06-listcommands recording), plus
#: the parking and agent actions a UCM loads. Login/Logoff/Challenge/Events are the core's.
SYNOPSIS: dict[str, str] = {
    "AbsoluteTimeout": "Set absolute timeout.",
    "AgentLogoff": "Sets an agent as no longer logged in.",
    "Agents": "Lists agents and their status.",
    "AOCMessage": "Generate an Advice of Charge message on a channel.",
    "Atxfer": "Attended transfer.",
    "BlindTransfer": "Blind transfer channel(s) to the given destination",
    "Bridge": "Bridge two channels already in the PBX.",
    "BridgeDestroy": "Destroy a bridge.",
    "BridgeInfo": "Get information about a bridge.",
    "BridgeKick": "Kick a channel from a bridge.",
    "BridgeList": "Get a list of bridges in the system.",
    "BridgeTechnologyList": "List available bridging technologies and their statuses.",
    "BridgeTechnologySuspend": "Suspend a bridging technology.",
    "BridgeTechnologyUnsuspend": "Unsuspend a bridging technology.",
    "CancelAtxfer": "Cancel an attended transfer.",
    "Challenge": "Generate Challenge for MD5 Auth.",
    "Command": "Execute Asterisk CLI Command.",
    "CoreSettings": "Show PBX core settings (version etc).",
    "CoreShowChannels": "List currently active channels.",
    "CoreStatus": "Show PBX core status variables.",
    "CreateConfig": "Creates an empty file in the configuration directory.",
    "DataGet": "Retrieve the data api tree.",
    "DBDel": "Delete DB entry.",
    "DBDelTree": "Delete DB Tree.",
    "DBGet": "Get DB Entry.",
    "DBPut": "Put DB entry.",
    "DialplanExtensionAdd": "Add an extension to the dialplan",
    "DialplanExtensionRemove": "Remove an extension from the dialplan",
    "Events": "Control Event Flow.",
    "ExtensionState": "Check Extension Status.",
    "ExtensionStateList": "List the current known extension states.",
    "Filter": "Dynamically add filters for the current manager session.",
    "GetConfig": "Retrieve configuration.",
    "GetConfigJSON": "Retrieve configuration (JSON format).",
    "Getvar": "Gets a channel variable or function value.",
    "Hangup": "Hangup channel.",
    "ListCategories": "List categories in configuration file.",
    "ListCommands": "List available manager commands.",
    "LocalOptimizeAway": "Optimize away a local channel when possible.",
    "LoggerRotate": "Reload and rotate the Asterisk logger.",
    "Login": "Login Manager.",
    "Logoff": "Logoff Manager.",
    "MailboxCount": "Check Mailbox Message Count.",
    "MailboxStatus": "Check mailbox.",
    "MessageSend": "Send an out of call message to an endpoint.",
    "ModuleCheck": "Check if module is loaded.",
    "ModuleLoad": "Module management.",
    "Originate": "Originate a call.",
    "Park": "Park a channel.",
    "ParkedCalls": "List parked calls.",
    "Parkinglots": "Get a list of parking lots",
    "Ping": "Keepalive command.",
    "PresenceState": "Check Presence State",
    "QueueAdd": "Add interface to queue.",
    "QueueLog": "Adds custom entry in queue_log.",
    "QueueMemberRingInUse": "Set the ringinuse value for a queue member.",
    "QueuePause": "Makes a queue member temporarily unavailable.",
    "QueuePenalty": "Set the penalty for a queue member.",
    "QueueReload": "Reload a queue, queues, or any sub-section of a queue or queues.",
    "QueueRemove": "Remove interface from queue.",
    "QueueReset": "Reset queue statistics.",
    "QueueRule": "Queue Rules.",
    "Queues": "Queues.",
    "QueueStatus": "Show queue status.",
    "QueueSummary": "Show queue summary.",
    "Redirect": "Redirect (transfer) a call.",
    "Reload": "Send a reload event.",
    "SendText": "Sends a text message to channel. A content type\tcan be optionally specified. "
                "If not set it is set to an empty string allowing a custom handler to default "
                "it as it sees fit.",
    "Setvar": "Sets a channel variable or function value.",
    "ShowDialPlan": "Show dialplan contexts and extensions",
    "Status": "List channel status.",
    "UpdateConfig": "Update basic configuration.",
    "UserEvent": "Send an arbitrary event.",
    "WaitEvent": "Wait for an event to occur.",
}


# --- small helpers ---------------------------------------------------------------------------


def _aid(ctx: ActionContext) -> str | None:
    """ActionID as astman_send_response_full writes it: only when non-empty."""
    return ctx.action_id or None


def _ack(ctx: ActionContext, message: str | None = None,
         extra: Iterable[tuple[str, str]] = ()) -> None:
    ctx.reply(replies.response("Success", _aid(ctx), message, extra))


def _err(ctx: ActionContext, message: str) -> None:
    ctx.reply(replies.error(_aid(ctx), message))


def _listack(ctx: ActionContext, message: str) -> None:
    ctx.reply(replies.response("Success", _aid(ctx), message, event_list="start"))


def _item(ctx: ActionContext, name: str, fields: Iterable[tuple[str, str]], *,
          id_first: bool = False) -> None:
    ctx.reply(replies.list_item(name, _aid(ctx), fields, action_id_last=not id_first))


def _complete(ctx: ActionContext, name: str, count: int,
              extra: Iterable[tuple[str, str]] = ()) -> None:
    """astman_send_list_complete_start/end: Event, ActionID, EventList, ListItems, extras."""
    items = [("Event", name)]
    aid = _aid(ctx)
    if aid is not None:
        items.append(("ActionID", aid))
    items += [("EventList", "Complete"), ("ListItems", str(count)), *extra]
    ctx.reply(Message(items))


def _has_system(ctx: ActionContext) -> bool:
    return bool(names_to_mask(ctx.privileges) & Privilege.SYSTEM)


def _scan_int(text: str) -> int | None:
    """sscanf("%30d"): leading whitespace, optional sign, digits; None when none."""
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else None


def _true(text: str) -> bool:
    """ast_true."""
    return text.strip().lower() in ("yes", "true", "y", "t", "1", "on")


def _channel_or_error(ctx: ActionContext, name: str, missing: str = "No such channel"
                      ) -> Channel | None:
    ch = ctx.pbx.find_channel(name)
    if ch is None:
        _err(ctx, missing)
    return ch


def _callerid_parse(text: str) -> tuple[str | None, str | None]:
    """ast_callerid_parse -> (name, number); ast_shrink_phone_number on the number."""
    text = text.strip()
    if not text:
        return None, None
    m = re.match(r'^\s*"?([^"<]*?)"?\s*<([^>]*)>', text)
    if m:
        name, num = m.group(1).strip() or None, m.group(2).strip()
    elif re.fullmatch(r"[0-9+*#()\-. ]+", text):
        name, num = None, text
    else:
        name, num = text, None
    if num is not None:
        num = re.sub(r"[()\-. ]", "", num) or None
    return name, num


# --- core actions ----------------------------------------------------------------------------


def _ping(ctx: ActionContext, req: RequestLike) -> None:
    """action_ping: Response, ActionID, Ping: Pong, Timestamp (sec.usec)."""
    ctx.reply(replies.response("Success", _aid(ctx), None, [
        ("Ping", "Pong"), ("Timestamp", f"{ctx.pbx.now():.6f}"),
    ]))


def _listcommands(ctx: ActionContext, req: RequestLike) -> None:
    """The actions the user may run, ``Name: Synopsis  (Priv: ...)``, sorted like Asterisk."""
    table = STOCK_ACTION_PRIVILEGES if "bridge-unprivileged" in ctx.faults else ACTION_PRIVILEGES
    leak = "listcommands-leak" in ctx.faults
    items: list[tuple[str, str]] = []
    for name in sorted(SYNOPSIS, key=str.lower):
        need = table.get(name.lower(), frozenset())
        if leak or may_run(ctx.privileges, name, table):
            items.append((name, f"{SYNOPSIS[name]}  (Priv: {privilege_header(need)})"))
    ctx.reply(replies.response("Success", _aid(ctx), None, items))


_FORBIDDEN_APPS = ("system", "exec", "agi", "mixmonitor", "externalivr")


def _originate(ctx: ActionContext, req: RequestLike) -> None:
    """action_originate (13.38): checks in Asterisk's order, async and sync."""
    name = req.header("Channel")
    exten = req.header("Exten")
    context = req.header("Context")
    priority = req.header("Priority")
    timeout = req.header("Timeout")
    app = req.header("Application")
    appdata = req.header("Data")
    if not name:
        return _err(ctx, "Channel not specified")
    pi = 0
    if priority:
        parsed = _scan_int(priority)
        if parsed is None:
            return _err(ctx, "Invalid priority")  # no priority labels in the model
        pi = parsed
    to = 30000
    if timeout:
        parsed = _scan_int(timeout)
        if parsed is None:
            return _err(ctx, "Invalid timeout")
        to = parsed
    tech, slash, data = name.partition("/")
    if not slash:
        return _err(ctx, "Invalid channel")
    cid_name, cid_num = _callerid_parse(req.header("CallerID"))
    if app and not _has_system(ctx) and "originate-system" not in ctx.faults:
        low = app.lower()
        if any(word in low for word in _FORBIDDEN_APPS):
            return _err(ctx, "Originate Access Forbidden: Application")
        if "SHELL" in appdata or "EVAL" in appdata:
            return _err(ctx, "Originate Access Forbidden: Data")
    variables: list[tuple[str, str]] = []
    for value in req.message.getall("Variable"):
        for part in value.split(","):
            k, eq, v = part.partition("=")
            if eq and k.strip():
                variables.append((k.strip(), v))
    spec = OriginateSpec(
        tech=tech, data=data, context=context, exten=exten, priority=pi, application=app,
        appdata=appdata, cid_num=cid_num, cid_name=cid_name, timeout_ms=to,
        account=req.header("Account"), variables=tuple(variables), action_id=_aid(ctx),
        async_=_true(req.header("Async")),
    )
    if spec.async_:
        _ack(ctx, "Originate successfully queued")
        ctx.pbx.originate(spec)
        return None
    if not app and not pi:
        return _err(ctx, "Originate with 'Exten' requires 'Context' and 'Priority'")
    plan = ctx.pbx.plan_originate(spec)
    reply = (replies.success(_aid(ctx), "Originate successfully queued") if plan.ok
             else replies.error(_aid(ctx), "Originate failed"))
    if tech.lower() == "local" or plan.delay <= 0:
        ctx.reply(reply)
        ctx.pbx.originate(spec)
    else:  # a synchronous Originate answers when the phone answers (or gives up)
        ctx.pbx.originate(spec)
        ctx.pbx.later(plan.delay, lambda: ctx.reply(reply))
    return None


def _hangup(ctx: ActionContext, req: RequestLike) -> None:
    """ast_manager_hangup_helper: exact name, or ``/regex/`` with a ChannelHungup list."""
    target = req.header("Channel")
    cause_s = req.header("Cause")
    if not target:
        return _err(ctx, "No channel specified")
    cause = 0
    if cause_s:
        parsed = _scan_int(cause_s)
        if parsed is not None and 0 <= parsed <= 127 and cause_s.strip().lstrip("+-").isdigit():
            cause = parsed
    pbx = ctx.pbx
    if not target.startswith("/"):
        ch = _channel_or_error(ctx, target)
        if ch is None:
            return None
        _ack(ctx, "Channel Hungup")
        pbx.hangup(ch, cause)
        return None
    pattern = target[1:-1] if target.endswith("/") and len(target) > 1 else target[1:]
    try:
        rx = re.compile(pattern)
    except re.error:
        return _err(ctx, "Regex compile failed on: " + pattern)
    _listack(ctx, "Channels hung up will follow")
    matched = [c for c in list(pbx.channels.values()) if rx.search(c.name)]
    for ch in matched:
        _item(ctx, "ChannelHungup", [("Channel", ch.name)])
    _complete(ctx, "ChannelsHungupListComplete", len(matched))
    for ch in matched:
        pbx.hangup(ch, cause)
    return None


def _status(ctx: ActionContext, req: RequestLike) -> None:
    """action_status: Status items (Privilege: Call) and StatusComplete with Items."""
    name = req.header("Channel")
    pbx = ctx.pbx
    if name:
        ch = _channel_or_error(ctx, name)
        if ch is None:
            return None
        chans = [ch]
    else:
        chans = list(pbx.channels.values())
    wanted = [v.strip() for v in req.header("Variables").split(",") if v.strip()]
    _listack(ctx, "Channel status will follow")
    now = pbx.now()
    for ch in chans:
        fields = [("Privilege", "Call"), *pbx.snapshot(ch),
                  ("Type", ch.tech), ("DNID", ""),
                  ("EffectiveConnectedLineNum", ch.conn_num or "<unknown>"),
                  ("EffectiveConnectedLineName", ch.conn_name or "<unknown>"),
                  ("TimeToHangup", str(int(ch.hangup_at)) if ch.hangup_at else "0"),
                  ("BridgeID", ch.bridge or ""),
                  ("Application", ch.application), ("Data", ch.appdata),
                  ("Nativeformats", "(ulaw)"), ("Readformat", "ulaw"), ("Readtrans", ""),
                  ("Writeformat", "ulaw"), ("Writetrans", ""), ("Callgroup", "0"),
                  ("Pickupgroup", "0"), ("Seconds", str(int(now - ch.created)))]
        fields += [("Variable", f"{v}={pbx.get_var(ch, v)}") for v in wanted]
        _item(ctx, "Status", fields)
    _complete(ctx, "StatusComplete", len(chans), [("Items", str(len(chans)))])
    return None


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _coreshowchannels(ctx: ActionContext, req: RequestLike) -> None:
    """CoreShowChannel items (ActionID right after Event), CoreShowChannelsComplete."""
    pbx = ctx.pbx
    chans = list(pbx.channels.values())
    _listack(ctx, "Channels will follow")
    now = pbx.now()
    for ch in chans:
        _item(ctx, "CoreShowChannel", [*pbx.snapshot(ch), ("Application", ch.application),
                                       ("ApplicationData", ch.appdata),
                                       ("Duration", _duration(now - ch.created)),
                                       ("BridgeId", ch.bridge or "")], id_first=True)
    _complete(ctx, "CoreShowChannelsComplete", len(chans))


def _ami_version(ctx: ActionContext) -> str:
    banner = ctx.profile.settings.banner
    return banner.rsplit("/", 1)[-1] if "/" in banner else "2.7.0"


def _coresettings(ctx: ActionContext, req: RequestLike) -> None:
    ctx.reply(replies.response("Success", _aid(ctx), None, [
        ("AMIversion", _ami_version(ctx)), ("AsteriskVersion", ASTERISK_VERSION),
        ("SystemName", ""), ("CoreMaxCalls", "0"), ("CoreMaxLoadAvg", "0.000000"),
        ("CoreRunUser", ""), ("CoreRunGroup", ""), ("CoreMaxFilehandles", "0"),
        ("CoreRealTimeEnabled", "No"), ("CoreCDRenabled", "Yes"), ("CoreHTTPenabled", "No"),
    ]))


def _utc(ts: float, fmt: str) -> str:
    return time.strftime(fmt, time.gmtime(ts))


def _corestatus(ctx: ActionContext, req: RequestLike) -> None:
    pbx = ctx.pbx
    ctx.reply(replies.response("Success", _aid(ctx), None, [
        ("CoreStartupDate", _utc(pbx.started, "%Y-%m-%d")),
        ("CoreStartupTime", _utc(pbx.started, "%H:%M:%S")),
        ("CoreReloadDate", _utc(pbx.reloaded, "%Y-%m-%d")),
        ("CoreReloadTime", _utc(pbx.reloaded, "%H:%M:%S")),
        ("CoreCurrentCalls", str(len(pbx.channels))),
    ]))


def _var_forbidden(ctx: ActionContext, text: str) -> bool:
    """function_capable_string_allowed_with_auths: SHELL/EVAL need the system class."""
    if _has_system(ctx) or "getvar-shell" in ctx.faults:
        return False
    return "SHELL" in text or "EVAL" in text


def _getvar(ctx: ActionContext, req: RequestLike) -> None:
    varname = req.header("Variable")
    name = req.header("Channel")
    if not varname:
        return _err(ctx, "No variable specified")
    if _var_forbidden(ctx, varname):
        return _err(ctx, "GetVar Access Forbidden: Variable")
    ch = None
    if name:
        ch = _channel_or_error(ctx, name)
        if ch is None:
            return None
    value = ctx.pbx.get_var(ch, varname)
    _ack(ctx, None, [("Variable", varname), ("Value", value)])
    return None


_WRITABLE_FUNCS = ("CALLERID", "DB", "GLOBAL", "CHANNEL")


def _setvar(ctx: ActionContext, req: RequestLike) -> None:
    varname = req.header("Variable")
    name = req.header("Channel")
    value = req.header("Value")
    if not varname:
        return _err(ctx, "No variable specified")
    pbx = ctx.pbx
    ch = None
    if name:
        ch = _channel_or_error(ctx, name)
        if ch is None:
            return None
    if varname.endswith(")") and "(" in varname:
        func, _, arg = varname[:-1].partition("(")
        up = func.upper()
        if up not in _WRITABLE_FUNCS or (up in ("CALLERID", "CHANNEL") and ch is None):
            return _err(ctx, "Variable not set")
        if up == "DB":
            fam, _, key = arg.partition("/")
            pbx.db[(fam, key)] = value
        elif up == "GLOBAL":
            pbx.globals[arg] = value
        elif up == "CALLERID" and ch is not None:
            if arg.lower() == "num":
                ch.cid_num = value
            elif arg.lower() == "name":
                ch.cid_name = value
            else:
                return _err(ctx, "Variable not set")
            _ack(ctx, "Variable Set")
            pbx.emit("NewCallerid", ("call",), [
                *pbx.snapshot(ch), ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)"),
            ])
            return None
        _ack(ctx, "Variable Set")
        return None
    _ack(ctx, "Variable Set")
    pbx.set_var(ch, varname, value)
    return None


# --- queues ----------------------------------------------------------------------------------


def _queue_params(q: Queue) -> list[tuple[str, str]]:
    return [
        ("Queue", q.name), ("Max", str(q.max)), ("Strategy", q.strategy), ("Calls", "0"),
        ("Holdtime", str(q.holdtime)), ("TalkTime", str(q.talktime)),
        ("Completed", str(q.completed)), ("Abandoned", str(q.abandoned)),
        ("ServiceLevel", str(q.servicelevel)), ("ServicelevelPerf", "0.0"),
        ("Weight", str(q.weight)),
    ]


def _member_item(pbx: Pbx, q: Queue, m: QueueMember) -> list[tuple[str, str]]:
    """The QueueStatus ``QueueMember`` item fields (Name/Location, 13.38 order)."""
    return [
        ("Queue", q.name), ("Name", m.name), ("Location", m.interface),
        ("StateInterface", m.state_interface), ("Membership", m.membership),
        ("Penalty", str(m.penalty)), ("CallsTaken", str(m.calls_taken)),
        ("LastCall", str(m.last_call)), ("InCall", str(m.in_call)),
        ("Status", str(pbx.member_status(m))), ("Paused", "1" if m.paused else "0"),
        ("PausedReason", m.paused_reason),
    ]


def _queuestatus(ctx: ActionContext, req: RequestLike) -> None:
    """manager_queues_status: QueueParams, QueueMember..., QueueStatusComplete."""
    want_q = req.header("Queue")
    want_m = req.header("Member")
    pbx = ctx.pbx
    _listack(ctx, "Queue status will follow")
    count = 0
    for q in pbx.queues.values():
        if want_q and q.name != want_q:
            continue
        _item(ctx, "QueueParams", _queue_params(q))
        count += 1
        for m in q.members:
            if want_m and want_m not in (m.interface, m.name):
                continue
            _item(ctx, "QueueMember", _member_item(pbx, q, m))
            count += 1
    _complete(ctx, "QueueStatusComplete", count)


def _queuesummary(ctx: ActionContext, req: RequestLike) -> None:
    want_q = req.header("Queue")
    pbx = ctx.pbx
    _listack(ctx, "Queue summary will follow")
    count = 0
    for q in pbx.queues.values():
        if want_q and q.name != want_q:
            continue
        statuses = [pbx.member_status(m) for m in q.members]
        logged_in = sum(1 for s in statuses if s not in (4, 5))
        available = sum(1 for m, s in zip(q.members, statuses, strict=True)
                        if s in (0, 1) and not m.paused)
        _item(ctx, "QueueSummary", [
            ("Queue", q.name), ("LoggedIn", str(logged_in)), ("Available", str(available)),
            ("Callers", "0"), ("HoldTime", str(q.holdtime)), ("TalkTime", str(q.talktime)),
            ("LongestHoldTime", "0"),
        ])
        count += 1
    _complete(ctx, "QueueSummaryComplete", count)


def _queues(ctx: ActionContext, req: RequestLike) -> None:
    """The UCM's Queues: an event list (see the module docstring for the field choice)."""
    pbx = ctx.pbx
    _listack(ctx, "Queues will follow")
    count = 0
    for q in pbx.queues.values():
        _item(ctx, "QueueStatus", _queue_params(q))
        count += 1
        for m in q.members:
            _item(ctx, "QueueMemberStatus", pbx.member_fields(q, m))
            count += 1
    _complete(ctx, "QueuesComplete", count)


def _find_member(q: Queue, interface: str) -> QueueMember | None:
    for m in q.members:
        if m.interface.lower() == interface.lower():
            return m
    return None


def _queueadd(ctx: ActionContext, req: RequestLike) -> None:
    queue = req.header("Queue")
    interface = req.header("Interface")
    if not queue:
        return _err(ctx, "'Queue' not specified.")
    if not interface:
        return _err(ctx, "'Interface' not specified.")
    pbx = ctx.pbx
    q = pbx.queues.get(queue)
    if q is None:
        return _err(ctx, "Unable to add interface to queue: No such queue")
    if _find_member(q, interface) is not None:
        return _err(ctx, "Unable to add interface: Already there")
    penalty = _scan_int(req.header("Penalty")) or 0
    m = QueueMember(interface=interface, name=req.header("MemberName") or interface,
                    state_interface=req.header("StateInterface") or interface,
                    membership="dynamic", penalty=max(penalty, 0),
                    paused=_true(req.header("Paused")),
                    paused_reason=req.header("Reason"))
    q.members.append(m)
    _ack(ctx, "Added interface to queue")
    pbx.emit("QueueMemberAdded", ("agent",), pbx.member_fields(q, m))
    return None


def _queueremove(ctx: ActionContext, req: RequestLike) -> None:
    queue = req.header("Queue")
    interface = req.header("Interface")
    if not queue or not interface:
        return _err(ctx, "Need 'Queue' and 'Interface' parameters.")
    pbx = ctx.pbx
    q = pbx.queues.get(queue)
    if q is None:
        return _err(ctx, "Unable to remove interface from queue: No such queue")
    m = _find_member(q, interface)
    if m is None:
        return _err(ctx, "Unable to remove interface: Not there")
    if m.membership != "dynamic":
        return _err(ctx, "Member not dynamic")
    fields = pbx.member_fields(q, m)
    q.members.remove(m)
    _ack(ctx, "Removed interface from queue")
    pbx.emit("QueueMemberRemoved", ("agent",), fields)
    return None


def _queuepause(ctx: ActionContext, req: RequestLike) -> None:
    interface = req.header("Interface")
    paused_s = req.header("Paused")
    queue = req.header("Queue")
    if not interface or not paused_s:
        return _err(ctx, "Need 'Interface' and 'Paused' parameters.")
    paused = _true(paused_s)
    reason = req.header("Reason")
    pbx = ctx.pbx
    hits = []
    for q in pbx.queues.values():
        if queue and q.name != queue:
            continue
        m = _find_member(q, interface)
        if m is not None:
            hits.append((q, m))
    if not hits:
        return _err(ctx, "Interface not found")
    _ack(ctx, "Interface paused successfully" if paused else "Interface unpaused successfully")
    for q, m in hits:
        m.paused, m.paused_reason = paused, reason if paused else ""
        pbx.emit("QueueMemberPause", ("agent",), pbx.member_fields(q, m))
    return None


def _queuepenalty(ctx: ActionContext, req: RequestLike) -> None:
    interface = req.header("Interface")
    penalty_s = req.header("Penalty")
    queue = req.header("Queue")
    if not interface or not penalty_s:
        return _err(ctx, "Need 'Interface' and 'Penalty' parameters.")
    penalty = _scan_int(penalty_s)
    if penalty is None or penalty < 0:
        return _err(ctx, "Invalid penalty")
    pbx = ctx.pbx
    hits = [(q, m) for q in pbx.queues.values() if not queue or q.name == queue
            for m in [_find_member(q, interface)] if m is not None]
    if not hits:
        return _err(ctx, "Invalid interface, queuename or penalty")
    _ack(ctx, "Interface penalty set successfully")
    for q, m in hits:
        m.penalty = penalty
        pbx.emit("QueueMemberPenalty", ("agent",), [("Queue", q.name),
                                                     ("Interface", m.interface),
                                                     ("Penalty", str(penalty))])
    return None


def _queueringinuse(ctx: ActionContext, req: RequestLike) -> None:
    interface = req.header("Interface")
    value = req.header("RingInUse")
    queue = req.header("Queue")
    if not interface or not value:
        return _err(ctx, "Need 'Interface' and 'RingInUse' parameters.")
    hits = [m for q in ctx.pbx.queues.values() if not queue or q.name == queue
            for m in [_find_member(q, interface)] if m is not None]
    if not hits:
        return _err(ctx, "Invalid interface, queuename, or ringinuse value")
    for m in hits:
        m.ringinuse = _true(value)
    _ack(ctx, "Interface ringinuse set successfully")
    return None


def _queuelog(ctx: ActionContext, req: RequestLike) -> None:
    if not req.header("Queue") or not req.header("Event"):
        return _err(ctx, "Need 'Queue' and 'Event' parameters.")
    _ack(ctx, "Added Queue Log")
    return None


def _queuereload(ctx: ActionContext, req: RequestLike) -> None:
    queue = req.header("Queue")
    if queue and queue not in ctx.pbx.queues:
        return _err(ctx, "Error encountered while reloading queue")
    _ack(ctx, "Queue reloaded successfully")
    return None


def _queuereset(ctx: ActionContext, req: RequestLike) -> None:
    queue = req.header("Queue")
    if queue and queue not in ctx.pbx.queues:
        return _err(ctx, "Error encountered while resetting queue stats")
    _ack(ctx, "Queue stats reset successfully")
    return None


def _queuerule(ctx: ActionContext, req: RequestLike) -> None:
    _ack(ctx)


# --- events, AstDB, CLI ------------------------------------------------------------------------


def _userevent(ctx: ActionContext, req: RequestLike) -> None:
    """action_userevent: every header but UserEvent/Action goes into the event, after ack."""
    event = req.header("UserEvent")
    body = [(k, v) for k, v in req.message.items
            if k.lower() not in ("userevent", "action")]
    _ack(ctx, "Event Sent")
    ctx.pbx.user_events += 1
    ctx.pbx.emit("UserEvent", ("user",), [("UserEvent", event), *body])


def _dbget(ctx: ActionContext, req: RequestLike) -> None:
    family = req.header("Family")
    key = req.header("Key")
    if not family:
        return _err(ctx, "No family specified.")
    if not key:
        return _err(ctx, "No key specified.")
    value = ctx.pbx.db.get((family, key))
    if value is None:
        return _err(ctx, "Database entry not found")
    _listack(ctx, "Result will follow")
    _item(ctx, "DBGetResponse", [("Family", family), ("Key", key), ("Val", value)])
    _complete(ctx, "DBGetComplete", 1)
    return None


def _dbput(ctx: ActionContext, req: RequestLike) -> None:
    family = req.header("Family")
    key = req.header("Key")
    if not family:
        return _err(ctx, "No family specified")
    if not key:
        return _err(ctx, "No key specified")
    ctx.pbx.db[(family, key)] = req.header("Val")
    _ack(ctx, "Updated database successfully")
    return None


def _dbdel(ctx: ActionContext, req: RequestLike) -> None:
    family = req.header("Family")
    key = req.header("Key")
    if not family:
        return _err(ctx, "No family specified.")
    if not key:
        return _err(ctx, "No key specified.")
    if ctx.pbx.db.pop((family, key), None) is None:
        return _err(ctx, "Database entry not found")
    _ack(ctx, "Key deleted successfully")
    return None


def _dbdeltree(ctx: ActionContext, req: RequestLike) -> None:
    family = req.header("Family")
    key = req.header("Key")
    if not family:
        return _err(ctx, "No family specified.")
    db = ctx.pbx.db
    doomed = [k for k in db if k[0] == family and (not key or k[1] == key
                                                   or k[1].startswith(key + "/"))]
    if not doomed:
        return _err(ctx, "Database entry not found")
    for k in doomed:
        del db[k]
    _ack(ctx, "Key tree deleted successfully")
    return None


_BLACKLIST = (("module", "load"), ("module", "unload"), ("restart", "gracefully"))


def _command(ctx: ActionContext, req: RequestLike) -> None:
    """13.x Command: ``Response: Follows``, ``Privilege: Command``, raw LF text, END COMMAND."""
    cmd = req.header("Command")
    if not cmd:
        return _err(ctx, "No command provided")
    words = cmd.lower().split()
    for bad in _BLACKLIST:
        if tuple(words[: len(bad)]) == bad:
            return _err(ctx, "Command blacklisted")
    items = [("Response", "Follows"), ("Privilege", "Command")]
    aid = _aid(ctx)
    if aid is not None:
        items.append(("ActionID", aid))
    ctx.reply(Message(items, text=_cli(ctx, cmd)))
    return None


def _queue_show(pbx: Pbx) -> str:
    """``queue show`` as app_queue 13.x prints it (also 13.x's raw Queues answer)."""
    out = []
    for q in pbx.queues.values():
        out.append(f"{q.name} has 0 calls (max unlimited) in '{q.strategy}' strategy "
                   f"({q.holdtime}s holdtime, {q.talktime}s talktime), W:{q.weight}, "
                   f"C:{q.completed}, A:{q.abandoned}, SL:0.0% within {q.servicelevel}s")
        if q.members:
            out.append("   Members: ")
            for m in q.members:
                st = pbx.member_status(m)
                desc = {1: "Not in use", 2: "In use", 5: "Unavailable", 6: "Ringing",
                        4: "Invalid"}.get(st, "Unknown")
                extra = " (dynamic)" if m.membership == "dynamic" else ""
                paused = " (paused)" if m.paused else ""
                out.append(f"      {m.name} ({m.interface}){extra}{paused} "
                           f"(ringinuse {'enabled' if m.ringinuse else 'disabled'}) ({desc}) "
                           "has taken no calls yet")
        else:
            out.append("   No Members")
        out.append("   No Callers")
        out.append("")
    return "\n".join(out) + "\n"


def _cli(ctx: ActionContext, cmd: str) -> str:
    """The few CLI commands the model answers; the rest get Asterisk's 'No such command'."""
    pbx = ctx.pbx
    norm = " ".join(cmd.split())
    low = norm.lower()
    if low == "core show version":
        return (f"Asterisk {ASTERISK_VERSION} built by root @ ucm on a armv7l running Linux "
                "on 2015-06-01 00:00:00 UTC\n")
    if low == "core show uptime":
        up = int(pbx.now() - pbx.started)
        return f"System uptime: {up} seconds\nLast reload: {up} seconds\n"
    if low in ("core show channels", "core show channels concise"):
        lines = []
        if low.endswith("concise"):
            for ch in pbx.channels.values():
                lines.append("!".join([ch.name, ch.context, ch.exten, str(ch.priority),
                                       STATE_DESC.get(ch.state, ""), ch.application,
                                       ch.appdata, ch.cid_num or "", ch.accountcode, "", "3",
                                       str(int(pbx.now() - ch.created)), ch.bridge or "",
                                       ch.uniqueid]))
            return "".join(line + "\n" for line in lines)
        lines.append(f"{'Channel':<20.20} {'Location':<20.20} {'State':<7.7} "
                     f"{'Application(Data)':<30.30}")
        for ch in pbx.channels.values():
            loc = f"{ch.exten}@{ch.context}:{ch.priority}"
            app = f"{ch.application}({ch.appdata})"
            lines.append(f"{ch.name:<20.20} {loc:<20.20} {STATE_DESC.get(ch.state, ''):<7.7} "
                         f"{app:<30.30}")
        n = len(pbx.channels)
        calls = len({c.linkedid for c in pbx.channels.values()})
        lines.append(f"{n} active channel{'' if n == 1 else 's'}")
        lines.append(f"{calls} active call{'' if calls == 1 else 's'}")
        return "\n".join(lines) + "\n"
    if low == "queue show" or low.startswith("queue show "):
        return _queue_show(pbx)
    if low.startswith("database show"):
        rows = sorted(pbx.db.items())
        out = [f"/{f}/{k:<30} : {v}" for (f, k), v in rows]
        out.append(f"{len(rows)} results found.")
        return "\n".join(out) + "\n"
    if low == "pjsip show endpoints":
        out = [" Endpoint:  <Endpoint/CID.....................................>  "
               "<State.....>  <Channels.>", ""]
        for ep, how in ENDPOINTS.items():
            state = "Unavailable" if how == "unregistered" else "Not in use"
            out.append(f" Endpoint:  {ep:<53} {state:<13} 0 of inf")
        out.append("")
        out.append(f"Objects found: {len(ENDPOINTS)}")
        return "\n".join(out) + "\n"
    return f"No such command '{norm}' (type 'core show help {norm}' for other possible commands)\n"


# --- config files ----------------------------------------------------------------------------


def _resolve_config(ctx: ActionContext, fn: str) -> tuple[str | None, str | None]:
    """(file key, error): traversal refused unless the getconfig-traversal fault is on."""
    path = posixpath.normpath(posixpath.join("/etc/asterisk", fn))
    inside = path.startswith("/etc/asterisk/")
    if not inside and "getconfig-traversal" not in ctx.faults:
        return None, "File requires escalated priveledges"
    key = path[len("/etc/asterisk/"):] if inside else path
    if key not in ctx.pbx.files:
        return None, "Config file not found"
    return key, None


def _parse_conf(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    cats: list[tuple[str, list[tuple[str, str]]]] = []
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and "]" in line:
            cats.append((line[1:line.index("]")], []))
            continue
        if not cats:
            continue
        if "=>" in line:
            k, _, v = line.partition("=>")
            v = v.lstrip(">")
        else:
            k, _, v = line.partition("=")
        cats[-1][1].append((k.strip(), v.strip()))
    return cats


def _getconfig(ctx: ActionContext, req: RequestLike) -> None:
    fn = req.header("Filename")
    category = req.header("Category")
    if not fn:
        return _err(ctx, "Filename not specified")
    key, error = _resolve_config(ctx, fn)
    if key is None:
        return _err(ctx, error or "Config file not found")
    extra: list[tuple[str, str]] = []
    catcount = 0
    for cat, lines in _parse_conf(ctx.pbx.files[key]):
        if category and cat != category:
            continue
        extra.append((f"Category-{catcount:06d}", cat))
        for lineno, (k, v) in enumerate(lines):
            extra.append((f"Line-{catcount:06d}-{lineno:06d}", f"{k}={v}"))
        catcount += 1
    if category and catcount == 0:
        extra.append(("No categories found", ""))
    _ack(ctx, None, extra)
    return None


def _getconfigjson(ctx: ActionContext, req: RequestLike) -> None:
    fn = req.header("Filename")
    if not fn:
        return _err(ctx, "Filename not specified")
    key, error = _resolve_config(ctx, fn)
    if key is None:
        return _err(ctx, error or "Config file not found")
    doc = {cat: dict(lines) for cat, lines in _parse_conf(ctx.pbx.files[key])}
    _ack(ctx, None, [("JSON", json.dumps(doc, separators=(",", ":")))])
    return None


def _listcategories(ctx: ActionContext, req: RequestLike) -> None:
    fn = req.header("Filename")
    if not fn:
        return _err(ctx, "Filename not specified")
    key, error = _resolve_config(ctx, fn)
    if key is None:
        return _err(ctx, error or "Config file not found")
    cats = [c for c, _ in _parse_conf(ctx.pbx.files[key])]
    extra = [(f"Category-{i:06d}", c) for i, c in enumerate(cats)]
    _ack(ctx, None, extra or [("Error", "no categories found")])
    return None


def _createconfig(ctx: ActionContext, req: RequestLike) -> None:
    fn = req.header("Filename")
    path = posixpath.normpath(posixpath.join("/etc/asterisk", fn))
    if not fn or not path.startswith("/etc/asterisk/"):
        return _err(ctx, "Failed to create configuration file")
    ctx.pbx.files.setdefault(path[len("/etc/asterisk/"):], "")
    _ack(ctx, "New configuration file created successfully")
    return None


def _updateconfig(ctx: ActionContext, req: RequestLike) -> None:
    src = req.header("SrcFilename")
    dst = req.header("DstFilename")
    if not src or not dst:
        return _err(ctx, "Filename not specified")
    key, error = _resolve_config(ctx, src)
    if key is None:
        return _err(ctx, error or "Config file not found")
    _ack(ctx)
    return None


# --- channels: transfer, timeouts, text, bridges, parking ------------------------------------


def _redirect(ctx: ActionContext, req: RequestLike) -> None:
    name = req.header("Channel")
    extra = req.header("ExtraChannel")
    context = req.header("Context")
    exten = req.header("Exten")
    priority = req.header("Priority")
    if not name:
        return _err(ctx, "Channel not specified")
    if not context:
        return _err(ctx, "Context not specified")
    if not exten:
        return _err(ctx, "Exten not specified")
    if not priority:
        return _err(ctx, "Priority not specified")
    pi = _scan_int(priority)
    if pi is None:
        return _err(ctx, "Invalid priority")
    pbx = ctx.pbx
    ch = pbx.find_channel(name)
    if ch is None:
        return _err(ctx, f"Channel does not exist: {name}")
    other = None
    if extra:
        other = pbx.find_channel(extra)
        if other is None:
            return _err(ctx, f"ExtraChannel does not exist: {extra}")
    pbx.redirect(ch, context, exten, pi)
    if other is not None:
        pbx.redirect(other, req.header("ExtraContext") or context,
                     req.header("ExtraExten") or exten,
                     _scan_int(req.header("ExtraPriority")) or pi)
        _ack(ctx, "Dual Redirect successful")
    else:
        _ack(ctx, "Redirect successful")
    return None


def _atxfer(ctx: ActionContext, req: RequestLike) -> None:
    name = req.header("Channel")
    exten = req.header("Exten")
    if not name:
        return _err(ctx, "No channel specified")
    if not exten:
        return _err(ctx, "No extension specified")
    ch = _channel_or_error(ctx, name, "Channel specified does not exist")
    if ch is None:
        return None
    context = req.header("Context")
    if context:
        ctx.pbx.set_var(ch, "TRANSFER_CONTEXT", context)
    _ack(ctx, "Atxfer successfully queued")
    return None


def _blindtransfer(ctx: ActionContext, req: RequestLike) -> None:
    name = req.header("Channel")
    exten = req.header("Exten")
    if not name:
        return _err(ctx, "No channel specified")
    if not exten:
        return _err(ctx, "No extension specified")
    pbx = ctx.pbx
    ch = _channel_or_error(ctx, name, "Channel specified does not exist")
    if ch is None:
        return None
    br = pbx.bridges.get(ch.bridge or "")
    if br is None:
        return _err(ctx, "Transfer invalid")
    context = req.header("Context") or ch.context
    others = [pbx.channels[n] for n in br.channels if n != ch.name and n in pbx.channels]
    _ack(ctx, "Transfer succeeded")
    for other in others:
        pbx.redirect(other, context, exten, 1)
    pbx.kick(ch)
    return None


def _cancelatxfer(ctx: ActionContext, req: RequestLike) -> None:
    name = req.header("Channel")
    if not name:
        return _err(ctx, "No channel specified")
    if _channel_or_error(ctx, name, "Channel specified does not exist") is None:
        return None
    return _err(ctx, "No attended transfer in progress")


def _absolutetimeout(ctx: ActionContext, req: RequestLike) -> None:
    name = req.header("Channel")
    timeout = _scan_int(req.header("Timeout")) or 0
    if not name:
        return _err(ctx, "No channel specified")
    if timeout < 0:
        return _err(ctx, "No timeout specified")
    ch = _channel_or_error(ctx, name)
    if ch is None:
        return None
    ctx.pbx.set_absolute_timeout(ch, float(timeout))
    _ack(ctx, "Timeout Set")
    return None


def _sendtext(ctx: ActionContext, req: RequestLike) -> None:
    name = req.header("Channel")
    text = req.header("Message")
    if not name:
        return _err(ctx, "No channel specified")
    if not text:
        return _err(ctx, "No Message specified")
    if _channel_or_error(ctx, name) is None:
        return None
    _ack(ctx, "Success")
    return None


def _bridge(ctx: ActionContext, req: RequestLike) -> None:
    a_name = req.header("Channel1")
    b_name = req.header("Channel2")
    if not a_name or not b_name:
        return _err(ctx, "Missing channel parameter in request")
    pbx = ctx.pbx
    a = pbx.find_channel(a_name)
    if a is None:
        return _err(ctx, f"Channel1 does not exist: {a_name}")
    b = pbx.find_channel(b_name)
    if b is None:
        return _err(ctx, f"Channel2 does not exist: {b_name}")
    if a is b:
        return _err(ctx, "Unable to bridge channel to itself")
    _ack(ctx, "Channels have been bridged")
    pbx.bridge(a, b)
    return None


def _bridgelist(ctx: ActionContext, req: RequestLike) -> None:
    want = req.header("BridgeType")
    pbx = ctx.pbx
    _listack(ctx, "Bridge listing will follow")
    count = 0
    for br in pbx.bridges.values():
        if want and br.bridge_type != want:
            continue
        _item(ctx, "BridgeListItem", pbx.bridge_snapshot(br), id_first=True)
        count += 1
    _complete(ctx, "BridgeListComplete", count)


def _bridge_or_error(ctx: ActionContext, req: RequestLike) -> Bridge | None:
    uid = req.header("BridgeUniqueid")
    if not uid:
        _err(ctx, "BridgeUniqueid must be provided")
        return None
    br = ctx.pbx.bridges.get(uid)
    if br is None:
        _err(ctx, f"Bridge {uid} not found")
    return br


def _bridgeinfo(ctx: ActionContext, req: RequestLike) -> None:
    bridge = _bridge_or_error(ctx, req)
    pbx = ctx.pbx
    if bridge is None:
        return None
    _listack(ctx, "Bridge channel listing will follow")
    chans = [pbx.channels[n] for n in bridge.channels if n in pbx.channels]
    for ch in chans:
        _item(ctx, "BridgeInfoChannel", pbx.snapshot(ch), id_first=True)
    _complete(ctx, "BridgeInfoComplete", len(chans), pbx.bridge_snapshot(bridge))
    return None


def _bridgedestroy(ctx: ActionContext, req: RequestLike) -> None:
    bridge = _bridge_or_error(ctx, req)
    if bridge is None:
        return None
    pbx = ctx.pbx
    _ack(ctx, "Bridge has been destroyed")
    pbx.destroy_bridge(bridge)
    return None


def _bridgekick(ctx: ActionContext, req: RequestLike) -> None:
    name = req.header("Channel")
    uid = req.header("BridgeUniqueid")
    if not name:
        return _err(ctx, "Channel must be provided")
    pbx = ctx.pbx
    ch = pbx.find_channel(name)
    if uid:
        if uid not in pbx.bridges:
            return _err(ctx, "Bridge not found")
        if ch is None or ch.bridge != uid:
            return _err(ctx, "Channel kick from bridge failed")
    else:
        if ch is None:
            return _err(ctx, "Channel does not exist")
        if ch.bridge is None:
            return _err(ctx, "Channel is not in a bridge")
    _ack(ctx, "Channel has been kicked")
    if ch is not None:
        pbx.kick(ch)
    return None


_BRIDGE_TECHS = (("holding_bridge", "Holding", "50"), ("native_rtp", "Native", "90"),
                 ("simple_bridge", "1to1Mix", "50"), ("softmix", "MultiMix", "10"))


def _bridgetechlist(ctx: ActionContext, req: RequestLike) -> None:
    _listack(ctx, "Bridge technology listing will follow")
    for name, btype, prio in _BRIDGE_TECHS:
        _item(ctx, "BridgeTechnologyListItem", [
            ("BridgeTechnology", name), ("BridgeType", btype), ("BridgePriority", prio),
            ("BridgeSuspended", "No"),
        ], id_first=True)
    _complete(ctx, "BridgeTechnologyListComplete", len(_BRIDGE_TECHS))


def _bridgetech_suspend(suspend: bool) -> Handler:
    def handler(ctx: ActionContext, req: RequestLike) -> None:
        tech = req.header("BridgeTechnology")
        if not tech:
            return _err(ctx, "BridgeTechnology must be provided")
        if tech not in {t for t, _, _ in _BRIDGE_TECHS}:
            return _err(ctx, f"Technology {tech} not found")
        _ack(ctx, "Suspended bridge technology" if suspend else "Unsuspended bridge technology")
        return None
    return handler


def _park(ctx: ActionContext, req: RequestLike) -> None:
    name = req.header("Channel")
    timeout = req.header("Timeout")
    if not name:
        return _err(ctx, "Channel not specified")
    secs = 45.0
    if timeout:
        parsed = _scan_int(timeout)
        if parsed is None:
            return _err(ctx, "Invalid Timeout value.")
        secs = parsed / 1000
    ch = _channel_or_error(ctx, name, "Channel does not exist")
    if ch is None:
        return None
    _ack(ctx, "Park successful")
    ctx.pbx.park(ch, secs)
    return None


def _parkedcalls(ctx: ActionContext, req: RequestLike) -> None:
    pbx = ctx.pbx
    _listack(ctx, "Parked calls will follow")
    n = 0
    for space, name in sorted(pbx.parked.items()):
        ch = pbx.channels.get(name)
        if ch is None:
            continue
        _item(ctx, "ParkedCall", pbx.parked_fields(space, ch))
        n += 1
    _complete(ctx, "ParkedCallsComplete", n, [("Total", str(n))])


def _parkinglots(ctx: ActionContext, req: RequestLike) -> None:
    _listack(ctx, "Parking lots will follow")
    _item(ctx, "Parkinglot", [("Name", "default"), ("StartSpace", "701"),
                              ("StopSpace", "720"), ("Timeout", "45")])
    _complete(ctx, "ParkinglotsComplete", 1)


def _localoptimizeaway(ctx: ActionContext, req: RequestLike) -> None:
    name = req.header("Channel")
    if not name:
        return _err(ctx, "'Channel' not specified.")
    ch = ctx.pbx.find_channel(name)
    if ch is None:
        return _err(ctx, "Channel does not exist.")
    if ch.local_base is None:
        return _err(ctx, "Unable to find channel")
    _ack(ctx, "Queued channel to be optimized away")
    return None


def _aocmessage(ctx: ActionContext, req: RequestLike) -> None:
    name = req.header("Channel")
    if not name and not req.header("ChannelPrefix"):
        return _err(ctx, "Channel and ChannelPrefix are both not specified")
    if name and _channel_or_error(ctx, name) is None:
        return None
    if not req.header("MsgType"):
        return _err(ctx, "MsgType not specified")
    _ack(ctx, "AOC Message successfully queued on channel")
    return None


# --- status queries --------------------------------------------------------------------------


def _extensionstate(ctx: ActionContext, req: RequestLike) -> None:
    exten = req.header("Exten")
    context = req.header("Context") or "default"
    if not exten:
        return _err(ctx, "Extension not specified")
    status, hint = ctx.pbx.extension_state(context, exten)
    _ack(ctx, "Extension Status", [
        ("Exten", exten), ("Context", context), ("Hint", hint), ("Status", str(status)),
        ("StatusText", EXTENSION_STATES.get(status, "Unknown")),
    ])
    return None


def _extensionstatelist(ctx: ActionContext, req: RequestLike) -> None:
    pbx = ctx.pbx
    _listack(ctx, "Extension Statuses will follow")
    hints = sorted(pbx.hints)
    for context, exten in hints:
        status, hint = pbx.extension_state(context, exten)
        _item(ctx, "ExtensionStatus", [
            ("Exten", exten), ("Context", context), ("Hint", hint), ("Status", str(status)),
            ("StatusText", EXTENSION_STATES.get(status, "Unknown")),
        ], id_first=True)
    _complete(ctx, "ExtensionStateListComplete", len(hints))


def _mailbox(ctx: ActionContext, name: str) -> tuple[int, int, int]:
    box = name if "@" in name else f"{name}@default"
    return ctx.pbx.mailboxes.get(box, (0, 0, 0))


def _mailboxstatus(ctx: ActionContext, req: RequestLike) -> None:
    mailbox = req.header("Mailbox")
    if not mailbox:
        return _err(ctx, "Mailbox not specified")
    _, new, _ = _mailbox(ctx, mailbox)
    _ack(ctx, "Mailbox Status", [("Mailbox", mailbox), ("Waiting", "1" if new else "0")])
    return None


def _mailboxcount(ctx: ActionContext, req: RequestLike) -> None:
    mailbox = req.header("Mailbox")
    if not mailbox:
        return _err(ctx, "Mailbox not specified")
    urg, new, old = _mailbox(ctx, mailbox)
    _ack(ctx, "Mailbox Message Count", [
        ("Mailbox", mailbox), ("UrgMessages", str(urg)), ("NewMessages", str(new)),
        ("OldMessages", str(old)),
    ])
    return None


def _presencestate(ctx: ActionContext, req: RequestLike) -> None:
    provider = req.header("Provider")
    if not provider:
        return _err(ctx, "No provider specified")
    if not provider.lower().startswith("custompresence:"):
        return _err(ctx, "Invalid presence state")
    _ack(ctx, "Presence State", [("State", "not_set")])
    return None


def _agents(ctx: ActionContext, req: RequestLike) -> None:
    _listack(ctx, "Agents will follow")
    _complete(ctx, "AgentsComplete", 0)


def _agentlogoff(ctx: ActionContext, req: RequestLike) -> None:
    if not req.header("Agent"):
        return _err(ctx, "No agent specified")
    return _err(ctx, "No such agent")


# --- dialplan --------------------------------------------------------------------------------


def _showdialplan(ctx: ActionContext, req: RequestLike) -> None:
    want_ctx = req.header("Context")
    want_ext = req.header("Extension")
    pbx = ctx.pbx
    if want_ctx and want_ctx not in pbx.dialplan:
        return _err(ctx, f"Did not find context {want_ctx}")
    if want_ext and not any(want_ext in pbx.dialplan[c] for c in pbx.dialplan
                            if not want_ctx or c == want_ctx):
        where = f"{want_ext}@{want_ctx}" if want_ctx else want_ext
        return _err(ctx, f"Did not find extension {where}")
    _listack(ctx, "DialPlan list will follow")
    n_items = n_exts = n_prios = n_ctx = 0
    for cname, extens in pbx.dialplan.items():
        if want_ctx and cname != want_ctx:
            continue
        n_ctx += 1
        for ename, prios in extens.items():
            if want_ext and ename != want_ext:
                continue
            n_exts += 1
            hint = pbx.hints.get((cname, ename))
            if hint:
                _item(ctx, "ListDialplan", [("Context", cname), ("Extension", ename),
                                            ("Priority", "hint"), ("Application", hint),
                                            ("AppData", ""), ("Registrar", "pbx_config")],
                      id_first=True)
                n_items += 1
            for i, (app, data) in enumerate(prios, 1):
                _item(ctx, "ListDialplan", [("Context", cname), ("Extension", ename),
                                            ("Priority", str(i)), ("Application", app),
                                            ("AppData", data), ("Registrar", "pbx_config")],
                      id_first=True)
                n_items += 1
                n_prios += 1
        for inc in pbx.includes.get(cname, ()):
            _item(ctx, "ListDialplan", [("Context", cname), ("IncludeContext", inc),
                                        ("Registrar", "pbx_config")], id_first=True)
            n_items += 1
    items = [("Event", "ShowDialPlanComplete"), ("EventList", "Complete"),
             ("ListItems", str(n_items)), ("ListExtensions", str(n_exts)),
             ("ListPriorities", str(n_prios)), ("ListContexts", str(n_ctx))]
    aid = _aid(ctx)
    if aid is not None:
        items.append(("ActionID", aid))
    ctx.reply(Message(items))
    return None


def _dialplanextensionadd(ctx: ActionContext, req: RequestLike) -> None:
    context = req.header("Context")
    exten = req.header("Extension")
    priority = req.header("Priority")
    app = req.header("Application")
    if not (context and exten and priority and app):
        return _err(ctx, "Context, Extension, Priority, and Application must be defined.")
    pi = _scan_int(priority)
    if pi is None or pi < 1:
        return _err(ctx, "Invalid priority")
    pbx = ctx.pbx
    if context not in pbx.dialplan:
        return _err(ctx, "Could not find or create context specified")
    prios = pbx.dialplan[context].setdefault(exten, [])
    entry = (app, req.header("ApplicationData"))
    if pi <= len(prios):
        if not _true(req.header("Replace")):
            return _err(ctx, "That extension and priority already exist at that context")
        prios[pi - 1] = entry
    elif pi == len(prios) + 1:
        prios.append(entry)
    else:
        return _err(ctx, "Failed to add extension")
    _ack(ctx, "Added requested extension")
    return None


def _dialplanextensionremove(ctx: ActionContext, req: RequestLike) -> None:
    context = req.header("Context")
    exten = req.header("Extension")
    if not context or not exten:
        return _err(ctx, "Context and Extension must be provided for DialplanExtensionRemove")
    pbx = ctx.pbx
    extens = pbx.dialplan.get(context)
    if extens is None:
        return _err(ctx, f"Could not find context {context}")
    prios = extens.get(exten)
    priority = _scan_int(req.header("Priority") or "")
    if prios is None or (priority is not None and not 1 <= priority <= len(prios)):
        return _err(ctx, "Failed to remove extension")
    if priority is None or len(prios) == 1:
        del extens[exten]
    else:
        del prios[priority - 1]
    _ack(ctx, "Removed the requested extension")
    return None


# --- system ----------------------------------------------------------------------------------


def _reload(ctx: ActionContext, req: RequestLike) -> None:
    module = req.header("Module")
    if module and module.split(".", 1)[0] not in _MODULES:
        return _err(ctx, "No such module")
    pbx = ctx.pbx
    pbx.reloaded = pbx.now()
    _ack(ctx, "Module Reloaded")
    return None


_MODULES = frozenset({
    "app_queue", "app_dial", "app_voicemail", "app_agent_pool", "chan_pjsip", "res_pjsip",
    "res_parking", "pbx_config", "manager", "core_local", "chan_local", "res_musiconhold",
    "app_confbridge", "cdr_csv", "extensions", "features", "queues", "pjsip",
})


def _modulecheck(ctx: ActionContext, req: RequestLike) -> None:
    module = req.header("Module").split(".", 1)[0]
    if module not in _MODULES:
        return _err(ctx, "Module not loaded")
    _ack(ctx, None, [("Version", "")])
    return None


def _moduleload(ctx: ActionContext, req: RequestLike) -> None:
    module = req.header("Module")
    loadtype = req.header("LoadType").lower()
    if not loadtype:
        return _err(ctx, "Incomplete ModuleLoad action.")
    if not module and loadtype != "reload":
        return _err(ctx, "Need module name")
    if loadtype == "load":
        return _err(ctx, "Could not load module.")
    if loadtype == "unload":
        return _err(ctx, "Could not unload module.")
    if loadtype == "reload":
        if not module:
            _ack(ctx, "All modules reloaded")
        elif module.split(".", 1)[0] in _MODULES:
            _ack(ctx, "Module reloaded.")
        else:
            _err(ctx, "No such module.")
        return None
    return _err(ctx, "Incomplete ModuleLoad action.")


def _loggerrotate(ctx: ActionContext, req: RequestLike) -> None:
    _ack(ctx, "Reloaded and rotated the Asterisk logger")


def _filter(ctx: ActionContext, req: RequestLike) -> None:
    operation = req.header("Operation")
    flt = req.header("Filter")
    if operation.lower() != "add":
        return _err(ctx, "Unknown operation")
    try:
        re.compile(flt.lstrip("!"))
    except re.error:
        return _err(ctx, "Filter did not compile")
    _ack(ctx, "Success")
    return None


def _messagesend(ctx: ActionContext, req: RequestLike) -> None:
    if not req.header("To"):
        return _err(ctx, "No 'To' address specified.")
    if not req.header("From"):
        return _err(ctx, "No 'From' address specified.")
    _ack(ctx, "Message successfully sent")
    return None


def _dataget(ctx: ActionContext, req: RequestLike) -> None:
    if not req.header("Path"):
        return _err(ctx, "'Path' not specified")
    return _err(ctx, "Data API not available")


def _waitevent(ctx: ActionContext, req: RequestLike) -> None:
    """Answered at once (events reach the session through the core anyway)."""
    _ack(ctx, "Waiting for Event completed.")
    ctx.reply(replies.list_item("WaitEventComplete", _aid(ctx)))


def _unsupported(ctx: ActionContext, req: RequestLike) -> None:
    """An action the UCM lists but the model does not implement: a clean Error."""
    _err(ctx, f"{req.header('Action', skip_empty=True)} is not available on this system")


HANDLERS: dict[str, Handler] = {
    "ping": _ping,
    "listcommands": _listcommands,
    "originate": _originate,
    "hangup": _hangup,
    "status": _status,
    "coreshowchannels": _coreshowchannels,
    "coresettings": _coresettings,
    "corestatus": _corestatus,
    "getvar": _getvar,
    "setvar": _setvar,
    "queuestatus": _queuestatus,
    "queuesummary": _queuesummary,
    "queues": _queues,
    "queueadd": _queueadd,
    "queueremove": _queueremove,
    "queuepause": _queuepause,
    "queuepenalty": _queuepenalty,
    "queuememberringinuse": _queueringinuse,
    "queuelog": _queuelog,
    "queuereload": _queuereload,
    "queuereset": _queuereset,
    "queuerule": _queuerule,
    "userevent": _userevent,
    "dbget": _dbget,
    "dbput": _dbput,
    "dbdel": _dbdel,
    "dbdeltree": _dbdeltree,
    "command": _command,
    "getconfig": _getconfig,
    "getconfigjson": _getconfigjson,
    "listcategories": _listcategories,
    "createconfig": _createconfig,
    "updateconfig": _updateconfig,
    "redirect": _redirect,
    "atxfer": _atxfer,
    "blindtransfer": _blindtransfer,
    "cancelatxfer": _cancelatxfer,
    "absolutetimeout": _absolutetimeout,
    "sendtext": _sendtext,
    "bridge": _bridge,
    "bridgelist": _bridgelist,
    "bridgeinfo": _bridgeinfo,
    "bridgedestroy": _bridgedestroy,
    "bridgekick": _bridgekick,
    "bridgetechnologylist": _bridgetechlist,
    "bridgetechnologysuspend": _bridgetech_suspend(True),
    "bridgetechnologyunsuspend": _bridgetech_suspend(False),
    "park": _park,
    "parkedcalls": _parkedcalls,
    "parkinglots": _parkinglots,
    "localoptimizeaway": _localoptimizeaway,
    "aocmessage": _aocmessage,
    "extensionstate": _extensionstate,
    "extensionstatelist": _extensionstatelist,
    "mailboxstatus": _mailboxstatus,
    "mailboxcount": _mailboxcount,
    "presencestate": _presencestate,
    "agents": _agents,
    "agentlogoff": _agentlogoff,
    "showdialplan": _showdialplan,
    "dialplanextensionadd": _dialplanextensionadd,
    "dialplanextensionremove": _dialplanextensionremove,
    "reload": _reload,
    "modulecheck": _modulecheck,
    "moduleload": _moduleload,
    "loggerrotate": _loggerrotate,
    "filter": _filter,
    "messagesend": _messagesend,
    "dataget": _dataget,
    "waitevent": _waitevent,
}

_CORE_ACTIONS = frozenset({"login", "logoff", "challenge", "events"})


def dispatch(ctx: ActionContext, req: RequestLike) -> HandlerError | None:
    """Run the handler of ``req``'s action; never raises.

    An exception inside a handler is a simulator bug: the client gets ``Response: Error``
    (so it does not hang) and the exception comes back wrapped in :class:`HandlerError` for
    the core to collect (``sim.errors``) and re-raise at teardown.
    """
    action = req.header("Action", skip_empty=True)
    low = action.lower()
    handler = HANDLERS.get(low)
    if handler is None:
        if low in {name.lower() for name in SYNOPSIS} and low not in _CORE_ACTIONS:
            handler = _unsupported
        else:
            ctx.reply(replies.error(_aid(ctx), f"Invalid/unknown command: {action}. Use "
                                    "Action: ListCommands to show available commands."))
            return None
    try:
        handler(ctx, req)
    except Exception as exc:  # noqa: BLE001 - a handler bug must not kill the session
        ctx.reply(replies.error(_aid(ctx), "Internal simulator error"))
        return HandlerError(action, exc)
    return None

