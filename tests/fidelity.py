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

import re
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from amicheck.protocol import Message, Parser

#: Secrets of the reference kit's users (test values, see refasterisk users).
KIT_SECRETS = {"ucmamiuser1": "test123"}
DEFAULT_SECRET = "Passw0rd!"


def action(name: str, /, **headers: str) -> bytes:
    """One action's wire bytes; ``ActionID`` is added by the harness when absent."""
    lines = [f"Action: {name}"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass(frozen=True)
class Step:
    """Bytes to send, and how long to wait for trailing events after the last answer."""

    send: bytes
    settle: float = 0.25
    #: extra time to wait for events the step triggers later (Originate, Queue ringing…)
    linger: float = 0.0


@dataclass(frozen=True)
class Script:
    """One exchange: who logs in (None: nobody), from where, then the steps."""

    name: str
    steps: tuple[Step, ...]
    user: str | None = "ucmamiuser1"
    events: str = "off"
    source: str = "127.0.0.1"


@dataclass
class Result:
    """What one script got: the banner and, per step, the messages (or ``<EOF>``)."""

    banner: str | None
    steps: list[list[Message]] = field(default_factory=list)
    closed_after: int | None = None


def _ids(data: bytes) -> list[str]:
    return re.findall(r"(?im)^actionid:\s*(\S+)", data.decode("latin-1"))


def _with_ids(data: bytes, prefix: str) -> tuple[bytes, list[str]]:
    """Give every action in ``data`` an ActionID (``prefix-N``) unless it has one."""
    out, ids = [], []
    for n, block in enumerate(data.split(b"\r\n\r\n")):
        if not block.strip():
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
        result = Result(parser.banner)
        steps = list(script.steps)
        if script.user is not None:
            secret = KIT_SECRETS.get(script.user, DEFAULT_SECRET)
            login = action("Login", Username=script.user, Secret=secret, Events=script.events)
            steps.insert(0, Step(login))
        for n, step in enumerate(steps):
            data, ids = _with_ids(step.send, f"s{n}")
            sock.sendall(data)
            deadline = time.monotonic() + timeout
            while not eof and not _complete(pending, ids) and time.monotonic() < deadline:
                pump(min(deadline, time.monotonic() + 0.05))
            pump(time.monotonic() + step.settle + step.linger)
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
        "Timestamp", "EventTV", "SessionTV", "SessionID", "Challenge", "Uniqueid", "Linkedid",
        "DestUniqueid", "DestLinkedid", "BridgeUniqueid", "BridgeCreator", "ChannelId",
        "Uptime", "LastReload", "CoreStartupDate", "CoreStartupTime", "CoreReloadDate",
        "CoreReloadTime", "CurrentCalls", "SystemName", "Seconds", "Duration",
        "BridgedUniqueid", "LocalOneUniqueid", "LocalTwoUniqueid", "LocalOneLinkedid",
        "LocalTwoLinkedid", "DestBridgeUniqueid", "OrigTransfererUniqueid", "Expected",
        "ExpectedResponse", "Response-Key", "HoldTime", "TalkTime", "LastCall", "LoginTime",
        "Lastpause", "LastPause", "InCall", "RingTime", "Lastcall",
    )
)  # fmt: skip
_SUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(IPV[46]/(?:TCP|TLS|UDP)/[\d.]+)/\d+"), r"\1/<port>"),
    (re.compile(r"(Local/[^;@\s]+@[^;\s]+?)-[0-9a-f]{8}(;[12])"), r"\1-<n>\2"),
    (re.compile(r"\b\d+ calls? processed"), "<n> calls processed"),
    (re.compile(r"\b\d{10}\.\d{1,6}\b"), "<epoch>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}\S*"), "<date>"),
)


def normalise(msg: Message) -> tuple[tuple[str, str], ...]:
    """``msg`` as (key, value) pairs with the by-nature differences masked."""
    out = []
    for key, value in msg:
        if key.lower() in _MASK_KEYS:
            value = "<masked>"
        else:
            for pattern, repl in _SUBS:
                value = pattern.sub(repl, value)
        out.append((key, value))
    text = msg.text
    if text is not None:
        for pattern, repl in _SUBS:
            text = pattern.sub(repl, text)
        out.append(("<text>", text))
    return tuple(out)


def _show(pairs: tuple[tuple[str, str], ...]) -> str:
    return " / ".join(f"{k}: {v}" for k, v in pairs)[:300]


def diff(expected: Result, got: Result, ignore: Iterable[str] = ()) -> list[str]:
    """Differences of ``got`` (the simulator) from ``expected`` (Asterisk), one per line.

    Headers named in ``ignore`` are left out of the comparison (deliberate differences).
    """
    skip = {k.lower() for k in ignore}

    def norm(m: Message) -> tuple[tuple[str, str], ...]:
        return tuple(p for p in normalise(m) if p[0].lower() not in skip)

    out = []
    if expected.banner != got.banner:
        out.append(f"banner: {got.banner!r} != {expected.banner!r}")
    for n in range(max(len(expected.steps), len(got.steps))):
        want = [norm(m) for m in (expected.steps[n] if n < len(expected.steps) else [])]
        have = [norm(m) for m in (got.steps[n] if n < len(got.steps) else [])]
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
        (Step(b"Action: Ping\r\n" + b"".join(b"X%d: y\r\n" % i for i in range(130)) + b"\r\n"),),
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
            Step(
                action(
                    "UpdateConfig", SrcFilename="extensions.conf", DstFilename="/tmp/amicheck.conf"
                )
            ),
        ),
    ),
    Script("queuestatus", (Step(action("QueueStatus")),)),
    Script("queuesummary", (Step(action("QueueSummary")),)),
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
                linger=0.5,
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


def main(argv: Sequence[str] | None = None) -> int:
    """``python tests/fidelity.py 13|22 [SCRIPT…]``: every difference, simulator vs Asterisk."""
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import refasterisk
    import test_fidelity_asterisk as t

    ap = argparse.ArgumentParser()
    ap.add_argument("version", choices=refasterisk.VERSIONS)
    ap.add_argument("scripts", nargs="*")
    args = ap.parse_args(argv)
    inst = refasterisk.start(args.version)
    total = 0
    with t.simulator(args.version) as sim:
        for script in SCRIPTS:
            if args.scripts and script.name not in args.scripts:
                continue
            real = run("127.0.0.1", inst.port, script)
            ours = run(sim.host, sim.port, script)
            reason, keys = t.DELIBERATE.get(script.name, ("", frozenset()))
            d = diff(real, ours, keys)
            total += len(d)
            mark = f"(deliberate: {sorted(keys)}) " if keys else ""
            print(f"== {script.name}: {mark}{len(d)} difference(s)")
            for line in d:
                print("   " + line)
    print(f"{total} differences")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
