"""AmiClient against a scripted AMI server on loopback (real sockets, odd segmentations)."""

from __future__ import annotations

import hashlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amicheck.client import AmiClient, LoginRefused
from amicheck.errors import (
    AmiTimeoutError,
    ConnectError,
    ConnectionClosedError,
    LocalProtocolError,
)
from amicheck.protocol import Message, MessageKind
from amicheck.transport import MemoryStream

BANNER = b"Asterisk Call Manager/2.7.0\r\n"


class Conn:
    """The server side of one connection, as a test script sees it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(5)
        self.buf = b""
        self.peer = sock.getpeername()

    def write(self, data: bytes, step: int | None = None) -> None:
        if step is None:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), step):
            self.sock.sendall(data[i:i + step])

    def read_action(self) -> dict[str, str]:
        """The next action as a dict (lower-case keys, first value wins)."""
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buf += data
        block, self.buf = self.buf.split(b"\r\n\r\n", 1)
        out: dict[str, str] = {}
        for line in block.decode().split("\r\n"):
            k, _, v = line.partition(": ")
            out.setdefault(k.lower(), v)
        return out

    def close(self) -> None:
        self.sock.close()


Handler = Callable[[Conn], None]


class Server:
    """Accepts connections on loopback and runs ``handler`` for each in a thread."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1",
                 tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen()
        self.host, self.port = self.sock.getsockname()
        self.errors: list[BaseException] = []
        self.peers: list[tuple[str, int]] = []
        self.threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._loop, daemon=True)
        self._accept.start()

    def _loop(self) -> None:
        while True:
            try:
                sock, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer)
            t = threading.Thread(target=self._run, args=(sock,), daemon=True)
            self.threads.append(t)
            t.start()

    def _run(self, sock: socket.socket) -> None:
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            conn = Conn(sock)
            self.handler(conn)
        except (EOFError, ConnectionError, ssl.SSLError, TimeoutError):
            pass
        except BaseException as exc:  # pragma: no cover - shown at teardown
            self.errors.append(exc)
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()
        for t in self.threads:
            t.join(5)
        if self.errors:
            raise self.errors[0]


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(handler: Handler, **kw: object) -> Server:
        s = Server(handler, **kw)  # type: ignore[arg-type]
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def pong(aid: str) -> bytes:
    return (f"Response: Success\r\nActionID: {aid}\r\nPing: Pong\r\n"
            "Timestamp: 1795693328.794403\r\n\r\n").encode()


def ping_server(step: int | None = None, banner: bytes = BANNER) -> Handler:
    def handler(c: Conn) -> None:
        c.write(banner, step)
        while True:
            a = c.read_action()
            c.write(pong(a.get("actionid", "")), step)
    return handler


# -- connecting ------------------------------------------------------------------------------

def test_banner_and_ping(serve: Callable[..., Server]) -> None:
    s = serve(ping_server())
    with AmiClient.connect(s.host, s.port, timeout=5) as c:
        assert c.banner == "Asterisk Call Manager/2.7.0"
        r = c.request("Ping")
        assert r.ok and r.status == "Success" and r["Ping"] == "Pong"
        assert r.action_id is not None and r.action_id.startswith(c.action_id_prefix)
        assert c.received.startswith(BANNER)


@pytest.mark.parametrize("step", [1, 2, 7])
def test_one_byte_writes(serve: Callable[..., Server], step: int) -> None:
    s = serve(ping_server(step=step))
    with AmiClient.connect(s.host, s.port) as c:
        assert c.banner == "Asterisk Call Manager/2.7.0"
        for _ in range(3):
            assert c.request("Ping").get("Ping") == "Pong"


def test_banner_timeout_names_banner(serve: Callable[..., Server]) -> None:
    done = threading.Event()
    s = serve(lambda c: done.wait(5))
    with pytest.raises(AmiTimeoutError, match="banner") as info:
        AmiClient.connect(s.host, s.port, timeout=0.2)
    assert info.value.waiting_for == "banner"
    done.set()


def test_closed_before_banner(serve: Callable[..., Server]) -> None:
    s = serve(lambda c: c.close())
    with pytest.raises(ConnectionClosedError, match="before sending a banner"):
        AmiClient.connect(s.host, s.port, timeout=2)


