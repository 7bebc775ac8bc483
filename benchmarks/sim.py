"""``python -m benchmarks sim``: amicheck's Simulator against a minimal asyncio Ping server.

Same event-loop-in-a-thread setup for both: 1,000 concurrent logged-in sessions, pipelined
Ping throughput, sequential Ping p50.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from amicheck.stats import percentile
from benchmarks.client import ping_rows
from benchmarks.servers import AsyncioFloor

__all__ = ["SessionsResult", "bench_sim"]


@dataclass(frozen=True, slots=True)
class SessionsResult:
    """Concurrent sessions against one server: open+login time, sessions alive, Ping-all time."""

    name: str
    open_s: float
    alive: int
    ping_s: float


def _out(line: str = "") -> None:
    print(line, flush=True)


def _raise_nofile(need: int) -> str:
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return "unknown"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return str(soft)


def _sessions(host: str, port: int, n: int, login: tuple[str, str]) -> tuple[float, int, float]:
    """Open ``n`` logged-in sessions, then Ping every one; returns (open s, alive, ping s)."""
    from amicheck.client import AmiClient

    clients: list[AmiClient] = []
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            c = AmiClient.connect(host, port, timeout=20, record=False)
            clients.append(c)
            c.login(*login, events=False)
        t_open = time.perf_counter() - t0
        t0 = time.perf_counter()
        ids = [(c, c.send("Ping")) for c in clients]
        alive = 0
        for c, aid in ids:
            try:
                if c.wait_response(aid, 20).ok:
                    alive += 1
            except Exception:
                pass
        return t_open, alive, time.perf_counter() - t0
    finally:
        for c in clients:
            c.close()


def bench_sim(quick: bool = False) -> int:
    try:
        from amicheck.profile import default_profile
        from amicheck.sim import Simulator
    except ImportError as exc:
        _out(f"== amicheck bench sim: simulator not available ({exc})")
        return 1
    n_sessions = 50 if quick else 1_000
    n_seq = 300 if quick else 5_000
    n_pipe = 1_000 if quick else 30_000
    window = 200
    limit = _raise_nofile(2 * n_sessions + 256)

    profile = default_profile()
    # TLS off: the benchmark measures AMI over TCP and needs no certificate
    profile = dataclasses.replace(
        profile, settings=dataclasses.replace(profile.settings, tls_enable=False))
    user = next(u for u in profile.users if "all" in u.privileges)
    assert user.secret is not None
    login = (user.username, user.secret)
    _out(f"== amicheck bench sim: Simulator vs a minimal asyncio Ping server, both in this "
         f"process; {n_sessions:,} sessions, {n_seq:,} sequential Pings, {n_pipe:,} pipelined "
         f"({window} in flight); RLIMIT_NOFILE {limit}")
    floor = AsyncioFloor()
    try:
        with Simulator(profile, host="127.0.0.1", port=0, tls_port=None) as sim:
            rows = [SessionsResult(name, *_sessions(host, port, n_sessions, login))
                    for name, host, port in (("asyncio floor", "127.0.0.1", floor.port),
                                             ("amicheck Simulator", sim.host, sim.port))]
            _out(f"{'concurrent sessions':<24}{'opened+login s':>16}{'alive':>12}"
                 f"{'Ping all s':>12}")
            for r in rows:
                _out(f"{r.name:<24}{r.open_s:>16.2f}{f'{r.alive}/{n_sessions}':>12}"
                     f"{r.ping_s:>12.3f}")
            res_floor = ping_rows("127.0.0.1", floor.port, n_seq, n_pipe, window, login)
            res_sim = ping_rows(sim.host, sim.port, n_seq, n_pipe, window, login)
            sim.check_errors()
    finally:
        floor.close()
    _out(f"{'Ping against':<22}{'raw client':>25}{'AmiClient':>25}")
    _out(f"{'':<22}{'p50 us':>9}{'pipelined/s':>16}{'p50 us':>9}{'pipelined/s':>16}")
    for name, res in (("asyncio floor", res_floor), ("amicheck Simulator", res_sim)):
        _out(f"{name:<22}{percentile(res.lat_raw, 50) * 1e6:>9.1f}{res.pipe_raw:>16,.0f}"
             f"{percentile(res.lat_cli, 50) * 1e6:>9.1f}{res.pipe_cli:>16,.0f}")
    seq_raw = percentile(res_sim.lat_raw, 50) / percentile(res_floor.lat_raw, 50)
    seq_cli = percentile(res_sim.lat_cli, 50) / percentile(res_floor.lat_cli, 50)
    pipe_raw = res_sim.pipe_raw / res_floor.pipe_raw
    pipe_cli = res_sim.pipe_cli / res_floor.pipe_cli
    held = rows[1].alive
    _out(f"Simulator: {held}/{n_sessions} sessions held (target all); pipelined "
         f"{pipe_raw:.2f}x the floor with a raw client, {pipe_cli:.2f}x with AmiClient "
         f"(target >= 0.5); sequential p50 {seq_raw:.2f}x / {seq_cli:.2f}x (target <= 2)")
    return 0 if held == n_sessions else 1
