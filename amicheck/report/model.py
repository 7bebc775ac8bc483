"""The result of one amicheck run as plain, frozen data.

Writers (JUnit, HTML, JSON) are pure functions of :class:`RunReport`; nothing here does I/O, so
the same model can be rebuilt from a saved JSON report and rendered again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = [
    "Outcome",
    "Metric",
    "CheckResult",
    "RunReport",
    "SEVERITIES",
    "area_of",
]

#: Severities from most to least serious (the catalogue's ``Severity`` values, lower-cased).
SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low", "info")


class Outcome(StrEnum):
    """The four outcomes of a check (style.md §14)."""

    PASS = "pass"  # the target complies
    FAIL = "fail"  # the target does not comply
    ERROR = "error"  # the check could not run
    SKIP = "skip"  # not applicable or not opted in, always with a reason


@dataclass(frozen=True)
class Metric:
    """A number a check measured (``ami_metric``), optionally with its raw samples."""

    name: str
    value: float
    unit: str
    samples: tuple[float, ...] = ()


@dataclass(frozen=True)
class CheckResult:
    """One test, keyed by its requirement ID."""

    nodeid: str
    requirement: str | None
    title: str
    area: str
    severity: str
    outcome: Outcome
    message: str = ""
    duration: float = 0.0
    evidence: str = ""
    details: str = ""
    metrics: tuple[Metric, ...] = ()
    remediation: str = ""
    source: str = ""
    pcap: str | None = None
    area_title: str = ""

    @property
    def key(self) -> str:
        """The name reports show first: the requirement ID, else the test id."""
        return self.requirement or self.nodeid


@dataclass(frozen=True)
class RunReport:
    """A whole run: where it ran, with what, and every result in run order."""

    target: str
    is_sim: bool
    profile: str
    version: str
    started: datetime
    finished: datetime
    results: tuple[CheckResult, ...] = ()
    faults: tuple[str, ...] = ()
    interrupted: bool = False
    exit_status: int | None = None
    #: Run-level facts as (key, value) pairs, e.g. ``baseline`` (the baseline's name) and
    #: ``regressions``, ``fixed``, ``still_failing`` (space-separated keys) of a run compared
    #: with a baseline (:func:`amicheck.fleet.baseline.mark_run`).
    extra: tuple[tuple[str, str], ...] = field(default=())
    #: What the TLS scans found per endpoint (versions and suites accepted, curves, DH groups,
    #: vulnerabilities), as the scanner reports it: the auditor's evidence behind AMI-TLS.
    tls_endpoints: tuple[str, ...] = ()

    def extra_value(self, key: str) -> str | None:
        """The last value of ``key`` in :attr:`extra` (a later mark wins); None if absent."""
        found = None
        for k, v in self.extra:
            if k == key:
                found = v
        return found

    def extra_keys(self, key: str) -> tuple[str, ...]:
        """A space-separated list in :attr:`extra` (``regressions`` ...), as a tuple."""
        return tuple((self.extra_value(key) or "").split())

    @property
    def baseline(self) -> str | None:
        """The name of the baseline this run was compared with; None without one."""
        return self.extra_value("baseline")

    @property
    def regressions(self) -> frozenset[str]:
        """Result keys that fail or error now and did not in the baseline."""
        return frozenset(self.extra_keys("regressions"))

    def is_regression(self, result: CheckResult) -> bool:
        """True for a failure or error that is new against the baseline."""
        return result.outcome in (Outcome.FAIL, Outcome.ERROR) and result.key in self.regressions

    @property
    def duration(self) -> float:
        """Wall-clock seconds from start to end."""
        return max(0.0, (self.finished - self.started).total_seconds())

    def counts(self) -> dict[Outcome, int]:
        """Number of results per outcome (every outcome present, possibly 0)."""
        c = Counter(r.outcome for r in self.results)
        return {o: c.get(o, 0) for o in Outcome}

    def counts_by_severity(self) -> dict[str, dict[Outcome, int]]:
        """Outcome counts per severity, most serious first (unknown severities last)."""
        order = list(SEVERITIES) + sorted({r.severity for r in self.results} - set(SEVERITIES))
        table: dict[str, dict[Outcome, int]] = {s: {o: 0 for o in Outcome} for s in order}
        for r in self.results:
            table[r.severity][r.outcome] += 1
        return table

    def by_area(self) -> dict[str, list[CheckResult]]:
        """Results grouped by area, areas sorted, results in requirement order."""
        groups: dict[str, list[CheckResult]] = {}
        for r in sorted(self.results, key=lambda r: (r.area, r.key)):
            groups.setdefault(r.area, []).append(r)
        return groups

    def problems(self) -> list[CheckResult]:
        """Failures and errors, most severe first: what the reader must act on."""
        rank = {s: i for i, s in enumerate(SEVERITIES)}
        bad = [r for r in self.results if r.outcome in (Outcome.FAIL, Outcome.ERROR)]
        return sorted(bad, key=lambda r: (rank.get(r.severity, len(rank)), r.key))

    @property
    def complete(self) -> bool:
        """False when the run was interrupted or pytest ended abnormally (usage, internal)."""
        return not self.interrupted and self.exit_status in (None, 0, 1, 5)

    @property
    def checked(self) -> int:
        """Checks that reached a verdict or an error (skips are not checks that ran)."""
        c = self.counts()
        return c[Outcome.PASS] + c[Outcome.FAIL] + c[Outcome.ERROR]

    @property
    def no_verdict(self) -> bool:
        """A complete run in which no check ran (none selected, or every one skipped)."""
        return self.complete and self.checked == 0

    @property
    def ok(self) -> bool:
        """True when checks ran, nothing failed or errored, and the run completed."""
        c = self.counts()
        return (
            self.complete and self.checked > 0 and c[Outcome.FAIL] == 0 and c[Outcome.ERROR] == 0
        )

    @property
    def status(self) -> str:
        """The run in words: COMPLIANT, NOT COMPLIANT, NO VERDICT, INTERRUPTED or INCOMPLETE.

        Zero checks run is no verdict, never COMPLIANT.
        """
        if self.interrupted:
            return "INTERRUPTED"
        if not self.complete:
            return "INCOMPLETE"
        if self.no_verdict:
            return "NO VERDICT"
        return "COMPLIANT" if self.ok else "NOT COMPLIANT"


def area_of(requirement: str | None) -> str:
    """The catalogue prefix of an ID (``AMI-AUTH-003`` -> ``AMI-AUTH``); ``other`` without one."""
    if not requirement:
        return "other"
    head, sep, tail = requirement.rpartition("-")
    return head if sep and tail.isdigit() else requirement
