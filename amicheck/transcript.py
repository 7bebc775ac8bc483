"""Redacted, timestamped frames of one AMI connection: the evidence behind a verdict.

Every ``send``/``recv`` of the client becomes a :class:`Frame` (wall-clock time, direction,
bytes, local and remote address) so that reports can show the exchange and ``capture.py`` can
write it as a pcap. Secrets never get in: the value of every ``Secret:`` and ``Key:`` header
is replaced by ``********`` as the bytes are recorded, and so is every registered secret
string anywhere in the stream, also when a write splits it (1-byte writes included).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Direction", "Frame", "Transcript", "Redactor", "MASK"]

#: What a secret value becomes.
MASK = b"********"
#: Header keys whose values are secret (matched case-insensitively at a line start).
SECRET_KEYS = (b"secret:", b"key:")
_KEY_MAX = max(len(k) for k in SECRET_KEYS)
#: Default bound on the bytes a transcript keeps (oldest frames are dropped first).
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
#: Unredacted bytes held before redaction runs (recording itself is deferred, see record()).
_FLUSH_AT = 256 * 1024

Address = tuple[str, int]

_UNDECIDED, _PLAIN, _MASKING = 0, 1, 2


class Direction(StrEnum):
    """Who wrote the bytes of a frame."""

    SENT = "sent"
    RECEIVED = "received"

    @property
    def arrow(self) -> str:
        return ">>>" if self is Direction.SENT else "<<<"


@dataclass(slots=True)
class Frame:
    """One write or one read, already redacted.

    Attributes:
        time: wall-clock seconds since the epoch (what a pcap record wants).
        direction: SENT (client to server) or RECEIVED.
        data: the bytes, with secrets replaced by ``********``.
        local, remote: the client's and the server's ``(ip, port)``.
    """

    time: float
    direction: Direction
    data: bytes
    local: Address
    remote: Address

    @property
    def src(self) -> Address:
        return self.local if self.direction is Direction.SENT else self.remote

    @property
    def dst(self) -> Address:
        return self.remote if self.direction is Direction.SENT else self.local


def _decide(head: bytes) -> int:
    """Length of the secret key ``head`` starts with, 0 if it can't be one, -1 if undecided."""
    for key in SECRET_KEYS:
        if head.startswith(key):
            return len(key)
    for key in SECRET_KEYS:
        if key.startswith(head):
            return -1
    return 0


class Redactor:
    """Streaming ``Secret:``/``Key:`` value masking for one direction of a connection.

    The state (how much of the current line's key was seen, whether we are inside a secret
    value) survives between chunks, so a header split over several writes is still caught.
    """

    __slots__ = ("_mode", "_head")

    def __init__(self) -> None:
        self._mode = _UNDECIDED
        self._head = b""

    def _tail_state(self, tail_low: bytes) -> None:
        """Set the state for a new line that starts with ``tail_low`` (no LF in it)."""
        head = tail_low[:_KEY_MAX]
        verdict = _decide(head)
        if verdict == -1:
            self._mode, self._head = _UNDECIDED, head
        else:  # a complete key in the tail is handled by the slow path, never here
            self._mode, self._head = _PLAIN, b""

    def process(self, data: bytes) -> bytes:
        """The redacted form of the next chunk of this direction."""
        if self._mode == _PLAIN or (self._mode == _UNDECIDED and not self._head):
            low = data.lower()
            if b"secret:" not in low and b"key:" not in low:
                nl = data.rfind(b"\n")
                if nl == len(data) - 1:  # the usual case: the chunk ends a line
                    self._mode, self._head = _UNDECIDED, b""
                elif nl >= 0:
                    self._tail_state(low[nl + 1:])
                elif self._mode == _UNDECIDED:
                    self._tail_state(low)
                return data
        return self._slow(data)

    def _slow(self, data: bytes) -> bytes:
        out: list[bytes] = []
        pos, n = 0, len(data)
        while pos < n:
            nl = data.find(b"\n", pos)
            end = n if nl < 0 else nl
            seg = data[pos:end]
            if self._mode == _MASKING:
                if nl >= 0 and seg.endswith(b"\r"):
                    out.append(b"\r")
            elif self._mode == _PLAIN:
                out.append(seg)
            else:
                have = len(self._head)
                head = self._head + seg[: _KEY_MAX - have].lower()
                verdict = _decide(head)
                if verdict > 0:
                    cut = verdict - have
                    out.append(seg[:cut])
                    out.append(b" " + MASK)
                    if nl >= 0 and len(seg) > cut and seg.endswith(b"\r"):
                        out.append(b"\r")
                    self._mode, self._head = _MASKING, b""
                elif verdict == 0:
                    out.append(seg)
                    self._mode, self._head = _PLAIN, b""
                else:
                    out.append(seg)
                    self._head = head
            if nl < 0:
                break
            out.append(b"\n")
            self._mode, self._head = _UNDECIDED, b""
            pos = nl + 1
        return b"".join(out)


