"""app_queue and app_agent_pool actions: QueueStatus/QueueSummary as recorded, the UCM's
event-list ``Queues`` (see amicheck.sim.handlers), member management, ``queue show`` text."""

from __future__ import annotations

from amicheck.sim import queue_app, queue_devices
from amicheck.sim.actions.base import (
    ActionContext,
    Handler,
    RequestLike,
    ack,
    ast_true,
    err,
    required,
    scan_int,
    send_list,
)
from amicheck.sim.pbx import (
    Pbx,
    Queue,
    QueueMember,
)

__all__ = ["HANDLERS", "queue_show"]


def _queue_params(pbx: Pbx, q: Queue, modern: bool = False) -> list[tuple[str, str]]:
    perf2 = [("ServicelevelPerf2", "0.0")] if modern else []
    calls = len(queue_app.callers(pbx, q.name))
    return [
        ("Queue", q.name), ("Max", str(q.max)), ("Strategy", q.strategy), ("Calls", str(calls)),
        ("Holdtime", str(q.holdtime)), ("TalkTime", str(q.talktime)),
        ("Completed", str(q.completed)), ("Abandoned", str(q.abandoned)),
        ("ServiceLevel", str(q.servicelevel)), ("ServicelevelPerf", "0.0"), *perf2,
        ("Weight", str(q.weight)),
    ]


def _member_item(pbx: Pbx, q: Queue, m: QueueMember) -> list[tuple[str, str]]:
    """The QueueStatus ``QueueMember`` item fields (Name/Location, 13.38 order; 22 adds
    LastPause, LoginTime and Wrapuptime)."""
    modern = pbx.dialect == "22"
    times = [("LastPause", "0"), ("LoginTime", str(int(pbx.started)))] if modern else []
    return [
        ("Queue", q.name), ("Name", m.name), ("Location", m.interface),
        ("StateInterface", m.state_interface), ("Membership", m.membership),
        ("Penalty", str(m.penalty)), ("CallsTaken", str(m.calls_taken)),
        ("LastCall", str(m.last_call)), *times, ("InCall", str(m.in_call)),
        ("Status", str(pbx.member_status(m))), ("Paused", "1" if m.paused else "0"),
        ("PausedReason", m.paused_reason), *([("Wrapuptime", "0")] if modern else []),
    ]


def _entry_item(pbx: Pbx, q: Queue, pos: int, e: queue_app.Entry) -> list[tuple[str, str]]:
    """A waiting caller (QueueStatus ``QueueEntry``: caller ids "unknown", no brackets)."""
    ch = e.chan
    return [
        ("Queue", q.name), ("Position", str(pos)), ("Channel", ch.name),
        ("Uniqueid", ch.uniqueid), ("CallerIDNum", ch.cid_num or "unknown"),
        ("CallerIDName", ch.cid_name or "unknown"), ("ConnectedLineNum", ch.conn_num or "unknown"),
        ("ConnectedLineName", ch.conn_name or "unknown"), ("Wait", str(int(pbx.now() - e.start))),
        ("Priority", "0"),
    ]


def _queuestatus(ctx: ActionContext, req: RequestLike) -> None:
    """manager_queues_status: QueueParams, QueueMember..., QueueStatusComplete."""
    want_q = req.header("Queue")
    want_m = req.header("Member")
    pbx = ctx.pbx
    items: list[tuple[str, list[tuple[str, str]]]] = []
    for q in pbx.queues.values():
        if want_q and q.name != want_q:
            continue
        items.append(("QueueParams", _queue_params(pbx, q, pbx.dialect == "22")))
        items += [("QueueMember", _member_item(pbx, q, m)) for m in q.members
                  if not want_m or want_m in (m.interface, m.name)]
        if not want_m:
            items += [("QueueEntry", _entry_item(pbx, q, n, e))
                      for n, e in enumerate(queue_app.callers(pbx, q.name), 1)]
    send_list(ctx, "Queue status will follow", "QueueStatusComplete", items)


def _summary_fields(pbx: Pbx, q: Queue) -> list[tuple[str, str]]:
    statuses = [pbx.member_status(m) for m in q.members]
    logged_in = sum(1 for s in statuses if s not in (4, 5))
    available = sum(1 for m, s in zip(q.members, statuses, strict=True)
                    if s in (0, 1) and not m.paused)
    waiting = queue_app.callers(pbx, q.name)
    longest = max((int(pbx.now() - e.start) for e in waiting), default=0)
    return [
        ("Queue", q.name), ("LoggedIn", str(logged_in)), ("Available", str(available)),
        ("Callers", str(len(waiting))), ("HoldTime", str(q.holdtime)),
        ("TalkTime", str(q.talktime)), ("LongestHoldTime", str(longest)),
    ]


