"""The Queue dialplan application of the simulated PBX: app_queue's call flow and its events.

What a client sees of a caller in a queue, as Asterisk 13.38 and 22 emit it (measured with
tests/fidelity.py against the reference servers; apps/app_queue.c for what the kit can't
show): QueueCallerJoin; per rung member AgentCalled, the member channel's Newchannel/
DialBegin; on answer DialEnd, QueueCallerLeave, AgentConnect and the bridge; at its end
AgentComplete (Reason caller or agent), when a HangupRequest tells app_queue of the end.
A member that does not answer within the member timeout gets AgentRingNoAnswer and, after
the retry wait, the queue rings again; a caller who hangs up while waiting, or whose
Queue(...,timeout) runs out, gets QueueCallerAbandon then QueueCallerLeave
(record_abandoned: the timeout counts as abandoned in app_queue). A hangup queued to a
waiting caller is seen by the application before the channel ends. The caller's variables
are app_queue's: QUEUEPOSITION as it leaves, ABANDONED, and in 22 the reset, QUEUEWAIT and
Dial()'s ANSWEREDTIME/DIALEDTIME; a 22 member gets DIALEDPEERNUMBER.

Paused, unavailable and invalid members are not rung, nor busy ones with ringinuse off.
Strategies: ringall (every member of the best penalty at once), rrmemory/roundrobin/
rrordered (one member at a time, resuming after the last one rung), linear (in order, from
the first); the others ring as ringall. No I/O: everything goes through the Pbx's timers.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from amicheck.sim.callflow import set_duration
from amicheck.sim.pbx import APPLICATIONS, ENDPOINTS, RING_SECONDS, Channel, Pbx, Queue, QueueMember
from amicheck.sim.queue_devices import devstate

__all__ = ["MEMBER_TIMEOUT", "RETRY", "Entry", "callers", "run"]

#: queues.conf timeout= and retry= of the reference kit (and a UCM's defaults)
MEMBER_TIMEOUT = 15.0
RETRY = 5.0
_AGENT = ("agent",)
_CALL = ("call",)
_ROUND_ROBIN = ("rrmemory", "roundrobin", "rrordered")
#: AST_DEVICE_* a member is not rung in: INVALID, UNAVAILABLE
_GONE = (4, 5)
#: what 22's queue_exec resets on the caller first ("Reset variables to avoid stale data")
_RESET_22 = ("ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS", "QUEUEWAIT",
             "QUEUEWAIT_MS")


@dataclass
class _Attempt:
    """One member being rung for one caller (app_queue's struct callattempt)."""

    member: QueueMember
    chan: Channel  # the channel the queue talks to (a Local ;1 or the PJSIP channel)
    started: float
    live: bool = True


@dataclass
class Entry:
    """A caller in a queue (app_queue's struct queue_ent)."""

    queue: Queue
    chan: Channel
    start: float
    opos: int
    expire: float | None
    resume: Callable[[], None]
    attempts: list[_Attempt] = field(default_factory=list)
    done: bool = False
    round: int = 0  # bumped per ring attempt: a stale member timeout is ignored
    wake: int = 0  # bumped per scheduled _try: only the latest one runs


@dataclass
class _State:
    queues: dict[str, Queue]  # the Pbx.queues this state belongs to (reset: a new dict)
    callers: dict[str, list[Entry]] = field(default_factory=dict)
    rrpos: dict[str, int] = field(default_factory=dict)


_STATES: weakref.WeakKeyDictionary[Pbx, _State] = weakref.WeakKeyDictionary()


def _state(pbx: Pbx) -> _State:
    st = _STATES.get(pbx)
    if st is None or st.queues is not pbx.queues:  # a reset forgets every caller
        st = _STATES[pbx] = _State(pbx.queues)
    return st


def callers(pbx: Pbx, queue: str) -> list[Entry]:
    """The callers waiting in ``queue``, in position order (QueueStatus QueueEntry items)."""
    return list(_state(pbx).callers.get(queue, []))


# -- events ----------------------------------------------------------------------------------
def _caller_event(pbx: Pbx, name: str, e: Entry, *extra: tuple[str, str]) -> None:
    pbx.emit(name, _AGENT, [*pbx.snapshot(e.chan), ("Queue", e.queue.name), *extra])


def _agent_event(pbx: Pbx, name: str, e: Entry, a: _Attempt, *extra: tuple[str, str]) -> None:
    pbx.emit(name, _AGENT, [
        *pbx.snapshot(e.chan), *pbx.snapshot(a.chan, "Dest"), ("Queue", e.queue.name),
        ("Interface", a.member.interface), ("MemberName", a.member.name), *extra])


def _dial_event(pbx: Pbx, name: str, e: Entry, a: _Attempt, *extra: tuple[str, str]) -> None:
    pbx.emit(name, _CALL, [*pbx.snapshot(e.chan), *pbx.snapshot(a.chan, "Dest"), *extra])


def _position(e: Entry, st: _State) -> int:
    waiting = st.callers.get(e.queue.name, [])
    return waiting.index(e) + 1 if e in waiting else e.opos


def _secs(pbx: Pbx, since: float) -> str:
    return str(int(pbx.now() - since))


# -- the application -------------------------------------------------------------------------
def run(pbx: Pbx, chan: Channel, data: str, nxt: Callable[[], None]) -> None:
    """Queue(name[,options[,URL[,announce[,timeout]]]]) on ``chan``; ``nxt`` continues its
    dialplan when the caller leaves the queue without being connected (QUEUESTATUS set)."""
    args = data.split(",")
    if pbx.dialect != "13":
        for name in _RESET_22:
            pbx.set_var(chan, name, "")
    pbx.set_var(chan, "ABANDONED", None)
    q = pbx.queues.get(args[0].strip())
    if q is None:
        pbx.set_var(chan, "QUEUESTATUS", "UNKNOWN")
        nxt()
        return
    timeout = _int(args[4]) if len(args) > 4 else 0
    st = _state(pbx)
    waiting = st.callers.setdefault(q.name, [])
    now = pbx.now()
    e = Entry(q, chan, now, len(waiting) + 1, now + timeout if timeout > 0 else None, nxt)
    waiting.append(e)
    if len(waiting) == 1:  # join_queue: the queue's device rings while anyone waits
        devstate(pbx, f"Queue:{q.name}", "RINGING")
    _caller_event(pbx, "QueueCallerJoin", e, ("Position", str(e.opos)),
                  ("Count", str(len(waiting))))
    previous = chan.on_hangup

    def caller_gone() -> None:
        if previous is not None:
            previous()
        _caller_hung_up(pbx, e)

    chan.on_hangup = caller_gone
    chan.on_hangup_request = lambda: _caller_hung_up(pbx, e)  # it left before it hangs up
    _wake(pbx, e, 0.0)


def _wake(pbx: Pbx, e: Entry, delay: float) -> None:
    """Run :func:`_try` for ``e`` in ``delay`` seconds, replacing any earlier wake-up."""
    e.wake += 1
    token = e.wake
    pbx.later(delay, lambda: _try(pbx, e) if token == e.wake else None)


def _try(pbx: Pbx, e: Entry) -> None:
    """One round of try_calling: ring the best members for the member timeout (or what is
    left of the caller's), or, with nobody to ring, wait ``RETRY`` and look again."""
    if e.done or not e.chan.alive or e.attempts:
        return
    st = _state(pbx)
    if e.expire is not None and pbx.now() >= e.expire:
        _leave(pbx, e, "TIMEOUT", abandoned=True)
        return
    waiting = st.callers.get(e.queue.name, [])
    ahead = waiting.index(e) if e in waiting else 0
    members = _ring_order(pbx, e.queue, st)
    if ahead >= max(len(members), 1):  # autofill: as many ring as there are members free
        _wake(pbx, e, RETRY)
        return
    e.round += 1
    token = e.round
    ring = members[:1] if e.queue.strategy in _ROUND_ROBIN + ("linear",) else members
    if e.queue.strategy in _ROUND_ROBIN and ring:
        st.rrpos[e.queue.name] = _next_rr(e.queue, st, members)
    for m in ring:
        _ring(pbx, e, m)
    if not e.attempts:
        _wake(pbx, e, RETRY)
        return
    wait = MEMBER_TIMEOUT
    if e.expire is not None:
        wait = min(wait, max(e.expire - pbx.now(), 0.0))
    pbx.later(wait, lambda: _no_answer(pbx, e, token))


def _ring_order(pbx: Pbx, q: Queue, st: _State) -> list[QueueMember]:
    """The members that may be rung, best metric first (calc_metric), the lowest penalty
    tier only."""
    busy = {a.member.interface for w in st.callers.get(q.name, []) for a in w.attempts if a.live}
    free = []
    for pos, m in enumerate(q.members):
        status = pbx.member_status(m)
        if m.paused or status in _GONE or m.interface in busy or m.in_call:
            continue
        if status in (2, 3, 6, 7) and not m.ringinuse:
            continue
        metric = pos
        if q.strategy in _ROUND_ROBIN and pos < st.rrpos.get(q.name, 0):
            metric = 1000 + pos
        free.append((m.penalty * 1000000 + metric, m))
    free.sort(key=lambda t: t[0])
    best = free[0][0] // 1000000 if free else 0
    return [m for metric, m in free if metric // 1000000 == best]


def _next_rr(q: Queue, st: _State, members: list[QueueMember]) -> int:
    """store_next_rr: the next call starts at the best member not rung now; with none,
    one further on, or from the top once a later member was seen (wrapped)."""
    if len(members) > 1:
        return q.members.index(members[1])
    pos = st.rrpos.get(q.name, 0)
    wrapped = any(q.members.index(m) > pos for m in members)
    return 0 if wrapped else pos + 1


def _ring(pbx: Pbx, e: Entry, m: QueueMember) -> None:
    """ring_entry: the member's channel, AgentCalled, DialBegin; answered -> _answered."""
    tech, _, rest = m.interface.partition("/")
    if tech.lower() == "local":
        exten, _, ctx = rest.partition("@")
        ctx = ctx.split("/", 1)[0] or "default"
        if pbx.find_exten(ctx, exten) is None:
            return
        one, two = _local_pair(pbx, e, m.interface, ctx, exten)
        a = _Attempt(m, one, pbx.now())
        e.attempts.append(a)
        _agent_event(pbx, "AgentCalled", e, a)
        # ast_channel_publish_dial reads the member channel's cached snapshot, published
        # before ring_entry gave it the caller's context and extension (originate-app-queue)
        inherited = one.context, one.exten
        one.context, one.exten = ctx, exten
        _dial_event(pbx, "DialBegin", e, a, ("DialString", m.interface))
        one.context, one.exten = inherited

        def local_answered() -> None:
            if not a.live or not one.alive:
                return
            one.state = 6
            pbx._newstate(one)  # 22: the Local device's state too
            pbx._queue_members_changed(m.interface)
            pbx._newexten(one, one.exten, "AppQueue", "(Outgoing Line)")
            _answered(pbx, e, a)

        two.on_answer = local_answered
        pbx._run(two, ctx, exten, 1)
        return
    if tech.upper() == "PJSIP" and ENDPOINTS.get(rest) in ("answer", "noanswer"):
        ch = _pjsip_channel(pbx, e, rest)
        a = _Attempt(m, ch, pbx.now())
        e.attempts.append(a)
        _agent_event(pbx, "AgentCalled", e, a)
        _dial_event(pbx, "DialBegin", e, a, ("DialString", m.interface))
        if ENDPOINTS[rest] == "answer":

            def pjsip_answered() -> None:
                if a.live and ch.alive:
                    ch.state = 6
                    pbx._chan_event("Newstate", ch)
                    pbx._endpoint_changed(rest)
                    _answered(pbx, e, a)

            pbx.later(RING_SECONDS, pjsip_answered)


def _local_pair(pbx: Pbx, e: Entry, base: str, ctx: str, exten: str) -> tuple[Channel, Channel]:
    """The member's Local pair as app_queue requests it: ;1 inherits the caller's context
    and extension and, without a caller id, takes the extension as its caller id number."""
    seq = f"{pbx._local_seq:08x}"
    pbx._local_seq += 1
    one = pbx._new_channel(f"{base}-{seq};1", 0, ctx, exten, linkedid=e.chan.linkedid)
    two = pbx._new_channel(f"{base}-{seq};2", 4, ctx, exten, linkedid=e.chan.linkedid)
    one.peer, two.peer = two, one
    one.local_base = two.local_base = base
    pbx._chan_event("Newchannel", one)
    pbx._chan_event("Newchannel", two)
    one.cid_num = e.chan.cid_num or e.chan.exten
    one.cid_name = e.chan.cid_name
    one.application, one.appdata = "AppQueue", "(Outgoing Line)"
    pbx._newexten(one, exten, "AppQueue", "(Outgoing Line)")  # 22: class dialplan
    pbx._chan_event("NewCallerid", one,
                    ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)"))
    if pbx.dialect != "13":  # 22's ring_entry; local_call hands ;1's variables to ;2
        location = base.partition("/")[2]
        pbx.set_var(one, "DIALEDPEERNUMBER", location)
        pbx.set_var(two, "DIALEDPEERNUMBER", location)
    two.conn_num, two.conn_name = one.cid_num, one.cid_name
    pbx._chan_event("NewConnectedLine", two)
    pbx.emit("LocalBridge", _CALL, [
        *pbx.snapshot(one, "LocalOne"), *pbx.snapshot(two, "LocalTwo"), ("Context", ctx),
        ("Exten", exten), ("LocalOptimization", "Yes")])
    one.context, one.exten = e.chan.context, e.chan.exten
    return one, two


def _pjsip_channel(pbx: Pbx, e: Entry, endpoint: str) -> Channel:
    seq = f"{pbx._pjsip_seq:08x}"
    pbx._pjsip_seq += 1
    ch = pbx._new_channel(f"PJSIP/{endpoint}-{seq}", 0, e.chan.context, e.chan.exten,
                          linkedid=e.chan.linkedid)
    ch.endpoint = endpoint
    ch.cid_num, ch.cid_name = e.chan.cid_num or e.chan.exten, e.chan.cid_name
    pbx._chan_event("Newchannel", ch)
    if pbx.dialect != "13":
        pbx.set_var(ch, "DIALEDPEERNUMBER", endpoint)
    ch.state = 5
    pbx._chan_event("Newstate", ch)
    pbx._endpoint_changed(endpoint)
    return ch


def _drop(pbx: Pbx, e: Entry, a: _Attempt, status: str) -> None:
    """Stop ringing one member (hangupcalls / the end of an unanswered round)."""
    if not a.live:
        return
    a.live = False
    if a.chan.alive:
        _dial_event(pbx, "DialEnd", e, a, ("DialStatus", status))
        pbx._hangup(a.chan, 16 if status == "CANCEL" else 19, request=False)


def _no_answer(pbx: Pbx, e: Entry, token: int) -> None:
    """The ring round ran out: AgentRingNoAnswer per member still ringing, then retry."""
    if e.done or token != e.round:
        return
    for a in list(e.attempts):
        if a.live:
            ms = int((pbx.now() - a.started) * 1000)
            _agent_event(pbx, "AgentRingNoAnswer", e, a, ("RingTime", str(ms)))
            _drop(pbx, e, a, "NOANSWER")
    e.attempts.clear()
    if e.expire is not None and pbx.now() >= e.expire:
        _leave(pbx, e, "TIMEOUT", abandoned=True)
        return
    _wake(pbx, e, RETRY)


def _answered(pbx: Pbx, e: Entry, a: _Attempt) -> None:
    """A member answered: the others stop ringing, the caller leaves the queue and is
    bridged with the member (AgentConnect), until one of them hangs up (AgentComplete)."""
    if e.done or not e.chan.alive:
        _drop(pbx, e, a, "CANCEL")
        return
    ring_ms = pbx.now() - a.started
    a.live = False
    others = [o for o in e.attempts if o is not a]
    e.attempts.clear()
    for o in others:
        _drop(pbx, e, o, "CANCEL")
    _dial_event(pbx, "DialEnd", e, a, ("DialStatus", "ANSWER"))
    hold = _secs(pbx, e.start)
    _leave(pbx, e, "", abandoned=False)
    if pbx.dialect != "13":  # the hold time, in whole seconds
        set_duration(pbx, e.chan, "QUEUEWAIT", int(pbx.now() - e.start))
    q, m = e.queue, a.member
    q.holdtime = (q.holdtime * 3 + int(hold)) // 4  # recalc_holdtime's running average
    m.in_call = 1
    _agent_event(pbx, "AgentConnect", e, a, ("HoldTime", hold), ("RingTime", str(int(ring_ms))))
    connected = pbx.now()
    if pbx.dialect != "13":

        def bridge_over() -> None:  # 22's end_bridge_callback: Dial()'s timing variables
            set_duration(pbx, e.chan, "ANSWEREDTIME", pbx.now() - connected)
            set_duration(pbx, e.chan, "DIALEDTIME", pbx.now() - e.chan.created)

        e.chan.after_bridge = bridge_over
    pbx.bridge(a.chan, e.chan)
    finished = False

    def complete(reason: str, gone: Channel) -> None:
        nonlocal finished
        if finished:
            return
        finished = True
        if not _hangup_requested(gone):  # nothing tells app_queue: no AgentComplete
            m.in_call = 0
            return
        talk = _secs(pbx, connected)
        m.in_call, m.calls_taken, m.last_call = 0, m.calls_taken + 1, int(pbx.now())
        q.completed += 1
        q.talktime = (q.talktime * 3 + int(talk)) // 4
        _agent_event(pbx, "AgentComplete", e, a, ("HoldTime", hold), ("TalkTime", talk),
                     ("Reason", reason))

    def caller_gone() -> None:
        complete("caller", e.chan)
        if a.chan.alive:
            pbx.later(0.0, lambda: pbx._hangup(a.chan, 16, request=False))

    def agent_gone() -> None:
        complete("agent", a.chan)
        if e.chan.alive:  # Queue returns -1 after the conversation: the caller hangs up
            pbx.later(0.0, lambda: pbx._hangup(e.chan, 16, request=False))

    e.chan.on_hangup = caller_gone
    a.chan.on_hangup = agent_gone


def _hangup_requested(gone: Channel) -> bool:
    """Whether Asterisk published a HangupRequest for ``gone`` (app_queue's handle_hangup
    sends AgentComplete on that message only, for the caller or the member): a Local half
    gets one when its other half ended first (the Local core queues the hangup); a Local
    half that ends first, by an AMI Hangup or its bridge dissolving, gets none
    (originate-app-queue: Asterisk 13 and 22 then send no AgentComplete at all)."""
    if gone.local_base is None:
        return True
    return gone.peer is None or not gone.peer.alive


def _caller_hung_up(pbx: Pbx, e: Entry) -> None:
    if e.done:
        return
    for a in list(e.attempts):
        _drop(pbx, e, a, "CANCEL")
    e.attempts.clear()
    _leave(pbx, e, "", abandoned=True)


def _leave(pbx: Pbx, e: Entry, status: str, *, abandoned: bool) -> None:
    """leave_queue (after record_abandoned when the caller gave up or timed out); with a
    ``status`` the caller's dialplan goes on with QUEUESTATUS set."""
    if e.done:
        return
    e.done = True
    st = _state(pbx)
    waiting = st.callers.get(e.queue.name, [])
    pos = _position(e, st)
    if abandoned and not status:  # hung up: queue_exec's stop: first, then record_abandoned
        _stop_timing(pbx, e)
    if abandoned:
        e.queue.abandoned += 1
        pbx.set_var(e.chan, "ABANDONED", "TRUE")
        _caller_event(pbx, "QueueCallerAbandon", e, ("Position", str(pos)),
                      ("OriginalPosition", str(e.opos)), ("HoldTime", _secs(pbx, e.start)))
    if abandoned and status:  # timed out: record_abandoned in the loop, then stop:
        _stop_timing(pbx, e)
    if e in waiting:
        waiting.remove(e)
        if not waiting:
            devstate(pbx, f"Queue:{e.queue.name}", "NOT_INUSE")
    _caller_event(pbx, "QueueCallerLeave", e, ("Position", str(pos)),
                  ("Count", str(len(waiting))))
    pbx.set_var(e.chan, "QUEUEPOSITION", str(pos))
    if status and e.chan.alive:
        for a in list(e.attempts):
            _drop(pbx, e, a, "CANCEL")
        e.attempts.clear()
        pbx.set_var(e.chan, "QUEUESTATUS", status)
        e.resume()
    for w in list(waiting):  # the others move up: the new head may ring now
        if not w.attempts:
            _wake(pbx, w, 0.0)


def _stop_timing(pbx: Pbx, e: Entry) -> None:
    """22's queue_exec ``stop:`` for a caller never connected: the wait, the channel's age,
    and a zero answered time (13 sets none of them)."""
    if pbx.dialect == "13":
        return
    set_duration(pbx, e.chan, "QUEUEWAIT", int(pbx.now() - e.start))
    set_duration(pbx, e.chan, "DIALEDTIME", pbx.now() - e.chan.created)
    set_duration(pbx, e.chan, "ANSWEREDTIME", 0)


def _int(text: str) -> int:
    try:
        return int(text.strip() or 0)
    except ValueError:
        return 0


APPLICATIONS["queue"] = run
