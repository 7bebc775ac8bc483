"""Where reports go on disk: the directory check before a run, and writing the files.

The writers are pure (``RunReport -> str``); this module is the only one in report/ that
touches the file system. The directory is checked before the run starts, so a report
directory that is a file, or cannot be created or written, costs the user one line instead
of a whole run and a traceback at the end.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from amicheck.report import REPORT_FILES
from amicheck.report.model import RunReport

__all__ = ["ReportDirError", "check_report_dir", "write_reports"]


class ReportDirError(Exception):
    """The report directory cannot be used; the message says why, in one line."""


def check_report_dir(directory: Path) -> None:
    """Create ``directory`` if needed and prove a file can be written there.

    Raises:
        ReportDirError: it is a file, or cannot be created or written.
    """
    if directory.exists() and not directory.is_dir():
        raise ReportDirError(f"{directory} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportDirError(f"cannot create {directory}: {exc.strerror or exc}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".amicheck-probe-", dir=directory)
    except OSError as exc:
        raise ReportDirError(f"cannot write into {directory}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` beside ``path`` and rename it there: a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def write_reports(report: RunReport, directory: Path) -> list[Path]:
    """Render every writer's output into ``directory`` (created); returns the paths.

    Each file is written beside its final name and renamed, so a reader never sees half a
    report.
    """
    from amicheck.report.html_writer import to_html
    from amicheck.report.json_writer import to_json
    from amicheck.report.junit_writer import to_junit_xml

    directory.mkdir(parents=True, exist_ok=True)
    return [write_atomic(directory / REPORT_FILES[kind], render(report))
            for kind, render in (("junit", to_junit_xml), ("html", to_html), ("json", to_json))]
