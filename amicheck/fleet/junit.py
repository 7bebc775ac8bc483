"""The fleet as JUnit XML: one ``<testsuite>`` per target, so CI shows each UCM as a suite.

Each testcase is one requirement (``"<ID> <title>"``, classname ``amicheck.<target>.<area>``);
a target the harness could not audit is a suite with one errored ``harness`` testcase. The
suite's properties name the target, profile, status, tags and faults, and, with a baseline,
``regressions`` (space-separated keys worse than the baseline; empty when none). Valid against
the Jenkins junit-10.xsd (properties only on suites, no ``disabled``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from amicheck.fleet.model import FleetReport, TargetRow, TargetStatus
from amicheck.report.model import Outcome

__all__ = ["to_junit_xml"]


def _props(suite: ET.Element, report: FleetReport, row: TargetRow) -> None:
    props = ET.SubElement(suite, "properties")
    values = [("target", row.target), ("profile", row.profile), ("status", row.status.value),
              ("tags", ",".join(row.tags))]
    if row.faults:
        values.append(("faults", ",".join(row.faults)))
    if report.baseline is not None:
        values += [("baseline", report.baseline), ("regressions", " ".join(row.regressions))]
    for name, value in values:
        ET.SubElement(props, "property", name=name, value=value)


def _suite(report: FleetReport, row: TargetRow) -> ET.Element:
    msgs = dict(row.messages)
    suite = ET.Element("testsuite", name=row.name)
    _props(suite, report, row)
    failures = errors = skipped = 0
    if row.status is TargetStatus.ERROR:
        case = ET.SubElement(suite, "testcase", name="harness: audit the target",
                             classname=f"amicheck.{row.name}", time="0")
        ET.SubElement(case, "error", message=row.error or "not audited",
                      type="harness-error").text = row.error
        errors = 1
    for key, outcome in row.outcomes:
        info = report.requirement(key)
        case = ET.SubElement(suite, "testcase", name=f"{key} {info.title}".strip(),
                             classname=f"amicheck.{row.name}.{info.area}", time="0")
        message = msgs.get(key, outcome.value)
        if key in row.regressions:
            message = f"[regression] {message}"
        if outcome is Outcome.FAIL:
            ET.SubElement(case, "failure", message=message, type="failure").text = message
            failures += 1
        elif outcome is Outcome.ERROR:
            ET.SubElement(case, "error", message=message, type="error").text = message
            errors += 1
        elif outcome is Outcome.SKIP:
            ET.SubElement(case, "skipped", message=message)
            skipped += 1
    tests = len(row.outcomes) + (1 if row.status is TargetStatus.ERROR else 0)
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    suite.set("time", f"{row.duration:.3f}")
    return suite


def to_junit_xml(report: FleetReport) -> str:
    """Render the fleet (rows by name) as a JUnit document (pure: returns the text)."""
    root = ET.Element("testsuites", name=f"amicheck fleet {report.fleet}")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for row in sorted(report.rows, key=lambda r: r.name):
        suite = _suite(report, row)
        # the Jenkins schema wants properties first, then testcases: _suite keeps that order
        root.append(suite)
        for k in totals:
            totals[k] += int(suite.get(k, "0"))
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", f"{report.duration:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
