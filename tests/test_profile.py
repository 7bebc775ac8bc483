"""profile.py: TOML contract, every problem reported, secrets hidden."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amicheck.errors import ProfileError
from amicheck.profile import (
    MAX_LISTED_PROBLEMS,
    MAX_PROFILE_BYTES,
    Profile,
    Settings,
    Thresholds,
    User,
    default_profile,
    load_profile,
    parse_profile,
)

DATA = Path(__file__).resolve().parents[1] / "amicheck" / "data"

MINIMAL = """
[target]
name = "t"
host = "127.0.0.1"

[[users]]
username = "ucmamiuser1"
secret = "Passw0rd"
permitted = ["127.0.0.1/255.255.255.255"]
privileges = ["all"]
"""


def test_default_profile() -> None:
    prof = default_profile()
    assert prof.name == "amicheck-simulator"
    assert prof.target.host == "127.0.0.1"
    s = prof.settings
    assert (s.port, s.tls_enable, s.tls_port, s.write_timeout_ms) == (7777, True, 5039, 100)
    assert (s.timestamp_events, s.auth_timeout_s, s.auth_limit) == (False, 30, 50)
    assert s.banner == "Asterisk Call Manager/2.7.0"
    assert s.stock_port == 5038
    assert prof.tls.cert is None and prof.tls.key is None
    assert prof.tls.plaintext_allowed
    names = {u.username: u.privileges for u in prof.users}
    assert names == {
        "ucmamiuser1": ("all",),
        "reportuser1": ("reporting",),
        "calluser01": ("call",),
        "origuser01": ("originate",),
        "agentuser1": ("agent",),
        "cdruser001": ("cdr",),
        "useruser01": ("user",),
        "dialplan01": ("dialplan",),
    }
    for u in prof.users:
        assert u.secret
        assert u.permitted == ("127.0.0.1/255.255.255.255",)
    assert prof.path is not None and prof.path.name == "default-profile.toml"
    assert prof.thresholds == Thresholds()


def test_default_profile_is_fast_and_cached() -> None:
    t0 = time.perf_counter()
    fresh = load_profile(DATA / "default-profile.toml", env={})
    t1 = time.perf_counter()
    a = default_profile()
    t2 = time.perf_counter()
    assert a is default_profile()
    t3 = time.perf_counter()
    print(
        f"\nload default profile: {(t1 - t0) * 1000:.2f} ms; default_profile(): "
        f"{(t2 - t1) * 1000:.2f} ms, then {(t3 - t2) * 1e6:.1f} us (cached)"
    )
    assert fresh == a


def test_minimal_defaults() -> None:
    prof = parse_profile(MINIMAL)
    assert prof.settings == Settings()
    assert prof.path is None
    assert prof.user("ucmamiuser1") is prof.users[0]
    assert prof.user("UCMAMIUSER1") is prof.users[0]
    assert prof.user("nobody") is None


def test_secret_hidden_in_repr() -> None:
    prof = parse_profile(MINIMAL)
    assert "Passw0rd" not in repr(prof.users[0])
    assert "Passw0rd" not in repr(prof)
    assert "Passw0rd" not in str(prof.users[0])
    assert prof.secrets() == {"Passw0rd"}


def test_secret_env_resolved() -> None:
    text = MINIMAL.replace('secret = "Passw0rd"', 'secret_env = "AMICHECK_SECRET_X"')
    prof = parse_profile(text, env={"AMICHECK_SECRET_X": "fromEnv1"})
    assert prof.users[0].secret == "fromEnv1"
    assert prof.users[0].secret_env == "AMICHECK_SECRET_X"


def test_secret_env_missing_named() -> None:
    text = MINIMAL.replace('secret = "Passw0rd"', 'secret_env = "AMICHECK_SECRET_X"')
    with pytest.raises(ProfileError) as ei:
        parse_profile(text, env={}, source_name="p.toml")
    assert ei.value.problems == [
        "users[0].secret: not set (secret_env AMICHECK_SECRET_X is not in the environment)"
    ]
    assert ei.value.path == "p.toml"


def test_every_problem_listed() -> None:
    text = """
