"""Each core fault profile shows its one deviation (and the compliant simulator does not)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import socket
import ssl
import time
import warnings
from collections.abc import Callable, Iterator

import pytest
from cryptography import x509
from test_sim_core_kit import SECRET, Conn, make_profile, sim_running

from amicheck.errors import ProfileError
from amicheck.protocol.server_session import ServerRules
from amicheck.sim import FAULTS, Simulator, replies
from amicheck.sim.behaviour import HOOKS
from amicheck.sim.core import SimCore, rules_of
from amicheck.sim.faults import ExtraUser, behaviour_for

PING = b"Action: Ping\r\nActionID: p\r\n\r\n"


def _extra(fault: str) -> ExtraUser:
    return FAULTS[fault].extra_users[0]


def _fake(name: str) -> Callable[[object, object], None]:
    def handler(ctx: object, req: object) -> None:
        ctx.reply(replies.success(ctx.action_id, f"{name} ran"))  # type: ignore[attr-defined]
    return handler


def _ensure_handlers(sim: Simulator, *names: str) -> None:
    """Privilege tests need a handler to reach; handlers.py's own wins when it has one."""
    for name in names:
        def add(core: SimCore, n: str = name) -> None:
            core.handlers.setdefault(n, _fake(n))
        sim.call(add)


def _tls_client(*, legacy: bool = False, cipher: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers((cipher or "ALL") + ":@SECLEVEL=0")
    if legacy:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1
    elif cipher:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _served_cert(sim: Simulator) -> x509.Certificate:
    with Conn(sim.host, sim.tls_port or 0, tls=_tls_client()) as c:
        der = c.sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]
    assert der
    return x509.load_der_x509_certificate(der)


@pytest.fixture
def tls_profile() -> object:
    return make_profile(tls_enable=True)


# -- provisioning faults: extra users the rules would refuse ---------------------------------

@pytest.mark.parametrize("fault", ["short-username", "weak-password", "system-privilege"])
def test_rule_breaking_user_is_served(fault: str) -> None:
    extra = _extra(fault)
    with sim_running(faults=[fault]) as sim, Conn.to(sim) as c:
        assert sim.profile.user(extra.username) is not None
        assert c.login(extra.username, extra.secret)["Message"] == "Authentication accepted"
    from amicheck.profile import User
    bad = make_profile([User(extra.username, extra.secret, extra.permitted, extra.privileges)])
    with pytest.raises(ProfileError):
        Simulator(bad)


def test_empty_acl_allows() -> None:
    with sim_running(faults=["empty-acl-allows"]) as sim:
        with Conn.to(sim, source="127.0.0.2") as c:
            assert c.login("emptyacl01")["Message"] == "Authentication accepted"
        with Conn.to(sim) as c:
            assert c.login("openacl01", "0pen-Acl01")["Message"] == "Authentication accepted"
        with Conn.to(sim) as c:   # a non-empty list is still enforced
            c.login("remoteonly1")
            assert c.closed(3)


def test_acl_ignored() -> None:
    with sim_running(faults=["acl-ignored"]) as sim:
        cases = (("remoteonly1", None), ("ucmamiuser1", "127.0.0.2"), ("emptyacl01", None))
        for user, src in cases:
            with Conn.to(sim, source=src) as c:
                assert c.login(user)["Message"] == "Authentication accepted", user


def test_user_enumeration() -> None:
    with sim_running(faults=["user-enumeration"], fail_delay=30) as sim:
        with Conn.to(sim) as c:
            m = c.login("nosuchuser9")
            assert m["Message"] == "Invalid username" and c.closed(3)
    with sim_running(faults=["user-enumeration"]) as sim, Conn.to(sim) as c:
        assert c.login("ucmamiuser1", "Wrong-pass1")["Message"] == "Authentication failed"


def test_no_auth_timeout() -> None:
    with sim_running(make_profile(auth_timeout_s=1), faults=["no-auth-timeout"]) as sim:
        with Conn.to(sim) as c:
            c.banner()
            time.sleep(1.4)
            c.send(PING)
            assert c.one()["Message"] == "Permission denied"