def test_not_a_banner_is_kept_for_inspection(serve: Callable[..., Server]) -> None:
    def handler(c: Conn) -> None:
        c.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        c.read_action()
    s = serve(handler)
    with AmiClient.connect(s.host, s.port, timeout=2) as c:
        assert c.banner is None
        assert c.received.startswith(b"HTTP/1.1 400")
        assert any(v.rule == "banner" for v in c.parser.violations)


def test_connect_refused() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(ConnectError, match=f"127.0.0.1:{port}"):
        AmiClient.connect("127.0.0.1", port, timeout=2)


def test_source_address_127_0_0_2(serve: Callable[..., Server]) -> None:
    s = serve(ping_server())
    with AmiClient.connect(s.host, s.port, source_address="127.0.0.2") as c:
        c.request("Ping")
        assert c.local[0] == "127.0.0.2"
    assert s.peers[0][0] == "127.0.0.2"


# -- login -----------------------------------------------------------------------------------

SECRET = "s3cr3tPassw0rd"


def login_server(step: int | None = None) -> Handler:
    def handler(c: Conn) -> None:
        c.write(BANNER)
        challenge = "123456789"
        while True:
            a = c.read_action()
            aid = a.get("actionid", "")
            action = a["action"].lower()
            if action == "challenge":
                c.write(f"Response: Success\r\nActionID: {aid}\r\nChallenge: {challenge}\r\n\r\n"
                        .encode())
            elif action == "login":
                if a.get("authtype", "").lower() == "md5":
                    ok = a.get("key") == hashlib.md5((challenge + SECRET).encode()).hexdigest()
                else:
                    ok = a.get("secret") == SECRET
                if ok:
                    c.write(f"Response: Success\r\nActionID: {aid}\r\n"
                            "Message: Authentication accepted\r\n\r\n"
                            "Event: FullyBooted\r\nPrivilege: system,all\r\n"
                            "Status: Fully Booted\r\n\r\n".encode(), step)
                else:
                    c.write(f"Response: Error\r\nActionID: {aid}\r\n"
                            "Message: Authentication failed\r\n\r\n".encode(), step)
                    c.close()
                    return
            elif action == "logoff":
                c.write(f"Response: Goodbye\r\nActionID: {aid}\r\n"
                        "Message: Thanks for all the fish.\r\n\r\n".encode())
                c.close()
                return
            else:
                c.write(pong(aid))
    return handler


@pytest.mark.parametrize("md5", [False, True])
def test_login_ok_and_secret_never_in_transcript(serve: Callable[..., Server], md5: bool) -> None:
    s = serve(login_server())
    with AmiClient.connect(s.host, s.port) as c:
        r = c.login("ucmamiuser1", SECRET, md5=md5)
        assert r.ok and r.message == "Authentication accepted"
        assert c.wait_event("FullyBooted", timeout=2).get("Status") == "Fully Booted"
        assert c.logoff() is not None
        assert c.wait_closed(2)
        sent = c.transcript.data()
        assert SECRET.encode() not in sent
        assert SECRET not in c.transcript.render()
        key = hashlib.md5(("123456789" + SECRET).encode()).hexdigest().encode()
        assert key not in sent
        assert b"Username: ucmamiuser1" in sent
        assert (b"Key: ********" if md5 else b"Secret: ********") in sent


def test_login_refused_quotes_message(serve: Callable[..., Server]) -> None:
    s = serve(login_server(step=1))
    with AmiClient.connect(s.host, s.port) as c:
        with pytest.raises(LoginRefused, match="Authentication failed") as info:
            c.login("ucmamiuser1", "wrong-Secret1")
        assert info.value.response is not None
        assert c.wait_closed(2)
        assert b"wrong-Secret1" not in c.transcript.data()


def test_secret_split_over_one_byte_writes_is_masked(serve: Callable[..., Server]) -> None:
    def handler(c: Conn) -> None:
        c.write(BANNER)
        c.read_action()
        # the server echoes the secret back one byte at a time (hostile or buggy)
        c.write(f"Response: Error\r\nMessage: bad {SECRET} given\r\n\r\n".encode(), 1)
        c.read_action()
    s = serve(handler)
    with AmiClient.connect(s.host, s.port) as c:
        c.transcript.add_secret(SECRET)
        raw = f"Action: Login\r\nUsername: u\r\nSecret: {SECRET}\r\n\r\n".encode()
        for i in range(len(raw)):
            c.send_bytes(raw[i:i + 1])
        msgs = c.read_messages(2)
        assert msgs[0].get("Message") == f"bad {SECRET} given"  # the client still sees it
        assert SECRET.encode() not in c.transcript.data()
        assert SECRET not in c.transcript.render(limit=None)
        for f in c.transcript:
            assert SECRET.encode()[:4] not in f.data or f.data.count(b"*")
        c.send_bytes(b"Action: Ping\r\n\r\n")


