"""What got worse since last time: compare two run reports or two fleet reports.

CI keeps the last good report as a baseline and fails a job only on what is new. Both report
kinds reduce to "target -> requirement -> outcome"; a run report is one target. Per target a
requirement is

- a **new failure** when it fails or errors now and did not before (passed, was skipped, was
  not checked, or the target is new to the fleet);
- **fixed** when it failed or errored before and passes now;
- **still failing** when it failed or errored both times (fail <-> error included);
- **unverified** when it failed before and is now skipped or not checked at all.

A target that could be audited before and now cannot (an error row: deadline, unreachable) is
worse too; its key in ``regressions`` is :data:`HARNESS_KEY`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from amicheck.fleet import model as fleet_model
from amicheck.report import json_writer
from amicheck.report.model import RunReport

__all__ = [
    "TargetDiff",
    "Comparison",
    "compare",
    "regressions",
    "load_report",
    "mark",
    "mark_run",
    "format_comparison",
    "HARNESS_KEY",
    "BaselineError",
]

#: The regression key of a target that the harness could audit before and cannot now.
HARNESS_KEY = "harness-error"
_BAD = frozenset({"fail", "error"})
_SINGLE = "(run)"


class BaselineError(ValueError):
    """A file that is not a report, or two reports that cannot be compared."""


@dataclass(frozen=True)
class TargetDiff:
    """One target's changes, every list sorted by requirement key."""

    name: str
    new_failures: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()
    still_failing: tuple[str, ...] = ()
    unverified: tuple[str, ...] = ()
    added: bool = False  # not in the baseline
    removed: bool = False  # in the baseline only
    harness_error: str = ""  # why the target could not be audited now (it could before)

    @property
    def worse(self) -> bool:
        return bool(self.new_failures or self.harness_error)

    @property
    def regressions(self) -> tuple[str, ...]:
        """The keys to mark in reports."""
        return ((HARNESS_KEY,) if self.harness_error else ()) + self.new_failures


@dataclass(frozen=True)
class Comparison:
    """Per target (sorted by name); ``kind`` is ``"run"`` or ``"fleet"``."""

    kind: str
    targets: tuple[TargetDiff, ...]

    @property
    def worse(self) -> bool:
        return any(t.worse for t in self.targets)

    def target(self, name: str) -> TargetDiff | None:
        for t in self.targets:
            if t.name == name:
                return t
        return None

    def totals(self) -> dict[str, int]:
        return {
            "new_failures": sum(len(t.new_failures) for t in self.targets),
            "fixed": sum(len(t.fixed) for t in self.targets),
            "still_failing": sum(len(t.still_failing) for t in self.targets),
            "unverified": sum(len(t.unverified) for t in self.targets),
            "harness_errors": sum(1 for t in self.targets if t.harness_error),
        }


@dataclass(frozen=True)
class _Target:
    outcomes: dict[str, str]
    error: str  # non-empty: the harness could not audit it


def _as_dict(report: Any) -> Mapping[str, Any]:
    if isinstance(report, RunReport):
        return json_writer.to_dict(report)
    if isinstance(report, fleet_model.FleetReport):
        return fleet_model.to_dict(report)
    if isinstance(report, Mapping):
        return report
    raise BaselineError(f"cannot compare a {type(report).__name__}")


def _normalise(data: Mapping[str, Any]) -> tuple[str, dict[str, _Target]]:
    schema = data.get("schema")
    try:
        if schema == json_writer.SCHEMA:
            outcomes: dict[str, str] = {}
            for r in data["results"]:
                key = r.get("requirement") or r["nodeid"]
                prev = outcomes.get(key)
                if prev is None or (r["outcome"] in _BAD and prev not in _BAD):
                    outcomes[key] = r["outcome"]
            return "run", {_SINGLE: _Target(outcomes, "")}
        if schema == fleet_model.SCHEMA:
            return "fleet", {
                t["name"]: _Target(dict(t["results"]),
                                   (t.get("error") or "not audited")
                                   if t["status"] == "error" else "")
                for t in data["targets"]
            }
    except (KeyError, TypeError, AttributeError) as exc:
        raise BaselineError(f"a {schema} report with a missing or malformed field ({exc})") \
            from None
    raise BaselineError(
        f"not an amicheck report (schema {schema!r}; expected {json_writer.SCHEMA} or "
        f"{fleet_model.SCHEMA})")


