"""Bad input to ``amicheck``: one line on stderr, exit status 2, before any work, in < 5 s.

Issue 10 point 6: timeouts that are not finite and positive, ports outside 1-65535, an
outside source that is not an address of this host, a report directory that cannot be used,
profiles that are not regular files, and capture "files" that are directories, FIFOs or
devices. Also issue 9: a run in which no check ran is no verdict (exit 5), never COMPLIANT.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import amicheck.capture  # noqa: F401  (imported once: see tests/test_plugin.py)
from amicheck.cli import EXIT_NO_VERDICT, EXIT_USAGE, main
from amicheck.plugin.options import (
    OptionError,
    parse_fail_delay,
    parse_source,
    parse_target,
    parse_timeout,
)
from amicheck.report.json_writer import from_json
from amicheck.requirements import CATALOGUE

IDS = sorted(CATALOGUE)
MAX_SECONDS = 5.0


def _bad(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``amicheck argv``: exit 2, nothing on stdout, one error line, fast; the line."""
    start = time.monotonic()
    code = main(argv)
    elapsed = time.monotonic() - start
    out, err = capsys.readouterr()
    assert code == EXIT_USAGE, (code, out, err)
    assert elapsed < MAX_SECONDS
    assert out == ""  # refused before pytest started: no session header, no summary
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("amicheck: error: ")
    return lines[0]


