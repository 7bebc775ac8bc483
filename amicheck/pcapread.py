"""Pcap files read back as AMI: TCP streams reassembled, fed to the protocol Parser.

Split from :mod:`amicheck.capture` (which writes captures and re-exports all of this): a file
is checked before it is opened (:func:`check_capture_path`), its records are decoded with
slices rather than scapy's dissection (:func:`_segments`), each direction of each
connection is reassembled by sequence number (:class:`_Half`) and parsed by
:class:`amicheck.protocol.Parser`, never a second parser. scapy is used only to read the
file format and for link layers the fast path does not know (style.md section 8).
"""

from __future__ import annotations

import heapq
import os
import socket
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scapy.error import Scapy_Exception
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.utils import RawPcapNgReader, RawPcapReader

from amicheck.errors import AmiCheckError
from amicheck.filekind import not_regular
from amicheck.protocol import Message, Parser
from amicheck.protocol.grammar import BANNER_PREFIX as _BANNER_TEXT
from amicheck.redaction import MASK, scrub_text

__all__ = [
    "AMI_PORTS",
    "BANNER_PREFIX",
    "MAX_CAPTURE_BYTES",
    "CaptureFileError",
    "READ_ERRORS",
    "check_capture_path",
    "AmiRecord",
    "read_ami",
    "format_ami",
]

#: Ports dissected as AMI: stock Asterisk, the UCM's AMI port and its TLS port (decrypted).
AMI_PORTS: tuple[int, ...] = (5038, 7777, 5039)
#: How a server's side of an AMI connection starts.
BANNER_PREFIX = _BANNER_TEXT.encode("ascii")
#: Header names whose values ``format_ami`` never shows.
_SECRET_HEADERS = frozenset({"secret", "key", "expectedresponse"})

#: What reading a damaged capture can raise, scapy's own error among them: callers catch
#: this tuple and need not import scapy themselves (style.md section 8).
READ_ERRORS: tuple[type[Exception], ...] = (Scapy_Exception, EOFError, OSError, ValueError)
#: Largest capture ``amicheck pcap`` reads (reading is streamed; this bounds the time).
MAX_CAPTURE_BYTES = 1 << 30
_MAGICS = {
    b"\xa1\xb2\xc3\xd4": "pcap", b"\xd4\xc3\xb2\xa1": "pcap",
    b"\xa1\xb2\x3c\x4d": "pcap", b"\x4d\x3c\xb2\xa1": "pcap",  # nanosecond pcap
    b"\x0a\x0d\x0d\x0a": "pcapng",
}


