"""The amicheck pytest plugin: options, markers, fixtures, requirement IDs, evidence, reports.

Loaded through the ``pytest11`` entry point in every pytest run once amicheck is installed, so
it is inert and cheap until used: this module imports only pytest and the standard library.
The simulator, the client, the profile loader, the catalogue and scapy are imported the first
time a fixture or option needs them (style.md §9). Reports are written only when the run
contains requirement-marked tests or a report directory was asked for explicitly.

Fixtures (docs/internals.md "Plugin fixtures"): ``ami_profile``, ``ami_target``, ``ami_sim``,
``ami_connect``, ``ami_login``, ``ami_client``, ``ami_metric``; plus ``ami_settings`` (the parsed
options) and ``ami_session_target`` (the same Target, session-scoped, no per-test reset).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from amicheck.client import AmiClient
    from amicheck.profile import Profile, User
    from amicheck.report.collector import Collector
    from amicheck.sim import Simulator

__all__ = [
    "AmiSettings",
    "Target",
    "TargetSpec",
    "parse_target",
    "parse_fail_delay",
    "parse_source",
    "MARKERS",
    "SUITE_DIR_NAME",
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
#: Tests under a directory of this name must carry exactly one requirement marker.
SUITE_DIR_NAME = "suites"
SIM_OUTSIDE_SOURCE = "127.0.0.2"
DEFAULT_REPORT_DIR = "reports"
CONNECT_TIMEOUT = 5.0
_ID_RE = re.compile(r"^AMI-[A-Z]+-\d{3}$")

_settings_key = pytest.StashKey["AmiSettings"]()
_state_key = pytest.StashKey["_RunState"]()
_clients_key = pytest.StashKey[list[Any]]()


# --- option parsing --------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetSpec:
    """A parsed ``--ami-target``: the simulator, or a host with an optional port."""

    host: str | None = None  # None: the embedded simulator
    port: int | None = None

    @property
    def is_sim(self) -> bool:
        return self.host is None

    def __str__(self) -> str:
        if self.host is None:
            return "sim"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host


_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def _port(text: str, what: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise pytest.UsageError(f"{what}: port must be 1-65535, got {text!r}")
    return int(text)


def parse_target(value: str) -> TargetSpec:
    """``sim`` | ``HOST`` | ``HOST:PORT`` | ``[IPv6]:PORT``; UsageError on anything else."""
    what = "--ami-target"
    text = value.strip()
    if text.lower() == "sim":
        return TargetSpec()
    host, port = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise pytest.UsageError(f"{what}: unclosed '[' in {value!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise pytest.UsageError(f"{what}: expected ':PORT' after ']' in {value!r}")
            port = _port(rest[1:], what)
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = _port(p, what)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST_RE.match(host):
            raise pytest.UsageError(
                f"{what}: expected 'sim' or HOST[:PORT], got {value!r}"
            ) from None
    return TargetSpec(host, port)


def parse_source(value: str) -> str:
    """An IP address (the ``--ami-outside-source`` for ACL checks)."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise pytest.UsageError(f"--ami-outside-source: not an IP address: {value!r}") from None


def parse_fail_delay(value: str) -> float:
    """Seconds (>= 0) the simulator waits before answering a failed login."""
    try:
        seconds = float(value)
    except ValueError:
        raise pytest.UsageError(f"--ami-fail-delay: not a number of seconds: {value!r}") from None
    if not 0 <= seconds <= 60:
        raise pytest.UsageError(f"--ami-fail-delay: must be between 0 and 60 s, got {value!r}")
    return seconds


