"""The parsers measured: amicheck's, the split floor, and the common Python AMI libraries.

Each library is driven through its own parsing code exactly as its socket loop drives it:

* panoramisk: ``AMIProtocol.data_received(chunk)`` (its own buffer, ``split`` on
  ``\\r\\n\\r\\n`` and ``Message.from_line``); ``handle_message`` is overridden only to
  count messages instead of routing them to futures;
* asterisk-ami (``asterisk.ami``): ``AMIClient.listen()`` with ``buffer_size`` = chunk
  size and a stand-in ``_socket`` whose ``recv`` returns the chunks; its ``_next_pack``
  regex splitting and ``Response.read``/``Event.read`` run unchanged, listeners count;
* pyst2 (``asterisk.manager``): ``Manager._receive_data()`` reading lines from an
  ``io.BufferedReader`` over the chunks, then ``ManagerMsg(lines)`` per message as its
  ``message_loop`` does. (pyst2 itself reads an unbuffered ``makefile``, i.e. one
  ``recv`` per byte; the buffered reader is kinder to it: we time its parsing.)

Every driver returns the number of packets it produced.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Driver", "amicheck_driver", "split_floor", "libraries"]


@dataclass
class Driver:
    name: str
    run: Callable[[list[bytes]], int]
    note: str = ""
    errors: list[str] = field(default_factory=list)


def amicheck_driver(max_message_size: int | None = None) -> Driver:
    from amicheck.protocol import Parser

    def run(chunks: list[bytes]) -> int:
        p = Parser() if max_message_size is None else Parser(max_message_size=max_message_size)
        n = 0
        feed = p.feed
        for c in chunks:
            n += len(feed(c))
        return n
    return Driver("amicheck Parser", run)


def split_floor(data: bytes) -> int:
    """The floor: decode, split on blank lines, split lines, partition. No streaming."""
    text = data.decode("utf-8", "surrogateescape")
    _, _, rest = text.partition("\r\n")  # the banner
    n = 0
    for block in rest.split("\r\n\r\n"):
        if block:
            headers = [line.partition(": ") for line in block.split("\r\n")]
            n += 1 if headers else 0
    return n


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return "?"


def _panoramisk_driver() -> Driver | None:
    try:
        from panoramisk.ami_protocol import AMIProtocol
    except Exception:
        return None

    class _Transport:
        def write(self, data: bytes) -> None:  # pragma: no cover - never called
            pass

        def close(self) -> None:
            pass

    class _Factory:
        save_stream = None

        def dispatch(self, message: Any) -> None:  # pragma: no cover - routing not used
            pass

    class Counting(AMIProtocol):  # type: ignore[misc]
        count = 0

        def handle_message(self, message: Any) -> None:
            self.count += 1

    def run(chunks: list[bytes]) -> int:
        proto = Counting()
        proto.connection_made(_Transport())
        proto.factory = _Factory()
        for c in chunks:
            proto.data_received(c)
        return proto.count
    return Driver(f"panoramisk {_version('panoramisk')}", run,
                  "decodes each read as ASCII, dropping non-ASCII bytes")


class _ChunkSocket:
    def __init__(self, chunks: list[bytes]) -> None:
        self._it = iter(chunks)

    def recv(self, size: int) -> bytes:
        return next(self._it, b"")

    def close(self) -> None:
        pass


def _asterisk_ami_driver(chunk_size: int) -> Driver | None:
    try:
        from asterisk.ami.client import AMIClient
    except Exception:
        return None

    def run(chunks: list[bytes]) -> int:
        counter = [0]

        def count(**_kw: Any) -> None:
            counter[0] += 1

        client = AMIClient(buffer_size=chunk_size)
        client.add_listener(on_response=count, on_event=count, on_unknown=count)
        client._socket = _ChunkSocket(chunks)
        client.finished = threading.Event()
        client.listen()
        return counter[0]
    return Driver(f"asterisk-ami {_version('asterisk-ami')}", run)


class _ChunkRaw(io.RawIOBase):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = deque(chunks)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if not self._chunks:
            return 0
        c = self._chunks.popleft()
        n = len(b)
        if len(c) > n:
            self._chunks.appendleft(c[n:])
            c = c[:n]
        b[:len(c)] = c
        return len(c)


def _pyst2_driver(chunk_size: int) -> Driver | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from asterisk.manager import Manager, ManagerMsg
    except Exception:
        return None
    driver = Driver(f"pyst2 {_version('pyst2')}", lambda c: 0)

    def run(chunks: list[bytes]) -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = Manager()
            m.close = lambda: None  # its __del__ would try to log off
            m._sock = io.BufferedReader(_ChunkRaw(chunks), buffer_size=chunk_size)
            m._running.set()
            m._connected.set()
            m._receive_data()
            m._running.clear()
            q = m._message_queue
            n = 0
            crashes = 0
            while not q.empty():
                lines = q.get_nowait()
                if not lines:
                    break
                try:
                    ManagerMsg(lines)
                except Exception:
                    crashes += 1
                    continue
                n += 1
        if crashes:
            err = f"{crashes} messages raised in ManagerMsg"
            if err not in driver.errors:
                driver.errors.append(err)
        return n
    driver.run = run
    driver.note = ("merges lists whose Message says 'status will follow'; ChanVariable "
                   "headers raise AttributeError (dict.has_key) on Python 3")
    return driver


def libraries(chunk_size: int) -> list[Driver]:
    out = [d for d in (_panoramisk_driver(), _asterisk_ami_driver(chunk_size),
                       _pyst2_driver(chunk_size)) if d is not None]
    return out
