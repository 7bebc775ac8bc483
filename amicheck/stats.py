"""Statistics shared by the suites, the reports and the benchmarks: one definition each.

A percentile computed two ways gives two answers (the p50 of ``[1, 2]`` is 1 by nearest
rank and 2 by ``int(q*n)``), so every p50/p95/p99 in amicheck comes from here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["percentile"]


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sample.

    Nearest rank returns a value that was observed, which is what a latency report should
    quote; ``percentile([1, 2], 50) == 1``.

    Raises:
        ValueError: no samples, or ``q`` outside 0..100 or not finite.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not (math.isfinite(q) and 0.0 <= q <= 100.0):
        raise ValueError(f"percentile q must be in 0..100, got {q!r}")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
