"""Tests of the suites themselves: the catalogue, the helpers, and how the suites behave
against a target that is not the embedded simulator (a compliant simulator addressed as a
real device; a target that hangs; a target that drops the connection).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import re
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

# Imported before any in-process run (see tests/test_faults.py).
import amicheck.client
import amicheck.plugin
import amicheck.profile
import amicheck.stats
import amicheck.tlsaudit  # noqa: F401
from amicheck import requirements
from amicheck.profile import default_profile
from amicheck.protocol import Message
from amicheck.requirements import AREAS, CATALOGUE, Requirement, Severity
from amicheck.sim import Simulator

SUITES = Path(__file__).resolve().parents[1] / "suites"


def _load_support() -> ModuleType:
    """suites/_support.py, importable whatever the working directory and sys.path."""
    name = "suites._support"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SUITES / "_support.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


_support = _load_support()
DESIGN_PREFIXES = {"CFG", "ACL", "AUTH", "TLS", "FRM", "PRV", "PRF"}


# --- the catalogue ------------------------------------------------------------------------------


def test_catalogue_ids_and_areas() -> None:
    assert set(AREAS) == DESIGN_PREFIXES
    for rid, req in CATALOGUE.items():
        assert rid == req.id
        assert rid.startswith(f"AMI-{req.area}-") and len(rid.rsplit("-", 1)[1]) == 3
        assert isinstance(req.severity, Severity)
        assert req.title and req.source and req.remediation.endswith(".")
        assert req.area_title == AREAS[req.area]
    assert {r.area for r in CATALOGUE.values()} == DESIGN_PREFIXES


def test_get_names_the_unknown_id() -> None:
    assert requirements.get("AMI-AUTH-001").area == "AUTH"
    with pytest.raises(KeyError, match="AMI-NOPE-001"):
        requirements.get("AMI-NOPE-001")


def test_requirement_validates_its_id() -> None:
    with pytest.raises(ValueError, match="AMI-TLS-NNN"):
        Requirement("AMI-CFG-001", "t", "TLS", Severity.LOW, "s", "r.")
    with pytest.raises(ValueError, match="unknown area"):
        Requirement("AMI-XYZ-001", "t", "XYZ", Severity.LOW, "s", "r.")


def test_severity_order_and_grouping() -> None:
    ranks = [s.rank for s in Severity]
    assert ranks == sorted(ranks) and str(Severity.CRITICAL) == "critical"
    groups = requirements.by_area()
    assert list(groups) == list(AREAS)
    assert sum(len(g) for g in groups.values()) == len(CATALOGUE)
    assert requirements.area_title("PRV") == "Privileges"
    assert requirements.area_title("???") == "???"


# --- helpers ------------------------------------------------------------------------------------


def test_percentile_nearest_rank() -> None:
    data = [float(i) for i in range(1, 101)]
    assert _support.percentile(data, 50) == 50.0
    assert _support.percentile(data, 99) == 99.0
    assert _support.percentile([3.0], 95) == 3.0
    with pytest.raises(ValueError):
        _support.percentile([], 50)


def test_reply_helpers() -> None:
    denied = Message([("Response", "Error"), ("ActionID", "1"), ("Message", "Permission denied")])
    other = Message([("Response", "Error"), ("ActionID", "2"), ("Message", "Permission denied")])
    assert _support.is_denied(denied)
    assert not _support.is_denied(Message([("Response", "Success")]))
    assert not _support.is_denied(None)
    assert _support.reply_fields(denied) == _support.reply_fields(other)
    assert _support.describe(denied) == "Response: Error / Message: Permission denied"
    assert _support.describe(None) == "no reply"
    assert not hasattr(_support, "md5_key")  # one definition: amicheck.redaction.md5_key
    assert _support.percentile is amicheck.stats.percentile


# --- fake targets -------------------------------------------------------------------------------

BANNER = b"Asterisk Call Manager/2.7.0\r\n"


def _serve(behaviour: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback TCP server running ``behaviour`` per connection; yields its port."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conns.append(conn)
            threading.Thread(target=behaviour, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        srv.close()
        thread.join(2)
        for c in conns:
            c.close()


def _login_then(after: Callable[[socket.socket, bytes], None]) -> Callable[[socket.socket], None]:
    """Banner, a Success for the first message (the Login), then ``after``."""

    def run(conn: socket.socket) -> None:
        try:
            conn.sendall(BANNER)
            data = b""
            conn.settimeout(10)
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            aid = next((ln.split(b":", 1)[1].strip() for ln in head.split(b"\r\n")
                        if ln.lower().startswith(b"actionid:")), b"")
            conn.sendall(b"Response: Success\r\nActionID: " + aid
                         + b"\r\nMessage: Authentication accepted\r\n\r\n")
            after(conn, rest)
        except OSError:
            return

    return run


def _hang(conn: socket.socket, _rest: bytes) -> None:
    """Read everything, answer nothing (a stalled target)."""
    conn.settimeout(30)
    while conn.recv(65536):
        pass


def _drop(conn: socket.socket, _rest: bytes) -> None:
    """Close on the first byte after the login."""
    conn.settimeout(30)
    if not _rest:
        conn.recv(1)
    conn.close()


@pytest.fixture
def hanging_target() -> Iterator[int]:
    yield from _serve(_login_then(_hang))


@pytest.fixture
def dropping_target() -> Iterator[int]:
    yield from _serve(_login_then(_drop))


def _run_against(pytester: pytest.Pytester, target: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(
        str(SUITES), "-p", "no:cacheprovider", "--ami-target", target,
        "--ami-report-dir", str(pytester.path / "reports"), *args,
    )


def _failures(result: pytest.RunResult) -> dict[str, str]:
    out = {}
    for rep in result.reprec.getreports("pytest_runtest_logreport"):  # type: ignore[attr-defined]
        if rep.failed:
            sections = "".join(f"\n--- {name} ---\n{body}" for name, body in rep.sections)
            out[rep.nodeid.rsplit("::", 1)[1]] = rep.longreprtext + sections
    return out


SESSION_CHECKS = "pipelined or long_lines or one_byte or ping_latency"


@pytest.mark.slow
def test_hanging_target_fails_with_evidence(
    pytester: pytest.Pytester, hanging_target: int
) -> None:
    """A target that logs in and then answers nothing: failures that say so, no hang."""
    result = _run_against(pytester, f"127.0.0.1:{hanging_target}", "-k", SESSION_CHECKS)
    failures = _failures(result)
    expected = {"test_long_lines", "test_one_byte_writes", "test_pipelined_tcp",
                "test_ping_latency"}
    assert expected <= set(failures), sorted(failures)
    for name in expected:
        text = failures[name]
        assert "silent" in text or "timed out" in text, (name, text[-600:])
        assert "AMI transcript" in text, f"{name}: no transcript as evidence"


@pytest.mark.slow
def test_dropping_target_fails_with_evidence(
    pytester: pytest.Pytester, dropping_target: int
) -> None:
    """A target that closes the connection after login: failures naming the close."""
    result = _run_against(pytester, f"127.0.0.1:{dropping_target}", "-k", SESSION_CHECKS)
    failures = _failures(result)
    expected = {"test_long_lines", "test_one_byte_writes", "test_pipelined_tcp",
                "test_ping_latency"}
    assert expected <= set(failures), sorted(failures)
    for name in expected:
        assert "closed" in failures[name], (name, failures[name][-600:])


def _free_ports(n: int) -> list[int]:
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(n)]
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_compliant_device_as_real_target(pytester: pytest.Pytester) -> None:
    """The simulator on the profile's own ports, checked as a real device: nothing fails,
    state-changing and guessing checks are skipped with their reason."""
    port, tls_port, stock_port = _free_ports(3)
    prof = default_profile()
    assert prof.path is not None
    text = prof.path.read_text(encoding="utf-8")
    for key, value in (("port", port), ("tls_port", tls_port), ("stock_port", stock_port)):
        old = f"\n{key} = {getattr(prof.settings, key)}\n"
        assert old in text, key
        text = text.replace(old, f"\n{key} = {value}\n")
    path = pytester.path / "device.toml"
    path.write_text(text, encoding="utf-8")
    from amicheck.profile import load_profile

    with Simulator(load_profile(path), port=None, tls_port=None, fail_delay=0.4):
        result = _run_against(
            pytester, f"127.0.0.1:{port}", "--ami-profile", str(path), "-m", "not slow",
            "--ami-outside-source", "127.0.0.2",
        )
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    failed = {r.nodeid: r.longreprtext[-400:] for r in reports if r.failed}
    assert not failed, failed
    skipped = {r.nodeid.rsplit("::", 1)[1]: str(r.longrepr) for r in reports if r.skipped}
    assert "test_weak_passwords" in skipped and "--ami-allow-bruteforce" in (
        skipped["test_weak_passwords"]
    )
    assert "test_empty_list_denies_all" in skipped  # no such user in the profile
    assert "test_certificate_files" in skipped  # the profile names no certificate file
    passed = {r.nodeid.rsplit("::", 1)[1] for r in reports if r.passed and r.when == "call"}
    assert {"test_permitted_list_enforced", "test_tls_listener", "test_pipelined_tls",
            "test_port_layout"} <= passed


def test_tls_disabled_profile(pytester: pytest.Pytester) -> None:
    """With TLS off in the profile, the TLS listener check passes (nothing listens) and the
    other TLS checks skip, each with its reason."""
    prof = default_profile()
    assert prof.path is not None
    text = prof.path.read_text(encoding="utf-8")
    assert "\ntls_enable = true\n" in text
    path = pytester.path / "no-tls.toml"
    path.write_text(text.replace("\ntls_enable = true\n", "\ntls_enable = false\n"),
                    encoding="utf-8")
    result = _run_against(pytester, "sim", "--ami-profile", str(path), "-m", "not slow",
                          "--ami-fail-delay", "0.4", "-k", "tls")
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    assert not [r.nodeid for r in reports if r.failed]
    skipped = {r.nodeid.rsplit("::", 1)[1]: str(r.longrepr) for r in reports if r.skipped}
    passed = {r.nodeid.rsplit("::", 1)[1] for r in reports if r.passed and r.when == "call"}
    assert "test_tls_listener" in passed
    assert {"test_certificate_validity", "test_protocol_versions", "test_cipher_suites",
            "test_plaintext_on_tls_port", "test_plaintext_next_to_tls",
            "test_pipelined_tls"} <= set(skipped)
    assert all("TLS" in reason for reason in skipped.values()), skipped


# --- MD5 login bypasses (AMI-AUTH-008) ----------------------------------------------------------

FAKE_DELAY = 0.4
_serving = contextlib.contextmanager(_serve)


#: (key, this session's challenges, secret, every challenge issued) -> accepted?
KeyJudge = Callable[[str, list[str], str, set[str]], bool]


def _md5_server(accepts: KeyJudge, *, renew: bool = False) -> Callable[[socket.socket], None]:
    """A fake AMI that checks plain Secrets like Asterisk (delay, Authentication failed,
    close) and lets ``accepts`` judge MD5 Keys; ``renew``: a new challenge per Challenge."""
    users = {u.username.lower(): u.secret or "" for u in default_profile().users}
    issued: set[str] = set()

    def run(conn: socket.socket) -> None:
        conn.settimeout(10)
        mine: list[str] = []
        buf = b""
        try:
            conn.sendall(BANNER)
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                fields = {}
                for line in head.decode().split("\r\n"):
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                aid = fields.get("actionid", "")
                action = fields.get("action", "").lower()
                if action == "challenge":
                    if renew or not mine:
                        mine.append(str(secrets.randbelow(900_000_000) + 100_000_000))
                        issued.add(mine[-1])
                    reply = f"Response: Success\r\nActionID: {aid}\r\nChallenge: {mine[-1]}"
                elif action == "login":
                    secret = users.get(fields.get("username", "").lower())
                    if secret is None:
                        ok = False
                    elif fields.get("authtype", "").lower() == "md5":
                        ok = accepts(fields.get("key", ""), mine, secret, issued)
                    else:
                        ok = fields.get("secret") == secret
                    if not ok:
                        time.sleep(FAKE_DELAY)
                        conn.sendall(f"Response: Error\r\nActionID: {aid}\r\n"
                                     "Message: Authentication failed\r\n\r\n".encode())
                        return
                    reply = (f"Response: Success\r\nActionID: {aid}\r\n"
                             "Message: Authentication accepted")
                else:
                    reply = f"Response: Success\r\nActionID: {aid}\r\nPing: Pong"
                conn.sendall(reply.encode() + b"\r\n\r\n")
        except OSError:
            return
        finally:
            conn.close()

    return run


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _right(key: str, mine: list[str], secret: str, _issued: set[str]) -> bool:
    return bool(mine) and key == _md5(mine[-1] + secret)


WRONG_KEY = "a wrong key was ACCEPTED"
OTHER_SESSION = "the key for another session's challenge was ACCEPTED"
UPPER_CASE = "the upper-case hex form of the right key was ACCEPTED"
NO_CHALLENGE = "the key md5(secret) with no Challenge asked was ACCEPTED"
STALE = "the key for the first of two different Challenges was ACCEPTED"
#: fake target -> (how it judges a Key, the cases the check must name as accepted).
MD5_SERVERS: dict[str, tuple[KeyJudge, set[str]]] = {
    "any-key": (lambda key, c, s, i: bool(key),
                {WRONG_KEY, OTHER_SESSION, UPPER_CASE, NO_CHALLENGE}),
    "uppercase": (lambda key, c, s, i: _right(key.lower(), c, s, i), {UPPER_CASE}),
    "no-challenge": (lambda key, c, s, i: _right(key, c, s, i) or (not c and key == _md5(s)),
                     {NO_CHALLENGE}),
    "any-challenge": (lambda key, c, s, i: bool(c) and any(key == _md5(x + s) for x in i),
                      {OTHER_SESSION}),
    "stale-challenge": (lambda key, c, s, i: any(key == _md5(x + s) for x in c), {STALE}),
}
#: Fakes that hand out a new challenge for every Challenge (as the stale-key case needs).
RENEWING = {"stale-challenge"}


@pytest.mark.parametrize("kind", sorted(MD5_SERVERS))
def test_md5_bypass_fails_auth_008(pytester: pytest.Pytester, kind: str) -> None:
    """A target that lets a bad MD5 key in fails AMI-AUTH-008, naming the accepted case."""
    accepts, expected = MD5_SERVERS[kind]
    with _serving(_md5_server(accepts, renew=kind in RENEWING)) as port:
        result = _run_against(pytester, f"127.0.0.1:{port}", "-k", "md5_wrong_keys")
    failures = _failures(result)
    assert set(failures) == {"test_md5_wrong_keys_refused"}, sorted(failures)
    text = failures["test_md5_wrong_keys_refused"]
    pattern = r"^E {2,}(?!assert )([a-z][^\[\]]*? was ACCEPTED): Response"
    accepted = set(re.findall(pattern, text, re.MULTILINE))
    assert accepted == expected, text[-1500:]  # only the bypass this target has


def test_md5_compliant_target_passes_auth_008(pytester: pytest.Pytester) -> None:
    """The same fake, judging keys as Asterisk does, passes (with a challenge kept per
    session, and renewed per Challenge); so does the simulator."""
    for renew in (False, True):
        with _serving(_md5_server(_right, renew=renew)) as port:
            result = _run_against(pytester, f"127.0.0.1:{port}", "-k", "md5_wrong_keys")
        result.assert_outcomes(passed=1)
    result = _run_against(pytester, "sim", "-k", "md5_wrong_keys", "--ami-fail-delay", "0.4")
    result.assert_outcomes(passed=1)


def test_md5_right_key_refused_skips(pytester: pytest.Pytester) -> None:
    """A target refusing every MD5 key has no bypass to find: skipped with the reason."""
    with _serving(_md5_server(lambda key, c, s, i: False)) as port:
        result = _run_against(pytester, f"127.0.0.1:{port}", "-k", "md5_wrong_keys", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*right MD5 key*refused*AMI-AUTH-003*"])


# --- where the harness may log in from (issue 9: the AMI-PRV-007 false alarm) -------------------


def _user(name: str, *permitted: str) -> amicheck.profile.User:
    return amicheck.profile.User(name, "Pass-w0rd1", tuple(permitted), ("reporting",))


def test_sources_leave_out_users_the_harness_cannot_be() -> None:
    here, there, elsewhere = (_user("localuser1", "127.0.0.1/255.255.255.255"),
                              _user("outsideuser1", "127.0.0.2/255.255.255.255"),
                              _user("aclblocked1", "127.0.0.3/255.255.255.255"))
    sources = _support.Sources("127.0.0.1", "127.0.0.2")
    assert sources.reachable([here, there, elsewhere], "user") == [(here, None),
                                                                   (there, "127.0.0.2")]
    no_outside = _support.Sources("127.0.0.1", None)
    assert no_outside.reachable([here, there], "user") == [(here, None)]
    with pytest.raises(pytest.skip.Exception, match=r"no user may log in from 127\.0\.0\.1 "
                       r"\(left out: outsideuser1, aclblocked1\)"):
        no_outside.reachable([there, elsewhere], "user")


def _profile_with(pytester: pytest.Pytester, extra: str) -> Path:
    prof = default_profile()
    assert prof.path is not None
    path = pytester.path / "with-users.toml"
    path.write_text(prof.path.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return path


BLOCKED_USERS = """
[[users]]
username = "aclblocked1"
secret = "Bl0cked-Pass1"
permitted = ["127.0.0.2/255.255.255.255"]
privileges = ["reporting"]

