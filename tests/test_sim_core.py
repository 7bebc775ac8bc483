"""The simulator core over real loopback sockets: sessions, login, framing, events, TLS."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator

import pytest
from test_sim_core_kit import ALL_USER, SECRET, Conn, make_profile, sim_running

from amicheck.errors import ProfileError
from amicheck.profile import User
from amicheck.protocol import Message
from amicheck.sim import FAULTS, Simulator, UnknownFaultError, replies

FAILED = b"Response: Error\r\nActionID: x\r\nMessage: Authentication failed\r\n\r\n"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with sim_running() as s:
        yield s


@pytest.fixture
def conn(sim: Simulator) -> Iterator[Conn]:
    c = Conn.to(sim)
    yield c
    c.close()


def _fail_bytes(c: Conn) -> bytes:
    assert c.closed(3), "server did not close after a failed login"
    banner_end = c.raw.index(b"\r\n") + 2
    return bytes(c.raw[banner_end:])


# -- connect and login ----------------------------------------------------------------------

def test_banner_is_one_line_from_the_profile(conn: Conn) -> None:
    assert conn.banner() == "Asterisk Call Manager/2.7.0"
    assert bytes(conn.raw) == b"Asterisk Call Manager/2.7.0\r\n"
    assert conn.quiet(0.1) == []


def test_login_plain_then_fully_booted_and_successful_auth(conn: Conn) -> None:
    conn.banner()
    conn.send(b"Action: Login\r\nActionID: l1\r\nUsername: ucmamiuser1\r\nSecret: "
              + SECRET.encode() + b"\r\n\r\n")
    resp, booted, auth = conn.read(3)
    assert resp.items == [("Response", "Success"), ("ActionID", "l1"),
                          ("Message", "Authentication accepted")]
    assert booted.items == [("Event", "FullyBooted"), ("Privilege", "system,all"),
                            ("Status", "Fully Booted")]
    assert auth.keys() == ["Event", "Privilege", "EventTV", "Severity", "Service",
                           "EventVersion", "AccountID", "SessionID", "LocalAddress",
                           "RemoteAddress", "UsingPassword", "SessionTV"]
    assert auth["Privilege"] == "security,all" and auth["AccountID"] == "ucmamiuser1"
    assert auth["LocalAddress"] == f"IPV4/TCP/127.0.0.1/{conn.sock.getpeername()[1]}"
    assert auth["RemoteAddress"] == f"IPV4/TCP/127.0.0.1/{conn.sock.getsockname()[1]}"
    assert auth["SessionID"].startswith("0x")
    conn.send(b"Action: Login\r\nActionID: l2\r\nUsername: ucmamiuser1\r\nSecret: x\r\n\r\n")
    assert conn.one().items == [("Response", "Success"), ("ActionID", "l2"),
                                ("Message", "Already authenticated")]


def test_username_is_case_insensitive_events_off_sends_nothing_more(conn: Conn) -> None:
    resp = conn.login("UCMAMIUSER1", events="off")
    assert resp["Message"] == "Authentication accepted"
    assert conn.quiet(0.2) == []


@pytest.mark.parametrize("login", [
    b"Username: nosuchuser9\r\nSecret: " + SECRET.encode(),          # unknown user
    b"Username: ucmamiuser1\r\nSecret: wrong-Pass1",                  # bad secret
    b"Username: ucmamiuser1\r\nSecret: " + SECRET.upper().encode(),  # secret is exact
    b"Secret: " + SECRET.encode(),                                    # no username
    b"Username: ucmamiuser1",                                         # no secret
    b"Username: emptyacl01\r\nSecret: " + SECRET.encode(),            # empty ACL: denied
    b"Username: remoteonly1\r\nSecret: " + SECRET.encode(),           # ACL from .1
])
def test_every_failed_login_looks_the_same(sim: Simulator, login: bytes) -> None:
    with Conn.to(sim) as c:
        c.banner()
        t0 = time.monotonic()
        c.send(b"Action: Login\r\nActionID: x\r\n" + login + b"\r\n\r\n"
               b"Action: Ping\r\nActionID: after\r\n\r\n")
        assert _fail_bytes(c) == FAILED          # the pipelined Ping is never answered
        assert time.monotonic() - t0 >= 0.04     # fail_delay applies to every cause


def test_acl_from_another_host(sim: Simulator) -> None:
    with Conn.to(sim, source="127.0.0.2") as c:
        assert c.login("remoteonly1")["Message"] == "Authentication accepted"
    with Conn.to(sim, source="127.0.0.2") as c:
        c.banner()
        c.send(b"Action: Login\r\nActionID: x\r\nUsername: ucmamiuser1\r\nSecret: "
               + SECRET.encode() + b"\r\n\r\n")
        assert _fail_bytes(c) == FAILED


def test_md5_challenge_login(sim: Simulator) -> None:
    with Conn.to(sim) as c:
        c.banner()
        c.send(b"Action: Challenge\r\nAuthType: MD5\r\nActionID: c1\r\n\r\n"
               b"Action: Challenge\r\nAuthType: md5\r\nActionID: c2\r\n\r\n")
        a, b = c.read(2)
        assert a.keys() == ["Response", "ActionID", "Challenge"]
        challenge = a["Challenge"]
        assert len(challenge) == 9 and challenge.isdigit() and b["Challenge"] == challenge
        key = hashlib.md5((challenge + SECRET).encode()).hexdigest()
        c.send(f"Action: Login\r\nAuthType: MD5\r\nUsername: ucmamiuser1\r\nKey: {key}\r\n"
               "ActionID: m\r\nEvents: off\r\n\r\n")
        assert c.one()["Message"] == "Authentication accepted"
    for variant in ("upper", "wrong", "nochallenge"):
        with Conn.to(sim) as c:
            c.banner()
            challenge = ""
            if variant != "nochallenge":
                c.action("Challenge", AuthType="MD5")
                challenge = c.one()["Challenge"]
            key = hashlib.md5((challenge + SECRET).encode()).hexdigest()
            key = {"upper": key.upper(), "wrong": "0" * 32, "nochallenge": key}[variant]
            c.send(f"Action: Login\r\nActionID: x\r\nAuthType: MD5\r\nUsername: ucmamiuser1"
                   f"\r\nKey: {key}\r\n\r\n")
            assert _fail_bytes(c).endswith(FAILED), variant


def test_preauth_rules_and_logoff(conn: Conn) -> None:
    conn.banner()
    conn.send(b"Action: Ping\r\nActionID: b1\r\n\r\n"
              b"Action: NoSuchAction\r\nActionID: b2\r\n\r\n"
              b"ActionID: b3\r\nFoo: bar\r\n\r\n"
              b"\r\n"
              b"Action: Challenge\r\nActionID: b4\r\n\r\n"
              b"Action: Challenge\r\nAuthType: plain\r\n\r\n"
              b"Action: Events\r\nEventMask: on\r\n\r\n"
              b"Action: Logoff\r\nActionID: b5\r\n\r\n"
              b"Action: Ping\r\nActionID: never\r\n\r\n")
    msgs = conn.read(8)
    assert [m.get("Message") for m in msgs] == [
        "Permission denied", "Permission denied", "Missing action in request",
        "Missing action in request", "Must specify AuthType", "Must specify AuthType",
        "Permission denied", "Thanks for all the fish."]
    assert msgs[2].items == [("Response", "Error"), ("ActionID", "b3"),
                             ("Message", "Missing action in request")]
    assert msgs[-1].items == [("Response", "Goodbye"), ("ActionID", "b5"),
                              ("Message", "Thanks for all the fish.")]
    assert conn.closed(3) and conn.pending == []


def test_unknown_action_and_ping_after_login(conn: Conn) -> None:
    conn.login(events="off")
    conn.send(b"Action: FooBar\r\nActionID: u\r\n\r\nAction: ping\r\n\r\n")
    unknown, pong = conn.read(2)
    assert unknown.items == [("Response", "Error"), ("ActionID", "u"), (
        "Message",
        "Invalid/unknown command: FooBar. Use Action: ListCommands to show available commands.")]
    assert pong.keys() == ["Response", "Ping", "Timestamp"] and pong["Ping"] == "Pong"


def test_write_privilege_check(sim: Simulator) -> None:
    def hangup(ctx: object, req: object) -> None:  # used only if handlers.py has none
        ctx.reply(replies.success(ctx.action_id, "Channel Hungup"))  # type: ignore[attr-defined]
    sim.call(lambda core: core.handlers.setdefault("hangup", hangup))
    with Conn.to(sim) as c:
        c.login("reportuser1", events="off")
        c.send(b"Action: Hangup\r\nActionID: h\r\nChannel: PJSIP/nope\r\n\r\n")
        assert c.one().items == [("Response", "Error"), ("ActionID", "h"),
                                 ("Message", "Permission denied")]
    with Conn.to(sim) as c:
        c.login("calluser01", events="off")
        c.send(b"Action: Hangup\r\nActionID: h\r\nChannel: PJSIP/nope\r\n\r\n")
        assert c.one().get("Message") != "Permission denied"


# -- events --------------------------------------------------------------------------------

def test_event_filter_by_read_privilege_and_mask(sim: Simulator) -> None:
    with Conn.to(sim) as call, Conn.to(sim) as rep, Conn.to(sim) as off, Conn.to(sim) as masked:
        call.login("calluser01")
        rep.login("reportuser1")
        off.login("ucmamiuser1", events="off")
        masked.login("ucmamiuser1")
        masked.action("Events", EventMask="reporting", ActionID="e")
        masked.until(lambda m: m.get("ActionID") == "e")
        for c in (call, rep, off, masked):
            c.quiet(0.05)
        sim.emit(replies.event("Newchannel", ("call",), [("Channel", "PJSIP/1000-1")]),
                 ("call",))
        sim.emit(replies.event("Report", ("reporting",), [("X", "1")]), ("reporting",))
        assert [m.name for m in call.quiet(0.2)] == ["Newchannel"]
        assert [m.name for m in rep.quiet(0.05)] == ["Report"]
        assert off.quiet(0.05) == []
        assert [m.name for m in masked.quiet(0.05)] == ["Report"]


def test_events_action_replies(conn: Conn) -> None:
    conn.login(events="off")
    conn.send(b"Action: Events\r\nEventMask: on\r\nActionID: 1\r\n\r\n"
              b"Action: Events\r\nEventMask: off\r\n\r\n"
              b"Action: Events\r\nActionID: 3\r\n\r\n")
    on, off, bad = conn.read(3)
    assert on.items == [("Response", "Success"), ("ActionID", "1"), ("Events", "On")]
    assert off.items == [("Response", "Success"), ("Events", "Off")]
    assert bad.items == [("Response", "Error"), ("ActionID", "3"),
                         ("Message", "Invalid event mask")]


def test_security_events_reach_security_readers(sim: Simulator) -> None:
    with Conn.to(sim) as sec:
        sec.login("secuser001")
        sec.until(lambda m: m.name == "SuccessfulAuth")
        with Conn.to(sim) as bad:
            bad.banner()
            bad.send(b"Action: Ping\r\n\r\nAction: Login\r\nUsername: nobody999\r\n"
                     b"Secret: x\r\n\r\n")
            bad.closed(3)
        with Conn.to(sim) as bad:
            bad.login("ucmamiuser1", "Wrong-pass1")
            bad.closed(3)
        with Conn.to(sim) as bad:
            bad.login("remoteonly1")
            bad.closed(3)
        with Conn.to(sim) as bad:
            bad.banner()
            bad.action("Challenge", AuthType="MD5")
            bad.one()
            bad.action("Login", AuthType="MD5", Username="ucmamiuser1", Key="0" * 32)
            bad.closed(3)
        names = []
        for _ in range(5):
            m = sec.one()
            names.append(m.name)
            assert m["Privilege"] == "security,all" and m["Service"] == "AMI"
            if m.name == "RequestNotAllowed":
                assert m["RequestType"] == "Action: Ping"
                assert m.keys()[-2:] == ["RequestType", "SessionTV"]
            if m.name == "ChallengeResponseFailed":
                assert m.keys()[10:13] == ["Challenge", "Response", "ExpectedResponse"]
            if m.name == "InvalidPassword":
                assert m["EventVersion"] == "2" and m["AccountID"] == "ucmamiuser1"
        assert names == ["RequestNotAllowed", "InvalidAccountID", "InvalidPassword",
                         "FailedACL", "ChallengeResponseFailed"]


def test_timestamp_on_events_when_enabled() -> None:
    with sim_running(make_profile(timestamp_events=True)) as sim, Conn.to(sim) as c:
        c.login()
        msgs = c.read(2)  # FullyBooted is written by action_login itself: no Timestamp
        assert "Timestamp" not in msgs[1] or msgs[1].name != "FullyBooted"
        auth = msgs[1]
        assert auth.name == "SuccessfulAuth" and auth.keys()[2] == "Timestamp"
        sec, usec = auth["Timestamp"].split(".")
        assert sec.isdigit() and len(usec) == 6


# -- framing -------------------------------------------------------------------------------

def test_bare_lf_nul_and_case_insensitive_keys(conn: Conn) -> None:
    conn.login(events="off")
    conn.send(b"action: Ping\nactionid: lf\n\n"
              b"Action: Ping\x00ignored\r\nActionID: nul\r\n\r\n"
              b"\x00Action: Ping\r\n\r\n")   # a line starting with NUL is an empty line
    a, b, c, d = conn.read(4)
    assert a["ActionID"] == "lf" and a["Ping"] == "Pong"
    assert b["ActionID"] == "nul" and b["Ping"] == "Pong"
    # the NUL line ends an empty message, the CRLF after it is another empty one
    assert c.get("Message") == d.get("Message") == "Missing action in request"


@pytest.mark.parametrize("length,ok", [(1020, True), (1022, True), (1100, False)])
def test_line_length_edges(conn: Conn, length: int, ok: bool) -> None:
    conn.login(events="off")
    line = b"Variable: " + b"x" * (length - 10)
    assert len(line) == length
    conn.send(b"Action: Ping\r\nActionID: L\r\n" + line + b"\r\n\r\n")
    msg = conn.one()
    if ok:
        assert msg["Ping"] == "Pong"
    else:
        assert msg.items == [("Response", "Error"), ("ActionID", "L"),
                             ("Message", "Failed to parse message: line too long")]
    conn.action("Ping", ActionID="alive")
    assert conn.one()["ActionID"] == "alive"


@pytest.mark.parametrize("headers,ok", [(128, True), (129, False)])
def test_header_limit(conn: Conn, headers: int, ok: bool) -> None:
    conn.login(events="off")
    lines = [b"Action: Ping", b"ActionID: H"] + [b"X-%d: y" % i for i in range(headers - 2)]
    conn.send(b"\r\n".join(lines) + b"\r\n\r\n")
    msg = conn.one()
    if ok:
        assert msg["Ping"] == "Pong"
    else:
        assert msg["Message"] == "Too many lines in message or allocation failure"


def test_pipelined_actions_answered_in_order(conn: Conn) -> None:
    conn.login(events="off")
    conn.send(b"".join(b"Action: Ping\r\nActionID: %d\r\n\r\n" % i for i in range(300)))
    msgs = conn.read(300)
    assert [m["ActionID"] for m in msgs] == [str(i) for i in range(300)]


def test_byte_by_byte_input(conn: Conn) -> None:
    conn.login(events="off")
    for b in b"Action: Ping\r\nActionID: slow\r\n\r\n":
        conn.send(bytes([b]))
    assert conn.one()["ActionID"] == "slow"


@pytest.mark.parametrize("length", [1023, 1024])
def test_line_edge_ends_the_message_early(conn: Conn, length: int) -> None:
    """13.x get_input: 1023 bytes + CR fill inbuf[1024]; the LF then ends the message, and
    the headers after it are a second message (ami-reference.md section 1)."""
    conn.login(events="off")
    line = b"Variable: " + b"x" * (length - 10)
    conn.send(b"Action: Ping\r\nActionID: L\r\n" + line + b"\r\nActionID: after\r\n\r\n")
    first, second = conn.read(2)
    assert first.items == [("Response", "Error"), ("ActionID", "L"),
                           ("Message", "Failed to parse message: line too long")]
    assert second.items == [("Response", "Error"), ("ActionID", "after"),
                            ("Message", "Missing action in request")]


# -- timers and limits ---------------------------------------------------------------------

def test_auth_timeout_counts_from_connect() -> None:
    with sim_running(make_profile(auth_timeout_s=1)) as sim, Conn.to(sim) as c:
        c.banner()
        time.sleep(0.5)
        c.action("Ping")                       # activity does not extend the deadline
        assert c.one()["Message"] == "Permission denied"
        t0 = time.monotonic()
        assert c.closed(4)
        assert time.monotonic() - t0 < 3
        assert c.pending == []                 # silent close
        with Conn.to(sim) as ok:
            ok.login(events="off")
            time.sleep(1.3)                    # logged-in sessions never time out
            ok.action("Ping", ActionID="p")
            assert ok.one()["ActionID"] == "p"


def test_auth_limit_closes_before_banner() -> None:
    with sim_running(make_profile(auth_limit=2)) as sim:
        a, b = Conn.to(sim), Conn.to(sim)
        assert a.banner() and b.banner()
        with Conn.to(sim) as c:
            assert c.closed(3) and bytes(c.raw) == b""
        a.login(events="off")                  # one slot frees up
        with Conn.to(sim) as d:
            assert d.banner() == "Asterisk Call Manager/2.7.0"
        a.close()
        b.close()


def test_write_timeout_drops_a_reader_that_does_not_read() -> None:
    with sim_running(make_profile(write_timeout_ms=100)) as sim:
        stuck = Conn.to(sim, rcvbuf=4096)
        stuck.login()
        other = Conn.to(sim)
        other.login(events="off")
        big = [("Data", "z" * 900)] * 8
        deadline = time.monotonic() + 20
        while sim.session_count == 2 and time.monotonic() < deadline:
            sim.emit(replies.event("UserEvent", ("user",), big), ("user",))
            other.action("Ping", ActionID="still")
            assert other.one()["ActionID"] == "still"
        assert sim.session_count == 1, "the stalled reader was never dropped"
        other.action("Ping", ActionID="after")
        assert other.one()["ActionID"] == "after"
        stuck.close()
        other.close()


def test_stock_port_is_refused(sim: Simulator) -> None:
    assert sim.stock_port not in (0, sim.port)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((sim.host, sim.stock_port), timeout=2).close()


# -- provisioning and runtime users --------------------------------------------------------

def test_bad_profile_refused_with_every_problem() -> None:
    prof = make_profile([User("short", "abc", ("10.0.0.0/99",), ("system",)), ALL_USER],
                        write_timeout_ms=50)
    with pytest.raises(ProfileError) as info:
        Simulator(prof)
    text = "\n".join(info.value.problems)
    for path in ("users[0].username", "users[0].secret", "users[0].permitted[0]",
                 "users[0].privileges[0]", "settings.write_timeout_ms"):
        assert path in text


def test_unknown_fault_lists_valid_names() -> None:
    with pytest.raises(UnknownFaultError) as info:
        Simulator(make_profile(), faults=("no-such-fault", "acl-ignored"))
    assert "no-such-fault" in str(info.value) and "privilege-leak" in str(info.value)


def test_amicheck_faults_lists_every_fault_with_what_it_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The fault list is generated from the records (no second table to keep in sync)."""
    from amicheck.cli import main

    assert main(["faults"]) == 0
    out = capsys.readouterr().out
    for name, fault in FAULTS.items():
        line = next(ln for ln in out.splitlines() if ln.split()[0] == name)
        assert fault.description in line
        for rid in (*fault.fails, *fault.fails_slow):
            assert rid in line, (name, rid, line)


