"""``amicheck init`` against the simulator (in-process, real loopback sockets) and, when the
reference kit is built, against real Asterisk 13 and 22."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import refasterisk

from amicheck.fleet.cli import main_init
from amicheck.fleet.onboard import dialect_of, infer_privileges, secret_env_name
from amicheck.profile import default_profile, load_profile
from amicheck.sim import Simulator

RUN_ARGS = ["-m", "not slow", "-k", "not performance"]
ALL_SECRET = "Ucm4mi-All1"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(default_profile(), host="127.0.0.1", port=0, tls_port=0) as s:
        yield s


def _init(sim: Simulator, out: Path, *extra: str, user: str = "ucmamiuser1") -> int:
    return main_init(["--target", f"127.0.0.1:{sim.port}", "--user", user,
                      "--tls-port", str(sim.tls_port), "-o", str(out), *extra])


def test_helpers() -> None:
    assert secret_env_name("ucm-ami.user1") == "AMICHECK_SECRET_UCM_AMI_USER1"
    assert dialect_of("Asterisk Call Manager/2.7.0") == "13"
    assert dialect_of("Asterisk Call Manager/11.0.0") == "22"
    assert dialect_of("nonsense") == "unknown"
    assert infer_privileges({"corestatus": frozenset({"system", "reporting"}),
                             "ping": frozenset()})[0] == ("system",)
    assert infer_privileges({"ping": frozenset()})[0] == ()


def test_init_against_the_simulator(sim: Simulator, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AMICHECK_SECRET_UCMAMIUSER1", ALL_SECRET)
    out = tmp_path / "ucm.toml"
    assert _init(sim, out) == 0
    said = capsys.readouterr().out
    assert f"next: amicheck run --target 127.0.0.1:{sim.port} --profile {out}" in said
    text = out.read_text("utf-8")
    assert ALL_SECRET not in text and ALL_SECRET not in said
    assert 'secret_env = "AMICHECK_SECRET_UCMAMIUSER1"' in text
    assert "# not discovered" in text and "Other AMI users" in text
    prof = load_profile(out)
    (user,) = prof.users
    assert user.privileges == ("all",) and user.secret == ALL_SECRET
    assert user.permitted == ("127.0.0.1/255.255.255.255",)
    s = prof.settings
    assert (s.port, s.tls_port, s.tls_enable) == (sim.port, sim.tls_port, True)
    assert s.banner == "Asterisk Call Manager/2.7.0" and s.timestamp_events is False
    assert prof.tls.cert is not None
    assert prof.tls.cert.read_bytes() == Path(str(sim.tls_cert_path)).read_bytes()
    # never overwrites unless asked
    before = out.read_bytes()
    assert _init(sim, out) == 2
    assert "exists; use --force" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert _init(sim, out, "--force") == 0


def test_init_limited_user_and_no_tls(sim: Simulator, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMICHECK_SECRET_REPORTUSER1", "Rep0rt-Pass1")
    out = tmp_path / "r.toml"
    # the plaintext AMI port given as the "TLS port": it answers plaintext, not TLS
    assert main_init(["--target", f"127.0.0.1:{sim.port}", "--user", "reportuser1",
                      "--tls-port", str(sim.port), "-o", str(out)]) == 0
    prof = load_profile(out)
    assert prof.users[0].privileges == ("reporting",)
    assert prof.settings.tls_enable is False and prof.tls.cert is None
    assert "answers plaintext AMI, not TLS" in out.read_text("utf-8")


def test_init_bad_input_is_one_line(sim: Simulator, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("AMICHECK_SECRET_UCMAMIUSER1", raising=False)
    out = tmp_path / "x.toml"
    assert _init(sim, out) == 2  # stdin is not a terminal under pytest: no prompt
    assert "set AMICHECK_SECRET_UCMAMIUSER1" in capsys.readouterr().err
    monkeypatch.setenv("AMICHECK_SECRET_UCMAMIUSER1", "Wrong-Secret9")
    assert _init(sim, out) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "Wrong-Secret9" not in err and len(err.splitlines()) == 1
    assert main_init(["--target", "127.0.0.1:0", "--user", "u"]) == 2
    assert main_init(["--target", "127.0.0.1:1", "--user", "ucmamiuser1", "-o",
                      str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "127.0.0.1:1" in err
    assert not out.exists()


def _harness_errors(report_dir: Path) -> list[str]:
    data = json.loads((report_dir / "report.json").read_text("utf-8"))
    assert data["results"], "no results"
    return [f"{r['requirement']}: {r['message'][:200]}" for r in data["results"]
            if r["outcome"] == "error"]


def test_init_profile_runs_without_harness_errors(sim: Simulator, tmp_path: Path) -> None:
    env = dict(os.environ, AMICHECK_SECRET_UCMAMIUSER1=ALL_SECRET)
    out = tmp_path / "ucm.toml"
    r = subprocess.run([sys.executable, "-m", "amicheck.fleet", "init", "--target",
                        f"127.0.0.1:{sim.port}", "--user", "ucmamiuser1", "--tls-port",
                        str(sim.tls_port), "-o", str(out)],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    run = subprocess.run([sys.executable, "-m", "amicheck", "run", "--target",
                          f"127.0.0.1:{sim.port}", "--profile", str(out), "--report-dir",
                          str(tmp_path / "rep"), "--", *RUN_ARGS],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode in (0, 1), run.stderr[-2000:]
    assert _harness_errors(tmp_path / "rep") == []


@pytest.fixture(scope="module", params=["22", "13"])
def asterisk(request: pytest.FixtureRequest) -> dict[str, str]:
    """A reference Asterisk of the kit (skips with the reason where it is absent)."""
    version = str(request.param)
    inst = refasterisk.start(version)
    return {"version": version, "port": str(inst.port), "tls_port": str(inst.tls_port),
            "banner": inst.banner}


@pytest.mark.asterisk
def test_init_against_real_asterisk(asterisk: dict[str, str], tmp_path: Path) -> None:
    env = dict(os.environ, AMICHECK_SECRET_UCMAMIUSER1="test123")
    out = tmp_path / f"a{asterisk['version']}.toml"
    port = asterisk["port"]
    r = subprocess.run([sys.executable, "-m", "amicheck.fleet", "init", "--target",
                        f"127.0.0.1:{port}", "--user", "ucmamiuser1", "--tls-port",
                        asterisk["tls_port"], "-o", str(out)],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    prof = load_profile(out, env=env)
    assert prof.settings.banner == asterisk["banner"]
    assert prof.settings.tls_enable and prof.tls.cert is not None
    assert prof.users[0].privileges == ("all",)
    assert f"Asterisk {asterisk['version']} dialect" in out.read_text("utf-8")
    with refasterisk.exclusive(asterisk["version"]):
        run = subprocess.run([sys.executable, "-m", "amicheck", "run", "--target",
                              f"127.0.0.1:{port}", "--profile", str(out), "--report-dir",
                              str(tmp_path / "rep"), "--", *RUN_ARGS],
                             env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode in (0, 1), run.stderr[-2000:]
    assert _harness_errors(tmp_path / "rep") == []


def test_init_prompts_without_echo_on_a_terminal(sim: Simulator, tmp_path: Path) -> None:
    import pty
    import select

    out = tmp_path / "tty.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMICHECK_SECRET_")}
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin/stdout/stderr and the controlling terminal are the pty
        os.execve(sys.executable, [sys.executable, "-m", "amicheck.fleet", "init", "--target",
                                   f"127.0.0.1:{sim.port}", "--user", "ucmamiuser1",
                                   "--tls-port", str(sim.tls_port), "-o", str(out)], env)
    seen = b""
    sent = False
    deadline = time.monotonic() + 60
    status = None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            if not chunk:
                break
            seen += chunk
        if not sent and b"not echoed" in seen:
            os.write(fd, ALL_SECRET.encode() + b"\n")
            sent = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert sent, seen
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert ALL_SECRET.encode() not in seen  # not echoed, not printed
    assert b"next: export AMICHECK_SECRET_UCMAMIUSER1=" in seen
    assert load_profile(out, env={"AMICHECK_SECRET_UCMAMIUSER1": ALL_SECRET}).users