[[users]]
username = "aclblocked2"
secret = "Bl0cked-Pass2"
permitted = ["127.0.0.3/255.255.255.255"]
privileges = ["call"]
"""


def test_users_permitted_elsewhere_are_no_failure(pytester: pytest.Pytester) -> None:
    """Users permitted only from the outside source (or from nowhere the harness has) make
    no check fail: they log in from the outside source, or are left out."""
    path = _profile_with(pytester, BLOCKED_USERS)
    result = _run_against(pytester, "sim", "--ami-profile", str(path), "-m", "not slow",
                          "--ami-fail-delay", "0.4", "-k", "PRV or AUTH or ACL or privileges "
                          "or auth or acl")
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    assert not {r.nodeid: r.longreprtext[-600:] for r in reports if r.failed}
    passed = {r.nodeid.rsplit("::", 1)[1] for r in reports if r.passed and r.when == "call"}
    assert {"test_getconfig_confined", "test_action_classes", "test_listcommands_filtered",
            "test_md5_wrong_keys_refused", "test_permitted_list_enforced"} <= passed


TEMP_USER_CHECKS = '''
import pytest
from amicheck.redaction import derived_secrets
from ._support import attempt_login

@pytest.mark.requirement("AMI-ACL-002")
def test_made(ami_temp_user, ami_connect, ami_target):
    user = ami_temp_user(privileges=("reporting",))
    assert user.secret in derived_secrets()
    assert ami_target.sim.profile.user(user.username) is not None
    assert attempt_login(ami_connect, user.username, user.secret, wait_close=False).ok
    named = ami_temp_user("tmpnamed01", permitted=(), secret="Gu3ss-Me1")
    assert not attempt_login(ami_connect, named.username, "Gu3ss-Me1").ok  # empty list
    pytest.temp_names = [user.username, named.username]

@pytest.mark.requirement("AMI-ACL-001")
def test_gone_after_teardown(ami_sim):
    assert [n for n in pytest.temp_names if ami_sim.profile.user(n) is not None] == []
'''


def test_ami_temp_user_fixture(pytester: pytest.Pytester) -> None:
    """The suites' temporary users exist for their test only; a real target skips."""
    pkg = pytester.path / "probe_pkg"
    pkg.mkdir()
    for name in ("__init__.py", "_support.py", "_access.py", "conftest.py"):
        (pkg / name).write_text((SUITES / name).read_text(encoding="utf-8"), encoding="utf-8")
    (pkg / "test_temp.py").write_text(TEMP_USER_CHECKS, encoding="utf-8")
    result = pytester.runpytest_inprocess(str(pkg), "-p", "no:cacheprovider",
                                          "--ami-report-dir", str(pytester.path / "r"))
    result.assert_outcomes(passed=2)
    port, tls_port, stock_port = _free_ports(3)
    with Simulator(default_profile(), port=port, tls_port=tls_port, fail_delay=0.4):
        result = pytester.runpytest_inprocess(
            str(pkg), "-p", "no:cacheprovider", "-rs", "-k", "made",
            "--ami-target", f"127.0.0.1:{port}", "--ami-report-dir", str(pytester.path / "r"))
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*temporary AMI user*only on the embedded simulator*"])


def test_catalogue_file_is_validated() -> None:
    """The catalogue's data file: exactly the five keys per entry, known severities."""
    good = ('[[requirement]]\nid = "AMI-CFG-001"\ntitle = "t"\nseverity = "low"\n'
            'source = "s"\nremediation = "r."\n')
    (req,) = requirements._load(good)
    assert (req.id, req.area, req.severity) == ("AMI-CFG-001", "CFG", Severity.LOW)
    with pytest.raises(ValueError, match=r"requirement\[0\]: needs exactly the keys"):
        requirements._load(good.replace('title = "t"\n', ""))
    with pytest.raises(ValueError, match="'urgent' is not a valid Severity"):
        requirements._load(good.replace('"low"', '"urgent"'))
    with pytest.raises(ValueError, match="ID must be AMI-CFG-NNN"):
        requirements._load(good.replace("AMI-CFG-001", "AMI-CFG-ABC"))
    assert requirements.get("AMI-AUTH-008").severity is Severity.HIGH