class CaptureFileError(AmiCheckError):
    """A capture file that cannot be read; the message names the file and what is wrong."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def check_capture_path(path: str | Path, max_bytes: int = MAX_CAPTURE_BYTES) -> None:
    """Raise :class:`CaptureFileError` unless ``path`` is a readable pcap/pcapng file.

    Decided from ``os.stat`` first, so a FIFO or a device is refused without being opened
    (opening a FIFO blocks); only a regular file is opened (non-blocking), and its first
    bytes must be a pcap or pcapng magic number.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CaptureFileError(path, "no such file") from None
    except NotADirectoryError:
        raise CaptureFileError(path, "no such file (a part of the path is not a directory)") \
            from None
    except PermissionError:
        raise CaptureFileError(path, "not accessible (permission denied)") from None
    except (OSError, ValueError) as exc:
        raise CaptureFileError(path, f"cannot be read ({exc})") from None
    refused = not_regular(st.st_mode, "a capture file")
    if refused:
        raise CaptureFileError(path, refused)
    if st.st_size == 0:
        raise CaptureFileError(path, "is empty")
    if st.st_size > max_bytes:
        raise CaptureFileError(
            path, f"is {st.st_size} bytes, over the {max_bytes} byte limit for a capture")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except PermissionError:
        raise CaptureFileError(path, "not readable (permission denied)") from None
    except OSError as exc:
        raise CaptureFileError(path, f"cannot be opened ({exc.strerror or exc})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the stat
            raise CaptureFileError(path, "is not a regular file")
        head = os.read(fd, 4)
    except OSError as exc:
        raise CaptureFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if head not in _MAGICS:
        what = "gzip-compressed (decompress it first)" if head[:2] == b"\x1f\x8b" else \
            f"starts with 0x{head.hex()}"
        raise CaptureFileError(path, f"not a pcap or pcapng file ({what})")



@dataclass(frozen=True)
class AmiRecord:
    """One AMI message (or banner) seen in a capture."""

    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    message: Message | None
    banner: str | None = None


_SEQ_MOD = 1 << 32


@dataclass
class _Half:
    """One direction of one TCP connection, reassembled by sequence number.

    Positions are unwrapped to a growing integer (``_pos`` is where ``next_seq`` sits), and
    segments that arrive early wait in a heap ordered by start, so each segment is pushed and
    popped once: linear in the capture, however out of order. A byte is taken from the first
    segment that delivers it; retransmissions and overlaps only add bytes beyond ``next_seq``;
    data after a gap waits until the gap is filled.
    """

    next_seq: int | None = None
    parser: Parser | None = None
    started: bool = False
    _pos: int = 0
    _early: list[tuple[int, int, bytes]] = field(default_factory=list)
    _order: int = 0

    def add(self, seq: int, payload: bytes) -> bytes:
        if self.next_seq is None:
            self.next_seq = seq
        delta = (seq - self.next_seq) % _SEQ_MOD
        if delta >= _SEQ_MOD >> 1:  # behind next_seq (a retransmission or an overlap)
            delta -= _SEQ_MOD
        start = self._pos + delta
        end = start + len(payload)
        if end <= self._pos:
            return b""
        if start > self._pos:
            heapq.heappush(self._early, (start, self._order, payload))
            self._order += 1
            return b""
        begin = self._pos
        out = [payload[begin - start:]]
        self._pos = end
        early = self._early
        while early and early[0][0] <= self._pos:
            s, _, p = heapq.heappop(early)
            if s + len(p) > self._pos:
                out.append(p[self._pos - s:])
                self._pos = s + len(p)
        self.next_seq = (self.next_seq + self._pos - begin) % _SEQ_MOD
        return b"".join(out)


def _looks_like_ami_client(data: bytes) -> bool:
    head = data.lstrip()[:64].lower()
    return head.startswith((b"action:", b"actionid:"))


# A TCP segment as the reader needs it: src ip, sport, dst ip, dport, seq, flags, payload.
_Seg = tuple[str, int, str, int, int, int, bytes]
_ETH_IPV4, _ETH_IPV6, _ETH_VLANS = 0x0800, 0x86DD, (0x8100, 0x88A8, 0x9100)
_IPV6_EXT = (0, 43, 60)  # hop-by-hop, routing, destination options (fragments: skipped)
_ips: dict[bytes, str] = {}


def _ip_text(raw: bytes) -> str:
    text = _ips.get(raw)
    if text is None:
        text = socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
        if len(_ips) < 65536:
            _ips[raw] = text
    return text


def _l3_offset(linktype: int, data: bytes) -> tuple[int, int] | None:
    """(offset of the IP header, ethertype) for the link layers captures really use."""
    if linktype == 1:  # Ethernet, VLAN tags skipped
        off, etype = 14, int.from_bytes(data[12:14], "big")
        while etype in _ETH_VLANS and len(data) >= off + 4:
            etype = int.from_bytes(data[off + 2 : off + 4], "big")
            off += 4
        return off, etype
    if linktype == 113:  # Linux cooked (SLL)
        return 16, int.from_bytes(data[14:16], "big")
    if linktype == 276:  # Linux cooked v2 (SLL2)
        return 20, int.from_bytes(data[0:2], "big")
    if linktype in (0, 108):  # BSD loopback: AF_ value in host (0) or network (108) order
        version = data[4] >> 4 if len(data) > 4 else 0
        return 4, _ETH_IPV4 if version == 4 else _ETH_IPV6
    if linktype in (12, 14, 101, 228, 229):  # raw IP
        version = data[0] >> 4 if data else 0
        return 0, _ETH_IPV4 if version == 4 else _ETH_IPV6
    return None


def _tcp_of(data: bytes, off: int, etype: int) -> _Seg | None:
    """The TCP segment of an IP packet at ``off``, or None (not TCP, a fragment, truncated)."""
    if etype == _ETH_IPV4:
        if len(data) < off + 20 or data[off] >> 4 != 4 or data[off + 9] != 6:
            return None
        if int.from_bytes(data[off + 6 : off + 8], "big") & 0x1FFF:
            return None  # a non-first fragment: no TCP header here
        ihl = (data[off] & 0x0F) * 4
        end = off + int.from_bytes(data[off + 2 : off + 4], "big")  # Ethernet padding cut
        src, dst = data[off + 12 : off + 16], data[off + 16 : off + 20]
        tcp = off + ihl
    elif etype == _ETH_IPV6:
        if len(data) < off + 40 or data[off] >> 4 != 6:
            return None
        nxt = data[off + 6]
        end = off + 40 + int.from_bytes(data[off + 4 : off + 6], "big")
        src, dst = data[off + 8 : off + 24], data[off + 24 : off + 40]
        tcp = off + 40
        while nxt in _IPV6_EXT and len(data) >= tcp + 8:
            nxt, tcp = data[tcp], tcp + (data[tcp + 1] + 1) * 8
        if nxt != 6:
            return None
    else:
        return None
    if len(data) < tcp + 20:
        return None
    doff = (data[tcp + 12] >> 4) * 4
    sport = int.from_bytes(data[tcp : tcp + 2], "big")
    dport = int.from_bytes(data[tcp + 2 : tcp + 4], "big")
    seq = int.from_bytes(data[tcp + 4 : tcp + 8], "big")
    flags = data[tcp + 13]
    payload = data[tcp + doff : min(end, len(data))] if doff >= 20 else b""
    return _ip_text(src), sport, _ip_text(dst), dport, seq, flags, payload


def _scapy_tcp(linktype: int, data: bytes) -> _Seg | None:
    """The slow way, for link layers :func:`_l3_offset` does not know."""
    from scapy.config import conf

    cls = conf.l2types.num2layer.get(linktype)
    if cls is None:
        return None
    try:
        pkt = cls(data)
    except Exception:  # noqa: BLE001 - undissectable: not a segment we can read
        return None
    if TCP not in pkt:
        return None
    ip = pkt[IP] if IP in pkt else (pkt[IPv6] if IPv6 in pkt else None)
    if ip is None:
        return None
    tcp = pkt[TCP]
    return (str(ip.src), int(tcp.sport), str(ip.dst), int(tcp.dport), int(tcp.seq),
            int(tcp.flags), bytes(tcp.payload))


def _segments(path: str | Path) -> Iterator[tuple[float, _Seg]]:
    """(time, segment) of every TCP packet in a pcap or pcapng file, in file order.

    Records are read raw and the usual link, IP and TCP headers decoded with slices (scapy's
    dissection costs about a millisecond per packet); other link layers go through scapy.
    """
    with RawPcapReader(str(path)) as reader:
        ng = isinstance(reader, RawPcapNgReader)
        scale = 1e-9 if getattr(reader, "nano", False) else 1e-6
        while True:
            try:
                data, info = reader._read_packet()
                meta: Any = info  # pcap and pcapng readers return different tuples
            except EOFError:
                return
            if ng:
                linktype = int(meta.linktype)
                if meta.tshigh is None:
                    t = 0.0
                else:
                    t = ((meta.tshigh << 32) + meta.tslow) / float(meta.tsresol)
            else:
                linktype = int(reader.linktype)
                t = meta.sec + meta.usec * scale
            where = _l3_offset(linktype, data)
            seg = _tcp_of(data, *where) if where is not None else _scapy_tcp(linktype, data)
            if seg is not None:
                yield t, seg


def read_ami(path: str | Path, ports: Iterable[int] = ()) -> Iterator[AmiRecord]:
    """Yield the AMI messages of a capture, in capture order, TCP streams reassembled.

    A direction counts as AMI when either port is an AMI port (``AMI_PORTS`` plus ``ports``),
    when the server side starts with the ``Asterisk Call Manager/`` banner, or when the client
    side starts with an ``Action:`` header, so captures on ephemeral ports are read too.
    Linear in the capture size, also with out-of-order segments (see :class:`_Half`).
    """
    known = set(AMI_PORTS) | set(ports)
    halves: dict[tuple[str, int, str, int], _Half] = {}
    ami_conns: set[frozenset[tuple[str, int]]] = set()
    for t, (sip, sport, dip, dport, seq, flags, payload) in _segments(path):
        src, dst = (sip, sport), (dip, dport)
        key = (sip, sport, dip, dport)
        if flags & 0x02:  # SYN: a new connection; data starts at seq + 1
            halves[key] = _Half(next_seq=(seq + 1) % _SEQ_MOD)
            continue
        if not payload:
            continue
        half = halves.get(key)
        if half is None:
            half = halves[key] = _Half()
        data = half.add(seq, payload)
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
    """Text lines for :func:`read_ami` records (secret header values masked)."""
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
            crf = (m.name or "").lower() == "challengeresponsefailed"
            for k, v in m:
                low = k.lower()
                if low in _SECRET_HEADERS or (crf and low == "response"):
                    v = MASK
                else:
                    v = scrub_text(v, ())  # derived keys known to this process
                yield f"    {k}: {v}"
            if m.text:
                for line in m.text.splitlines():
                    yield f"    | {line}"
