"""The state every connection of the simulator shares, on the simulator's event loop.

:class:`SimCore` holds the users, the sessions, the PBX, the event broadcast, the security
events and what every connection's sans-I/O
:class:`~amicheck.protocol.server_session.ServerSession` is given: the banner, the handler
table, the challenges and its :class:`~amicheck.protocol.server_session.ServerRules`. How it
decides is read from one :class:`~amicheck.sim.behaviour.Behaviour`: compliant by default, a
fault's overrides when one is on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from amicheck.errors import LocalProtocolError
from amicheck.privileges import names_to_mask
from amicheck.profile import Profile, User
from amicheck.protocol.encoder import encode
from amicheck.protocol.message import Message
from amicheck.protocol.request import Request
from amicheck.protocol.server_session import ServerRules
from amicheck.sim import handlers as _handlers
from amicheck.sim import replies
from amicheck.sim.behaviour import Behaviour
from amicheck.sim.faults import behaviour_for
from amicheck.sim.handlers import ActionContext
from amicheck.sim.pbx import Pbx

if TYPE_CHECKING:
    from amicheck.sim.session import AmiSession

__all__ = ["SimCore", "wire", "tv", "rules_of", "Handler", "ISSUED_CHALLENGES"]

Handler = Callable[[ActionContext, Request], None]
_CORE_ACTIONS = frozenset({"login", "logoff", "challenge", "events"})
#: Challenges remembered across sessions (only a stale-challenge fault reads them).
ISSUED_CHALLENGES = 1024


def tv(when: float | None = None) -> str:
    """Security-event time: ``2016-08-19T10:21:41.128+0000``."""
    t = dt.datetime.fromtimestamp(time.time() if when is None else when, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+0000"


def _timestamp() -> str:
    """``Timestamp: <sec>.<6-digit usec>`` (Ping and timestampevents)."""
    return f"{time.time():.6f}"


def wire(msg: Message) -> bytes:
    """Wire bytes of an outgoing message.

    Asterisk echoes what it was sent (a lone CR inside an ActionID stays), so a value the
    encoder refuses as header injection is written raw instead of failing the session.
    """
    try:
        return encode(msg)
    except LocalProtocolError:
        body = "".join(f"{k}: {v}\r\n" for k, v in msg) + "\r\n"
        return body.encode("utf-8", "surrogateescape")


class SimCore:
    """Shared simulator state; every method runs on the simulator's event loop.

    Args:
        profile: the effective profile (faults applied).
        faults: active fault names (``behaviour`` is derived from them unless given).
        seed: makes challenges, session ids and the PBX deterministic.
        fail_delay: seconds before ``Authentication failed`` (Asterisk: ``sleep(1)``).
        errors: list that collects handler exceptions (re-raised by the Simulator).
        behaviour: how to behave (default: the faults' behaviour).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        profile: Profile,
        faults: frozenset[str],
        *,
        seed: int = 0,
        fail_delay: float = 1.0,
        errors: list[BaseException] | None = None,
        behaviour: Behaviour | None = None,
    ) -> None:
        self.loop = loop
        self.profile = profile
        self.faults = faults
        self.behaviour = b = behaviour_for(faults) if behaviour is None else behaviour
        self.seed = seed
        self.fail_delay = fail_delay
        self.errors: list[BaseException] = [] if errors is None else errors
        self.rng = random.Random(seed)
        self.users: dict[str, User] = {}
        self.set_users(profile.users)
        self.sessions: set[AmiSession] = set()
        self.authed: dict[AmiSession, None] = {}  # ordered set: broadcast order = login order
        self.unauth = 0
        #: sessions whose WaitEvent waits (any event wakes them)
        self.waiting: set[AmiSession] = set()
        self.crashed = False
        self.issued: dict[str, None] = {}  # recent challenges, oldest first (bounded)
        self._session_seq = 0
        self._mask_cache: dict[frozenset[str], int] = {}
        s = profile.settings
        self.banner = ((b.banner or s.banner) + "\r\n").encode()
        self.auth_timeout: float | None = (
            float(s.auth_timeout_s if s.auth_timeout_s >= 1 else 30)
            if b.enforce_auth_timeout
            else None
        )
        self.auth_limit: int | None = s.auth_limit if b.enforce_auth_limit else None
        self.write_timeout = max(s.write_timeout_ms, 1) / 1000.0
        self.timestamps = b.timestamps(s.timestamp_events)
        self.rules = rules_of(b)
        self.handlers: dict[str, Handler] = {}
        self.pbx: Pbx
        self._load_handlers()

    # -- wiring -----------------------------------------------------------------------------
    def _load_handlers(self) -> None:
        """HANDLERS, plus ListCommands-listed actions without a handler (via dispatch)."""
        self.handlers.update(_handlers.HANDLERS)
        for name in _handlers.SYNOPSIS:
            low = name.lower()
            if low not in self.handlers and low not in _CORE_ACTIONS:
                self.handlers[low] = self._via_dispatch
        self.pbx = Pbx(self.seed, self.call_later, self.emit)

    def _via_dispatch(self, ctx: ActionContext, req: Request) -> None:
        err = _handlers.dispatch(ctx, req)
        if err is not None:
            self.errors.append(err)

    def call_later(self, delay: float, fn: Callable[[], None]) -> asyncio.TimerHandle:
        """PBX timers; exceptions are collected, never lost."""

        def run() -> None:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - collected and re-raised at teardown
                self.errors.append(exc)

        return self.loop.call_later(delay, run)

    def set_users(self, users: Iterable[User]) -> None:
        """Asterisk finds users case-insensitively; the first of equal names wins."""
        table: dict[str, User] = {}
        for u in users:
            table.setdefault(u.username.lower(), u)
        self.users = table

    def next_session_id(self) -> str:
        """``0x7efcac001068`` style (``%p`` of the session struct), deterministic."""
        self._session_seq += 1
        base = 0x7EFC00001068 + (self.seed % 0x100) * 0x100000000
        return f"0x{base + self._session_seq * 0xC000000:x}"

    def challenge(self) -> str:
        """``ast_random()`` cut to 9 characters: a 9-digit decimal string (remembered)."""
        value = str(self.rng.randrange(100_000_000, 1_000_000_000))
        self.issued[value] = None
        if len(self.issued) > ISSUED_CHALLENGES:
            del self.issued[next(iter(self.issued))]
        return value

    def class_mask(self, classes: frozenset[str]) -> int:
        mask = self._mask_cache.get(classes)
        if mask is None:
            mask = self._mask_cache[classes] = names_to_mask(classes)
        return mask

    def crash(self) -> None:
        """crash-on-hostile: the listener stops accepting until reset()."""
        self.crashed = True

    def reset_sessions(self) -> None:
        """Close every session, clear the crash-on-hostile state, reset the PBX."""
        for sess in list(self.sessions):
            sess.abort()
        self.crashed = False
        if self.pbx is not None:
            self.pbx.reset()

    # -- events -----------------------------------------------------------------------------
    def emit(self, event: Message, classes: frozenset[str]) -> None:
        """Broadcast ``event`` to every logged-in session whose read privileges and event
        mask cover all of ``classes``; adds ``Timestamp:`` after ``Privilege:`` if enabled."""
        if not self.authed:
            return
        if self.timestamps:
            items = event.items
            items.insert(2, ("Timestamp", _timestamp()))
            event = Message(items)
        need = self.class_mask(classes)
        data = wire(event)
        for sess in list(self.authed):
            if sess.event_bits & need == need:
                if sess.screened:
                    sess.deliver(data)
                else:
                    sess.write(data)
        if self.waiting:
            for sess in list(self.waiting):
                sess.wake()

    def security(
        self, name: str, sess: AmiSession, account: str, extras: Iterable[tuple[str, str]] = ()
    ) -> None:
        """A main/security_events.c event (ami-reference.md section 2 header order)."""
        if not self.authed:
            return
        items = [
            ("EventTV", tv()),
            ("Severity", "Informational" if name == "SuccessfulAuth" else "Error"),
            ("Service", "AMI"),
            ("EventVersion", "2" if name == "InvalidPassword" else "1"),
            ("AccountID", account),
            ("SessionID", sess.session_id),
            ("LocalAddress", sess.local),
            ("RemoteAddress", sess.remote),
            *extras,
            ("SessionTV", sess.session_tv),
        ]
        self.emit(replies.event(name, ("security",), items), frozenset({"security"}))


def rules_of(b: Behaviour) -> ServerRules:
    """The hooks the sans-I/O server session applies, as plain values (same names)."""
    return ServerRules(**{f.name: getattr(b, f.name) for f in dataclasses.fields(ServerRules)})
