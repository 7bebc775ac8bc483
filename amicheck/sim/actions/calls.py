"""Channel actions: Originate (with the System/Exec guard), Hangup, Status, variables,
transfers, timeouts, SendText, LocalOptimizeAway, AOCMessage (Asterisk 13.38 texts and
shapes). Bridges and parking are in :mod:`amicheck.sim.actions.bridges`."""

from __future__ import annotations

import re

from amicheck.sim import replies
from amicheck.sim.actions.base import (
    ActionContext,
    Handler,
    RequestLike,
    ack,
    aid,
    ast_true,
    callerid_parse,
    channel_or_error,
    err,
    has_system,
    required,
    scan_int,
    send_list,
)
from amicheck.sim.pbx import Channel, OriginateSpec, Pbx

__all__ = ["HANDLERS"]


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
        return err(ctx, "Channel not specified")
    pi = 0
    if priority:
        parsed = scan_int(priority)
        if parsed is None:
            return err(ctx, "Invalid priority")  # no priority labels in the model
        pi = parsed
    to = 30000
    if timeout:
        parsed = scan_int(timeout)
        if parsed is None:
            return err(ctx, "Invalid timeout")
        to = parsed
    tech, slash, data = name.partition("/")
    if not slash:
        return err(ctx, "Invalid channel")
    cid_name, cid_num = callerid_parse(req.header("CallerID"))
    if app and not has_system(ctx) and ctx.behaviour.originate_apps_need_system:
        low = app.lower()
        if any(word in low for word in _FORBIDDEN_APPS):
            return err(ctx, "Originate Access Forbidden: Application")
        if "SHELL" in appdata or "EVAL" in appdata:
            return err(ctx, "Originate Access Forbidden: Data")
    variables: list[tuple[str, str]] = []
    for value in req.message.getall("Variable"):
        for part in value.split(","):
            k, eq, v = part.partition("=")
            if eq and k.strip():
                variables.append((k.strip(), v))
    spec = OriginateSpec(
        tech=tech, data=data, context=context, exten=exten, priority=pi, application=app,
        appdata=appdata, cid_num=cid_num, cid_name=cid_name, timeout_ms=to,
        account=req.header("Account"), variables=tuple(variables), action_id=aid(ctx),
        async_=ast_true(req.header("Async")),
        channel_id=req.header("ChannelId"), other_id=req.header("OtherChannelId"),
    )
    if spec.async_:
        ack(ctx, "Originate successfully queued")
        ctx.pbx.originate(spec)
        return None
    if not app and not pi:
        return err(ctx, "Originate with 'Exten' requires 'Context' and 'Priority'")
    plan = ctx.pbx.plan_originate(spec)
    reply = (replies.success(aid(ctx), "Originate successfully queued") if plan.ok
             else replies.error(aid(ctx), "Originate failed"))
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
        return err(ctx, "No channel specified")
    cause = 0
    if cause_s:
        parsed = scan_int(cause_s)
        if parsed is not None and 0 <= parsed <= 127 and cause_s.strip().lstrip("+-").isdigit():
            cause = parsed
    pbx = ctx.pbx
    if not target.startswith("/"):
        ch = channel_or_error(ctx, target)
        if ch is None:
            return None
        ack(ctx, "Channel Hungup")
        pbx.hangup(ch, cause)
        return None
    pattern = target[1:-1] if target.endswith("/") and len(target) > 1 else target[1:]
    try:
        rx = re.compile(pattern)
    except re.error:
        return err(ctx, "Regex compile failed on: " + pattern)
    matched = [c for c in list(pbx.channels.values()) if rx.search(c.name)]
    send_list(ctx, "Channels hung up will follow", "ChannelsHungupListComplete",
              [("ChannelHungup", [("Channel", ch.name)]) for ch in matched])
    for ch in matched:
        pbx.hangup(ch, cause)
    return None


def _status(ctx: ActionContext, req: RequestLike) -> None:
    """action_status: Status items (Privilege: Call) and StatusComplete with Items."""
    name = req.header("Channel")
    pbx = ctx.pbx
    if name:
        ch = channel_or_error(ctx, name)
        if ch is None:
            return None
        chans = [ch]
    else:
        chans = list(pbx.channels.values())
    wanted = [v.strip() for v in req.header("Variables").split(",") if v.strip()]
    now = pbx.now()
    send_list(ctx, "Channel status will follow", "StatusComplete",
              [("Status", _status_fields(pbx, ch, wanted, now)) for ch in chans],
              [("Items", str(len(chans)))])
    return None


