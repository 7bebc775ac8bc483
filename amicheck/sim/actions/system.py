"""Core and system actions: Ping, CoreSettings/CoreStatus, UserEvent, AstDB, Command (13.x
``Response: Follows`` form with a few CLI commands), extension/mailbox state, modules."""

from __future__ import annotations

import re
import time

from amicheck.protocol.message import Message
from amicheck.sim import replies
from amicheck.sim.actions.base import (
    ActionContext,
    Handler,
    RequestLike,
    ack,
    aid,
    err,
    required,
    send_list,
)
from amicheck.sim.actions.queues import queue_show
from amicheck.sim.filters import compile_posix
from amicheck.sim.pbx import (
    ENDPOINTS,
    EXTENSION_STATES,
    STATE_DESC,
    Pbx,
)

__all__ = ["HANDLERS", "ASTERISK_VERSION"]

#: What CoreSettings and ``core show version`` report (13.x; the AMI version comes from
#: the profile's banner).
ASTERISK_VERSION = "13.4.0"


def _ping(ctx: ActionContext, req: RequestLike) -> None:
    """action_ping: Response, ActionID, Ping: Pong, Timestamp (sec.usec)."""
    ctx.reply(replies.response("Success", aid(ctx), None, [
        ("Ping", "Pong"), ("Timestamp", f"{ctx.pbx.now():.6f}"),
    ]))


def _ami_version(ctx: ActionContext) -> str:
    banner = ctx.profile.settings.banner
    return banner.rsplit("/", 1)[-1] if "/" in banner else "2.7.0"


def _coresettings(ctx: ActionContext, req: RequestLike) -> None:
    ctx.reply(replies.response("Success", aid(ctx), None, [
        ("AMIversion", _ami_version(ctx)), ("AsteriskVersion", ASTERISK_VERSION),
        ("SystemName", ""), ("CoreMaxCalls", "0"), ("CoreMaxLoadAvg", "0.000000"),
        ("CoreRunUser", ""), ("CoreRunGroup", ""), ("CoreMaxFilehandles", "0"),
        ("CoreRealTimeEnabled", "No"), ("CoreCDRenabled", "Yes"), ("CoreHTTPenabled", "No"),
    ]))


def _utc(ts: float, fmt: str) -> str:
    return time.strftime(fmt, time.gmtime(ts))


def _corestatus(ctx: ActionContext, req: RequestLike) -> None:
    pbx = ctx.pbx
    ctx.reply(replies.response("Success", aid(ctx), None, [
        ("CoreStartupDate", _utc(pbx.started, "%Y-%m-%d")),
        ("CoreStartupTime", _utc(pbx.started, "%H:%M:%S")),
        ("CoreReloadDate", _utc(pbx.reloaded, "%Y-%m-%d")),
        ("CoreReloadTime", _utc(pbx.reloaded, "%H:%M:%S")),
        ("CoreCurrentCalls", str(len(pbx.channels))),
        *([("CoreProcessedCalls", str(pbx.calls_processed))] if pbx.dialect == "22" else []),
    ]))


def _userevent(ctx: ActionContext, req: RequestLike) -> None:
    """action_userevent: every header but UserEvent/Action goes into the event, after ack."""
    event = req.header("UserEvent")
    body = [(k, v) for k, v in req.message.items
            if k.lower() not in ("userevent", "action")]
    ack(ctx, "Event Sent")
    ctx.pbx.user_events += 1
    ctx.pbx.emit("UserEvent", ("user",), [("UserEvent", event), *body])


def _dbget(ctx: ActionContext, req: RequestLike) -> None:
    values = required(ctx, req, "Family", "Key", text="No {lower} specified.")
    if values is None:
        return None
    family, key = values
    value = ctx.pbx.db.get((family, key))
    if value is None:
        return err(ctx, "Database entry not found")
    send_list(ctx, "Result will follow", "DBGetComplete", [
        ("DBGetResponse", [("Family", family), ("Key", key), ("Val", value)]),
    ])
    return None


def _dbput(ctx: ActionContext, req: RequestLike) -> None:
    values = required(ctx, req, "Family", "Key", text="No {lower} specified")  # no full stop
    if values is None:
        return None
    family, key = values
    ctx.pbx.db[(family, key)] = req.header("Val")
    ack(ctx, "Updated database successfully")
    return None


def _dbdel(ctx: ActionContext, req: RequestLike) -> None:
    values = required(ctx, req, "Family", "Key", text="No {lower} specified.")
    if values is None:
        return None
    family, key = values
    if ctx.pbx.db.pop((family, key), None) is None:
        return err(ctx, "Database entry not found")
    ack(ctx, "Key deleted successfully")
    return None


def _dbdeltree(ctx: ActionContext, req: RequestLike) -> None:
    family = req.header("Family")
    key = req.header("Key")
    if not family:
        return err(ctx, "No family specified.")
    db = ctx.pbx.db
    doomed = [k for k in db if k[0] == family and (not key or k[1] == key
                                                   or k[1].startswith(key + "/"))]
    if not doomed:
        return err(ctx, "Database entry not found")
    for k in doomed:
        del db[k]
    ack(ctx, "Key tree deleted successfully")
    return None