# -- event lists, Follows, Queues ------------------------------------------------------------

def list_server(step: int | None) -> Handler:
    def handler(c: Conn) -> None:
        c.write(BANNER)
        while True:
            a = c.read_action()
            aid = a.get("actionid", "")
            action = a["action"].lower()
            if action == "queuestatus":
                out = (
                    f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n"
                    "Message: Queue status will follow\r\n\r\n"
                    # an unsolicited event in the middle of the list
                    "Event: PeerStatus\r\nPrivilege: system,all\r\nPeer: PJSIP/1000\r\n\r\n"
                    f"Event: QueueParams\r\nQueue: 6500\r\nActionID: {aid}\r\n\r\n"
                    f"Event: QueueMember\r\nQueue: 6500\r\nName: Agent 1001\r\nActionID: {aid}"
                    "\r\n\r\n"
                    f"Event: QueueStatusComplete\r\nActionID: {aid}\r\nEventList: Complete\r\n"
                    "ListItems: 2\r\n\r\n")
                c.write(out.encode(), step)
            elif action == "command":
                out = (f"Response: Follows\r\nPrivilege: Command\r\nActionID: {aid}\r\n"
                       "Channel  Location  State\n0 active channels\n\n1 call processed\n"
                       "--END COMMAND--\r\n\r\n")
                c.write(out.encode(), step)
            elif action == "command14":
                out = (f"Response: Success\r\nActionID: {aid}\r\n"
                       "Message: Command output follows\r\nOutput: line one\r\n"
                       "Output: \r\nOutput: line three\r\n\r\n")
                c.write(out.encode(), step)
            elif action == "queues":
                out = ("6500 has 0 calls (max unlimited) in 'ringall' strategy\r\n"
                       "   Members: \r\n      Agent 1001 (Not in use)\r\n   No Callers\r\n"
                       "\r\n\r\n\r\n\r\n")
                c.write(out.encode(), step)
            else:
                c.write(pong(aid), step)
    return handler


@pytest.mark.parametrize("step", [None, 1, 5])
def test_event_list_collects_items_until_complete(serve: Callable[..., Server],
                                                  step: int | None) -> None:
    s = serve(list_server(step))
    with AmiClient.connect(s.host, s.port) as c:
        r = c.request("QueueStatus")
        assert r.ok
        assert [e.name for e in r.events] == ["QueueParams", "QueueMember"]
        assert r.complete is not None and r.complete.get("ListItems") == "2"
        assert [e.name for e in c.events] == ["PeerStatus"]
        assert c.wait_event(lambda m: m.get("Peer") == "PJSIP/1000").name == "PeerStatus"
        assert c.events == []


@pytest.mark.parametrize("step", [None, 1])
def test_follows_command_output(serve: Callable[..., Server], step: int | None) -> None:
    s = serve(list_server(step))
    with AmiClient.connect(s.host, s.port) as c:
        r = c.request("Command", Command="core show channels")
        assert r.ok and r.status == "Follows"
        assert r.text is not None and "0 active channels\n\n1 call processed" in r.text
        assert c.request("Ping").ok  # the stream is still in sync


def test_output_lines_of_asterisk_14(serve: Callable[..., Server]) -> None:
    s = serve(list_server(None))
    with AmiClient.connect(s.host, s.port) as c:
        r = c.request("Command14")
        assert r.response.getall("Output") == ["line one", "", "line three"]
        assert r.text == "line one\n\nline three\n"


@pytest.mark.parametrize("step", [None, 3])
def test_raw_queues_answers_pending_queues(serve: Callable[..., Server], step: int | None) -> None:
    s = serve(list_server(step))
    with AmiClient.connect(s.host, s.port) as c:
        r = c.request("Queues")
        assert r.response.kind is MessageKind.RAW and r.ok and r.status is None
        assert r.text is not None and "6500 has 0 calls" in r.text
        assert c.request("Ping").ok


