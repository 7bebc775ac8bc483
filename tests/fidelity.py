"""Fidelity harness: the same scripted AMI exchanges against the simulator and real Asterisk.

A :class:`Script` is a list of raw client writes on one fresh connection (optionally logged
in first). :func:`run` sends each step and collects what the server answers: until every
ActionID of the step has its final message (its response, and the ``*Complete`` event of an
event list), then a short settle time for trailing events. :func:`normalise` masks what
differs by nature (dates, ids, ports, challenges, uptimes); :func:`diff` compares two runs
message by message and names the first differing header of each message.

Run it by hand to see every difference (``python tests/fidelity.py 13``); the tests in
``test_fidelity_asterisk.py`` hold the simulator to it, with the deliberate UCM differences
listed (and explained) there.
"""

from __future__ import annotations

import hashlib
import re
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from amicheck.protocol import Message, MessageKind, Parser

#: Secrets of the reference kit's users (test values, see refasterisk users).
KIT_SECRETS = {"ucmamiuser1": "test123"}
DEFAULT_SECRET = "Passw0rd!"


def action(name: str, /, **headers: str) -> bytes:
    """One action's wire bytes; ``ActionID`` is added by the harness when absent."""
    lines = [f"Action: {name}"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass(frozen=True)
class Step:
    """Bytes to send, and how long to wait for trailing events after the last answer.

    ``send`` may name values seen earlier in the run: ``{{Header}}`` is the latest value of
    that header (a BridgeUniqueid), ``{{md5:user}}`` the MD5 key of ``user`` for the latest
    Challenge. Generated ids cannot be scripted otherwise.
    """

    send: bytes
    #: None: 0.25 s when the session gets events, else 0.08 s (nothing unsolicited comes;
    #: a late message still shows, in the next step)
    settle: float | None = None
    #: extra time to wait for events the step triggers later (Originate, Queue ringing…)
    linger: float = 0.0
    #: collect for exactly this long instead of until every answer came (None: until
    #: answered): a blocking action (WaitEvent) answered too early shows as a difference
    window: float | None = None
    #: concurrent channel threads publish in no fixed order: compare each channel's events
    #: in order, but not the interleaving of different channels (see :func:`canonical`)
    unordered: bool = False
    #: False: a setup step, whose answer depends on earlier runs of the long-lived server
    #: (CreateConfig of a file the last run made): sent, not compared
    compare: bool = True


@dataclass(frozen=True)
class Script:
    """One exchange: who logs in (None: nobody), from where, then the steps."""

    name: str
    steps: tuple[Step, ...]
    user: str | None = "ucmamiuser1"
    events: str = "off"
    source: str = "127.0.0.1"
    #: compare only events of these names (None: all): a call flow's point is its bridge or
    #: queue events, not every Newexten of the dialplan around it
    focus: frozenset[str] | None = None
    #: events Asterisk fills with channel snapshots only while they are still cached: its
    #: AgentComplete after a hangup lacks them about one run in six (13 and 22, measured),
    #: so these are compared without snapshot fields and sorted after the channels' events
    snapshotless: frozenset[str] = frozenset()
    #: (event, header) pairs whose value Asterisk computes in a race, masked on both sides:
    #: 13's Local device state behind a QueueMemberStatus is read by the device-state
    #: thread whenever it gets to it (the first at answer is 1 or 2 from run to run)
    unstable: frozenset[tuple[str, str]] = frozenset()


@dataclass
class Result:
    """What one script got: the banner and, per step, the messages (or ``<EOF>``)."""

    banner: str | None
    steps: list[list[Message]] = field(default_factory=list)
    closed_after: int | None = None
    #: the client's source port: security events about other sessions are not the script's
    port: int = 0


def _ids(data: bytes) -> list[str]:
    return re.findall(r"(?im)^actionid:\s*(\S+)", data.decode("latin-1"))


def _with_ids(data: bytes, prefix: str) -> tuple[bytes, list[str]]:
    """Give every action in ``data`` an ActionID (``prefix-N``) unless it has one."""
    out, ids = [], []
    blocks = data.split(b"\r\n\r\n")
    for n, block in enumerate(blocks):
        if n == len(blocks) - 1 or not block.strip():  # not (yet) a whole message
            out.append(block)
            continue
        if re.search(rb"(?im)^actionid:", block) or not re.search(rb"(?im)^action:", block):
            out.append(block)
            ids.extend(_ids(block))
            continue
        aid = f"{prefix}-{n}"
        out.append(block + f"\r\nActionID: {aid}".encode())
        ids.append(aid)
    return b"\r\n\r\n".join(out), ids


def _complete(msgs: Sequence[Message], ids: Iterable[str]) -> bool:
    for aid in ids:
        mine = [m for m in msgs if m.action_id == aid]
        if not mine:
            return False
        first = mine[0]
        if (first.get("EventList") or "").lower() == "start" and not any(
            (m.event_list or "") == "complete" or (m.name or "").endswith("Complete")
            for m in mine[1:]
        ):
            return False
    return True


_TEMPLATE = re.compile(rb"\{\{(md5:)?([A-Za-z0-9_-]+)\}\}")


def _fill(data: bytes, seen: Sequence[Message]) -> bytes:
    """Replace the ``{{...}}`` placeholders of a step (see :class:`Step`)."""

    def latest(key: str) -> str:
        for m in reversed(seen):
            value = m.get(key)
            if value:
                return value
        return ""

    def sub(mo: re.Match[bytes]) -> bytes:
        name = mo.group(2).decode()
        if mo.group(1):
            secret = KIT_SECRETS.get(name, DEFAULT_SECRET)
            return hashlib.md5((latest("Challenge") + secret).encode()).hexdigest().encode()
        return latest(name).encode()

    return _TEMPLATE.sub(sub, data)


def run(host: str, port: int, script: Script, *, timeout: float = 5.0) -> Result:
    """Play ``script`` against ``host:port`` on a fresh connection."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((script.source, 0))
    sock.connect((host, port))
    parser = Parser()
    pending: list[Message] = []
    eof = False

    def pump(until: float) -> None:
        nonlocal eof
        while not eof:
            left = until - time.monotonic()
            if left <= 0:
                return
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                return
            except ConnectionError:
                data = b""
            if not data:
                eof = True
                return
            pending.extend(parser.feed(data))

    try:
        deadline = time.monotonic() + timeout
        while parser.banner is None and not eof and time.monotonic() < deadline:
            pump(min(deadline, time.monotonic() + 0.05))
        result = Result(parser.banner, port=sock.getsockname()[1])
        steps = list(script.steps)
        if script.user is not None:
            secret = KIT_SECRETS.get(script.user, DEFAULT_SECRET)
            login = action("Login", Username=script.user, Secret=secret, Events=script.events)
            steps.insert(0, Step(login))
        seen: list[Message] = []
        for n, step in enumerate(steps):
            data, ids = _with_ids(_fill(step.send, seen), f"s{n}")
            try:
                sock.sendall(data)
            except ConnectionError:  # the server closed: what it sent before still counts
                eof = True
            if step.window is not None:
                pump(time.monotonic() + step.window)
            else:
                deadline = time.monotonic() + timeout
                while not eof and not _complete(pending, ids) and time.monotonic() < deadline:
                    pump(min(deadline, time.monotonic() + 0.05))
                settle = step.settle
                if settle is None:
                    settle = 0.08 if script.events == "off" else 0.25
                pump(time.monotonic() + settle + step.linger)
            seen.extend(pending)
            if n or script.user is None:
                result.steps.append(list(pending))
            pending.clear()
            if eof:
                result.closed_after = len(result.steps)
                break
        return result
    finally:
        sock.close()


# --- normalisation ---------------------------------------------------------------------

#: Headers whose value differs by nature between two servers (or two runs).
_MASK_KEYS = frozenset(
    k.lower()
    for k in (
        "Timestamp", "EventTV", "SessionTV", "SessionID", "Challenge", "BridgeCreator",
        "CoreCurrentCalls", "CoreProcessedCalls",
        "Uptime", "LastReload", "CoreStartupDate", "CoreStartupTime", "CoreReloadDate",
        "CoreReloadTime", "CurrentCalls", "SystemName", "Seconds", "Duration",
        "Expected", "ExpectedResponse", "Response-Key", "HoldTime", "TalkTime", "LastCall",
        "LoginTime", "Lastpause", "LastPause", "InCall", "RingTime", "Lastcall",
        # counters of a long-lived server (the real one has taken calls before this run)
        "CallsTaken", "Completed", "Abandoned", "ServicelevelPerf", "ServicelevelPerf2",
    )
)  # fmt: skip
#: Channel and bridge ids: generated ones are masked, ids a script gave (ChannelId:
#: fid-...) are compared, so Originate's ChannelId/OtherChannelId are held to Asterisk's.
_ID_KEYS = frozenset(
    k.lower()
    for k in (
        "Uniqueid", "Linkedid", "DestUniqueid", "DestLinkedid", "BridgeUniqueid", "ChannelId",
        "BridgedUniqueid", "LocalOneUniqueid", "LocalTwoUniqueid", "LocalOneLinkedid",
        "LocalTwoLinkedid", "DestBridgeUniqueid", "OrigTransfererUniqueid",
        "OrigTransfererLinkedid", "TransfereeUniqueid", "TransfereeLinkedid",
        "TransferTargetUniqueid", "TransferTargetLinkedid", "ParkeeUniqueid", "ParkeeLinkedid",
    )
)  # fmt: skip
#: The prefix of the ids the scripts give their channels.
GIVEN = "fid-"
_SUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(IPV[46]/(?:TCP|TLS|UDP)/[\d.]+)/\d+"), r"\1/<port>"),
    (re.compile(r"(Local/[^;@\s]+@[^;\s]+?)-[0-9a-f]{8}(;[12])"), r"\1-<n>\2"),
    (re.compile(r"\b\d+ calls? processed"), "<n> calls processed"),
    (re.compile(r"\b\d{10}\.\d{1,6}\b"), "<epoch>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}\S*"), "<date>"),
)


_ACTIVE = re.compile(r"^\d+ active channels?$")


def _sorted_rows(text: str) -> str:
    """``core show channels`` lists channels in the container's hash order: rows sorted."""
    lines = text.split("\n")
    end = next((i for i, line in enumerate(lines) if _ACTIVE.match(line)), None)
    if end is None or end < 2:
        return text
    return "\n".join([lines[0], *sorted(lines[1:end]), *lines[end:]])


#: the durations Dial and Queue record (set_duration_var): wall-clock, like HoldTime
_DURATION_VAR = re.compile(r"^(ANSWERED|DIALED|RING|PROGRESS)TIME(_MS)?$|^QUEUEWAIT(_MS)?$")


def normalise(msg: Message) -> tuple[tuple[str, str], ...]:
    """``msg`` as (key, value) pairs with the by-nature differences masked."""
    out = []
    timed = msg.name == "VarSet" and bool(_DURATION_VAR.match(msg.get("Variable") or ""))
    for key, value in msg:
        low = key.lower()
        if low in _MASK_KEYS or (low in _ID_KEYS and not value.startswith(GIVEN)):
            value = "<masked>"
        elif timed and low == "value" and value:
            value = "<duration>"
        else:
            for pattern, repl in _SUBS:
                value = pattern.sub(repl, value)
        out.append((key, value))
    text = msg.text
    if text is not None:
        for pattern, repl in _SUBS:
            text = pattern.sub(repl, text)
        out.append(("<text>", _sorted_rows(text)))
    if msg.get("Output") is not None:  # 22's Command: one Output header per line
        rows = _sorted_rows("\n".join(v for k, v in out if k == "Output")).split("\n")
        it = iter(rows)
        out = [(k, next(it)) if k == "Output" else (k, v) for k, v in out]
    return tuple(out)


def _show(pairs: tuple[tuple[str, str], ...]) -> str:
    return " / ".join(f"{k}: {v}" for k, v in pairs)[:300]


def _owner(msg: Message) -> str:
    """The channel (or bridge) an event is about, normalised: the key events sort by."""
    if msg.name == "OriginateResponse":  # from the originating thread: races the channel's
        return "~originate"
    if msg.name == "DeviceStateChange":  # published from a task queue: compared as a set
        return f"~device {msg.get('Device')} {msg.get('State')}"
    for key in ("Channel", "DestChannel", "LocalOneChannel", "BridgeUniqueid", "Queue"):
        value = msg.get(key)
        if value:
            for pattern, repl in _SUBS:
                value = pattern.sub(repl, value)
            return value
    return ""


#: a device whose state the server caches across calls, so whether a change shows depends on
#: what ran before: the queue's availability (Queue:6500_avail) shows once after a start
_HISTORY = re.compile(r"^Queue:.*_avail$")


def _history(msg: Message) -> bool:
    return msg.name == "DeviceStateChange" and bool(_HISTORY.match(msg.get("Device") or ""))


def _foreign(msg: Message) -> bool:
    """An event of a call the script did not make (the real server is shared)."""
    linked = [v for k, v in msg if k.lower().endswith("linkedid")]
    return bool(linked) and not any(v.startswith(GIVEN) for v in linked)


def _recount(msg: Message, dropped: dict[str, int]) -> Message:
    """A list's Complete event with the foreign items left out of its counts."""
    n = dropped.get(msg.action_id or "")
    if not n or (msg.event_list or "") != "complete":
        return msg
    items = [(k, str(int(v) - n) if k in ("ListItems", "Items") and v.isdigit() else v)
             for k, v in msg]
    return Message(items, text=msg.text)


def _other_session(msg: Message, port: int) -> bool:
    """A security event about another client's session (the real server is shared)."""
    remote = msg.get("RemoteAddress") or ""
    return bool(port) and bool(remote) and not remote.endswith(f"/{port}")


#: the fields of a channel snapshot (ast_manager_build_channel_state_string_prefix)
_SNAPSHOT = re.compile(
    r"(?i)^(Dest)?(Channel|ChannelState|ChannelStateDesc|CallerIDNum|CallerIDName|"
    r"ConnectedLineNum|ConnectedLineName|Language|AccountCode|Context|Exten|Priority|"
    r"Uniqueid|Linkedid)$"
)


def canonical(
    msgs: Sequence[Message], step: Step | None, script: Script | None, port: int = 0
) -> list[Message]:
    """What of a step is compared: a script that names its channels (``ChannelId: fid-``)
    sees only its own calls' events; ``focus`` keeps the named events (and every answer to
    the script's actions); an ``unordered`` step sorts by channel, keeping each channel's
    own order (Asterisk's per-channel threads interleave differently from run to run)."""
    if script is None:
        return list(msgs)
    own = any(f"ChannelId: {GIVEN}".encode() in st.send for st in script.steps)
    out = []
    dropped: dict[str, int] = {}  # foreign list items per ActionID
    for m in msgs:
        if m.action_id is None and m.kind is MessageKind.EVENT:
            if (own and _foreign(m)) or _other_session(m, port) or _history(m):
                continue
            if script.focus is not None and (m.name or "") not in script.focus:
                continue
        elif m.action_id is not None and m.kind is MessageKind.EVENT and _foreign(m):
            dropped[m.action_id] = dropped.get(m.action_id, 0) + 1  # Status of another's call
            continue
        if (m.name or "") in script.snapshotless:
            m = Message([(k, v) for k, v in m if not _SNAPSHOT.match(k)], text=m.text)
        if any(name == m.name for name, _ in script.unstable):
            racy = {h.lower() for name, h in script.unstable if name == m.name}
            m = Message([(k, "<racy>" if k.lower() in racy else v) for k, v in m], text=m.text)
        out.append(m)
    if dropped:
        out = [_recount(m, dropped) for m in out]
    if own or (step is not None and step.unordered):
        out.sort(key=lambda m: "~" if (m.name or "") in script.snapshotless else _owner(m))
    return out


def diff(
    expected: Result,
    got: Result,
    ignore: Iterable[str] = (),
    script: Script | None = None,
) -> list[str]:
    """Differences of ``got`` (the simulator) from ``expected`` (Asterisk), one per line.

    Headers named in ``ignore`` are left out of the comparison (deliberate differences);
    with ``script``, each step is compared as :func:`canonical` makes it.
    """
    skip = {k.lower() for k in ignore}
    if "*" in skip:  # the whole exchange differs on purpose (listed with its reason)
        return []

    def norm(m: Message) -> tuple[tuple[str, str], ...]:
        return tuple(p for p in normalise(m) if p[0].lower() not in skip)

    def view(res: Result, n: int) -> list[tuple[tuple[str, str], ...]]:
        if n >= len(res.steps):
            return []
        # Result.steps holds the script's steps (the harness's login is not one of them)
        step = script.steps[n] if script is not None and n < len(script.steps) else None
        if step is not None and not step.compare:
            return []
        return [norm(m) for m in canonical(res.steps[n], step, script, res.port)]

    out = []
    if expected.banner != got.banner:
        out.append(f"banner: {got.banner!r} != {expected.banner!r}")
    for n in range(max(len(expected.steps), len(got.steps))):
        want, have = view(expected, n), view(got, n)
        for i in range(max(len(want), len(have))):
            w = want[i] if i < len(want) else None
            h = have[i] if i < len(have) else None
            if w == h:
                continue
            if w is None:
                out.append(f"step {n} msg {i}: extra {_show(h or ())}")
            elif h is None:
                out.append(f"step {n} msg {i}: missing {_show(w)}")
            else:
                out.append(f"step {n} msg {i}: {_show(h)}\n      != {_show(w)}")
    if expected.closed_after != got.closed_after:
        out.append(f"closed after step {got.closed_after}, Asterisk {expected.closed_after}")
    return out


# --- the scripts -------------------------------------------------------------------------

_PING = action("Ping")
SCRIPTS: tuple[Script, ...] = (
    Script("banner-only", (Step(b"", settle=0.3),), user=None),
    Script("login-ok", (Step(_PING),)),
    Script("login-events-on", (Step(_PING),), events="on"),
    Script(
        "login-wrong-secret",
        (Step(action("Login", Username="ucmamiuser1", Secret="wrong1"), settle=1.5),),
        user=None,
    ),
    Script(
        "login-unknown-user",
        (Step(action("Login", Username="nosuchuser", Secret="wrong1"), settle=1.5),),
        user=None,
    ),
    Script(
        "login-acl-blocked",
        (Step(action("Login", Username="aclblocked1", Secret=DEFAULT_SECRET), settle=1.5),),
        user=None,
    ),
    Script("login-twice", (Step(action("Login", Username="ucmamiuser1", Secret="test123")),)),
    Script(
        "challenge",
        (Step(action("Challenge", AuthType="MD5")), Step(action("Challenge", AuthType="plain"))),
        user=None,
    ),
    Script(
        "md5-wrong-key",
        (
            Step(action("Challenge", AuthType="MD5")),
            Step(
                action("Login", AuthType="MD5", Username="ucmamiuser1", Key="0" * 32), settle=1.5
            ),
        ),
        user=None,
    ),
    Script("preauth-actions", (Step(_PING), Step(action("Status"))), user=None),
    Script("logoff", (Step(action("Logoff")),)),
    Script("logoff-preauth", (Step(action("Logoff")),), user=None),
    Script("missing-action", (Step(b"Foo: bar\r\n\r\n"), Step(b"\r\n"))),
    Script("unknown-action", (Step(action("NoSuchAction")),)),
    Script("header-case", (Step(b"action: ping\r\nactionid: hc1\r\n\r\n"),)),
    Script("long-line", (Step(b"Action: Ping\r\nX-Long: " + b"a" * 1100 + b"\r\n\r\n"),)),
    Script(
        "many-headers",
        # the harness's ActionID is header 132: Asterisk drops it (answers without one)
        (Step(b"Action: Ping\r\n" + b"".join(b"X%d: y\r\n" % i for i in range(130)) + b"\r\n",
              window=0.5),),
    ),
    Script("listcommands-call", (Step(action("ListCommands")),), user="priv_call0"),
    Script(
        "permission-denied",
        (Step(action("Originate", Channel="Local/1000@from-internal", Application="Wait")),),
        user="priv_reporting",
    ),
    Script("status-empty", (Step(action("Status")),)),
    Script("coreshowchannels-empty", (Step(action("CoreShowChannels")),)),
    Script("corestatus", (Step(action("CoreStatus")),)),
    Script(
        "getvar-setvar",
        (
            Step(action("Setvar", Variable="AMICHECK_FID", Value="")),  # a global: reset first
            Step(action("Getvar", Variable="AMICHECK_FID")),
            Step(action("Setvar", Variable="AMICHECK_FID", Value="42")),
            Step(action("Getvar", Variable="AMICHECK_FID")),
        ),
    ),
    Script("getconfig-missing", (Step(action("GetConfig", Filename="nosuch.conf")),)),
    Script("getconfig-traversal", (Step(action("GetConfig", Filename="../etc/passwd")),)),
    Script(
        "updateconfig-errors",
        (
            Step(action("UpdateConfig")),
            Step(action("UpdateConfig", SrcFilename="nosuch.conf", DstFilename="x.conf")),
            Step(action("UpdateConfig", SrcFilename="extensions.conf")),
        ),
    ),
    Script(
        "updateconfig-outside",
        (Step(action("UpdateConfig", SrcFilename="queues.conf", DstFilename="/tmp/fid.conf")),),
    ),
    Script("queuestatus", (Step(action("QueueStatus")),)),
    Script("queuesummary", (Step(action("QueueSummary")),)),
    Script("queues", (Step(action("Queues")),)),
    Script("bridgelist-empty", (Step(action("BridgeList")),)),
    Script("dbput-dbget", (Step(action("DBPut", Family="fid", Key="k", Val="v")),
                           Step(action("DBGet", Family="fid", Key="k")),
                           Step(action("DBDel", Family="fid", Key="k")))),
    Script("hangup-missing", (Step(action("Hangup", Channel="PJSIP/nobody-00000000")),)),
    Script("redirect-missing", (Step(action("Redirect", Channel="PJSIP/nobody-00000000",
                                            Context="from-internal", Exten="1000",
                                            Priority="1")),)),
    Script(
        "originate-local-wait",
        (
            Step(
                action(
                    "Originate", Channel="Local/2000@from-internal", Application="Wait",
                    Data="1", Async="true",
                ),
                # until the call is over: its late Hangup and 22's DeviceStateChange (no
                # Linkedid to tell whose) would land in the scripts after it
                linger=2.0,
                unordered=True,
            ),
        ),
        events="call",
    ),
    Script("command-core-show-channels", (Step(action("Command", Command="core show channels")),)),
    Script("events-mask", (Step(action("Events", EventMask="off")),
                           Step(action("Events", EventMask="call,system")),
                           Step(action("Events", EventMask="")))),
    Script("waitevent-timeout", (Step(action("WaitEvent", Timeout="1"), settle=0.3),)),
)  # fmt: skip


def _originate(n: str, channel: str, app: str, data: str, **extra: str) -> bytes:
    """An async Originate of ``channel`` whose halves get the ids ``fid-<n>1``/``fid-<n>2``."""
    return action(
        "Originate", Channel=channel, Application=app, Data=data, Async="true",
        ChannelId=f"{GIVEN}{n}1", OtherChannelId=f"{GIVEN}{n}2", **extra,
    )  # fmt: skip


def _hangup(n: str, linger: float = 0.6) -> Step:
    """Hang the script's call up (Asterisk's server is long-lived: leave it idle)."""
    return Step(action("Hangup", Channel=f"{GIVEN}{n}1"), linger=linger, unordered=True)


_Q = "Local/1001@from-internal"  # paused in the queue scripts: only 1000 rings (no race)
_Q0 = "Local/1000@from-internal"


def _answered_queue_call(n: str, channel: str, app: str, data: str) -> tuple[Step, ...]:
    """1001 paused, a call into queue 6500 that 1000 answers, QueueStatus while it is up, then
    hung up and 1001 unpaused (the queue is left as it was)."""
    return (
        Step(action("QueuePause", Queue="6500", Interface=_Q, Paused="true")),
        Step(_originate(n, channel, app, data), linger=2.0, unordered=True),
        Step(action("QueueStatus", Queue="6500")),
        _hangup(n, 1.0),
        Step(action("QueuePause", Queue="6500", Interface=_Q, Paused="false")),
    )


#: the events a queue call is about (app_queue's, not the dialplan's around it)
_QUEUE_EVENTS = frozenset(
    {
        "QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "AgentCalled",
        "AgentConnect", "AgentComplete", "AgentRingNoAnswer", "AgentDump",
        "QueueMemberStatus", "QueueMemberPause", "QueueMemberPenalty",
    }
)  # fmt: skip
_BRIDGE_EVENTS = frozenset(
    {"BridgeCreate", "BridgeEnter", "BridgeLeave", "BridgeDestroy", "DialBegin", "DialEnd"}
)
#: every event of a call (22's DeviceStateChange too: see _owner and _history)
_CALL_FLOW = _BRIDGE_EVENTS | frozenset(
    {
        "OriginateResponse", "Newchannel", "Newexten", "Newstate", "NewCallerid",
        "NewConnectedLine", "LocalBridge", "VarSet", "HangupRequest", "SoftHangupRequest",
        "Hangup", "DeviceStateChange",
    }
)  # fmt: skip
_CALL_SCRIPTS: tuple[Script, ...] = (
    Script(
        "originate-channelid",
        (
            Step(
                _originate("a", "Local/2000@from-internal", "Wait", "10"),
                linger=0.6,
                unordered=True,
            ),
            Step(action("Status", Channel="fid-a1")),
            Step(action("Status", Channel="fid-a2")),
            Step(action("CoreShowChannels"), unordered=True),
            Step(action("Command", Command="core show channels")),
            _hangup("a"),
        ),
        events="on",
    ),
    Script(
        "originate-dial-bridge",
        (
            Step(
                _originate("b", "Local/1000@from-internal", "Dial", "Local/2000@from-internal"),
                linger=1.0,
                unordered=True,
            ),
            Step(action("BridgeList")),
            Step(action("BridgeInfo", BridgeUniqueid="{{BridgeUniqueid}}"), unordered=True),
            Step(action("Status", Channel="fid-b1")),
            _hangup("b", 1.0),
            Step(action("BridgeList")),
        ),
        events="on",
        focus=_CALL_FLOW,
    ),
    Script(
        "setvar-connectedline",
        (
            Step(_originate("c", "Local/2000@from-internal", "Wait", "10"), linger=0.6),
            Step(
                action(
                    "Setvar",
                    Channel="fid-c1",
                    Variable="CONNECTEDLINE(all)",
                    Value='"Fid Line" <5551234>',
                ),
                unordered=True,
            ),
            Step(action("Getvar", Channel="fid-c1", Variable="CONNECTEDLINE(num)")),
            Step(action("Setvar", Channel="fid-c1", Variable="FIDVAR", Value="x")),
            Step(action("Getvar", Channel="fid-c1", Variable="FIDVAR")),
            _hangup("c"),
        ),
        events="on",
    ),
    Script(
        "redirect-live",
        (
            Step(_originate("r", "Local/2000@from-internal", "Wait", "10"), linger=0.6),
            Step(
                action(
                    "Redirect",
                    Channel="fid-r2",
                    Context="from-internal",
                    Exten="1000",
                    Priority="1",
                ),
                linger=0.8,
                unordered=True,
            ),
            Step(action("Status", Channel="fid-r2")),
            Step(
                action(
                    "Redirect",
                    Channel="fid-r2",
                    Context="from-internal",
                    Exten="9999",
                    Priority="1",
                ),
                linger=0.5,
                unordered=True,
            ),
            _hangup("r"),
        ),
        events="on",
    ),
    Script(
        "hangup-live-cause",
        (
            Step(_originate("h", "Local/2000@from-internal", "Wait", "10"), linger=0.6),
            Step(action("Hangup", Channel="fid-h2", Cause="17"), linger=0.6, unordered=True),
            Step(action("Hangup", Channel="fid-h1")),
        ),
        events="on",
    ),
    Script(
        "queue-pause-penalty",
        (
            Step(action("QueuePause", Queue="6500", Interface=_Q, Paused="true", Reason="fid")),
            Step(action("QueueStatus", Queue="6500")),
            Step(action("QueuePause", Queue="6500", Interface=_Q, Paused="false")),
            Step(action("QueuePause", Interface=_Q, Paused="true")),  # every queue
            Step(action("QueuePause", Interface=_Q, Paused="false")),
            Step(
                action(
                    "QueuePenalty", Queue="6500", Interface="Local/1000@from-internal", Penalty="2"
                )
            ),
            Step(action("QueueStatus", Queue="6500", Member="Local/1000@from-internal")),
            Step(action("QueuePenalty", Interface="Local/1000@from-internal", Penalty="0")),
            Step(
                action(
                    "QueuePenalty", Queue="6500", Interface="Local/1000@from-internal", Penalty="-1"
                )
            ),
            Step(action("QueuePause", Queue="6500", Interface="Local/9@x", Paused="true")),
            Step(action("QueuePenalty", Queue="6500", Interface="Local/9@x", Penalty="1")),
        ),
        events="on",
    ),
    Script(
        "queue-pause-devstate",  # 22: the member's pause device and the queue's, cached
        (
            Step(action("QueuePause", Queue="6500", Interface=_Q, Paused="true")),
            Step(action("QueuePause", Queue="6500", Interface=_Q, Paused="true")),  # no change
            Step(action("QueuePause", Queue="6500", Interface=_Q0, Paused="true")),  # none free
            Step(action("QueuePause", Queue="6500", Interface=_Q0, Paused="false")),
            Step(action("QueuePause", Queue="6500", Interface=_Q, Paused="false")),
        ),
        events="call,agent",
    ),
    Script(
        "queue-call",
        _answered_queue_call("q", "Local/6500@from-internal", "Wait", "20"),
        events="on",
        focus=_QUEUE_EVENTS | _CALL_FLOW,
        snapshotless=frozenset({"AgentComplete"}),
        unstable=frozenset({("QueueMemberStatus", "Status")}),
    ),
    Script(
        "queue-abandon",  # nobody to ring (both paused): the caller gives up
        (
            Step(action("QueuePause", Queue="6500", Interface=_Q, Paused="true")),
            Step(action("QueuePause", Queue="6500", Interface=_Q0, Paused="true")),
            Step(
                _originate("qa", "Local/6500@from-internal", "Wait", "20"),
                linger=1.0,
                unordered=True,
            ),
            _hangup("qa", 0.6),
            Step(action("QueuePause", Queue="6500", Interface=_Q0, Paused="false")),
            Step(action("QueuePause", Queue="6500", Interface=_Q, Paused="false")),
        ),
        events="on",
        focus=_QUEUE_EVENTS | _CALL_FLOW,
    ),
)
_MORE: tuple[Script, ...] = (
    Script(
        "waitevent-blocks",
        (
            Step(action("WaitEvent", Timeout="2"), window=1.0),  # nothing yet: it blocks
            Step(b"", window=1.5),  # then its answer
            Step(action("Events", EventMask="on") + action("WaitEvent", Timeout="5"), window=0.5),
            # a client write ends a TCP session's WaitEvent (ast_wait_for_input)
            Step(action("UserEvent", UserEvent="fidwake"), window=0.5),
        ),
    ),
    Script(
        "filter-include-exclude",
        (
            Step(action("UserEvent", UserEvent="fidbefore")),
            Step(action("Filter", Operation="Add", Filter="UserEvent: fidkeep")),
            Step(
                action("UserEvent", UserEvent="fidkeep") + action("UserEvent", UserEvent="fiddrop")
            ),
            Step(action("Filter", Operation="Add", Filter="!UserEvent: fidkeep2")),
            Step(
                action("UserEvent", UserEvent="fidkeep") + action("UserEvent", UserEvent="fidkeep2")
            ),
            Step(action("Filter")),
            Step(action("Filter", Operation="Del", Filter="x")),
            Step(action("Filter", Operation="Add")),
            Step(action("Filter", Operation="Add", Filter="(unclosed")),
        ),
        events="on",
    ),
    Script(
        "filter-exclude-only",
        (
            Step(action("Filter", Operation="Add", Filter="!UserEvent: fiddrop")),
            Step(
                action("UserEvent", UserEvent="fidkeep") + action("UserEvent", UserEvent="fiddrop")
            ),
        ),
        events="on",
    ),
    Script(
        "updateconfig-cases",
        (
            # 22 writes only files that exist: create it ("File exists" after the first run)
            Step(action("CreateConfig", Filename="fid.conf"), compare=False),
            Step(
                action(
                    "UpdateConfig",
                    SrcFilename="queues.conf",
                    DstFilename="fid.conf",
                    Action_000000="Frobnicate",
                    Cat_000000="x",
                )
            ),
            Step(
                action(
                    "UpdateConfig",
                    SrcFilename="queues.conf",
                    DstFilename="fid.conf",
                    Action_000000="NewCat",
                )
            ),
            Step(
                action(
                    "UpdateConfig",
                    SrcFilename="queues.conf",
                    DstFilename="fid.conf",
                    Action_000000="Update",
                    Cat_000000="nosuchcat",
                    Var_000000="a",
                    Value_000000="b",
                )
            ),
            Step(
                action(
                    "UpdateConfig",
                    SrcFilename="queues.conf",
                    DstFilename="fid.conf",
                    Action_000000="Append",
                    Cat_000000="general",
                )
            ),
            Step(
                action(
                    "UpdateConfig",
                    SrcFilename="queues.conf",
                    DstFilename="fid.conf",
                    Action_000000="DelCat",
                    Cat_000000="nosuchcat",
                )
            ),
            Step(
                action(
                    "UpdateConfig",
                    SrcFilename="queues.conf",
                    DstFilename="fid.conf",
                    Action_000000="Delete",
                    Cat_000000="general",
                    Var_000000="nosuchvar",
                )
            ),
            Step(
                action(
                    "UpdateConfig",
                    SrcFilename="queues.conf",
                    DstFilename="fid.conf",
                    Action_000000="EmptyCat",
                    Cat_000000="nosuchcat",
                )
            ),
            Step(
                action(
                    "UpdateConfig",
                    SrcFilename="queues.conf",
                    DstFilename="fid.conf",
                    Reload="no",
                    Action_000000="DelCat",
                    Cat_000000="general",
                    Action_000001="DelCat",
                    Cat_000001="6500",
                    Action_000002="NewCat",
                    Cat_000002="fid",
                    Action_000003="Append",
                    Cat_000003="fid",
                    Var_000003="colour",
                    Value_000003="blue",
                    Action_000004="Append",
                    Cat_000004="fid",
                    Var_000004="size",
                    Value_000004="3",
                    Action_000005="Update",
                    Cat_000005="fid",
                    Var_000005="size",
                    Value_000005="4",
                )
            ),
            Step(action("GetConfig", Filename="fid.conf")),
            Step(action("GetConfigJSON", Filename="fid.conf")),
            Step(action("GetConfig", Filename="fid.conf", Category="fid")),
            Step(action("GetConfig", Filename="fid.conf", Category="nosuchcat")),
        ),
    ),
    # login variants
    Script("login-no-username", (Step(action("Login"), settle=1.5),), user=None),
    Script(
        "login-empty-secret",
        (Step(action("Login", Username="ucmamiuser1", Secret=""), settle=1.5),),
        user=None,
    ),
    Script(
        "login-username-case",
        (Step(action("Login", Username="UCMAMIUSER1", Secret="test123"), settle=1.5),),
        user=None,
    ),
    Script(
        "md5-ok",
        (
            Step(action("Challenge", AuthType="MD5")),
            Step(
                action("Login", AuthType="MD5", Username="ucmamiuser1", Key="{{md5:ucmamiuser1}}")
            ),
            Step(_PING),
        ),
        user=None,
    ),
    Script(
        "md5-without-challenge",
        (Step(action("Login", AuthType="MD5", Username="ucmamiuser1", Key="0" * 32), settle=1.5),),
        user=None,
    ),
    Script("login-events-call", (Step(action("UserEvent", UserEvent="fidev")),), events="call"),
    Script("login-events-user", (Step(action("UserEvent", UserEvent="fidev")),), events="user"),
    # framing
    Script("lf-only", (Step(b"Action: Ping\nActionID: lf1\n\n"),)),
    Script("no-space-after-colon", (Step(b"Action:Ping\r\nActionID:nc1\r\n\r\n"),)),
    Script("trailing-space", (Step(b"Action: Ping   \r\nActionID: ts1\r\n\r\n"),)),
    Script("header-without-colon", (Step(b"Action: Ping\r\nnocolon\r\nActionID: hw1\r\n\r\n"),)),
    Script(
        "duplicate-action", (Step(b"Action: Ping\r\nAction: CoreStatus\r\nActionID: da1\r\n\r\n"),)
    ),
    Script("empty-action", (Step(b"Action: \r\nActionID: ea1\r\n\r\n"),)),
    Script("pipelined", (Step(b"".join(action("Ping", ActionID=f"p{i}") for i in range(5))),)),
    Script("split-write", (Step(b"Action: Pi", window=0.3), Step(b"ng\r\nActionID: sw1\r\n\r\n"))),
    # privilege matrix
    Script(
        "priv-originate-ok",
        (
            Step(_originate("o", "Local/2000@from-internal", "Wait", "1"), linger=0.3),
            Step(action("Hangup", Channel="fid-o1"), linger=0.5),
        ),
        user="priv_originate",
    ),
    Script(
        "priv-call-originate",
        (Step(action("Originate", Channel="Local/2000@x", Application="Wait")),),
        user="priv_call0",
    ),
    Script(
        "priv-reporting-command",
        (Step(action("Command", Command="core show uptime")),),
        user="priv_reporting",
    ),
    Script(
        "priv-reporting-getconfig",
        (Step(action("GetConfig", Filename="queues.conf")),),
        user="priv_reporting",
    ),
    Script(
        "priv-reporting-status",
        (Step(action("Status")), Step(action("CoreStatus")), Step(action("QueueSummary"))),
        user="priv_reporting",
    ),
    Script(
        "priv-call-hangup",
        (Step(action("Hangup", Channel="fid-none")), Step(action("Getvar", Variable="x"))),
        user="priv_call0",
    ),
    Script(
        "priv-userevent-reporting",
        (Step(action("UserEvent", UserEvent="fid")),),
        user="priv_reporting",
        events="on",
    ),
)
#: Originate running a dialplan application directly (Application=Queue): the originated
#: channel is the queue's caller, as the Queue of the dialplan makes it
_APP_SCRIPTS: tuple[Script, ...] = (
    Script(
        "originate-app-queue",
        _answered_queue_call("aq", "Local/2000@from-internal", "Queue", "6500"),
        events="on",
        focus=_QUEUE_EVENTS | _CALL_FLOW,
        unstable=frozenset({("QueueMemberStatus", "Status")}),
    ),
)
SCRIPTS = SCRIPTS + _CALL_SCRIPTS + _MORE + _APP_SCRIPTS


#: what a step may send and still run beside other scripts: no state change, no events
_SHARED_STATE = (b"ChannelId", b"EventMask", b"UserEvent", b"Queue", b"Setvar", b"DBPut",
                 b"DBDel", b"UpdateConfig", b"Hangup", b"Redirect", b"Filter", b"WaitEvent",
                 b"Login")  # a raw Login gets events (Events: on is the default)


def isolated(script: Script) -> bool:
    """Whether ``script`` can run concurrently with other isolated scripts (it neither
    changes the server nor receives events): :func:`play_all` runs those in parallel."""
    return script.events == "off" and not any(
        word.lower() in st.send.lower() for st in script.steps for word in _SHARED_STATE
    )


def play_all(
    real: tuple[str, int], ours: tuple[str, int], scripts: Sequence[Script] = ()
) -> dict[str, tuple[Result, Result]]:
    """Every script against both servers (both at once), the isolated ones in parallel,
    the others one after another (each sees an otherwise idle PBX)."""
    from concurrent.futures import ThreadPoolExecutor

    todo = list(scripts or SCRIPTS)
    out: dict[str, tuple[Result, Result]] = {}

    def both(script: Script) -> tuple[Result, Result]:
        with ThreadPoolExecutor(2) as pool:
            a = pool.submit(run, *real, script)
            b = pool.submit(run, *ours, script)
            return a.result(), b.result()

    with ThreadPoolExecutor(8) as pool:
        par = {s.name: pool.submit(both, s) for s in todo if isolated(s)}
        for name, fut in par.items():
            out[name] = fut.result()
    for s in todo:
        if s.name not in out:
            out[s.name] = both(s)
    return out


def messages(res: Result) -> int:
    """How many messages a run got (the exchanges a comparison covers)."""
    return sum(len(step) for step in res.steps) + (res.banner is not None)


def main(argv: Sequence[str] | None = None) -> int:
    """``python tests/fidelity.py 13|22 [--self] [SCRIPT…]``: every difference.

    ``--self`` plays each script twice against Asterisk and diffs the two runs: a script
    whose result depends on timing or on earlier runs shows up there, not as a gap.
    """
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import refasterisk
    import test_fidelity_asterisk as t

    ap = argparse.ArgumentParser()
    ap.add_argument("version", choices=refasterisk.VERSIONS)
    ap.add_argument("--self", action="store_true", dest="self_check")
    ap.add_argument("scripts", nargs="*")
    args = ap.parse_intermixed_args(argv)
    inst = t.reference(args.version)
    total = compared = 0
    with t.simulator(args.version) as sim:
        for script in SCRIPTS:
            if args.scripts and script.name not in args.scripts:
                continue
            real = run("127.0.0.1", inst.port, script)
            if args.self_check:
                ours = run("127.0.0.1", inst.port, script)
            else:
                ours = run(sim.host, sim.port, script)
            compared += messages(real)
            reason, keys = t.deliberate(args.version, script.name)
            if args.self_check:
                keys = frozenset()
            d = diff(real, ours, keys, script)
            total += len(d)
            mark = f"(deliberate: {sorted(keys)}) " if keys else ""
            print(f"== {script.name}: {mark}{len(d)} difference(s)")
            for line in d:
                print("   " + line)
    print(f"{total} differences, {compared} Asterisk messages compared")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
