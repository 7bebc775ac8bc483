"""Hostile peers against the simulator (issue 10 points 4 and 5), as real loopback clients.

- Idle connections on the TLS port (no ClientHello) are bounded: at most
  MAX_PENDING_HANDSHAKES wait, the oldest is dropped first, a handshake has a deadline, and
  a fresh TLS login still gets in; RSS of an ``amicheck sim`` process stays under 200 MB.
- One client's pipelined burst of event-generating actions, with many listeners, does not
  keep a fresh client from logging in within 1 s (per-turn action budget).

The simulator runs in its own process where timing or memory is measured, and the
listeners are drained by another process, so the test process's GIL is not what is measured.
"""

from __future__ import annotations

import multiprocessing as mp
import re
import selectors
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.synchronize import Event as MpEvent

import pytest
from test_sim_core_kit import SECRET, Conn, make_profile, sim_running

from amicheck.sim.tlsgate import MAX_PENDING_HANDSHAKES

LOGIN = b"Action: Login\r\nUsername: ucmamiuser1\r\nSecret: Ucm4mi-All1\r\n\r\n"
QUIET_LOGIN = LOGIN.replace(b"\r\n\r\n", b"\r\nEvents: off\r\n\r\n")
RSS_LIMIT_MB = 200.0


def _tls_client() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@contextmanager
def _sim_process() -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """``amicheck sim`` (default profile, TLS on) on ephemeral ports: (proc, port, tls_port)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "amicheck", "sim", "--port", "0", "--tls-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"on 127\.0\.0\.1:(\d+), TLS on 127\.0\.0\.1:(\d+)", line)
        assert m, line
        yield proc, int(m[1]), int(m[2])
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _login(port: int, msg: bytes = LOGIN, *, tls: bool = False, timeout: float = 10.0
           ) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls:
        sock = _tls_client().wrap_socket(sock)
    sock.sendall(msg)
    buf = b""
    while b"Authentication accepted" not in buf:
        data = sock.recv(65536)
        assert data, f"closed before the login was accepted: {buf[-200:]!r}"
        buf += data
    return sock


def _timed_login(port: int, *, tls: bool = False, timeout: float = 10.0) -> float:
    t0 = time.monotonic()
    _login(port, QUIET_LOGIN, tls=tls, timeout=timeout).close()
    return time.monotonic() - t0


# -- pending TLS handshakes --------------------------------------------------------------------

def test_idle_tls_connections_are_bounded_oldest_first() -> None:
    profile = make_profile(tls_enable=True)
    with sim_running(profile) as sim:
        assert sim.tls_port is not None
        idle = [socket.create_connection((sim.host, sim.tls_port), timeout=5) for _ in range(200)]
        try:
            deadline = time.monotonic() + 10
            while sim.pending_tls_handshakes[1] < 200 - MAX_PENDING_HANDSHAKES:
                assert time.monotonic() < deadline, sim.pending_tls_handshakes
                time.sleep(0.05)
            pending, dropped = sim.pending_tls_handshakes
            assert pending <= MAX_PENDING_HANDSHAKES
            assert dropped == 200 - MAX_PENDING_HANDSHAKES
            idle[0].settimeout(2)
            assert idle[0].recv(1) == b"", "the oldest idle connection was not dropped"
            idle[-1].settimeout(0.2)
            with pytest.raises(TimeoutError):   # the newest still waits for its handshake
                idle[-1].recv(1)
            t0 = time.monotonic()
            with Conn(sim.host, sim.tls_port, tls=_tls_client()) as c:
                assert c.login("ucmamiuser1", SECRET)["Message"] == "Authentication accepted"
            assert time.monotonic() - t0 < 2.0
        finally:
            for s in idle:
                s.close()


def test_tls_handshake_deadline() -> None:
    with sim_running(make_profile(tls_enable=True), tls_handshake_timeout=0.5) as sim:
        assert sim.tls_port is not None
        with socket.create_connection((sim.host, sim.tls_port), timeout=5) as s:
            t0 = time.monotonic()
            assert s.recv(1) == b""
            assert 0.3 < time.monotonic() - t0 < 3.0
        assert sim.pending_tls_handshakes[0] == 0


def _idle_tls_rss(n: int) -> tuple[float, float, float, float]:
    """(baseline, with n idle, after a fresh login, after they drop) RSS in MB, and
    asserts the fresh TLS login succeeds within 2 s."""
    with _sim_process() as (proc, _port, tls_port):
        time.sleep(0.3)
        base = _rss_mb(proc.pid)
        idle = [socket.create_connection(("127.0.0.1", tls_port), timeout=5) for _ in range(n)]
        try:
            time.sleep(1.0)
            peak = _rss_mb(proc.pid)
            took = _timed_login(tls_port, tls=True, timeout=5)
            assert took < 2.0, f"fresh TLS login took {took:.2f} s with {n} idle connections"
            after_login = _rss_mb(proc.pid)
        finally:
            for s in idle:
                s.close()
        time.sleep(1.0)
        return base, peak, after_login, _rss_mb(proc.pid)


def test_idle_tls_connections_memory_short() -> None:
    base, peak, after_login, dropped = _idle_tls_rss(200)
    assert max(peak, after_login, dropped) < RSS_LIMIT_MB, (base, peak, after_login, dropped)


@pytest.mark.full
@pytest.mark.slow
def test_idle_tls_connections_memory_1000() -> None:
    base, peak, after_login, dropped = _idle_tls_rss(1000)
    print(f"RSS MB: baseline {base:.1f}, 1000 idle {peak:.1f}, after login {after_login:.1f}, "
          f"after drop {dropped:.1f}")
    assert max(peak, after_login) < RSS_LIMIT_MB
    assert dropped <= peak + 10, "memory kept growing after the idle connections dropped"


# -- fairness ----------------------------------------------------------------------------------

def _listen(port: int, n: int, ready: MpEvent, done: MpEvent) -> None:
    """Child process: n logged-in listeners with events on, drained until ``done``."""
    socks = [_login(port) for _ in range(n)]
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    ready.set()
    while not done.is_set():
        for key, _ in sel.select(0.1):
            try:
                data = key.fileobj.recv(1 << 20)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj)


def _flood_login_times(listeners: int, burst: int, flooders: int) -> list[float]:
    with _sim_process() as (_proc, port, _tls):
        ctx = mp.get_context("fork")
        ready, done = ctx.Event(), ctx.Event()
        child = ctx.Process(target=_listen, args=(port, listeners, ready, done), daemon=True)
        child.start()
        try:
            assert ready.wait(60), "listeners did not log in"
            floods = [_login(port, QUIET_LOGIN) for _ in range(flooders)]
            data = b"".join(b"Action: UserEvent\r\nUserEvent: Flood\r\nSeq: %d\r\n\r\n" % i
                            for i in range(burst))
            for f in floods:
                f.sendall(data)
            time.sleep(0.05)
            times = [_timed_login(port, timeout=5) for _ in range(3)]
            for f in floods:
                f.close()
            return times
        finally:
            done.set()
            child.join(10)
            if child.is_alive():
                child.kill()


def test_burst_does_not_starve_a_login_short() -> None:
    times = _flood_login_times(listeners=100, burst=400, flooders=1)
    assert max(times) < 1.0, f"fresh logins during the flood took {times} s"


@pytest.mark.full
@pytest.mark.slow
def test_burst_does_not_starve_a_login_200_listeners() -> None:
    times = _flood_login_times(listeners=200, burst=1000, flooders=2)
    print(f"fresh login during the flood: {[round(t * 1000) for t in times]} ms")
    assert max(times) < 1.0, f"fresh logins during the flood took {times} s"