def load_report(path: str | Path) -> Mapping[str, Any]:
    """Read a report.json or fleet.json for comparison.

    Raises:
        BaselineError: unreadable, not JSON, or not an amicheck report (one-line message).
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text("utf-8"))
    except OSError as exc:
        raise BaselineError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"{p}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BaselineError(f"{p}: not an amicheck report (top level is not an object)")
    try:
        _normalise(data)
    except BaselineError as exc:
        raise BaselineError(f"{p}: {exc}") from None
    return data


def _diff(name: str, old: _Target | None, new: _Target | None) -> TargetDiff:
    if new is None:
        return TargetDiff(name, removed=True)
    before = old.outcomes if old else {}
    now = new.outcomes
    new_f: list[str] = []
    fixed: list[str] = []
    still: list[str] = []
    unverified: list[str] = []
    for key in sorted(set(before) | set(now)):
        b, n = before.get(key), now.get(key)
        if n in _BAD:
            (still if b in _BAD else new_f).append(key)
        elif b in _BAD:
            (fixed if n == "pass" else unverified).append(key)
    harness = new.error if new.error and (old is None or not old.error) else ""
    return TargetDiff(name, tuple(new_f), tuple(fixed), tuple(still), tuple(unverified),
                      added=old is None, harness_error=harness)


def compare(old: Any, new: Any) -> Comparison:
    """Compare a baseline with a new report.

    Args:
        old, new: parsed report.json / fleet.json dictionaries, or ``RunReport`` /
            ``FleetReport`` objects; both of the same kind.

    Raises:
        BaselineError: not reports, or a run report against a fleet report.
    """
    kind_old, t_old = _normalise(_as_dict(old))
    kind_new, t_new = _normalise(_as_dict(new))
    if kind_old != kind_new:
        raise BaselineError(f"cannot compare a {kind_old} report with a {kind_new} report "
                            "(give two report.json or two fleet.json files)")
    names = sorted(set(t_old) | set(t_new))
    return Comparison(kind_new, tuple(_diff(n, t_old.get(n), t_new.get(n)) for n in names))


def regressions(old: Any, new: RunReport) -> frozenset[str]:
    """The requirement keys of a single run that are worse than in the baseline run report.

    For ``amicheck run --baseline OLD.json``: mark these in the run's reports.
    """
    diff = compare(old, new).target(_SINGLE)
    return frozenset(diff.new_failures) if diff else frozenset()


def mark_run(report: RunReport, old: Any, baseline_name: str) -> RunReport:
    """A copy of a run report with ``baseline`` and ``regressions`` (space-separated keys,
    sorted) appended to ``extra``: for ``amicheck run --baseline OLD.json``, whose writers
    can show them (JSON ``extra``, a JUnit property, an HTML mark)."""
    keys = " ".join(sorted(regressions(old, report)))
    return replace(report, extra=(*report.extra, ("baseline", baseline_name),
                                  ("regressions", keys)))


def mark(report: fleet_model.FleetReport, comparison: Comparison,
         baseline_name: str) -> fleet_model.FleetReport:
    """A copy of a fleet report with each row's regressions set from ``comparison``."""
    rows = []
    for row in report.rows:
        diff = comparison.target(row.name)
        rows.append(replace(row, regressions=diff.regressions if diff else ()))
    return replace(report, rows=tuple(rows), baseline=baseline_name)


def format_comparison(comp: Comparison) -> list[str]:
    """Human-readable lines, worst news first, one target per block."""
    lines: list[str] = []
    single = comp.kind == "run"
    for t in sorted(comp.targets, key=lambda t: (not t.worse, t.name)):
        if not (t.new_failures or t.fixed or t.still_failing or t.unverified or t.added
                or t.removed or t.harness_error):
            continue
        indent = "" if single else "  "
        if not single:
            state = ("new target" if t.added else "removed from the fleet" if t.removed
                     else "worse" if t.worse else "changed" if t.fixed or t.unverified
                     else "unchanged")
            lines.append(f"{t.name}: {state}")
        if t.harness_error:
            lines.append(f"{indent}NOT AUDITED   {t.harness_error}")
        for label, keys in (("NEW FAILURE", t.new_failures), ("FIXED", t.fixed),
                            ("STILL FAILING", t.still_failing),
                            ("UNVERIFIED", t.unverified)):
            for k in keys:
                lines.append(f"{indent}{label:<13} {k}")
    totals = comp.totals()
    worse = sum(1 for t in comp.targets if t.worse)
    summary = (f"{totals['new_failures']} new failure(s), {totals['fixed']} fixed, "
               f"{totals['still_failing']} still failing, {totals['unverified']} unverified")
    if not single:
        summary += f"; {worse} of {len(comp.targets)} target(s) worse"
        if totals["harness_errors"]:
            summary += f" ({totals['harness_errors']} no longer auditable)"
    lines.append(("WORSE: " if comp.worse else "not worse: ") + summary)
    return lines
