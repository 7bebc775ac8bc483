"""The live progress line of a fleet run, on stderr.

On a terminal one line is redrawn in place (at most a few times a second); elsewhere (CI logs)
each finished target prints one plain line, and a heartbeat line appears when nothing has
finished for a while, so a CI job that kills silent jobs sees the run is alive.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TextIO

from amicheck.fleet.model import TargetStatus
from amicheck.fleet.runner import Job

__all__ = ["Progress"]

_REDRAW_S = 0.25
_HEARTBEAT_S = 60.0


class Progress:
    """Callable as the runner's progress hook."""

    def __init__(self, stream: TextIO, *, tty: bool | None = None,
                 heartbeat_s: float = _HEARTBEAT_S) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.heartbeat_s = heartbeat_s
        self._seen = 0
        self._last_draw = 0.0
        self._last_line = time.monotonic()
        self._width = 0
        self._drawn = ""

    @staticmethod
    def _failing(finished: Sequence[Job]) -> int:
        return sum(1 for j in finished if j.row is not None
                   and j.row.status is not TargetStatus.COMPLIANT)

    @staticmethod
    def _slowest(running: Sequence[Job], now: float) -> str:
        if not running:
            return ""
        job = max(running, key=lambda j: j.elapsed(now))
        return f"; slowest in flight: {job.target.name} ({job.elapsed(now):.0f} s)"

    def status_line(self, finished: Sequence[Job], running: Sequence[Job], total: int) -> str:
        now = time.monotonic()
        return (f"fleet: {len(finished)}/{total} done, {self._failing(finished)} failing, "
                f"{len(running)} running{self._slowest(running, now)}")

    def __call__(self, finished: Sequence[Job], running: Sequence[Job], total: int) -> None:
        now = time.monotonic()
        if self.tty:
            if now - self._last_draw < _REDRAW_S and len(finished) == self._seen:
                return
            self._seen = len(finished)
            self._last_draw = now
            line = self.status_line(finished, running, total)
            if line == self._drawn:
                return
            self._drawn = line
            pad = max(0, self._width - len(line))
            self._width = len(line)
            self.stream.write("\r" + line + " " * pad)
            self.stream.flush()
            return
        for index, job in enumerate(finished[self._seen:], start=self._seen + 1):
            row = job.row
            assert row is not None
            what = row.status.value.upper()
            if row.error:
                what += f": {row.error}"
            else:
                from amicheck.report.model import Outcome

                what += (f" ({row.count(Outcome.FAIL)} failed, {row.count(Outcome.ERROR)} "
                         "errors)")
            self.stream.write(f"fleet: [{index}/{total}] {job.target.name} "
                              f"{what} in {row.duration:.1f} s"
                              f"{self._slowest(running, now)}\n")
            self._last_line = now
        self._seen = len(finished)
        if running and now - self._last_line > self.heartbeat_s:
            self.stream.write(self.status_line(finished, running, total) + "\n")
            self._last_line = now
        self.stream.flush()

    def close(self) -> None:
        """End the redrawn line (terminal only)."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