_BLACKLIST = (("module", "load"), ("module", "unload"), ("restart", "gracefully"))


def _command(ctx: ActionContext, req: RequestLike) -> None:
    """13.x Command: ``Response: Follows``, ``Privilege: Command``, raw LF text, END COMMAND."""
    cmd = req.header("Command")
    if not cmd:
        return err(ctx, "No command provided")
    words = cmd.lower().split()
    for bad in _BLACKLIST:
        if tuple(words[: len(bad)]) == bad:
            return err(ctx, "Command blacklisted")
    text = _cli(ctx, cmd)
    if ctx.pbx.dialect == "22":  # 22: Success, one Output header per line
        lines = [("Output", line) for line in text.rstrip("\n").split("\n")] if text else []
        ack(ctx, "Command output follows", lines)
        return None
    items = [("Response", "Follows"), ("Privilege", "Command")]
    action_id = aid(ctx)
    if action_id is not None:
        items.append(("ActionID", action_id))
    ctx.reply(Message(items, text=text))
    return None


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
        cw, lw = (64, 32) if pbx.dialect == "22" else (20, 20)  # 22's wider columns
        lines.append(f"{'Channel':<{cw}.{cw}} {'Location':<{lw}.{lw}} {'State':<7.7} "
                     f"{'Application(Data)':<30.30}")
        for ch in pbx.channels.values():
            loc = f"{ch.exten}@{ch.context}:{ch.priority}"
            app = f"{ch.application}({ch.appdata})"
            lines.append(f"{ch.name:<{cw}.{cw}} {loc:<{lw}.{lw}} "
                         f"{STATE_DESC.get(ch.state, ''):<7.7} {app:<30.30}")
        n = len(pbx.channels)
        calls = len({c.linkedid for c in pbx.channels.values()})
        lines.append(f"{n} active channel{'' if n == 1 else 's'}")
        lines.append(f"{calls} active call{'' if calls == 1 else 's'}")
        done = pbx.calls_processed
        lines.append(f"{done} call{'' if done == 1 else 's'} processed")
        return "\n".join(lines) + "\n"
    if low == "queue show" or low.startswith("queue show "):
        return queue_show(pbx)
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


def _state_fields(pbx: Pbx, context: str, exten: str) -> list[tuple[str, str]]:
    """An extension's state as ExtensionState and ExtensionStateList report it."""
    status, hint = pbx.extension_state(context, exten)
    return [("Exten", exten), ("Context", context), ("Hint", hint), ("Status", str(status)),
            ("StatusText", EXTENSION_STATES.get(status, "Unknown"))]


def _extensionstate(ctx: ActionContext, req: RequestLike) -> None:
    exten = req.header("Exten")
    context = req.header("Context") or "default"
    if not exten:
        return err(ctx, "Extension not specified")
    ack(ctx, "Extension Status", _state_fields(ctx.pbx, context, exten))
    return None


def _extensionstatelist(ctx: ActionContext, req: RequestLike) -> None:
    pbx = ctx.pbx
    send_list(ctx, "Extension Statuses will follow", "ExtensionStateListComplete", [
        ("ExtensionStatus", _state_fields(pbx, context, exten))
        for context, exten in sorted(pbx.hints)
    ], id_first=True)


def _mailbox(ctx: ActionContext, name: str) -> tuple[int, int, int]:
    box = name if "@" in name else f"{name}@default"
    return ctx.pbx.mailboxes.get(box, (0, 0, 0))


def _mailboxstatus(ctx: ActionContext, req: RequestLike) -> None:
    mailbox = req.header("Mailbox")
    if not mailbox:
        return err(ctx, "Mailbox not specified")
    _, new, _ = _mailbox(ctx, mailbox)
    ack(ctx, "Mailbox Status", [("Mailbox", mailbox), ("Waiting", "1" if new else "0")])
    return None


def _mailboxcount(ctx: ActionContext, req: RequestLike) -> None:
    mailbox = req.header("Mailbox")
    if not mailbox:
        return err(ctx, "Mailbox not specified")
    urg, new, old = _mailbox(ctx, mailbox)
    ack(ctx, "Mailbox Message Count", [
        ("Mailbox", mailbox), ("UrgMessages", str(urg)), ("NewMessages", str(new)),
        ("OldMessages", str(old)),
    ])
    return None


def _presencestate(ctx: ActionContext, req: RequestLike) -> None:
    provider = req.header("Provider")
    if not provider:
        return err(ctx, "No provider specified")
    if not provider.lower().startswith("custompresence:"):
        return err(ctx, "Invalid presence state")
    ack(ctx, "Presence State", [("State", "not_set")])
    return None