def _status_fields(pbx: Pbx, ch: Channel, wanted: list[str], now: float
                   ) -> list[tuple[str, str]]:
    """One Status item: the channel, then the ``Variables`` asked for. 13's snapshot has
    ``Accountcode`` and no Language (22: Language, AccountCode); a Local channel is slin."""
    snap = pbx.snapshot(ch)
    if pbx.dialect == "13":
        snap = [("Accountcode", v) if k == "AccountCode" else (k, v) for k, v in snap
                if k != "Language"]
    fmt = "slin" if ch.tech.lower() == "local" else "ulaw"
    fields = [("Privilege", "Call"), *snap,
              ("Type", ch.tech), ("DNID", ""),
              ("EffectiveConnectedLineNum", ch.conn_num or "<unknown>"),
              ("EffectiveConnectedLineName", ch.conn_name or "<unknown>"),
              ("TimeToHangup", str(int(ch.hangup_at)) if ch.hangup_at else "0"),
              ("BridgeID", ch.bridge or ""),
              ("Application", ch.application), ("Data", ch.appdata),
              ("Nativeformats", f"({fmt})"), ("Readformat", fmt), ("Readtrans", ""),
              ("Writeformat", fmt), ("Writetrans", ""), ("Callgroup", "0"),
              ("Pickupgroup", "0"), ("Seconds", str(int(now - ch.created)))]
    return fields + [("Variable", f"{v}={pbx.get_var(ch, v)}") for v in wanted]


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _coreshowchannels(ctx: ActionContext, req: RequestLike) -> None:
    """CoreShowChannel items (ActionID right after Event), CoreShowChannelsComplete."""
    pbx = ctx.pbx
    now = pbx.now()
    send_list(ctx, "Channels will follow", "CoreShowChannelsComplete", [
        ("CoreShowChannel", [*pbx.snapshot(ch), ("Application", ch.application),
                             ("ApplicationData", ch.appdata),
                             ("Duration", _duration(now - ch.created)),
                             ("BridgeId", ch.bridge or "")])
        for ch in pbx.channels.values()
    ], id_first=True)


def _var_forbidden(ctx: ActionContext, text: str) -> bool:
    """function_capable_string_allowed_with_auths: SHELL/EVAL need the system class."""
    if has_system(ctx) or not ctx.behaviour.functions_need_system:
        return False
    return "SHELL" in text or "EVAL" in text


def _getvar(ctx: ActionContext, req: RequestLike) -> None:
    varname = req.header("Variable")
    name = req.header("Channel")
    if not varname:
        return err(ctx, "No variable specified")
    if _var_forbidden(ctx, varname):
        return err(ctx, "GetVar Access Forbidden: Variable")
    ch = None
    if name:
        ch = channel_or_error(ctx, name)
        if ch is None:
            return None
    value = ctx.pbx.get_var(ch, varname)
    ack(ctx, None, [("Variable", varname), ("Value", value)])
    return None


_WRITABLE_FUNCS = ("CALLERID", "DB", "GLOBAL", "CHANNEL", "CONNECTEDLINE")


def _setvar(ctx: ActionContext, req: RequestLike) -> None:
    varname = req.header("Variable")
    name = req.header("Channel")
    value = req.header("Value")
    if not varname:
        return err(ctx, "No variable specified")
    pbx = ctx.pbx
    ch = None
    if name:
        ch = channel_or_error(ctx, name)
        if ch is None:
            return None
    if varname.endswith(")") and "(" in varname:
        func, _, arg = varname[:-1].partition("(")
        up = func.upper()
        if up not in _WRITABLE_FUNCS or (up in ("CALLERID", "CHANNEL", "CONNECTEDLINE")
                                         and ch is None):
            return err(ctx, "Variable not set")
        if up == "DB":
            fam, _, key = arg.partition("/")
            pbx.db[(fam, key)] = value
        elif up == "GLOBAL":
            pbx.globals[arg] = value
        elif up == "CONNECTEDLINE" and ch is not None:
            key = arg.lower()
            if key == "all":
                cname, cnum = callerid_parse(value)
            elif key in ("num", "name"):
                cname = (value or None) if key == "name" else ch.conn_name
                cnum = (value or None) if key == "num" else ch.conn_num
            else:
                return err(ctx, "Variable not set")
            ack(ctx, "Variable Set")
            pbx.set_connected_line(ch, cnum, cname)
            return None
        elif up == "CALLERID" and ch is not None:
            if arg.lower() == "num":
                ch.cid_num = value
            elif arg.lower() == "name":
                ch.cid_name = value
            else:
                return err(ctx, "Variable not set")
            ack(ctx, "Variable Set")
            pbx.emit("NewCallerid", ("call",), [
                *pbx.snapshot(ch), ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)"),
            ])
            return None
        ack(ctx, "Variable Set")
        return None
    ack(ctx, "Variable Set")
    pbx.set_var(ch, varname, value)
    return None


