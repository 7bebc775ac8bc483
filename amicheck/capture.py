"""Packet-level evidence: AMI traffic as pcap files, and pcap files read back as AMI.

With :mod:`amicheck.pcapread`, the only modules that import scapy (style.md §8); they are
imported only when ``--ami-pcap`` or ``amicheck pcap`` is used. Writing (here): a test's
transcript frames (already redacted by :mod:`amicheck.transcript`) become TCP segments with
the real addresses and ports and a synthesised handshake, sequence and acknowledgement
numbers and FIN, so Wireshark follows the stream. Reading (:mod:`amicheck.pcapread`, whose
names are importable from here too): TCP streams are reassembled per direction by sequence
number and fed to :class:`amicheck.protocol.Parser`; the :class:`AMI` layer delegates to the
same parser instead of parsing a second time (scapy's HTTP layer shows what goes wrong with a
second parser).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scapy.fields import StrField
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, bind_layers
from scapy.utils import PcapWriter

from amicheck.pcapread import (
    AMI_PORTS,
    BANNER_PREFIX,
    MAX_CAPTURE_BYTES,
    READ_ERRORS,
    AmiRecord,
    CaptureFileError,
    check_capture_path,
    format_ami,
    read_ami,
)
from amicheck.protocol import Message, Parser
from amicheck.redaction import MASK, scrub_bytes

__all__ = [
    "AMI",
    "AMI_PORTS",
    "AmiPacket",
    "AmiRecord",
    "bind_ami_port",
    "frames_of",
    "redact_payload",
    "build_packets",
    "write_pcap",
    "read_ami",
    "format_ami",
    "CaptureFileError",
    "check_capture_path",
    "MAX_CAPTURE_BYTES",
    "READ_ERRORS",
]

MSS = 1460
_MASK = MASK.encode("ascii")
_MAC_CLIENT, _MAC_SERVER = "02:00:00:00:00:01", "02:00:00:00:00:02"  # locally administered
_SECRET_LINE = re.compile(rb"(?im)^((?:secret|key|expectedresponse)[ \t]*:)[^\r\n]*")
# a message (up to a blank line) with Event: ChallengeResponseFailed, and its Response lines
_CRF_MESSAGE = re.compile(
    rb"(?ims)(?:^|(?<=\n))(?:(?!\r?\n\r?\n).)*?^event[ \t]*:[ \t]*challengeresponsefailed"
    rb"[ \t]*\r?$.*?(?:\r?\n\r?\n|\Z)")
_CRF_RESPONSE = re.compile(rb"(?im)^(response[ \t]*:)[^\r\n]*")


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


def _mask_crf_response(m: re.Match[bytes]) -> bytes:
    return _CRF_RESPONSE.sub(lambda r: r.group(1) + b" " + _MASK, m.group(0))


def redact_payload(data: bytes, secrets: Iterable[str] = ()) -> bytes:
    """Mask secret header values and every secret form and derived key (defence in depth:
    transcript frames arrive redacted already).

    ``Secret:``/``Key:``/``ExpectedResponse:`` values anywhere, ``Response:`` inside a
    ChallengeResponseFailed event, then :func:`amicheck.redaction.scrub_bytes`.
    """
    data = _SECRET_LINE.sub(lambda m: m.group(1) + b" " + _MASK, data)
    if b"challengeresponsefailed" in data.lower():
        data = _CRF_MESSAGE.sub(_mask_crf_response, data)
    return scrub_bytes(data, secrets)


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