def _existing_file(value: str) -> Path:
    p = Path(value).expanduser()
    if not p.is_file():
        raise pytest.UsageError(f"--ami-profile: no such file: {value}")
    return p


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("amicheck", "amicheck: AMI compliance checks")
    group.addoption(
        "--ami-target",
        dest="ami_target",
        default=None,
        type=parse_target,
        metavar="sim|HOST[:PORT]",
        help="AMI endpoint to check: 'sim' (default) starts the embedded UCM simulator; "
        "HOST[:PORT] a real device (port defaults to the profile's)",
    )
    group.addoption(
        "--ami-profile",
        dest="ami_profile",
        default=None,
        type=_existing_file,
        metavar="FILE",
        help="target profile (TOML); default: the built-in compliant profile",
    )
    group.addoption(
        "--ami-fault",
        dest="ami_fault",
        action="append",
        default=None,
        metavar="NAME",
        help="simulator fault profile to switch on (repeatable; simulator only; "
        "'amicheck faults' lists them)",
    )
    group.addoption(
        "--ami-allow-destructive",
        dest="ami_allow_destructive",
        action="store_true",
        default=None,
        help="run checks that change state on a real target",
    )
    group.addoption(
        "--ami-allow-bruteforce",
        dest="ami_allow_bruteforce",
        action="store_true",
        default=None,
        help="run password-guessing checks against a real target",
    )
    group.addoption(
        "--ami-outside-source",
        dest="ami_outside_source",
        default=None,
        type=parse_source,
        metavar="IP",
        help="a local address outside the users' permitted lists, for ACL checks "
        "against a real target (the simulator uses 127.0.0.2)",
    )
    group.addoption(
        "--ami-report-dir",
        dest="ami_report_dir",
        default=None,
        metavar="DIR",
        help=f"where junit.xml, report.html and report.json go (default: {DEFAULT_REPORT_DIR}/)",
    )
    group.addoption(
        "--ami-pcap",
        dest="ami_pcap",
        action="store_true",
        default=None,
        help="write each test's AMI traffic as a pcap into the report directory (secrets redacted)",
    )
    group.addoption(
        "--ami-fail-delay",
        dest="ami_fail_delay",
        default=None,
        type=parse_fail_delay,
        metavar="SECONDS",
        help="simulator only: delay before a failed login is answered "
        "(default: the stock 1 s; shorter for fast self-tests)",
    )
    parser.addini("ami_target", "AMI endpoint: sim or HOST[:PORT]", default="sim")
    parser.addini("ami_profile", "target profile file (relative to the ini file)", default="")
    parser.addini("ami_fault", "simulator fault profiles", type="args", default=[])
    parser.addini("ami_allow_destructive", "run state-changing checks", type="bool", default=False)
    parser.addini("ami_allow_bruteforce", "run password guessing", type="bool", default=False)
    parser.addini("ami_outside_source", "address outside the ACL for ACL checks", default="")
    parser.addini("ami_report_dir", "report directory (relative to the ini file)", default="")
    parser.addini("ami_pcap", "write pcaps of each test's AMI traffic", type="bool", default=False)
    parser.addini("ami_fail_delay", "simulator failed-login delay in seconds", default="")
    parser.addini(
        "ami_require_ids", "every test needs one requirement ID (not only those under suites/)",
        type="bool", default=False,
    )


# --- settings --------------------------------------------------------------------------------


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
    explicit: bool = False  # any amicheck option or ini value was given

    @property
    def is_sim(self) -> bool:
        return self.target.is_sim


def _ini_base(config: pytest.Config) -> Path:
    return config.inipath.parent if config.inipath else config.rootpath


def _resolve_settings(config: pytest.Config) -> AmiSettings:
    opt = config.getoption
    ini = config.getini
    base = _ini_base(config)
    explicit = False

    def pick(name: str) -> Any:
        nonlocal explicit
        value = opt(name)
        if value is not None:
            explicit = True
            return value, True
        raw = ini(name)
        if raw not in ("", [], False, None) and not (name == "ami_target" and raw == "sim"):
            explicit = True
            return raw, False
        return None, False

    target_v, from_cli = pick("ami_target")
    target = (target_v if from_cli else parse_target(target_v)) if target_v else TargetSpec()
    prof_v, from_cli = pick("ami_profile")
    profile_path: Path | None = None
    if prof_v:
        profile_path = prof_v if from_cli else _existing_file(str(base / prof_v))
    faults_v, _ = pick("ami_fault")
    faults = tuple(dict.fromkeys(str(f) for f in (faults_v or ())))
    src_v, from_cli = pick("ami_outside_source")
    outside = (src_v if from_cli else parse_source(src_v)) if src_v else None
    dir_v, from_cli = pick("ami_report_dir")
    if dir_v:
        report_dir = (config.invocation_params.dir / dir_v) if from_cli else base / dir_v
    else:
        report_dir = config.invocation_params.dir / DEFAULT_REPORT_DIR
    delay_v, from_cli = pick("ami_fail_delay")
    delay = (
        (delay_v if from_cli else parse_fail_delay(delay_v)) if delay_v not in (None, "") else None
    )
    settings = AmiSettings(
        target=target,
        profile_path=profile_path,
        faults=faults,
        allow_destructive=bool(pick("ami_allow_destructive")[0]),
        allow_bruteforce=bool(pick("ami_allow_bruteforce")[0]),
        outside_source=outside,
        report_dir=Path(os.path.normpath(report_dir)),
        report_dir_explicit=bool(dir_v),
        pcap=bool(pick("ami_pcap")[0]),
        fail_delay=delay,
        explicit=explicit,
    )
    if not settings.is_sim:
        if settings.faults:
            raise pytest.UsageError(
                f"--ami-fault applies to the simulator only (target is {settings.target})"
            )
        if settings.fail_delay is not None:
            raise pytest.UsageError(
                f"--ami-fail-delay applies to the simulator only (target is {settings.target})"
            )
    return settings


