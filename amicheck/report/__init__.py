"""Run results as data (:mod:`.model`) and the writers that render them.

Writers are pure functions ``RunReport -> str``; the plugin and the CLI decide where files go.
"""

from __future__ import annotations

from amicheck.report.model import CheckResult, Metric, Outcome, RunReport

__all__ = ["CheckResult", "Metric", "Outcome", "RunReport", "REPORT_FILES"]

#: File names written into the report directory, by writer.
REPORT_FILES: dict[str, str] = {
    "junit": "junit.xml",
    "html": "report.html",
    "json": "report.json",
}
