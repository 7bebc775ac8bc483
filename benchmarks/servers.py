"""Loopback peers for the client and simulator benchmarks, and the raw-socket floor client.

``PingServer`` answers Pings from a CHILD process, ``AsyncioFloor`` is the minimal asyncio
server the simulator is compared with, ``RawClient`` is the client floor (send bytes, recv
until the blank line). All bind 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

from benchmarks.stream import BANNER, PING_RESPONSE

__all__ = ["PingServer", "AsyncioFloor", "RawClient", "ping_server_main"]

#: The checkout holding the benchmarks package: the Ping server child imports it from here.
_ROOT = str(Path(__file__).resolve().parent.parent)

_AID = re.compile(rb"ActionID: ([^\r\n]*)")


class PingServer:
    """A raw-socket Ping server in a CHILD process.

    In the client's own process its thread would fight the client for the GIL, and the
    round trip would then measure thread hand-offs (bimodal 20/80 us here) instead of the
    client's overhead; a separate process leaves both clients the same, quiet peer.
    """

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"import sys; sys.path.insert(0, {_ROOT!r}); "
             "from benchmarks.servers import ping_server_main; ping_server_main()"],
            stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.proc.kill()
            raise RuntimeError(f"Ping server child did not start: {line!r}")
        self.port = int(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.proc.kill()


def ping_server_main() -> None:
    """Child process body: serve Pings on an ephemeral loopback port, print the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    print(sock.getsockname()[1], flush=True)

    def exit_with_parent() -> None:  # stdin closes when the parent goes, even if it crashed
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=exit_with_parent, daemon=True).start()
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=_serve_pings, args=(conn,), daemon=True).start()


def _serve_pings(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ts = b"1795693328.794403"
    try:
        conn.sendall(BANNER)
        buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                break
            buf += data
            end = buf.rfind(b"\r\n\r\n")
            if end < 0:
                continue
            block, buf = buf[:end + 4], buf[end + 4:]
            conn.sendall(b"".join(PING_RESPONSE % (aid, ts) for aid in _AID.findall(block)))
    except OSError:
        pass
    finally:
        conn.close()


class RawClient:
    """The floor: send the Ping bytes, recv until the blank line."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        while b"\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        self.buf = self.buf[self.buf.index(b"\n") + 1:]
        self.n = 0

    def login(self, user: str, secret: str) -> None:
        self.sock.sendall(f"Action: Login\r\nActionID: l\r\nUsername: {user}\r\n"
                          f"Secret: {secret}\r\nEvents: off\r\n\r\n".encode())
        self._until_blank()

    def _until_blank(self) -> bytes:
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed")
            self.buf += data
        msg, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return msg

    def ping(self) -> bytes:
        self.n += 1
        self.sock.sendall(b"Action: Ping\r\nActionID: %d\r\n\r\n" % self.n)
        return self._until_blank()

    def pipelined(self, count: int, window: int) -> int:
        """Keep ``window`` Pings in flight; returns the responses counted."""
        sent = got = 0
        pending = b""
        sock = self.sock
        while got < count:
            burst = min(window - (sent - got), count - sent)
            if burst > 0:
                sock.sendall(b"".join(b"Action: Ping\r\nActionID: %d\r\n\r\n" % (sent + i)
                                      for i in range(burst)))
                sent += burst
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("server closed")
            pending += data
            n = pending.count(b"\r\n\r\n")
            if n:
                got += n
                pending = pending[pending.rfind(b"\r\n\r\n") + 4:]
        return got

    def close(self) -> None:
        self.sock.close()


class AsyncioFloor:
    """A minimal asyncio AMI server: banner, Login accepted, Ping answered. Own loop thread.

    Written the way a minimal asyncio server is usually written (streams API, one
    ``readuntil`` and one ``write`` per message), with no AMI checks at all.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("asyncio floor server did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # the idiomatic minimal asyncio server: one readuntil and one write per message
            writer.write(BANNER)
            try:
                while True:
                    block = await reader.readuntil(b"\r\n\r\n")
                    m = _AID.search(block)
                    aid = m.group(1) if m else b""
                    if b"Action: Login" in block:
                        writer.write(b"Response: Success\r\nActionID: " + aid +
                                     b"\r\nMessage: Authentication accepted\r\n\r\n")
                    else:
                        writer.write(PING_RESPONSE % (aid, b"1795693328.794403"))
                    if writer.transport.get_write_buffer_size() > 65536:
                        await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
                pass
            finally:
                writer.close()

        async def start() -> asyncio.Server:
            return await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)

        server = self.loop.run_until_complete(start())
        self.server = server
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        def stop() -> None:
            self.server.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(stop)
        self.thread.join(10)