def test_auth_limit_ignored() -> None:
    with sim_running(make_profile(auth_limit=1), faults=["auth-limit-ignored"]) as sim:
        conns = [Conn.to(sim) for _ in range(4)]
        assert all(c.banner() for c in conns)
        for c in conns:
            c.close()


def test_preauth_actions() -> None:
    with sim_running(faults=["preauth-actions"]) as sim, Conn.to(sim) as c:
        c.banner()
        c.send(PING)
        assert c.one()["Ping"] == "Pong"


def test_challenge_broken() -> None:
    with sim_running(faults=["challenge-broken"]) as sim, Conn.to(sim) as c:
        c.banner()
        c.action("Challenge", AuthType="MD5")
        ch = c.one()["Challenge"]
        key = hashlib.md5((ch + SECRET).encode()).hexdigest()
        c.action("Login", AuthType="MD5", Username="ucmamiuser1", Key=key)
        assert c.one()["Message"] == "Authentication failed"


def test_logoff_ignored() -> None:
    with sim_running(faults=["logoff-ignored"]) as sim, Conn.to(sim) as c:
        c.login(events="off")
        c.action("Logoff")
        assert c.one().name == "Goodbye"
        c.send(PING)
        assert c.one()["Ping"] == "Pong"


def test_banner_mismatch() -> None:
    with sim_running(faults=["banner-mismatch"]) as sim, Conn.to(sim) as c:
        assert c.banner() == "Asterisk Call Manager/1.1"


def test_stock_port_open() -> None:
    with sim_running(faults=["stock-port-open"]) as sim:
        with Conn(sim.host, sim.stock_port) as c:
            assert c.banner() == "Asterisk Call Manager/2.7.0"


def test_timestamp_mismatch() -> None:
    with sim_running(faults=["timestamp-mismatch"]) as sim, Conn.to(sim) as c:
        c.login()
        auth = c.until(lambda m: m.name == "SuccessfulAuth")
        assert "Timestamp" in auth and not sim.profile.settings.timestamp_events


# -- TLS faults ----------------------------------------------------------------------------

def test_expired_cert(tls_profile: object) -> None:
    with sim_running(tls_profile, faults=["expired-cert"]) as sim:  # type: ignore[arg-type]
        cert = _served_cert(sim)
        assert cert.not_valid_after_utc < dt.datetime.now(dt.UTC)


def test_weak_cert_key(tls_profile: object) -> None:
    with sim_running(tls_profile, faults=["weak-cert-key"]) as sim:  # type: ignore[arg-type]
        cert = _served_cert(sim)
        assert cert.public_key().key_size == 1024  # type: ignore[union-attr]
        assert cert.signature_hash_algorithm is not None
        assert cert.signature_hash_algorithm.name == "sha1"


def test_cert_mismatch(tls_profile: object) -> None:
    with sim_running(tls_profile, faults=["cert-mismatch"]) as sim:  # type: ignore[arg-type]
        assert sim.tls_cert_path is not None
        profile_cert = x509.load_pem_x509_certificate(sim.tls_cert_path.read_bytes())
        assert _served_cert(sim) != profile_cert
    with sim_running(tls_profile) as sim:  # type: ignore[arg-type]
        assert sim.tls_cert_path is not None
        assert _served_cert(sim) == x509.load_pem_x509_certificate(
            sim.tls_cert_path.read_bytes())


def _handshake(sim: Simulator, ctx: ssl.SSLContext) -> bool:
    try:
        with Conn(sim.host, sim.tls_port or 0, tls=ctx) as c:
            return c.banner() is not None
    except (ssl.SSLError, OSError):
        return False


def test_tls_legacy(tls_profile: object) -> None:
    with sim_running(tls_profile) as sim:  # type: ignore[arg-type]
        assert not _handshake(sim, _tls_client(legacy=True))
    with sim_running(tls_profile, faults=["tls-legacy"]) as sim:  # type: ignore[arg-type]
        assert _handshake(sim, _tls_client(legacy=True))


