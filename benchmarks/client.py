"""``python -m benchmarks client``: AmiClient against a raw-socket client, same Ping server.

The Ping server runs in a child process (see servers.PingServer). Sequential Ping latency
of AmiClient vs the raw-socket floor (interleaved ping by ping), CPU time per request, and
pipelined Pings/s (a window of outstanding requests).
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from amicheck.stats import percentile
from benchmarks.servers import PingServer, RawClient

if TYPE_CHECKING:
    from amicheck.client import AmiClient

__all__ = ["PingResult", "ping_rows", "print_ping", "bench_client"]


@dataclass(frozen=True, slots=True)
class PingResult:
    """Ping measurements against one server: the raw floor, AmiClient, AmiClient unrecorded.

    Attributes:
        lat_raw, lat_cli, lat_bare: sequential round trips in seconds.
        cpu_raw, cpu_cli, cpu_bare: this thread's CPU seconds per request.
        pipe_raw, pipe_cli, pipe_bare: pipelined Pings per second (median of 3).
    """

    lat_raw: tuple[float, ...]
    lat_cli: tuple[float, ...]
    lat_bare: tuple[float, ...]
    cpu_raw: float
    cpu_cli: float
    cpu_bare: float
    pipe_raw: float
    pipe_cli: float
    pipe_bare: float


def _out(line: str = "") -> None:
    print(line, flush=True)


def _client_pipelined(client: AmiClient, count: int, window: int) -> float:
    """Pings/s through AmiClient with ``window`` requests in flight."""
    t0 = time.perf_counter()
    inflight: deque[str] = deque()
    sent = 0
    while sent < min(window, count):
        inflight.append(client.send("Ping"))
        sent += 1
    while inflight:
        client.wait_response(inflight.popleft())
        if sent < count:
            inflight.append(client.send("Ping"))
            sent += 1
    return count / (time.perf_counter() - t0)


def _raw_pipelined(raw: RawClient, count: int, window: int) -> float:
    t0 = time.perf_counter()
    raw.pipelined(count, window)
    return count / (time.perf_counter() - t0)


def ping_rows(host: str, port: int, n_seq: int, n_pipe: int, window: int,
              login: tuple[str, str] | None = None) -> PingResult:
    """Measure the three clients against ``host:port`` (loopback)."""
    from amicheck.client import AmiClient

    raw = RawClient(port, host)
    if login:
        raw.login(*login)
    client = AmiClient.connect(host, port, timeout=10)
    bare = AmiClient.connect(host, port, timeout=10, record=False)
    if login:
        client.login(*login, events=False)
        bare.login(*login, events=False)
    try:
        for _ in range(min(200, n_seq)):  # warm up
            raw.ping()
            client.request("Ping")
            bare.request("Ping")
        # Interleave ping by ping: wake-up latency here is bimodal (about 20 or 70 us,
        # depending on which core the peer runs and how deeply it idled), and it shifts
        # within milliseconds; only adjacent samples see the same machine.
        lat_raw: list[float] = []
        lat_cli: list[float] = []
        lat_bare: list[float] = []
        clock = time.perf_counter
        cli_ping = client.request
        bare_ping = bare.request
        for _ in range(n_seq):
            t0 = clock()
            raw.ping()
            t1 = clock()
            cli_ping("Ping")
            t2 = clock()
            bare_ping("Ping")
            t3 = clock()
            lat_raw.append(t1 - t0)
            lat_cli.append(t2 - t1)
            lat_bare.append(t3 - t2)
        # CPU time of this thread per request: what the client itself costs, free of the
        # scheduler's wake-up noise that dominates loopback latency on a shared machine.
        cpu = time.thread_time
        cpus: list[float] = []
        for fn in (raw.ping, lambda: cli_ping("Ping"), lambda: bare_ping("Ping")):
            c0 = cpu()
            for _ in range(n_seq):
                fn()
            cpus.append((cpu() - c0) / n_seq)
        return PingResult(
            tuple(lat_raw), tuple(lat_cli), tuple(lat_bare), cpus[0], cpus[1], cpus[2],
            pipe_raw=statistics.median(_raw_pipelined(raw, n_pipe, window) for _ in range(3)),
            pipe_cli=statistics.median(
                _client_pipelined(client, n_pipe, window) for _ in range(3)),
            pipe_bare=statistics.median(
                _client_pipelined(bare, n_pipe, window) for _ in range(3)),
        )
    finally:
        raw.close()
        client.close()
        bare.close()


def print_ping(res: PingResult, floor_name: str) -> tuple[float, float]:
    """Print the Ping tables; returns (AmiClient p10 / floor p10, AmiClient pipelined/s)."""
    _out(f"{'sequential Ping':<34}{'p10 us':>8}{'p50 us':>8}{'p95 us':>8}{'x p10':>7}"
         f"{'x p50':>7}{'cpu us':>8}{'x cpu':>7}")
    p10_raw, p50_raw = percentile(res.lat_raw, 10), percentile(res.lat_raw, 50)
    rows = ((floor_name, res.lat_raw, res.cpu_raw),
            ("AmiClient (transcript on)", res.lat_cli, res.cpu_cli),
            ("AmiClient (record=False)", res.lat_bare, res.cpu_bare))
    for name, lat, cpu in rows:
        p10, p50 = percentile(lat, 10), percentile(lat, 50)
        _out(f"{name:<34}{p10 * 1e6:>8.1f}{p50 * 1e6:>8.1f}{percentile(lat, 95) * 1e6:>8.1f}"
             f"{p10 / p10_raw:>7.2f}{p50 / p50_raw:>7.2f}{cpu * 1e6:>8.1f}"
             f"{cpu / res.cpu_raw:>7.2f}")
    _out("  (loopback wake-up latency on a shared 2-core machine is bimodal, ~20 or ~70 us;"
         " p10 is the undisturbed round trip, cpu the client's own time per request)")
    _out(f"{'pipelined Ping':<34}{'per s':>10}{'x floor':>9}")
    for name, pps in ((floor_name, res.pipe_raw), ("AmiClient (transcript on)", res.pipe_cli),
                      ("AmiClient (record=False)", res.pipe_bare)):
        _out(f"{name:<34}{pps:>10,.0f}{pps / res.pipe_raw:>9.2f}")
    return percentile(res.lat_cli, 10) / p10_raw, res.pipe_cli


def bench_client(quick: bool = False) -> int:
    """The client benchmark (always 0: it measures, it does not judge)."""
    n_seq = 500 if quick else 10_000
    n_pipe = 2_000 if quick else 50_000
    window = 200
    server = PingServer()
    try:
        _out(f"== amicheck bench client: loopback raw-socket Ping server in a child process; "
             f"{n_seq:,} sequential Pings, {n_pipe:,} pipelined ({window} in flight), "
             "median of 3")
        res = ping_rows("127.0.0.1", server.port, n_seq, n_pipe, window)
        ratio, pps = print_ping(res, "raw socket floor")
        _out(f"AmiClient sequential p10 = {ratio:.2f}x the raw-socket floor (target <= 1.3x); "
             f"pipelined {pps:,.0f} Pings/s (target >= 10,000/s)")
    finally:
        server.close()
    return 0