def get_settings(config: pytest.Config) -> AmiSettings:
    """The resolved :class:`AmiSettings` of a pytest run."""
    return config.stash[_settings_key]


# --- run state (profile, catalogue, collector) ----------------------------------------------


@dataclass
class _RunState:
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
        secrets = set(self.load_profile().secrets())
        if self.sim is not None:
            secrets |= set(self.sim.profile.secrets())
        if self.settings.faults:
            try:
                from amicheck.sim.faults import FAULTS
            except ImportError:  # pragma: no cover - the simulator is part of the package
                return secrets
            for name in self.settings.faults:
                fault = FAULTS.get(name)
                secrets |= {u.secret for u in getattr(fault, "extra_users", ()) if u.secret}
        return secrets


def _state(config: pytest.Config) -> _RunState:
    return config.stash[_state_key]


def _catalogue() -> dict[str, Any]:
    from amicheck.requirements import CATALOGUE

    return CATALOGUE


def pytest_configure(config: pytest.Config) -> None:
    for name, description in MARKERS:
        config.addinivalue_line("markers", f"{name}: {description}")
    settings = _resolve_settings(config)
    config.stash[_settings_key] = settings
    state = _RunState(settings, datetime.now(UTC), hasattr(config, "workerinput"))
    config.stash[_state_key] = state
    if not state.is_worker:  # under xdist the report is built on the controller only
        config.pluginmanager.register(_ReportPlugin(config), "amicheck-report")
    if settings.profile_path is not None:  # fail early and clearly on a bad profile
        from amicheck.errors import ProfileError

        try:
            state.load_profile()
        except ProfileError as exc:
            raise pytest.UsageError(_one_line(exc)) from None
    if settings.faults:
        try:
            from amicheck.sim.faults import resolve_faults
        except ImportError:  # pragma: no cover
            return
        try:
            resolve_faults(settings.faults)
        except Exception as exc:  # UnknownFaultError
            raise pytest.UsageError(f"--ami-fault: {exc}") from None


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return "; ".join(lines) if lines else type(exc).__name__


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


# --- requirement IDs at collection -----------------------------------------------------------


def _is_suite_item(item: pytest.Item) -> bool:
    return (
        SUITE_DIR_NAME in item.path.parts[:-1]
        or item.get_closest_marker("requirement") is not None
        or bool(item.config.getini("ami_require_ids"))
    )


def _function_key(item: pytest.Item) -> str:
    return item.nodeid.split("[", 1)[0]


def _check_requirements(config: pytest.Config, items: Iterable[pytest.Item]) -> list[str]:
    """Problems with the requirement markers of ``items``; valid IDs go to user_properties."""
    state = _state(config)
    problems: list[str] = []
    catalogue: dict[str, Any] | None = None
    for item in items:
        if not _is_suite_item(item):
            continue
        marks = list(item.iter_markers("requirement"))
        if len(marks) != 1:
            problems.append(
                f"{item.nodeid}: needs exactly one @pytest.mark.requirement(ID), has {len(marks)}"
            )
            continue
        args = marks[0].args
        if len(args) != 1 or not isinstance(args[0], str) or marks[0].kwargs:
            problems.append(f"{item.nodeid}: requirement marker takes one ID string, got {args!r}")
            continue
        rid = args[0]
        if catalogue is None:
            try:
                catalogue = _catalogue()
            except ImportError as exc:
                problems.append(f"{item.nodeid}: requirement catalogue unavailable: {exc}")
                continue
        if rid not in catalogue:
            problems.append(f"{item.nodeid}: unknown requirement ID {rid!r} (not in the catalogue)")
            continue
        key = _function_key(item)
        first = state.seen_ids.get(rid)
        if first is not None and first[0] != key:
            problems.append(f"{item.nodeid}: duplicate requirement ID {rid!r} (also on {first[1]})")
            continue
        state.seen_ids.setdefault(rid, (key, item.nodeid))
        if ("requirement", rid) not in item.user_properties:
            item.user_properties.append(("requirement", rid))
    return problems


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    report = yield
    if report.passed and report.result:
        items = [n for n in report.result if isinstance(n, pytest.Item)]
        problems = _check_requirements(collector.config, items) if items else []
        if problems:
            report.outcome = "failed"
            report.longrepr = "amicheck requirement IDs:\n  " + "\n  ".join(problems)
            report.result = []
    return report


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