def test_tls_weak_ciphers(tls_profile: object) -> None:
    with sim_running(tls_profile) as sim:  # type: ignore[arg-type]
        assert not _handshake(sim, _tls_client(cipher="AES128-SHA"))
    with sim_running(tls_profile, faults=["tls-weak-ciphers"]) as sim:  # type: ignore[arg-type]
        assert _handshake(sim, _tls_client(cipher="AES128-SHA"))


def test_tls_weak_dh(tls_profile: object) -> None:
    dhe = "DHE-RSA-AES128-GCM-SHA256"
    with sim_running(tls_profile) as sim:  # type: ignore[arg-type]
        assert not _handshake(sim, _tls_client(cipher=dhe))
    with sim_running(tls_profile, faults=["tls-weak-dh"]) as sim:  # type: ignore[arg-type]
        assert _handshake(sim, _tls_client(cipher=dhe))


def test_tls_no_tls13(tls_profile: object) -> None:
    only13 = _tls_client()
    only13.minimum_version = ssl.TLSVersion.TLSv1_3
    with sim_running(tls_profile) as sim:  # type: ignore[arg-type]
        assert _handshake(sim, only13)
    with sim_running(tls_profile, faults=["tls-no-tls13"]) as sim:  # type: ignore[arg-type]
        assert not _handshake(sim, only13)


def test_tls_ca_leaf(tls_profile: object) -> None:
    with sim_running(tls_profile) as sim:  # type: ignore[arg-type]
        bc = _served_cert(sim).extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.value.ca is False
    with sim_running(tls_profile, faults=["tls-ca-leaf"]) as sim:  # type: ignore[arg-type]
        bc = _served_cert(sim).extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.value.ca is True


def test_tls_no_san(tls_profile: object) -> None:
    with sim_running(tls_profile, faults=["tls-no-san"]) as sim:  # type: ignore[arg-type]
        with pytest.raises(x509.ExtensionNotFound):
            _served_cert(sim).extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_plaintext_on_tls_port(tls_profile: object) -> None:
    with sim_running(tls_profile, faults=["plaintext-on-tls-port"]) as sim:  # type: ignore[arg-type]
        with Conn(sim.host, sim.tls_port or 0) as c:
            assert c.banner() == "Asterisk Call Manager/2.7.0"


def test_tls_pipeline_stall(tls_profile: object) -> None:
    with sim_running(tls_profile, faults=["tls-pipeline-stall"]) as sim:  # type: ignore[arg-type]
        with Conn(sim.host, sim.tls_port or 0, tls=_tls_client()) as c:
            c.login(events="off")
            c.send(PING * 3)
            assert len(c.quiet(0.3)) == 1
        with Conn.to(sim) as c:   # plaintext is unaffected
            c.login(events="off")
            c.send(PING * 3)
            assert len(c.read(3)) == 3


def test_plaintext_with_tls(tls_profile: object) -> None:
    prof = dataclasses.replace(tls_profile, tls=dataclasses.replace(  # type: ignore[type-var]
        tls_profile.tls, plaintext_allowed=False))  # type: ignore[attr-defined]
    with sim_running(prof) as sim:  # type: ignore[arg-type]  # compliant: TLS only
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((sim.host, sim.port), timeout=2).close()
    with sim_running(tls_profile, faults=["plaintext-with-tls"]) as sim:  # type: ignore[arg-type]
        assert sim.profile.tls.plaintext_allowed is False
        with Conn.to(sim) as c:
            assert c.banner() == "Asterisk Call Manager/2.7.0"


# -- framing faults ------------------------------------------------------------------------

@pytest.fixture
def logged(request: pytest.FixtureRequest) -> Iterator[Conn]:
    with sim_running(faults=[request.param]) as sim, Conn.to(sim) as c:
        c.login(events="off")
        c.sim = sim  # type: ignore[attr-defined]
        yield c