# -- pipelining, raw bytes, timeouts ---------------------------------------------------------

def test_pipelined_responses_in_any_wait_order(serve: Callable[..., Server]) -> None:
    s = serve(ping_server())
    with AmiClient.connect(s.host, s.port) as c:
        ids = [c.send("Ping") for _ in range(200)]
        assert len(set(ids)) == 200
        for aid in reversed(ids):
            assert c.wait_response(aid).action_id == aid
        with pytest.raises(KeyError):
            c.wait_response(ids[0])


def test_send_keeps_given_action_id_and_repeats_list_headers(serve: Callable[..., Server]) -> None:
    seen: list[bytes] = []

    def handler(c: Conn) -> None:
        c.write(BANNER)
        while True:
            while b"\r\n\r\n" not in c.buf:
                data = c.sock.recv(4096)
                if not data:
                    return
                c.buf += data
            block, c.buf = c.buf.split(b"\r\n\r\n", 1)
            seen.append(block)
            aid = [ln[10:] for ln in block.split(b"\r\n") if ln.startswith(b"ActionID: ")]
            c.write(pong(aid[0].decode()))
    s = serve(handler)
    with AmiClient.connect(s.host, s.port) as c:
        assert c.request("Originate", ActionID="mine-1", Variable=["A=1", "B=2"]).ok
        assert c.request(Message.action("Ping", ActionID="mine-2")).action_id == "mine-2"
    assert seen[0] == (b"Action: Originate\r\nActionID: mine-1\r\n"
                       b"Variable: A=1\r\nVariable: B=2")


def test_header_injection_refused_before_sending(serve: Callable[..., Server]) -> None:
    s = serve(ping_server())
    with AmiClient.connect(s.host, s.port) as c:
        with pytest.raises(LocalProtocolError):
            c.send("Ping", Data="x\r\nAction: Originate")
        assert c.request("Ping").ok


def test_request_timeout_names_action_and_id(serve: Callable[..., Server]) -> None:
    def handler(c: Conn) -> None:
        c.write(BANNER)
        c.read_action()
        c.write(b"Response: Success\r\nPing: Pong\r\n\r\n")  # no ActionID
        c.read_action()
    s = serve(handler)
    with AmiClient.connect(s.host, s.port) as c:
        with pytest.raises(AmiTimeoutError, match=r"response to ping \(ActionID ") as info:
            c.request("Ping", timeout=0.3)
        assert "without a known ActionID" in str(info.value)
        assert "ActionID" in info.value.waiting_for
        stray = c.read_messages(0.5)
        assert stray and stray[0].get("Ping") == "Pong"


def test_event_list_timeout_names_list(serve: Callable[..., Server]) -> None:
    def handler(c: Conn) -> None:
        c.write(BANNER)
        a = c.read_action()
        c.write(f"Response: Success\r\nActionID: {a['actionid']}\r\nEventList: start\r\n\r\n"
                .encode())
        c.read_action()
    s = serve(handler)
    with AmiClient.connect(s.host, s.port) as c:
        with pytest.raises(AmiTimeoutError, match="end of the status event list"):
            c.request("Status", timeout=0.3)
        c.send_bytes(b"\r\n\r\n")


def test_peer_closes_mid_wait(serve: Callable[..., Server]) -> None:
    def handler(c: Conn) -> None:
        c.write(BANNER)
        c.read_action()
        c.write(b"Response: Succ")
        c.close()
    s = serve(handler)
    with AmiClient.connect(s.host, s.port) as c:
        with pytest.raises(ConnectionClosedError, match="closed the connection.*ping"):
            c.request("Ping", timeout=5)
        assert c.at_eof


def test_wait_event_timeout_and_close(serve: Callable[..., Server]) -> None:
    def handler(c: Conn) -> None:
        c.write(BANNER + b"Event: Newchannel\r\nChannel: PJSIP/1000-1\r\n\r\n")
        c.read_action()
        c.close()
    s = serve(handler)
    with AmiClient.connect(s.host, s.port) as c:
        with pytest.raises(AmiTimeoutError, match="event Hangup"):
            c.wait_event("Hangup", timeout=0.3)
        assert c.wait_event("newchannel", timeout=1).get("Channel") == "PJSIP/1000-1"
        assert not c.wait_closed(0.1)
        c.send_bytes(b"Action: Ping\r\n\r\n")
        assert c.wait_closed(2)
        with pytest.raises(ConnectionClosedError, match="event Hangup"):
            c.wait_event("Hangup", timeout=1)