def test_add_remove_user_and_reset(sim: Simulator) -> None:
    sim.add_user(User("probeuser1", SECRET, ("127.0.0.2/32",), ("call",)))
    try:
        with Conn.to(sim, source="127.0.0.2") as c:
            assert c.login("probeuser1", events="off")["Message"] == "Authentication accepted"
            sim.reset()
            assert c.closed(3)
        with pytest.raises(ProfileError):
            sim.add_user(User("tiny", SECRET, (), ("all",)))
    finally:
        sim.remove_user("probeuser1")
    with Conn.to(sim, source="127.0.0.2") as c:
        c.login("probeuser1")
        assert c.closed(3)


# -- TLS -----------------------------------------------------------------------------------

def test_tls_with_uploaded_certificate(tmp_path: object) -> None:
    import ssl
    from pathlib import Path

    import trustme

    from amicheck.profile import TlsFiles

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    d = Path(str(tmp_path))
    cert.cert_chain_pems[0].write_to_path(d / "c.pem")
    cert.private_key_pem.write_to_path(d / "k.pem")
    prof = make_profile(tls_enable=True)
    import dataclasses
    prof = dataclasses.replace(prof, tls=TlsFiles(cert=d / "c.pem", key=d / "k.pem"))
    with sim_running(prof, state_dir=d / "state") as sim:
        assert sim.tls_port and sim.tls_cert_path == d / "state" / "ami_certificate.pem"
        assert sim.tls_key_path == d / "state" / "ami_private.pem"
        assert sim.tls_cert_path.read_bytes() == (d / "c.pem").read_bytes()
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        with Conn(sim.host, sim.tls_port, tls=ctx) as c:
            assert c.login(events="off")["Message"] == "Authentication accepted"
            c.send(b"".join(b"Action: Ping\r\nActionID: %d\r\n\r\n" % i for i in range(20)))
            assert [m["ActionID"] for m in c.read(20)] == [str(i) for i in range(20)]
        with Conn(sim.host, sim.tls_port, tls=ctx) as c:
            c.login("ucmamiuser1")
            auth = c.until(lambda m: m.name == "SuccessfulAuth")
            assert auth["LocalAddress"].startswith("IPV4/TLS/127.0.0.1/")


