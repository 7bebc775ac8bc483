"""The report plugin: feeds the collector, writes junit.xml/report.html/report.json.

Registered on the controller only (under xdist the workers' reports arrive there), and only
when a report is asked for: a report directory given (option or ini) at configure time, or
lazily when the first test carrying a requirement ID reports. A plain pytest run of an
unrelated project never registers it.

With ``--ami-baseline OLD.json`` the run is compared with that report at the end: every report
is written with the marks (:func:`amicheck.fleet.baseline.mark_run`), and failures the baseline
already had no longer fail the session: pytest's exit status is 1 only for regressions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from amicheck.plugin.settings import RunState, run_state

if TYPE_CHECKING:
    from amicheck.plugin.options import Baseline
    from amicheck.report.collector import Collector
    from amicheck.report.model import RunReport

__all__ = ["ReportPlugin", "register_report_plugin", "PLUGIN_NAME"]

PLUGIN_NAME = "amicheck-report"


def _collector(state: RunState) -> Collector:
    if state.collector is None:
        from amicheck import __version__
        from amicheck.report.collector import Collector
        from amicheck.requirements import CATALOGUE

        settings = state.settings
        secrets: set[str] = set()
        try:
            profile_name = state.load_profile().name
            secrets = state.secrets()
        except Exception as exc:  # noqa: BLE001 - the report still records the run
            profile_name = f"(profile not loaded: {type(exc).__name__})"
        state.collector = Collector(
            target=str(settings.target),
            is_sim=settings.is_sim,
            profile=profile_name,
            version=__version__,
            lookup=CATALOGUE.get,
            secrets=secrets,
            faults=settings.faults,
            started=state.started,
        )
    return state.collector


def mark_baseline(report: RunReport, baseline: Baseline) -> RunReport:
    """``report`` with ``baseline``/``regressions`` (``mark_run``) and the ``fixed`` and
    ``still_failing`` keys of the same comparison in ``extra``, for the summary lines."""
    from dataclasses import replace

    from amicheck.fleet.baseline import compare, mark_run

    marked = mark_run(report, baseline.data, baseline.name)
    diff = next(iter(compare(baseline.data, report).targets), None)
    fixed, still = (diff.fixed, diff.still_failing) if diff else ((), ())
    return replace(marked, extra=(*marked.extra, ("fixed", " ".join(fixed)),
                                  ("still_failing", " ".join(still))))


def baseline_line(report: RunReport) -> str | None:
    """``baseline OLD.json: N new failures, M fixed, K still failing``; None without one."""
    if report.baseline is None:
        return None
    return (f"baseline {report.baseline}: {len(report.regressions)} new failures, "
            f"{len(report.extra_keys('fixed'))} fixed, "
            f"{len(report.extra_keys('still_failing'))} still failing")


def register_report_plugin(config: pytest.Config) -> ReportPlugin:
    """Register the report plugin once (controller only); returns it."""
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if plugin is None:
        plugin = ReportPlugin(config)
        config.pluginmanager.register(plugin, PLUGIN_NAME)
    assert isinstance(plugin, ReportPlugin)
    return plugin


class ReportPlugin:
    """Feeds the collector with every phase report and writes the files at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.state = run_state(config)
        self.report: RunReport | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        _collector(self.state).add(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            _collector(self.state).add_collection_error(report)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # Ctrl-C itself; collection errors arrive here too, as Session.Interrupted
        if excinfo.type is KeyboardInterrupt:
            self.state.interrupted = True

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from amicheck.report.files import write_reports

        state = self.state
        collector = _collector(state)
        try:
            secrets = state.secrets()
        except Exception:  # noqa: BLE001 - a broken profile was refused at configure
            secrets = set()
        collector.set_secrets(secrets)  # the derived ones (MD5 keys) are known only now
        report = collector.build(interrupted=state.interrupted, exit_status=int(exitstatus))
        baseline = state.settings.baseline
        if baseline is not None:
            from amicheck.fleet.baseline import BaselineError

            try:
                report = mark_baseline(report, baseline)
            except BaselineError as exc:  # load_report checked it; kept for a clear line
                self._warn(f"amicheck: --ami-baseline: {exc}")
            else:
                # known failures do not fail the run, new ones (and anything else) do
                # (not after -x/--maxfail: the checks it did not run are unknown)
                if (int(exitstatus) == int(pytest.ExitCode.TESTS_FAILED) and report.complete
                        and not report.regressions and not session.shouldfail
                        and not session.shouldstop):
                    session.exitstatus = pytest.ExitCode.OK
        self.report = report
        try:
            state.written = write_reports(report, state.settings.report_dir)
        except OSError as exc:
            self._warn(f"amicheck: cannot write the report into {state.settings.report_dir}: "
                       f"{exc}")

    def _warn(self, line: str) -> None:
        tr: Any = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(line, red=True)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        state = self.state
        if not state.written:
            return
        terminalreporter.section("amicheck")
        collector = state.collector
        for result in collector.results() if collector is not None else ():
            for m in result.metrics:
                extra = f" ({len(m.samples)} samples)" if m.samples else ""
                terminalreporter.write_line(
                    f"{result.key} {m.name} = {m.value:.4g} {m.unit}{extra}"
                )
        for path in state.written:
            terminalreporter.write_line(f"report: {path}")
        line = baseline_line(self.report) if self.report is not None else None
        if line is not None:
            terminalreporter.write_line(line, red=bool(self.report and self.report.regressions))
