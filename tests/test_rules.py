"""rules.py: the UCM provisioning rules."""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from amicheck import rules
from amicheck.profile import Settings, TlsFiles, User, default_profile, parse_profile
from amicheck.rules import (
    RULES,
    UCM_SERVICE_PORTS,
    Finding,
    Level,
    acl_allows,
    check_profile,
    check_settings,
    check_tls_files,
    check_user,
    errors,
    password_ok,
    password_problems,
    permitted_entry_ok,
    privileges_ok,
    username_ok,
)
from amicheck.tlsfiles import MAX_TLS_FILE_BYTES, TlsFileError, read_tls_file

GOOD = User("ucmamiuser1", "Passw0rd", ("127.0.0.1/255.255.255.255",), ("all",))


def _rules(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings]


def test_default_profile_is_clean() -> None:
    assert check_profile(default_profile()) == []


def test_example_profile_is_clean() -> None:
    from amicheck.profile import load_profile

    data = Path(__file__).resolve().parents[1] / "amicheck" / "data"
    env = {"AMICHECK_SECRET_UCMAMIUSER1": "Abc12345", "AMICHECK_SECRET_REPORTUSER1": "Def678x"}
    prof = load_profile(data / "example-ucm.toml", env=env)
    # the example's PEM files do not exist: only tls-files may complain
    assert {f.rule for f in check_profile(prof)} <= {"tls-files"}


@pytest.mark.parametrize(
    ("name", "ok"), [("ucmamiuser1", True), ("abcdefgh", True), ("ami123", False), ("", False)]
)
def test_username_length(name: str, ok: bool) -> None:
    assert username_ok(name) is ok


@pytest.mark.parametrize(
    ("secret", "ok"),
    [
        ("abc123", True),
        ("ABC123", True),
        ("!!!123", True),
        ("Passw0rd", True),
        ("abcdef", False),  # no digit (the weak-password fault)
        ("123456", False),  # digits only
        ("ab12", False),  # too short
        ("", False),
    ],
)
def test_password_policy(secret: str, ok: bool) -> None:
    assert password_ok(secret) is ok


def test_password_problems_never_echo_secret() -> None:
    probs = password_problems("abcdef")
    assert probs == ["has no digit"]
    user = dataclasses.replace(GOOD, secret="s3")
    for f in check_user(user, 0):
        assert "s3" not in f.message.replace("users", "")
    assert password_problems("12") == [
        "has 2 characters, needs at least 6",
        "has no lowercase, uppercase or special character",
    ]


@pytest.mark.parametrize(
    ("entry", "ok"),
    [
        ("192.168.40.144/255.255.255.255", True),
        ("10.0.0.0/8", True),
        ("10.1.2.3/255.0.0.0", True),  # host bits set: Asterisk masks them
        ("2001:db8::/32", True),
        ("192.168.40.144", False),  # no mask
        ("192.168.1.0/255.0.255.0", False),  # non-contiguous mask
        ("300.1.1.1/32", False),
        ("10.0.0.0/33", False),
        (" 10.0.0.0/8", False),
        ("any", False),
    ],
)
def test_permitted_entry(entry: str, ok: bool) -> None:
    assert permitted_entry_ok(entry) is ok


def test_privileges_ok() -> None:
    assert privileges_ok(["all"])
    assert privileges_ok(["call", "cdr", "security", "dtmf", "cc"])
    assert not privileges_ok(["system"])
    assert not privileges_ok(["CC"])
    assert privileges_ok([])


def test_check_user_paths_and_levels() -> None:
    bad = User("ami123", "abcdef", ("bogus", "127.0.0.1/32"), ("system", "command", "CC", "call"))
    got = check_user(bad, 3)
    assert [(f.rule, f.path, f.severity) for f in got] == [
        ("username-length", "users[3].username", Level.ERROR),
        ("password-policy", "users[3].secret", Level.ERROR),
        ("permitted-entries", "users[3].permitted[0]", Level.ERROR),
        ("privileges-set", "users[3].privileges[0]", Level.ERROR),
        ("privileges-set", "users[3].privileges[1]", Level.ERROR),
        ("privileges-set", "users[3].privileges[2]", Level.ERROR),
    ]
    assert "did you mean 'cc'" in got[-1].message
    assert "abcdef" not in " ".join(f.message for f in got)


