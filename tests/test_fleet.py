"""The fleet file, the fleet model and its writers, and baselines: no subprocesses here.

The end-to-end runs (real ``amicheck run`` children against simulators) are in
``test_fleet_run.py``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from lxml import etree

from amicheck.fleet import baseline as bl
from amicheck.fleet.cli import main_diff, main_fleet, main_merge
from amicheck.fleet.html import to_html
from amicheck.fleet.junit import to_junit_xml
from amicheck.fleet.model import (
    FleetReport,
    MergeError,
    RequirementInfo,
    TargetRow,
    TargetStatus,
    comparable,
    error_row,
    from_dict,
    merge,
    to_dict,
)
from amicheck.fleet.spec import FleetError, load_fleet, parse_fleet, parse_shard, shard_of
from amicheck.report.model import Outcome

XSD = Path(__file__).parent / "data" / "junit-10.xsd"


# --- fleet file ----------------------------------------------------------------------------


def _problems(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(FleetError) as info:
        parse_fleet(text, tmp_path, "f.toml")
    return info.value.problems


def test_fleet_file_defaults_apply_and_targets_keep_order(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text('[target]\nname = "x"\n', "utf-8")
    fleet = parse_fleet(
        '[fleet]\nname = "emea"\n[defaults]\nprofile = "p.toml"\ntags = ["a"]\n'
        "deadline_s = 50\n"
        '[[targets]]\nname = "z1"\n'
        '[[targets]]\nname = "a2"\ntarget = "192.0.2.1:7777"\ntags = ["b"]\n'
        'outside_source = "127.0.0.2"\n',
        tmp_path, "f.toml")
    assert fleet.name == "emea"
    assert [t.name for t in fleet.targets] == ["z1", "a2"]
    z1, a2 = fleet.targets
    assert z1.is_sim and z1.profile == (tmp_path / "p.toml").resolve()
    assert z1.tags == ("a",) and a2.tags == ("b",)
    assert a2.target == "192.0.2.1:7777" and not a2.is_sim
    assert a2.outside_source == "127.0.0.2" and z1.deadline_s == 50


def test_fleet_file_every_problem_one_line_each(tmp_path: Path) -> None:
    problems = _problems(
        '[defaults]\ncolour = "red"\n'
        '[[targets]]\nname = "a"\nfaults = ["no-such-fault"]\n'
        '[[targets]]\nname = "A"\n'
        '[[targets]]\nname = "b"\ntarget = "host:99999"\n'
        '[[targets]]\nname = "c"\ntarget = "192.0.2.1"\nfaults = ["weak-password"]\n'
        'profile = "missing.toml"\n'
        '[[targets]]\nname = "../evil"\n'
        '[[targets]]\ntarget = "sim"\n'
        '[[targets]]\nname = "d"\ndeadline_s = -1\nextra = 1\n', tmp_path)
    text = "\n".join(problems)
    assert "defaults.colour: unknown key" in text
    assert "targets[0].faults: unknown fault 'no-such-fault'" in text
    assert "targets[1].name: 'A' duplicates targets[0]" in text
    assert "targets[2].target: expected 'sim' or HOST[:PORT], got 'host:99999'" in text
    assert "targets[3].faults: faults apply to target 'sim' only" in text
    assert "targets[3].profile: 'missing.toml': no such file" in text
    assert "targets[4].name: '../evil' must be" in text
    assert "targets[5].name: missing" in text
    assert "targets[6].deadline_s: must be a number of seconds" in text
    assert "targets[6].extra: unknown key" in text
    assert all("\n" not in p for p in problems)


def test_fleet_file_real_target_needs_a_valid_profile(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('[[users]]\nusername = "u"\nsecret_env = "NOPE_X1"\n'
                                       "[settings]\nport = 'x'\n", "utf-8")
    problems = _problems('[[targets]]\nname = "a"\ntarget = "192.0.2.1"\n'
                         '[[targets]]\nname = "b"\ntarget = "192.0.2.2"\nprofile = "bad.toml"\n',
                         tmp_path)
    assert problems[0].startswith("targets[0].profile: missing")
    assert any(p.startswith("targets[1].profile: settings.port: must be an integer")
               for p in problems)
    assert any("users[0].secret: not set" in p for p in problems)


def test_fleet_file_not_toml_and_empty(tmp_path: Path) -> None:
    assert _problems("[[targets]\n", tmp_path)[0].startswith("not valid TOML")
    assert _problems("", tmp_path) == [
        "targets: no targets (add [[targets]] tables with a name each)"]
    with pytest.raises(FleetError, match="cannot read the fleet file"):
        load_fleet(tmp_path / "nope.toml")


def test_shipped_demo_fleet_loads() -> None:
    demo = Path(__file__).resolve().parents[1] / "examples" / "fleet-demo.toml"
    fleet = load_fleet(demo)
    assert fleet.name == "demo" and len(fleet.targets) == 12
    assert all(t.is_sim for t in fleet.targets)
    assert sum(1 for t in fleet.targets if t.faults) == 8


def test_bad_fleet_file_is_exit_2_with_one_line_per_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "f.toml"
    f.write_text('[[targets]]\nname = "a"\nbogus = 1\n[[targets]]\nname = "a"\n', "utf-8")
    assert main_fleet([str(f), "--report-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(ln.startswith("amicheck fleet: error: ") for ln in err)
    assert not (tmp_path / "out").exists()
    assert main_fleet([str(f), "--shard", "4/3"]) == 2
    assert main_fleet([str(f), "--jobs", "0"]) == 2


def test_shards_partition_stably() -> None:
    names = [f"ucm-{i:03d}" for i in range(300)]
    for n in (1, 2, 3, 7):
        buckets = Counter(shard_of(name, n) for name in names)
        assert set(buckets) == set(range(1, n + 1))
        assert sum(buckets.values()) == len(names)
        assert min(buckets.values()) > len(names) / n / 2  # roughly even
    # stable across processes and Python versions: sha256, not hash()
    assert [shard_of(n, 3) for n in ("a", "b", "c", "ucm-001")] == [
        shard_of(n, 3) for n in ("a", "b", "c", "ucm-001")]
    assert shard_of("ucm-001", 3) == int.from_bytes(
        __import__("hashlib").sha256(b"ucm-001").digest()[:8], "big") % 3 + 1
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "1/0", "x", "1/2/3"):
        with pytest.raises(FleetError):
            parse_shard(bad)


# --- model, writers ------------------------------------------------------------------------

REQS = (RequirementInfo("AMI-AUTH-001", "Pre-auth", "AMI-AUTH", "high"),
        RequirementInfo("AMI-CFG-001", "Username <b>length</b>", "AMI-CFG", "critical"),
        RequirementInfo("AMI-TLS-001", "TLS", "AMI-TLS", "low"))


def _row(name: str, **outcomes: str) -> TargetRow:
    oc = tuple(sorted((k.replace("_", "-"), Outcome(v)) for k, v in outcomes.items()))
    bad = any(o in (Outcome.FAIL, Outcome.ERROR) for _, o in oc)
    return TargetRow(name=name, target="sim", profile="built-in",
                     status=TargetStatus.NOT_COMPLIANT if bad else TargetStatus.COMPLIANT,
                     outcomes=oc, messages=tuple((k, f"<msg {k}>") for k, o in oc
                                                 if o is not Outcome.PASS))


def _fleet(*rows: TargetRow, shards: tuple[str, ...] = ("1/1",)) -> FleetReport:
    return FleetReport(fleet="demo", rows=tuple(sorted(rows, key=lambda r: r.name)),
                       requirements=REQS, version="0", shards=shards, duration=3.0,
                       fleet_size=4)


ROWS = (
    _row("ok", AMI_AUTH_001="pass", AMI_CFG_001="pass", AMI_TLS_001="skip"),
    _row("low", AMI_AUTH_001="pass", AMI_CFG_001="pass", AMI_TLS_001="fail"),
    _row("crit", AMI_AUTH_001="pass", AMI_CFG_001="fail", AMI_TLS_001="pass"),
    error_row("dead<x>", "192.0.2.9", "p.toml", "connection refused <script>"),
)


def test_worst_first_orders_by_status_then_severity() -> None:
    rep = _fleet(*ROWS)
    assert [r.name for r in rep.worst_first()] == ["dead<x>", "crit", "low", "ok"]
    assert [r.id for r in rep.requirements_worst_first()] == [
        "AMI-CFG-001", "AMI-TLS-001", "AMI-AUTH-001"]
    assert rep.by_severity()["critical"] == {"targets": 1, "failures": 1}
    assert rep.by_requirement()["AMI-TLS-001"] == {"pass": 1, "fail": 1, "error": 0, "skip": 1}


def test_fleet_json_round_trips_and_has_no_times_in_the_comparable_part() -> None:
    rep = _fleet(*ROWS)
    data = to_dict(rep)
    assert data["schema"] == "amicheck-fleet/1"
    assert [t["name"] for t in data["targets"]] == sorted(r.name for r in ROWS)
    again = to_dict(from_dict(json.loads(json.dumps(data))))
    assert again == data
    later = to_dict(FleetReport(**{**rep.__dict__, "duration": 99.0, "started": "x",
                                   "shards": ("2/2", "1/2")}))
    assert comparable(later) == comparable(data)
    assert "duration" not in json.dumps(comparable(data))


def test_merge_checks_shards_and_equals_the_whole() -> None:
    whole = _fleet(*ROWS)
    parts = [_fleet(*(r for r in ROWS if shard_of(r.name, 3) == k), shards=(f"{k}/3",))
             for k in (1, 2, 3)]
    assert comparable(to_dict(merge(parts))) == comparable(to_dict(whole))
    with pytest.raises(MergeError, match="shard.*missing"):
        merge(parts[:2])
    with pytest.raises(MergeError, match="given twice"):
        merge([*parts, parts[0]])
    with pytest.raises(MergeError, match="different partitions"):
        merge([*parts, _fleet(shards=("1/2",))])
    with pytest.raises(MergeError, match="different fleets"):
        merge([parts[0], FleetReport(fleet="other", shards=("2/3",))])


def test_html_is_escaped_and_links_cells(tmp_path: Path) -> None:
    page = to_html(_fleet(*ROWS))
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>length</b>" not in page and "&lt;b&gt;length&lt;/b&gt;" in page
    assert 'href="targets/crit/report.html#p-AMI-CFG-001"' in page
    assert 'href="targets/ok/report.html"' in page
    tree = etree.HTML(page)
    rows = tree.xpath("//table[@id='matrix']/tbody/tr/@data-target")
    assert rows == ["dead<x>", "crit", "low", "ok"]


def test_junit_is_one_suite_per_target_and_valid() -> None:
    rep = bl.mark(_fleet(*ROWS), bl.compare(to_dict(_fleet(ROWS[0])), _fleet(*ROWS)), "old.json")
    xml = to_junit_xml(rep)
    doc = etree.fromstring(xml.encode())
    etree.XMLSchema(etree.parse(str(XSD))).assertValid(doc)
    suites = doc.findall("testsuite")
    assert [s.get("name") for s in suites] == sorted(r.name for r in ROWS)
    for s in suites:
        assert int(s.get("tests")) == len(s.findall("testcase"))
    props = {p.get("name"): p.get("value") for p in suites[0].iter("property")}
    assert suites[0].get("name") == "crit" and props["regressions"] == "AMI-CFG-001"
    assert int(doc.get("tests")) == sum(len(s.findall("testcase")) for s in suites)
    dead = next(s for s in suites if s.get("name") == "dead<x>")
    assert dead.find("testcase/error").get("message") == "connection refused <script>"


# --- baselines -----------------------------------------------------------------------------


def _run_report(**outcomes: str) -> dict[str, object]:
    return {"schema": "amicheck-report/1", "target": {"name": "sim"}, "results": [
        {"requirement": k.replace("_", "-"), "nodeid": k, "outcome": v}
        for k, v in outcomes.items()]}


def test_compare_run_reports() -> None:
    old = _run_report(A_001="pass", B_001="fail", C_001="fail", D_001="fail", E_001="skip")
    new = _run_report(A_001="fail", B_001="pass", C_001="error", D_001="skip", E_001="error",
                      F_001="fail")
    comp = bl.compare(old, new)
    (t,) = comp.targets
    assert t.new_failures == ("A-001", "E-001", "F-001")
    assert t.fixed == ("B-001",) and t.still_failing == ("C-001",)
    assert t.unverified == ("D-001",) and comp.worse
    assert not bl.compare(old, old).worse
    assert bl.compare(new, old).target("(run)").new_failures == ("B-001", "D-001")  # type: ignore


def test_compare_fleets_per_target_and_harness_errors() -> None:
    old = _fleet(*ROWS[:3])
    new = _fleet(_row("ok", AMI_AUTH_001="pass", AMI_CFG_001="pass", AMI_TLS_001="skip"),
                 _row("crit", AMI_AUTH_001="pass", AMI_CFG_001="pass", AMI_TLS_001="pass"),
                 error_row("low", "sim", "built-in", "deadline"), ROWS[3])
    comp = bl.compare(old, new)
    low, crit, dead = comp.target("low"), comp.target("crit"), comp.target("dead<x>")
    assert low and low.harness_error == "deadline" and low.regressions == ("harness-error",)
    assert crit and crit.fixed == ("AMI-CFG-001",) and not crit.worse
    assert dead and dead.added and dead.worse
    marked = bl.mark(new, comp, "old.json")
    assert marked.baseline == "old.json" and marked.regressions == 2
    with pytest.raises(bl.BaselineError, match="cannot compare a run report with a fleet"):
        bl.compare(_run_report(), old)


def test_diff_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new, bad = tmp_path / "old.json", tmp_path / "new.json", tmp_path / "bad.json"
    old.write_text(json.dumps(to_dict(_fleet(*ROWS[:3]))), "utf-8")
    new.write_text(json.dumps(to_dict(_fleet(*ROWS))), "utf-8")
    bad.write_text("{nope", "utf-8")
    assert main_diff([str(old), str(old)]) == 0
    assert "not worse" in capsys.readouterr().out
    assert main_diff([str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert "dead<x>: new target" in out and "NOT AUDITED" in out and out.startswith("dead")
    assert main_diff([str(new), str(old)]) == 0
    assert "dead<x>: removed from the fleet" in capsys.readouterr().out
    assert main_diff([str(old), str(new), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["worse"] is True
    for args in ([str(old), str(bad)], [str(old), str(tmp_path / "none.json")],
                 [str(old)]):
        assert main_diff(args) == 2
    err = capsys.readouterr().err
    assert "not JSON" in err and "cannot read" in err and "Traceback" not in err


def test_merge_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main_merge([str(tmp_path), "--report-dir", str(tmp_path / "o")]) == 2
    assert "is " in capsys.readouterr().err
    for k in (1, 2):
        d = tmp_path / f"s{k}"
        d.mkdir()
        part = _fleet(*(r for r in ROWS if shard_of(r.name, 3) == k), shards=(f"{k}/3",))
        (d / "fleet.json").write_text(json.dumps(to_dict(part)), "utf-8")
    assert main_merge([str(tmp_path / "s1"), str(tmp_path / "s2"), "--report-dir",
                       str(tmp_path / "o")]) == 2
    assert "shard(s) 3/3 missing" in capsys.readouterr().err


# --- runner pieces -------------------------------------------------------------------------


def test_command_for_passes_every_target_setting(tmp_path: Path) -> None:
    from amicheck.fleet.runner import LEAN_PYTEST_ARGS, command_for
    from amicheck.fleet.spec import FleetTarget

    t = FleetTarget(name="a", target="192.0.2.1:7777", profile=tmp_path / "p.toml",
                    outside_source="127.0.0.2", allow_destructive=True, allow_bruteforce=True)
    cmd = command_for(t, tmp_path / "out", pcap=True, pytest_args=["-k", "CFG"], python="py")
    assert cmd[:4] == ["py", "-m", "amicheck", "run"]
    joined = " ".join(cmd)
    for part in ("--target 192.0.2.1:7777", f"--profile {tmp_path / 'p.toml'}",
                 f"--report-dir {tmp_path / 'out'}", "--outside-source 127.0.0.2",
                 "--allow-destructive", "--allow-bruteforce", "--pcap"):
        assert part in joined
    assert cmd[cmd.index("--") + 1:] == [*LEAN_PYTEST_ARGS, "-k", "CFG"]
    sim = command_for(FleetTarget(name="s", faults=("weak-password", "event-leak")), tmp_path)
    assert sim[sim.index("--target") + 1] == "sim" and "--profile" not in sim
    assert " ".join(sim).count("--fault") == 2


def test_default_jobs_is_bounded() -> None:
    from amicheck.fleet.runner import PER_CPU, default_jobs

    assert default_jobs(1) == 1 and default_jobs(0) == 1  # an empty shard
    assert default_jobs(50) in (25, 50 // -(-50 // default_jobs(10_000)))
    assert 1 <= default_jobs(10_000) <= PER_CPU * (__import__("os").cpu_count() or 1)


def test_progress_line_on_a_terminal_and_in_a_log() -> None:
    import io

    from amicheck.fleet.progress import Progress
    from amicheck.fleet.runner import Job
    from amicheck.fleet.spec import FleetTarget

    done = Job(FleetTarget(name="a"), Path("a"), started=0.0)
    done.row = ROWS[2]
    running = Job(FleetTarget(name="slow-one"), Path("b"),
                  started=__import__("time").monotonic() - 42)
    tty = io.StringIO()
    p = Progress(tty, tty=True)
    p([done], [running], 3)
    p.close()
    text = tty.getvalue()
    assert text.startswith("\rfleet: 1/3 done, 1 failing, 1 running; slowest in flight: "
                           "slow-one (42 s)") and text.endswith("\n")
    log = io.StringIO()
    p = Progress(log, tty=False)
    p([done], [running], 3)
    p([done], [running], 3)  # nothing new: no second line
    assert log.getvalue().splitlines() == [
        "fleet: [1/3] a NOT-COMPLIANT (1 failed, 0 errors) in 0.0 s; slowest in flight: "
        "slow-one (42 s)"]
    hb = io.StringIO()
    p = Progress(hb, tty=False, heartbeat_s=0.0)
    p([], [running], 3)
    assert hb.getvalue().startswith("fleet: 0/3 done, 0 failing, 1 running")


def test_mark_run_for_amicheck_run_baseline() -> None:
    from datetime import UTC, datetime

    from amicheck.report.json_writer import to_dict as run_to_dict
    from amicheck.report.model import CheckResult, RunReport

    def report(outcome: Outcome) -> RunReport:
        now = datetime.now(UTC)
        return RunReport(target="sim", is_sim=True, profile="p", version="0", started=now,
                         finished=now, results=(
                             CheckResult("t::a", "AMI-CFG-001", "t", "AMI-CFG", "high", outcome),
                             CheckResult("t::b", "AMI-CFG-002", "t", "AMI-CFG", "low",
                                         Outcome.FAIL)))

    old, new = report(Outcome.PASS), report(Outcome.FAIL)
    assert bl.regressions(run_to_dict(old), new) == {"AMI-CFG-001"}
    marked = bl.mark_run(new, old, "old.json")
    assert dict(marked.extra) == {"baseline": "old.json", "regressions": "AMI-CFG-001"}
    assert dict(bl.mark_run(new, new, "x").extra)["regressions"] == ""


def test_fork_is_not_used_inside_a_pytest_session() -> None:
    from amicheck.fleet.forkspawn import fork_safe

    assert fork_safe() is False  # the rewrite hook of this very session is installed
