"""``amicheck run --baseline OLD.json`` and ``--ami-baseline``: only regressions fail the run.

Real runs of two shipped checks against the embedded simulator; ``banner-mismatch`` makes
AMI-CFG-005 fail. Three runs in a module fixture: compliant (C), faulty against C (F1: a
regression), faulty against F1's own marked report (F2: a known failure, no marks).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from lxml import etree

import amicheck.capture  # noqa: F401  (imported once: see tests/test_plugin.py)
from amicheck.cli import main
from amicheck.report.json_writer import from_json
from amicheck.report.junit_writer import REGRESSION_PREFIX

SELECT = ["--", "-k", "port_and_banner or actions_before_login", "-q"]
FAULT = ["--fault", "banner-mismatch"]
REGRESSED = "AMI-CFG-005"
CHROMIUM = Path("/usr/bin/chromium")


class Run(NamedTuple):
    code: int
    out: str
    err: str
    reports: Path


def _run(reports: Path, *args: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["run", "--report-dir", str(reports), "--fail-delay", "0.05", *args])
    return Run(code, out.getvalue(), err.getvalue(), reports)


class Runs(NamedTuple):
    compliant: Run
    regressed: Run
    known: Run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    d = tmp_path_factory.mktemp("baseline")
    c = _run(d / "c", *SELECT)
    assert c.code == 0, c.out
    shutil.copy(d / "c" / "report.json", d / "ok.json")
    f1 = _run(d / "f1", *FAULT, "--baseline", str(d / "ok.json"), *SELECT)
    f2 = _run(d / "f2", *FAULT, "--baseline", str(d / "f1" / "report.json"), *SELECT)
    yield Runs(c, f1, f2)


def _junit(run: Run) -> tuple[dict[str, str], set[str]]:
    """Suite properties of the first suite, and the IDs of testcases marked as regressions."""
    doc = etree.parse(str(run.reports / "junit.xml"))
    props = {p.get("name"): p.get("value") for p in doc.xpath("//testsuite[1]/properties/property")}
    marked = {c.get("name").split()[0] for c in doc.iter("testcase")
              if any((f.get("message") or "").startswith(REGRESSION_PREFIX)
                     for f in c.xpath("failure|error"))}
    return props, marked


def test_a_new_failure_fails_the_run_and_is_marked_everywhere(runs: Runs) -> None:
    run = runs.regressed
    assert run.code == 1, run.out
    assert "amicheck NOT COMPLIANT: 1 passed, 1 failed" in run.out
    assert "baseline " in run.out and "ok.json: 1 new failures, 0 fixed, 0 still failing" in run.out
    assert f"FAIL  {REGRESSED} [low]" in run.out and "(regression)" in run.out
    report = from_json((run.reports / "report.json").read_text("utf-8"))
    assert report.regressions == {REGRESSED} and report.baseline is not None
    assert report.baseline.endswith("ok.json")
    props, marked = _junit(run)
    assert props["amicheck.baseline"] == report.baseline
    assert props["amicheck.regressions"] == REGRESSED and marked == {REGRESSED}
    dom = etree.HTML((run.reports / "report.html").read_text("utf-8"))
    assert dom.xpath("string(//*[@id='regression-count'])").startswith("1 regression against ")
    assert dom.xpath("//tr[@data-regression='1']/@data-req") == [REGRESSED]


def test_a_known_failure_passes_with_no_marks(runs: Runs) -> None:
    run = runs.known
    assert run.code == 0, run.out
    assert "amicheck NOT COMPLIANT: 1 passed, 1 failed" in run.out  # still honest
    assert "report.json: 0 new failures, 0 fixed, 1 still failing" in run.out
    assert "(regression)" not in run.out
    report = from_json((run.reports / "report.json").read_text("utf-8"))
    assert report.status == "NOT COMPLIANT" and report.regressions == frozenset()
    assert report.extra_keys("still_failing") == (REGRESSED,)
    props, marked = _junit(run)
    assert props["amicheck.regressions"] == "" and marked == set()
    dom = etree.HTML((run.reports / "report.html").read_text("utf-8"))
    assert dom.xpath("string(//*[@id='regression-count'])").startswith("0 regressions against ")
    assert not dom.xpath("//*[@data-regression]")


def test_without_a_baseline_nothing_changes(runs: Runs, tmp_path: Path) -> None:
    report = from_json((runs.compliant.reports / "report.json").read_text("utf-8"))
    assert report.extra == () and report.baseline is None
    assert "new failures" not in runs.compliant.out
    props, _ = _junit(runs.compliant)
    assert not any(k.startswith("amicheck.") for k in props)


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed "
                    "(apt-get install -y chromium)")
def test_regression_html_in_headless_chromium(runs: Runs, tmp_path: Path) -> None:
    profile_dir = tmp_path / "chromium-profile"
    r = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile_dir}", "--dump-dom",
         (runs.regressed.reports / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    shutil.rmtree(profile_dir, ignore_errors=True)
    assert r.returncode == 0, r.stderr[-2000:]
    dom = etree.HTML(r.stdout)
    banner = dom.xpath("string(//p[@id='baseline'])")
    assert "1 regression against " in banner and REGRESSED in banner
    assert dom.xpath("//tr[@class='regression']/@data-req") == [REGRESSED]
    assert dom.xpath("//div[@data-regression='1']/@id") == [f"p-{REGRESSED}"]


# --- bad baselines: one line, exit 2, before any test ------------------------------------------


@pytest.mark.parametrize(
    ("content", "text"),
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        ('{"schema": "amicheck-report/1"}', "missing or malformed field"),
        ('{"schema": "amicheck-fleet/1", "targets": []}', "a run's baseline is the report.json"),
        ("[1, 2]", "not an amicheck report"),
        ("dir", "is a directory"),
    ],
)
def test_broken_baseline_is_one_line_and_exit_2(tmp_path: Path, content: str | None,
                                                text: str) -> None:
    path = tmp_path / "old.json"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_text(content, "utf-8")
    run = _run(tmp_path / "r", "--baseline", str(path), *SELECT)
    assert run.code == 2
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("amicheck: error: --baseline: "), run.err
    assert text in lines[0]
    assert not (tmp_path / "r" / "report.json").exists()  # no test ran


# --- the pytest plugin: --ami-baseline and ami_baseline ----------------------------------------


SUITE = f"""
    import pytest

    @pytest.mark.requirement("{REGRESSED}")
    def test_fails():
        raise AssertionError("known problem")
    """


def test_plugin_refuses_a_broken_baseline(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    (pytester.path / "old.json").write_text("{}", "utf-8")
    result = pytester.runpytest_inprocess("--ami-baseline", "old.json", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [ln for ln in result.errlines if "--ami-baseline" in ln]
    assert len(errors) == 1 and "not an amicheck report" in errors[0]
    assert not (pytester.path / "reports").exists()


def test_plugin_ini_baseline_is_relative_to_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    first = pytester.runpytest_inprocess("--ami-report-dir", "first", "-p", "no:cacheprovider")
    assert first.ret == pytest.ExitCode.TESTS_FAILED
    sub = pytester.path / "ci"
    sub.mkdir()
    shutil.copy(pytester.path / "first" / "report.json", sub / "old.json")
    (sub / "pytest.ini").write_text("[pytest]\nami_baseline = old.json\n", "utf-8")
    known = pytester.runpytest_inprocess("-c", str(sub / "pytest.ini"), "--rootdir",
                                         str(pytester.path), "--ami-report-dir", "again",
                                         "-p", "no:cacheprovider", str(pytester.path))
    assert known.ret == pytest.ExitCode.OK, known.outlines  # a known failure only
    assert any("0 new failures, 0 fixed, 1 still failing" in ln for ln in known.outlines)
    report = from_json((pytester.path / "again" / "report.json").read_text("utf-8"))
    assert report.baseline == str(sub / "old.json") and report.status == "NOT COMPLIANT"
    # the same failure against a passing baseline is a regression: exit 1
    ok = from_json((pytester.path / "first" / "report.json").read_text("utf-8"))
    from dataclasses import replace

    from amicheck.report.json_writer import to_json
    from amicheck.report.model import Outcome

    passing = replace(ok, results=tuple(replace(r, outcome=Outcome.PASS) for r in ok.results))
    (pytester.path / "pass.json").write_text(to_json(passing), "utf-8")
    new = pytester.runpytest_inprocess("--ami-baseline", "pass.json", "--ami-report-dir",
                                       "third", "-p", "no:cacheprovider")
    assert new.ret == pytest.ExitCode.TESTS_FAILED
    third = from_json((pytester.path / "third" / "report.json").read_text("utf-8"))
    assert third.regressions == {REGRESSED} and third.baseline == "pass.json"
