"""``python -m benchmarks parser``: amicheck's Parser against the split floor and the libraries.

The stream is benchmarks.stream's (>= 100,000 packets, ~500 bytes on average, large
ChanVariable events and command output among small events). Measured in ONE process,
rounds interleaved (floor, then every chunk size, then again), the MIN of the rounds kept:
on a shared machine noise only ever adds time, so the minimum is the best estimate and
ratios computed within the same run are what compare across machines. Times are the
process's CPU time, which a busy neighbour cannot inflate by descheduling us.

Then linearity (one 2 MB command output vs 2 MB of small events, 1460-byte chunks) and
memory (100 MB of an endless header block in 64 KB chunks: the Parser's buffer stays under
``max_message_size``).
"""

from __future__ import annotations

import gc
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from benchmarks.libraries import Driver, amicheck_driver, libraries, split_floor
from benchmarks.stream import BANNER, big_follows, chunked, generate_stream, small_events

__all__ = ["ParserResult", "bench_parser", "CHUNK_SIZES", "TARGETS"]

#: 536: the minimum IPv4 MSS; 1460: one Ethernet TCP segment; up to one 64 KB read.
CHUNK_SIZES = (536, 1460, 4096, 16384, 65536)
#: The issue's targets, x the split floor's time in the same run.
TARGETS = {536: 1.5, 1460: 1.2, 4096: 1.2, 16384: 1.2, 65536: 1.2}


@dataclass(frozen=True, slots=True)
class ParserResult:
    """One row of the parser table."""

    name: str
    chunk: str
    seconds: float
    packets: int
    note: str = ""


def _out(line: str = "") -> None:
    print(line, flush=True)


def _clock() -> float:
    return time.process_time()


def _min_times(fns: dict[str, Callable[[], int]], rounds: int) -> dict[str, tuple[float, int]]:
    """Min time and last result of each function, rounds interleaved across functions."""
    best: dict[str, tuple[float, int]] = {}
    for _ in range(rounds):
        for key, fn in fns.items():
            gc.collect()
            t0 = _clock()
            n = fn()
            dt = _clock() - t0
            if key not in best or dt < best[key][0]:
                best[key] = (dt, n)
    return best


def _table(rows: list[ParserResult], size: int, floor: float, expected: int) -> None:
    _out(f"{'parser':<34}{'chunk':>7}{'time s':>9}{'packets/s':>12}{'MB/s':>8}"
         f"{'x floor':>9}{'target':>8}{'packets':>9}")
    for r in rows:
        pps = r.packets / r.seconds if r.seconds else 0.0
        mbs = size / r.seconds / 1e6 if r.seconds else 0.0
        mark = "" if r.packets == expected else "  (!)"
        target = TARGETS.get(int(r.chunk)) if r.chunk.isdigit() and "amicheck" in r.name else None
        tgt = f"<={target}" if target else ""
        _out(f"{r.name:<34}{r.chunk:>7}{r.seconds:>9.3f}{pps:>12,.0f}{mbs:>8.1f}"
             f"{r.seconds / floor:>9.2f}{tgt:>8}{r.packets:>9}{mark}")