def test_send_bytes_read_messages_and_received(serve: Callable[..., Server]) -> None:
    def handler(c: Conn) -> None:
        c.write(BANNER)
        c.read_action()
        c.write(b"Response: Error\r\nMessage: Missing action in request\r\n\r\n"
                b"Response: Error\r\nMessage: Missing action in request\r\n\r\n", 3)
        c.read_action()
    s = serve(handler)
    with AmiClient.connect(s.host, s.port) as c:
        c.send_bytes(b"Foo: bar\r\n\r\n")
        msgs = c.read_messages(2, count=2)
        assert [m.get("Message") for m in msgs] == ["Missing action in request"] * 2
        assert c.read_messages(0.1) == []
        assert c.received.endswith(b"Missing action in request\r\n\r\n")
        c.send_bytes(b"Action: Ping\r\n\r\n")


def test_memory_stream_client() -> None:
    a, b = MemoryStream.pair()
    b.send_all(BANNER)
    c = AmiClient(a, action_id_prefix="x-")
    assert c.read_banner(1) == "Asterisk Call Manager/2.7.0"
    aid = c.send("Ping")
    assert b.recv(1000, 1) == b"Action: Ping\r\nActionID: x-1\r\n\r\n"
    b.send_all(b"Response: Success\r\nActionID: x-1\r\nPing: Pong\r\n\r\n")
    assert c.wait_response(aid, timeout=1).get("Ping") == "Pong"
    b.close()
    assert c.wait_closed(1)
    c.close()


# -- TLS -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "ucm.example")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return server_ctx, path


def test_tls_unverified_default(serve: Callable[..., Server],
                                tls_ca: tuple[ssl.SSLContext, Path]) -> None:
    s = serve(ping_server(step=1), tls=tls_ca[0])
    with AmiClient.connect(s.host, s.port, tls=True) as c:
        assert c.stream.is_tls
        assert c.banner == "Asterisk Call Manager/2.7.0"
        assert c.request("Ping").ok


def test_tls_verified_with_ca_and_sni(serve: Callable[..., Server],
                                      tls_ca: tuple[ssl.SSLContext, Path]) -> None:
    s = serve(ping_server(), tls=tls_ca[0])
    with AmiClient.connect(s.host, s.port, ca=str(tls_ca[1])) as c:
        assert c.request("Ping").ok
    with AmiClient.connect(s.host, s.port, ca=str(tls_ca[1]),
                           server_hostname="ucm.example") as c:
        assert c.request("Ping").ok
    with pytest.raises(ConnectError, match="TLS handshake"):
        AmiClient.connect(s.host, s.port, ca=str(tls_ca[1]), server_hostname="other.example")


def test_tls_untrusted_ca_refused(serve: Callable[..., Server],
                                  tls_ca: tuple[ssl.SSLContext, Path]) -> None:
    s = serve(ping_server(), tls=tls_ca[0])
    ctx = ssl.create_default_context()  # system CAs only: the test CA is unknown
    with pytest.raises(ConnectError, match="TLS handshake.*certificate"):
        AmiClient.connect(s.host, s.port, tls=ctx)


def test_plaintext_client_on_tls_port_times_out(serve: Callable[..., Server],
                                                tls_ca: tuple[ssl.SSLContext, Path]) -> None:
    s = serve(ping_server(), tls=tls_ca[0])
    with pytest.raises((AmiTimeoutError, ConnectionClosedError)):
        AmiClient.connect(s.host, s.port, timeout=0.3)



@pytest.mark.parametrize("cut", [8, 14])
def test_follows_marker_split_across_reads(cut: int) -> None:
    a, b = MemoryStream.pair()
    b.send_all(BANNER)
    c = AmiClient(a, action_id_prefix="x-")
    c.read_banner(1)
    aid = c.send("Command", Command="core show channels")
    body = (b"Response: Follows\r\nPrivilege: Command\r\nActionID: x-1\r\n"
            b"Channel  Location  State\n0 active channels\n")
    marker = b"--END COMMAND--\r\n\r\n"
    for chunk in (body, marker[:cut], marker[cut:]):
        b.send_all(chunk)
        c.read_messages(0.01, count=None)
    r = c.wait_response(aid, timeout=1)
    assert r.text == "Channel  Location  State\n0 active channels\n"
    pid = c.send("Ping")
    b.send_all(pong(pid))
    assert c.wait_response(pid, timeout=1).ok


