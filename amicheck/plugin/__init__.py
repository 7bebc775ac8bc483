"""The amicheck pytest plugin (the ``pytest11`` entry point ``amicheck.plugin``).

Loaded in every pytest run once amicheck is installed, so it is inert and cheap until used:
its modules import only pytest and the standard library; the simulator, the client, the
profile loader, the catalogue and scapy are imported the first time a fixture or option needs
them (style.md §9). Shaped like pytest's own plugins, one concern per module:

- :mod:`.options`   the one option table (pytest ``--ami-*``/ini and ``amicheck run``)
- :mod:`.settings`  resolved options and the run's shared state
- :mod:`.ids`       requirement IDs at collection
- :mod:`.fixtures`  ``ami_profile``, ``ami_target``, ``ami_sim``, ``ami_connect``,
                    ``ami_login``, ``ami_client``, ``ami_metric``, ``ami_settings``,
                    ``ami_session_target``
- :mod:`.evidence`  transcripts, pcaps, redaction, releasing clients after each test
- :mod:`.reporting` the report plugin (registered only when a report is asked for)

This module holds the hooks that tie them together: configure (every input checked before
the first test), the report header and the skip rules of a real target.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from amicheck.plugin.evidence import pytest_runtest_makereport, redact_report, render_transcript
from amicheck.plugin.fixtures import (
    CONNECT_TIMEOUT,
    SIM_OUTSIDE_SOURCE,
    Target,
    _ami_clients,
    _ami_sim_session,
    ami_client,
    ami_connect,
    ami_login,
    ami_metric,
    ami_profile,
    ami_session_target,
    ami_settings,
    ami_sim,
    ami_target,
)
from amicheck.plugin.ids import REQUIREMENT_PROPERTY, add_ini, pytest_make_collect_report
from amicheck.plugin.options import (
    OPTIONS,
    TargetSpec,
    add_pytest_options,
    parse_fail_delay,
    parse_source,
    parse_target,
)
from amicheck.plugin.reporting import register_report_plugin
from amicheck.plugin.settings import (
    AmiSettings,
    RunState,
    get_settings,
    resolve_settings,
    settings_key,
    state_key,
)

__all__ = [
    "AmiSettings",
    "Target",
    "TargetSpec",
    "OPTIONS",
    "MARKERS",
    "CONNECT_TIMEOUT",
    "SIM_OUTSIDE_SOURCE",
    "get_settings",
    "parse_target",
    "parse_fail_delay",
    "parse_source",
    "redact_report",
    "render_transcript",
    # hooks and fixtures: pytest finds them on this module
    "pytest_addoption",
    "pytest_configure",
    "pytest_report_header",
    "pytest_collection_modifyitems",
    "pytest_make_collect_report",
    "pytest_runtest_makereport",
    "ami_settings",
    "ami_profile",
    "ami_session_target",
    "ami_target",
    "ami_sim",
    "ami_connect",
    "ami_login",
    "ami_client",
    "ami_metric",
    "_ami_clients",
    "_ami_sim_session",
]

pytest.register_assert_rewrite("amicheck.assertions")

#: Markers the plugin registers (name, description).
MARKERS: tuple[tuple[str, str], ...] = (
    ("requirement(id)", "the catalogue requirement this check proves; exactly one per suite test"),
    (
        "destructive",
        "changes state on the target; skipped on a real target unless --ami-allow-destructive",
    ),
    ("bruteforce", "guesses passwords; skipped on a real target unless --ami-allow-bruteforce"),
    ("slow", "long-running checks (auth timeouts, big streams)"),
    ("sim_only", "needs the embedded simulator; skipped against a real target"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_pytest_options(parser)
    add_ini(parser)


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return "; ".join(lines) if lines else type(exc).__name__


def _check_inputs(config: pytest.Config, state: RunState) -> None:
    """Everything that can be checked before the first test: UsageError, one line each."""
    settings = state.settings
    if settings.profile_path is not None:
        from amicheck.errors import ProfileError

        try:
            state.load_profile()
        except (ProfileError, OSError) as exc:
            raise pytest.UsageError(f"--ami-profile: {_one_line(exc)}") from None
    if settings.faults:
        from amicheck.sim.faults import UnknownFaultError, resolve_faults

        try:
            resolve_faults(settings.faults)
        except UnknownFaultError as exc:
            raise pytest.UsageError(f"--ami-fault: {_one_line(exc)}") from None
    if settings.report_dir_explicit and not state.is_worker:
        from amicheck.report.files import ReportDirError, check_report_dir

        try:
            check_report_dir(settings.report_dir)
        except ReportDirError as exc:
            raise pytest.UsageError(f"--ami-report-dir: {exc}") from None


def pytest_configure(config: pytest.Config) -> None:
    for name, description in MARKERS:
        config.addinivalue_line("markers", f"{name}: {description}")
    settings = resolve_settings(config)
    config.stash[settings_key] = settings
    state = RunState(settings, datetime.now(UTC), hasattr(config, "workerinput"))
    config.stash[state_key] = state
    _check_inputs(config, state)
    if state.is_worker:  # under xdist the report is built on the controller only
        return
    if settings.report_dir_explicit:
        register_report_plugin(config)
    else:
        config.pluginmanager.register(_ReportOnFirstCheck(config), "amicheck-report-on-demand")


class _ReportOnFirstCheck:
    """Registers the report plugin when the first compliance check reports (controller).

    ``pytest suites/`` writes reports without being asked; an unrelated project, whose tests
    carry no requirement ID, never gets the report plugin.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not any(name == REQUIREMENT_PROPERTY for name, _ in report.user_properties):
            return
        self.config.pluginmanager.unregister(self)
        # registered during this hook call, so it missed this report: hand it over
        register_report_plugin(self.config).pytest_runtest_logreport(report)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    settings = get_settings(config)
    if not settings.explicit:
        return None
    line = f"amicheck: target {settings.target}"
    if settings.profile_path:
        line += f", profile {settings.profile_path}"
    if settings.faults:
        line += f", faults {','.join(settings.faults)}"
    return [line]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    settings = get_settings(config)
    if settings.is_sim:
        return
    where = f"target is {settings.target}, not the simulator"
    for item in items:
        if item.get_closest_marker("sim_only"):
            item.add_marker(
                pytest.mark.skip(reason=f"sim_only: needs the embedded simulator ({where})")
            )
        elif item.get_closest_marker("destructive") and not settings.allow_destructive:
            item.add_marker(
                pytest.mark.skip(
                    reason="destructive: changes state on the target; "
                    "opt in with --ami-allow-destructive"
                )
            )
        elif item.get_closest_marker("bruteforce") and not settings.allow_bruteforce:
            item.add_marker(
                pytest.mark.skip(
                    reason="bruteforce: guesses passwords on the target; "
                    "opt in with --ami-allow-bruteforce"
                )
            )