bogus = 1
[target]
name = 5
[settings]
port = "7777"
tls_enable = 1
colour = "red"
[tls]
plaintext_allowed = "yes"
[thresholds]
ping_p50_ms = true
[[users]]
username = "a"
secret = "x"
secret_env = "Y"
[[users]]
secret = "Passw0rd"
permitted = "127.0.0.1"
extra = 1
[[users]]
username = "A"
"""
    with pytest.raises(ProfileError) as ei:
        parse_profile(text, env={})
    probs = ei.value.problems
    keys = sorted(p.split(":")[0] for p in probs)
    assert keys == sorted(
        [
            "bogus",
            "target.name",
            "settings.port",
            "settings.tls_enable",
            "settings.colour",
            "tls.plaintext_allowed",
            "thresholds.ping_p50_ms",
            "users[0]",
            "users[1].permitted",
            "users[1].extra",
            "users[1].username",
            "users[2].username",
        ]
    ), probs
    assert "invalid profile (12 problem(s))" in str(ei.value)


def test_bad_toml() -> None:
    with pytest.raises(ProfileError, match="not valid TOML"):
        parse_profile("[target\n", source_name="x.toml")


def test_wrong_table_shapes() -> None:
    with pytest.raises(ProfileError) as ei:
        parse_profile('settings = 3\nusers = "x"\n')
    assert [p.split(":")[0] for p in ei.value.problems] == ["settings", "users"]


def test_paths_relative_to_file(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    f = sub / "p.toml"
    f.write_text('[tls]\ncert = "certs/c.pem"\nkey = "/abs/k.pem"\n', encoding="utf-8")
    prof = load_profile(f)
    assert prof.tls.cert == sub / "certs" / "c.pem"
    assert prof.tls.key == Path("/abs/k.pem")
    assert prof.path == f
    assert prof.name == "p"  # no [target] name: the file's stem


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read the profile"):
        load_profile(tmp_path / "nope.toml")


def test_example_ucm_profile() -> None:
    env = {"AMICHECK_SECRET_UCMAMIUSER1": "Abc12345", "AMICHECK_SECRET_REPORTUSER1": "Def678x"}
    prof = load_profile(DATA / "example-ucm.toml", env=env)
    assert prof.target.host == "192.0.2.10"
    assert prof.tls.plaintext_allowed is False
    assert prof.tls.cert == DATA / "ami_certificate.pem"
    assert prof.secrets() == set(env.values())


def test_no_secret_is_none() -> None:
    prof = parse_profile('[[users]]\nusername = "ucmamiuser1"\n')
    assert prof.users[0].secret is None
    assert prof.secrets() == set()


def test_frozen_and_replace() -> None:
    prof = default_profile()
    with pytest.raises(dataclasses.FrozenInstanceError):
        prof.settings.port = 1  # type: ignore[misc]
    p2 = dataclasses.replace(prof, users=(*prof.users, User("extra0001", "Passw0rd")))
    assert p2.user("extra0001") is not None
    assert default_profile().user("extra0001") is None
    assert isinstance(p2, Profile)


@given(st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_arbitrary_text_only_profile_error(text: str) -> None:
    try:
        prof = parse_profile(text, env={})
    except ProfileError as exc:
        assert exc.problems
    else:
        assert isinstance(prof, Profile)


@given(
    st.dictionaries(
        st.sampled_from(["port", "tls_enable", "banner", "bogus", "auth_limit"]),
        st.one_of(st.integers(-5, 70000), st.booleans(), st.text(max_size=5)),
        max_size=5,
    )
)
@settings(max_examples=200, deadline=None)
def test_settings_types(values: dict[str, object]) -> None:
    def fmt(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        return json.dumps(v)  # a JSON string literal is a valid TOML basic string

    body = "\n".join(f"{k} = {fmt(v)}" for k, v in values.items())
    try:
        prof = parse_profile("[settings]\n" + body + "\n", env={})
    except ProfileError as exc:
        assert all(p.startswith("settings.") or "TOML" in p for p in exc.problems)
    else:
        for k, v in values.items():
            assert getattr(prof.settings, k) == v


def test_mistyped_secret_not_echoed() -> None:
    text = MINIMAL.replace('secret = "Passw0rd"', "secret = 98765432")
    with pytest.raises(ProfileError) as ei:
        parse_profile(text)
    assert ei.value.problems == ["users[0].secret: must be a string, got int"]
    assert "98765432" not in str(ei.value)


def test_as_dict_redacts() -> None:
    prof = default_profile()
    data = prof.as_dict()
    text = json.dumps(data)
    assert not any(s in text for s in prof.secrets())
    assert data["users"][0] == {
        "username": "ucmamiuser1",
        "secret": "***",
        "permitted": ["127.0.0.1/255.255.255.255"],
        "privileges": ["all"],
        "secret_env": None,
    }
    assert data["name"] == "amicheck-simulator"
    assert data["settings"]["port"] == 7777


# --- bad input: refused before work, one line per problem (issue 10) ------------------------


def _problems(exc: pytest.ExceptionInfo[ProfileError]) -> list[str]:
    return str(exc.value).splitlines()[1:]


def test_fifo_refused_without_opening(tmp_path: Path) -> None:
    fifo = tmp_path / "profile.toml"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(ProfileError, match=r"it is a FIFO \(named pipe\), not a profile file"):
        load_profile(fifo)  # opening it would block until a writer comes
    assert time.monotonic() - start < 1.0


def test_device_and_directory_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="it is a device, not a profile file"):
        load_profile("/dev/zero")
    with pytest.raises(ProfileError, match="it is a directory, not a profile file"):
        load_profile(tmp_path)


def test_size_cap(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_text(MINIMAL + "#" * MAX_PROFILE_BYTES, encoding="utf-8")
    with pytest.raises(ProfileError, match=f"at most {MAX_PROFILE_BYTES} bytes"):
        load_profile(big)
    ok = tmp_path / "ok.toml"
    ok.write_text(MINIMAL, encoding="utf-8")
    assert load_profile(ok).users[0].username == "ucmamiuser1"


def test_undecodable_bytes(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[target]\nname = "caf\xe9"\n')
    with pytest.raises(ProfileError, match=r"not UTF-8 text \(byte 0xe9 at offset 20\)"):
        load_profile(bad)


def test_deep_nesting_is_a_profile_error(tmp_path: Path) -> None:
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(ProfileError, match="nested too deeply"):
        load_profile(deep)
    with pytest.raises(ProfileError, match="nested too deeply"):
        parse_profile("x = " + "{a = " * 50_000 + "1" + "}" * 50_000)


@pytest.mark.parametrize(("char", "name"), [("\r", "CR"), ("\n", "LF"), ("\0", "NUL"),
                                            ("\x1b", "0x1b"), ("\x7f", "DEL")])
def test_control_characters_refused(char: str, name: str) -> None:
    esc = char.encode("unicode_escape").decode() if char != "\0" else "\\u0000"
    esc = {"\x1b": "\\u001b", "\x7f": "\\u007f"}.get(char, esc)
    text = f"""
