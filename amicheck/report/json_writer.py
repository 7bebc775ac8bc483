"""The run as versioned JSON (``"schema": "amicheck-report/1"``), and back.

Machines read this file: keys are stable, times are ISO 8601 UTC, outcomes and severities are
the lower-case words of the model. A change that breaks readers bumps the schema number.

``extra`` is an object of run-level facts (always present, often empty). A run compared with a
baseline has ``baseline`` (its name) and ``regressions``, ``fixed``, ``still_failing``
(space-separated requirement IDs); CI reads ``extra.regressions`` to see what is new.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from amicheck.report.model import CheckResult, Metric, Outcome, RunReport

__all__ = ["SCHEMA", "to_json", "to_dict", "from_json", "from_dict"]

SCHEMA = "amicheck-report/1"


def to_dict(report: RunReport) -> dict[str, Any]:
    """The JSON-ready dictionary of a report."""
    counts = report.counts()
    return {
        "schema": SCHEMA,
        "amicheck_version": report.version,
        "target": {"name": report.target, "is_sim": report.is_sim, "faults": list(report.faults)},
        "profile": report.profile,
        "started": report.started.isoformat(),
        "finished": report.finished.isoformat(),
        "duration": round(report.duration, 3),
        "interrupted": report.interrupted,
        "exit_status": report.exit_status,
        "status": report.status,
        "summary": {
            "total": len(report.results),
            **{o.value: counts[o] for o in Outcome},
            "by_severity": {
                sev: {o.value: n for o, n in row.items()}
                for sev, row in report.counts_by_severity().items()
            },
        },
        "extra": dict(report.extra),  # a repeated key: the later value, as extra_value()
        "tls_endpoints": list(report.tls_endpoints),
        "results": [_result(r) for r in report.results],
    }


def _result(r: CheckResult) -> dict[str, Any]:
    return {
        "requirement": r.requirement,
        "title": r.title,
        "area": r.area,
        "area_title": r.area_title,
        "severity": r.severity,
        "outcome": r.outcome.value,
        "message": r.message,
        "duration": r.duration,
        "nodeid": r.nodeid,
        "remediation": r.remediation,
        "source": r.source,
        "evidence": r.evidence,
        "details": r.details,
        "pcap": r.pcap,
        "metrics": [
            {"name": m.name, "value": m.value, "unit": m.unit, "samples": list(m.samples)}
            for m in r.metrics
        ],
    }


def to_json(report: RunReport) -> str:
    """Serialise a report (pure: returns the text, writes nothing)."""
    return json.dumps(to_dict(report), indent=2, ensure_ascii=False) + "\n"


def from_dict(data: dict[str, Any]) -> RunReport:
    """Rebuild the model from :func:`to_dict` output; refuses other schema versions."""
    if data.get("schema") != SCHEMA:
        raise ValueError(f"not an {SCHEMA} report (schema: {data.get('schema')!r})")
    target = data["target"]
    extra = data.get("extra", {})  # absent in reports written before it existed
    if not isinstance(extra, dict):
        raise ValueError(f"not an {SCHEMA} report: 'extra' is not an object")
    return RunReport(
        target=target["name"],
        is_sim=bool(target["is_sim"]),
        faults=tuple(target.get("faults", ())),
        profile=data["profile"],
        version=data["amicheck_version"],
        started=datetime.fromisoformat(data["started"]),
        finished=datetime.fromisoformat(data["finished"]),
        interrupted=bool(data.get("interrupted", False)),
        exit_status=data.get("exit_status"),
        extra=tuple((str(k), str(v)) for k, v in extra.items()),
        tls_endpoints=tuple(str(t) for t in data.get("tls_endpoints", ())),
        results=tuple(
            CheckResult(
                nodeid=r["nodeid"],
                requirement=r["requirement"],
                title=r["title"],
                area=r["area"],
                area_title=r.get("area_title", ""),
                severity=r["severity"],
                outcome=Outcome(r["outcome"]),
                message=r["message"],
                duration=float(r["duration"]),
                evidence=r.get("evidence", ""),
                details=r.get("details", ""),
                remediation=r.get("remediation", ""),
                source=r.get("source", ""),
                pcap=r.get("pcap"),
                metrics=tuple(
                    Metric(m["name"], float(m["value"]), m["unit"], tuple(m["samples"]))
                    for m in r.get("metrics", ())
                ),
            )
            for r in data["results"]
        ),
    )


def from_json(text: str) -> RunReport:
    """Parse a JSON report written by :func:`to_json`."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not an amicheck report: top level is not an object")
    return from_dict(data)
