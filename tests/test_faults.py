"""The proof that the compliance suites catch what they claim.

The suites run (in-process, with pytester) against the embedded simulator once per fault
profile of ``amicheck.sim.FAULTS``; each run must fail EXACTLY the requirement IDs listed in
:data:`EXPECTED`, and the compliant profile must pass everything (skips only with a reason).
Every requirement of the catalogue must be failed by at least one fault: a check that no
fault breaks could be a check that cannot fail.

Speed: the simulator's failed-login delay is cut to 0.4 s (``--ami-fail-delay``), which
keeps the timing-equality checks meaningful (an instant "Invalid username" still differs
from a wrong password by more than the 0.3 s tolerance). The slow checks (auth timeout)
run against a copy of the default profile with ``auth_timeout_s = 2``.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Imported here, before any in-process run: pytester removes modules first imported by an
# inner run, and cryptography's hash classes must not be re-imported (its Rust core keeps
# the first ones: "Algorithm must be a registered hash algorithm").
import amicheck.client
import amicheck.plugin
import amicheck.tlsaudit  # noqa: F401
from amicheck.profile import default_profile
from amicheck.requirements import CATALOGUE
from amicheck.sim import FAULTS

SUITES = Path(__file__).resolve().parents[1] / "suites"
FAIL_DELAY = "0.4"
SHORT_AUTH_TIMEOUT = 2

#: fault -> the requirement IDs that must fail with it on (slow checks excluded), from the
#: fault's own record (amicheck/sim/faults.py).
EXPECTED: dict[str, frozenset[str]] = {name: f.fails for name, f in FAULTS.items()}
#: fault -> IDs that must fail in the slow run (short auth timeout profile).
SLOW_EXPECTED: dict[str, frozenset[str]] = {
    name: f.fails_slow for name, f in FAULTS.items() if f.fails_slow
}
_FAILED = ("fail", "error")


def _outcomes(result: pytest.RunResult) -> dict[str, tuple[str, str]]:
    """requirement ID -> (outcome, detail) from the inner run's reports."""
    out: dict[str, tuple[str, str]] = {}
    reprec = result.reprec  # type: ignore[attr-defined]
    collect_errors = [r for r in reprec.getreports("pytest_collectreport") if r.failed]
    assert not collect_errors, "collection failed:\n" + "\n".join(
        str(r.longrepr) for r in collect_errors
    )
    for rep in reprec.getreports("pytest_runtest_logreport"):
        rid = next((v for k, v in rep.user_properties if k == "requirement"), None)
        assert rid is not None, f"{rep.nodeid}: no requirement ID recorded"
        if rep.failed:
            outcome = "fail" if rep.when == "call" else "error"
        elif rep.skipped:
            outcome = "skip"
        elif rep.when == "call":
            outcome = "pass"
        else:
            continue
        previous = out.get(rid, ("pass", ""))
        if previous[0] in _FAILED:
            continue
        detail = rep.longreprtext.strip().splitlines()[-1] if rep.longreprtext.strip() else ""
        if outcome != "pass" or previous[0] == "pass":
            out[rid] = (outcome, detail)
    return out


def _json_failing(report_dir: Path) -> set[str]:
    """Failed/errored requirement IDs according to the run's JSON report."""
    data = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    return {r["requirement"] for r in data["results"] if r["outcome"] in _FAILED}


def _run(pytester: pytest.Pytester, *args: str) -> dict[str, tuple[str, str]]:
    report_dir = pytester.path / "reports"
    result = pytester.runpytest_inprocess(
        str(SUITES),
        "-p", "no:cacheprovider",
        "--ami-fail-delay", FAIL_DELAY,
        "--ami-report-dir", str(report_dir),
        *args,
    )
    outcomes = _outcomes(result)
    # The report a CI job reads must tell the same story as pytest's own reports.
    assert _json_failing(report_dir) == _failing(outcomes)
    return outcomes


def _failing(outcomes: dict[str, tuple[str, str]]) -> set[str]:
    return {rid for rid, (outcome, _) in outcomes.items() if outcome in _FAILED}


def _explain(outcomes: dict[str, tuple[str, str]], ids: set[str]) -> str:
    return "\n".join(f"  {rid}: {outcomes.get(rid, ('not run', ''))}" for rid in sorted(ids))


def _short_timeout_profile(pytester: pytest.Pytester) -> Path:
    """The default profile as TOML with auth_timeout_s = 2 (and secrets inline)."""
    prof = default_profile()
    assert prof.path is not None
    text = prof.path.read_text(encoding="utf-8")
    key = f"auth_timeout_s = {prof.settings.auth_timeout_s}"
    assert key in text, f"default profile has no line {key!r}"
    path = pytester.path / "short-timeout.toml"
    path.write_text(text.replace(key, f"auth_timeout_s = {SHORT_AUTH_TIMEOUT}"), encoding="utf-8")
    return path


