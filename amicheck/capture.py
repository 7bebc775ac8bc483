"""Packet-level evidence: AMI traffic as pcap files, and pcap files read back as AMI.

The only module that imports scapy (style.md §8); it is itself imported only when ``--ami-pcap``
or ``amicheck pcap`` is used. Writing: a test's transcript frames (already redacted by
:mod:`amicheck.transcript`) become TCP segments with the real addresses and ports and a
synthesised handshake, sequence and acknowledgement numbers and FIN, so Wireshark follows the
stream. Reading: TCP streams are reassembled per direction by sequence number and fed to
:class:`amicheck.protocol.Parser`; the :class:`AMI` layer delegates to the same parser instead of
parsing a second time (scapy's HTTP layer shows what goes wrong with a second parser).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scapy.fields import StrField
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, bind_layers
from scapy.utils import PcapReader, PcapWriter

from amicheck.protocol import Message, Parser

__all__ = [
    "AMI",
    "AMI_PORTS",
    "AmiPacket",
    "bind_ami_port",
    "frames_of",
    "redact_payload",
    "build_packets",
    "write_pcap",
    "read_ami",
    "format_ami",
]

#: Ports dissected as AMI: stock Asterisk, the UCM's AMI port and its TLS port (decrypted).
AMI_PORTS: tuple[int, ...] = (5038, 7777, 5039)
BANNER_PREFIX = b"Asterisk Call Manager/"
MSS = 1460
_MASK = b"********"
_MAC_CLIENT, _MAC_SERVER = "02:00:00:00:00:01", "02:00:00:00:00:02"  # locally administered
_SECRET_LINE = re.compile(rb"(?im)^((?:secret|key)[ \t]*:)[^\r\n]*")


class AMI(Packet):  # scapy is untyped: Packet is Any here
    """A TCP payload on an AMI port; ``messages()`` parses it with amicheck's Parser.

    One segment may hold part of a message; complete messages need reassembly
    (:func:`read_ami`). The layer keeps the bytes as they are and never repairs them.
    """

    name = "AMI"
    fields_desc = [StrField("data", b"")]

    def messages(self) -> list[Message]:
        data: bytes = self.data
        parser = Parser(banner=data.startswith(BANNER_PREFIX))
        return parser.feed(data)

    def mysummary(self) -> str:
        names = [f"{m.kind.value}:{m.name}" for m in self.messages()]
        data: bytes = self.data
        if data.startswith(BANNER_PREFIX):
            names.insert(0, "banner")
        return "AMI " + (" ".join(names) if names else f"{len(data)} bytes (partial)")


AmiPacket = AMI


def bind_ami_port(port: int) -> None:
    """Dissect TCP traffic to or from ``port`` as :class:`AMI` (idempotent)."""
    bind_layers(TCP, AMI, sport=port)
    bind_layers(TCP, AMI, dport=port)


for _p in AMI_PORTS:
    bind_ami_port(_p)


# --- writing ---------------------------------------------------------------------------------


def frames_of(client: Any) -> list[Any]:
    """The transcript frames of an AmiClient (or anything with ``.transcript.frames``)."""
    transcript = getattr(client, "transcript", None)
    return list(getattr(transcript, "frames", ()) or ())


def redact_payload(data: bytes, secrets: Iterable[str] = ()) -> bytes:
    """Mask ``Secret:``/``Key:`` values and every known secret (defence in depth)."""
    data = _SECRET_LINE.sub(lambda m: m.group(1) + b" " + _MASK, data)
    for s in sorted({s for s in secrets if s}, key=len, reverse=True):
        data = data.replace(s.encode("utf-8"), _MASK)
    return data


def _direction_is_sent(frame: Any) -> bool:
    d = getattr(frame, "direction", "")
    return str(getattr(d, "value", d)) == "sent"


@dataclass
class _Conn:
    client: tuple[str, int]
    server: tuple[str, int]
    seq_c: int
    seq_s: int
    first: float
    last: float = 0.0
    frames: list[tuple[float, bool, bytes]] = field(default_factory=list)


def _ip(src: str, dst: str) -> Packet:
    if ipaddress.ip_address(src).version == 6:
        return IPv6(src=src, dst=dst)
    return IP(src=src, dst=dst, flags="DF")


def _isn(a: tuple[str, int], b: tuple[str, int]) -> int:
    return (hash((a, b)) & 0x7FFFFFFF) | 0x1000


def build_packets(frames: Sequence[Any], secrets: Iterable[str] = ()) -> list[Packet]:
    """TCP packets for transcript frames, one synthesised connection per (local, remote)."""
    secret_list = list(secrets)
    conns: dict[tuple[tuple[str, int], tuple[str, int]], _Conn] = {}
    for f in sorted(frames, key=lambda f: float(f.time)):
        local = (str(f.local[0]) or "127.0.0.1", int(f.local[1]))
        remote = (str(f.remote[0]) or "127.0.0.1", int(f.remote[1]))
        key = (local, remote)
        conn = conns.get(key)
        if conn is None:
            conn = conns[key] = _Conn(
                local, remote, _isn(local, remote), _isn(remote, local), float(f.time)
            )
        data = redact_payload(bytes(f.data), secret_list)
        conn.frames.append((float(f.time), _direction_is_sent(f), data))
        conn.last = float(f.time)

    out: list[tuple[float, int, Packet]] = []
    order = 0

    def emit(t: float, pkt: Packet) -> None:
        nonlocal order
        pkt.time = t
        out.append((t, order, pkt))
        order += 1

    for conn in conns.values():
        c, s = conn.client, conn.server
        to_s = Ether(src=_MAC_CLIENT, dst=_MAC_SERVER) / _ip(c[0], s[0])
        to_c = Ether(src=_MAC_SERVER, dst=_MAC_CLIENT) / _ip(s[0], c[0])
        t0 = conn.first - 0.000003
        cs, ss = conn.seq_c, conn.seq_s
        emit(t0, to_s / TCP(sport=c[1], dport=s[1], flags="S", seq=cs))
        emit(t0 + 1e-6, to_c / TCP(sport=s[1], dport=c[1], flags="SA", seq=ss, ack=cs + 1))
        emit(t0 + 2e-6, to_s / TCP(sport=c[1], dport=s[1], flags="A", seq=cs + 1, ack=ss + 1))
        cs, ss = cs + 1, ss + 1
        for t, sent, data in conn.frames:
            for i in range(0, max(len(data), 1), MSS):
                chunk = data[i : i + MSS]
                if not chunk:
                    break
                if sent:
                    emit(t, to_s / TCP(sport=c[1], dport=s[1], flags="PA", seq=cs, ack=ss) / chunk)
                    cs += len(chunk)
                else:
                    emit(t, to_c / TCP(sport=s[1], dport=c[1], flags="PA", seq=ss, ack=cs) / chunk)
                    ss += len(chunk)
        t1 = conn.last + 0.000001
        emit(t1, to_s / TCP(sport=c[1], dport=s[1], flags="FA", seq=cs, ack=ss))
        emit(t1 + 1e-6, to_c / TCP(sport=s[1], dport=c[1], flags="FA", seq=ss, ack=cs + 1))
        emit(t1 + 2e-6, to_s / TCP(sport=c[1], dport=s[1], flags="A", seq=cs + 1, ack=ss + 1))
    out.sort(key=lambda x: (x[0], x[1]))
    return [p for _, _, p in out]


def write_pcap(path: str | Path, frames: Sequence[Any], secrets: Iterable[str] = ()) -> Path:
    """Write ``frames`` (transcript frames) as a pcap Wireshark opens; returns the path."""
    target = Path(path)
    packets = build_packets(frames, secrets)
    writer = PcapWriter(str(target), linktype=1, sync=False)
    try:
        for pkt in packets:
            writer.write(pkt)
    finally:
        writer.close()
    return target


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AmiRecord:
    """One AMI message (or banner) seen in a capture."""

    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    message: Message | None
    banner: str | None = None


@dataclass
class _Half:
    """One direction of one TCP connection, reassembled by sequence number."""

    next_seq: int | None = None
    pending: dict[int, bytes] = field(default_factory=dict)
    parser: Parser | None = None
    started: bool = False

    def add(self, seq: int, payload: bytes) -> bytes:
        if self.next_seq is None:
            self.next_seq = seq
        self.pending.setdefault(seq, payload)
        out = bytearray()
        while True:
            nxt = self.next_seq
            match = None
            for s, p in self.pending.items():
                # a segment covering next_seq (also retransmissions overlapping it)
                if (s - nxt) % (1 << 32) == 0 or 0 < (nxt - s) % (1 << 32) < len(p):
                    match = s
                    break
            if match is None:
                break
            p = self.pending.pop(match)
            skip = (nxt - match) % (1 << 32)
            out += p[skip:]
            self.next_seq = (nxt + len(p) - skip) % (1 << 32)
            # drop segments entirely behind the new next_seq (pure retransmissions)
            for s in [
                s
                for s, q in self.pending.items()
                if 0 < (self.next_seq - s) % (1 << 32) <= len(q)
                and (self.next_seq - s) % (1 << 32) < (1 << 31)
            ]:
                del self.pending[s]
        return bytes(out)


def _looks_like_ami_client(data: bytes) -> bool:
    head = data.lstrip()[:64].lower()
    return head.startswith((b"action:", b"actionid:"))


def read_ami(path: str | Path, ports: Iterable[int] = ()) -> Iterator[AmiRecord]:
    """Yield the AMI messages of a capture, in capture order, TCP streams reassembled.

    A direction counts as AMI when either port is an AMI port (``AMI_PORTS`` plus ``ports``),
    when the server side starts with the ``Asterisk Call Manager/`` banner, or when the client
    side starts with an ``Action:`` header, so captures on ephemeral ports are read too.
    """
    known = set(AMI_PORTS) | set(ports)
    halves: dict[tuple[str, int, str, int], _Half] = {}
    ami_conns: set[frozenset[tuple[str, int]]] = set()
    with PcapReader(str(path)) as reader:
        for pkt in reader:
            if TCP not in pkt:
                continue
            ip = pkt[IP] if IP in pkt else (pkt[IPv6] if IPv6 in pkt else None)
            if ip is None:
                continue
            tcp = pkt[TCP]
            payload = bytes(tcp.payload)
            src, dst = (str(ip.src), int(tcp.sport)), (str(ip.dst), int(tcp.dport))
            key = (src[0], src[1], dst[0], dst[1])
            flags = int(tcp.flags)
            if flags & 0x02:  # SYN: a new connection; data starts at seq + 1
                halves[key] = _Half(next_seq=(int(tcp.seq) + 1) % (1 << 32))
                continue
            if not payload:
                continue
            half = halves.setdefault(key, _Half())
            data = half.add(int(tcp.seq), payload)
            if not data:
                continue
            conn = frozenset((src, dst))
            if conn not in ami_conns:
                if (
                    src[1] in known
                    or dst[1] in known
                    or data.startswith(BANNER_PREFIX)
                    or _looks_like_ami_client(data)
                ):
                    ami_conns.add(conn)
                else:
                    continue
            t = float(pkt.time)
            if half.parser is None:
                half.parser = Parser(banner=data.startswith(BANNER_PREFIX))
            had_banner = half.parser.banner
            messages = half.parser.feed(data)
            if half.parser.banner and not had_banner:
                yield AmiRecord(t, src, dst, None, banner=half.parser.banner)
            for m in messages:
                yield AmiRecord(t, src, dst, m)


def _addr(a: tuple[str, int]) -> str:
    return f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}"


def format_ami(records: Iterable[AmiRecord], *, headers: bool = True) -> Iterator[str]:
    """Text lines for :func:`read_ami` records (``Secret``/``Key`` values masked)."""
    start: float | None = None
    for r in records:
        if start is None:
            start = r.time
        head = f"{r.time - start:10.6f}  {_addr(r.src)} -> {_addr(r.dst)}  "
        if r.message is None:
            yield head + f"banner {r.banner}"
            continue
        m = r.message
        summary = f"{m.kind.value} {m.name or ''}".rstrip()
        if m.action_id:
            summary += f" (ActionID {m.action_id})"
        yield head + summary
        if headers:
            for k, v in m:
                if k.lower() in ("secret", "key"):
                    v = _MASK.decode()
                yield f"    {k}: {v}"
            if m.text:
                for line in m.text.splitlines():
                    yield f"    | {line}"
