"""The fleet report as data: one row per target, one outcome per requirement, and back to JSON.

``fleet.json`` (``"schema": "amicheck-fleet/1"``) has two parts. Everything at the top level but
``run`` is the *comparable* part: a function of the fleet file and of the targets' outcomes
only, in a stable order (targets by name, requirements by ID), with no times, durations, ports
or other facts of one particular execution, so that merged shards equal an unsharded run and
two runs can be diffed. ``run`` holds those facts (start, durations, shard, failure messages).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from amicheck.report.model import SEVERITIES, Outcome, RunReport

__all__ = [
    "SCHEMA",
    "TargetStatus",
    "RequirementInfo",
    "TargetRow",
    "FleetReport",
    "row_from_run",
    "error_row",
    "to_dict",
    "to_json",
    "from_dict",
    "from_json",
    "comparable",
    "merge",
    "MergeError",
]

SCHEMA = "amicheck-fleet/1"
_BAD = (Outcome.FAIL, Outcome.ERROR)


class TargetStatus(StrEnum):
    """One word per target, worst first."""

    ERROR = "error"  # the harness could not audit it (deadline, unreachable, bad input)
    INCOMPLETE = "incomplete"  # the run ended abnormally; results are partial
    NOT_COMPLIANT = "not-compliant"
    COMPLIANT = "compliant"


_STATUS_RANK = {s: i for i, s in enumerate(TargetStatus)}
_SEV_RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class RequirementInfo:
    """What the matrix shows of a requirement (from the catalogue via the target reports)."""

    id: str
    title: str
    area: str
    severity: str


@dataclass(frozen=True)
class TargetRow:
    """One audited target: its outcome per requirement key, plus facts of this execution."""

    name: str
    target: str
    profile: str
    tags: tuple[str, ...] = ()
    faults: tuple[str, ...] = ()
    status: TargetStatus = TargetStatus.ERROR
    error: str = ""
    outcomes: tuple[tuple[str, Outcome], ...] = ()  # (requirement key, outcome), sorted by key
    regressions: tuple[str, ...] = ()  # keys worse than the baseline (empty without one)
    # -- volatile (the ``run`` part of fleet.json) --
    duration: float = 0.0
    exit_status: int | None = None
    messages: tuple[tuple[str, str], ...] = ()  # (key, first line of the failure message)

    @property
    def outcome_map(self) -> dict[str, Outcome]:
        return dict(self.outcomes)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for _, o in self.outcomes if o is outcome)

    def failing(self) -> list[str]:
        """Keys that failed or errored."""
        return [k for k, o in self.outcomes if o in _BAD]


@dataclass(frozen=True)
class FleetReport:
    """The whole fleet: rows sorted by name, the requirements seen, and run facts."""

    fleet: str
    rows: tuple[TargetRow, ...] = ()
    requirements: tuple[RequirementInfo, ...] = ()
    version: str = ""
    baseline: str | None = None  # the baseline file's name when regressions were marked
    # -- volatile --
    started: str = ""
    finished: str = ""
    duration: float = 0.0
    shards: tuple[str, ...] = ()  # "K/N" of each part merged ("1/1" unsharded)
    fleet_size: int = 0  # targets in the fleet file (all shards)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def requirement(self, key: str) -> RequirementInfo:
        for r in self.requirements:
            if r.id == key:
                return r
        return RequirementInfo(key, key, "other", "info")

    def failing_counts(self) -> dict[str, int]:
        """Key -> number of targets that fail or error it."""
        counts = {r.id: 0 for r in self.requirements}
        for row in self.rows:
            for k in row.failing():
                counts[k] = counts.get(k, 0) + 1
        return counts

    def worst_first(self) -> list[TargetRow]:
        """Rows by status, then by failures per severity (critical first), then name."""
        sev = {r.id: r.severity for r in self.requirements}

        def key(row: TargetRow) -> tuple[Any, ...]:
            per_sev = [0] * (len(SEVERITIES) + 1)
            for k in row.failing():
                per_sev[_SEV_RANK.get(sev.get(k, "info"), len(SEVERITIES))] -= 1
            return (_STATUS_RANK[row.status], -len(row.regressions), *per_sev, row.name)

        return sorted(self.rows, key=key)

    def requirements_worst_first(self) -> list[RequirementInfo]:
        """Requirement columns: most failing targets first, then severity, then ID."""
        fails = self.failing_counts()
        return sorted(self.requirements, key=lambda r: (
            -fails.get(r.id, 0), _SEV_RANK.get(r.severity, len(SEVERITIES)), r.id))

    def status_counts(self) -> dict[TargetStatus, int]:
        return {s: sum(1 for r in self.rows if r.status is s) for s in TargetStatus}

    def by_requirement(self) -> dict[str, dict[str, int]]:
        """Key -> outcome -> number of targets (every outcome present), keys sorted."""
        table: dict[str, dict[str, int]] = {
            r.id: {o.value: 0 for o in Outcome} for r in self.requirements}
        for row in self.rows:
            for k, o in row.outcomes:
                table.setdefault(k, {x.value: 0 for x in Outcome})[o.value] += 1
        return dict(sorted(table.items()))

    def by_severity(self) -> dict[str, dict[str, int]]:
        """Severity -> {targets: failing at this severity, failures: cells failing}."""
        sev = {r.id: r.severity for r in self.requirements}
        out = {s: {"targets": 0, "failures": 0} for s in SEVERITIES}
        for row in self.rows:
            hit: set[str] = set()
            for k in row.failing():
                s = sev.get(k, "info")
                out.setdefault(s, {"targets": 0, "failures": 0})["failures"] += 1
                hit.add(s)
            for s in hit:
                out[s]["targets"] += 1
        return out

    @property
    def ok(self) -> bool:
        return all(r.status is TargetStatus.COMPLIANT for r in self.rows)

    @property
    def regressions(self) -> int:
        return sum(len(r.regressions) for r in self.rows)


def _first_line(text: str, width: int = 200) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = line.removeprefix("AssertionError: ")
    return line if len(line) <= width else line[: width - 3] + "..."


def row_from_run(name: str, target: str, profile: str, report: RunReport, *,
                 tags: Iterable[str] = (), faults: Iterable[str] = (),
                 exit_status: int | None = None, duration: float | None = None) -> TargetRow:
    """A row from one target's run report (its results keyed by requirement)."""
    if report.interrupted or not report.complete:
        status = TargetStatus.INCOMPLETE
    else:
        status = TargetStatus.COMPLIANT if report.ok else TargetStatus.NOT_COMPLIANT
    outcomes: dict[str, Outcome] = {}
    messages: dict[str, str] = {}
    for r in report.results:
        # One requirement per test, but a parametrised test could repeat it: keep the worst.
        prev = outcomes.get(r.key)
        if prev is None or _OUTCOME_RANK[r.outcome] < _OUTCOME_RANK[prev]:
            outcomes[r.key] = r.outcome
            if r.outcome is not Outcome.PASS and r.message:
                messages[r.key] = _first_line(r.message)
    return TargetRow(
        name=name, target=target, profile=profile, tags=tuple(tags), faults=tuple(faults),
        status=status, outcomes=tuple(sorted(outcomes.items())),
        duration=report.duration if duration is None else duration,
        exit_status=exit_status if exit_status is not None else report.exit_status,
        messages=tuple(sorted(messages.items())),
    )