def test_check_user_warnings() -> None:
    u = User("ucmamiuser1", None, (), ())
    got = check_user(u)
    assert {f.rule for f in got} == {"password-policy", "permitted-entries", "privileges-set"}
    assert errors(got) == []
    assert got[0].path.startswith("users['ucmamiuser1']")
    dup = dataclasses.replace(GOOD, privileges=("call", "call"))
    assert [f.severity for f in check_user(dup)] == [Level.WARNING]


def test_disabled_rules() -> None:
    prof = dataclasses.replace(
        default_profile(),
        users=(*default_profile().users, User("ami123", "Passw0rd", ("127.0.0.1/32",), ("all",))),
    )
    assert _rules(check_profile(prof)) == ["username-length"]
    assert check_profile(prof, disabled=frozenset({"username-length"})) == []
    with pytest.raises(ValueError, match="no-such-rule"):
        check_profile(prof, disabled=frozenset({"no-such-rule"}))


def test_settings_rules() -> None:
    assert check_settings(Settings()) == []
    bad = Settings(
        port=0,
        tls_enable=True,
        tls_port=8089,
        write_timeout_ms=50,
        auth_timeout_s=0,
        auth_limit=0,
        tls_bind="any",
        stock_port=70000,
    )
    got = [(f.rule, f.path) for f in check_settings(bad)]
    assert got == [
        ("ports", "settings.port"),
        ("ports", "settings.stock_port"),
        ("ports", "settings.tls_port"),
        ("write-timeout", "settings.write_timeout_ms"),
        ("auth-timeout", "settings.auth_timeout_s"),
        ("auth-limit", "settings.auth_limit"),
        ("tls-bind", "settings.tls_bind"),
    ]


def test_same_port_error_only_with_tls() -> None:
    on = check_settings(Settings(port=5039, tls_port=5039, tls_enable=True))
    off = check_settings(Settings(port=5039, tls_port=5039, tls_enable=False))
    assert [f.severity for f in on] == [Level.ERROR]
    assert [f.severity for f in off] == [Level.WARNING]


def test_service_ports_documented() -> None:
    assert {22, 80, 5060, 8089}.issubset(UCM_SERVICE_PORTS)
    assert 7777 not in UCM_SERVICE_PORTS and 5039 not in UCM_SERVICE_PORTS
    f = check_settings(Settings(port=5060))
    assert f[0].rule == "ports" and "SIP" in f[0].message


def test_rule_ids_stable() -> None:
    assert {
        "username-length",
        "password-policy",
        "permitted-entries",
        "privileges-set",
        "ports",
        "write-timeout",
        "tls-files",
    } <= set(RULES)


@pytest.mark.parametrize(
    ("permitted", "ip", "ok"),
    [
        ((), "127.0.0.1", False),  # UCM: empty list denies all
        (("127.0.0.1/255.255.255.255",), "127.0.0.1", True),
        (("127.0.0.1/255.255.255.255",), "127.0.0.2", False),
        (("127.0.0.0/8",), "127.0.0.2", True),
        (("bogus", "127.0.0.2/32"), "127.0.0.2", True),
        (("127.0.0.1/32",), "::ffff:127.0.0.1", True),
        (("::1/128",), "::1", True),
        (("::1/128",), "127.0.0.1", False),
        (("127.0.0.1/32",), "not-an-ip", False),
    ],
)
def test_acl_allows(permitted: tuple[str, ...], ip: str, ok: bool) -> None:
    assert acl_allows(permitted, ip) is ok


# --- TLS files -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _pair(tmp_path: Path, ca: trustme.CA, name: str = "ucm.test") -> TlsFiles:
    issued = ca.issue_cert(name)
    cert = tmp_path / f"{name}-cert.pem"
    key = tmp_path / f"{name}-key.pem"
    cert.write_bytes(issued.cert_chain_pems[0].bytes())
    key.write_bytes(issued.private_key_pem.bytes())
    return TlsFiles(cert=cert, key=key)