def bench_parser(quick: bool = False, rounds: int | None = None, seed: int = 13) -> int:
    """The parser benchmark; returns 0 if amicheck's Parser counted every packet."""
    packets = 3_000 if quick else 100_000
    rounds = rounds or (1 if quick else 7)
    lib_rounds = 1 if quick else 3
    t0 = time.perf_counter()
    stream = generate_stream(packets, seed)
    data = stream.data
    _out(f"== amicheck bench parser: {stream.packets:,} packets, {len(data) / 1e6:.1f} MB, "
         f"{len(data) / stream.packets:.0f} bytes/packet on average (follows {stream.follows}, "
         f"list packets {stream.list_packets}, ChanVariable events "
         f"{stream.chanvariable_packets}); min of {rounds} interleaved round(s) "
         f"({lib_rounds} for libraries), CPU time; Python {platform.python_version()}; "
         f"generated in {time.perf_counter() - t0:.1f}s")
    ami = amicheck_driver()
    fns: dict[str, Callable[[], int]] = {"floor": lambda: split_floor(data)}
    for size in CHUNK_SIZES:
        fns[str(size)] = partial(ami.run, chunked(data, size))
    best = _min_times(fns, rounds)
    floor_t, floor_n = best["floor"]
    rows = [ParserResult("split floor (whole, no checks)", "all", floor_t, floor_n)]
    rows += [ParserResult(ami.name, str(s), *best[str(s)]) for s in CHUNK_SIZES]
    ok = all(r.packets == stream.packets for r in rows)
    libs = libraries(4096)
    chunks4k = chunked(data, 4096)
    for lib in libs:
        try:
            t, n = _min_times({"lib": partial(lib.run, chunks4k)}, lib_rounds)["lib"]
        except Exception as exc:  # a library crashing is a result, not our failure
            lib.errors.append(f"crashed: {type(exc).__name__}: {exc}")
            continue
        rows.append(ParserResult(lib.name, "4096", t, n, lib.note))
    _table(rows, len(data), floor_t, stream.packets)
    ratios = {s: best[str(s)][0] / floor_t for s in CHUNK_SIZES}
    met = all(ratios[s] <= TARGETS[s] for s in CHUNK_SIZES)
    _out("Parser time x split floor: "
         + ", ".join(f"{s}: {ratios[s]:.2f}" for s in CHUNK_SIZES)
         + f" (targets 1.5 at 536, 1.2 from 1460): {'met' if met else 'NOT met'}")
    bad = [r for r in rows if r.packets != stream.packets]
    if not bad:
        _out(f"packet counts: every parser produced {stream.packets:,} packets")
    else:
        _out(f"packet counts: expected {stream.packets:,}; these differ:")
        for r in bad:
            _out(f"  {r.name}: {r.packets:,} ({r.packets - stream.packets:+,})"
                 + (f" - {r.note}" if r.note else ""))
    for lib in libs:
        for e in lib.errors:
            _out(f"  {lib.name}: {e}")
    _linearity(quick, libs_for=libraries(1460))
    _memory(quick)
    return 0 if ok else 1


def _linearity(quick: bool, libs_for: list[Driver]) -> None:
    size = 256 * 1024 if quick else 2 * 1024 * 1024
    big = big_follows(size)
    small = small_events(size)
    big_chunks = chunked(big.data, 1460)
    small_chunks = chunked(small.data, 1460)
    _out(f"\n== linearity: one {len(big.data) / 1e6:.1f} MB command output vs "
         f"{len(small.data) / 1e6:.1f} MB of {small.packets:,} small events, 1460-byte chunks")
    _out(f"{'parser':<34}{'big s':>9}{'small s':>9}{'big/small':>11}{'packets':>10}")
    for d in [amicheck_driver()] + libs_for:
        try:
            best = _min_times({"big": partial(d.run, big_chunks),
                               "small": partial(d.run, small_chunks)}, 1)
        except Exception as exc:
            _out(f"{d.name:<34} crashed: {type(exc).__name__}: {exc}")
            continue
        (tb, nb), (ts, ns) = best["big"], best["small"]
        _out(f"{d.name:<34}{tb:>9.3f}{ts:>9.3f}{tb / ts:>11.2f}{f'{nb}/{ns}':>10}")


def _memory(quick: bool) -> None:
    from amicheck.protocol import Parser

    total = 4 * 1024 * 1024 if quick else 100 * 1024 * 1024
    bound = 1024 * 1024 if quick else 8 * 1024 * 1024
    chunk = (b"X-Junk: " + b"a" * 120 + b"\r\n") * (65536 // 130)
    p = Parser(max_message_size=bound)
    p.feed(BANNER + b"Event: Endless\r\n")
    fed = 0
    peak = 0
    msgs = 0
    t0 = time.perf_counter()
    while fed < total:
        msgs += len(p.feed(chunk))
        fed += len(chunk)
        peak = max(peak, p.buffered)
    dt = time.perf_counter() - t0
    verdict = "under" if peak <= bound else "OVER"
    _out(f"\n== memory: {fed / 2**20:.0f} MiB of one endless header block in 64 KB chunks: "
         f"peak parser buffer {peak:,} bytes, {verdict} max_message_size "
         f"{bound:,}; {msgs} messages, {p.violation_count} violation(s) "
         f"({', '.join(sorted({v.rule for v in p.violations})) or 'none'}); {dt:.2f}s")