@pytest.mark.parametrize("logged", ["long-line-desync"], indirect=True)
def test_long_line_desync(logged: Conn) -> None:
    logged.send(b"Action: Ping\r\nActionID: L\r\nX: " + b"y" * 1500 + b"\r\n\r\n")
    assert logged.one()["Ping"] == "Pong"


@pytest.mark.parametrize("logged", ["nul-closes-session"], indirect=True)
def test_nul_closes_session(logged: Conn) -> None:
    logged.send(b"Action: Ping\x00\r\n\r\n")
    assert logged.closed(3)


@pytest.mark.parametrize("logged", ["header-limit-ignored"], indirect=True)
def test_header_limit_ignored(logged: Conn) -> None:
    logged.send(b"Action: Ping\r\n" + b"X: y\r\n" * 140 + b"\r\n")
    assert logged.one()["Ping"] == "Pong"


@pytest.mark.parametrize("logged", ["crlf-only"], indirect=True)
def test_crlf_only(logged: Conn) -> None:
    logged.send(b"Action: Ping\nActionID: lf\n\n")
    assert logged.quiet(0.3) == []
    logged.send(b"\r\n\r\n" + PING)   # CRLF still works (after the stuck message ends)
    stuck, pong = logged.read(2)
    assert stuck["Message"].startswith("Invalid/unknown command: Ping ActionID: lf")
    assert pong["ActionID"] == "p"


@pytest.mark.parametrize("logged", ["case-sensitive-keys"], indirect=True)
def test_case_sensitive_keys(logged: Conn) -> None:
    logged.send(b"action: Ping\r\nActionID: c\r\n\r\n")
    assert logged.one()["Message"] == "Missing action in request"


@pytest.mark.parametrize("logged", ["segment-sensitive"], indirect=True)
def test_segment_sensitive(logged: Conn) -> None:
    logged.send(b"Action: Pi")
    time.sleep(0.2)   # a separate read on the server
    logged.send(b"ng\r\nActionID: s\r\n\r\n")
    assert logged.one()["Message"] == "Missing action in request"


@pytest.mark.parametrize("logged", ["pipeline-drop"], indirect=True)
def test_pipeline_drop(logged: Conn) -> None:
    logged.send(PING * 3)
    assert len(logged.quiet(0.3)) == 1


@pytest.mark.parametrize("logged", ["crash-on-hostile"], indirect=True)
def test_crash_on_hostile(logged: Conn) -> None:
    sim: Simulator = logged.sim  # type: ignore[attr-defined]
    logged.send(b"Action: Ping\r\nX: " + b"y" * 1500 + b"\r\n\r\n")
    assert "line too long" in logged.one()["Message"]
    with Conn.to(sim) as c:
        assert c.banner() is None and c.eof
    sim.reset()
    with Conn.to(sim) as c:
        assert c.banner() == "Asterisk Call Manager/2.7.0"


@pytest.mark.parametrize("logged", ["error-text"], indirect=True)
def test_error_text(logged: Conn) -> None:
    logged.send(b"ActionID: e\r\n\r\nAction: NoSuch\r\n\r\n")
    missing, unknown = logged.read(2)
    assert missing["Message"] != "Missing action in request"
    assert not unknown["Message"].startswith("Invalid/unknown command")


@pytest.mark.parametrize("logged", ["slow-responses"], indirect=True)
def test_slow_responses(logged: Conn) -> None:
    t0 = time.monotonic()
    logged.send(PING)
    assert logged.one()["Ping"] == "Pong"
    assert time.monotonic() - t0 >= 0.02


# -- privilege faults ----------------------------------------------------------------------

def test_privilege_leak() -> None:
    for faults, expect_denied in (((), True), (("privilege-leak",), False)):
        with sim_running(faults=faults) as sim, Conn.to(sim) as c:
            _ensure_handlers(sim, "hangup")
            c.login("reportuser1", events="off")
            c.send(b"Action: Hangup\r\nChannel: PJSIP/none-1\r\n\r\n")
            denied = c.one().get("Message") == "Permission denied"
            assert denied is expect_denied, faults


