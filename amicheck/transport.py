"""Byte streams under the AMI client: TCP, TLS and in-memory, each with deadlines.

The client only ever sees a :class:`Stream`; OS and ssl errors are mapped to
:mod:`amicheck.errors` here, at the boundary, so callers get one clear error that names the
peer instead of a bare ``OSError`` traceback (style guide 4 and 5, httpcore's backends).
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from collections import deque
from typing import Protocol, runtime_checkable

from amicheck.errors import (
    AmiTimeoutError,
    ConnectError,
    ConnectionClosedError,
    TransportError,
)

__all__ = [
    "Stream",
    "TcpStream",
    "MemoryStream",
    "Address",
    "open_tcp",
    "tls_client_context",
    "ByteRecord",
]

Address = tuple[str, int]

#: Read size for one recv(); bigger than any AMI packet that matters, small enough for L2.
RECV_SIZE = 65536
_MB = 1024 * 1024


@runtime_checkable
class Stream(Protocol):
    """A connected byte stream.

    ``recv`` returns ``b""`` at end of stream and raises :class:`AmiTimeoutError` when
    ``timeout`` seconds pass without data (``None`` waits forever).
    """

    local: Address
    remote: Address
    is_tls: bool

    def send_all(self, data: bytes, timeout: float | None = None) -> None: ...

    def recv(self, max_bytes: int, timeout: float | None) -> bytes: ...

    def close(self) -> None: ...


class ByteRecord:
    """The newest bytes read from a stream, at most about ``max_bytes`` (oldest dropped).

    Framing checks read what the peer sent byte for byte; a peer that never stops sending
    must not grow it without bound. Trimming halves the record, so appends stay O(1).
    """

    __slots__ = ("_buf", "_bytes", "max_bytes", "dropped")

    def __init__(self, max_bytes: int) -> None:
        self._buf = bytearray()
        self._bytes: bytes | None = b""
        self.max_bytes = max_bytes
        #: Bytes dropped from the front to stay under the cap.
        self.dropped = 0

    def append(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        self._bytes = None
        if len(buf) > self.max_bytes:
            cut = len(buf) - self.max_bytes // 2
            del buf[:cut]
            self.dropped += cut

    @property
    def data(self) -> bytes:
        """The bytes kept (one copy per change, so repeated reads cost nothing)."""
        data = self._bytes
        if data is None:
            data = self._bytes = bytes(self._buf)
        return data

    def __len__(self) -> int:
        return len(self._buf)

    @property
    def cap_note(self) -> str | None:
        """One line for a report when the cap dropped bytes, else None."""
        if not self.dropped:
            return None
        return (f"raw byte record capped at {self.max_bytes / _MB:.3g} MB; "
                f"{self.dropped:,} bytes dropped")


def _fmt(addr: Address) -> str:
    return f"{addr[0]}:{addr[1]}"


def tls_client_context(
    verify: bool = False, ca: str | None = None, check_hostname: bool | None = None
) -> ssl.SSLContext:
    """A client context for AMI over TLS.

    Without ``ca`` and ``verify`` the certificate is not checked: UCMs mostly serve
    self-signed certificates, and amicheck audits certificates in ``tlsaudit`` instead of
    refusing to talk. With ``ca`` (a PEM file) the chain and, by default, the host name are
    verified.
    """
    ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    if ca is None and not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif check_hostname is not None:
        ctx.check_hostname = check_hostname
    return ctx


class TcpStream:
    """A TCP (or TLS-wrapped) socket with per-call deadlines.

    Args:
        sock: a connected socket (``ssl.SSLSocket`` for TLS).
    """

    __slots__ = ("_sock", "local", "remote", "is_tls", "_timeout", "_closed", "peer", "_kernel")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.is_tls = isinstance(sock, ssl.SSLSocket)
        self.local: Address = sock.getsockname()[:2]
        self.remote: Address = sock.getpeername()[:2]
        self.peer = _fmt(self.remote)
        self._closed = False
        # Plain TCP: the socket stays in blocking mode and deadlines are the kernel's
        # SO_RCVTIMEO/SO_SNDTIMEO. A Python socket timeout would poll() before every
        # recv(): one more syscall per read, a visible share of a 20 us loopback round trip.
        # TLS keeps Python's timeouts (the ssl module needs them for its own retries).
        self._kernel = not self.is_tls and hasattr(socket, "SO_RCVTIMEO")
        if self._kernel:
            sock.settimeout(None)
            self._timeout: float | None = None
        else:
            self._timeout = sock.gettimeout()

    @property
    def socket(self) -> socket.socket:
        """The underlying socket (for tests that need e.g. ``shutdown``)."""
        return self._sock

    def _set_timeout(self, timeout: float | None) -> None:
        """Arm the socket timeout, reusing the current one if it overshoots by <= 10% + 5 ms.

        ``settimeout`` is a syscall; successive waits of one request ask for nearly the
        same value (the time left until its deadline), so re-arming every call would cost
        more than the tolerance is worth.
        """
        cur = self._timeout
        if timeout is None:
            if cur is not None:
                if self._kernel:  # a zero timeval means "wait forever"
                    zero = struct.pack("ll", 0, 0)
                    self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, zero)
                    self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, zero)
                else:
                    self._sock.settimeout(None)
                self._timeout = None
            return
        if timeout <= 0:
            timeout = 1e-6  # 0 would switch the socket to non-blocking mode
        if cur is not None and timeout <= cur <= timeout * 1.1 + 0.005:
            return
        if self._kernel:
            sec = int(timeout)
            usec = int((timeout - sec) * 1e6)
            tv = struct.pack("ll", sec, usec if sec or usec else 1)  # 0/0 would mean forever
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
        else:
            self._sock.settimeout(timeout)
        self._timeout = timeout

    def send_all(self, data: bytes, timeout: float | None = None) -> None:
        """Write every byte or raise (``ConnectionClosedError`` when the peer is gone)."""
        if self._closed:
            raise ConnectionClosedError(f"connection to {self.peer} is closed", peer=self.peer)
        self._set_timeout(timeout)
        try:
            self._sock.sendall(data)
        except (TimeoutError, BlockingIOError):
            raise AmiTimeoutError(
                f"timed out after {timeout}s sending {len(data)} bytes to {self.peer}",
                peer=self.peer,
                waiting_for="send",
            ) from None
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
            raise ConnectionClosedError(
                f"connection to {self.peer} closed while sending: {exc.strerror or exc}",
                peer=self.peer,
            ) from None
        except ssl.SSLError as exc:
            raise TransportError(f"TLS error sending to {self.peer}: {exc}",
                                 peer=self.peer) from None
        except OSError as exc:
            raise TransportError(f"error sending to {self.peer}: {exc}", peer=self.peer) from None

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` at end of stream (or a reset)."""
        if self._closed:
            return b""
        cur = self._timeout
        if timeout is None or cur is None or not (timeout <= cur <= timeout * 1.1 + 0.005):
            self._set_timeout(timeout)
        try:
            return self._sock.recv(max_bytes)
        except (TimeoutError, BlockingIOError):
            raise AmiTimeoutError(
                f"timed out after {timeout}s reading from {self.peer}",
                peer=self.peer,
                waiting_for="data",
            ) from None
        except (ConnectionResetError, ConnectionAbortedError):
            return b""
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""  # close_notify, or a peer that just closed the TCP connection
        except ssl.SSLError as exc:
            if "UNEXPECTED_EOF" in str(exc):
                return b""
            raise TransportError(f"TLS error reading from {self.peer}: {exc}",
                                 peer=self.peer) from None
        except OSError as exc:
            if self._closed:
                return b""
            raise TransportError(f"error reading from {self.peer}: {exc}",
                                 peer=self.peer) from None

    def close(self) -> None:
        """Close the socket (idempotent). TLS is closed without a close_notify wait."""
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.close()
        except OSError:
            pass


