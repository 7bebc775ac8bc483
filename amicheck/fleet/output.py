"""Where fleet reports go: ``fleet.html``, ``fleet.json``, ``junit.xml`` in the report dir."""

from __future__ import annotations

from pathlib import Path

from amicheck.fleet.html import to_html
from amicheck.fleet.junit import to_junit_xml
from amicheck.fleet.model import FleetReport, to_json
from amicheck.report.files import write_atomic

__all__ = ["FLEET_FILES", "write_reports"]

#: File names written into the report directory, by writer.
FLEET_FILES: dict[str, str] = {"html": "fleet.html", "json": "fleet.json", "junit": "junit.xml"}


def write_reports(report: FleetReport, directory: Path) -> list[Path]:
    """Render every writer into ``directory`` (created), each file replaced atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    return [write_atomic(directory / FLEET_FILES[kind], render(report))
            for kind, render in (("json", to_json), ("html", to_html), ("junit", to_junit_xml))]
