"""Benchmarks: ``amicheck bench parser|client|sim [--quick]`` (also ``python -m amicheck.bench``).

Everything runs in ONE process, each number next to its floor measured in the same run, so
the ratios mean something on any machine. Tables go to stdout; nothing is asserted about time.

parser
    A deterministic server-to-client stream (>= 100,000 packets: events with repeated
    ``ChanVariable`` headers and non-ASCII caller names, some Latin-1; responses; EventLists;
    13.x ``Response: Follows`` output; 14+ ``Output:`` lines). Median of several rounds of:

    - the *split floor*: ``split("\\r\\n\\r\\n")``, ``split("\\r\\n")``, ``partition(": ")`` on the
      whole decoded stream (no streaming, no checks);
    - ``amicheck.protocol.Parser.feed`` with 4096- and 1460-byte chunks;
    - when importable, the parsing code of the common Python AMI libraries on the same
      4096-byte chunks, driven exactly as their socket loop would drive it:

      * panoramisk: ``AMIProtocol.data_received(chunk)`` (its own buffer, ``split`` on
        ``\\r\\n\\r\\n`` and ``Message.from_line``); ``handle_message`` is overridden only to
        count messages instead of routing them to futures;
      * asterisk-ami (``asterisk.ami``): ``AMIClient.listen()`` with ``buffer_size`` = chunk
        size and a stand-in ``_socket`` whose ``recv`` returns the chunks; its ``_next_pack``
        regex splitting and ``Response.read``/``Event.read`` run unchanged, listeners count;
      * pyst2 (``asterisk.manager``): ``Manager._receive_data()`` reading lines from an
        ``io.BufferedReader`` over the chunks, then ``ManagerMsg(lines)`` per message as its
        ``message_loop`` does. (pyst2 itself reads an unbuffered ``makefile``, i.e. one
        ``recv`` per byte; the buffered reader is kinder to it: we time its parsing.)

    Then linearity (one 2 MB command output vs 2 MB of small events, 1460-byte chunks) and
    memory (100 MB of an endless header block in 64 KB chunks: the Parser's buffer stays under
    ``max_message_size``).

client
    A raw-socket Ping server thread in this process. Sequential Ping latency of AmiClient vs a
    raw-socket client (send bytes, recv until the blank line); pipelined Pings/s (a window of
    outstanding requests) of AmiClient vs the raw floor.

sim
    amicheck's Simulator vs a minimal asyncio Ping server (same event-loop-in-a-thread setup):
    1,000 concurrent logged-in sessions, pipelined Ping throughput, sequential Ping p50.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["main", "generate_stream", "GeneratedStream", "ParserResult"]

BANNER = b"Asterisk Call Manager/2.7.0\r\n"
PING_RESPONSE = b"Response: Success\r\nActionID: %s\r\nPing: Pong\r\nTimestamp: %s\r\n\r\n"


def _out(line: str = "") -> None:
    print(line, flush=True)


# =====================================================================================
# The stream
# =====================================================================================

_NAMES = ["Alice Martin", "Bob Smith", "José Müller", "Zoë Ångström", "Łukasz Żółć",
          "Ελένη Παππά", "李小龙", "Søren Kierkegaard", "Ana Pérez", "Dmitri Иванов",
          "Customer Care", "<unknown>"]
_LATIN1_NAMES = [b"Fran\xe7ois H\xe9bert", b"J\xfcrgen M\xfcller"]
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
        self.emit(kind, headers)

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
        for i in range(self.r.randrange(3, 20)):
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
        elif x < 0.997:
            g.output14()
        else:
            g.follows(r.randrange(5, 60))
    return GeneratedStream(b"".join(g.parts), g.packets, g.kinds, g.n_follows,
                           g.list_packets, g.chanvar)


def _big_follows(size: int) -> GeneratedStream:
    g = _Gen(7)
    g.follows(max(1, size // 74))  # a generated output line is about 74 bytes
    return GeneratedStream(b"".join(g.parts), g.packets)


def _small_events(size: int) -> GeneratedStream:
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

@dataclass
class Driver:
    name: str
    run: Callable[[list[bytes]], int]
    note: str = ""
    errors: list[str] = field(default_factory=list)


def _amicheck_driver(max_message_size: int | None = None) -> Driver:
    from amicheck.protocol import Parser

    def run(chunks: list[bytes]) -> int:
        p = Parser() if max_message_size is None else Parser(max_message_size=max_message_size)
        n = 0
        feed = p.feed
        for c in chunks:
            n += len(feed(c))
        return n
    return Driver("amicheck Parser", run)


def split_floor(data: bytes) -> int:
    """The floor: decode, split on blank lines, split lines, partition. No streaming."""
    text = data.decode("utf-8", "surrogateescape")
    _, _, rest = text.partition("\r\n")  # the banner
    n = 0
    for block in rest.split("\r\n\r\n"):
        if block:
            headers = [line.partition(": ") for line in block.split("\r\n")]
            n += 1 if headers else 0
    return n


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return "?"


def _panoramisk_driver() -> Driver | None:
    try:
        from panoramisk.ami_protocol import AMIProtocol
    except Exception:
        return None

    class _Transport:
        def write(self, data: bytes) -> None:  # pragma: no cover - never called
            pass

        def close(self) -> None:
            pass

    class _Factory:
        save_stream = None

        def dispatch(self, message: Any) -> None:  # pragma: no cover - routing not used
            pass

    class Counting(AMIProtocol):  # type: ignore[misc]
        count = 0

        def handle_message(self, message: Any) -> None:
            self.count += 1

    def run(chunks: list[bytes]) -> int:
        proto = Counting()
        proto.connection_made(_Transport())
        proto.factory = _Factory()
        for c in chunks:
            proto.data_received(c)
        return proto.count
    return Driver(f"panoramisk {_version('panoramisk')}", run,
                  "decodes each read as ASCII, dropping non-ASCII bytes")


class _ChunkSocket:
    def __init__(self, chunks: list[bytes]) -> None:
        self._it = iter(chunks)

    def recv(self, size: int) -> bytes:
        return next(self._it, b"")

    def close(self) -> None:
        pass


def _asterisk_ami_driver(chunk_size: int) -> Driver | None:
    try:
        from asterisk.ami.client import AMIClient
    except Exception:
        return None

    def run(chunks: list[bytes]) -> int:
        counter = [0]

        def count(**_kw: Any) -> None:
            counter[0] += 1

        client = AMIClient(buffer_size=chunk_size)
        client.add_listener(on_response=count, on_event=count, on_unknown=count)
        client._socket = _ChunkSocket(chunks)
        client.finished = threading.Event()
        client.listen()
        return counter[0]
    return Driver(f"asterisk-ami {_version('asterisk-ami')}", run)


class _ChunkRaw(io.RawIOBase):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = deque(chunks)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if not self._chunks:
            return 0
        c = self._chunks.popleft()
        n = len(b)
        if len(c) > n:
            self._chunks.appendleft(c[n:])
            c = c[:n]
        b[:len(c)] = c
        return len(c)


def _pyst2_driver(chunk_size: int) -> Driver | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from asterisk.manager import Manager, ManagerMsg
    except Exception:
        return None
    driver = Driver(f"pyst2 {_version('pyst2')}", lambda c: 0)

    def run(chunks: list[bytes]) -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = Manager()
            m.close = lambda: None  # its __del__ would try to log off
            m._sock = io.BufferedReader(_ChunkRaw(chunks), buffer_size=chunk_size)
            m._running.set()
            m._connected.set()
            m._receive_data()
            m._running.clear()
            q = m._message_queue
            n = 0
            crashes = 0
            while not q.empty():
                lines = q.get_nowait()
                if not lines:
                    break
                try:
                    ManagerMsg(lines)
                except Exception:
                    crashes += 1
                    continue
                n += 1
        if crashes:
            err = f"{crashes} messages raised in ManagerMsg"
            if err not in driver.errors:
                driver.errors.append(err)
        return n
    driver.run = run
    driver.note = ("merges lists whose Message says 'status will follow'; ChanVariable "
                   "headers raise AttributeError (dict.has_key) on Python 3")
    return driver


def _libraries(chunk_size: int) -> list[Driver]:
    out = [d for d in (_panoramisk_driver(), _asterisk_ami_driver(chunk_size),
                       _pyst2_driver(chunk_size)) if d is not None]
    return out


def _median_time(fn: Callable[[], int], rounds: int) -> tuple[float, int]:
    times = []
    result = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


@dataclass
class ParserResult:
    name: str
    chunk: str
    seconds: float
    packets: int
    note: str = ""


def _table(rows: list[ParserResult], size: int, floor: float, expected: int) -> None:
    _out(f"{'parser':<34}{'chunk':>7}{'time s':>9}{'packets/s':>12}{'MB/s':>8}"
         f"{'x floor':>9}{'packets':>9}")
    for r in rows:
        pps = r.packets / r.seconds if r.seconds else 0.0
        mbs = size / r.seconds / 1e6 if r.seconds else 0.0
        mark = "" if r.packets == expected else "  (!)"
        _out(f"{r.name:<34}{r.chunk:>7}{r.seconds:>9.3f}{pps:>12,.0f}{mbs:>8.1f}"
             f"{r.seconds / floor:>9.2f}{r.packets:>9}{mark}")


def bench_parser(quick: bool = False, rounds: int | None = None, seed: int = 13) -> int:
    """The parser benchmark; returns 0 if amicheck's Parser counted every packet."""
    packets = 3_000 if quick else 100_000
    rounds = rounds or (1 if quick else 5)
    lib_rounds = 1 if quick else 3
    t0 = time.perf_counter()
    stream = generate_stream(packets, seed)
    data = stream.data
    _out(f"== amicheck bench parser: {stream.packets:,} packets, {len(data) / 1e6:.1f} MB "
         f"(follows {stream.follows}, list packets {stream.list_packets}, "
         f"ChanVariable events {stream.chanvariable_packets}); median of {rounds} round(s) "
         f"({lib_rounds} for libraries); Python {platform.python_version()}; "
         f"generated in {time.perf_counter() - t0:.1f}s")
    rows: list[ParserResult] = []
    floor_t, floor_n = _median_time(lambda: split_floor(data), rounds)
    rows.append(ParserResult("split floor (whole, no checks)", "all", floor_t, floor_n))
    ami = _amicheck_driver()
    ok = floor_n == stream.packets
    for size in (4096, 1460):
        chunks = chunked(data, size)
        t, n = _median_time(lambda chunks=chunks: ami.run(chunks), rounds)  # type: ignore[misc]
        rows.append(ParserResult(ami.name, str(size), t, n))
        ok = ok and n == stream.packets
    libs = _libraries(4096)
    chunks4k = chunked(data, 4096)
    for lib in libs:
        try:
            t, n = _median_time(lambda lib=lib: lib.run(chunks4k), lib_rounds)  # type: ignore[misc]
        except Exception as exc:  # a library crashing is a result, not our failure
            lib.errors.append(f"crashed: {type(exc).__name__}: {exc}")
            continue
        rows.append(ParserResult(lib.name, "4096", t, n, lib.note))
    _table(rows, len(data), floor_t, stream.packets)
    best = min(r.seconds for r in rows if r.name == ami.name)
    _out(f"amicheck Parser: {best / floor_t:.2f}x the split floor (target <= 1.5x)")
    bad = [r for r in rows if r.packets != stream.packets]
    if not bad:
        _out(f"packet counts: every parser produced {stream.packets:,} packets")
    else:
        _out(f"packet counts: expected {stream.packets:,}; these differ:")
        for r in bad:
            _out(f"  {r.name}: {r.packets:,} ({r.packets - stream.packets:+,})"
                 + (f" - {r.note}" if r.note else ""))
    for lib in libs:
        for e in lib.errors:
            _out(f"  {lib.name}: {e}")
    _linearity(quick, libs_for=_libraries(1460))
    _memory(quick)
    return 0 if ok else 1