def test_tls_generated_leaf_when_no_files() -> None:
    import ssl

    with sim_running(make_profile(tls_enable=True)) as sim:
        assert sim.generated_cert and sim.tls_cert_path is not None
        assert sim.profile.tls.cert == sim.tls_cert_path
        assert sim.tls_ca_path is not None  # the leaf is CA-signed: trust its CA (issue 8)
        ctx = ssl.create_default_context(cafile=str(sim.tls_ca_path))
        ctx.check_hostname = False
        with Conn(sim.host, sim.tls_port or 0, tls=ctx) as c:
            assert c.banner() == "Asterisk Call Manager/2.7.0"
            assert isinstance(c.sock, ssl.SSLSocket)
            assert c.sock.version() in ("TLSv1.2", "TLSv1.3")


def test_handler_errors_are_collected_and_reraised() -> None:
    from amicheck.sim.server import SimulatorError

    def boom(ctx: object, req: object) -> None:
        raise RuntimeError("handler bug")

    with pytest.raises(SimulatorError, match="handler bug"):
        with sim_running() as sim:
            sim.call(lambda core: core.handlers.__setitem__("ping", boom))
            with Conn.to(sim) as c:
                c.login(events="off")
                c.action("Ping", ActionID="b")
                assert "Internal" in (c.one().get("Message") or "")
                c.action("Logoff")
                assert c.closed(3)


def test_wire_keeps_a_lone_cr_like_asterisk(conn: Conn) -> None:
    conn.login(events="off")
    conn.send(b"Action: Ping\r\nActionID: a\rb\r\n\r\n")
    conn.read(1)
    assert b"ActionID: a\rb\r\n" in bytes(conn.raw)


def test_message_helper_sanity() -> None:
    assert Message([("Response", "Success")]).name == "Success"


def test_restart_after_stop() -> None:
    sim = Simulator(make_profile(tls_enable=True), fail_delay=0.05)
    for _ in range(2):
        with sim:
            with Conn.to(sim) as c:
                assert c.login(events="off")["Message"] == "Authentication accepted"
            assert sim.tls_cert_path is not None and sim.tls_cert_path.exists()
    assert not sim.state_dir.exists()
