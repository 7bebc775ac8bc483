"""Helpers for the simulator-core tests: a raw loopback AMI connection and profile builders.

Imported by test_sim_core*.py, test_sim_fidelity*.py and test_sim_faults_core*.py (it holds
no tests itself). Every wait has a timeout.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from amicheck.profile import Profile, Settings, TlsFiles, User
from amicheck.protocol import Message, Parser
from amicheck.sim import Simulator

__all__ = ["Conn", "make_profile", "sim_running", "ALL_USER", "SECRET", "FAST_FAIL"]

SECRET = "Passw0rd-1"
FAST_FAIL = 0.05
LOCAL = "127.0.0.1/255.255.255.255"

ALL_USER = User("ucmamiuser1", SECRET, (LOCAL,), ("all",))


def make_profile(users: Iterable[User] = (), **settings: object) -> Profile:
    """A compliant test profile: TLS off unless asked, the given users (default: one 'all')."""
    base: dict[str, object] = {"tls_enable": False}
    base.update(settings)
    users = tuple(users) or (
        ALL_USER,
        User("reportuser1", SECRET, (LOCAL,), ("reporting",)),
        User("calluser01", SECRET, (LOCAL,), ("call",)),
        User("secuser001", SECRET, (LOCAL,), ("security",)),
        User("remoteonly1", SECRET, ("127.0.0.2/32",), ("all",)),
        User("emptyacl01", SECRET, (), ("all",)),
    )
    return Profile(settings=dataclasses.replace(Settings(), **base),  # type: ignore[arg-type]
                   tls=TlsFiles(), users=users)


@contextmanager
def sim_running(profile: Profile | None = None, faults: Iterable[str] = (),
                **kw: object) -> Iterator[Simulator]:
    """A started simulator with a short failed-login delay."""
    kw.setdefault("fail_delay", FAST_FAIL)
    with Simulator(profile or make_profile(), faults=tuple(faults), **kw) as sim:  # type: ignore[arg-type]
        yield sim


class Conn:
    """A raw client: bytes out, parsed messages (and raw bytes) in."""

    def __init__(self, host: str, port: int, *, source: str | None = None,
                 tls: ssl.SSLContext | None = None, timeout: float = 5.0,
                 rcvbuf: int | None = None) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source is not None:
            sock.bind((source, 0))
        sock.connect((host, port))
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.timeout = timeout
        self.parser = Parser()
        self.pending: list[Message] = []
        self.raw = bytearray()
        self.eof = False

    @classmethod
    def to(cls, sim: Simulator, **kw: object) -> Conn:
        return cls(sim.host, sim.port, **kw)  # type: ignore[arg-type]

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def action(self, name: str, **headers: str) -> None:
        lines = [f"Action: {name}"] + [f"{k}: {v}" for k, v in headers.items()]
        self.send("\r\n".join(lines) + "\r\n\r\n")

    def _recv(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.eof:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.raw += data
        self.pending += self.parser.feed(data)
        return True

    def banner(self) -> str | None:
        deadline = time.monotonic() + self.timeout
        while self.parser.banner is None and self._recv(deadline):
            pass
        return self.parser.banner

    def read(self, n: int = 1, timeout: float | None = None) -> list[Message]:
        """The next ``n`` messages; fewer if the time runs out or the peer closes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.pending) < n and self._recv(deadline):
            pass
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def one(self, timeout: float | None = None) -> Message:
        msgs = self.read(1, timeout)
        tail = bytes(self.raw[-200:])
        assert msgs, f"no message within the timeout (eof={self.eof}, raw tail={tail!r})"
        return msgs[0]

    def until(self, pred: object, timeout: float | None = None) -> Message:
        """Skip messages until one satisfies ``pred`` (callable)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            while self.pending:
                msg = self.pending.pop(0)
                if pred(msg):  # type: ignore[operator]
                    return msg
            if not self._recv(deadline):
                raise AssertionError(f"no matching message (eof={self.eof})")

    def quiet(self, timeout: float = 0.2) -> list[Message]:
        """Whatever arrives within ``timeout`` (used to show that nothing does)."""
        deadline = time.monotonic() + timeout
        while self._recv(deadline):
            pass
        out, self.pending = self.pending, []
        return out

    def closed(self, timeout: float | None = None) -> bool:
        """True once the server has closed the connection (reads drained)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.eof and self._recv(deadline):
            pass
        return self.eof

    def login(self, username: str = "ucmamiuser1", secret: str = SECRET,
              events: str | None = None) -> Message:
        self.banner()
        headers = {"Username": username, "Secret": secret}
        if events is not None:
            headers["Events"] = events
        self.action("Login", **headers)
        return self.until(lambda m: m.kind.value == "response")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
