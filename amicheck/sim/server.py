"""The simulator's listeners and the thread that runs them.

:class:`Simulator` provisions a profile (refusing one that breaks the UCM rules, unless an
active fault disables the rule), lays out the TLS files under the UCM's names, and runs an
asyncio server on its own thread, pytest-httpserver style: the caller's thread stays free
for blocking clients, and exceptions raised inside the loop are collected and re-raised by
:meth:`Simulator.check_errors` (and on leaving the ``with`` block).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import socket
import ssl
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from amicheck.errors import AmiCheckError, ProfileError
from amicheck.profile import Profile, User, default_profile
from amicheck.protocol.message import Message
from amicheck.rules import check_profile, check_user
from amicheck.sim.behaviour import COMPLIANT_CIPHERS
from amicheck.sim.certs import write_cert_pair
from amicheck.sim.core import SimCore
from amicheck.sim.faults import FAULTS, behaviour_for, resolve_faults
from amicheck.sim.session import AmiSession
from amicheck.sim.tlsgate import HANDSHAKE_TIMEOUT_S, PendingHandshakes, TlsGate

__all__ = ["Simulator", "SimulatorError", "CERT_NAME", "KEY_NAME"]

log = logging.getLogger("amicheck.sim")

#: The names the UCM stores uploaded files under (state directory).
CERT_NAME = "ami_certificate.pem"
#: The generated default certificate's CA, for clients that verify.
CA_NAME = "ami_ca.pem"
KEY_NAME = "ami_private.pem"

_T = TypeVar("_T")
_START_TIMEOUT = 30.0
#: listen() backlog: bursts of connects (1,000-session benchmarks) must not drop SYNs
_BACKLOG = 1024
#: What a lowered security level adds: the ECDHE-CBC suites TLS 1.0/1.1 need (still ECDHE).
_LEGACY_SUITES = ":ECDHE+AES:@SECLEVEL=0"


class SimulatorError(AmiCheckError):
    """The simulator could not start, or code running inside it raised (see ``__cause__``)."""


def _problems(profile: Profile, disabled: frozenset[str]) -> list[str]:
    return [
        f"{f.path}: {f.message}" for f in check_profile(profile, disabled=disabled) if f.is_error
    ]


class Simulator:
    """A UCM6XXX AMI served over real sockets, as a context manager.

    Args:
        profile: the profile to serve (default: the built-in compliant one).
        faults: fault names from :data:`~amicheck.sim.faults.FAULTS`.
        host: address to bind (loopback in tests).
        port: AMI port; 0 = ephemeral, None = the profile's port.
        tls_port: TLS port (used only when the profile enables TLS); 0/None as ``port``.
        seed: makes challenges, session ids and the PBX deterministic.
        state_dir: where TLS files are stored; None = a temporary directory (removed on stop).
        fail_delay: seconds before ``Authentication failed`` (Asterisk: 1 s).
        tls_handshake_timeout: seconds a TLS peer has for its handshake (then dropped;
            at most ``MAX_PENDING_HANDSHAKES`` wait at once, the oldest is dropped first).

    Raises:
        ProfileError: the profile breaks UCM rules (every problem, with its key path).
        UnknownFaultError: a fault name is not known (the message lists the valid ones).
    """

    def __init__(
        self,
        profile: Profile | None = None,
        faults: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int | None = 0,
        tls_port: int | None = 0,
        seed: int = 0,
        state_dir: str | Path | None = None,
        fail_delay: float = 1.0,
        tls_handshake_timeout: float = HANDSHAKE_TIMEOUT_S,
    ) -> None:
        for what, value in (("port", port), ("tls_port", tls_port)):
            if value is not None and not 0 <= value <= 65535:
                raise SimulatorError(f"{what} {value}: must be 0-65535 (0: any free port)")
        base = default_profile() if profile is None else profile
        self.faults: frozenset[str] = resolve_faults(faults)
        self.behaviour = behaviour_for(self.faults)
        self.host = host
        self.seed = seed
        self.fail_delay = fail_delay
        self.tls_handshake_timeout = tls_handshake_timeout
        self.errors: list[BaseException] = []
        self._want_port = base.settings.port if port is None else port
        self._want_tls_port = base.settings.tls_port if tls_port is None else tls_port
        self._fixed_ports = port is None
        self.port: int = 0
        self.tls_port: int | None = None
        self.stock_port: int = 0
        self.tls_cert_path: Path | None = None
        self.tls_key_path: Path | None = None
        #: the CA of the generated default certificate (None when the profile gave files)
        self.tls_ca_path: Path | None = None
        self.generated_cert = False

        effective = self._apply_faults(base)
        disabled = frozenset().union(*(FAULTS[f].disabled_rules for f in self.faults))
        self._disabled = disabled
        problems = _problems(effective, disabled)
        if problems:
            raise ProfileError(str(base.path or "<profile>"), problems)
        self._own_state = state_dir is None
        self.state_dir = (
            Path(tempfile.mkdtemp(prefix="amicheck-sim-")) if state_dir is None else Path(state_dir)
        )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._effective = effective
        self.profile: Profile = self._provision_tls(effective)

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._core: SimCore | None = None
        self._servers: list[asyncio.Server] = []
        self._reserved: socket.socket | None = None
        self._reserved_plain: socket.socket | None = None
        self._pending_tls = PendingHandshakes()

    # -- provisioning -----------------------------------------------------------------------
    def _apply_faults(self, profile: Profile) -> Profile:
        extra = [
            User(u.username, u.secret, u.permitted, u.privileges)
            for f in sorted(self.faults)
            for u in FAULTS[f].extra_users
        ]
        return self.behaviour.profile(dataclasses.replace(profile, users=(*profile.users, *extra)))

    def _provision_tls(self, prof: Profile) -> Profile:
        """Copy the uploaded files under the UCM's names, or make a self-signed pair."""
        if not prof.settings.tls_enable:
            return prof
        cert, key = self.state_dir / CERT_NAME, self.state_dir / KEY_NAME
        if prof.tls.cert is not None and prof.tls.key is not None:
            shutil.copyfile(prof.tls.cert, cert)
            shutil.copyfile(prof.tls.key, key)
            key.chmod(0o600)
        else:
            write_cert_pair(cert, key, ca_path=self.state_dir / CA_NAME)
            self.generated_cert = True
            self.tls_ca_path = self.state_dir / CA_NAME
            log.warning(
                "TLS enabled without cert/key: serving a generated certificate (%s, CA %s)",
                cert, self.tls_ca_path,
            )
        if self.behaviour.damage_stored_cert is not None:
            self.behaviour.damage_stored_cert(cert, key)
        self.tls_cert_path, self.tls_key_path = cert, key
        return dataclasses.replace(prof, tls=dataclasses.replace(prof.tls, cert=cert, key=key))

    def _ssl_context(self) -> ssl.SSLContext:
        assert self.tls_cert_path is not None and self.tls_key_path is not None
        b = self.behaviour
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with warnings.catch_warnings():   # TLS 1.0 is deprecated: on purpose when a fault asks
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = b.tls_min_version
            ctx.maximum_version = b.tls_max_version
        ciphers = b.tls_ciphers
        if b.tls_security_level_0 and ciphers == COMPLIANT_CIPHERS:
            # Only the security level drops (so TLS 1.0/1.1 or an RSA-1024/SHA-1 certificate
            # can work); the suites stay forward-secret, so each fault is ONE deviation.
            # TLS 1.0/1.1 also need the (ECDHE) CBC suites; nothing else widens the list.
            legacy = b.tls_min_version < ssl.TLSVersion.TLSv1_2
            ciphers += _LEGACY_SUITES if legacy else ":@SECLEVEL=0"
        if b.tls_dh_params is not None and "@SECLEVEL" not in ciphers:
            ciphers += ":@SECLEVEL=1"  # level 2 (Debian's default) refuses DH-1024
        ctx.set_ciphers(ciphers)
        if b.tls_dh_params is not None:
            dh = self.state_dir / "dhparams.pem"
            dh.write_bytes(b.tls_dh_params)
            ctx.load_dh_params(str(dh))  # the DHE suites of COMPLIANT_CIPHERS come alive
        if b.served_cert_cn is not None:
            other = self.state_dir / "served"
            other.mkdir(exist_ok=True)
            write_cert_pair(other / CERT_NAME, other / KEY_NAME, common_name=b.served_cert_cn)
            ctx.load_cert_chain(other / CERT_NAME, other / KEY_NAME)
        else:
            ctx.load_cert_chain(self.tls_cert_path, self.tls_key_path)
        return ctx

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc_type is None:
            self.check_errors()

    def start(self) -> Simulator:
        """Bind the listeners and serve on a background thread; returns self."""
        if self._thread is not None:
            return self
        if not self.state_dir.exists():   # restarted after stop(): lay out the files again
            self.state_dir.mkdir(parents=True)
            users = self.profile.users
            self.profile = dataclasses.replace(self._provision_tls(self._effective), users=users)
        self._servers = []
        ready: Future[None] = Future()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                ready.set_exception(exc)
                loop.close()
                return
            ready.set_result(None)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._close())
                loop.close()

        self._thread = threading.Thread(target=run, name="amicheck-sim", daemon=True)
        self._thread.start()
        try:
            ready.result(timeout=_START_TIMEOUT)
        except (OSError, OverflowError) as exc:
            self._thread.join(5)
            self._thread = None
            self._cleanup_state()
            raise SimulatorError(f"simulator could not listen on {self.host}: {exc}") from exc
        except BaseException:
            self._thread.join(5)
            self._thread = None
            self._cleanup_state()
            raise
        return self

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._loop_exception)
        core = SimCore(
            loop,
            self.profile,
            self.faults,
            seed=self.seed,
            fail_delay=self.fail_delay,
            errors=self.errors,
            behaviour=self.behaviour,
        )
        self._core = core
        b = self.behaviour
        settings = self.profile.settings
        if not b.serves_plaintext(self.profile):
            # TLS only: the plaintext port is a reserved number nobody listens on
            self._reserved_plain = self._reserve(self._want_port)
            self.port = self._reserved_plain.getsockname()[1]
        else:
            plain = await loop.create_server(lambda: AmiSession(core), self.host,
                                             self._want_port, backlog=_BACKLOG)
            self._servers.append(plain)
            self.port = plain.sockets[0].getsockname()[1]
        if settings.tls_enable:
            srv = await loop.create_server(self._tls_factory(core), self.host,
                                           self._want_tls_port, backlog=_BACKLOG)
            self._servers.append(srv)
            self.tls_port = srv.sockets[0].getsockname()[1]
        if b.stock_port_open:
            want = settings.stock_port if self._fixed_ports else 0
            srv = await loop.create_server(lambda: AmiSession(core), self.host, want,
                                           backlog=_BACKLOG)
            self._servers.append(srv)
            self.stock_port = srv.sockets[0].getsockname()[1]
        elif self._fixed_ports:
            self.stock_port = settings.stock_port  # nothing listens there: refused
        else:
            # Reserve a port number without listening: connecting to it is refused.
            self._reserved = self._reserve(0)
            self.stock_port = self._reserved.getsockname()[1]

    def _tls_factory(self, core: SimCore) -> Callable[[], asyncio.Protocol]:
        """The TLS port's protocol: a bounded, deadlined handshake, then an AMI session
        (a plaintext AMI session when the behaviour says the TLS port does no TLS)."""
        if not self.behaviour.tls_on_tls_port:
            return lambda: AmiSession(core)
        ctx = self._ssl_context()
        pending = self._pending_tls
        timeout = self.tls_handshake_timeout

        def gate() -> asyncio.Protocol:
            return TlsGate(ctx, pending, lambda: AmiSession(core, tls=True), timeout)

        return gate

    def _reserve(self, port: int) -> socket.socket:
        """A bound, non-listening socket: the port number is ours, connections are refused."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.bind((self.host, port))
        return sock

    async def _close(self) -> None:
        for srv in self._servers:
            srv.close()
        self._pending_tls.drop_all()
        if self._core is not None:
            for sess in list(self._core.sessions):
                sess.abort()
        for srv in self._servers:
            try:
                await asyncio.wait_for(srv.wait_closed(), 2.0)
            except TimeoutError:
                pass
        self._servers.clear()
        await asyncio.sleep(0)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        # a peer vanishing mid-handshake or mid-write is the peer's business, not a bug
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError)):
            return
        if exc is None:
            log.debug("event loop: %s", context.get("message"))
            return
        self.errors.append(exc)

    def stop(self) -> None:
        """Close every session and listener and join the thread (idempotent)."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        for sock in (self._reserved, self._reserved_plain):
            if sock is not None:
                sock.close()
        self._reserved = self._reserved_plain = None
        self._cleanup_state()

    def _cleanup_state(self) -> None:
        if self._own_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def check_errors(self) -> None:
        """Re-raise the first exception raised inside the simulator, then forget them all."""
        if self.errors:
            first = self.errors[0]
            self.errors.clear()
            raise SimulatorError(f"simulator raised: {first!r}") from first

    # -- runtime control (thread-safe) ------------------------------------------------------
    def _call(self, fn: Callable[[], _T]) -> _T:
        if self._loop is None or self._thread is None:
            raise SimulatorError("simulator is not running (use it as a context manager)")
        fut: Future[_T] = Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                fut.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return fut.result(timeout=10)

    def add_user(self, user: User) -> None:
        """Provision a user at runtime (UCM rules apply unless a fault disables them)."""
        problems = [
            f"{f.path}: {f.message}"
            for f in check_user(user, disabled=self._disabled)
            if f.is_error
        ]
        if problems:
            raise ProfileError(f"user {user.username!r}", problems)
        users = tuple(
            u for u in self.profile.users if u.username.lower() != user.username.lower()
        ) + (user,)
        self._set_users(users)

    def remove_user(self, name: str) -> None:
        """Remove a user (case-insensitive); sessions already logged in stay."""
        users = tuple(u for u in self.profile.users if u.username.lower() != name.lower())
        if len(users) == len(self.profile.users):
            raise KeyError(f"no user {name!r} in the simulator's profile")
        self._set_users(users)

    def _set_users(self, users: tuple[User, ...]) -> None:
        self.profile = dataclasses.replace(self.profile, users=users)
        core = self._core
        if core is not None and self._loop is not None and self._thread is not None:
            prof = self.profile

            def apply() -> None:
                core.profile = prof
                core.set_users(users)

            self._call(apply)

    def reset(self) -> None:
        """Close every session, clear crash state and reset the PBX (users stay as set)."""
        core = self._core
        if core is not None:
            self._call(lambda: core.reset_sessions())

    def emit(self, event: Message, classes: Iterable[str]) -> None:
        """Broadcast an event as the PBX would (tests of filtering, write timeout)."""
        core = self._core
        if core is None:
            raise SimulatorError("simulator is not running")
        cls = frozenset(classes)
        self._call(lambda: core.emit(event, cls))

    def call(self, fn: Callable[[SimCore], _T]) -> _T:
        """Run ``fn(core)`` on the simulator's loop and return its result (tests, tools)."""
        core = self._core
        if core is None:
            raise SimulatorError("simulator is not running")
        return self._call(lambda: fn(core))

    @property
    def pending_tls_handshakes(self) -> tuple[int, int]:
        """(TLS connections waiting for their handshake now, dropped so far as the oldest)."""
        pending = self._pending_tls
        if self._loop is None or self._thread is None:
            return len(pending), pending.dropped
        return self._call(lambda: (len(pending), pending.dropped))

    @property
    def session_count(self) -> int:
        """Open sessions right now."""
        core = self._core
        return 0 if core is None else len(core.sessions)

    def __repr__(self) -> str:
        faults = ",".join(sorted(self.faults)) or "none"
        return f"<Simulator {self.host}:{self.port} tls={self.tls_port} faults={faults}>"
