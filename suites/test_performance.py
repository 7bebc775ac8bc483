"""AMI-PRF: the target's Ping latency, pipelined throughput, and an event burst parsed by
amicheck, against the profile's ``[thresholds]``. The numbers and the latency samples go to
the report (``ami_metric``) and its chart, pass or fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from amicheck.client import AmiClient
from amicheck.errors import AmiCheckError
from amicheck.profile import Profile
from amicheck.protocol import Message, Parser

from ._support import BULK_TIMEOUT, STEP_TIMEOUT, collect, describe, percentile

PING_COUNT = 100
PING_WARMUP = 5
PIPELINE_COUNT = 500
EVENT_COUNT = 100
#: The event burst must arrive at least this fast (events per second, round trips included).
EVENT_MIN_PER_S = 100.0
#: Parse at least this many bytes to measure the parser (the burst is repeated).
PARSE_BYTES = 2 * 1024 * 1024
#: Fed in network-sized reads, best of this many runs.
PARSE_CHUNK = 64 * 1024
PARSE_RUNS = 3

Metric = Callable[..., None]


@pytest.mark.requirement("AMI-PRF-001")
def test_ping_latency(ami_client: AmiClient, ami_profile: Profile, ami_metric: Metric) -> None:
    """Ping round trips: p50, p95 and p99 over a fixed count stay within the thresholds."""
    t = ami_profile.thresholds
    samples: list[float] = []
    # The whole series may take twice what PING_COUNT pings at the p99 limit would.
    budget = max(1.0, 2.0 * PING_COUNT * t.ping_p99_ms / 1000.0)
    start_all = time.perf_counter()
    for i in range(PING_WARMUP + PING_COUNT):
        start = time.perf_counter()
        try:
            reply = ami_client.request("Ping", timeout=STEP_TIMEOUT)
        except AmiCheckError as exc:
            pytest.fail(f"Ping {i + 1}: {exc}")
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        if not reply.ok:
            pytest.fail(f"Ping {i + 1} answered {describe(reply.response)}")
        if i >= PING_WARMUP:
            samples.append(elapsed_ms)
        if time.perf_counter() - start_all > budget:
            break
    if not samples:
        pytest.fail(f"no Ping answered within the {budget:g} s budget")
    p50, p95, p99 = (percentile(samples, p) for p in (50, 95, 99))
    ami_metric("ping_latency_ms", p50, "ms", samples=samples)
    ami_metric("ping_p50_ms", p50, "ms")
    ami_metric("ping_p95_ms", p95, "ms")
    ami_metric("ping_p99_ms", p99, "ms")
    ami_metric("ping_max_ms", max(samples), "ms")
    over = [
        f"{name} {got:.2f} ms > {limit:g} ms"
        for name, got, limit in (
            ("p50", p50, t.ping_p50_ms),
            ("p95", p95, t.ping_p95_ms),
            ("p99", p99, t.ping_p99_ms),
        )
        if got > limit
    ]
    if len(samples) < PING_COUNT:
        over.insert(0, f"only {len(samples)} of {PING_COUNT} pings within the {budget:g} s budget")
    assert not over, f"Ping latency over {len(samples)} pings: " + ", ".join(over)


@pytest.mark.requirement("AMI-PRF-002")
def test_pipelined_throughput(
    ami_client: AmiClient, ami_profile: Profile, ami_metric: Metric
) -> None:
    """Pipelined Pings are answered at least ``pipeline_min_per_s`` per second."""
    minimum = ami_profile.thresholds.pipeline_min_per_s
    ids = [f"prf-pipe-{i}" for i in range(PIPELINE_COUNT)]
    burst = b"".join(bytes(Message.action("Ping", ActionID=aid)) for aid in ids)
    # Allow 4x the time the threshold implies (at least 2 s), then call it a failure.
    budget = min(BULK_TIMEOUT, max(2.0, 4.0 * PIPELINE_COUNT / minimum))
    start = time.perf_counter()
    try:
        ami_client.send_bytes(burst)
    except AmiCheckError as exc:
        pytest.fail(f"writing {PIPELINE_COUNT} pipelined Pings: {exc}")

    def done(msgs: list[Message]) -> bool:
        return sum(1 for m in msgs if m.get("Response")) >= PIPELINE_COUNT

    ex = collect(ami_client, done, timeout=budget)
    elapsed = time.perf_counter() - start
    answered = sum(1 for m in ex.responses() if m.get("ActionID") in set(ids))
    rate = answered / elapsed if elapsed > 0 else 0.0
    ami_metric("pipeline_actions_per_s", rate, "actions/s")
    assert answered == PIPELINE_COUNT, (
        f"only {answered} of {PIPELINE_COUNT} pipelined Pings answered in {elapsed:.2f} s "
        f"({ex.ending()})"
    )
    assert rate >= minimum, (
        f"pipelined throughput {rate:.0f} actions/s < thresholds.pipeline_min_per_s {minimum:g}"
    )


@pytest.mark.requirement("AMI-PRF-003")
def test_event_burst(ami_client: AmiClient, ami_profile: Profile, ami_metric: Metric) -> None:
    """A burst of events arrives fast enough, and amicheck parses the stream at least at
    ``parse_min_mb_per_s``."""
    minimum = ami_profile.thresholds.parse_min_mb_per_s
    budget = EVENT_COUNT / EVENT_MIN_PER_S
    marker = "AmicheckBurst"
    ami_client.drain_events()
    before = len(ami_client.received)
    start = time.perf_counter()
    deadline = start + budget
    for i in range(EVENT_COUNT):
        left = deadline - time.perf_counter()
        if left <= 0:
            pytest.fail(f"only {i} of {EVENT_COUNT} UserEvents answered within the {budget:g} s "
                        f"budget ({EVENT_MIN_PER_S:g} events/s)")
        try:
            reply = ami_client.request("UserEvent", UserEvent=marker, Seq=str(i), timeout=left)
        except AmiCheckError as exc:
            pytest.fail(f"UserEvent {i + 1} of {EVENT_COUNT} not answered within the "
                        f"{budget:g} s budget: {exc}")
        if not reply.ok:
            pytest.fail(f"UserEvent answered {describe(reply.response)}")

    early = sum(1 for e in ami_client.drain_events() if e.get("UserEvent") == marker)

    def burst(msgs: list[Message]) -> int:
        return early + sum(1 for m in msgs if m.get("Event") and m.get("UserEvent") == marker)

    ex = collect(
        ami_client,
        lambda msgs: burst(msgs) >= EVENT_COUNT,
        timeout=max(0.2, deadline - time.perf_counter()),
    )
    elapsed = time.perf_counter() - start
    got = burst(ex.messages)
    rate = got / elapsed if elapsed > 0 else 0.0
    ami_metric("event_burst_per_s", rate, "events/s")
    assert got == EVENT_COUNT, (
        f"{got} of {EVENT_COUNT} UserEvents arrived within {elapsed:.2f} s "
        f"(budget {budget:g} s at {EVENT_MIN_PER_S:g} events/s)"
    )
    assert rate >= EVENT_MIN_PER_S, f"event burst {rate:.0f} events/s < {EVENT_MIN_PER_S:g}"

    stream = ami_client.received[before:]
    reps = max(1, PARSE_BYTES // max(1, len(stream)))
    data = stream * reps
    best = float("inf")
    parsed = 0
    for _ in range(PARSE_RUNS):  # CPU time of this thread, best of a few: the machine is shared
        parser = Parser(banner=False)
        t0 = time.thread_time()
        parsed = sum(
            len(parser.feed(data[i : i + PARSE_CHUNK])) for i in range(0, len(data), PARSE_CHUNK)
        )
        best = min(best, time.thread_time() - t0)
    mb_per_s = len(data) / (1024 * 1024) / best if best > 0 else float("inf")
    ami_metric("event_parse_mb_per_s", mb_per_s, "MB/s")
    assert parsed > 0, "the captured event stream parsed to nothing"
    assert mb_per_s >= minimum, (
        f"parsing the event stream ran at {mb_per_s:.1f} MB/s < "
        f"thresholds.parse_min_mb_per_s {minimum:g}"
    )
