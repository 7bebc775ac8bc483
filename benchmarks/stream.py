"""The deterministic server-to-client stream every parser benchmark reads.

Realistic in mix and, above all, in size: most packets are small events, but real servers
also send long ``ChanVariable`` events (dozens of channel variables on Newchannel/Hangup) and
command output of many KB (13.x ``Response: Follows`` bodies, 14+ ``Output:`` lines). Those
large packets straddle every TCP-sized read, which is where a streaming parser pays; the
average packet is about 500 bytes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["BANNER", "PING_RESPONSE", "GeneratedStream", "generate_stream", "big_follows",
           "small_events", "chunked"]

BANNER = b"Asterisk Call Manager/2.7.0\r\n"
PING_RESPONSE = b"Response: Success\r\nActionID: %s\r\nPing: Pong\r\nTimestamp: %s\r\n\r\n"


_NAMES = ["Alice Martin", "Bob Smith", "José Müller", "Zoë Ångström", "Łukasz Żółć",
          "Ελένη Παππά", "李小龙", "Søren Kierkegaard", "Ana Pérez", "Dmitri Иванов",
          "Customer Care", "<unknown>"]
_LATIN1_NAMES = [b"Fran\xe7ois H\xe9bert", b"J\xfcrgen M\xfcller"]
_VARS = ["SIPCALLID", "PJSIP_HEADER(read,X-UCM-Trace)", "CDR(userfield)", "QUEUE_PRIO",
         "__TRANSFER_CONTEXT", "MIXMON_ARGS", "UCM_CALL_JSON", "AUDIOHOOK_INHERIT"]
_VALUE_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-._@:{}\"="
_STATES = [("0", "Down"), ("4", "Ring"), ("5", "Ringing"), ("6", "Up")]
_APPS = [("Dial", "PJSIP/1001,30,tT"), ("Queue", "6500,t"), ("Answer", ""), ("NoOp", "ref 1000"),
         ("Wait", "5"), ("Playback", "custom/welcome")]


@dataclass
class GeneratedStream:
    """A generated stream and what it holds."""

    data: bytes
    packets: int
    kinds: dict[str, int] = field(default_factory=dict)
    follows: int = 0
    list_packets: int = 0
    chanvariable_packets: int = 0


class _Gen:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.uid = 1795693513
        self.seq = 0
        self.parts: list[bytes] = [BANNER]
        self.packets = 0
        self.kinds: dict[str, int] = {}
        self.n_follows = 0
        self.list_packets = 0
        self.chanvar = 0

    def emit(self, kind: str, headers: Sequence[tuple[str, str | bytes]]) -> None:
        out = bytearray()
        for k, v in headers:
            out += k.encode()
            out += b": "
            out += v if isinstance(v, bytes) else v.encode("utf-8")
            out += b"\r\n"
        out += b"\r\n"
        self.parts.append(bytes(out))
        self.packets += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def name(self) -> str | bytes:
        if self.r.random() < 0.01:
            return self.r.choice(_LATIN1_NAMES)
        return self.r.choice(_NAMES)

    def channel_headers(self, prefix: str = "") -> list[tuple[str, str | bytes]]:
        r = self.r
        self.seq += 1
        ext = str(1000 + r.randrange(6))
        state, desc = r.choice(_STATES)
        uid = f"{self.uid}.{self.seq}"
        return [
            (prefix + "Channel", f"PJSIP/{ext}-{self.seq:08x}"),
            (prefix + "ChannelState", state),
            (prefix + "ChannelStateDesc", desc),
            (prefix + "CallerIDNum", ext),
            (prefix + "CallerIDName", self.name()),
            (prefix + "ConnectedLineNum", "<unknown>"),
            (prefix + "ConnectedLineName", self.name()),
            (prefix + "Language", "en"),
            (prefix + "AccountCode", ""),
            (prefix + "Context", r.choice(["from-internal", "from-trunk", "ext-local"])),
            (prefix + "Exten", ext),
            (prefix + "Priority", str(r.randrange(1, 9))),
            (prefix + "Uniqueid", uid),
            (prefix + "Linkedid", uid),
        ]

    def event(self) -> None:
        r = self.r
        kind = r.choices(
            ["Newchannel", "Newstate", "Newexten", "VarSet", "Hangup", "DialBegin",
             "QueueMemberStatus", "DeviceStateChange", "ExtensionStatus", "RTCPSent"],
            [10, 10, 20, 20, 6, 5, 5, 10, 8, 6])[0]
        if kind == "DeviceStateChange":
            self.emit(kind, [("Event", kind), ("Privilege", "call,all"),
                             ("Device", f"PJSIP/{1000 + r.randrange(6)}"),
                             ("State", r.choice(["NOT_INUSE", "INUSE", "RINGING"]))])
            return
        if kind == "ExtensionStatus":
            ext = str(1000 + r.randrange(6))
            self.emit(kind, [("Event", kind), ("Privilege", "call,all"), ("Exten", ext),
                             ("Context", "ext-local"), ("Hint", f"PJSIP/{ext}"),
                             ("Status", r.choice(["0", "1", "8"])),
                             ("StatusText", r.choice(["Idle", "InUse", "Ringing"]))])
            return
        if kind == "QueueMemberStatus":
            ext = str(1000 + r.randrange(6))
            self.emit(kind, [("Event", kind), ("Privilege", "agent,all"), ("Queue", "6500"),
                             ("MemberName", f"Agent {ext}"),
                             ("Interface", f"Local/{ext}@from-internal"),
                             ("StateInterface", f"Local/{ext}@from-internal"),
                             ("Membership", "static"), ("Penalty", "0"), ("CallsTaken", "0"),
                             ("LastCall", "0"), ("InCall", "0"), ("Status", "2"),
                             ("Paused", "0"), ("PausedReason", ""), ("Ringinuse", "1")])
            return
        headers: list[tuple[str, str | bytes]] = [("Event", kind), ("Privilege", "call,all")]
        if kind == "DialBegin":
            headers += self.channel_headers() + self.channel_headers("Dest")
            headers.append(("DialString", f"{1000 + r.randrange(6)}@from-internal"))
        else:
            headers += self.channel_headers()
        if kind == "Newexten":
            app, data = r.choice(_APPS)
            headers += [("Extension", headers[12][1]), ("Application", app), ("AppData", data)]
        elif kind == "VarSet":
            headers += [("Variable", r.choice(["DIALSTATUS", "BRIDGEPEER", "__FROM_DID"])),
                        ("Value", r.choice(["ANSWER", "PJSIP/1001-00000002", ""]))]
        elif kind == "Hangup":
            headers += [("Cause", "16"), ("Cause-txt", "Normal Clearing")]
        elif kind == "RTCPSent":
            headers += [("To", "127.0.0.1:10012"), ("From", "127.0.0.1:10013"),
                        ("SSRC", "0x6b8b4567"), ("PT", "200(SR)"), ("ReportCount", "1"),
                        ("SentNTP", "1795693513.123456"), ("SentRTP", "160"),
                        ("SentPackets", str(r.randrange(1000))), ("SentOctets", "27520"),
                        ("Report0SourceSSRC", "0x327b23c6"), ("Report0FractionLost", "0"),
                        ("Report0CumulativeLost", "0"), ("Report0HighestSequence", "4242"),
                        ("Report0SequenceNumberCycles", "0"), ("Report0IAJitter", "12"),
                        ("Report0LSR", "0"), ("Report0DLSR", "0.0000")]
        if kind in ("Hangup", "Newchannel") and r.random() < 0.15:
            headers += [("ChanVariable", "FROM_DID=6500"),
                        ("ChanVariable", "SIPURI=sip:1001@127.0.0.1:5062")]
            self.chanvar += 1
        elif kind in ("Hangup", "Newchannel", "Newstate") and r.random() < 0.16:
            headers += self.chan_variables(r.randrange(15, 70))
            self.chanvar += 1
        self.emit(kind, headers)

    def chan_variables(self, n: int) -> list[tuple[str, str | bytes]]:
        """A ``channelvars=`` list as a UCM dialplan sets it: ids, URIs, JSON blobs."""
        r = self.r
        out: list[tuple[str, str | bytes]] = []
        for i in range(n):
            name = r.choice(_VARS)
            size = r.choice((8, 16, 32, 64, 120))
            value = "".join(r.choices(_VALUE_CHARS, k=size))
            out.append(("ChanVariable", f"{name}_{i}={value}"))
        return out

    def response(self) -> None:
        r = self.r
        aid = f"amicheck-{r.randrange(1_000_000)}"
        choice = r.random()
        if choice < 0.6:
            self.emit("Response", [("Response", "Success"), ("ActionID", aid), ("Ping", "Pong"),
                                   ("Timestamp", f"1795693328.{r.randrange(999999):06d}")])
        elif choice < 0.8:
            self.emit("Response", [("Response", "Success"), ("ActionID", aid),
                                   ("Message", "Originate successfully queued")])
        else:
            self.emit("Response", [("Response", "Error"), ("ActionID", aid),
                                   ("Message", "Permission denied")])

    def event_list(self) -> None:
        r = self.r
        aid = f"list-{r.randrange(1_000_000)}"
        action, item, done, message = r.choice([
            ("Status", "Status", "StatusComplete", "Channel status will follow"),
            ("CoreShowChannels", "CoreShowChannel", "CoreShowChannelsComplete",
             "Channels will follow"),
            ("QueueStatus", "QueueMember", "QueueStatusComplete", "Queue status will follow"),
        ])
        self.emit("Response", [("Response", "Success"), ("ActionID", aid),
                               ("EventList", r.choice(["start", "Start"])),
                               ("Message", message)])
        n = r.randrange(1, 8)
        for _ in range(n):
            self.emit(item, [("Event", item), ("ActionID", aid)] + self.channel_headers()
                      + [("Application", "Dial"), ("ApplicationData", "PJSIP/1001"),
                         ("Duration", f"00:00:{r.randrange(60):02d}"),
                         ("BridgeId", "7f1c9a4e-2b1d-4d3a-9c2e-51f0e1a2b3c4")])
        self.emit(done, [("Event", done), ("ActionID", aid), ("EventList", "Complete"),
                         ("ListItems", str(n))])
        self.list_packets += n + 2

    def follows(self, lines: int) -> None:
        r = self.r
        aid = f"cmd-{r.randrange(1_000_000)}"
        body = ["Channel              Location             State   Application(Data)"]
        for i in range(lines):
            body.append(f"PJSIP/{1000 + i % 6}-{i:08x} {1000 + i % 6}@from-internal:1  "
                        f"{r.choice(['Up', 'Ring', 'Down'])}      Dial(PJSIP/1001,30,tT)")
            if r.random() < 0.05:
                body.append("")
        body.append(f"{lines} active channels")
        text = "\n".join(body) + "\n"
        self.parts.append(b"Response: Follows\r\nPrivilege: Command\r\nActionID: "
                          + aid.encode() + b"\r\n" + text.encode() + b"--END COMMAND--\r\n\r\n")
        self.packets += 1
        self.kinds["Follows"] = self.kinds.get("Follows", 0) + 1
        self.n_follows += 1

    def output14(self) -> None:
        aid = f"cmd14-{self.r.randrange(1_000_000)}"
        headers: list[tuple[str, str | bytes]] = [
            ("Response", "Success"), ("ActionID", aid), ("Message", "Command output follows")]
        for i in range(self.r.choice((self.r.randrange(3, 20), self.r.randrange(20, 160)))):
            headers.append(("Output", f"PJSIP/{1000 + i % 6}  Not in use  0 of inf"))
        self.emit("Output", headers)


def generate_stream(packets: int = 100_000, seed: int = 13) -> GeneratedStream:
    """A realistic server-to-client byte stream with at least ``packets`` packets."""
    g = _Gen(seed)
    r = g.r
    while g.packets < packets:
        x = r.random()
        if x < 0.80:
            g.event()
        elif x < 0.92:
            g.response()
        elif x < 0.985:
            g.event_list()
        elif x < 0.99:
            g.output14()
        else:
            g.follows(r.randrange(5, 60) if r.random() < 0.5 else r.randrange(60, 400))
    return GeneratedStream(b"".join(g.parts), g.packets, g.kinds, g.n_follows,
                           g.list_packets, g.chanvar)


def big_follows(size: int) -> GeneratedStream:
    g = _Gen(7)
    g.follows(max(1, size // 74))  # a generated output line is about 74 bytes
    return GeneratedStream(b"".join(g.parts), g.packets)


def small_events(size: int) -> GeneratedStream:
    g = _Gen(8)
    total = len(BANNER)
    while total < size:
        g.event()
        total += len(g.parts[-1])
    return GeneratedStream(b"".join(g.parts), g.packets)


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


# =====================================================================================
# Parser drivers: each returns the number of packets it produced
# =====================================================================================