_OUTCOME_RANK = {Outcome.ERROR: 0, Outcome.FAIL: 1, Outcome.SKIP: 2, Outcome.PASS: 3}


def error_row(name: str, target: str, profile: str, error: str, *, tags: Iterable[str] = (),
              faults: Iterable[str] = (), duration: float = 0.0,
              exit_status: int | None = None) -> TargetRow:
    """A row for a target the harness could not audit (``error`` says why, in one line)."""
    return TargetRow(name=name, target=target, profile=profile, tags=tuple(tags),
                     faults=tuple(faults), status=TargetStatus.ERROR, error=error,
                     duration=duration, exit_status=exit_status)


def requirements_of(reports: Iterable[RunReport]) -> tuple[RequirementInfo, ...]:
    """Every requirement key the reports contain, sorted by ID, first description wins."""
    seen: dict[str, RequirementInfo] = {}
    for rep in reports:
        for r in rep.results:
            if r.key not in seen:
                seen[r.key] = RequirementInfo(r.key, r.title, r.area, r.severity)
    return tuple(sorted(seen.values(), key=lambda r: r.id))


# --- JSON ---------------------------------------------------------------------------------


def _row_dict(row: TargetRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "target": row.target,
        "profile": row.profile,
        "tags": list(row.tags),
        "faults": list(row.faults),
        "status": row.status.value,
        "error": row.error or None,
        "counts": {o.value: row.count(o) for o in Outcome},
        "results": {k: o.value for k, o in row.outcomes},
        "regressions": list(row.regressions),
        "report": f"targets/{row.name}/report.html" if row.outcomes else None,
    }


def to_dict(report: FleetReport) -> dict[str, Any]:
    """The JSON-ready dictionary (comparable part first, then ``run``)."""
    rows = sorted(report.rows, key=lambda r: r.name)
    statuses = report.status_counts()
    return {
        "schema": SCHEMA,
        "fleet": report.fleet,
        "amicheck_version": report.version,
        "baseline": report.baseline,
        "summary": {
            "targets": len(rows),
            **{s.value: statuses[s] for s in TargetStatus},
            "regressions": report.regressions,
            "by_severity": report.by_severity(),
            "by_requirement": report.by_requirement(),
        },
        "requirements": [
            {"id": r.id, "title": r.title, "area": r.area, "severity": r.severity}
            for r in report.requirements
        ],
        "targets": [_row_dict(r) for r in rows],
        "run": {
            "started": report.started,
            "finished": report.finished,
            "duration": round(report.duration, 3),
            "shards": sorted(report.shards),
            "fleet_size": report.fleet_size,
            "targets": {
                r.name: {
                    "duration": round(r.duration, 3),
                    "exit_status": r.exit_status,
                    "messages": dict(r.messages),
                }
                for r in rows
            },
            **dict(report.extra),
        },
    }


