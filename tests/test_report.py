"""Reports: the model built from a real run, JUnit (XSD-valid), JSON (reloaded), HTML (escaped)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401
import pytest
from lxml import etree

# Imported before pytester snapshots sys.modules (see tests/test_plugin.py).
import amicheck.capture  # noqa: F401
import amicheck.client  # noqa: F401
import amicheck.sim  # noqa: F401
from amicheck.profile import default_profile
from amicheck.report.collector import Collector, redact
from amicheck.report.html_writer import latency_chart, percentile, to_html
from amicheck.report.json_writer import SCHEMA, from_json, to_json
from amicheck.report.junit_writer import REGRESSION_PREFIX, to_junit_xml
from amicheck.report.model import CheckResult, Metric, Outcome, RunReport, area_of
from amicheck.requirements import CATALOGUE

XSD = Path(__file__).parent / "data" / "junit-10.xsd"
SECRETS = sorted(default_profile().secrets())
AUTH = sorted(i for i in CATALOGUE if i.startswith("AMI-AUTH"))
PRF = sorted(i for i in CATALOGUE if i.startswith("AMI-PRF"))
TLS = sorted(i for i in CATALOGUE if i.startswith("AMI-TLS"))


@pytest.fixture(scope="module", autouse=True)
def _warm_imports() -> None:
    """See tests/test_plugin.py: start the simulator once outside pytester."""
    from amicheck.client import AmiClient
    from amicheck.sim import Simulator

    with Simulator(default_profile(), host="127.0.0.1", port=0, tls_port=0) as sim:
        assert sim.tls_port is not None
        AmiClient.connect(sim.host, sim.tls_port, tls=True, timeout=5).close()


def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


SUITE = f"""
    import pytest

    @pytest.fixture
    def broken():
        raise RuntimeError("fixture could not set up")

    @pytest.mark.requirement("{AUTH[0]}")
    def test_pass(ami_client):
        assert ami_client.request("Ping").ok

    @pytest.mark.requirement("{AUTH[1]}")
    def test_fail(ami_client):
        ami_client.request("Ping")
        raise AssertionError("<script>alert('x')</script> leaked {SECRETS[0]} & more")

    @pytest.mark.requirement("{AUTH[2]}")
    def test_error(broken):
        pass

    @pytest.mark.requirement("{TLS[0]}")
    def test_skip():
        pytest.skip("not applicable: TLS is off")

    @pytest.mark.requirement("{PRF[0]}")
    def test_metric(ami_metric):
        ami_metric("ping latency", 0.4, "ms", samples=[0.1 * i for i in range(1, 50)])

    @pytest.mark.requirement("{PRF[1]}")
    @pytest.mark.xfail(reason="known", strict=True)
    def test_xfail():
        assert False
    """


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, Path]:
    path = pytester.path / "suites" / "test_mixed.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(SUITE))
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    return result, pytester.path / "reports"


@pytest.fixture
def run_dir(pytester: pytest.Pytester) -> Path:
    result, reports = _run(pytester, "--ami-pcap")
    result.assert_outcomes(passed=2, failed=1, errors=1, skipped=1, xfailed=1)
    return reports


def test_all_files_written(run_dir: Path) -> None:
    assert {p.name for p in run_dir.iterdir()} >= {"junit.xml", "report.html", "report.json"}
    assert list((run_dir / "pcap").glob("*.pcap"))


def test_junit_is_valid_and_complete(run_dir: Path) -> None:
    doc = etree.parse(str(run_dir / "junit.xml"))
    schema = _schema()
    assert schema.validate(doc), schema.error_log
    root = doc.getroot()
    cases = root.findall(".//testcase")
    assert int(root.get("tests")) == len(cases) == 6
    assert int(root.get("failures")) == 1 and int(root.get("errors")) == 1
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"AMI-AUTH", "AMI-TLS", "AMI-PRF"}
    assert sum(int(s.get("tests")) for s in suites.values()) == 6
    props = {p.get("name"): p.get("value") for p in suites["AMI-AUTH"].iter("property")}
    for rid in AUTH[:3]:
        assert props[rid] == CATALOGUE[rid].severity.value
    failed = [c for c in cases if c.find("failure") is not None]
    assert failed[0].get("name").startswith(AUTH[1] + " ")
    assert "Remediation:" in failed[0].find("failure").text
    assert "<script>" in failed[0].find("failure").get("message")  # XML-escaped on disk
    errored = [c for c in cases if c.find("error") is not None]
    assert "fixture could not set up" in errored[0].find("error").get("message")
    skipped = [c.find("skipped").get("message") for c in cases if c.find("skipped") is not None]
    assert "not applicable: TLS is off" in skipped


def test_json_reloads(run_dir: Path) -> None:
    text = (run_dir / "report.json").read_text()
    report = from_json(text)
    assert to_json(report) == text
    by_id = {r.requirement: r for r in report.results}
    assert by_id[AUTH[0]].outcome is Outcome.PASS
    assert by_id[AUTH[1]].outcome is Outcome.FAIL
    assert by_id[AUTH[2]].outcome is Outcome.ERROR
    assert by_id[TLS[0]].outcome is Outcome.SKIP
    assert by_id[PRF[1]].outcome is Outcome.SKIP
    assert by_id[PRF[1]].message.startswith("expected failure")
    assert by_id[AUTH[1]].remediation == CATALOGUE[AUTH[1]].remediation
    assert by_id[AUTH[1]].area == "AMI-AUTH" and by_id[AUTH[1]].area_title
    assert "Action: Ping" in by_id[AUTH[1]].evidence
    pcap = by_id[AUTH[1]].pcap
    assert pcap is not None and Path(pcap).is_file()
    assert by_id[PRF[0]].metrics[0].samples[:2] == (0.1, 0.2)
    assert report.is_sim and report.target == "sim" and report.profile == "amicheck-simulator"
    assert report.version and report.finished >= report.started and not report.interrupted


def test_html_is_escaped_and_self_contained(run_dir: Path) -> None:
    html = (run_dir / "report.html").read_text()
    assert "&lt;script&gt;alert(" in html
    assert "<script" not in html.lower()
    assert "<svg" in html and "p95" in html
    assert "src=" not in html and "href=" not in html and "@import" not in html
    assert html.index(AUTH[1]) < html.index("Results by area")  # failures first
    assert CATALOGUE[AUTH[1]].remediation.split(",")[0].replace("'", "&#39;") in html


def test_no_secret_in_any_output(run_dir: Path) -> None:
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(files) >= 4
    for path in files:
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret!r} in {path}"


def test_secret_absent_from_terminal_output(pytester: pytest.Pytester) -> None:
    result, _ = _run(pytester)
    out = result.stdout.str() + result.stderr.str()
    for secret in SECRETS:
        assert secret not in out


def test_report_written_when_interrupted(pytester: pytest.Pytester) -> None:
    path = pytester.path / "suites" / "test_stop.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(f"""
        import pytest

        @pytest.mark.requirement("{AUTH[0]}")
        def test_first():
            pass

        @pytest.mark.requirement("{AUTH[1]}")
        def test_interrupt():
            raise KeyboardInterrupt

        @pytest.mark.requirement("{AUTH[2]}")
        def test_never():
            pass
        """))
    result = pytester.runpytest("-p", "no:cacheprovider", no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    report = from_json((pytester.path / "reports" / "report.json").read_text())
    assert report.interrupted and not report.ok
    assert [r.requirement for r in report.results] == [AUTH[0]]
    assert (pytester.path / "reports" / "junit.xml").is_file()


def test_report_built_on_xdist_controller(pytester: pytest.Pytester) -> None:
    result, reports = _run(pytester, "-n", "2")
    result.assert_outcomes(passed=2, failed=1, errors=1, skipped=1, xfailed=1)
    report = from_json((reports / "report.json").read_text())
    assert len(report.results) == 6
    assert {r.requirement for r in report.results} == {*AUTH[:3], TLS[0], *PRF[:2]}
    assert any("Action: Ping" in r.evidence for r in report.results)
    assert _schema().validate(etree.parse(str(reports / "junit.xml")))


def test_report_dir_option(pytester: pytest.Pytester) -> None:
    result, _ = _run(pytester, "--ami-report-dir", "out/here")
    assert (pytester.path / "out" / "here" / "report.json").is_file()
    assert not (pytester.path / "reports").exists()
    result.stdout.fnmatch_lines(["*report: *out/here/report.html"])


# --- the model and writers without pytest ------------------------------------------------------

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _model(*results: CheckResult, **kw: Any) -> RunReport:
    return RunReport("sim", True, "p", "0.1.0", T0, T0 + timedelta(seconds=3), results, **kw)


def _result(rid: str | None, outcome: Outcome, severity: str = "high", **kw: object) -> CheckResult:
    return CheckResult(f"suites/t.py::{rid}", rid, f"title of {rid}", area_of(rid), severity,
                       outcome, **kw)  # type: ignore[arg-type]


def test_empty_report_is_valid_junit() -> None:
    doc = etree.fromstring(to_junit_xml(_model()).encode())
    assert _schema().validate(doc)
    assert doc.get("tests") == "0"


def test_counts_and_order() -> None:
    r = _model(
        _result("AMI-AUTH-002", Outcome.FAIL, "low"),
        _result("AMI-AUTH-001", Outcome.ERROR, "critical"),
        _result("AMI-TLS-001", Outcome.PASS),
        _result(None, Outcome.SKIP, "info"),
    )
    assert [p.requirement for p in r.problems()] == ["AMI-AUTH-001", "AMI-AUTH-002"]
    assert r.counts()[Outcome.PASS] == 1 and not r.ok
    assert r.counts_by_severity()["critical"][Outcome.ERROR] == 1
    assert list(r.by_area()) == ["AMI-AUTH", "AMI-TLS", "other"]
    assert area_of("AMI-FRM-012") == "AMI-FRM" and area_of(None) == "other"


def test_json_refuses_other_schema() -> None:
    text = to_json(_model()).replace(SCHEMA, "amicheck-report/99")
    with pytest.raises(ValueError, match="amicheck-report/99"):
        from_json(text)


def test_chart_and_percentiles() -> None:
    m = Metric("ping", 1.0, "ms", tuple(float(i) for i in range(1, 101)))
    assert (percentile(m.samples, 50), percentile(m.samples, 95), percentile(m.samples, 99)) == (
        50.0, 95.0, 99.0)
    svg = str(latency_chart(m))
    assert svg.startswith("<svg") and svg.count("<rect") == 24 and "p99 99 ms" in svg
    assert str(latency_chart(Metric("x<y", 1.0, "ms"))) == ""
    html = to_html(_model(_result("AMI-PRF-001", Outcome.PASS,
                                  metrics=(Metric("a<b>", 1.0, "ms", (1.0, 2.0)),))))
    assert "a&lt;b&gt;" in html and "a<b>" not in html


def test_html_renders_every_outcome() -> None:
    html = to_html(_model(*(_result(f"AMI-CFG-00{i}", o, message=f"msg {o.value}")
                            for i, o in enumerate(Outcome, 1)), faults=("crlf-only",),
                          interrupted=True))
    for o in Outcome:
        assert f"msg {o.value}" in html
    assert "crlf-only" in html and "interrupted" in html


def _tr(nodeid: str, when: str, outcome: str, longrepr: object = None,
        props: Sequence[tuple[str, object]] | None = None) -> pytest.TestReport:
    return pytest.TestReport(
        nodeid, ("t.py", 1, "t"), {}, outcome, longrepr, when,  # type: ignore[arg-type]
        duration=0.5, user_properties=list(props or ()),
    )


def test_collector_phases() -> None:
    c = Collector(target="sim", is_sim=True, profile="p", version="v",
                  lookup=CATALOGUE.get, secrets=["hunter22"])
    req = [("requirement", AUTH[0])]
    c.add(_tr("a", "setup", "passed", props=req))
    c.add(_tr("a", "call", "failed", "AssertionError: hunter22 seen", req))
    c.add(_tr("a", "teardown", "failed", "OSError: boom", req))
    c.add(_tr("b", "setup", "failed", "RuntimeError: no fixture"))
    c.add(_tr("b", "teardown", "passed"))
    c.add(_tr("c", "setup", "skipped", ("t.py", 1, "Skipped: not here")))
    c.add(_tr("c", "teardown", "passed"))
    c.add(_tr("d", "setup", "passed"))
    c.add(_tr("d", "call", "passed"))
    c.add(_tr("d", "teardown", "failed", "ValueError: cleanup"))
    c.add(_tr("e", "setup", "passed"))  # interrupted before its call: not reported
    results = {r.nodeid: r for r in c.build().results}
    assert set(results) == {"a", "b", "c", "d"}
    a = results["a"]
    assert a.outcome is Outcome.FAIL and "hunter22" not in a.message and "********" in a.message
    assert "error in teardown" in a.message
    assert a.severity == CATALOGUE[AUTH[0]].severity.value and a.duration == 1.5
    assert results["b"].outcome is Outcome.ERROR and "error in setup" in results["b"].message
    assert results["c"].outcome is Outcome.SKIP and results["c"].message == "not here"
    assert results["d"].outcome is Outcome.ERROR and "cleanup" in results["d"].message
    assert results["d"].area == "other" and results["d"].severity == "info"


def test_redact_longest_first() -> None:
    assert redact("abc abcdef", ["abc", "abcdef"]) == "******** ********"
    assert redact("nothing", []) == "nothing"


def test_collection_errors_are_in_the_report(pytester: pytest.Pytester) -> None:
    path = pytester.path / "suites" / "test_noid.py"
    path.parent.mkdir()
    path.write_text("def test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--ami-report-dir", "r",
                                "-o", "ami_suites=suites")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    report = from_json((pytester.path / "r" / "report.json").read_text())
    assert [r.outcome for r in report.results] == [Outcome.ERROR]
    assert "needs exactly one" in report.results[0].message
    assert report.status == "INCOMPLETE" and not report.ok


def test_profile_secrets_masked_even_without_a_secret_header(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        def test_leaks(ami_connect):
            c = ami_connect()
            c.send_bytes(b"Action: Ping\\r\\nX-Note: {SECRETS[0]}\\r\\n\\r\\n")
            c.read_messages(timeout=2)
            assert False
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "X-Note: ********" in out and SECRETS[0] not in out


def test_zero_checks_is_no_verdict() -> None:
    """Nothing ran (none selected, or all skipped): NO VERDICT, never COMPLIANT (issue 9)."""
    skipped = CheckResult("t::a", AUTH[0], "t", "AMI-AUTH", "high", Outcome.SKIP, "opted out")
    passed = CheckResult("t::b", AUTH[1], "t", "AMI-AUTH", "high", Outcome.PASS)
    for report in (_model(), _model(skipped)):
        assert report.status == "NO VERDICT" and report.no_verdict and not report.ok
        assert from_json(to_json(report)).status == "NO VERDICT"
        assert '"status": "NO VERDICT"' in to_json(report)
        assert "NO VERDICT: no checks ran" in to_html(report)
    report = _model(skipped, passed)
    assert report.status == "COMPLIANT" and report.ok and not report.no_verdict
    assert _model(interrupted=True).status == "INTERRUPTED"


# --- baseline marks (amicheck run --baseline) ------------------------------------------------


def _marked() -> RunReport:
    """AMI-AUTH-002 new, AMI-AUTH-001 known, against a baseline whose name needs escaping."""
    from amicheck.fleet.baseline import compare, mark_run

    old = _model(_result("AMI-AUTH-001", Outcome.FAIL), _result("AMI-AUTH-002", Outcome.PASS),
                 _result("AMI-TLS-001", Outcome.FAIL))
    new = _model(_result("AMI-AUTH-001", Outcome.FAIL), _result("AMI-AUTH-002", Outcome.FAIL),
                 _result("AMI-TLS-001", Outcome.PASS))
    marked = mark_run(new, old, "<b>old</b>.json")
    assert compare(old, new).worse
    return marked


def test_extra_round_trips_through_json() -> None:
    marked = _marked()
    assert marked.baseline == "<b>old</b>.json" and marked.regressions == {"AMI-AUTH-002"}
    back = from_json(to_json(marked))
    assert back.extra == marked.extra and back == marked
    assert from_json(to_json(_model())).extra == ()
    bad = to_json(_model()).replace('"extra": {}', '"extra": []')
    with pytest.raises(ValueError, match="'extra' is not an object"):
        from_json(bad)


def test_junit_baseline_properties() -> None:
    doc = etree.fromstring(to_junit_xml(_marked()).encode())
    for suite in doc.iter("testsuite"):
        props = {p.get("name"): p.get("value") for p in suite.xpath("properties/property")}
        assert props["amicheck.baseline"] == "<b>old</b>.json"
        assert props["amicheck.regressions"] == "AMI-AUTH-002"
    marked = {c.get("name").split()[0] for c in doc.iter("testcase")
              if any((f.get("message") or "").startswith(REGRESSION_PREFIX)
                     for f in c.xpath("failure|error"))}
    assert marked == {"AMI-AUTH-002"}
    assert _schema().validate(doc), _schema().error_log
    unmarked = etree.fromstring(to_junit_xml(_model(_result("AMI-AUTH-001", Outcome.FAIL)))
                                .encode())
    assert not unmarked.xpath("//property[starts-with(@name, 'amicheck.')]")


def test_html_banner_and_marked_rows_are_escaped() -> None:
    text = to_html(_marked())
    assert "<b>old</b>" not in text and "&lt;b&gt;old&lt;/b&gt;.json" in text
    dom = etree.HTML(text)
    assert dom.xpath("string(//*[@id='regression-count'])") == \
        "1 regression against <b>old</b>.json"
    rows = dom.xpath("//tr[@data-regression='1']/@data-req")
    assert rows == ["AMI-AUTH-002"]
    assert dom.xpath("//div[@data-regression='1']/@id") == ["p-AMI-AUTH-002"]
    assert not etree.HTML(to_html(_model(_result("AMI-AUTH-001", Outcome.FAIL)))).xpath(
        "//*[@id='baseline'] | //*[@data-regression]")


def test_tls_endpoint_evidence_reaches_every_report() -> None:
    """What a TLS scan found (versions and suites per endpoint) is in JSON and HTML."""
    c = Collector(target="sim", is_sim=True, profile="p", version="0", lookup=CATALOGUE.get)
    text = "TLS scan of 127.0.0.1:5039 (SNI -, sslyze): ok\n  TLSv1.2: ECDHE-RSA-<AES>-GCM"

    class _Rep:
        nodeid = "suites/test_tls.py::test_x"
        when = "call"
        outcome = "passed"
        passed, failed, skipped = True, False, False
        duration = 0.1
        longrepr = None
        sections: list[tuple[str, str]] = []
        user_properties = [("requirement", "AMI-TLS-005"), ("ami_tls_evidence", text)]

    c.add(_Rep())
    c.add(_Rep())  # the same endpoint twice: shown once
    report = c.build()
    assert report.tls_endpoints == (text,)
    assert from_json(to_json(report)).tls_endpoints == (text,)
    html = to_html(report)
    assert "TLS endpoints" in html and "ECDHE-RSA-&lt;AES&gt;-GCM" in html
