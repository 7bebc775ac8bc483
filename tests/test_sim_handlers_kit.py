"""A fake session core for unit tests of amicheck.sim.handlers and amicheck.sim.pbx.

No sockets and no sleeping: ``call_later`` pushes onto a heap that :meth:`Harness.run`
drains while advancing a fake clock, replies and events land in lists. Holds no tests.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections.abc import Callable, Iterable

from amicheck.profile import default_profile
from amicheck.protocol import Message, RequestParser
from amicheck.sim.faults import behaviour_for
from amicheck.sim.handlers import ActionContext, HandlerError, dispatch
from amicheck.sim.pbx import Pbx

__all__ = ["FakeLoop", "Harness", "raw_action", "names"]

#: The recording's clock (13-originate-events.txt, first Uniqueid 1795693513.4).
T0 = 1795693512.0


class FakeLoop:
    """call_later onto a heap; run() fires due callbacks in (time, insertion) order."""

    def __init__(self, t0: float = T0) -> None:
        self.t = t0
        self._q: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def call_later(self, delay: float, fn: Callable[[], None]) -> object:
        heapq.heappush(self._q, (self.t + delay, next(self._seq), fn))
        return None

    def run(self, seconds: float) -> None:
        end = self.t + seconds
        while self._q and self._q[0][0] <= end:
            t, _, fn = heapq.heappop(self._q)
            self.t = max(self.t, t)
            fn()
        self.t = end

    @property
    def pending(self) -> int:
        return len(self._q)


def raw_action(action: str, /, **headers: str) -> bytes:
    lines = [f"Action: {action}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def names(msgs: Iterable[Message]) -> list[str]:
    return [m.name or "" for m in msgs]


#: the banners of reference Asterisk 13.38 and 22.10 (the simulator's two dialects)
B13, B22 = "Asterisk Call Manager/2.10.6", "Asterisk Call Manager/11.0.0"
BANNERS = {"13": B13, "22": B22}


class Harness:
    """One PBX, a fake loop, and an ``act()`` that runs an action as a given user."""

    def __init__(self, seed: int = 0, privileges: Iterable[str] = ("all",),
                 faults: Iterable[str] = (), banner: str | None = None) -> None:
        self.loop = FakeLoop()
        self.events: list[Message] = []
        self.classes: list[frozenset[str]] = []
        self.replies: list[Message] = []
        self.errors: list[HandlerError] = []
        self.privileges = frozenset(privileges)
        self.faults = frozenset(faults)
        self.profile = default_profile()
        if banner is not None:  # the banner picks the dialect (B22: Asterisk 22's)
            settings = dataclasses.replace(self.profile.settings, banner=banner)
            self.profile = dataclasses.replace(self.profile, settings=settings)
        self.pbx = Pbx(seed, self.loop.call_later, self._emit, clock=lambda: self.loop.t)

    def _emit(self, msg: Message, classes: frozenset[str]) -> None:
        self.events.append(msg)
        self.classes.append(classes)

    def act(self, raw: bytes | str, *, privileges: Iterable[str] | None = None,
            faults: Iterable[str] | None = None, **headers: str) -> list[Message]:
        """Run one action (raw bytes, or a name plus headers); returns the replies it queued."""
        data = raw_action(raw, **headers) if isinstance(raw, str) else raw
        reqs = RequestParser().feed(data)
        assert len(reqs) == 1, data
        req = reqs[0]
        start = len(self.replies)
        names = self.faults if faults is None else frozenset(faults)
        ctx = ActionContext(
            session_id="0x7efc00001068", username="tester",
            privileges=self.privileges if privileges is None else frozenset(privileges),
            action_id=req.header("ActionID") or None,
            faults=names,
            behaviour=behaviour_for(names),
            profile=self.profile, pbx=self.pbx, reply=self.replies.append,
            local="IPV4/TCP/127.0.0.1/7777", remote="IPV4/TCP/127.0.0.1/40000", tls=False,
        )
        err = dispatch(ctx, req)
        if err is not None:
            self.errors.append(err)
            raise err
        return self.replies[start:]

    def one(self, raw: bytes | str, *, privileges: Iterable[str] | None = None,
            faults: Iterable[str] | None = None, **headers: str) -> Message:
        out = self.act(raw, privileges=privileges, faults=faults, **headers)
        assert len(out) == 1, out
        return out[0]

    def run(self, seconds: float) -> list[Message]:
        """Advance time; returns the events emitted meanwhile."""
        start = len(self.events)
        self.loop.run(seconds)
        return self.events[start:]

    def take_events(self) -> list[Message]:
        out = list(self.events)
        self.events.clear()
        self.classes.clear()
        return out