def test_tls_peer_closes_mid_wait(serve: Callable[..., Server],
                                  tls_ca: tuple[ssl.SSLContext, Path]) -> None:
    def handler(c: Conn) -> None:
        c.write(BANNER)
        c.read_action()
        c.write(b"Response: Succ")
        c.sock.shutdown(socket.SHUT_RDWR)  # no TLS close_notify
    s = serve(handler, tls=tls_ca[0])
    with AmiClient.connect(s.host, s.port, tls=True) as c:
        with pytest.raises(ConnectionClosedError, match="ping"):
            c.request("Ping", timeout=5)


# -- any segmentation gives the same answers (hypothesis, in memory) -------------------------

def _answers(aids: list[str]) -> bytes:
    ping, qs, cmd, queues, ev = aids
    return (
        pong(ping).decode()
        + "Event: Newchannel\r\nChannel: PJSIP/1000-1\r\nCallerIDName: Jos\u00e9\r\n\r\n"
        + f"Response: Success\r\nActionID: {qs}\r\nEventList: start\r\n\r\n"
        + f"Event: QueueMember\r\nActionID: {qs}\r\nName: \u00c5sa\r\n\r\n"
        + f"Event: QueueStatusComplete\r\nActionID: {qs}\r\nEventList: Complete\r\n"
        + "ListItems: 1\r\n\r\n"
        + f"Response: Follows\r\nPrivilege: Command\r\nActionID: {cmd}\r\nline\n\nmore\n"
        + "--END COMMAND--\r\n\r\n"
        + "6500 has 0 calls (max unlimited)\r\n   No Callers\r\n\r\n\r\n"
        + f"Response: Success\r\nActionID: {ev}\r\nEvents: Off\r\n\r\n"
    ).encode()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=30))
def test_answers_do_not_depend_on_segmentation(cuts: list[int]) -> None:
    a, b = MemoryStream.pair()
    b.send_all(BANNER)
    c = AmiClient(a, action_id_prefix="h-", timeout=1)
    c.read_banner()
    aids = [c.send("Ping"), c.send("QueueStatus"), c.send("Command", Command="x"),
            c.send("Queues"), c.send("Events", EventMask="off")]
    data = _answers(aids)
    pos = 0
    for size in cuts:
        b.send_all(data[pos:pos + size])
        pos += size
    b.send_all(data[pos:])
    assert c.wait_response(aids[4]).get("Events") == "Off"
    assert c.wait_response(aids[0]).get("Ping") == "Pong"
    qs = c.wait_response(aids[1])
    assert [e.get("Name") for e in qs.events] == ["\u00c5sa"]
    assert qs.complete is not None
    assert c.wait_response(aids[2]).text == "line\n\nmore\n"
    queues = c.wait_response(aids[3])
    assert queues.response.kind is MessageKind.RAW and "6500 has 0 calls" in (queues.text or "")
    assert c.wait_event("Newchannel").get("CallerIDName") == "Jos\u00e9"
    c.close()


# -- the session inside the client: state, deviations, MD5 key registration -------------------

def test_login_state_and_md5_key_registered_as_derived(serve: Callable[..., Server]) -> None:
    from amicheck.protocol.session import State
    from amicheck.redaction import derived_secrets

    s = serve(login_server())
    with AmiClient.connect(s.host, s.port) as c:
        states = [c.state]
        c.login("ucmamiuser1", SECRET, md5=True)
        states.append(c.state)
        key = hashlib.md5(("123456789" + SECRET).encode()).hexdigest()
        assert key in derived_secrets()
        c.logoff()
        assert c.wait_closed(2)
    states.append(c.state)
    assert states == [State.CONNECTED, State.LOGGED_IN, State.CLOSED]