def _redirect(ctx: ActionContext, req: RequestLike) -> None:
    values = required(ctx, req, "Channel", "Context", "Exten", "Priority")
    if values is None:
        return None
    name, context, exten, priority = values
    extra = req.header("ExtraChannel")
    pi = scan_int(priority)
    if pi is None:
        return err(ctx, "Invalid priority")
    pbx = ctx.pbx
    ch = pbx.find_channel(name)
    if ch is None:
        return err(ctx, f"Channel does not exist: {name}")
    other = None
    if extra:
        other = pbx.find_channel(extra)
        if other is None:
            return err(ctx, f"ExtraChannel does not exist: {extra}")
    pbx.redirect(ch, context, exten, pi)
    if other is not None:
        pbx.redirect(other, req.header("ExtraContext") or context,
                     req.header("ExtraExten") or exten,
                     scan_int(req.header("ExtraPriority")) or pi)
        ack(ctx, "Dual Redirect successful")
    else:
        ack(ctx, "Redirect successful")
    return None


def _transfer_args(ctx: ActionContext, req: RequestLike) -> tuple[Channel, str] | None:
    """What Atxfer and BlindTransfer check first: Channel and Exten, then that channel."""
    name = req.header("Channel")
    exten = req.header("Exten")
    if not name:
        err(ctx, "No channel specified")
        return None
    if not exten:
        err(ctx, "No extension specified")
        return None
    ch = channel_or_error(ctx, name, "Channel specified does not exist")
    return None if ch is None else (ch, exten)


def _atxfer(ctx: ActionContext, req: RequestLike) -> None:
    args = _transfer_args(ctx, req)
    if args is None:
        return None
    ch, _ = args
    context = req.header("Context")
    if context:
        ctx.pbx.set_var(ch, "TRANSFER_CONTEXT", context)
    ack(ctx, "Atxfer successfully queued")
    return None


def _blindtransfer(ctx: ActionContext, req: RequestLike) -> None:
    args = _transfer_args(ctx, req)
    if args is None:
        return None
    ch, exten = args
    pbx = ctx.pbx
    br = pbx.bridges.get(ch.bridge or "")
    if br is None:
        return err(ctx, "Transfer invalid")
    context = req.header("Context") or ch.context
    others = [pbx.channels[n] for n in br.channels if n != ch.name and n in pbx.channels]
    ack(ctx, "Transfer succeeded")
    for other in others:
        pbx.redirect(other, context, exten, 1)
    pbx.kick(ch)
    return None


def _cancelatxfer(ctx: ActionContext, req: RequestLike) -> None:
    name = req.header("Channel")
    if not name:
        return err(ctx, "No channel specified")
    if channel_or_error(ctx, name, "Channel specified does not exist") is None:
        return None
    return err(ctx, "No attended transfer in progress")


def _absolutetimeout(ctx: ActionContext, req: RequestLike) -> None:
    name = req.header("Channel")
    timeout = scan_int(req.header("Timeout")) or 0
    if not name:
        return err(ctx, "No channel specified")
    if timeout < 0:
        return err(ctx, "No timeout specified")
    ch = channel_or_error(ctx, name)
    if ch is None:
        return None
    ctx.pbx.set_absolute_timeout(ch, float(timeout))
    ack(ctx, "Timeout Set")
    return None


def _sendtext(ctx: ActionContext, req: RequestLike) -> None:
    name = req.header("Channel")
    text = req.header("Message")
    if not name:
        return err(ctx, "No channel specified")
    if not text:
        return err(ctx, "No Message specified")
    if channel_or_error(ctx, name) is None:
        return None
    ack(ctx, "Success")
    return None


def _localoptimizeaway(ctx: ActionContext, req: RequestLike) -> None:
    name = req.header("Channel")
    if not name:
        return err(ctx, "'Channel' not specified.")
    ch = ctx.pbx.find_channel(name)
    if ch is None:
        return err(ctx, "Channel does not exist.")
    if ch.local_base is None:
        return err(ctx, "Unable to find channel")
    ack(ctx, "Queued channel to be optimized away")
    return None


def _aocmessage(ctx: ActionContext, req: RequestLike) -> None:
    name = req.header("Channel")
    if not name and not req.header("ChannelPrefix"):
        return err(ctx, "Channel and ChannelPrefix are both not specified")
    if name and channel_or_error(ctx, name) is None:
        return None
    if not req.header("MsgType"):
        return err(ctx, "MsgType not specified")
    ack(ctx, "AOC Message successfully queued on channel")
    return None


HANDLERS: dict[str, Handler] = {
    "originate": _originate,
    "hangup": _hangup,
    "status": _status,
    "coreshowchannels": _coreshowchannels,
    "getvar": _getvar,
    "setvar": _setvar,
    "redirect": _redirect,
    "atxfer": _atxfer,
    "blindtransfer": _blindtransfer,
    "cancelatxfer": _cancelatxfer,
    "absolutetimeout": _absolutetimeout,
    "sendtext": _sendtext,
    "localoptimizeaway": _localoptimizeaway,
    "aocmessage": _aocmessage,
}