# --- fixtures --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where the checks go. On the simulator every port is the bound ephemeral one."""

    host: str
    port: int
    tls_port: int | None
    stock_port: int | None
    is_sim: bool
    sim: Simulator | None
    outside_source: str | None
    allow_destructive: bool
    allow_bruteforce: bool

    def __str__(self) -> str:
        return "sim" if self.is_sim else f"{self.host}:{self.port}"


@pytest.fixture(scope="session")
def ami_settings(pytestconfig: pytest.Config) -> AmiSettings:
    """The resolved amicheck options (override in a conftest to pin them)."""
    return get_settings(pytestconfig)


def _start_simulator(state: _RunState) -> Simulator:
    import inspect

    from amicheck.sim import Simulator

    kwargs: dict[str, Any] = {
        "faults": state.settings.faults,
        "host": "127.0.0.1",
        "port": 0,
        "tls_port": 0,
    }
    if state.settings.fail_delay is not None:
        params = inspect.signature(Simulator).parameters
        if "fail_delay" not in params:
            raise pytest.UsageError("--ami-fail-delay: this simulator has no fail_delay setting")
        kwargs["fail_delay"] = state.settings.fail_delay
    sim = Simulator(state.load_profile(), **kwargs)
    sim.__enter__()
    return sim


@pytest.fixture(scope="session")
def _ami_sim_session(pytestconfig: pytest.Config) -> Generator[Simulator | None, None, None]:
    state = _state(pytestconfig)
    if not state.settings.is_sim:
        yield None
        return
    from amicheck.errors import AmiCheckError

    try:
        sim = _start_simulator(state)
    except AmiCheckError as exc:
        pytest.fail(f"amicheck: the simulator did not start: {_one_line(exc)}", pytrace=False)
    state.sim = sim
    try:
        yield sim
    finally:
        sim.stop()
    _raise_sim_errors(sim, "the simulator")


def _raise_sim_errors(sim: Simulator, where: str) -> None:
    """Re-raise (once: the simulator forgets them) errors raised inside the simulator."""
    errors = list(getattr(sim, "errors", ()))
    if not errors:
        return
    try:
        sim.check_errors()
    except Exception as exc:  # SimulatorError, chained to the handler's exception
        first = errors[0]
        raise RuntimeError(
            f"{where} hit {len(errors)} internal error(s); first: {type(first).__name__}: {first}"
        ) from exc


@pytest.fixture(scope="session")
def ami_profile(pytestconfig: pytest.Config, _ami_sim_session: Simulator | None) -> Profile:
    """The profile checks hold the target against (the simulator's effective one in sim mode)."""
    if _ami_sim_session is not None:
        return _ami_sim_session.profile
    return _state(pytestconfig).load_profile()


@pytest.fixture(scope="session")
def ami_session_target(
    pytestconfig: pytest.Config, ami_profile: Profile, _ami_sim_session: Simulator | None
) -> Target:
    """The :class:`Target`, session-scoped (no per-test simulator reset)."""
    s = get_settings(pytestconfig)
    sim = _ami_sim_session
    if sim is not None:
        return Target(
            host=sim.host,
            port=sim.port,
            tls_port=sim.tls_port,
            stock_port=getattr(sim, "stock_port", None),
            is_sim=True,
            sim=sim,
            outside_source=s.outside_source or SIM_OUTSIDE_SOURCE,
            allow_destructive=True,
            allow_bruteforce=True,
        )
    st = ami_profile.settings
    assert s.target.host is not None
    return Target(
        host=s.target.host,
        port=s.target.port or st.port,
        tls_port=st.tls_port if st.tls_enable else None,
        stock_port=getattr(st, "stock_port", 5038),
        is_sim=False,
        sim=None,
        outside_source=s.outside_source,
        allow_destructive=s.allow_destructive,
        allow_bruteforce=s.allow_bruteforce,
    )


@pytest.fixture
def ami_target(ami_session_target: Target) -> Generator[Target, None, None]:
    """The :class:`Target` of this test; on the simulator, a freshly reset one."""
    sim = ami_session_target.sim
    if sim is None:
        yield ami_session_target
        return
    _raise_sim_errors(sim, "the simulator (before this test)")
    sim.reset()
    yield ami_session_target
    _raise_sim_errors(sim, "the simulator (during this test)")


