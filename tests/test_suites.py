"""Tests of the suites themselves: the catalogue, the helpers, and how the suites behave
against a target that is not the embedded simulator (a compliant simulator addressed as a
real device; a target that hangs; a target that drops the connection).
"""

from __future__ import annotations

import hashlib
import importlib.util
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

# Imported before any in-process run (see tests/test_faults.py).
import amicheck.client
import amicheck.plugin
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
    assert _support.md5_key("1234", "secret") == hashlib.md5(b"1234secret").hexdigest()


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