def test_tls_files_ok(tmp_path: Path, ca: trustme.CA) -> None:
    assert check_tls_files(_pair(tmp_path, ca)) == []
    assert check_tls_files(TlsFiles()) == []


def test_tls_files_mismatch(tmp_path: Path, ca: trustme.CA) -> None:
    a = _pair(tmp_path, ca, "a.test")
    b = _pair(tmp_path, ca, "b.test")
    got = check_tls_files(TlsFiles(cert=a.cert, key=b.key))
    assert [(f.rule, f.path) for f in got] == [("tls-files", "tls.key")]
    assert "does not match" in got[0].message


def test_tls_files_bad_pem_and_missing(tmp_path: Path, ca: trustme.CA) -> None:
    good = _pair(tmp_path, ca)
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    got = check_tls_files(TlsFiles(cert=junk, key=junk))
    assert [f.path for f in got] == ["tls.cert", "tls.key"]
    got = check_tls_files(TlsFiles(cert=tmp_path / "absent.pem", key=good.key))
    assert [f.path for f in got] == ["tls.cert"]
    got = check_tls_files(TlsFiles(cert=good.cert))
    assert [(f.path, f.severity) for f in got] == [("tls.key", Level.ERROR)]


def test_tls_files_too_big(tmp_path: Path, ca: trustme.CA) -> None:
    good = _pair(tmp_path, ca)
    big = tmp_path / "big.pem"
    big.write_bytes(good.cert.read_bytes() if good.cert else b"")
    with big.open("ab") as fh:
        fh.write(b"#" * (2 * 1024 * 1024))
    got = check_tls_files(TlsFiles(cert=big, key=good.key))
    assert len(got) == 1 and "under 2 MB" in got[0].message


def test_profile_with_tls_files(tmp_path: Path, ca: trustme.CA) -> None:
    pair = _pair(tmp_path, ca)
    assert pair.cert is not None and pair.key is not None
    text = f"""
[settings]
tls_enable = true
[tls]
cert = "{pair.cert.name}"
key = "{pair.key.name}"
"""
    prof = parse_profile(text, tmp_path)
    assert check_profile(prof) == []
    assert check_profile(prof, disabled=frozenset({"tls-files"})) == []


def test_tls_files_fifo_refused_unread(tmp_path: Path, ca: trustme.CA) -> None:
    good = _pair(tmp_path, ca)
    fifo = tmp_path / "cert.pem"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)  # opening it would block until a writer comes
    got = check_tls_files(TlsFiles(cert=fifo, key=good.key))
    said = f"{fifo}: is a FIFO (named pipe), not a PEM file"
    assert [(f.path, f.message) for f in got] == [("tls.cert", said)]


def test_read_tls_file(tmp_path: Path) -> None:
    small = tmp_path / "small.pem"
    small.write_bytes(b"x" * 10)
    assert read_tls_file(small) == (b"x" * 10, 10)
    big = tmp_path / "big.pem"
    big.write_bytes(b"x" * MAX_TLS_FILE_BYTES)
    with pytest.raises(TlsFileError) as exc:
        read_tls_file(big)
    assert (exc.value.code, exc.value.size) == ("too-big", MAX_TLS_FILE_BYTES)
    with pytest.raises(TlsFileError, match="No such file") as exc:
        read_tls_file(tmp_path / "missing.pem")
    assert exc.value.code == "unreadable"


def test_rules_does_not_import_tlsaudit() -> None:
    """rules -> tlsaudit -> rules was a cycle; rules reads TLS files through tlsfiles only."""
    source = (Path(rules.__file__)).read_text(encoding="utf-8")
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {m for m in imported if m and "tlsaudit" in m}, imported
    code = ("import sys, amicheck.rules as r, pathlib; "
            "r.check_profile(r.Profile()); assert 'amicheck.tlsaudit' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_finding_has_no_alias() -> None:
    assert not hasattr(Finding("ports", "settings.port", "m"), "rule_id")