@pytest.fixture
def ami_sim(ami_target: Target) -> Simulator:
    """The embedded simulator; skips the test against a real target."""
    if ami_target.sim is None:
        pytest.skip(f"needs the embedded simulator (target is {ami_target})")
    return ami_target.sim


@pytest.fixture
def _ami_clients(request: pytest.FixtureRequest) -> Generator[list[Any], None, None]:
    clients: list[Any] = []
    request.node.stash[_clients_key] = clients
    yield clients
    for c in clients:
        try:
            c.close()
        except Exception:  # noqa: BLE001 - closing is best effort; the test's verdict stands
            pass
    settings = get_settings(request.config)
    if settings.pcap and clients:
        path = _write_pcap(request.node, clients, settings.report_dir)
        if path is not None:
            request.node.user_properties.append(("ami_pcap", str(path)))


ConnectFactory = Callable[..., "AmiClient"]


@pytest.fixture
def ami_connect(
    ami_target: Target, _ami_clients: list[Any], pytestconfig: pytest.Config
) -> ConnectFactory:
    """Factory: ``ami_connect(tls=False, source_address=None, read_banner=True)`` -> AmiClient.

    The connection is not logged in; every client is closed at teardown and its redacted
    transcript is attached to a failing test's report. ``tls`` may also be an SSLContext;
    ``port`` overrides the target's port (e.g. ``ami_target.stock_port``).
    """
    secrets = sorted(_state(pytestconfig).secrets())

    def connect(
        tls: Any = False,
        source_address: str | None = None,
        read_banner: bool = True,
        timeout: float = CONNECT_TIMEOUT,
        port: int | None = None,
    ) -> AmiClient:
        from amicheck.client import AmiClient

        if port is None:
            port = ami_target.tls_port if tls else ami_target.port
        if port is None:
            pytest.skip("TLS is not enabled in the profile (settings.tls_enable = false)")
        client = AmiClient.connect(
            ami_target.host,
            port,
            tls=tls or None,
            timeout=timeout,
            source_address=source_address,
            read_banner=read_banner,
        )
        for secret in secrets:  # masked wherever they appear, not only after Secret:/Key:
            client.transcript.add_secret(secret)
        _ami_clients.append(client)
        return client

    return connect


def _pick_user(profile: Profile, username: str | None) -> User:
    if username is not None:
        user = profile.user(username)
        if user is None:
            names = ", ".join(u.username for u in profile.users)
            raise LookupError(f"no AMI user {username!r} in the profile (users: {names})")
        return user
    for u in profile.users:
        if "all" in u.privileges:
            return u
    if not profile.users:
        raise LookupError("the profile has no [[users]]")
    return profile.users[0]


LoginFactory = Callable[..., "AmiClient"]


@pytest.fixture
def ami_login(ami_profile: Profile, ami_connect: ConnectFactory) -> LoginFactory:
    """Factory: ``ami_login(username=None, tls=False, source_address=None, events=True)``.

    Logs in as ``username`` (default: the first user with ``all``) with its profile secret;
    skips when the profile does not know the secret (``secret_env`` unset).
    """

    def login(
        username: str | None = None,
        tls: Any = False,
        source_address: str | None = None,
        events: bool = True,
        md5: bool = False,
        secret: str | None = None,
    ) -> AmiClient:
        user = _pick_user(ami_profile, username)
        password = secret if secret is not None else user.secret
        if password is None:
            env = getattr(user, "secret_env", None)
            hint = f" (set {env})" if env else ""
            pytest.skip(f"no secret for AMI user {user.username}{hint}")
        client = ami_connect(tls=tls, source_address=source_address)
        client.login(user.username, password, md5=md5, events=events)
        return client

    return login


@pytest.fixture
def ami_client(ami_login: LoginFactory) -> AmiClient:
    """A client logged in as the first profile user with ``all`` privileges."""
    return ami_login()


MetricRecorder = Callable[..., None]


@pytest.fixture
def ami_metric(request: pytest.FixtureRequest) -> MetricRecorder:
    """``ami_metric(name, value, unit, samples=None)``: a number for the report and its chart."""

    def record(name: str, value: float, unit: str, samples: Sequence[float] | None = None) -> None:
        request.node.user_properties.append(
            (
                "ami_metric",
                {
                    "name": str(name),
                    "value": float(value),
                    "unit": str(unit),
                    "samples": [float(s) for s in samples or ()],
                },
            )
        )

    return record


