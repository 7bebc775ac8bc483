"""The fixtures suites use (docs/internals.md "Plugin fixtures").

Layered like pytest-httpserver: a session-scoped simulator on port 0, a function-scoped
``ami_target`` that resets it, and factories that hand out clients. Every client a test opens
is closed at teardown, its redacted transcript goes to a failing test's report, and then the
plugin lets go of it (:mod:`.evidence`), so a target that streams events cannot make the
harness hold every test's traffic until the session ends.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from amicheck.plugin.evidence import attach_clients, write_test_pcap
from amicheck.plugin.settings import AmiSettings, RunState, get_settings, run_state

if TYPE_CHECKING:
    from amicheck.client import AmiClient
    from amicheck.profile import Profile, User
    from amicheck.sim import Simulator

__all__ = [
    "Target",
    "ConnectFactory",
    "LoginFactory",
    "MetricRecorder",
    "SIM_OUTSIDE_SOURCE",
    "CONNECT_TIMEOUT",
]

SIM_OUTSIDE_SOURCE = "127.0.0.2"
CONNECT_TIMEOUT = 5.0
METRIC_PROPERTY = "ami_metric"  # amicheck.report.collector reads the same name


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


def _start_simulator(state: RunState) -> Simulator:
    from amicheck.sim import Simulator

    settings = state.settings
    profile = state.load_profile()
    if settings.fail_delay is None:
        sim = Simulator(profile, faults=settings.faults, host="127.0.0.1", port=0, tls_port=0)
    else:
        sim = Simulator(profile, faults=settings.faults, host="127.0.0.1", port=0, tls_port=0,
                        fail_delay=settings.fail_delay)
    sim.__enter__()
    return sim


def raise_sim_errors(sim: Simulator, where: str) -> None:
    """Re-raise (once: the simulator forgets them) errors raised inside the simulator."""
    errors = list(sim.errors)
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
def _ami_sim_session(pytestconfig: pytest.Config) -> Generator[Simulator | None, None, None]:
    state = run_state(pytestconfig)
    if not state.settings.is_sim:
        yield None
        return
    from amicheck.errors import AmiCheckError

    try:
        sim = _start_simulator(state)
    except AmiCheckError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        pytest.fail(f"amicheck: the simulator did not start: {'; '.join(lines)}", pytrace=False)
    state.sim = sim
    try:
        yield sim
    finally:
        sim.stop()
    raise_sim_errors(sim, "the simulator")


@pytest.fixture(scope="session")
def ami_profile(pytestconfig: pytest.Config, _ami_sim_session: Simulator | None) -> Profile:
    """The profile checks hold the target against (the simulator's effective one in sim mode)."""
    if _ami_sim_session is not None:
        return _ami_sim_session.profile
    return run_state(pytestconfig).load_profile()


@pytest.fixture(scope="session")
def ami_session_target(
    pytestconfig: pytest.Config, ami_profile: Profile, _ami_sim_session: Simulator | None
) -> Target:
    """The :class:`Target`, session-scoped (no per-test simulator reset)."""
    s = get_settings(pytestconfig)
    sim = _ami_sim_session
    if sim is not None:
        return Target(
            host=sim.host, port=sim.port, tls_port=sim.tls_port, stock_port=sim.stock_port,
            is_sim=True, sim=sim, outside_source=s.outside_source or SIM_OUTSIDE_SOURCE,
            allow_destructive=True, allow_bruteforce=True,
        )
    st = ami_profile.settings
    assert s.target.host is not None
    return Target(
        host=s.target.host, port=s.target.port or st.port,
        tls_port=st.tls_port if st.tls_enable else None, stock_port=st.stock_port,
        is_sim=False, sim=None, outside_source=s.outside_source,
        allow_destructive=s.allow_destructive, allow_bruteforce=s.allow_bruteforce,
    )


@pytest.fixture
def ami_target(ami_session_target: Target) -> Generator[Target, None, None]:
    """The :class:`Target` of this test; on the simulator, a freshly reset one."""
    sim = ami_session_target.sim
    if sim is None:
        yield ami_session_target
        return
    raise_sim_errors(sim, "the simulator (before this test)")
    sim.reset()
    yield ami_session_target
    raise_sim_errors(sim, "the simulator (during this test)")


@pytest.fixture
def ami_sim(ami_target: Target) -> Simulator:
    """The embedded simulator; skips the test against a real target."""
    if ami_target.sim is None:
        pytest.skip(f"needs the embedded simulator (target is {ami_target})")
    return ami_target.sim


@pytest.fixture
def _ami_clients(request: pytest.FixtureRequest) -> Generator[list[AmiClient], None, None]:
    clients: list[AmiClient] = []
    attach_clients(request.node, clients)
    yield clients
    for c in clients:
        try:
            c.close()
        except Exception:  # noqa: BLE001 - closing is best effort; the test's verdict stands
            pass
    settings = get_settings(request.config)
    if settings.pcap and clients:
        write_test_pcap(request.node, clients, settings.report_dir)


ConnectFactory = Callable[..., "AmiClient"]


@pytest.fixture
def ami_connect(
    ami_target: Target, _ami_clients: list[AmiClient], pytestconfig: pytest.Config
) -> ConnectFactory:
    """Factory: ``ami_connect(tls=False, source_address=None, read_banner=True)`` -> AmiClient.

    The connection is not logged in; every client is closed at teardown and its redacted
    transcript is attached to a failing test's report. ``tls`` may also be an SSLContext;
    ``port`` overrides the target's port (e.g. ``ami_target.stock_port``).
    """
    secrets = sorted(run_state(pytestconfig).secrets())

    def connect(
        tls: bool | ssl.SSLContext = False,
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
            ami_target.host, port, tls=tls or None, timeout=timeout,
            source_address=source_address, read_banner=read_banner,
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
        tls: bool | ssl.SSLContext = False,
        source_address: str | None = None,
        events: bool = True,
        md5: bool = False,
        secret: str | None = None,
    ) -> AmiClient:
        user = _pick_user(ami_profile, username)
        password = secret if secret is not None else user.secret
        if password is None:
            hint = f" (set {user.secret_env})" if user.secret_env else ""
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
                METRIC_PROPERTY,
                {
                    "name": str(name),
                    "value": float(value),
                    "unit": str(unit),
                    "samples": [float(s) for s in samples or ()],
                },
            )
        )

    return record