def test_stray_response_recorded_and_still_delivered(serve: Callable[..., Server]) -> None:
    from amicheck.protocol.session import DeviationRule

    def handler(c: Conn) -> None:
        c.write(BANNER)
        a = c.read_action()
        c.write(b"Response: Success\r\nActionID: nobody-asked\r\n\r\n" + pong(a["actionid"]))
        c.read_action()
    s = serve(handler)
    with AmiClient.connect(s.host, s.port) as c:
        assert c.request("Ping").ok
        assert [d.rule for d in c.deviations] == [DeviationRule.UNKNOWN_ACTION_ID]
        assert [m.get("ActionID") for m in c.read_messages(0.1)] == ["nobody-asked"]
        assert c.unmatched_responses == 1
        c.send_bytes(b"Action: Ping\r\n\r\n")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_bad_timeouts_refused_in_one_line(bad: float) -> None:
    a, _ = MemoryStream.pair()
    with pytest.raises(ValueError, match="finite number of seconds"):
        AmiClient(a, timeout=bad)
    c = AmiClient(a)
    with pytest.raises(ValueError, match="finite number of seconds"):
        c.wait_event("Hangup", timeout=bad)


# -- bounded memory against a target that streams events without pause ------------------------

EVENT = (b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/1000-00000001\r\n"
         b"ChannelState: 0\r\nChannelStateDesc: Down\r\nCallerIDNum: 1000\r\n"
         b"CallerIDName: Alice\r\nConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\n"
         b"Language: en\r\nAccountCode: \r\nContext: from-internal\r\nExten: 1001\r\n"
         b"Priority: 1\r\nUniqueid: 1795693328.1\r\nLinkedid: 1795693328.1\r\n\r\n")


def flood_server(c: Conn) -> None:
    """A hostile target: the banner, then events as fast as the socket takes them."""
    c.write(BANNER)
    block = EVENT * 200
    while True:
        c.sock.sendall(block)


def test_event_flood_keeps_memory_bounded(serve: Callable[..., Server]) -> None:
    import tracemalloc

    s = serve(flood_server)
    total = 8_000  # 2.7 MB on the wire, ~35 MB if every parsed event were kept
    kib = 1024
    with AmiClient.connect(s.host, s.port, timeout=120, max_events=1_000,
                           max_event_bytes=2048 * kib, max_received=512 * kib) as c:
        c.transcript.max_bytes = 512 * kib
        seen = 0

        def enough(m: Message) -> bool:
            nonlocal seen
            seen += 1
            return seen >= total

        tracemalloc.start()
        try:
            c.wait_event(enough)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 8 * 1024 * kib, f"peak {peak / 1e6:.1f} MB"
        assert 0 < len(c.events) <= 1_000
        assert c.dropped_events >= total - 1_000 - 1
        assert c.received_truncated and 0 < len(c.received) <= 512 * kib
        assert c.received_dropped > 2 * 1024 * kib
        note = c.cap_note
        assert note is not None and "event stream capped at 1,000 events / 2 MB" in note
        assert f"{c.dropped_events:,} dropped" in note and "raw byte record capped" in note
        assert [d.rule.value for d in c.deviations] == ["event-before-login"]  # once


def test_caps_by_estimated_memory_keep_the_newest(serve: Callable[..., Server]) -> None:
    def handler(c: Conn) -> None:
        c.write(BANNER)
        for i in range(500):
            c.write(f"Event: UserEvent\r\nUserEvent: Burst\r\nSeq: {i}\r\nData: {'x' * 2000}"
                    "\r\n\r\n".encode())
        c.read_action()
    s = serve(handler)
    with AmiClient.connect(s.host, s.port, max_event_bytes=100_000) as c:
        c.wait_event(lambda m: m.get("Seq") == "499", timeout=5)
        kept = c.drain_events()
        assert 20 <= len(kept) <= 50  # ~2.1 KB wire + 4 headers each in 100 KB
        assert [int(m["Seq"]) for m in kept] == list(range(499 - len(kept), 499))
        assert c.dropped_events == 500 - len(kept) - 1
        assert c.cap_note is not None and "capped at 2,000 events / 0.0954 MB" in c.cap_note
        c.send_bytes(b"Action: Ping\r\n\r\n")


def test_no_cap_note_when_nothing_was_dropped(serve: Callable[..., Server]) -> None:
    s = serve(ping_server())
    with AmiClient.connect(s.host, s.port) as c:
        c.request("Ping")
        assert c.cap_note is None and not c.received_truncated and c.dropped_events == 0