def _queuesummary(ctx: ActionContext, req: RequestLike) -> None:
    want_q = req.header("Queue")
    pbx = ctx.pbx
    send_list(ctx, "Queue summary will follow", "QueueSummaryComplete", [
        ("QueueSummary", _summary_fields(pbx, q)) for q in pbx.queues.values()
        if not want_q or q.name == want_q
    ])


def _queues(ctx: ActionContext, req: RequestLike) -> None:
    """The UCM's Queues: an event list (see the module docstring for the field choice)."""
    pbx = ctx.pbx
    if pbx.dialect == "22":  # app_queue 22 has no Queues action
        return err(ctx, "Invalid/unknown command: Queues. Use Action: ListCommands to show "
                        "available commands.")
    items: list[tuple[str, list[tuple[str, str]]]] = []
    for q in pbx.queues.values():
        items.append(("QueueStatus", _queue_params(pbx, q)))
        items += [("QueueMemberStatus", pbx.member_fields(q, m)) for m in q.members]
    send_list(ctx, "Queues will follow", "QueuesComplete", items)


def _find_member(q: Queue, interface: str) -> QueueMember | None:
    for m in q.members:
        if m.interface.lower() == interface.lower():
            return m
    return None


def _members(pbx: Pbx, queue: str, interface: str) -> list[tuple[Queue, QueueMember]]:
    """The members ``interface`` of queue ``queue``, or of every queue when it is empty."""
    return [(q, m) for q in pbx.queues.values() if not queue or q.name == queue
            for m in [_find_member(q, interface)] if m is not None]


def _need(ctx: ActionContext, req: RequestLike, first: str, second: str) -> list[str] | None:
    """app_queue's check of two mandatory headers: one text whichever is missing."""
    return required(ctx, req, first, second, text=f"Need '{first}' and '{second}' parameters.")


def _queueadd(ctx: ActionContext, req: RequestLike) -> None:
    values = required(ctx, req, "Queue", "Interface", text="'{}' not specified.")
    if values is None:
        return None
    queue, interface = values
    pbx = ctx.pbx
    q = pbx.queues.get(queue)
    if q is None:
        return err(ctx, "Unable to add interface to queue: No such queue")
    if _find_member(q, interface) is not None:
        return err(ctx, "Unable to add interface: Already there")
    penalty = scan_int(req.header("Penalty")) or 0
    m = QueueMember(interface=interface, name=req.header("MemberName") or interface,
                    state_interface=req.header("StateInterface") or interface,
                    membership="dynamic", penalty=max(penalty, 0),
                    paused=ast_true(req.header("Paused")),
                    paused_reason=req.header("Reason"))
    q.members.append(m)
    ack(ctx, "Added interface to queue")
    pbx.emit("QueueMemberAdded", ("agent",), pbx.member_fields(q, m))
    return None


def _queueremove(ctx: ActionContext, req: RequestLike) -> None:
    values = _need(ctx, req, "Queue", "Interface")
    if values is None:
        return None
    queue, interface = values
    pbx = ctx.pbx
    q = pbx.queues.get(queue)
    if q is None:
        return err(ctx, "Unable to remove interface from queue: No such queue")
    m = _find_member(q, interface)
    if m is None:
        return err(ctx, "Unable to remove interface: Not there")
    if m.membership != "dynamic":
        return err(ctx, "Member not dynamic")
    fields = pbx.member_fields(q, m)
    q.members.remove(m)
    ack(ctx, "Removed interface from queue")
    pbx.emit("QueueMemberRemoved", ("agent",), fields)
    return None


def _queuepause(ctx: ActionContext, req: RequestLike) -> None:
    values = _need(ctx, req, "Interface", "Paused")
    if values is None:
        return None
    interface, paused_s = values
    paused = ast_true(paused_s)
    reason = req.header("Reason")
    pbx = ctx.pbx
    hits = _members(pbx, req.header("Queue"), interface)
    if not hits:
        return err(ctx, "Interface not found")
    ack(ctx, "Interface paused successfully" if paused else "Interface unpaused successfully")
    for q, m in hits:
        m.paused, m.paused_reason = paused, reason if paused else ""
        # 13.38 appends the action's Reason after the member snapshot when one was given
        extra = [("Reason", reason)] if reason and pbx.dialect == "13" else []
        queue_devices.pause_changed(pbx, q, m)
        pbx.emit("QueueMemberPause", ("agent",), [*pbx.member_fields(q, m), *extra])
    return None


