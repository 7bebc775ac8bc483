"""Run results as data (:mod:`.model`), the writers that render them, and :mod:`.files`.

Writers are pure functions ``RunReport -> str``; :mod:`.files` checks the directory and writes.
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
