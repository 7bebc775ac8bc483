"""``amicheck sim``: in-process for argument and profile errors, a real process for serving."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_sim_core_kit import Conn

from amicheck.sim.cli import main

GOOD = """
[settings]
port = 7777
tls_enable = false
[[users]]
username = "ucmamiuser1"
secret = "Passw0rd-1"
permitted = ["127.0.0.1/255.255.255.255"]
privileges = ["all"]
"""

BAD = """
[settings]
write_timeout_ms = 10
[[users]]
username = "short"
secret = "abc"
permitted = ["300.1.1.1/32"]
privileges = ["system"]
"""


def test_list_faults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list-faults"]) == 0
    out = capsys.readouterr().out
    assert "privilege-leak" in out and "slow-responses" in out


def test_bad_profile_every_problem_exit_2(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(BAD)
    assert main(["--config", str(f)]) == 2
    err = capsys.readouterr().err
    for path in ("users[0].username", "users[0].secret", "users[0].permitted[0]",
                 "users[0].privileges[0]", "settings.write_timeout_ms"):
        assert path in err
    assert "Traceback" not in err


def test_short_username_refused_without_its_fault(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "short.toml"
    f.write_text(GOOD.replace('"ucmamiuser1"', '"ami1234"'))
    assert main(["--config", str(f)]) == 2
    assert "users[0].username" in capsys.readouterr().err


def test_unknown_fault_and_missing_file(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--fault", "nope"]) == 2
    assert "valid faults" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.toml")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_serves_until_sigint(tmp_path: Path) -> None:
    f = tmp_path / "good.toml"
    f.write_text(GOOD)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "amicheck.sim.cli", "--config", str(f), "--port", "0",
         "--fault", "banner-mismatch"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()   # the process prints one line once it listens
        m = re.search(r"serving .* on 127\.0\.0\.1:(\d+)", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
        with Conn("127.0.0.1", int(m[1])) as c:
            assert c.banner() == "Asterisk Call Manager/1.1"
            assert c.login()["Message"] == "Authentication accepted"
            proc.send_signal(signal.SIGINT)
            assert c.closed(10)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "stopped" in out and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


@pytest.mark.parametrize(("argv", "says"), [
    (["--port", "99999"], "port must be 0-65535"),
    (["--tls-port", "-1"], "port must be 0-65535"),
    (["--port", "abc"], "not a port number"),
    (["--config", "/nonexistent/profile.toml"], "No such file"),
    (["--config", "/dev/zero"], "--config /dev/zero: is a device, not a profile file"),
    (["--config", "/"], "--config /: is a directory, not a profile file"),
    (["--fault", "no-such-fault"], "unknown fault"),
    (["--fault", "md5-any-key", "--fault", "md5-no-challenge"], "both change"),
    (["--no-such-option"], "unrecognized arguments"),
])
def test_bad_input_one_line_exit_2(argv: list[str], says: str) -> None:
    """Through the real command: one line on stderr, status 2, fast, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "amicheck", "sim", *argv],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], proc.stderr
    assert proc.stdout == ""


def test_fifo_config_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "profile.toml"
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, "-m", "amicheck", "sim", "--config", str(fifo)],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2 and "is a FIFO (named pipe), not a profile file" in proc.stderr


def test_simulator_refuses_bad_port() -> None:
    from amicheck.sim import Simulator, SimulatorError

    with pytest.raises(SimulatorError, match="0-65535"):
        Simulator(port=70000)