def test_bridge_unprivileged() -> None:
    for faults, expect_denied in (((), True), (("bridge-unprivileged",), False)):
        with sim_running(faults=faults) as sim, Conn.to(sim) as c:
            _ensure_handlers(sim, "bridgelist")
            c.login("reportuser1", events="off")
            c.send(b"Action: BridgeList\r\n\r\n")
            denied = c.one().get("Message") == "Permission denied"
            assert denied is expect_denied, faults


def test_event_leak() -> None:
    with sim_running(faults=["event-leak"]) as sim, Conn.to(sim) as c:
        c.login("reportuser1")
        c.quiet(0.1)
        sim.emit(replies.event("Newchannel", ("call",), [("Channel", "PJSIP/1000-1")]),
                 ("call",))
        assert [m.name for m in c.quiet(0.3)] == ["Newchannel"]


def test_every_fault_has_a_test() -> None:
    import sys

    names = {n.removeprefix("test_").replace("_", "-") for n in dir(sys.modules[__name__])
             if n.startswith("test_")}
    covered = names | {"short-username", "weak-password", "system-privilege"}
    handled = {"listcommands-leak", "originate-system", "getvar-shell", "getconfig-traversal"}
    missing = set(FAULTS) - covered - handled  # the handler faults: tests/test_sim_handlers.py
    assert not missing


# -- MD5 bypass faults (issue 10): each accepts one kind of bad Key; good keys still work ------

_USER = "ucmamiuser1"
_REFUSE_DELAY = 0.3


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _challenge(c: Conn) -> str:
    c.banner()
    c.action("Challenge", AuthType="MD5", ActionID="ch")
    return c.one()["Challenge"]


def _md5_login(c: Conn, key: str) -> tuple[bytes, bool, float]:
    """(reply bytes after the banner, closed?, seconds to the reply) of an MD5 Login."""
    c.banner()
    start = len(c.raw)
    t0 = time.monotonic()
    c.action("Login", AuthType="MD5", Username=_USER, Key=key, ActionID="l", Events="off")
    reply = c.one()
    elapsed = time.monotonic() - t0
    closed = reply["Message"] == "Authentication failed" and c.closed(2.0)
    return bytes(c.raw[start:]), closed, elapsed


def _accepted(sim: Simulator, key_for: Callable[[Conn], str]) -> bool:
    with Conn.to(sim) as c:
        data, _, _ = _md5_login(c, key_for(c))
        return b"Authentication accepted" in data


def _bypasses() -> dict[str, Callable[[Simulator], Callable[[Conn], str]]]:
    """fault -> how to build the bad Key it accepts (the compliant simulator refuses it)."""

    def any_key(sim: Simulator) -> Callable[[Conn], str]:
        return lambda c: (_challenge(c), "0" * 32)[1]

    def stale(sim: Simulator) -> Callable[[Conn], str]:
        other = Conn.to(sim)           # another session's challenge, kept open meanwhile
        old = _challenge(other)

        def key(c: Conn) -> str:
            assert _challenge(c) != old
            return _md5(old + SECRET)
        return key

    def upper(sim: Simulator) -> Callable[[Conn], str]:
        return lambda c: _md5(_challenge(c) + SECRET).upper()

    def none(sim: Simulator) -> Callable[[Conn], str]:
        return lambda c: _md5(SECRET)

    return {"md5-any-key": any_key, "md5-stale-challenge": stale,
            "md5-uppercase-key": upper, "md5-no-challenge": none}


@pytest.mark.parametrize("fault", sorted(_bypasses()))
def test_md5_bypass(fault: str) -> None:
    make = _bypasses()[fault]
    with sim_running() as sim:
        assert not _accepted(sim, make(sim)), "the compliant simulator accepts the bad Key"
    with sim_running(faults=[fault]) as sim:
        assert _accepted(sim, make(sim)), f"{fault}: the bad Key is refused"
        # a valid key for the session's challenge still works (AMI-AUTH-003 passes)
        assert _accepted(sim, lambda c: _md5(_challenge(c) + SECRET))