# --- evidence on failure ---------------------------------------------------------------------


def render_transcript(client: Any) -> str:
    """The redacted exchange of one client as text (``>>>`` sent, ``<<<`` received)."""
    transcript = getattr(client, "transcript", None)
    if transcript is None:
        return ""
    for attr in ("render", "to_text", "text"):
        fn = getattr(transcript, attr, None)
        if callable(fn):
            return str(fn())
        if isinstance(fn, str):
            return fn
    return "\n".join(str(frame) for frame in transcript)


def _redact_report(report: pytest.TestReport, secrets: set[str]) -> None:
    from amicheck.report.collector import redact

    if not secrets:
        return
    if report.longrepr is not None and not isinstance(report.longrepr, tuple):
        text = str(report.longrepr)
        if any(s in text for s in secrets):
            report.longrepr = redact(text, secrets)
    if report.sections and any(s in c for _, c in report.sections for s in secrets):
        report.sections = [(t, redact(c, secrets)) for t, c in report.sections]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    clients = item.stash.get(_clients_key, None)
    if clients is None and not _is_suite_item(item):
        return report
    state = _state(item.config)
    if report.failed and clients:
        parts = []
        for i, c in enumerate(clients, 1):
            text = render_transcript(c).rstrip()
            if text:
                peer = getattr(c, "peer", "?")
                tls = " (TLS)" if getattr(getattr(c, "stream", None), "is_tls", False) else ""
                parts.append(f"--- connection {i} to {peer}{tls} ---\n{text}")
        if parts:
            report.sections.append(("AMI transcript", "\n".join(parts)))
    try:
        secrets = state.secrets()
    except Exception:  # noqa: BLE001 - a broken profile is reported elsewhere
        secrets = set()
    _redact_report(report, secrets)
    return report


def _write_pcap(item: pytest.Item, clients: list[Any], report_dir: Path) -> Path | None:
    from amicheck.capture import frames_of, write_pcap

    frames = [f for c in clients for f in frames_of(c)]
    if not frames:
        return None
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid).strip("_")[:150] or "test"
    path = report_dir / "pcap" / f"{name}.pcap"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_pcap(path, frames, secrets=_state(item.config).secrets())
    return path


# --- the report (controller only) ------------------------------------------------------------


def _collector(config: pytest.Config) -> Collector:
    state = _state(config)
    if state.collector is None:
        from amicheck import __version__
        from amicheck.report.collector import Collector

        settings = state.settings
        try:
            profile_name = state.load_profile().name
            secrets = state.secrets()
        except Exception as exc:  # noqa: BLE001 - the report still records the run
            profile_name, secrets = f"(profile not loaded: {type(exc).__name__})", set()

        def lookup(rid: str) -> Any:
            return _catalogue().get(rid)

        state.collector = Collector(
            target=str(settings.target),
            is_sim=settings.is_sim,
            profile=profile_name,
            version=__version__,
            lookup=lookup,
            secrets=secrets,
            faults=settings.faults,
            started=state.started,
        )
    return state.collector


class _ReportPlugin:
    """Registered on the controller only: feeds the collector and writes the files."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = getattr(report, "user_properties", ()) or ()
        state = _state(self.config)
        if (
            state.collector is None
            and not any(n == "requirement" for n, _ in props)
            and not state.settings.report_dir_explicit
        ):
            return
        _collector(self.config).add(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            _collector(self.config).add_collection_error(report)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # Ctrl-C itself; collection errors arrive here too, as Session.Interrupted
        if excinfo.type is KeyboardInterrupt:
            _state(self.config).interrupted = True

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        state = _state(self.config)
        if state.collector is None and not state.settings.report_dir_explicit:
            return
        report = _collector(self.config).build(
            interrupted=state.interrupted, exit_status=int(exitstatus)
        )
        state.written = write_reports(report, state.settings.report_dir)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        state = _state(self.config)
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


def write_reports(report: Any, directory: Path) -> list[Path]:
    """Render every writer's output into ``directory`` (created); returns the paths."""
    from amicheck.report import REPORT_FILES
    from amicheck.report.html_writer import to_html
    from amicheck.report.json_writer import to_json
    from amicheck.report.junit_writer import to_junit_xml

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, render in (("junit", to_junit_xml), ("html", to_html), ("json", to_json)):
        path = directory / REPORT_FILES[kind]
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(render(report), encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written
