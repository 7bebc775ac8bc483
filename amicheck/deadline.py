"""One deadline helper for every network wait: how long is left, and what was awaited.

A wait that ends without what it waited for must say what that was ("the response to ping
(ActionID ac1-7)"), so the error is built here, from the same object that timed the wait
(style guide 6; pytest-httpserver's ``wait``).
"""

from __future__ import annotations

import math
import time

from amicheck.errors import AmiTimeoutError

__all__ = ["Deadline"]

_monotonic = time.monotonic


class Deadline:
    """A point in time ``timeout`` seconds from now, and the thing awaited until then.

    Args:
        timeout: seconds (finite, >= 0); ``None`` waits forever.
        what: what the wait is for, as it reads after "waiting for" ("the banner").
        waiting_for: the short label put on :class:`AmiTimeoutError` (defaults to ``what``).

    Raises:
        ValueError: ``timeout`` is negative, NaN or infinite (one clear line).
    """

    __slots__ = ("timeout", "what", "waiting_for", "_end")

    def __init__(self, timeout: float | None, what: str, *,
                 waiting_for: str | None = None) -> None:
        if timeout is not None and not (math.isfinite(timeout) and timeout >= 0):
            raise ValueError(f"timeout must be a finite number of seconds >= 0, got {timeout!r}")
        self.timeout = timeout
        self.what = what
        self.waiting_for = what if waiting_for is None else waiting_for
        self._end = None if timeout is None else _monotonic() + timeout

    def remaining(self) -> float:
        """Seconds left (0.0 once expired; ``math.inf`` without a timeout)."""
        end = self._end
        if end is None:
            return math.inf
        left = end - _monotonic()
        return left if left > 0 else 0.0

    @property
    def expired(self) -> bool:
        end = self._end
        return end is not None and _monotonic() >= end

    def message(self, peer: str = "", extra: str = "") -> str:
        """``timed out after 2s waiting for <what> from <peer><extra>``."""
        after = "" if self.timeout is None else f" after {self.timeout:g}s"
        source = f" from {peer}" if peer else ""
        return f"timed out{after} waiting for {self.what}{source}{extra}"

    def error(self, peer: str = "", extra: str = "") -> AmiTimeoutError:
        """The :class:`AmiTimeoutError` to raise when this deadline passed."""
        return AmiTimeoutError(self.message(peer, extra), peer=peer,
                               waiting_for=self.waiting_for)

    def __repr__(self) -> str:
        return f"<Deadline {self.what!r} {self.remaining():.3f}s left>"