def _source(source_address: str | Address | None) -> Address | None:
    if source_address is None:
        return None
    if isinstance(source_address, str):
        return (source_address, 0)
    return (source_address[0], int(source_address[1]))


def open_tcp(
    host: str,
    port: int,
    *,
    timeout: float = 5.0,
    source_address: str | Address | None = None,
    tls: bool | ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> TcpStream:
    """Connect to ``host:port`` (TCP_NODELAY; TLS when ``tls`` is true or a context).

    Args:
        source_address: local IP (or ``(ip, port)``) to bind before connecting, e.g.
            ``"127.0.0.2"`` to look like another host to an ACL.
        tls: ``True`` for a context that does not verify the certificate, an
            ``ssl.SSLContext`` to use as given, ``None``/``False`` for plaintext.
        server_hostname: SNI and verification name; defaults to ``host``.

    Raises:
        ConnectError: refused, unreachable, timed out, or the TLS handshake failed.
    """
    peer = f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout,
                                        source_address=_source(source_address))
    except TimeoutError:
        raise ConnectError(f"timed out after {timeout}s connecting to {peer}",
                           peer=peer) from None
    except OSError as exc:
        where = f" from {source_address}" if source_address else ""
        raise ConnectError(f"cannot connect to {peer}{where}: {exc.strerror or exc}",
                           peer=peer) from None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # pragma: no cover - AF_UNIX or exotic stacks
        pass
    if tls:
        ctx = tls if isinstance(tls, ssl.SSLContext) else tls_client_context()
        try:
            sock = ctx.wrap_socket(sock, server_hostname=server_hostname or host)
        except TimeoutError:
            sock.close()
            raise ConnectError(f"timed out after {timeout}s in the TLS handshake with {peer}",
                               peer=peer) from None
        except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
            sock.close()
            raise ConnectError(f"TLS handshake with {peer} failed: {exc}", peer=peer) from None
    return TcpStream(sock)