[target]
name = "ucm{esc}x"
[settings]
banner = "Asterisk Call Manager/2.7.0{esc}Injected: 1"
[[users]]
username = "ucmami{esc}user1"
secret = "Passw0rd{esc}x"
permitted = ["127.0.0.1/255.255.255.255"]
privileges = ["all"]
"""
    with pytest.raises(ProfileError) as exc:
        parse_profile(text)
    problems = _problems(exc)
    for key in ("target.name", "settings.banner", "users[0].username", "users[0].secret"):
        assert any(p.strip().startswith(f"{key}: contains the control character {name}")
                   for p in problems), (key, problems)
    assert "Passw0rd" not in str(exc.value)  # the secret is named, never shown
    assert len(problems) == 4


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1.0"])
def test_thresholds_finite_and_not_negative(value: str) -> None:
    with pytest.raises(ProfileError, match=r"thresholds.ping_p95_ms: must be a finite number"):
        parse_profile(MINIMAL + f"\n[thresholds]\nping_p95_ms = {value}\n")


def test_negative_timeouts_refused() -> None:
    with pytest.raises(ProfileError) as exc:
        parse_profile(MINIMAL + "\n[settings]\nauth_timeout_s = -1\nwrite_timeout_ms = -5\n")
    assert [p.strip() for p in _problems(exc)] == [
        "settings.auth_timeout_s: must not be negative, got -1",
        "settings.write_timeout_ms: must not be negative, got -5",
    ]


def test_problem_list_capped() -> None:
    users = "".join('\n[[users]]\nusername = 7\nsecret = "x"\n' for _ in range(20_000))
    with pytest.raises(ProfileError) as exc:
        parse_profile(users)
    text = str(exc.value)
    lines = text.splitlines()
    assert lines[0] == "<profile>: invalid profile (20000 problem(s))"
    assert len(lines) == 1 + MAX_LISTED_PROBLEMS + 1
    assert lines[-1].strip() == f"... and {20_000 - MAX_LISTED_PROBLEMS} more problems"
    assert len(text) < 4000
    assert len(exc.value.problems) == 20_000  # the whole list stays available to callers


def test_dialect_setting(tmp_path: Path) -> None:
    """``settings.dialect`` picks the simulator's Asterisk line; only 13 and 22 exist."""
    body = (
        '[settings]\ndialect = "{}"\n[[users]]\nusername = "ucmamiuser1"\nsecret = "Passw0rd!"\n'
        'permitted = ["127.0.0.1/32"]\nprivileges = ["all"]\n'
    )
    good = tmp_path / "good.toml"
    good.write_text(body.format("22"))
    assert load_profile(good).settings.dialect == "22"
    bad = tmp_path / "bad.toml"
    bad.write_text(body.format("21"))
    with pytest.raises(ProfileError, match='settings.dialect: must be "13" or "22"'):
        load_profile(bad)