def test_md5_any_key() -> None:
    test_md5_bypass("md5-any-key")
    with sim_running(faults=["md5-any-key"]) as sim:   # "after a Challenge" only
        assert not _accepted(sim, lambda c: "0" * 32)


def test_md5_stale_challenge() -> None:
    test_md5_bypass("md5-stale-challenge")


def test_md5_uppercase_key() -> None:
    test_md5_bypass("md5-uppercase-key")
    with sim_running(faults=["md5-uppercase-key"]) as sim:   # a wrong key stays wrong
        assert not _accepted(sim, lambda c: _md5(_challenge(c) + "x").upper())


def test_md5_no_challenge() -> None:
    test_md5_bypass("md5-no-challenge")
    with sim_running(faults=["md5-no-challenge"]) as sim:   # with a challenge: the usual key
        assert not _accepted(sim, lambda c: (_challenge(c), _md5(SECRET))[1])


@pytest.mark.parametrize("fault", [None, *sorted(_bypasses())])
def test_md5_refusal_looks_like_a_wrong_key(fault: str | None) -> None:
    """What each fault still refuses is refused exactly as the compliant wrong Key: the
    same bytes, the same delay, then the close."""
    faults = [fault] if fault else []
    with sim_running(faults=faults, fail_delay=_REFUSE_DELAY) as sim, Conn.to(sim) as c:
        if fault != "md5-any-key":       # that one refuses only a Login without a Challenge
            _challenge(c)
        data, closed, elapsed = _md5_login(c, "f" * 31 + "x")  # no hex digest matches it
    assert data == b"Response: Error\r\nActionID: l\r\nMessage: Authentication failed\r\n\r\n"
    assert closed
    assert _REFUSE_DELAY - 0.05 <= elapsed < _REFUSE_DELAY + 1.0


# -- the fault records themselves ----------------------------------------------------------------

def test_misspelt_hook_is_an_error() -> None:
    from amicheck.sim.faults import Fault

    with pytest.raises(ValueError, match="unknown behaviour hook"):
        Fault("x-fault", "a typo", hooks=(("close_on_logof", False),),
              fails=frozenset({"AMI-AUTH-004"}))
    with pytest.raises(ValueError, match="no requirement ID"):
        Fault("x-fault", "caught by nothing", hooks=(("close_on_logoff", False),))


def test_faults_overriding_one_hook_conflict() -> None:
    from amicheck.sim.faults import FaultConflictError

    with pytest.raises(FaultConflictError, match="md5_accepts"):
        Simulator(make_profile(), faults=("md5-any-key", "md5-uppercase-key"))
    # different hooks combine: both deviations are served
    with sim_running(faults=("banner-mismatch", "logoff-ignored")) as sim, Conn.to(sim) as c:
        assert c.banner() == "Asterisk Call Manager/1.1"
        assert sim.behaviour.close_on_logoff is False


def test_every_fault_overrides_something() -> None:
    from amicheck.sim.behaviour import COMPLIANT

    for name, fault in FAULTS.items():
        changed = [h for h, v in fault.hooks if getattr(COMPLIANT, h) != v]
        assert changed or fault.extra_users, f"{name} changes nothing"


@pytest.mark.parametrize("fault", [None, *sorted(FAULTS)])
def test_session_rules_are_the_behaviours_hooks(fault: str | None) -> None:
    """The sans-I/O session sees each session hook of a fault's behaviour, by its own name."""
    b = behaviour_for(frozenset() if fault is None else {fault})
    rules = rules_of(b)
    names = [f.name for f in dataclasses.fields(ServerRules)]
    assert set(names) <= HOOKS
    for name in names:
        assert getattr(rules, name) == getattr(b, name), name
