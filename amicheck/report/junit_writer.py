"""The run as JUnit XML, for Jenkins, GitLab and any CI that reads it.

One ``<testsuite>`` per area (``AMI-AUTH``, ...). The Jenkins/Ant schema (junit-10.xsd) allows
``<properties>`` only on a testsuite, so each suite lists its requirements there as
``<property name="AMI-AUTH-003" value="high"/>`` (ID -> severity), after the suite-wide
``area``/``target``/``profile``/``amicheck_version`` properties. Each testcase is named
``"<ID> <title>"`` with classname ``amicheck.<area>``, so CI views are keyed by requirement.

A run compared with a baseline adds ``amicheck.baseline`` (its name) and
``amicheck.regressions`` (the run's new failures, space-separated) to every suite, and gives
each regressed testcase ``<properties><property name="amicheck.regression" value="true"/>``.
That testcase element is an extension outside junit-10.xsd (as pytest's ``record_property``
output is); GitLab and Jenkins' JUnit plugin read past it, and a run without regressions
stays schema-valid.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import junit_xml

from amicheck.report.model import CheckResult, Outcome, RunReport

__all__ = ["to_junit_xml"]

# junit-xml 1.9 adds a ``disabled`` count that the Jenkins schema does not know.
_NOT_IN_SCHEMA = ("disabled",)


#: Prefix of a regressed check's failure message: JUnit 10 has no per-testcase properties,
#: and the message is what CI front ends show.
REGRESSION_PREFIX = "REGRESSION since the baseline: "


def _case(r: CheckResult, regression: bool = False) -> junit_xml.TestCase:
    name = f"{r.requirement} {r.title}" if r.requirement else r.title
    case = junit_xml.TestCase(
        name=name,
        classname=f"amicheck.{r.area}",
        elapsed_sec=r.duration,
        stdout=r.evidence or None,
    )
    text = "\n\n".join(
        part
        for part in (
            r.message,
            f"Remediation: {r.remediation}" if r.remediation else "",
            r.details,
        )
        if part
    )
    first_line = r.message.splitlines()[0] if r.message else r.outcome.value
    if regression:
        first_line = REGRESSION_PREFIX + first_line
    if r.outcome is Outcome.FAIL:
        case.add_failure_info(message=first_line, output=text, failure_type="failure")
    elif r.outcome is Outcome.ERROR:
        case.add_error_info(message=first_line, output=text, error_type="error")
    elif r.outcome is Outcome.SKIP:
        case.add_skipped_info(message=first_line, output=None)
    return case


def to_junit_xml(report: RunReport) -> str:
    """Render the report as a JUnit XML document (pure: returns the text)."""
    suites = []
    timestamp = report.started.isoformat(timespec="seconds")
    for area, results in report.by_area().items():
        properties = {
            "area": area,
            "target": report.target,
            "profile": report.profile,
            "amicheck_version": report.version,
        }
        if report.faults:
            properties["faults"] = ",".join(report.faults)
        if report.baseline is not None:
            properties["amicheck.baseline"] = report.baseline
            properties["amicheck.regressions"] = " ".join(sorted(report.regressions))
        for r in results:
            if r.requirement:
                properties[r.requirement] = r.severity
        suites.append(
            junit_xml.TestSuite(
                name=area,
                test_cases=[_case(r, report.is_regression(r)) for r in results],
                timestamp=timestamp,
                properties=properties,
            )
        )
    raw = junit_xml.to_xml_report_string(suites, prettyprint=False, encoding="utf-8")
    root = ET.fromstring(raw)
    root.set("name", "amicheck")
    for element in root.iter():
        for attr in _NOT_IN_SCHEMA:
            element.attrib.pop(attr, None)
    counts = report.counts()
    root.set("tests", str(len(report.results)))
    root.set("failures", str(counts[Outcome.FAIL]))
    root.set("errors", str(counts[Outcome.ERROR]))
    root.set("time", f"{sum(r.duration for r in report.results):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