class MemoryStream:
    """An in-memory stream end; :meth:`pair` gives two connected ends.

    Useful to drive the client without sockets (e.g. replaying a recording) and as the
    reference for what a ``Stream`` must do. Thread-safe.
    """

    def __init__(self, local: Address = ("memory", 1), remote: Address = ("memory", 2)) -> None:
        self.local = local
        self.remote = remote
        self.is_tls = False
        self.peer: MemoryStream | None = None
        self._cond = threading.Condition()
        self._inbox: deque[bytes] = deque()
        self._eof = False
        self._closed = False

    @classmethod
    def pair(cls) -> tuple[MemoryStream, MemoryStream]:
        """Two ends: what one sends, the other receives."""
        a = cls(("memory", 1), ("memory", 2))
        b = cls(("memory", 2), ("memory", 1))
        a.peer, b.peer = b, a
        return a, b

    def feed(self, data: bytes) -> None:
        """Make ``data`` readable on this end (as if the peer had sent it)."""
        with self._cond:
            if data:
                self._inbox.append(bytes(data))
            self._cond.notify_all()

    def feed_eof(self) -> None:
        """End of stream after what was fed."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def send_all(self, data: bytes, timeout: float | None = None) -> None:
        if self._closed or self.peer is None or self.peer._closed:
            raise ConnectionClosedError("memory stream is closed", peer="memory")
        self.peer.feed(data)

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._inbox:
                if self._eof or self._closed:
                    return b""
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise AmiTimeoutError(f"timed out after {timeout}s reading from memory",
                                          peer="memory", waiting_for="data")
                self._cond.wait(left)
            chunk = self._inbox.popleft()
            if len(chunk) > max_bytes:
                self._inbox.appendleft(chunk[max_bytes:])
                chunk = chunk[:max_bytes]
            return chunk

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self.peer is not None:
            self.peer.feed_eof()
