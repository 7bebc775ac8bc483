"""The TLS port's front door: a bounded set of pending handshakes with a short deadline.

asyncio's own TLS server gives every accepted connection its TLS machinery (about 300 KB of
buffers) before the peer says a word, keeps it for 60 s, and never lets the application
see it, so 3,000 idle connections cost the simulator a gigabyte. Here the TLS listener is a
plain TCP listener whose protocol, :class:`TlsGate`, upgrades the connection with
``loop.start_tls``; every gate waiting for its handshake is held in
:class:`PendingHandshakes`, which drops the OLDEST pending one when a new connection would
exceed the bound (an attacker's idle connections age out first; a fresh client gets in),
and a handshake that takes longer than :data:`HANDSHAKE_TIMEOUT_S` is dropped. Only after
the handshake does the connection become an AMI session (and count against auth_limit).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

__all__ = ["TlsGate", "PendingHandshakes", "MAX_PENDING_HANDSHAKES", "HANDSHAKE_TIMEOUT_S"]

#: TLS connections allowed to wait for their handshake at once (the oldest is dropped).
MAX_PENDING_HANDSHAKES = 64
#: Seconds a peer has to complete its handshake (asyncio's default is 60).
HANDSHAKE_TIMEOUT_S = 10.0

_HANDSHAKE_ERRORS = (OSError, ssl.SSLError, ConnectionError, TimeoutError, EOFError)


class PendingHandshakes:
    """Gates waiting for their handshake, oldest first, at most ``limit`` of them."""

    def __init__(self, limit: int = MAX_PENDING_HANDSHAKES) -> None:
        self.limit = limit
        self._gates: dict[TlsGate, None] = {}
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._gates)

    def add(self, gate: TlsGate) -> None:
        self._gates[gate] = None
        while len(self._gates) > self.limit:
            oldest = next(iter(self._gates))
            del self._gates[oldest]
            self.dropped += 1
            oldest.drop()

    def discard(self, gate: TlsGate) -> None:
        self._gates.pop(gate, None)

    def drop_all(self) -> None:
        gates, self._gates = list(self._gates), {}
        for gate in gates:
            gate.drop()


class TlsGate(asyncio.Protocol):
    """One TLS connection until its handshake is done; then ``make_session()`` takes over.

    Args:
        ctx: the server context served.
        pending: the shared bound on waiting handshakes.
        make_session: builds the AMI protocol for the upgraded connection.
        timeout: handshake deadline (seconds).
    """

    def __init__(
        self,
        ctx: ssl.SSLContext,
        pending: PendingHandshakes,
        make_session: Callable[[], asyncio.Protocol],
        timeout: float = HANDSHAKE_TIMEOUT_S,
    ) -> None:
        self._ctx = ctx
        self._pending = pending
        self._make_session = make_session
        self._timeout = timeout
        self._raw: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._session: asyncio.Protocol | None = None
        self._early: list[bytes] = []
        self._lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._raw = transport
        transport.pause_reading()  # start_tls resumes it once the TLS machinery is in place
        self._pending.add(self)
        if not self._lost:
            self._task = asyncio.get_running_loop().create_task(self._handshake(transport))

    async def _handshake(self, raw: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        if self._lost or raw.is_closing():   # evicted before its turn: no TLS machinery
            self._pending.discard(self)
            return
        try:
            tls = await loop.start_tls(
                raw, self, self._ctx, server_side=True, ssl_handshake_timeout=self._timeout
            )
        except _HANDSHAKE_ERRORS:
            raw.abort()
            return
        finally:
            self._pending.discard(self)
        if tls is None or self._lost or tls.is_closing():
            raw.abort()
            return
        session = self._make_session()
        self._session = session
        tls.set_protocol(session)
        session.connection_made(tls)
        early, self._early = self._early, []
        for chunk in early:
            if isinstance(session, asyncio.Protocol):
                session.data_received(chunk)

    def drop(self) -> None:
        """Give up on this connection (evicted, or the simulator stops)."""
        self._lost = True
        if self._raw is not None:
            self._raw.abort()

    # Decrypted data may arrive between the handshake and the session taking over.
    def data_received(self, data: bytes) -> None:
        if self._session is not None:
            self._session.data_received(data)
        else:
            self._early.append(data)

    def eof_received(self) -> bool | None:
        if self._session is not None:
            return self._session.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._pending.discard(self)
        if self._session is not None:
            self._session.connection_lost(exc)
        elif self._task is not None and not self._task.done():
            self._task.cancel()
