"""End to end: ``amicheck fleet`` runs real ``amicheck run`` children against simulators.

CI cost is kept small: four targets, the slow checks deselected and the performance checks
left out (their timing thresholds would make outcomes depend on machine load, which is not
what these tests are about), everything reused through module-scoped fixtures.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from amicheck.fleet.cli import main_fleet, main_merge
from amicheck.fleet.model import comparable
from amicheck.fleet.spec import shard_of

XSD = Path(__file__).parent / "data" / "junit-10.xsd"
PYTEST_ARGS = ["-m", "not slow", "-k", "not performance"]
FAULTS = {"weak": ["weak-password"], "banner": ["banner-mismatch"]}
EXPECTED_FAIL = {"weak": {"AMI-CFG-002", "AMI-AUTH-007"}, "banner": {"AMI-CFG-005"},
                 "ok-1": set()}
CHROMIUM = Path("/usr/bin/chromium")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _real_profile(path: Path, port: int) -> Path:
    path.write_text(
        f'[target]\nname = "remote"\nhost = "127.0.0.1"\n[settings]\nport = {port}\n'
        '[[users]]\nusername = "ucmamiuser1"\nsecret = "Ucm4mi-All1"\n'
        'permitted = ["127.0.0.1/255.255.255.255"]\nprivileges = ["all"]\n', "utf-8")
    return path


def _write_fleet(d: Path) -> Path:
    port = _closed_port()
    _real_profile(d / "remote.toml", port)
    text = '[fleet]\nname = "ci"\n[defaults]\ndeadline_s = 240\ntags = ["lab"]\n'
    text += '[[targets]]\nname = "ok-1"\n'
    for name, faults in FAULTS.items():
        text += f'[[targets]]\nname = "{name}"\nfaults = {json.dumps(faults)}\n'
    text += (f'[[targets]]\nname = "dead"\ntarget = "127.0.0.1:{port}"\n'
             'profile = "remote.toml"\ntags = ["branch"]\n')
    (d / "fleet.toml").write_text(text, "utf-8")
    return d / "fleet.toml"


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, int, str]]:
    """(fleet file, report dir, exit status, stderr) of one unsharded in-process run."""
    d = tmp_path_factory.mktemp("fleet")
    fleet = _write_fleet(d)
    out = d / "out"
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main_fleet([str(fleet), "--report-dir", str(out), "--jobs", "4", "--",
                           *PYTEST_ARGS])
    yield fleet, out, code, err.getvalue()


def _fleet_json(d: Path) -> Any:
    return json.loads((d / "fleet.json").read_text("utf-8"))


def _targets(data: Any) -> dict[str, Any]:
    return {t["name"]: t for t in data["targets"]}


def test_fleet_report(fleet_run: tuple[Path, Path, int, str]) -> None:
    _, out, code, err = fleet_run
    assert code == 1  # not everything compliant
    data = _fleet_json(out)
    rows = _targets(data)
    assert list(rows) == ["banner", "dead", "ok-1", "weak"]
    assert rows["dead"]["status"] == "error"
    assert "connection refused" in str(rows["dead"]["error"])
    for name, expected in EXPECTED_FAIL.items():
        results = rows[name]["results"]
        assert isinstance(results, dict)
        assert {k for k, v in results.items() if v in ("fail", "error")} == expected, name
        assert rows[name]["status"] == ("not-compliant" if expected else "compliant")
        assert (out / "targets" / name / "report.html").is_file()
    assert rows["ok-1"]["tags"] == ["lab"] and rows["dead"]["tags"] == ["branch"]
    # progress: plain lines (stderr is not a terminal here), one per finished target
    lines = [ln for ln in err.splitlines() if ln.startswith("fleet: [")]
    assert len(lines) == 4 and lines[-1].startswith("fleet: [4/4]")
    # junit: one valid suite per target
    doc = etree.parse(str(out / "junit.xml"))
    etree.XMLSchema(etree.parse(str(XSD))).assertValid(doc)
    assert [s.get("name") for s in doc.getroot()] == ["banner", "dead", "ok-1", "weak"]


def test_no_secret_reaches_the_fleet_reports(fleet_run: tuple[Path, Path, int, str]) -> None:
    from amicheck.profile import default_profile

    _, out, _, err = fleet_run
    secrets = default_profile().secrets() | {"abcdef"}  # + the weak-password fault's secret
    files = [out / "fleet.html", out / "fleet.json", out / "junit.xml",
             *sorted((out / "targets").glob("*/run.log"))]
    for path in files:
        text = path.read_text("utf-8")
        for secret in secrets:
            assert secret not in text, f"{secret!r} in {path}"
    assert not any(secret in err for secret in secrets)


def test_each_target_equals_amicheck_run_alone(fleet_run: tuple[Path, Path, int, str],
                                               tmp_path: Path) -> None:
    _, out, _, _ = fleet_run
    rows = _targets(_fleet_json(out))
    procs = {}
    for name in EXPECTED_FAIL:
        cmd = [sys.executable, "-m", "amicheck", "run", "--target", "sim", "--report-dir",
               str(tmp_path / name)]
        for f in FAULTS.get(name, []):
            cmd += ["--fault", f]
        procs[name] = subprocess.Popen([*cmd, "--", *PYTEST_ARGS], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
    for name, proc in procs.items():
        assert proc.wait(timeout=240) in (0, 1)
        alone = json.loads((tmp_path / name / "report.json").read_text("utf-8"))
        outcomes = {r["requirement"]: r["outcome"] for r in alone["results"]}
        assert outcomes == rows[name]["results"], name


def test_shards_merge_to_the_unsharded_report(fleet_run: tuple[Path, Path, int, str],
                                              tmp_path: Path) -> None:
    fleet, out, _, _ = fleet_run
    # two shards hold targets, one is empty (more shards than needed must work too)
    assert {shard_of(n, 3) for n in ("ok-1", "weak", "banner", "dead")} == {2, 3}
    # a baseline in which 'weak' passed everything: its failures are regressions
    old = _fleet_json(out)
    for t in old["targets"]:
        if t["name"] == "weak":
            t["results"] = {k: "pass" for k in t["results"]}
    baseline = tmp_path / "old.json"
    baseline.write_text(json.dumps(old), "utf-8")
    procs = [subprocess.Popen(
        [sys.executable, "-m", "amicheck.fleet", "fleet", str(fleet), "--shard", f"{k}/3",
         "--report-dir", str(tmp_path / f"s{k}"), "--baseline", str(baseline), "--",
         *PYTEST_ARGS], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for k in (1, 2, 3)]
    codes = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert "Traceback" not in err
        codes.append(p.returncode)
    # with a baseline only the shard holding 'weak' fails
    assert sorted(codes) == [0, 0, 1]
    merged = tmp_path / "merged"
    code = main_merge([str(tmp_path / f"s{k}") for k in (3, 1, 2)] + ["--report-dir",
                                                                    str(merged)])
    assert code == 1
    whole = comparable(_fleet_json(out))
    got = comparable(_fleet_json(merged))
    assert got["baseline"] == "old.json"
    rows = _targets(got)
    assert rows["weak"]["regressions"] == ["AMI-AUTH-007", "AMI-CFG-002"]
    assert all(not r["regressions"] for n, r in rows.items() if n != "weak")
    for t in got["targets"]:
        t["regressions"] = []
    got["baseline"] = None
    got["summary"]["regressions"] = 0
    assert got == whole
    assert _fleet_json(merged)["run"]["shards"] == ["1/3", "2/3", "3/3"]
    for name in ("ok-1", "weak", "banner"):
        assert (merged / "targets" / name / "report.json").is_file()
    page = (merged / "fleet.html").read_text("utf-8")
    assert page.count('data-regression="1"') == 2
    doc = etree.parse(str(merged / "junit.xml"))
    props = {(s.get("name"), p.get("name")): p.get("value")
             for s in doc.getroot() for p in s.iter("property")}
    assert props[("weak", "regressions")] == "AMI-AUTH-007 AMI-CFG-002"
    assert props[("ok-1", "regressions")] == ""
    # merging the baseline-free unsharded output with itself is refused, not silently doubled
    assert main_merge([str(out), str(out), "--report-dir", str(tmp_path / "x")]) == 2


def test_fork_spawn_gives_the_same_report(fleet_run: tuple[Path, Path, int, str],
                                          tmp_path: Path) -> None:
    fleet, out, _, _ = fleet_run
    r = subprocess.run([sys.executable, "-m", "amicheck.fleet", "fleet", str(fleet),
                        "--spawn", "fork", "--report-dir", str(tmp_path / "f"), "--quiet",
                        "--", *PYTEST_ARGS], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    assert comparable(_fleet_json(tmp_path / "f")) == comparable(_fleet_json(out))
    assert _fleet_json(tmp_path / "f")["run"]["spawn"] == "fork"
    log = (tmp_path / "f" / "targets" / "weak" / "run.log").read_text("utf-8")
    assert "amicheck NOT COMPLIANT" in log  # the child's own summary, as with exec


def test_diff_subprocess(fleet_run: tuple[Path, Path, int, str], tmp_path: Path) -> None:
    _, out, _, _ = fleet_run
    new = _fleet_json(out)
    for t in new["targets"]:
        if t["name"] == "ok-1":
            t["results"]["AMI-CFG-001"] = "fail"
    newer = tmp_path / "new.json"
    newer.write_text(json.dumps(new), "utf-8")
    r = subprocess.run([sys.executable, "-m", "amicheck.fleet", "diff", str(out / "fleet.json"),
                        str(newer)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines()[:2] == ["ok-1: worse", "  NEW FAILURE   AMI-CFG-001"]


class _HungAmi:
    """A loopback AMI peer that sends its banner and then never answers anything."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.conns: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.sendall(b"Asterisk Call Manager/2.7.0\r\n")
            self.conns.append(conn)  # read nothing, answer nothing

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()
        for c in self.conns:
            c.close()


