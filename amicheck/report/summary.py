"""The one-screen summary ``amicheck run`` prints after a run, read back from report.json.

It is read from the file CI will keep, so the terminal and the report cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from amicheck.report.model import RunReport

__all__ = ["print_summary", "MAX_LISTED"]

#: Failures and errors listed on the terminal (report.html has them all).
MAX_LISTED = 15


def _gist(message: str, lines: int = 2, width: int = 100) -> list[str]:
    """The first lines of a failure message, without the exception class prefix."""
    text = message.removeprefix("AssertionError: ")
    out = [ln.strip() for ln in text.splitlines() if ln.strip()][:lines]
    return [ln if len(ln) <= width else ln[: width - 3] + "..." for ln in out]


def print_summary(report_dir: Path, out: TextIO, since: float = 0.0) -> RunReport | None:
    """Print the one-screen summary from report.json; None if there is none (or an old one)."""
    from amicheck.report import REPORT_FILES
    from amicheck.report.json_writer import from_json
    from amicheck.report.model import Outcome

    path = report_dir / REPORT_FILES["json"]
    try:
        report = from_json(path.read_text("utf-8"))
    except (OSError, ValueError, KeyError):
        return None
    if report.started.timestamp() < since - 1.0:  # left over from an earlier run
        return None
    c = report.counts()
    print("", file=out)
    print("=" * 72, file=out)
    counts = (f"{c[Outcome.PASS]} passed, {c[Outcome.FAIL]} failed, {c[Outcome.ERROR]} errors, "
              f"{c[Outcome.SKIP]} skipped in {report.duration:.1f} s")
    if report.no_verdict:
        print(f"amicheck {report.status}: no checks ran ({counts})", file=out)
    else:
        print(f"amicheck {report.status}: {counts}", file=out)
    faults = f" faults={','.join(report.faults)}" if report.faults else ""
    print(f"target {report.target}{faults}, profile {report.profile}", file=out)
    from amicheck.plugin.reporting import baseline_line

    compared = baseline_line(report)
    if compared is not None:
        print(compared, file=out)
    problems = sorted(report.problems(), key=lambda r: not report.is_regression(r))
    for r in problems[:MAX_LISTED]:
        new = "  (regression)" if report.is_regression(r) else ""
        print(f"  {r.outcome.value.upper():5} {r.key} [{r.severity}] {r.title}{new}", file=out)
        for line in _gist(r.message):
            print(f"        {line}", file=out)
    if len(problems) > MAX_LISTED:
        print(f"  ... and {len(problems) - MAX_LISTED} more (see report.html)", file=out)
    for kind in ("html", "junit", "json"):
        print(f"{kind:>5}: {report_dir / REPORT_FILES[kind]}", file=out)
    return report