def to_json(report: FleetReport) -> str:
    """Serialise (pure: returns the text)."""
    return json.dumps(to_dict(report), indent=2, ensure_ascii=False) + "\n"


def comparable(data: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a fleet.json dictionary that is equal for equal outcomes (drops ``run``)."""
    return {k: v for k, v in data.items() if k != "run"}


def from_dict(data: Mapping[str, Any]) -> FleetReport:
    """Rebuild the model from :func:`to_dict` output; ValueError on another schema."""
    if data.get("schema") != SCHEMA:
        raise ValueError(f"not an {SCHEMA} report (schema: {data.get('schema')!r})")
    run = data.get("run") or {}
    facts = run.get("targets") or {}
    rows = []
    for t in data["targets"]:
        f = facts.get(t["name"], {})
        rows.append(TargetRow(
            name=t["name"], target=t["target"], profile=t["profile"],
            tags=tuple(t.get("tags", ())), faults=tuple(t.get("faults", ())),
            status=TargetStatus(t["status"]), error=t.get("error") or "",
            outcomes=tuple(sorted((k, Outcome(v)) for k, v in t["results"].items())),
            regressions=tuple(t.get("regressions", ())),
            duration=float(f.get("duration", 0.0)), exit_status=f.get("exit_status"),
            messages=tuple(sorted((f.get("messages") or {}).items())),
        ))
    known = {"started", "finished", "duration", "shards", "fleet_size", "targets"}
    return FleetReport(
        fleet=data["fleet"],
        rows=tuple(rows),
        requirements=tuple(RequirementInfo(r["id"], r["title"], r["area"], r["severity"])
                           for r in data["requirements"]),
        version=data.get("amicheck_version", ""),
        baseline=data.get("baseline"),
        started=run.get("started", ""),
        finished=run.get("finished", ""),
        duration=float(run.get("duration", 0.0)),
        shards=tuple(run.get("shards", ())),
        fleet_size=int(run.get("fleet_size", len(rows))),
        extra={k: v for k, v in run.items() if k not in known},
    )


def from_json(text: str) -> FleetReport:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not an amicheck fleet report: top level is not an object")
    return from_dict(data)


# --- merging shards -----------------------------------------------------------------------


class MergeError(ValueError):
    """Shard reports that do not add up to one fleet (the message says why)."""


def merge(parts: Iterable[FleetReport]) -> FleetReport:
    """One report from shard reports of the same fleet; equal to the unsharded report.

    Raises:
        MergeError: different fleets or shard counts, a shard missing or given twice,
            a target in two parts.
    """
    parts = list(parts)
    if not parts:
        raise MergeError("nothing to merge")
    names = {p.fleet for p in parts}
    if len(names) > 1:
        raise MergeError(f"the reports are of different fleets: {', '.join(sorted(names))}")
    shards: list[str] = [s for p in parts for s in p.shards]
    counts = {s.split("/")[1] for s in shards}
    if len(counts) > 1:
        raise MergeError(f"the reports are shards of different partitions: {sorted(shards)}")
    if counts:
        n = int(next(iter(counts)))
        got = [int(s.split("/")[0]) for s in shards]
        dup = sorted({k for k in got if got.count(k) > 1})
        if dup:
            raise MergeError(f"shard(s) {', '.join(f'{k}/{n}' for k in dup)} given twice")
        missing = sorted(set(range(1, n + 1)) - set(got))
        if missing:
            raise MergeError(f"shard(s) {', '.join(f'{k}/{n}' for k in missing)} missing "
                             f"(merge needs all {n})")
    rows: dict[str, TargetRow] = {}
    for p in parts:
        for r in p.rows:
            if r.name in rows:
                raise MergeError(f"target {r.name!r} is in more than one report")
            rows[r.name] = r
    reqs: dict[str, RequirementInfo] = {}
    for p in parts:
        for q in p.requirements:
            reqs.setdefault(q.id, q)
    baselines = {p.baseline for p in parts}
    sizes = {p.fleet_size for p in parts}
    starts = [p.started for p in parts if p.started]
    ends = [p.finished for p in parts if p.finished]
    return FleetReport(
        fleet=parts[0].fleet,
        rows=tuple(sorted(rows.values(), key=lambda r: r.name)),
        requirements=tuple(sorted(reqs.values(), key=lambda r: r.id)),
        version=parts[0].version,
        baseline=baselines.pop() if len(baselines) == 1 else None,
        started=min(starts) if starts else "",
        finished=max(ends) if ends else "",
        duration=max(p.duration for p in parts),
        shards=tuple(sorted(shards)),
        fleet_size=max(sizes) if sizes else len(rows),
    )


def with_rows(report: FleetReport, rows: Iterable[TargetRow]) -> FleetReport:
    """A copy with other rows (sorted by name)."""
    return replace(report, rows=tuple(sorted(rows, key=lambda r: r.name)))