def _linearity(quick: bool, libs_for: list[Driver]) -> None:
    size = 256 * 1024 if quick else 2 * 1024 * 1024
    big = _big_follows(size)
    small = _small_events(size)
    big_chunks = chunked(big.data, 1460)
    small_chunks = chunked(small.data, 1460)
    _out(f"\n== linearity: one {len(big.data) / 1e6:.1f} MB command output vs "
         f"{len(small.data) / 1e6:.1f} MB of {small.packets:,} small events, 1460-byte chunks")
    _out(f"{'parser':<34}{'big s':>9}{'small s':>9}{'big/small':>11}{'packets':>10}")
    for d in [_amicheck_driver()] + libs_for:
        try:
            tb, nb = _median_time(lambda d=d: d.run(big_chunks), 1)  # type: ignore[misc]
            ts, ns = _median_time(lambda d=d: d.run(small_chunks), 1)  # type: ignore[misc]
        except Exception as exc:
            _out(f"{d.name:<34} crashed: {type(exc).__name__}: {exc}")
            continue
        _out(f"{d.name:<34}{tb:>9.3f}{ts:>9.3f}{tb / ts:>11.2f}{f'{nb}/{ns}':>10}")


def _memory(quick: bool) -> None:
    from amicheck.protocol import Parser

    total = 4 * 1024 * 1024 if quick else 100 * 1024 * 1024
    bound = 1024 * 1024 if quick else 8 * 1024 * 1024
    chunk = (b"X-Junk: " + b"a" * 120 + b"\r\n") * (65536 // 130)
    p = Parser(max_message_size=bound)
    p.feed(BANNER + b"Event: Endless\r\n")
    fed = 0
    peak = 0
    msgs = 0
    t0 = time.perf_counter()
    while fed < total:
        msgs += len(p.feed(chunk))
        fed += len(chunk)
        peak = max(peak, p.buffered)
    dt = time.perf_counter() - t0
    verdict = "under" if peak <= bound else "OVER"
    _out(f"\n== memory: {fed / 2**20:.0f} MiB of one endless header block in 64 KB chunks: "
         f"peak parser buffer {peak:,} bytes, {verdict} max_message_size "
         f"{bound:,}; {msgs} messages, {p.violation_count} violation(s) "
         f"({', '.join(sorted({v.rule for v in p.violations})) or 'none'}); {dt:.2f}s")


# =====================================================================================
# Client benchmark: a raw-socket Ping server thread
# =====================================================================================

_AID = re.compile(rb"ActionID: ([^\r\n]*)")


class _PingServer:
    """A raw-socket Ping server in a CHILD process.

    In the client's own process its thread would fight the client for the GIL, and the
    round trip would then measure thread hand-offs (bimodal 20/80 us here) instead of the
    client's overhead; a separate process leaves both clients the same, quiet peer.
    """

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from amicheck.bench import _ping_server_main; "
             "_ping_server_main()"],
            stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.proc.kill()
            raise RuntimeError(f"Ping server child did not start: {line!r}")
        self.port = int(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.proc.kill()


def _ping_server_main() -> None:
    """Child process body: serve Pings on an ephemeral loopback port, print the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    print(sock.getsockname()[1], flush=True)

    def exit_with_parent() -> None:  # stdin closes when the parent goes, even if it crashed
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=exit_with_parent, daemon=True).start()
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=_serve_pings, args=(conn,), daemon=True).start()


def _serve_pings(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ts = b"1795693328.794403"
    try:
        conn.sendall(BANNER)
        buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                break
            buf += data
            end = buf.rfind(b"\r\n\r\n")
            if end < 0:
                continue
            block, buf = buf[:end + 4], buf[end + 4:]
            conn.sendall(b"".join(PING_RESPONSE % (aid, ts) for aid in _AID.findall(block)))
    except OSError:
        pass
    finally:
        conn.close()


class _RawClient:
    """The floor: send the Ping bytes, recv until the blank line."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        while b"\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        self.buf = self.buf[self.buf.index(b"\n") + 1:]
        self.n = 0

    def login(self, user: str, secret: str) -> None:
        self.sock.sendall(f"Action: Login\r\nActionID: l\r\nUsername: {user}\r\n"
                          f"Secret: {secret}\r\nEvents: off\r\n\r\n".encode())
        self._until_blank()

    def _until_blank(self) -> bytes:
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed")
            self.buf += data
        msg, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return msg

    def ping(self) -> bytes:
        self.n += 1
        self.sock.sendall(b"Action: Ping\r\nActionID: %d\r\n\r\n" % self.n)
        return self._until_blank()

    def pipelined(self, count: int, window: int) -> int:
        """Keep ``window`` Pings in flight; returns the responses counted."""
        sent = got = 0
        pending = b""
        sock = self.sock
        while got < count:
            burst = min(window - (sent - got), count - sent)
            if burst > 0:
                sock.sendall(b"".join(b"Action: Ping\r\nActionID: %d\r\n\r\n" % (sent + i)
                                      for i in range(burst)))
                sent += burst
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("server closed")
            pending += data
            n = pending.count(b"\r\n\r\n")
            if n:
                got += n
                pending = pending[pending.rfind(b"\r\n\r\n") + 4:]
        return got

    def close(self) -> None:
        self.sock.close()


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _client_pipelined(client: Any, count: int, window: int) -> float:
    """Pings/s through AmiClient with ``window`` requests in flight."""
    t0 = time.perf_counter()
    inflight: deque[str] = deque()
    sent = 0
    while sent < min(window, count):
        inflight.append(client.send("Ping"))
        sent += 1
    while inflight:
        client.wait_response(inflight.popleft())
        if sent < count:
            inflight.append(client.send("Ping"))
            sent += 1
    return count / (time.perf_counter() - t0)


def _raw_pipelined(raw: _RawClient, count: int, window: int) -> float:
    t0 = time.perf_counter()
    raw.pipelined(count, window)
    return count / (time.perf_counter() - t0)


def _ping_rows(host: str, port: int, n_seq: int, n_pipe: int, window: int,
               login: tuple[str, str] | None = None) -> dict[str, Any]:
    from amicheck.client import AmiClient

    raw = _RawClient(port, host)
    if login:
        raw.login(*login)
    client = AmiClient.connect(host, port, timeout=10)
    bare = AmiClient.connect(host, port, timeout=10, record=False)
    if login:
        client.login(*login, events=False)
        bare.login(*login, events=False)
    try:
        for _ in range(min(200, n_seq)):  # warm up
            raw.ping()
            client.request("Ping")
            bare.request("Ping")
        res: dict[str, Any] = {}
        # Interleave ping by ping: wake-up latency here is bimodal (about 20 or 70 us,
        # depending on which core the peer runs and how deeply it idled), and it shifts
        # within milliseconds; only adjacent samples see the same machine.
        lat_raw: list[float] = []
        lat_cli: list[float] = []
        lat_bare: list[float] = []
        clock = time.perf_counter
        cli_ping = client.request
        bare_ping = bare.request
        for _ in range(n_seq):
            t0 = clock()
            raw.ping()
            t1 = clock()
            cli_ping("Ping")
            t2 = clock()
            bare_ping("Ping")
            t3 = clock()
            lat_raw.append(t1 - t0)
            lat_cli.append(t2 - t1)
            lat_bare.append(t3 - t2)
        res["seq"] = (lat_raw, lat_cli, lat_bare)
        # CPU time of this thread per request: what the client itself costs, free of the
        # scheduler's wake-up noise that dominates loopback latency on a shared machine.
        cpu = time.thread_time
        res["cpu"] = []
        for fn in (raw.ping, lambda: cli_ping("Ping"), lambda: bare_ping("Ping")):
            c0 = cpu()
            for _ in range(n_seq):
                fn()
            res["cpu"].append((cpu() - c0) / n_seq)
        res["pipe_raw"] = statistics.median(
            _raw_pipelined(raw, n_pipe, window) for _ in range(3))
        res["pipe_cli"] = statistics.median(
            _client_pipelined(client, n_pipe, window) for _ in range(3))
        res["pipe_bare"] = statistics.median(
            _client_pipelined(bare, n_pipe, window) for _ in range(3))
        return res
    finally:
        raw.close()
        client.close()
        bare.close()


def _print_ping(res: dict[str, Any], floor_name: str) -> tuple[float, float]:
    lat_raw, lat_cli, lat_bare = res["seq"]
    _out(f"{'sequential Ping':<34}{'p10 us':>8}{'p50 us':>8}{'p95 us':>8}{'x p10':>7}"
         f"{'x p50':>7}{'cpu us':>8}{'x cpu':>7}")
    p10_raw, p50_raw = _pct(lat_raw, 0.1), _pct(lat_raw, 0.5)
    cpu_raw = res["cpu"][0]
    for (name, lat), cpu in zip(((floor_name, lat_raw), ("AmiClient (transcript on)", lat_cli),
                                 ("AmiClient (record=False)", lat_bare)), res["cpu"], strict=True):
        p10, p50 = _pct(lat, 0.1), _pct(lat, 0.5)
        _out(f"{name:<34}{p10 * 1e6:>8.1f}{p50 * 1e6:>8.1f}{_pct(lat, 0.95) * 1e6:>8.1f}"
             f"{p10 / p10_raw:>7.2f}{p50 / p50_raw:>7.2f}{cpu * 1e6:>8.1f}{cpu / cpu_raw:>7.2f}")
    _out("  (loopback wake-up latency on a shared 2-core machine is bimodal, ~20 or ~70 us;"
         " p10 is the undisturbed round trip, cpu the client's own time per request)")
    _out(f"{'pipelined Ping':<34}{'per s':>10}{'x floor':>9}")
    for name, key in ((floor_name, "pipe_raw"), ("AmiClient (transcript on)", "pipe_cli"),
                      ("AmiClient (record=False)", "pipe_bare")):
        _out(f"{name:<34}{res[key]:>10,.0f}{res[key] / res['pipe_raw']:>9.2f}")
    return _pct(lat_cli, 0.1) / p10_raw, res["pipe_cli"]


def bench_client(quick: bool = False) -> int:
    n_seq = 500 if quick else 10_000
    n_pipe = 2_000 if quick else 50_000
    window = 200
    server = _PingServer()
    try:
        _out(f"== amicheck bench client: loopback raw-socket Ping server in a child process; "
             f"{n_seq:,} sequential Pings, {n_pipe:,} pipelined ({window} in flight), "
             "median of 3")
        res = _ping_rows("127.0.0.1", server.port, n_seq, n_pipe, window)
        ratio, pps = _print_ping(res, "raw socket floor")
        _out(f"AmiClient sequential p10 = {ratio:.2f}x the raw-socket floor (target <= 1.3x); "
             f"pipelined {pps:,.0f} Pings/s (target >= 10,000/s)")
    finally:
        server.close()
    return 0


# =====================================================================================
# Simulator benchmark: vs a minimal asyncio Ping server
# =====================================================================================

class _AsyncioFloor:
    """A minimal asyncio AMI server: banner, Login accepted, Ping answered. Own loop thread.

    Written the way a minimal asyncio server is usually written (streams API, one
    ``readuntil`` and one ``write`` per message), with no AMI checks at all.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("asyncio floor server did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # the idiomatic minimal asyncio server: one readuntil and one write per message
            writer.write(BANNER)
            try:
                while True:
                    block = await reader.readuntil(b"\r\n\r\n")
                    m = _AID.search(block)
                    aid = m.group(1) if m else b""
                    if b"Action: Login" in block:
                        writer.write(b"Response: Success\r\nActionID: " + aid +
                                     b"\r\nMessage: Authentication accepted\r\n\r\n")
                    else:
                        writer.write(PING_RESPONSE % (aid, b"1795693328.794403"))
                    if writer.transport.get_write_buffer_size() > 65536:
                        await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
                pass
            finally:
                writer.close()

        async def start() -> asyncio.Server:
            return await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)

        server = self.loop.run_until_complete(start())
        self.server = server
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        def stop() -> None:
            self.server.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(stop)
        self.thread.join(10)


def _raise_nofile(need: int) -> str:
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return "unknown"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return str(soft)


def _sessions(host: str, port: int, n: int, login: tuple[str, str]) -> tuple[float, int, float]:
    """Open ``n`` logged-in sessions, then Ping every one; returns (open s, alive, ping s)."""
    from amicheck.client import AmiClient

    clients: list[AmiClient] = []
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            c = AmiClient.connect(host, port, timeout=20, record=False)
            clients.append(c)
            c.login(*login, events=False)
        t_open = time.perf_counter() - t0
        t0 = time.perf_counter()
        ids = [(c, c.send("Ping")) for c in clients]
        alive = 0
        for c, aid in ids:
            try:
                if c.wait_response(aid, 20).ok:
                    alive += 1
            except Exception:
                pass
        return t_open, alive, time.perf_counter() - t0
    finally:
        for c in clients:
            c.close()


def bench_sim(quick: bool = False) -> int:
    try:
        from amicheck.profile import default_profile
        from amicheck.sim import Simulator
    except ImportError as exc:
        _out(f"== amicheck bench sim: simulator not available ({exc})")
        return 1
    n_sessions = 50 if quick else 1_000
    n_seq = 300 if quick else 5_000
    n_pipe = 1_000 if quick else 30_000
    window = 200
    limit = _raise_nofile(2 * n_sessions + 256)
    import dataclasses

    profile = default_profile()
    # TLS off: the benchmark measures AMI over TCP and needs no certificate
    profile = dataclasses.replace(
        profile, settings=dataclasses.replace(profile.settings, tls_enable=False))
    user = next(u for u in profile.users if "all" in u.privileges)
    assert user.secret is not None
    login = (user.username, user.secret)
    _out(f"== amicheck bench sim: Simulator vs a minimal asyncio Ping server, both in this "
         f"process; {n_sessions:,} sessions, {n_seq:,} sequential Pings, {n_pipe:,} pipelined "
         f"({window} in flight); RLIMIT_NOFILE {limit}")
    floor = _AsyncioFloor()
    try:
        with Simulator(profile, host="127.0.0.1", port=0, tls_port=None) as sim:
            rows = []
            for name, host, port in (("asyncio floor", "127.0.0.1", floor.port),
                                     ("amicheck Simulator", sim.host, sim.port)):
                t_open, alive, t_ping = _sessions(host, port, n_sessions, login)
                rows.append((name, t_open, alive, t_ping))
            _out(f"{'concurrent sessions':<24}{'opened+login s':>16}{'alive':>12}"
                 f"{'Ping all s':>12}")
            for name, t_open, alive, t_ping in rows:
                _out(f"{name:<24}{t_open:>16.2f}{f'{alive}/{n_sessions}':>12}{t_ping:>12.3f}")
            res_floor = _ping_rows("127.0.0.1", floor.port, n_seq, n_pipe, window, login)
            res_sim = _ping_rows(sim.host, sim.port, n_seq, n_pipe, window, login)
            sim.check_errors()
    finally:
        floor.close()
    _out(f"{'Ping against':<22}{'raw client':>25}{'AmiClient':>25}")
    _out(f"{'':<22}{'p50 us':>9}{'pipelined/s':>16}{'p50 us':>9}{'pipelined/s':>16}")
    for name, res in (("asyncio floor", res_floor), ("amicheck Simulator", res_sim)):
        _out(f"{name:<22}{_pct(res['seq'][0], 0.5) * 1e6:>9.1f}{res['pipe_raw']:>16,.0f}"
             f"{_pct(res['seq'][1], 0.5) * 1e6:>9.1f}{res['pipe_cli']:>16,.0f}")
    seq_raw = _pct(res_sim["seq"][0], 0.5) / _pct(res_floor["seq"][0], 0.5)
    seq_cli = _pct(res_sim["seq"][1], 0.5) / _pct(res_floor["seq"][1], 0.5)
    pipe_raw = res_sim["pipe_raw"] / res_floor["pipe_raw"]
    pipe_cli = res_sim["pipe_cli"] / res_floor["pipe_cli"]
    _out(f"Simulator: {rows[1][2]}/{n_sessions} sessions held (target all); pipelined "
         f"{pipe_raw:.2f}x the floor with a raw client, {pipe_cli:.2f}x with AmiClient "
         f"(target >= 0.5); sequential p50 {seq_raw:.2f}x / {seq_cli:.2f}x (target <= 2)")
    return 0 if rows[1][2] == n_sessions else 1


# =====================================================================================
# CLI
# =====================================================================================

_BENCHES: dict[str, Callable[[bool], int]] = {
    "parser": lambda quick: bench_parser(quick),
    "client": lambda quick: bench_client(quick),
    "sim": lambda quick: bench_sim(quick),
}


def main(argv: list[str] | None = None) -> int:
    """``amicheck bench parser|client|sim|all [--quick]``; returns the exit status."""
    ap = argparse.ArgumentParser(prog="amicheck bench",
                                 description="Benchmarks of amicheck against in-process floors.")
    ap.add_argument("which", nargs="*", default=["parser"],
                    choices=[*_BENCHES, "all"], metavar="{parser,client,sim,all}",
                    help="which benchmark(s) to run (default: parser)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes, one round: seconds instead of minutes (CI)")
    ap.add_argument("--rounds", type=int, default=None, metavar="N",
                    help="parser: rounds per measurement (median; default 5, quick 1)")
    ap.add_argument("--seed", type=int, default=13, help="parser: stream seed (default 13)")
    args = ap.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        ap.error("--rounds must be at least 1")
    names: Iterable[str] = list(_BENCHES) if "all" in args.which else args.which
    status = 0
    for i, name in enumerate(names):
        if i:
            _out()
        if name == "parser":
            status = max(status, bench_parser(args.quick, args.rounds, args.seed))
        else:
            status = max(status, _BENCHES[name](args.quick))
    return status


if __name__ == "__main__":
    sys.exit(main())
