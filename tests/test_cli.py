"""The amicheck command, in-process: exit codes, one-line errors, summaries."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import amicheck.capture  # noqa: F401  (imported once: see tests/test_plugin.py)
from amicheck.cli import find_suites, main, probe_ami
from amicheck.profile import default_profile
from amicheck.report.json_writer import from_json
from amicheck.requirements import CATALOGUE
from amicheck.sim import FAULTS, Simulator

IDS = sorted(CATALOGUE)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(default_profile(), host="127.0.0.1", port=0, tls_port=0) as s:
        yield s


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("amicheck: error: ")
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_faults_lists_every_fault(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["faults"]) == 0
    out = capsys.readouterr().out
    for name, fault in FAULTS.items():
        assert f"{name}  " in out and fault.description in out


def test_requirements(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["requirements"]) == 0
    out = capsys.readouterr().out
    assert all(rid in out for rid in CATALOGUE)
    assert main(["requirements", "--area", "AMI-TLS"]) == 0
    out = capsys.readouterr().out
    assert "AMI-TLS-" in out and "AMI-AUTH-" not in out
    assert main(["requirements", "--area", "NOPE"]) == 2
    _one_error_line(capsys.readouterr().err)


def test_no_command_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["run", "--bogus"]) == 2
    assert main(["faults", "--", "-x"]) == 2
    capsys.readouterr()


def test_pcap_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pcap", str(tmp_path / "missing.pcap")]) == 2
    assert "no such file" in _one_error_line(capsys.readouterr().err)
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture")
    assert main(["pcap", str(bad)]) == 2
    assert "not a pcap or pcapng file" in _one_error_line(capsys.readouterr().err)


def test_pcap_prints_messages(sim: Simulator, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    from amicheck.capture import write_pcap
    from amicheck.client import AmiClient

    user = default_profile().users[0]
    assert user.secret
    with AmiClient.connect(sim.host, sim.port, timeout=5) as c:
        c.login(user.username, user.secret)
        c.request("Ping")
    path = write_pcap(tmp_path / "c.pcap", c.transcript.frames)
    assert main(["pcap", str(path), "--port", str(sim.port)]) == 0
    out = capsys.readouterr().out
    assert "banner Asterisk Call Manager/" in out
    assert "action Login" in out and "    Secret: ********" in out and "action Ping" in out
    assert user.secret not in out
    assert main(["pcap", str(path), "--brief"]) == 0
    assert "Secret" not in capsys.readouterr().out


# --- bad input to run: one line, exit 2, before pytest starts ----------------------------------


def test_missing_profile(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "--profile", str(tmp_path / "nope.toml")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "nope.toml" in line and "--profile: no such file" in line


def test_broken_profile(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[settings]\nport = 'x'\n[[users]]\nusername = 'a'\n")
    assert main(["run", "--profile", str(bad)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "bad.toml: invalid profile" in line and "settings.port" in line


def test_unknown_fault(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--fault", "no-such-fault"]) == 2
    assert "no-such-fault" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--target", "a:b:c"], "--target: expected 'sim' or HOST[:PORT]"),
        (["--target", "127.0.0.1:1", "--fault", "crlf-only"], "simulator only"),
        (["--outside-source", "nowhere"], "--outside-source: not an IP address"),
        (["--fail-delay", "x"], "--fail-delay: not a number"),
    ],
)
def test_bad_options(args: list[str], text: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", *args]) == 2
    assert text in _one_error_line(capsys.readouterr().err)


def test_closed_port(capsys: pytest.CaptureFixture[str]) -> None:
    port = _closed_port()
    assert main(["run", "--target", f"127.0.0.1:{port}"]) == 2
    assert f"127.0.0.1:{port}: connection refused" in _one_error_line(capsys.readouterr().err)


def test_http_server(capsys: pytest.CaptureFixture[str]) -> None:
    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        assert main(["run", "--target", f"127.0.0.1:{port}", "--timeout", "0.5"]) == 2
    finally:
        server.shutdown()
        server.server_close()
    assert "is an HTTP server, not AMI" in _one_error_line(capsys.readouterr().err)


def test_tls_port_in_plaintext(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--target", f"127.0.0.1:{sim.tls_port}", "--timeout", "0.5"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"127.0.0.1:{sim.tls_port}" in line
    assert "TLS" in line


def test_silent_server() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        with pytest.raises(Exception, match="sent no AMI banner within 0.3 s"):
            probe_ami("127.0.0.1", port, timeout=0.3)


def test_probe_reads_the_banner(sim: Simulator) -> None:
    assert probe_ami(sim.host, sim.port) == default_profile().settings.banner


# --- run ---------------------------------------------------------------------------------------


def _suites(tmp_path: Path, name: str, body: str) -> Path:
    d = tmp_path / "s"
    d.mkdir(exist_ok=True)
    (d / f"{name}.py").write_text(textwrap.dedent(body))
    return d


def test_run_passing_suite_against_the_simulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suites = _suites(tmp_path, "test_cli_pass", f"""
        import pytest

        @pytest.mark.requirement("{IDS[0]}")
        def test_ping(ami_client):
            assert ami_client.request("Ping").ok

        @pytest.mark.requirement("{IDS[1]}")
        def test_not_selected():
            raise AssertionError("deselected by -k")
        """)
    reports = tmp_path / "r"
    code = main(["run", "--suites", str(suites), "--report-dir", str(reports),
                 "--fail-delay", "0.1", "--", "-k", "ping", "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "amicheck COMPLIANT: 1 passed, 0 failed, 0 errors, 0 skipped" in out
    assert f"html: {reports / 'report.html'}" in out
    report = from_json((reports / "report.json").read_text())
    assert [r.requirement for r in report.results] == [IDS[0]]


def test_run_failing_suite_against_a_real_target(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suites = _suites(tmp_path, "test_cli_fail", f"""
        import pytest

        @pytest.mark.requirement("{IDS[2]}")
        def test_fails(ami_target):
            assert not ami_target.is_sim
            raise AssertionError("target is not compliant")

        @pytest.mark.requirement("{IDS[3]}")
        @pytest.mark.destructive
        def test_destructive():
            pass
        """)
    reports = tmp_path / "r"
    code = main(["run", "--suites", str(suites), "--report-dir", str(reports),
                 "--target", f"{sim.host}:{sim.port}", "--", "-q"])
    out = capsys.readouterr().out
    assert code == 1
    assert "NOT COMPLIANT: 0 passed, 1 failed, 0 errors, 1 skipped" in out
    req = CATALOGUE[IDS[2]]
    assert f"FAIL  {IDS[2]} [{req.severity.value}] {req.title}" in out
    assert "target is not compliant" in out


def test_find_suites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_suites().name == "suites"
    assert find_suites(str(tmp_path)) == tmp_path.resolve()
    monkeypatch.setenv("AMICHECK_SUITES", str(tmp_path))
    assert find_suites() == tmp_path.resolve()
    monkeypatch.setenv("AMICHECK_SUITES", str(tmp_path / "missing"))
    with pytest.raises(Exception, match="compliance suites not found"):
        find_suites()


def test_python_dash_m() -> None:
    proc = subprocess.run([sys.executable, "-m", "amicheck", "faults"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0 and "privilege-leak" in proc.stdout


def test_run_with_bad_requirement_ids_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suites = _suites(tmp_path, "test_cli_noid", "def test_x():\n    pass\n")
    code = main(["run", "--suites", str(suites), "--report-dir", str(tmp_path / "r"),
                 "--", "-q"])
    out = capsys.readouterr().out
    assert code == 2
    assert "needs exactly one" in out and "INCOMPLETE" in out


def test_run_writes_pcaps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suites = _suites(tmp_path, "test_cli_pcap", f"""
        import pytest

        @pytest.mark.requirement("{IDS[4]}")
        def test_login(ami_client):
            ami_client.request("Ping")
        """)
    reports = tmp_path / "r"
    assert main(["run", "--suites", str(suites), "--report-dir", str(reports), "--pcap",
                 "--", "-q"]) == 0
    capsys.readouterr()
    pcaps = list((reports / "pcap").glob("*.pcap"))
    assert len(pcaps) == 1
    assert main(["pcap", str(pcaps[0])]) == 0
    out = capsys.readouterr().out
    assert "action Login" in out and "Secret: ********" in out


@pytest.mark.slow
def test_run_all_suites_against_the_compliant_simulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the README promises: ``amicheck run`` passes on the compliant simulator."""
    reports = tmp_path / "r"
    code = main(["run", "--report-dir", str(reports), "--fail-delay", "0.05", "--", "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    report = from_json((reports / "report.json").read_text())
    assert report.ok and len(report.results) >= len(CATALOGUE) - 5
    data = b"".join(p.read_bytes() for p in reports.rglob("*") if p.is_file())
    for secret in default_profile().secrets():
        assert secret.encode() not in data


def test_sim_and_bench_are_dispatched(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--list-faults"]) == 0
    assert "privilege-leak" in capsys.readouterr().out
    assert main(["bench", "--help"]) == 0
    assert "usage:" in capsys.readouterr().out
    assert main(["sim", "--config", "/nonexistent/profile.toml"]) == 2
    capsys.readouterr()


def test_run_interrupted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suites = _suites(tmp_path, "test_cli_ctrl_c", f"""
        import pytest

        @pytest.mark.requirement("{IDS[5]}")
        def test_first():
            pass

        @pytest.mark.requirement("{IDS[6]}")
        def test_ctrl_c():
            raise KeyboardInterrupt
        """)
    reports = tmp_path / "r"
    assert main(["run", "--suites", str(suites), "--report-dir", str(reports), "--", "-q"]) == 130
    assert "amicheck INTERRUPTED: 1 passed" in capsys.readouterr().out
    assert from_json((reports / "report.json").read_text()).interrupted


def test_profile_the_simulator_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = Path(default_profile().path or "")
    bad = tmp_path / "short.toml"
    bad.write_text(src.read_text().replace('username = "reportuser1"', 'username = "rep1"'))
    assert main(["run", "--profile", str(bad)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "the simulator refused the input" in line and "rep1" in line