class Transcript:
    """The redacted frames of one connection, bounded in size.

    Args:
        local, remote: addresses stamped on each frame (``set_addresses`` may change them).
        secrets: strings to mask wherever they appear (``add_secret`` adds more).
        max_bytes: keep at most about this many bytes; older frames are dropped and counted
            in ``dropped_frames``.
    """

    def __init__(
        self,
        local: Address = ("", 0),
        remote: Address = ("", 0),
        *,
        secrets: Iterable[str] = (),
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.local = local
        self.remote = remote
        self.max_bytes = max_bytes
        self._dropped = 0
        self.start = time.time()
        self._frames: deque[Frame] = deque()
        self._size = 0
        self._raw: list[tuple[float, Direction, bytes, Address, Address]] = []
        self._raw_size = 0
        self._secrets: list[bytes] = []
        self._longest = 0
        self._redactors = {Direction.SENT: Redactor(), Direction.RECEIVED: Redactor()}
        # per direction: recent frames' tails, for secrets split across frames
        self._window: dict[Direction, list[tuple[Frame, bytes]]] = {
            Direction.SENT: [], Direction.RECEIVED: []}
        for secret in secrets:
            self.add_secret(secret)

    def set_addresses(self, local: Address, remote: Address) -> None:
        self.local, self.remote = local, remote

    def add_secret(self, secret: str | bytes | None) -> None:
        """Mask ``secret`` from now on (and in frames still in the split window)."""
        if not secret:
            return
        raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if raw in self._secrets:
            return
        self._secrets.append(raw)
        self._longest = max(self._longest, len(raw))
        # already-recorded frames are scrubbed too: a secret may have been sent before it
        # was registered (e.g. typed into send_bytes)
        for frame in self._frames:
            if raw in frame.data:
                frame.data = frame.data.replace(raw, MASK)

    @property
    def dropped_frames(self) -> int:
        """Frames dropped to stay under ``max_bytes``."""
        self._flush()
        return self._dropped

    @property
    def secrets_registered(self) -> int:
        return len(self._secrets)

    def record(self, direction: Direction, data: bytes) -> None:
        """Note ``data``; it is redacted (in order, per direction) before anyone can read it.

        Redaction is deferred to the first read of the transcript so that recording costs
        the hot path of a request almost nothing; every accessor redacts first.
        """
        self._raw.append((time.time(), direction, data, self.local, self.remote))
        self._raw_size += len(data)
        if self._raw_size > _FLUSH_AT:
            self._flush()  # in small batches: no long pause in the middle of a run

    def _flush(self) -> None:
        raw, self._raw, self._raw_size = self._raw, [], 0
        redactors = self._redactors
        frames = self._frames
        for when, direction, data, local, remote in raw:
            frame = Frame(when, direction, redactors[direction].process(data), local, remote)
            if self._secrets:
                self._scrub(direction, frame)
            frames.append(frame)
            self._size += len(frame.data)
        while self._size > self.max_bytes and len(frames) > 1:
            old = frames.popleft()
            self._size -= len(old.data)
            self._dropped += 1

    def _scrub(self, direction: Direction, frame: Frame) -> None:
        window = self._window[direction]
        data = frame.data
        keep = self._longest - 1
        if window and keep > 0:
            # a match that starts in earlier frames ends within the first `keep` bytes here
            prefix = b"".join(t for _, t in window)
            head = prefix + data[:keep]
            hits: list[tuple[int, int]] = []
            for secret in self._secrets:
                at = head.find(secret)
                while 0 <= at < len(prefix):
                    hits.append((at, at + len(secret)))
                    at = head.find(secret, at + 1)
            if hits:
                buf = bytearray(head)
                for a, b in hits:
                    buf[a:b] = b"*" * (b - a)
                off = 0
                for i, (old, tail) in enumerate(window):
                    new = bytes(buf[off:off + len(tail)])
                    if new != tail and old.data.endswith(tail):
                        old.data = old.data[: len(old.data) - len(tail)] + new
                        window[i] = (old, new)
                    off += len(tail)
                data = bytes(buf[len(prefix):]) + data[keep:]
        for secret in self._secrets:
            if secret in data:
                data = data.replace(secret, MASK)
        frame.data = data
        if keep <= 0:
            return
        # keep the last `keep` bytes of this direction for the next frame
        if len(data) >= keep:
            window[:] = [(frame, data[-keep:])]
            return
        window.append((frame, data))
        total = sum(len(t) for _, t in window)
        while window and total - len(window[0][1]) >= keep:
            total -= len(window.pop(0)[1])
        if window and total > keep:
            first, tail = window[0]
            window[0] = (first, tail[total - keep:])

    # -- views ------------------------------------------------------------------------------
    @property
    def frames(self) -> list[Frame]:
        """The frames kept, oldest first."""
        self._flush()
        return list(self._frames)

    def __iter__(self) -> Iterator[Frame]:
        return iter(self.frames)

    def __len__(self) -> int:
        self._flush()
        return len(self._frames)

    def data(self, direction: Direction | None = None) -> bytes:
        """All kept bytes (of one direction, or both in order)."""
        self._flush()
        return b"".join(f.data for f in self._frames
                        if direction is None or f.direction is direction)

    def render(self, limit: int | None = 200, width: int = 400) -> str:
        """Text form, one frame per line, like the conformance recordings.

        Shows the last ``limit`` frames, each cut to ``width`` bytes.
        """
        frames = self.frames
        skipped = 0
        if limit is not None and len(frames) > limit:
            skipped = len(frames) - limit
            frames = frames[-limit:]
        lines = []
        if skipped or self.dropped_frames:
            lines.append(f"... {skipped + self.dropped_frames} earlier frame(s) not shown")
        for f in frames:
            data = f.data if len(f.data) <= width else f.data[:width]
            more = f" ... ({len(f.data)} bytes)" if len(f.data) > width else ""
            lines.append(f"[t={f.time - self.start:7.3f}] {f.direction.arrow} {data!r}{more}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()