def _reload(ctx: ActionContext, req: RequestLike) -> None:
    module = req.header("Module")
    if module and module.split(".", 1)[0] not in _MODULES:
        return err(ctx, "No such module")
    pbx = ctx.pbx
    pbx.reloaded = pbx.now()
    ack(ctx, "Module Reloaded")
    return None


_MODULES = frozenset({
    "app_queue", "app_dial", "app_voicemail", "app_agent_pool", "chan_pjsip", "res_pjsip",
    "res_parking", "pbx_config", "manager", "core_local", "chan_local", "res_musiconhold",
    "app_confbridge", "cdr_csv", "extensions", "features", "queues", "pjsip",
})


def _modulecheck(ctx: ActionContext, req: RequestLike) -> None:
    module = req.header("Module").split(".", 1)[0]
    if module not in _MODULES:
        return err(ctx, "Module not loaded")
    ack(ctx, None, [("Version", "")])
    return None


def _moduleload(ctx: ActionContext, req: RequestLike) -> None:
    module = req.header("Module")
    loadtype = req.header("LoadType").lower()
    if not loadtype:
        return err(ctx, "Incomplete ModuleLoad action.")
    if not module and loadtype != "reload":
        return err(ctx, "Need module name")
    if loadtype == "load":
        return err(ctx, "Could not load module.")
    if loadtype == "unload":
        return err(ctx, "Could not unload module.")
    if loadtype == "reload":
        if not module:
            ack(ctx, "All modules reloaded")
        elif module.split(".", 1)[0] in _MODULES:
            ack(ctx, "Module reloaded.")
        else:
            err(ctx, "No such module.")
        return None
    return err(ctx, "Incomplete ModuleLoad action.")


def _loggerrotate(ctx: ActionContext, req: RequestLike) -> None:
    ack(ctx, "Reloaded and rotated the Asterisk logger")


def _filter(ctx: ActionContext, req: RequestLike) -> None:
    """action_filter: a legacy regex filter of this session (``!``: exclude)."""
    operation = req.header("Operation")
    flt = req.header("Filter")
    if operation.lower() != "add":
        return err(ctx, "Unknown operation")
    check = "  Check the syntax of the filter given."
    if ctx.pbx.dialect == "22" and not flt:
        return err(ctx, "Filter was formatted incorrectly." + check)
    ok = ctx.hooks.add_filter(flt) if ctx.hooks is not None else compile_posix(
        flt.removeprefix("!")) is not None
    if not ok:
        return err(ctx, "Filter did not compile." + check)
    ack(ctx, "Success")
    return None


def _messagesend(ctx: ActionContext, req: RequestLike) -> None:
    if required(ctx, req, "To", "From", text="No '{}' address specified.") is None:
        return None
    ack(ctx, "Message successfully sent")
    return None


def _dataget(ctx: ActionContext, req: RequestLike) -> None:
    if not req.header("Path"):
        return err(ctx, "'Path' not specified")
    return err(ctx, "Data API not available")


def _waitevent(ctx: ActionContext, req: RequestLike) -> None:
    """action_waitevent: the session waits (Timeout seconds, ``%i``; -1 or none: forever)
    for an event or a client write, then answers, with the events queued meanwhile."""
    scanned = _scan_c_int(req.header("Timeout"))
    timeout = -1 if scanned is None else max(scanned, -1)
    response = replies.response("Success", aid(ctx), "Waiting for Event completed.")
    done = replies.list_item("WaitEventComplete", aid(ctx))
    if ctx.hooks is None or timeout == 0:
        ctx.reply(response)
        ctx.reply(done)
        return
    ctx.hooks.wait_event(None if timeout < 0 else float(timeout), response, done)


def _scan_c_int(text: str) -> int | None:
    """sscanf("%30i"): decimal, ``0x`` hex or ``0`` octal; None when none."""
    m = re.match(r"\s*([+-]?)(?:0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9]\d*))", text)
    if not m:
        return None
    sign = -1 if m.group(1) == "-" else 1
    if m.group(2):
        return sign * int(m.group(2), 16)
    if m.group(3):
        return sign * int(m.group(3), 8)
    return sign * int(m.group(4))


HANDLERS: dict[str, Handler] = {
    "ping": _ping,
    "coresettings": _coresettings,
    "corestatus": _corestatus,
    "userevent": _userevent,
    "dbget": _dbget,
    "dbput": _dbput,
    "dbdel": _dbdel,
    "dbdeltree": _dbdeltree,
    "command": _command,
    "extensionstate": _extensionstate,
    "extensionstatelist": _extensionstatelist,
    "mailboxstatus": _mailboxstatus,
    "mailboxcount": _mailboxcount,
    "presencestate": _presencestate,
    "reload": _reload,
    "modulecheck": _modulecheck,
    "moduleload": _moduleload,
    "loggerrotate": _loggerrotate,
    "filter": _filter,
    "messagesend": _messagesend,
    "dataget": _dataget,
    "waitevent": _waitevent,
}
