"""Build the :class:`RunReport` from pytest's test reports.

The collector sees only ``TestReport`` objects (``pytest_runtest_logreport``), so it works the
same on a plain run and on the pytest-xdist controller, where items never exist: everything it
needs travels in ``report.user_properties`` (requirement ID, metrics, pcap path) and
``report.sections`` (the redacted AMI transcript).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from amicheck.report.model import CheckResult, Metric, Outcome, RunReport, area_of

if TYPE_CHECKING:
    from amicheck.requirements import Requirement

__all__ = [
    "Collector",
    "redact",
    "TRANSCRIPT_SECTION",
    "REQUIREMENT_PROPERTY",
    "METRIC_PROPERTY",
    "PCAP_PROPERTY",
]

#: Title of the ``report.sections`` entry holding the redacted AMI exchange of a test.
TRANSCRIPT_SECTION = "AMI transcript"
#: ``user_properties`` names the plugin uses.
REQUIREMENT_PROPERTY = "requirement"
METRIC_PROPERTY = "ami_metric"
PCAP_PROPERTY = "ami_pcap"
#: A TLS scan's evidence text (suites/test_tls.py), gathered once per endpoint for the report.
TLS_EVIDENCE_PROPERTY = "ami_tls_evidence"

_MAX_MESSAGE = 4000
_MAX_DETAILS = 8000
_MAX_EVIDENCE = 20000
REDACTED = "********"

Lookup = Callable[[str], "Requirement | None"]


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in ``text`` (longest first, so overlaps cannot leak a tail)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 20] + "\n... (truncated)"


@dataclass
class _Pending:
    nodeid: str
    requirement: str | None = None
    outcome: Outcome | None = None
    message: str = ""
    details: str = ""
    duration: float = 0.0
    evidence: list[str] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    pcap: str | None = None


def _crash_message(report: Any) -> str:
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # skip: (path, lineno, reason)
        reason = str(longrepr[2])
        return reason.removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return str(crash.message)
    text = str(longrepr).strip()
    # a plain-text traceback (e.g. after redaction): its last block of "E   " lines
    block: list[str] = []
    for line in reversed(text.splitlines()):
        if line.startswith("E "):
            block.append(line[1:].strip())
        elif block:
            break
    if block:
        return "\n".join(reversed(block))
    return text.splitlines()[-1] if text else ""


class Collector:
    """Accumulates phase reports per test and turns them into a :class:`RunReport`.

    Args:
        target: how the target is shown (``"sim"`` or ``"host:port"``).
        is_sim: whether the target is the embedded simulator.
        profile: profile name shown in reports.
        lookup: requirement ID -> its :class:`~amicheck.requirements.Requirement`, or None
            (``CATALOGUE.get``); unknown IDs still get a result.
        secrets: every secret of the profile; redacted from all text the model keeps.
        faults: simulator fault profiles in effect.
    """

    def __init__(
        self,
        *,
        target: str,
        is_sim: bool,
        profile: str,
        version: str,
        lookup: Lookup | None = None,
        secrets: Iterable[str] = (),
        faults: Iterable[str] = (),
        started: datetime | None = None,
    ) -> None:
        self.target = target
        self.is_sim = is_sim
        self.profile = profile
        self.version = version
        self.faults = tuple(faults)
        self._lookup = lookup
        self._secrets = tuple(secrets)
        self.started = started or datetime.now(UTC)
        self._tests: dict[str, _Pending] = {}
        self._tls: list[str] = []

    def __len__(self) -> int:
        return len(self._tests)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        """Redact ``secrets`` too (derived ones, such as MD5 keys, appear during the run)."""
        self._secrets = tuple(dict.fromkeys((*self._secrets, *secrets)))

    def add(self, report: Any) -> None:
        """Take one phase report (``setup``/``call``/``teardown``) of one test."""
        p = self._tests.get(report.nodeid)
        if p is None:
            p = self._tests[report.nodeid] = _Pending(report.nodeid)
        p.duration += float(getattr(report, "duration", 0.0) or 0.0)
        for name, value in getattr(report, "user_properties", ()) or ():
            if name == REQUIREMENT_PROPERTY and p.requirement is None:
                p.requirement = str(value)
            elif name == METRIC_PROPERTY and isinstance(value, dict):
                metric = Metric(
                    name=str(value.get("name", "")),
                    value=float(value.get("value", 0.0)),
                    unit=str(value.get("unit", "")),
                    samples=tuple(float(s) for s in value.get("samples") or ()),
                )
                if metric not in p.metrics:
                    p.metrics.append(metric)
            elif name == PCAP_PROPERTY:
                p.pcap = str(value)
            elif name == TLS_EVIDENCE_PROPERTY:
                text = _clip(self._text(str(value)), _MAX_EVIDENCE)
                if text not in self._tls:
                    self._tls.append(text)
        for title, content in getattr(report, "sections", ()) or ():
            if title.startswith(TRANSCRIPT_SECTION) and content not in p.evidence:
                # clipped now, not only when rendered: a run keeps every test's evidence
                p.evidence.append(_clip(self._text(content), _MAX_EVIDENCE))
        self._phase(p, report)

    def add_collection_error(self, report: Any) -> None:
        """A module that could not be collected (bad requirement IDs, import error)."""
        nodeid = report.nodeid or "(session)"
        p = self._tests.setdefault(f"{nodeid}::(collection)", _Pending(nodeid))
        p.outcome = Outcome.ERROR
        text = str(report.longrepr or "").strip()
        p.message = f"collection error: {text.splitlines()[-1] if text else 'unknown'}"
        p.details = text

    def _phase(self, p: _Pending, report: Any) -> None:
        when = report.when
        wasxfail = getattr(report, "wasxfail", None)
        if report.skipped:
            if p.outcome is None:
                p.outcome = Outcome.SKIP
                p.message = f"expected failure: {wasxfail}" if wasxfail else _crash_message(report)
            return
        if report.failed:
            message = _crash_message(report)
            details = _clip(self._text(getattr(report, "longreprtext", "") or ""), _MAX_DETAILS)
            if when == "call":
                p.outcome, p.message, p.details = Outcome.FAIL, message, details
            elif p.outcome in (None, Outcome.PASS, Outcome.SKIP):
                p.outcome = Outcome.ERROR
                p.message = f"error in {when}: {message}"
                p.details = details
            else:  # a failed call followed by a failed teardown: keep both
                p.message += f"\n(and error in {when}: {message})"
            return
        if when == "call" and p.outcome is None:
            p.outcome = Outcome.PASS
            if wasxfail:  # xpass, non-strict
                p.message = f"unexpectedly passed: {wasxfail}"

    def _entry(self, requirement: str | None) -> Requirement | None:
        if requirement is None or self._lookup is None:
            return None
        return self._lookup(requirement)

    def results(self) -> tuple[CheckResult, ...]:
        """Results so far, in the order the tests first reported."""
        out: list[CheckResult] = []
        for p in self._tests.values():
            if p.outcome is None:  # setup passed but the run stopped before call
                continue
            entry = self._entry(p.requirement)
            out.append(
                CheckResult(
                    nodeid=p.nodeid,
                    requirement=p.requirement,
                    title=self._text(entry.title if entry else _title_of(p.nodeid)),
                    area=f"AMI-{entry.area}" if entry else area_of(p.requirement),
                    area_title=entry.area_title if entry else "",
                    severity=entry.severity.value.lower() if entry else "info",
                    outcome=p.outcome,
                    message=_clip(self._text(p.message), _MAX_MESSAGE),
                    duration=round(p.duration, 6),
                    evidence=_clip(self._text("\n".join(p.evidence)), _MAX_EVIDENCE),
                    details=_clip(self._text(p.details), _MAX_DETAILS),
                    metrics=tuple(p.metrics),
                    remediation=entry.remediation if entry else "",
                    source=entry.source if entry else "",
                    pcap=p.pcap,
                )
            )
        return tuple(out)

    def _text(self, text: str) -> str:
        return redact(text, self._secrets)

    def build(
        self,
        *,
        finished: datetime | None = None,
        interrupted: bool = False,
        exit_status: int | None = None,
    ) -> RunReport:
        """Freeze everything collected so far into a :class:`RunReport`."""
        return RunReport(
            target=self.target,
            is_sim=self.is_sim,
            profile=self.profile,
            version=self.version,
            started=self.started,
            finished=finished or datetime.now(UTC),
            results=self.results(),
            faults=self.faults,
            interrupted=interrupted,
            exit_status=exit_status,
            tls_endpoints=tuple(self._tls),
        )


def _title_of(nodeid: str) -> str:
    return nodeid.rpartition("::")[2] or nodeid