@pytest.mark.parametrize("value", ["nan", "-1", "0", "inf", "-inf", "abc", ""])
def test_timeout_must_be_finite_and_positive(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "--timeout: " in _bad(["run", "--target", "127.0.0.1:1", "--timeout", value], capsys)


@pytest.mark.parametrize("value", ["nan", "inf", "-0.5", "61"])
def test_fail_delay_must_be_finite_and_in_range(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "--fail-delay: " in _bad(["run", "--fail-delay", value], capsys)


@pytest.mark.parametrize("target", ["127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:99999",
                                    "127.0.0.1:", "127.0.0.1:http", "[::1]:0", "host:-1",
                                    "127.0.0.1:\u0661\u0662"])
def test_target_port_must_be_1_to_65535(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    line = _bad(["run", "--target", target], capsys)
    assert "--target: port must be 1-65535" in line


def test_outside_source_must_be_local(capsys: pytest.CaptureFixture[str]) -> None:
    line = _bad(["run", "--outside-source", "8.8.8.8"], capsys)
    assert "--outside-source: 8.8.8.8 is not an address of this host" in line
    assert "not an IP address" in _bad(["run", "--outside-source", "nowhere"], capsys)


def test_outside_source_parser() -> None:
    """127.0.0.0/8 is local on Linux loopback; binding proves it without any traffic."""
    assert parse_source("127.0.0.2") == "127.0.0.2"
    assert parse_source(" 127.0.0.1 ") == "127.0.0.1"
    for bad in ("8.8.8.8", "192.0.2.1", "300.1.1.1"):
        with pytest.raises(OptionError):
            parse_source(bad)


def test_parsers_accept_good_values() -> None:
    assert parse_timeout("0.5") == 0.5
    assert parse_fail_delay("0") == 0.0
    assert str(parse_target("[::1]:7777")) == "[::1]:7777"
    assert str(parse_target("127.0.0.1:65535")) == "127.0.0.1:65535"


def test_report_dir_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    line = _bad(["run", "--report-dir", str(f)], capsys)
    assert f"--report-dir: {f} exists and is not a directory" in line


def test_report_dir_that_cannot_be_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    line = _bad(["run", "--report-dir", str(f / "sub")], capsys)
    assert f"--report-dir: cannot create {f / 'sub'}" in line


def _unwritable_dir(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o500)
        return d
    if Path("/sys/kernel").is_dir():  # root writes anywhere but in sysfs
        return Path("/sys/kernel")
    pytest.skip("no directory root cannot write into")


def test_report_dir_that_is_not_writable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = _unwritable_dir(tmp_path)
    line = _bad(["run", "--report-dir", str(d)], capsys)
    assert f"--report-dir: cannot write into {d}" in line


def test_profile_that_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _bad(["run", "--profile", str(tmp_path)], capsys)
    assert f"--profile: {tmp_path} is a directory, not a profile file" in line


def test_profile_that_is_a_fifo_does_not_hang(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "profile.toml"
    os.mkfifo(fifo)
    line = _bad(["run", "--profile", str(fifo)], capsys)
    assert "is a FIFO (named pipe), not a profile file" in line


def test_profile_that_is_a_device(capsys: pytest.CaptureFixture[str]) -> None:
    for dev in ("/dev/null", "/dev/zero"):
        assert f"--profile: {dev} is a device, not a profile file" in _bad(
            ["run", "--profile", dev], capsys)


def test_unknown_run_flag_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert "unrecognized arguments: --bogus" in _bad(["run", "--bogus"], capsys)


# --- amicheck pcap ------------------------------------------------------------------------------


def test_pcap_of_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert f"{tmp_path}: is a directory, not a capture file" in _bad(["pcap", str(tmp_path)],
                                                                    capsys)


def test_pcap_of_a_fifo_does_not_hang(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "c.pcap"
    os.mkfifo(fifo)
    assert "is a FIFO (named pipe), not a capture file" in _bad(["pcap", str(fifo)], capsys)


def test_pcap_of_a_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert "/dev/null: is a device, not a capture file" in _bad(["pcap", "/dev/null"], capsys)


def test_pcap_bad_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.pcap"
    f.write_bytes(b"")
    assert "--port: port must be 1-65535" in _bad(["pcap", str(f), "--port", "99999"], capsys)


# --- the same in a real process ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["run", "--timeout", "nan", "--target", "127.0.0.1:1"], "--timeout: must be a finite"),
        (["run", "--outside-source", "8.8.8.8"], "is not an address of this host"),
        (["pcap", "{fifo}"], "is a FIFO (named pipe), not a capture file"),
        (["run", "--profile", "{fifo}"], "is a FIFO (named pipe), not a profile file"),
    ],
)
def test_subprocess_one_line_exit_2(tmp_path: Path, argv: list[str], text: str) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    argv = [a.replace("{fifo}", str(fifo)) for a in argv]
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "amicheck", *argv], capture_output=True,
                          text=True, timeout=30, check=False, cwd=tmp_path)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and text in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert elapsed < MAX_SECONDS
    assert not (tmp_path / "reports").exists()


# --- zero checks is no verdict ------------------------------------------------------------------


def _suite_dir(tmp_path: Path, name: str, body: str) -> Path:
    d = tmp_path / "s"
    d.mkdir()
    (d / f"{name}.py").write_text(textwrap.dedent(body))  # unique: modules stay imported
    return d


def test_nothing_selected_is_no_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suites = _suite_dir(tmp_path, "test_nv_none", f"""
        import pytest

        @pytest.mark.requirement("{IDS[0]}")
        def test_ping(ami_client):
            assert ami_client.request("Ping").ok
        """)
    reports = tmp_path / "r"
    code = main(["run", "--suites", str(suites), "--report-dir", str(reports),
                 "--", "-k", "nothing_matches", "-q"])
    out = capsys.readouterr().out
    assert code == EXIT_NO_VERDICT, out
    assert "amicheck NO VERDICT: no checks ran" in out
    assert "COMPLIANT" not in out
    report = from_json((reports / "report.json").read_text())
    assert report.status == "NO VERDICT" and not report.ok


def test_everything_skipped_is_no_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suites = _suite_dir(tmp_path, "test_nv_skipped", f"""
        import pytest

        @pytest.mark.requirement("{IDS[0]}")
        def test_a():
            pytest.skip("not applicable here")

        @pytest.mark.requirement("{IDS[1]}")
        @pytest.mark.skipif(True, reason="opted out")
        def test_b():
            pass
        """)
    reports = tmp_path / "r"
    code = main(["run", "--suites", str(suites), "--report-dir", str(reports), "--", "-q"])
    out = capsys.readouterr().out
    assert code == EXIT_NO_VERDICT, out
    assert "amicheck NO VERDICT: no checks ran (0 passed, 0 failed, 0 errors, 2 skipped" in out
    assert "COMPLIANT" not in out
