"""The resolved options of one pytest run, and the run's shared state.

Options come from the command line, then the ini file, then defaults (the table in
:mod:`.options`); everything a run loads once (profile, simulator, collector) hangs off
:class:`RunState` in the config's stash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from amicheck.plugin.options import DEFAULT_REPORT_DIR, OPTIONS, Baseline, Option, TargetSpec

if TYPE_CHECKING:
    from amicheck.profile import Profile
    from amicheck.report.collector import Collector
    from amicheck.sim import Simulator

__all__ = ["AmiSettings", "RunState", "resolve_settings", "get_settings", "run_state"]

settings_key = pytest.StashKey["AmiSettings"]()
state_key = pytest.StashKey["RunState"]()


@dataclass(frozen=True)
class AmiSettings:
    """The plugin's options, resolved from the command line, then ini, then defaults."""

    target: TargetSpec = TargetSpec()
    profile_path: Path | None = None
    faults: tuple[str, ...] = ()
    allow_destructive: bool = False
    allow_bruteforce: bool = False
    outside_source: str | None = None
    report_dir: Path = Path(DEFAULT_REPORT_DIR)
    report_dir_explicit: bool = False
    pcap: bool = False
    fail_delay: float | None = None
    baseline: Baseline | None = None  # loaded and checked at configure, applied at the end
    explicit: bool = False  # any amicheck option or ini value was given

    @property
    def is_sim(self) -> bool:
        return self.target.is_sim


def _ini_base(config: pytest.Config) -> Path:
    return config.inipath.parent if config.inipath else config.rootpath


def _from_ini(config: pytest.Config, opt: Option) -> Any:
    """The ini value of ``opt``, parsed like the command line's; None when unset."""
    raw = config.getini(opt.dest)
    if opt.kind == "flag":
        return bool(raw) or None
    if opt.kind == "append":
        return [opt.convert(str(r), opt.pytest_flag) for r in raw] or None
    text = str(raw).strip()
    if not text or (opt.name == "target" and text.lower() == "sim"):
        return None
    if opt.path:
        text = str(_ini_base(config) / text)
    return opt.convert(text, opt.pytest_flag)


def resolve_settings(config: pytest.Config) -> AmiSettings:
    """Command line, then ini, then defaults; UsageError on a bad value or combination."""
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        if not opt.pytest:
            continue
        value = config.getoption(opt.dest)
        if value is None or value == []:
            value = _from_ini(config, opt)
        if value is not None:
            values[opt.name] = value
    report_dir = values.get("report-dir")
    settings = AmiSettings(
        target=values.get("target", TargetSpec()),
        profile_path=values.get("profile"),
        faults=tuple(dict.fromkeys(values.get("fault", ()))),
        allow_destructive=bool(values.get("allow-destructive")),
        allow_bruteforce=bool(values.get("allow-bruteforce")),
        outside_source=values.get("outside-source"),
        report_dir=report_dir or config.invocation_params.dir / DEFAULT_REPORT_DIR,
        report_dir_explicit=report_dir is not None,
        pcap=bool(values.get("pcap")),
        fail_delay=values.get("fail-delay"),
        baseline=values.get("baseline"),
        explicit=bool(values),
    )
    if not settings.is_sim:
        for name in ("fault", "fail-delay"):
            if values.get(name) is not None:
                raise pytest.UsageError(
                    f"--ami-{name} applies to the simulator only (target is {settings.target})"
                )
    return settings


def get_settings(config: pytest.Config) -> AmiSettings:
    """The resolved :class:`AmiSettings` of a pytest run."""
    return config.stash[settings_key]


@dataclass
class RunState:
    """What one run loads once: the profile, the simulator, the report collector."""

    settings: AmiSettings
    started: datetime
    is_worker: bool
    profile: Profile | None = None
    collector: Collector | None = None
    seen_ids: dict[str, tuple[str, str]] = field(default_factory=dict)
    sim: Simulator | None = None
    written: list[Path] = field(default_factory=list)
    interrupted: bool = False

    def load_profile(self) -> Profile:
        """The configured profile (not the simulator's effective one), loaded once."""
        if self.profile is None:
            from amicheck.profile import default_profile, load_profile

            p = self.settings.profile_path
            self.profile = load_profile(p) if p else default_profile()
        return self.profile

    def secrets(self) -> set[str]:
        """Every secret and secret-derived value (MD5 keys) known so far: what to redact."""
        from amicheck.redaction import derived_secrets

        secrets = set(self.load_profile().secrets()) | derived_secrets()
        if self.sim is not None:
            secrets |= self.sim.profile.secrets()
        if self.settings.faults:
            from amicheck.sim.faults import FAULTS

            for name in self.settings.faults:
                secrets |= {u.secret for u in FAULTS[name].extra_users if u.secret}
        return secrets


def run_state(config: pytest.Config) -> RunState:
    """The :class:`RunState` of a pytest run."""
    return config.stash[state_key]