# --- static facts of the table ----------------------------------------------------------------


def test_every_fault_is_caught_by_something() -> None:
    silent = sorted(n for n in FAULTS if not EXPECTED[n] and not SLOW_EXPECTED.get(n))
    assert not silent, f"faults no requirement catches: {silent}"


def test_every_requirement_is_failed_by_some_fault() -> None:
    caught = set().union(*EXPECTED.values(), *SLOW_EXPECTED.values())
    assert caught <= set(CATALOGUE), f"unknown IDs in the table: {sorted(caught - set(CATALOGUE))}"
    assert set(CATALOGUE) <= caught, (
        f"requirements no fault breaks: {sorted(set(CATALOGUE) - caught)}"
    )


def test_every_requirement_has_one_suite_test(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess(str(SUITES), "--collect-only", "-q",
                                          "-p", "no:cacheprovider")
    items = result.reprec.getcalls("pytest_collection_finish")[0].session.items  # type: ignore[attr-defined]
    ids = [next(v for k, v in item.user_properties if k == "requirement") for item in items]
    assert sorted(ids) == sorted(CATALOGUE), (
        f"missing: {sorted(set(CATALOGUE) - set(ids))}; "
        f"duplicated: {sorted({i for i in ids if ids.count(i) > 1})}"
    )


# --- the runs ---------------------------------------------------------------------------------


def test_compliant_profile_passes(pytester: pytest.Pytester) -> None:
    """The default profile without faults: nothing fails, every skip says why."""
    start = time.monotonic()
    outcomes = _run(pytester, "-m", "not slow")
    elapsed = time.monotonic() - start
    print(f"compliant run: {len(outcomes)} requirements in {elapsed:.1f} s")
    failing = _failing(outcomes)
    assert not failing, "the compliant simulator fails:\n" + _explain(outcomes, failing)
    slow = {"AMI-AUTH-005"}
    assert set(outcomes) == set(CATALOGUE) - slow, (
        f"not run: {sorted(set(CATALOGUE) - slow - set(outcomes))}"
    )
    for rid, (outcome, detail) in outcomes.items():
        if outcome == "skip":
            assert detail, f"{rid} skipped without a reason"


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_fails_exactly_its_requirements(pytester: pytest.Pytester, fault: str) -> None:
    outcomes = _run(pytester, "-m", "not slow", "--ami-fault", fault)
    failing = _failing(outcomes)
    expected = set(EXPECTED[fault])
    assert failing == expected, (
        f"fault {fault!r}:\n missed (should fail):\n{_explain(outcomes, expected - failing)}\n"
        f" unexpected failures:\n{_explain(outcomes, failing - expected)}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("fault", [None, *sorted(SLOW_EXPECTED)])
def test_slow_checks(pytester: pytest.Pytester, fault: str | None) -> None:
    """The slow checks, against a profile with a 2 s auth timeout: pass when compliant,
    fail exactly as listed under their fault."""
    profile = _short_timeout_profile(pytester)
    args = ["-m", "slow", "--ami-profile", str(profile)]
    if fault is not None:
        args += ["--ami-fault", fault]
    outcomes = _run(pytester, *args)
    assert outcomes, "no slow check ran"
    failing = _failing(outcomes)
    expected = set(SLOW_EXPECTED.get(fault, ())) if fault else set()
    assert failing == expected, (
        f"slow checks with fault {fault!r}: expected {sorted(expected)}\n"
        + _explain(outcomes, failing | expected)
    )


def test_short_timeout_profile_matches_default(pytester: pytest.Pytester) -> None:
    """The profile the slow proof uses differs from the default only in auth_timeout_s."""
    from amicheck.profile import load_profile

    loaded = load_profile(_short_timeout_profile(pytester))
    default = default_profile()
    assert loaded.settings.auth_timeout_s == SHORT_AUTH_TIMEOUT
    assert dataclasses.replace(loaded.settings, auth_timeout_s=default.settings.auth_timeout_s) \
        == default.settings
    assert loaded.users == default.users


# --- the same through the command line ----------------------------------------------------------


@pytest.mark.parametrize(("fault", "status"), [(None, 0), ("privilege-leak", 1)])
def test_amicheck_run(tmp_path: Path, fault: str | None, status: int) -> None:
    """``amicheck run [--fault X]``: exit status and the JSON report's failing IDs."""
    argv = [sys.executable, "-m", "amicheck", "run", "--report-dir", str(tmp_path / "r"),
            "--fail-delay", FAIL_DELAY, "--suites", str(SUITES)]
    if fault:
        argv += ["--fault", fault]
    argv += ["--", "-m", "not slow", "-p", "no:cacheprovider"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == status, proc.stdout[-3000:] + proc.stderr[-2000:]
    expected = set(EXPECTED[fault]) if fault else set()
    assert _json_failing(tmp_path / "r") == expected
