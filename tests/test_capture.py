"""pcap evidence: written from real transcripts, read back by scapy and by amicheck's reader."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import checksum, rdpcap, wrpcap, wrpcapng

from amicheck.capture import (
    AMI,
    CaptureFileError,
    bind_ami_port,
    build_packets,
    check_capture_path,
    format_ami,
    read_ami,
    write_pcap,
)
from amicheck.client import AmiClient
from amicheck.profile import default_profile
from amicheck.redaction import md5_key
from amicheck.sim import Simulator
from amicheck.transcript import Direction, Frame

PROFILE = default_profile()
USER = next(u for u in PROFILE.users if "all" in u.privileges)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(PROFILE, host="127.0.0.1", port=0, tls_port=0) as s:
        yield s


@pytest.fixture
def session_pcap(sim: Simulator, tmp_path: Path) -> tuple[Path, AmiClient]:
    client = AmiClient.connect(sim.host, sim.port, timeout=5)
    assert USER.secret
    client.login(USER.username, USER.secret)
    client.request("Ping")
    md5 = AmiClient.connect(sim.host, sim.port, timeout=5)
    md5.login(USER.username, USER.secret, md5=True)
    client.close()
    md5.close()
    path = tmp_path / "t.pcap"
    frames = client.transcript.frames + md5.transcript.frames
    write_pcap(path, frames, secrets=PROFILE.secrets())
    return path, client


def test_pcap_has_real_addresses_and_a_consistent_tcp_stream(
    session_pcap: tuple[Path, AmiClient],
) -> None:
    path, client = session_pcap
    packets = rdpcap(str(path))
    first = [p for p in packets if p[TCP].sport == client.local[1] or p[TCP].dport ==
             client.local[1]]
    assert [str(p[TCP].flags) for p in first[:3]] == ["S", "SA", "A"]
    assert str(first[-1][TCP].flags) == "A" and str(first[-3][TCP].flags) == "FA"
    assert first[0][IP].src == client.local[0] and first[0][TCP].dport == client.remote[1]
    # sequence numbers advance exactly by the payload, per direction
    nxt: dict[tuple[int, int], int] = {}
    for p in first:
        key = (p[TCP].sport, p[TCP].dport)
        seq = p[TCP].seq
        if key in nxt:
            assert seq == nxt[key]
        nxt[key] = seq + len(bytes(p[TCP].payload)) + (1 if p[TCP].flags & 0x03 else 0)
    assert all(p.time >= q.time for p, q in zip(packets[1:], packets[:-1], strict=False))


def test_no_secret_in_the_pcap(session_pcap: tuple[Path, AmiClient]) -> None:
    path, _ = session_pcap
    data = path.read_bytes()
    for secret in PROFILE.secrets():
        assert secret.encode() not in data
    assert b"Secret: ********" in data and b"Key: ********" in data


def test_reader_recovers_the_exchange(session_pcap: tuple[Path, AmiClient], sim: Simulator) -> None:
    path, _ = session_pcap
    records = list(read_ami(path, ports=[sim.port]))
    banners = [r.banner for r in records if r.message is None]
    assert banners == [PROFILE.settings.banner] * 2
    names = [r.message.name for r in records if r.message is not None]
    assert names[0] == "Login" and "Success" in names
    assert "Ping" in names and "Challenge" in names
    login = next(r.message for r in records if r.message and r.message.name == "Login")
    assert login.get("Secret") == "********"


def test_ami_layer_uses_the_parser(session_pcap: tuple[Path, AmiClient], sim: Simulator) -> None:
    path, _ = session_pcap
    bind_ami_port(sim.port)
    packets = [p for p in rdpcap(str(path)) if AMI in p]
    assert packets
    msgs = [m for p in packets for m in p[AMI].messages()]
    assert any(m.name == "Ping" for m in msgs)
    assert "AMI" in packets[0].summary()


def _seg(src: int, dst: int, seq: int, data: bytes, flags: str = "PA") -> Ether:
    return (Ether() / IP(src="127.0.0.1", dst="127.0.0.1")
            / TCP(sport=src, dport=dst, seq=seq, flags=flags) / data)


def test_reader_reassembles_out_of_order_and_retransmitted(tmp_path: Path) -> None:
    """A capture on an unknown port, segments swapped and repeated, a message split in three."""
    c, s = 41000, 6001
    banner = b"Asterisk Call Manager/2.10.6\r\n"
    resp = b"Response: Success\r\nActionID: 1\r\nPing: Pong\r\n\r\n"
    act = b"Action: Ping\r\nActionID: 1\r\n\r\n"
    pkts = [
        _seg(c, s, 100, b"", "S"),
        _seg(s, c, 500, b"", "SA"),
        _seg(s, c, 501, banner),
        _seg(c, s, 101, act[:5]),
        _seg(c, s, 101 + 5, act[5:]),
        _seg(s, c, 501 + len(banner) + 10, resp[10:30]),  # arrives early
        _seg(s, c, 501 + len(banner), resp[:10]),
        _seg(s, c, 501 + len(banner), resp[:10]),  # retransmission
        _seg(s, c, 501 + len(banner) + 30, resp[30:]),
    ]
    path = tmp_path / "x.pcap"
    wrpcap(str(path), pkts)
    records = list(read_ami(path))
    assert records[0].banner == "Asterisk Call Manager/2.10.6"
    msgs = [r.message for r in records if r.message is not None]
    assert [(m.name, m.action_id) for m in msgs] == [("Ping", "1"), ("Success", "1")]
    assert msgs[1].get("Ping") == "Pong"


def test_reader_ignores_other_traffic_and_reads_mid_stream(tmp_path: Path) -> None:
    pkts = [
        _seg(40000, 8080, 1, b"GET / HTTP/1.0\r\n\r\n"),
        _seg(40001, 9999, 7, b"Action: Ping\r\n\r\n"),  # no SYN, no banner: still AMI
    ]
    path = tmp_path / "y.pcap"
    wrpcap(str(path), pkts)
    records = list(read_ami(path))
    assert [(r.src[1], r.message.name if r.message else None) for r in records] == [
        (40001, "Ping")]


def test_ipv6_and_large_frames_are_segmented() -> None:
    frames = [
        Frame(1.0, Direction.RECEIVED, b"Asterisk Call Manager/2.7.0\r\n", ("::1", 5000),
              ("::1", 7777)),
        Frame(1.1, Direction.RECEIVED, b"Event: X\r\nData: " + b"z" * 5000 + b"\r\n\r\n",
              ("::1", 5000), ("::1", 7777)),
    ]
    packets = build_packets(frames)
    assert all(IPv6 in p for p in packets)
    data = [p for p in packets if len(bytes(p[TCP].payload))]
    assert max(len(bytes(p[TCP].payload)) for p in data) <= 1460
    assert sum(len(bytes(p[TCP].payload)) for p in data) == sum(len(f.data) for f in frames)


def _shuffled_capture(path: Path, n: int, seed: int = 7) -> bytes:
    """``n`` out-of-order segments of one server stream (plus retransmissions), via wrpcap.

    One packet is built by scapy and its IP length, checksum and TCP sequence number patched
    per segment: dissecting 20,000 scapy packets would take longer than the reading itself.
    """
    rnd = random.Random(seed)
    stream = b"Asterisk Call Manager/2.7.0\r\n" + b"".join(
        b"Event: Test\r\nSeq: %d\r\nData: %s\r\n\r\n" % (i, b"x" * 40) for i in range(n))
    size = -(-len(stream) // n)
    isn = 0xFFFFFF00  # the sequence numbers wrap in the middle of the stream
    template = bytes(Ether() / IP(src="127.0.0.1", dst="127.0.0.2")
                     / TCP(sport=7777, dport=41000, flags="PA", seq=0))
    records = []
    for off in range(0, len(stream), size):
        chunk = stream[off:off + size]
        pkt = bytearray(template + chunk)
        pkt[16:18] = (len(pkt) - 14).to_bytes(2, "big")
        pkt[24:26] = b"\0\0"
        pkt[24:26] = checksum(bytes(pkt[14:34])).to_bytes(2, "big")
        pkt[38:42] = ((isn + 1 + off) % (1 << 32)).to_bytes(4, "big")
        records.append(bytes(pkt))
    records += rnd.sample(records, n // 20)  # retransmissions
    rnd.shuffle(records)
    syn = bytes(Ether() / IP(src="127.0.0.1", dst="127.0.0.2")
                / TCP(sport=7777, dport=41000, flags="SA", seq=isn))
    wrpcap(str(path), [syn] + records, linktype=1)  # type: ignore[arg-type]  # raw frames
    return stream


def test_reassembly_is_linear_20000_out_of_order_segments(tmp_path: Path) -> None:
    """20,000 shuffled segments (about 2 MB with retransmissions) in under 2 s of CPU."""
    path = tmp_path / "big.pcap"
    stream = _shuffled_capture(path, 20_000)
    assert path.stat().st_size > 2_000_000
    start = time.process_time()
    records = list(read_ami(path))
    elapsed = time.process_time() - start
    msgs = [r.message for r in records if r.message is not None]
    assert len(msgs) == 20_000 and records[0].banner == "Asterisk Call Manager/2.7.0"
    assert [m.get("Seq") for m in msgs] == [str(i) for i in range(20_000)]
    assert sum(len(bytes(m)) for m in msgs) == len(stream) - len(b"Asterisk Call Manager/2.7.0\r\n")
    assert elapsed < 2.0, f"{elapsed:.2f} s"


def test_reader_agrees_with_scapy_on_a_sample(tmp_path: Path) -> None:
    """The header decoding the reader does itself reads what scapy dissects."""
    path = tmp_path / "s.pcap"
    _shuffled_capture(path, 40)
    for pkt in rdpcap(str(path))[:10]:
        assert pkt[IP].src == "127.0.0.1" and pkt[TCP].sport == 7777
        assert IP(bytes(pkt[IP])).chksum == pkt[IP].chksum  # the patched checksum is right


def test_crf_keys_and_derived_keys_never_reach_the_pcap(tmp_path: Path) -> None:
    key = md5_key("60606060", "Pcap-Secret1")
    frames = [
        Frame(1.0, Direction.RECEIVED,
              b"Event: ChallengeResponseFailed\r\nChallenge: 60606060\r\nResponse: "
              + key.encode() + b"\r\nExpectedResponse: " + key.upper().encode()
              + b"\r\n\r\nResponse: Success\r\n\r\n", ("127.0.0.1", 40000),
              ("127.0.0.1", 7777)),
        Frame(1.1, Direction.SENT, b"Action: Echo\r\nData: " + b"Pcap-Secret1".hex().encode()
              + b"\r\n\r\n", ("127.0.0.1", 40000), ("127.0.0.1", 7777)),
    ]
    path = write_pcap(tmp_path / "k.pcap", frames, secrets=["Pcap-Secret1"])
    raw = path.read_bytes()
    assert key.encode() not in raw.lower() and b"Pcap-Secret1".hex().encode() not in raw
    assert b"Response: Success" in raw
    lines = list(format_ami(read_ami(path)))
    assert "    Response: ********" in lines and "    Response: Success" in lines


@pytest.fixture
def bad_paths(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "empty.pcap").write_bytes(b"")
    (tmp_path / "text.pcap").write_bytes(b"hello world\n")
    (tmp_path / "gz.pcap").write_bytes(b"\x1f\x8b\x08\x00" + b"\0" * 20)
    (tmp_path / "file").write_bytes(b"x")
    return {
        "missing": (tmp_path / "nope.pcap", "no such file"),
        "under a file": (tmp_path / "file" / "x.pcap", "no such file"),
        "directory": (tmp_path, "is a directory"),
        "fifo": (fifo, "is a FIFO"),
        "device": (Path("/dev/null"), "is a device"),
        "empty": (tmp_path / "empty.pcap", "is empty"),
        "text": (tmp_path / "text.pcap", "not a pcap or pcapng file (starts with 0x68656c6c)"),
        "gzip": (tmp_path / "gz.pcap", "gzip-compressed"),
    }


def test_check_capture_path_names_each_problem(bad_paths: dict[str, tuple[Path, str]]) -> None:
    for name, (path, reason) in bad_paths.items():
        start = time.monotonic()
        with pytest.raises(CaptureFileError) as info:
            check_capture_path(path)
        assert time.monotonic() - start < 1.0, name  # a FIFO is never opened
        assert str(info.value).startswith(f"{path}: ") and reason in str(info.value), name
        assert "\n" not in str(info.value)


def test_check_capture_path_size_cap_and_good_files(tmp_path: Path) -> None:
    good = tmp_path / "ok.pcap"
    wrpcap(str(good), [_seg(1, 2, 3, b"x")])
    check_capture_path(good)
    with pytest.raises(CaptureFileError, match=r"over the 10 byte limit"):
        check_capture_path(good, max_bytes=10)
    ng = tmp_path / "ok.pcapng"
    wrpcapng(str(ng), [_seg(1, 2, 3, b"x")])
    check_capture_path(ng)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_check_capture_path_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "locked.pcap"
    wrpcap(str(path), [_seg(1, 2, 3, b"x")])
    path.chmod(0)
    with pytest.raises(CaptureFileError, match="permission denied"):
        check_capture_path(path)