def test_hung_target_hits_its_deadline(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    hung = _HungAmi()
    try:
        _real_profile(tmp_path / "p.toml", hung.port)
        (tmp_path / "f.toml").write_text(
            f'[[targets]]\nname = "hung"\ntarget = "127.0.0.1:{hung.port}"\n'
            'profile = "p.toml"\ndeadline_s = 6\n', "utf-8")
        t0 = time.monotonic()
        code = main_fleet([str(tmp_path / "f.toml"), "--report-dir", str(tmp_path / "o")])
        took = time.monotonic() - t0
    finally:
        hung.close()
    assert code == 1 and took < 30
    (row,) = _fleet_json(tmp_path / "o")["targets"]
    assert row["status"] == "error" and "deadline of 6 s" in row["error"]
    # the whole process group is gone: nothing still runs with this report dir
    time.sleep(0.5)
    mine = str(tmp_path / "o")
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            assert mine.encode() not in cmdline, f"left over: pid {pid}"
    assert "hung ERROR: no result within the deadline" in capsys.readouterr().err


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed "
                    "(apt-get install -y chromium)")
def test_fleet_html_in_headless_chromium(fleet_run: tuple[Path, Path, int, str],
                                         tmp_path: Path) -> None:
    _, out, _, _ = fleet_run
    profile_dir = tmp_path / "chromium-profile"
    r = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile_dir}", "--dump-dom",
         (out / "fleet.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    shutil.rmtree(profile_dir, ignore_errors=True)
    assert r.returncode == 0, r.stderr[-2000:]
    dom = etree.HTML(r.stdout)
    assert dom.xpath("string(//span[@id='fleet-status'])") == "NOT COMPLIANT"
    rows = dom.xpath("//table[@id='matrix']/tbody/tr")
    # worst first: the unauditable target, then the critical failure, then ...
    assert [tr.get("data-target") for tr in rows] == ["dead", "weak", "banner", "ok-1"]
    weak = rows[1]
    failing = {td.get("data-req") for td in weak.xpath("td[@data-outcome='fail']")}
    assert failing == EXPECTED_FAIL["weak"]
    link = weak.xpath("td[@data-req='AMI-CFG-002']/a/@href")[0]
    assert link == "targets/weak/report.html#p-AMI-CFG-002"
    assert (out / link.split("#")[0]).is_file()
    assert rows[0].xpath("string(td[@class='err'])").find("connection refused") >= 0
    assert dom.xpath("string(//table[@id='by-requirement']/tbody/tr[1]/@data-req)") in (
        EXPECTED_FAIL["weak"] | EXPECTED_FAIL["banner"])


def test_interrupt_kills_children_and_still_reports(tmp_path: Path) -> None:
    import signal

    hung = _HungAmi()
    try:
        _real_profile(tmp_path / "p.toml", hung.port)
        (tmp_path / "f.toml").write_text(
            "".join(f'[[targets]]\nname = "h{i}"\ntarget = "127.0.0.1:{hung.port}"\n'
                    'profile = "p.toml"\n' for i in range(3)), "utf-8")
        out = tmp_path / "o"
        proc = subprocess.Popen([sys.executable, "-m", "amicheck.fleet", "fleet",
                                 str(tmp_path / "f.toml"), "--report-dir", str(out),
                                 "--jobs", "2"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(hung.conns) < 2 and time.monotonic() < deadline:  # both children probing
            time.sleep(0.1)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        hung.close()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    rows = _targets(_fleet_json(out))
    assert {r["status"] for r in rows.values()} == {"error"}
    assert all("interrupted" in r["error"] for r in rows.values())
    mine = str(out).encode()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                assert mine not in Path(f"/proc/{pid}/cmdline").read_bytes(), pid
            except OSError:
                continue
