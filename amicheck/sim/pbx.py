"""A small, deterministic PBX behind the simulated AMI: channels, dialplan, queue, AstDB.

Just enough telephony to make the documented AMI examples real (the UCM guide's Originate,
Hangup, Queues, ...) and to emit the event sequences that ../shared/conformance/ recorded
from Asterisk 13.38 (13-originate-events.txt). No I/O and no sleeping: every delay goes
through the ``call_later`` the session core hands in, every event through ``emit``. Given the
same seed, clock and call order, the same events come out (names, Uniqueids, order).

Model (a UCM6XXX as shipped, reduced):

- PJSIP endpoints 1000-1005 with hints ``ext-local,100X -> PJSIP/100X``. 1000-1003 answer
  after :data:`RING_SECONDS`; 1004 rings and never answers; 1005 is not registered.
- Contexts ``from-internal`` (includes ``ext-local``), ``from-trunk``, ``ext-local``. The
  extensions are those of the recording lab: ``100X``: NoOp(ref 100X), Answer, Wait(20);
  ``2000``: Answer, Wait(5), Hangup.
- Queue 6500, strategy ringall, static members Local/1001@from-internal and
  Local/1000@from-internal (in that order, as app_queue listed them).
- Channels named like Asterisk's: ``PJSIP/1000-0000000a``, ``Local/1000@from-internal-00000002;1``
  and ``;2``; Uniqueid/Linkedid ``<epoch>.<n>``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from amicheck.protocol.message import Message
from amicheck.sim import callflow, replies

__all__ = [
    "Pbx",
    "Channel",
    "Queue",
    "QueueMember",
    "Bridge",
    "OriginateSpec",
    "OriginatePlan",
    "STATE_DESC",
    "CAUSE_TEXT",
    "DEVICE_STATES",
    "EXTENSION_STATES",
    "ENDPOINTS",
    "RING_SECONDS",
]

CallLater = Callable[[float, Callable[[], None]], object]
Emit = Callable[[Message, frozenset[str]], None]

#: ast_state2str
STATE_DESC: dict[int, str] = {
    0: "Down",
    1: "Rsrvd",
    2: "OffHook",
    3: "Dialing",
    4: "Ring",
    5: "Ringing",
    6: "Up",
    7: "Busy",
    8: "Dialing Offhook",
    9: "Pre-ring",
}
#: ast_cause2str for the causes the model produces
CAUSE_TEXT: dict[int, str] = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    3: "No route to destination",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "No answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    34: "Circuit/channel congestion",
    127: "Interworking, unspecified",
}
#: ast_devstate_str (DeviceStateChange State:) by AST_DEVICE_* number
DEVICE_STATES: dict[int, str] = {
    0: "UNKNOWN",
    1: "NOT_INUSE",
    2: "INUSE",
    3: "BUSY",
    4: "INVALID",
    5: "UNAVAILABLE",
    6: "RINGING",
    7: "RINGINUSE",
    8: "ONHOLD",
}
#: ast_extension_state2str (ExtensionStatus StatusText:)
EXTENSION_STATES: dict[int, str] = {
    -2: "Removed",
    -1: "Unknown",
    0: "Idle",
    1: "InUse",
    2: "Busy",
    4: "Unavailable",
    8: "Ringing",
    9: "InUse&Ringing",
    16: "Hold",
    17: "InUse&Hold",
}
#: PJSIP endpoints and how the simulated phone behind each behaves.
ENDPOINTS: dict[str, str] = {
    "1000": "answer",
    "1001": "answer",
    "1002": "answer",
    "1003": "answer",
    "1004": "noanswer",
    "1005": "unregistered",
}
#: How long a simulated phone rings before it answers.
RING_SECONDS = 1.0
#: Answer() on a channel that was not up waits this long (the 0.5 s the recording shows).
ANSWER_SETTLE = 0.5
#: Applications run directly by Originate (Application:) and how long they keep the call.
_APP_SECONDS: dict[str, float] = {
    "echo": 20.0,
    "musiconhold": 20.0,
    "playback": 1.0,
    "milliwatt": 20.0,
    "confbridge": 20.0,
    "voicemailmain": 20.0,
    "queue": 20.0,
}

#: dialplan applications modelled in other modules (amicheck.sim.queue_app adds Queue):
#: lower-case name -> fn(pbx, channel, appdata, continue_dialplan)
APPLICATIONS: dict[str, Callable[[Pbx, Channel, str, Callable[[], None]], None]] = {}

_CALL = ("call",)
_AGENT = ("agent",)
_UNKNOWN = "<unknown>"


def _dialplan() -> dict[str, dict[str, list[tuple[str, str]]]]:
    plan: dict[str, dict[str, list[tuple[str, str]]]] = {
        "from-internal": {},
        "from-trunk": {},
        "ext-local": {},
        "default": {},
    }
    for ext in ENDPOINTS:
        plan["from-internal"][ext] = [("NoOp", f"ref {ext}"), ("Answer", ""), ("Wait", "20")]
        plan["ext-local"][ext] = [("Dial", f"PJSIP/{ext},30"), ("Hangup", "")]
    plan["from-internal"]["2000"] = [("Answer", ""), ("Wait", "5"), ("Hangup", "")]
    plan["from-internal"]["6500"] = [
        ("NoOp", "queue 6500"), ("Answer", ""), ("Queue", "6500,,,,30"), ("Hangup", "")]
    plan["from-trunk"]["s"] = [("Answer", ""), ("Wait", "5"), ("Hangup", "")]
    return plan


_INCLUDES: dict[str, tuple[str, ...]] = {"from-internal": ("ext-local",)}


@dataclass
class Channel:
    """One live channel (the parts of ast_channel that AMI shows)."""

    name: str
    uniqueid: str
    linkedid: str
    state: int
    context: str
    exten: str
    priority: int = 1
    cid_num: str | None = None
    cid_name: str | None = None
    conn_num: str | None = None
    conn_name: str | None = None
    accountcode: str = ""
    language: str = "en"
    application: str = ""
    appdata: str = ""
    created: float = 0.0
    peer: Channel | None = None  # the other half of a Local pair
    endpoint: str | None = None  # PJSIP endpoint id
    local_base: str | None = None  # "Local/1000@from-internal" for both halves
    bridge: str | None = None  # bridge uniqueid while bridged
    variables: dict[str, str] = field(default_factory=dict)
    alive: bool = True
    hangup_at: float | None = None  # AbsoluteTimeout deadline (clock time)
    on_answer: Callable[[], None] | None = None  # Local ;2 answered -> ;1 side continues
    on_hangup: Callable[[], None] | None = None  # after its Hangup event (amicheck.sim.queue_app)
    #: what the application it runs does on a hangup queued to it, before the channel
    #: ends (app_queue: a waiting caller is abandoned, then SoftHangupRequest and Hangup)
    on_hangup_request: Callable[[], None] | None = None
    #: what the application that bridged it does once it leaves the bridge (app_dial's and
    #: 22's app_queue's timing variables); called once, after its BridgeLeave
    after_bridge: Callable[[], None] | None = None
    pc: int = 0                          # bumped when the channel leaves its dialplan thread
    #: a connected-line update of the other Local half, read as caller id when this half
    #: next services its frames (Asterisk: at its hangup, while it sits in an application)
    pending_cid: tuple[str | None, str | None] | None = None

    @property
    def tech(self) -> str:
        return self.name.split("/", 1)[0]


@dataclass
class QueueMember:
    """One app_queue member."""

    interface: str
    name: str
    state_interface: str
    membership: str = "static"
    penalty: int = 0
    calls_taken: int = 0
    last_call: int = 0
    in_call: int = 0
    paused: bool = False
    paused_reason: str = ""
    ringinuse: bool = True
    reported: int | None = None  # the Status its last QueueMemberStatus carried


@dataclass
class Queue:
    """One app_queue queue (its callers and their calls: amicheck.sim.queue_app)."""

    name: str
    strategy: str = "ringall"
    max: int = 0
    holdtime: int = 0
    talktime: int = 0
    completed: int = 0
    abandoned: int = 0
    servicelevel: int = 0
    weight: int = 0
    members: list[QueueMember] = field(default_factory=list)


@dataclass
class Bridge:
    """A basic two-party bridge (created by the Bridge action or by Dial)."""

    uniqueid: str
    channels: list[str] = field(default_factory=list)
    bridge_type: str = "basic"
    technology: str = "simple_bridge"
    creator: str = "<unknown>"
    name: str = "<unknown>"
    #: a Dial's bridge: when a party hangs up the others are hung up (callflow.dissolve)
    dissolve_hangup: bool = False


@dataclass
class OriginateSpec:
    """What an Originate action asked for (already validated by the handler)."""

    tech: str
    data: str
    context: str = ""
    exten: str = ""
    priority: int = 0
    application: str = ""
    appdata: str = ""
    cid_num: str | None = None
    cid_name: str | None = None
    timeout_ms: int = 30000
    account: str = ""
    variables: tuple[tuple[str, str], ...] = ()
    action_id: str | None = None
    async_: bool = False
    #: ChannelId / OtherChannelId: the Uniqueids to give (Local ;2 defaults to ChannelId;2)
    channel_id: str = ""
    other_id: str = ""

    @property
    def dialstring(self) -> str:
        return f"{self.tech}/{self.data}"


@dataclass(frozen=True)
class OriginatePlan:
    """The outcome of an Originate, known up front (the model is deterministic).

    ``ok``: the call will be answered; ``delay``: seconds until answer or failure.
    """

    ok: bool
    delay: float


class Pbx:
    """The PBX state and its event engine.

    Args:
        seed: makes the initial channel-name and Uniqueid counters and the mailbox
            contents reproducible.
        call_later: ``call_later(delay_s, fn)`` of the session core (asyncio's, or a test's).
        emit: ``emit(event, classes)`` broadcasts an event to the permitted sessions.
        clock: wall clock (seconds since the epoch) for Uniqueids, Ping and durations.
    """

    def __init__(
        self,
        seed: int,
        call_later: CallLater,
        emit: Emit,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.seed = seed
        self._call_later = call_later
        self._emit = emit
        self.clock = clock
        self._gen = 0
        self.reset()

    # -- state ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the boot state; callbacks scheduled before are ignored when they fire."""
        self._gen += 1
        rng = random.Random(self.seed)
        self.rng = rng
        self.started = self.clock()
        self.reloaded = self.started
        self._uniqueint = rng.randrange(0, 8)
        self._local_seq = rng.randrange(0, 8)
        self._pjsip_seq = rng.randrange(0, 16)
        self._bridge_seq = 0
        #: ast_processed_calls ("N calls processed" of core show channels)
        self.calls_processed = 0
        #: the Asterisk the model speaks ("13" or "22", set from the profile by the handlers)
        self.dialect = getattr(self, "dialect", "13")
        self.channels: dict[str, Channel] = {}
        self.dialplan = _dialplan()
        self.includes = dict(_INCLUDES)
        self.hints: dict[tuple[str, str], str] = {
            ("ext-local", ext): f"PJSIP/{ext}" for ext in ENDPOINTS
        }
        self.queues: dict[str, Queue] = {
            "6500": Queue(
                "6500",
                members=[
                    QueueMember(
                        "Local/1001@from-internal", "Agent 1001", "Local/1001@from-internal"
                    ),
                    QueueMember(
                        "Local/1000@from-internal", "Agent 1000", "Local/1000@from-internal"
                    ),
                ],
            ),
        }
        self.db: dict[tuple[str, str], str] = {
            ("AMPUSER", f"{ext}/cidname"): f"Extension {ext}" for ext in ENDPOINTS
        }
        self.globals: dict[str, str] = {"UCM_MODEL": "UCM6304", "TRUNK_OPTIONS": "T"}
        self.mailboxes: dict[str, tuple[int, int, int]] = {
            f"{ext}@default": (0, rng.randrange(0, 4), rng.randrange(0, 3)) for ext in ENDPOINTS
        }
        self.bridges: dict[str, Bridge] = {}
        self.parked: dict[str, str] = {}  # parking space -> channel name
        self.files: dict[str, str] = _fake_files()
        self.user_events = 0

    def now(self) -> float:
        return self.clock()

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        """``call_later`` that is ignored after a :meth:`reset` (stale calls never fire)."""
        self._later(delay, fn)

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        gen = self._gen

        def run() -> None:
            if gen == self._gen:
                fn()

        self._call_later(max(0.0, delay), run)

    def emit(
        self, name: str, classes: tuple[str, ...], extra: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Build one broadcast event (Event, Privilege, headers) and hand it to the core."""
        self._emit(replies.event(name, classes, extra), frozenset(classes))

    # -- ids --------------------------------------------------------------------------------
    def _new_uniqueid(self) -> str:
        uid = f"{int(self.clock())}.{self._uniqueint}"
        self._uniqueint += 1
        return uid

    def _new_channel(
        self,
        name: str,
        state: int,
        context: str,
        exten: str,
        linkedid: str | None = None,
        uniqueid: str = "",
    ) -> Channel:
        uid = uniqueid or self._new_uniqueid()
        self.calls_processed += 1
        ch = Channel(
            name=name,
            uniqueid=uid,
            linkedid=linkedid or uid,
            state=state,
            context=context,
            exten=exten,
            created=self.clock(),
        )
        self.channels[name] = ch
        return ch

    def find_channel(self, name: str) -> Channel | None:
        """ast_channel_get_by_name: exact name (case-insensitive) or Uniqueid."""
        ch = self.channels.get(name)
        if ch is not None:
            return ch
        low = name.lower()
        for c in self.channels.values():
            if c.name.lower() == low or c.uniqueid == name:
                return c
        return None

    # -- snapshots --------------------------------------------------------------------------
    @staticmethod
    def snapshot(ch: Channel, prefix: str = "") -> list[tuple[str, str]]:
        """ast_manager_build_channel_state_string_prefix (13.x field order)."""
        return [
            (f"{prefix}Channel", ch.name),
            (f"{prefix}ChannelState", str(ch.state)),
            (f"{prefix}ChannelStateDesc", STATE_DESC.get(ch.state, "Unknown")),
            (f"{prefix}CallerIDNum", ch.cid_num or _UNKNOWN),
            (f"{prefix}CallerIDName", ch.cid_name or _UNKNOWN),
            (f"{prefix}ConnectedLineNum", ch.conn_num or _UNKNOWN),
            (f"{prefix}ConnectedLineName", ch.conn_name or _UNKNOWN),
            (f"{prefix}Language", ch.language),
            (f"{prefix}AccountCode", ch.accountcode),
            (f"{prefix}Context", ch.context),
            (f"{prefix}Exten", ch.exten),
            (f"{prefix}Priority", str(ch.priority)),
            (f"{prefix}Uniqueid", ch.uniqueid),
            (f"{prefix}Linkedid", ch.linkedid),
        ]

    def _chan_event(self, name: str, ch: Channel, *extra: tuple[str, str]) -> None:
        self.emit(name, _CALL, [*self.snapshot(ch), *extra])

    def _newexten(self, ch: Channel, exten: str, app: str, data: str) -> None:
        """Newexten: class call in 13, dialplan in 22 (manager_channels.c)."""
        classes = _CALL if self.dialect == "13" else ("dialplan",)
        self.emit("Newexten", classes, [*self.snapshot(ch), ("Extension", exten),
                                        ("Application", app), ("AppData", data)])

    def _newstate(self, ch: Channel) -> None:
        """Newstate, and what ast_setstate publishes besides (22: a Local device's state)."""
        self._chan_event("Newstate", ch)
        callflow.local_devstate(self, ch)

    # -- device and extension state ---------------------------------------------------------
    def device_state(self, device: str) -> int:
        """AST_DEVICE_* of ``PJSIP/100X`` or ``Local/EXT@CTX``."""
        tech, _, rest = device.partition("/")
        if tech.upper() == "PJSIP":
            if ENDPOINTS.get(rest) is None:
                return 4
            live = [c for c in self.channels.values() if c.endpoint == rest and c.alive]
            if any(c.state == 6 for c in live):
                return 2
            if live:
                return 6
            return 5 if ENDPOINTS[rest] == "unregistered" else 1
        if tech.lower() == "local":
            live = [c for c in self.channels.values() if c.local_base == device and c.alive]
            return 2 if any(c.state == 6 for c in live) else 1
        return 4

    def extension_state(self, context: str, exten: str) -> tuple[int, str]:
        """(ast_extension_state, hint) following includes; -1 and "" without a hint."""
        hint = self.find_hint(context, exten)
        if not hint:
            return -1, ""
        dev = self.device_state(hint)
        return {1: 0, 2: 1, 3: 2, 5: 4, 4: 4, 6: 8, 7: 9, 8: 16}.get(dev, -1), hint

    def find_hint(self, context: str, exten: str) -> str:
        seen: set[str] = set()
        todo = [context]
        while todo:
            ctx = todo.pop(0)
            if ctx in seen:
                continue
            seen.add(ctx)
            hint = self.hints.get((ctx, exten))
            if hint:
                return hint
            todo.extend(self.includes.get(ctx, ()))
        return ""

    def find_exten(self, context: str, exten: str) -> tuple[str, list[tuple[str, str]]] | None:
        """(context that has it, priorities) following includes, or None."""
        seen: set[str] = set()
        todo = [context]
        while todo:
            ctx = todo.pop(0)
            if ctx in seen or ctx not in self.dialplan:
                continue
            seen.add(ctx)
            prios = self.dialplan[ctx].get(exten)
            if prios:
                return ctx, prios
            todo.extend(self.includes.get(ctx, ()))
        return None

    def _endpoint_changed(self, endpoint: str) -> None:
        dev = self.device_state(f"PJSIP/{endpoint}")
        state, hint = self.extension_state("ext-local", endpoint)
        self.emit(
            "ExtensionStatus",
            _CALL,
            [
                ("Exten", endpoint),
                ("Context", "ext-local"),
                ("Hint", hint),
                ("Status", str(state)),
                ("StatusText", EXTENSION_STATES.get(state, "Unknown")),
            ],
        )
        self.emit(
            "DeviceStateChange",
            _CALL,
            [
                ("Device", f"PJSIP/{endpoint}"),
                ("State", DEVICE_STATES[dev]),
            ],
        )
        self._queue_members_changed(f"PJSIP/{endpoint}")

    def _queue_members_changed(self, device: str) -> None:
        for q in self.queues.values():
            for m in q.members:
                if m.state_interface == device:
                    status, m.reported = m.reported, self.member_status(m)
                    if self.dialect == "22" and status == m.reported:
                        continue  # 22 publishes a member's device state on a change only
                    self.emit("QueueMemberStatus", _AGENT, self.member_fields(q, m))

    def member_status(self, m: QueueMember) -> int:
        return self.device_state(m.state_interface)

    def member_fields(self, q: Queue, m: QueueMember) -> list[tuple[str, str]]:
        """QueueMemberStatus / QueueMemberAdded field list (app_queue 13.x)."""
        return [
            ("Queue", q.name),
            ("MemberName", m.name),
            ("Interface", m.interface),
            ("StateInterface", m.state_interface),
            ("Membership", m.membership),
            ("Penalty", str(m.penalty)),
            ("CallsTaken", str(m.calls_taken)),
            ("LastCall", str(m.last_call)),
            ("InCall", str(m.in_call)),
            ("Status", str(self.member_status(m))),
            ("Paused", "1" if m.paused else "0"),
            ("PausedReason", m.paused_reason),
            ("Ringinuse", "1" if m.ringinuse else "0"),
        ] if self.dialect == "13" else [
            ("Queue", q.name),
            ("MemberName", m.name),
            ("Interface", m.interface),
            ("StateInterface", m.state_interface),
            ("Membership", m.membership),
            ("Penalty", str(m.penalty)),
            ("CallsTaken", str(m.calls_taken)),
            ("LastCall", str(m.last_call)),
            ("LastPause", "0"),
            ("LoginTime", str(int(self.started))),
            ("InCall", str(m.in_call)),
            ("Status", str(self.member_status(m))),
            ("Paused", "1" if m.paused else "0"),
            ("PausedReason", m.paused_reason),
            ("Ringinuse", "1" if m.ringinuse else "0"),
            ("Wrapuptime", "0"),
        ]

    # -- originate --------------------------------------------------------------------------
    def plan_originate(self, spec: OriginateSpec) -> OriginatePlan:
        """Whether and when the call will be answered (no side effects)."""
        tech = spec.tech.lower()
        if tech == "local":
            exten, _, ctx = spec.data.partition("@")
            ctx = (ctx.split("/", 1)[0]) or "default"
            return OriginatePlan(self.find_exten(ctx, exten) is not None, 0.0)
        if tech == "pjsip":
            behaviour = ENDPOINTS.get(spec.data.split("/", 1)[0])
            if behaviour == "answer":
                ok = RING_SECONDS * 1000 < spec.timeout_ms
                return OriginatePlan(ok, RING_SECONDS if ok else spec.timeout_ms / 1000)
            if behaviour == "noanswer":
                return OriginatePlan(False, max(spec.timeout_ms, 0) / 1000)
        return OriginatePlan(False, 0.0)

    def originate(self, spec: OriginateSpec) -> OriginatePlan:
        """Start the call in the background (events via ``call_later``); returns the plan."""
        plan = self.plan_originate(spec)
        tech = spec.tech.lower()
        if tech == "local":
            self._later(0.0, lambda: self._local_start(spec, plan))
        elif tech == "pjsip" and ENDPOINTS.get(spec.data.split("/", 1)[0]) in (
            "answer",
            "noanswer",
        ):
            self._later(0.0, lambda: self._pjsip_start(spec, plan))
        else:
            self._later(plan.delay, lambda: self._originate_failed(spec, 0))
        return plan

    def _originate_response(
        self, spec: OriginateSpec, ok: bool, ch: Channel | None, reason: int
    ) -> None:
        if not spec.async_:
            return
        items: list[tuple[str, str]] = []
        if spec.action_id:
            items.append(("ActionID", spec.action_id))
        items += [
            ("Response", "Success" if ok else "Failure"),
            ("Channel", ch.name if ch is not None else spec.dialstring),
            *(
                [("Application", spec.application), ("Data", spec.appdata)]
                if spec.application
                else [("Context", spec.context), ("Exten", spec.exten)]
            ),
            ("Reason", str(reason)),
            ("Uniqueid", ch.uniqueid if ch is not None else _UNKNOWN),
            ("CallerIDNum", spec.cid_num or _UNKNOWN),
            ("CallerIDName", spec.cid_name or _UNKNOWN),
        ]
        self.emit("OriginateResponse", _CALL, items)

    def _originate_failed(self, spec: OriginateSpec, reason: int) -> None:
        self._originate_response(spec, False, None, reason)

    def _local_start(self, spec: OriginateSpec, plan: OriginatePlan) -> None:
        exten, _, ctx = spec.data.partition("@")
        ctx = (ctx.split("/", 1)[0]) or "default"
        base = f"Local/{exten}@{ctx}"
        seq = f"{self._local_seq:08x}"
        self._local_seq += 1
        other = spec.other_id or (f"{spec.channel_id};2" if spec.channel_id else "")
        one = self._new_channel(f"{base}-{seq};1", 0, ctx, exten, uniqueid=spec.channel_id)
        two = self._new_channel(
            f"{base}-{seq};2", 4, ctx, exten, linkedid=one.linkedid, uniqueid=other
        )
        one.peer, two.peer = two, one
        one.local_base = two.local_base = base
        one.accountcode = two.accountcode = spec.account
        for k, v in spec.variables:
            one.variables[k] = v
        self._chan_event("Newchannel", one)
        self._chan_event("Newchannel", two)
        one.application, one.appdata = "AppDial2", "(Outgoing Line)"
        self._newexten(one, exten, "AppDial2", "(Outgoing Line)")
        if not plan.ok:
            self._hangup_event(two, 0)
            self._hangup_event(one, 0)
            self._originate_failed(spec, 0)
            return
        if spec.cid_num or spec.cid_name:
            one.cid_num, one.cid_name = spec.cid_num, spec.cid_name
            self._chan_event(
                "NewCallerid", one, ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")
            )
            one.conn_num, one.conn_name = spec.cid_num, spec.cid_name
            self._chan_event("NewConnectedLine", one)
            two.cid_num, two.cid_name = spec.cid_num, spec.cid_name
            two.conn_num, two.conn_name = spec.cid_num, spec.cid_name
            self._chan_event(
                "NewCallerid", two, ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")
            )
            self._chan_event("NewConnectedLine", two)
        self.emit(
            "LocalBridge",
            _CALL,
            [
                *self.snapshot(one, "LocalOne"),
                *self.snapshot(two, "LocalTwo"),
                ("Context", ctx),
                ("Exten", exten),
                ("LocalOptimization", "Yes"),
            ],
        )
        self.emit(
            "DialBegin", _CALL, [*self.snapshot(one, "Dest"), ("DialString", f"{exten}@{ctx}")]
        )

        def answered() -> None:
            if not one.alive:
                return
            one.state = 6
            self._newstate(one)
            self._queue_members_changed(base)
            self.emit("DialEnd", _CALL, [*self.snapshot(one, "Dest"), ("DialStatus", "ANSWER")])
            self._originate_response(spec, True, one, 4)
            self._after_answer(one, spec)

        two.on_answer = answered
        self._run(two, ctx, exten, 1)

    def _pjsip_start(self, spec: OriginateSpec, plan: OriginatePlan) -> None:
        endpoint = spec.data.split("/", 1)[0]
        seq = f"{self._pjsip_seq:08x}"
        self._pjsip_seq += 1
        ch = self._new_channel(
            f"PJSIP/{endpoint}-{seq}", 0, "from-internal", "s", uniqueid=spec.channel_id
        )
        ch.endpoint = endpoint
        ch.accountcode = spec.account
        for k, v in spec.variables:
            ch.variables[k] = v
        if spec.cid_num or spec.cid_name:
            ch.conn_num, ch.conn_name = spec.cid_num, spec.cid_name
        self._chan_event("Newchannel", ch)
        ch.state = 5
        self._endpoint_changed(endpoint)
        self._chan_event("Newstate", ch)

        def outcome() -> None:
            if not ch.alive:
                return
            if plan.ok:
                ch.state = 6
                ch.cid_num, ch.cid_name = spec.cid_num, spec.cid_name
                self._chan_event("Newstate", ch)
                self._endpoint_changed(endpoint)
                self._originate_response(spec, True, ch, 4)
                self._after_answer(ch, spec)
            else:
                self._hangup(ch, 19, request=False)
                self._originate_failed(spec, 3)

        self._later(plan.delay, outcome)

    def _after_answer(self, ch: Channel, spec: OriginateSpec) -> None:
        if spec.application:
            ch.application, ch.appdata = spec.application, spec.appdata
            app = spec.application.lower()
            if app == "dial" and callflow.dial(self, ch, spec.appdata):
                return  # the call ends with its bridge (callflow.dissolve)
            if app in APPLICATIONS:  # as _run runs it; its return ends the call
                APPLICATIONS[app](self, ch, spec.appdata, lambda: self._app_done(ch))
                return
            secs = _APP_SECONDS.get(app, 0.0)
            if app == "wait":
                secs = _float(spec.appdata)
            token = ch.pc
            self._later(secs, lambda: self._app_done(ch) if ch.pc == token else None)
        else:
            self._run(ch, spec.context, spec.exten, spec.priority or 1)

    def _app_done(self, ch: Channel) -> None:
        """The originated application returned: the channel hangs up (cause 0, as recorded)."""
        if not ch.alive:
            return
        peer = ch.peer
        if peer is not None and peer.alive:
            self.queued_hangup(peer, 0)
        self._hangup_event(ch, 0)
        if peer is not None and peer.alive:
            self._chan_event("SoftHangupRequest", peer, ("Cause", "16"))
            self._hangup_event(peer, 0)
        self._after_hangup(ch, peer)

    # -- dialplan engine --------------------------------------------------------------------
    def _run(self, ch: Channel, context: str, exten: str, priority: int) -> None:
        """Execute ``context,exten,priority`` on ``ch`` (Newexten, then the application)."""
        if not ch.alive:
            return
        found = self.find_exten(context, exten)
        if found is None or priority < 1 or priority > len(found[1]):
            callflow.pbx_ended(self, ch, context, exten, priority)
            return
        app, data = found[1][priority - 1]
        ch.context, ch.exten, ch.priority = context, exten, priority
        ch.application, ch.appdata = app, data
        self._newexten(ch, exten, app, data)

        token = ch.pc

        def nxt() -> None:
            if ch.pc == token:  # not redirected, parked or bridged meanwhile
                self._run(ch, context, exten, priority + 1)

        low = app.lower()
        if low == "answer":
            if ch.state != 6:
                ch.state = 6
                self._newstate(ch)
                if ch.local_base is not None:
                    self._queue_members_changed(ch.local_base)
                cb, ch.on_answer = ch.on_answer, None
                if cb is not None:
                    cb()
                self._later(ANSWER_SETTLE, nxt)
            else:
                nxt()
        elif low == "wait":
            self._later(_float(data), nxt)
        elif low == "hangup":
            self._hangup(ch, 16, request=False, soft=True)
        elif low in APPLICATIONS:
            APPLICATIONS[low](self, ch, data, nxt)
        elif low in _APP_SECONDS:
            self._later(_APP_SECONDS[low], nxt)
        else:
            nxt()

    # -- hangup -----------------------------------------------------------------------------
    def set_connected_line(self, ch: Channel, num: str | None, name: str | None) -> None:
        """Setvar CONNECTEDLINE(...): NewConnectedLine now; a Local half passes it to its
        other half as caller id (NewCallerid when that half reads the frame)."""
        ch.conn_num, ch.conn_name = num, name
        self._chan_event("NewConnectedLine", ch)
        peer = ch.peer
        if ch.local_base is not None and peer is not None and peer.alive:
            peer.pending_cid = (num, name)

    def queued_hangup(self, ch: Channel, cause: int) -> None:
        """HangupRequest of a Local half whose other half ended (the Local core queues the
        hangup). A connected-line update it read meanwhile is its caller id already: 13's
        blob events snapshot the channel afresh and show it, 22's show the cached snapshot
        (setvar-connectedline); the NewCallerid comes with its Hangup in both."""
        if self.dialect == "13" and ch.pending_cid is not None:
            ch.cid_num, ch.cid_name = ch.pending_cid
        self._chan_event("HangupRequest", ch, ("Cause", str(cause)))

    def _hangup_event(self, ch: Channel, cause: int, *, left: str | None = None) -> None:
        """The Hangup of ``ch`` (leaving its bridge first; ``left``: the bridge it already
        left, which still dissolves with it)."""
        if not ch.alive:
            return
        newcid = ch.pending_cid is not None
        if ch.pending_cid is not None:
            ch.cid_num, ch.cid_name = ch.pending_cid
            ch.pending_cid = None
        ch.alive = False
        self.channels.pop(ch.name, None)
        br = self.bridges.get(ch.bridge or left or "")
        if br is not None and br.dissolve_hangup:  # every party is told to leave at once
            self.set_var(ch, "BRIDGEPEER", None)
            for party in map(self.channels.get, br.channels):
                if party is not None and party is not ch:
                    self.set_var(party, "BRIDGEPEER", None)
        if ch.bridge is not None:
            self._leave_bridge(ch)
        for space, name in list(self.parked.items()):
            if name == ch.name:
                del self.parked[space]
        self._chan_event(
            "Hangup", ch, ("Cause", str(cause)), ("Cause-txt", CAUSE_TEXT.get(cause, "Unknown"))
        )
        if newcid:  # one snapshot update: manager_channels' monitors report the Hangup first
            self._chan_event(
                "NewCallerid", ch, ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")
            )
        if br is not None and br.dissolve_hangup:
            callflow.dissolve(self, br, cause)
        if ch.on_hangup is not None:
            ch.on_hangup()

    def _after_hangup(self, *chans: Channel | None) -> None:
        bases: list[str] = []
        endpoints: list[str] = []
        for ch in chans:
            if ch is None:
                continue
            if ch.local_base is not None:
                bases.append(ch.local_base)
                callflow.local_devstate(self, ch)
            if ch.endpoint is not None and ch.endpoint not in endpoints:
                endpoints.append(ch.endpoint)
        for base in bases:
            self._queue_members_changed(base)
        for ep in endpoints:
            self._endpoint_changed(ep)

    def _hangup(
        self,
        ch: Channel,
        cause: int,
        *,
        request: bool,
        soft: bool = False,
        request_cause: int | None = None,
    ) -> None:
        """Hang ``ch`` up (and the other half of a Local pair), with Asterisk's events.

        ``soft``: the channel ran Hangup() itself (SoftHangupRequest first); ``request``: an
        AMI Hangup asked for it (HangupRequest on the channel).
        """
        if not ch.alive:
            return
        peer = ch.peer if ch.peer is not None and ch.peer.alive else None
        if soft:
            self._chan_event("SoftHangupRequest", ch, ("Cause", str(cause)))
        if request:
            rc = cause if request_cause is None else request_cause
            self._chan_event("HangupRequest", ch, ("Cause", str(rc)))
        if peer is not None:
            self.queued_hangup(peer, cause)
        self._hangup_event(ch, cause)
        if peer is not None:
            self._other_half_ends(peer, cause, cause)
        self._after_hangup(ch, peer)

    def _other_half_ends(self, ch: Channel, cause: int, soft_cause: int) -> None:
        """A Local half ends on the hangup its other half queued to it. A bridged one reads
        it in its bridge and leaves first, and leaving sets a missing cause
        (channel_set_cause: Normal Clearing); the application it runs sees the hangup
        (queue-call, queue-abandon); then its SoftHangupRequest and Hangup."""
        left = ch.bridge
        if left is not None:
            self._leave_bridge(ch)
            cause = cause if cause > 0 else 16
        then, ch.on_hangup_request = ch.on_hangup_request, None
        if then is not None:
            then()
        self._chan_event("SoftHangupRequest", ch, ("Cause", str(soft_cause)))
        self._hangup_event(ch, cause, left=left)

    def hangup(self, ch: Channel, cause: int | None = None) -> None:
        """The AMI Hangup action (Cause: default 16 Normal Clearing; a Local half: 0)."""
        peer = ch.peer if ch.peer is not None and ch.peer.alive else None
        if peer is not None and ch.local_base is not None and ch.bridge is None:
            self._hangup_local(ch, peer, cause or 0)
            return
        c = 16 if not cause else cause
        if ch.local_base is not None:  # a bridged Local half: no HangupRequest on it
            self._hangup(ch, c, request=False)
            return
        self._hangup(ch, c, request=True, request_cause=cause or 0)

    def _hangup_local(self, ch: Channel, peer: Channel, cause: int) -> None:
        """AMI Hangup of one half of a Local pair, as Asterisk 13.38 and 22 emit it (the
        fidelity harness): the other half gets HangupRequest, the ;2 half (dialplan side)
        SoftHangupRequest 16, both hang up with the given cause; no HangupRequest on ;1."""
        one, two = (ch, peer) if ch.name.endswith(";1") else (peer, ch)
        self.queued_hangup(peer, cause)
        self._hangup_event(one, cause)
        if two is peer:
            self._other_half_ends(two, cause, 16)
        else:
            self._chan_event("SoftHangupRequest", two, ("Cause", "16"))
            self._hangup_event(two, cause)
        self._after_hangup(ch, peer)

    def set_absolute_timeout(self, ch: Channel, seconds: float) -> None:
        """AbsoluteTimeout: hang the channel up ``seconds`` from now (0 cancels)."""
        if seconds <= 0:
            ch.hangup_at = None
            return
        deadline = self.clock() + seconds
        ch.hangup_at = deadline

        def fire() -> None:
            if ch.alive and ch.hangup_at == deadline:
                self._hangup(ch, 16, request=False, soft=True)

        self._later(seconds, fire)

    def redirect(self, ch: Channel, context: str, exten: str, priority: int) -> None:
        """Redirect: leave any bridge, continue at the new dialplan location."""
        if ch.bridge is not None:
            self._leave_bridge(ch)
        ch.pc += 1
        self._later(0.0, lambda: self._run(ch, context, exten, priority))

    # -- variables --------------------------------------------------------------------------
    def set_var(self, ch: Channel | None, name: str, value: str | None) -> None:
        """pbx_builtin_setvar_helper: every value set is a VarSet, even ""; ``None``
        deletes the variable, a VarSet with an empty value only if it had a non-empty one."""
        if ch is None:
            if value is None:
                self.globals.pop(name, None)
            else:
                self.globals[name] = value
            return
        old = ch.variables.pop(name, None)
        if value is not None:
            ch.variables[name] = value
        elif not old:
            return
        self.emit(
            "VarSet",
            ("dialplan",),
            [*self.snapshot(ch), ("Variable", name), ("Value", value or "")],
        )

    def get_var(self, ch: Channel | None, name: str) -> str:
        """A variable or one of the few dialplan functions the model knows ("" if unknown)."""
        if name.endswith(")") and "(" in name:
            return self._function(ch, name)
        if ch is not None:
            builtin = {
                "CHANNEL": ch.name,
                "UNIQUEID": ch.uniqueid,
                "CONTEXT": ch.context,
                "EXTEN": ch.exten,
                "PRIORITY": str(ch.priority),
                "CALLERID(num)": ch.cid_num or "",
                "LINKEDID": ch.linkedid,
            }
            if name in ch.variables:
                return ch.variables[name]
            if name in builtin:
                return builtin[name]
        return self.globals.get(name, "")

    def _function(self, ch: Channel | None, expr: str) -> str:
        fname, _, arg = expr[:-1].partition("(")
        up = fname.upper()
        if up == "SHELL":
            return _fake_shell(arg)
        if up == "EVAL":
            return arg
        if up == "DB":
            fam, _, key = arg.partition("/")
            return self.db.get((fam, key), "")
        if up == "GLOBAL":
            return self.globals.get(arg, "")
        if up == "LEN":
            return str(len(arg))
        if ch is None:
            return ""
        if up == "CALLERID":
            return {
                "num": ch.cid_num or "",
                "name": ch.cid_name or "",
                "all": f'"{ch.cid_name or ""}" <{ch.cid_num or ""}>',
            }.get(arg.lower(), "")
        if up == "CONNECTEDLINE":
            return {
                "num": ch.conn_num or "",
                "name": ch.conn_name or "",
                "all": f'"{ch.conn_name or ""}" <{ch.conn_num or ""}>',
            }.get(arg.lower(), "")
        if up == "CHANNEL":
            return {
                "name": ch.name,
                "state": STATE_DESC.get(ch.state, ""),
                "language": ch.language,
                "uniqueid": ch.uniqueid,
                "linkedid": ch.linkedid,
                "channeltype": ch.tech,
            }.get(arg.lower(), "")
        return ""

    # -- bridges ----------------------------------------------------------------------------
    def _bridge_id(self) -> str:
        n = self._bridge_seq
        self._bridge_seq += 1
        r = random.Random(self.seed * 1000003 + n)
        h = f"{r.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

    def bridge_snapshot(self, b: Bridge) -> list[tuple[str, str]]:
        return [
            ("BridgeUniqueid", b.uniqueid),
            ("BridgeType", b.bridge_type),
            ("BridgeTechnology", b.technology),
            ("BridgeCreator", b.creator),
            ("BridgeName", b.name),
            ("BridgeNumChannels", str(len(b.channels))),
            ("BridgeVideoSourceMode", "none"),
        ]

    def bridge(self, a: Channel, b: Channel) -> Bridge:
        """Put two channels in a new basic bridge (BridgeCreate, BridgeEnter x2)."""
        for ch in (a, b):
            if ch.bridge is not None:
                self._leave_bridge(ch)
        br = Bridge(self._bridge_id())
        self.bridges[br.uniqueid] = br
        self.emit("BridgeCreate", _CALL, self.bridge_snapshot(br))
        for ch in (a, b):
            if ch.state != 6:
                ch.state = 6
                self._newstate(ch)
            br.channels.append(ch.name)
            ch.bridge = br.uniqueid
            ch.pc += 1
            self.emit("BridgeEnter", _CALL, [*self.bridge_snapshot(br), *self.snapshot(ch)])
        # set_bridge_peer_vars_2party: each party's BRIDGEPEER, the first to enter first
        self.set_var(a, "BRIDGEPEER", b.name)
        self.set_var(b, "BRIDGEPEER", a.name)
        return br

    def _leave_bridge(self, ch: Channel) -> None:
        br = self.bridges.get(ch.bridge or "")
        ch.bridge = None
        if br is None or ch.name not in br.channels:
            return
        br.channels.remove(ch.name)
        self.set_var(ch, "BRIDGEPEER", None)  # ast_bridge_channel_leave_bridge_nolock
        self.emit("BridgeLeave", _CALL, [*self.bridge_snapshot(br), *self.snapshot(ch)])
        then, ch.after_bridge = ch.after_bridge, None
        if then is not None:
            then()
        if not br.channels:
            self.bridges.pop(br.uniqueid, None)
            self.emit("BridgeDestroy", _CALL, self.bridge_snapshot(br))

    def kick(self, ch: Channel) -> None:
        """BridgeKick: the channel leaves its bridge and is hung up (no after-bridge target)."""
        self._leave_bridge(ch)
        self._later(0.0, lambda: self._hangup(ch, 16, request=False, soft=True))

    def destroy_bridge(self, br: Bridge) -> None:
        """BridgeDestroy: every channel leaves and is hung up."""
        for name in list(br.channels):
            ch = self.channels.get(name)
            if ch is not None:
                self.kick(ch)
        self.bridges.pop(br.uniqueid, None)

    # -- parking ----------------------------------------------------------------------------
    def park(self, ch: Channel, timeout_s: float = 45.0) -> str:
        """Park ``ch`` in the first free space of the default lot (701-720)."""
        if ch.bridge is not None:
            self._leave_bridge(ch)
        ch.pc += 1
        space = next((str(s) for s in range(701, 721) if str(s) not in self.parked), "")
        if not space:
            return ""
        self.parked[space] = ch.name
        ch.context, ch.exten, ch.priority = "parkedcalls", space, 1
        ch.application, ch.appdata = "Park", ""
        self.emit("ParkedCall", _CALL, self.parked_fields(space, ch, timeout_s))
        return space

    def parked_fields(
        self, space: str, ch: Channel, timeout_s: float = 45.0
    ) -> list[tuple[str, str]]:
        dur = int(self.clock() - ch.created)
        return [
            *self.snapshot(ch, "Parkee"),
            ("ParkerDialString", ""),
            ("Parkinglot", "default"),
            ("ParkingSpace", space),
            ("ParkingTimeout", str(int(timeout_s))),
            ("ParkingDuration", str(dur)),
        ]


def _float(text: str) -> float:
    try:
        v = float(text.split(",", 1)[0] or 0)
    except ValueError:
        return 0.0
    return v if v > 0 else 0.0


def _fake_shell(cmd: str) -> str:
    """What SHELL() would return on a UCM: canned, single-line, nothing runs."""
    c = cmd.strip()
    if c in ("id", "id -a"):
        return "uid=0(root) gid=0(root) groups=0(root)"
    if c == "whoami":
        return "root"
    if c.startswith("uname"):
        return "Linux UCM6304 4.9.0 #1 SMP armv7l GNU/Linux"
    if c.startswith("cat /etc/passwd"):
        return "root:x:0:0:root:/root:/bin/sh"
    return ""


def _fake_files() -> dict[str, str]:
    """The fake filesystem GetConfig reads: config files, and what ``../`` reaches."""
    return {
        "manager.conf": "[general]\nenabled = yes\nport = 7777\nbindaddr = 0.0.0.0\n"
        "webenabled = no\ntimestampevents = no\n",
        "extensions.conf": "[from-internal]\ninclude => ext-local\n"
        "exten => 2000,1,Answer()\nexten => 2000,n,Wait(5)\n"
        "exten => 2000,n,Hangup()\n",
        "queues.conf": "[general]\npersistentmembers = yes\n\n[6500]\nstrategy = ringall\n"
        "member => Local/1000@from-internal\nmember => Local/1001@from-internal\n",
        "pjsip.conf": "[1000]\ntype = endpoint\ncontext = from-internal\n",
        "/etc/passwd": "[root]\nroot = x:0:0:root:/root:/bin/sh\n[daemon]\n"
        "daemon = x:1:1:daemon:/usr/sbin:/bin/false\n",
        "/etc/shadow": "[root]\nroot = $1$fake$0123456789abcdef:19000:0:99999:7:::\n",
    }