def _queuepenalty(ctx: ActionContext, req: RequestLike) -> None:
    values = _need(ctx, req, "Interface", "Penalty")
    if values is None:
        return None
    interface, penalty_s = values
    penalty = scan_int(penalty_s) or 0  # atoi(): "abc" is 0
    pbx = ctx.pbx
    hits = _members(pbx, req.header("Queue"), interface)
    if penalty < 0 or not hits:
        return err(ctx, "Invalid interface, queuename or penalty")
    ack(ctx, "Interface penalty set successfully")
    for q, m in hits:
        m.penalty = penalty
        pbx.emit("QueueMemberPenalty", ("agent",), pbx.member_fields(q, m))
    return None


def _queueringinuse(ctx: ActionContext, req: RequestLike) -> None:
    values = _need(ctx, req, "Interface", "RingInUse")
    if values is None:
        return None
    interface, value = values
    hits = _members(ctx.pbx, req.header("Queue"), interface)
    if not hits:
        return err(ctx, "Invalid interface, queuename, or ringinuse value")
    for _, m in hits:
        m.ringinuse = ast_true(value)
    ack(ctx, "Interface ringinuse set successfully")
    return None


def _queuelog(ctx: ActionContext, req: RequestLike) -> None:
    if _need(ctx, req, "Queue", "Event") is None:
        return None
    ack(ctx, "Added Queue Log")
    return None


def _whole_queue_op(failed: str, done: str) -> Handler:
    """QueueReload and QueueReset in the model: they only check the optional Queue."""
    def handler(ctx: ActionContext, req: RequestLike) -> None:
        queue = req.header("Queue")
        if queue and queue not in ctx.pbx.queues:
            return err(ctx, failed)
        ack(ctx, done)
        return None
    return handler


def _queuerule(ctx: ActionContext, req: RequestLike) -> None:
    ack(ctx)


def queue_show(pbx: Pbx) -> str:
    """``queue show`` as app_queue 13.x prints it (also 13.x's raw Queues answer)."""
    out = []
    for q in pbx.queues.values():
        waiting = queue_app.callers(pbx, q.name)
        out.append(f"{q.name} has {len(waiting)} calls (max unlimited) in '{q.strategy}' "
                   f"strategy ({q.holdtime}s holdtime, {q.talktime}s talktime), W:{q.weight}, "
                   f"C:{q.completed}, A:{q.abandoned}, SL:0.0% within {q.servicelevel}s")
        if q.members:
            out.append("   Members: ")
            for m in q.members:
                st = pbx.member_status(m)
                desc = {1: "Not in use", 2: "In use", 5: "Unavailable", 6: "Ringing",
                        4: "Invalid"}.get(st, "Unknown")
                extra = " (dynamic)" if m.membership == "dynamic" else ""
                paused = " (paused)" if m.paused else ""
                taken = (f"has taken {m.calls_taken} calls (last was "
                         f"{int(pbx.now()) - m.last_call} secs ago)" if m.calls_taken
                         else "has taken no calls yet")
                out.append(f"      {m.name} ({m.interface}){extra}{paused} "
                           f"(ringinuse {'enabled' if m.ringinuse else 'disabled'}) ({desc}) "
                           f"{taken}")
        else:
            out.append("   No Members")
        if waiting:
            out.append("   Callers: ")
            for n, e in enumerate(waiting, 1):
                secs = int(pbx.now() - e.start)
                out.append(f"      {n}. {e.chan.name} (wait: {secs // 60}:{secs % 60:02d}, "
                           "prio: 0)")
        else:
            out.append("   No Callers")
        out.append("")
    return "\n".join(out) + "\n"


def _agents(ctx: ActionContext, req: RequestLike) -> None:
    send_list(ctx, "Agents will follow", "AgentsComplete", [])


def _agentlogoff(ctx: ActionContext, req: RequestLike) -> None:
    if not req.header("Agent"):
        return err(ctx, "No agent specified")
    return err(ctx, "No such agent")

HANDLERS: dict[str, Handler] = {
    "queuestatus": _queuestatus,
    "queuesummary": _queuesummary,
    "queues": _queues,
    "queueadd": _queueadd,
    "queueremove": _queueremove,
    "queuepause": _queuepause,
    "queuepenalty": _queuepenalty,
    "queuememberringinuse": _queueringinuse,
    "queuelog": _queuelog,
    "queuereload": _whole_queue_op("Error encountered while reloading queue",
                                   "Queue reloaded successfully"),
    "queuereset": _whole_queue_op("Error encountered while resetting queue stats",
                                  "Queue stats reset successfully"),
    "queuerule": _queuerule,
    "agents": _agents,
    "agentlogoff": _agentlogoff,
}
