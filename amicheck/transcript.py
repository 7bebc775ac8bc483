"""Redacted, timestamped frames of one AMI connection: the evidence behind a verdict.

Every ``send``/``recv`` of the client becomes a :class:`Frame` (wall-clock time, direction,
bytes, local and remote address) so that reports can show the exchange and ``capture.py`` can
write it as a pcap. Secrets never get in: the value of every ``Secret:``, ``Key:`` and
``ExpectedResponse:`` header (and ``Response:`` in a ChallengeResponseFailed event: the
attempted MD5 key) is replaced by ``********`` as the bytes are recorded, and so is, anywhere
in the stream, every secret given to the transcript, its hex and base64 forms and every value
registered with :mod:`amicheck.redaction` (MD5 keys), also when a write splits it (1-byte
writes included).
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from amicheck import redaction

__all__ = ["Direction", "Frame", "Transcript", "Redactor", "MASK"]

#: What a secret value becomes.
MASK = b"********"
#: Header keys whose values are secret (matched case-insensitively at a line start).
SECRET_KEYS = (b"secret:", b"key:", b"expectedresponse:")
#: ... and inside a ChallengeResponseFailed event, whose Response is the attempted MD5 key.
_CRF_KEYS = (*SECRET_KEYS, b"response:")
_CRF_NAME = b"challengeresponsefailed"
_EVENT_KEY = b"event:"
_EVENT_MAX = 64
_CHALLENGE = re.compile(rb"(?im)^challenge:[ \t]*([^\r\n]{1,256})")
_KEY_MAX = max(len(k) for k in _CRF_KEYS)
#: Default bound on the bytes a transcript keeps (oldest frames are dropped first).
DEFAULT_MAX_BYTES = 2 * 1024 * 1024
#: Unredacted bytes held before redaction runs (recording itself is deferred, see record()).
_FLUSH_AT = 256 * 1024

Address = tuple[str, int]

_UNDECIDED, _PLAIN, _MASKING, _EVENT = 0, 1, 2, 3
_EVENT_LINE = 1 << 30  # _decide(): the line is an Event: header


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


def _decide(head: bytes, crf: bool) -> int:
    """What the line starting with ``head`` is: the length of its secret key, ``_EVENT_LINE``
    for an ``Event:`` header, 0 if it can't be either, -1 if still undecided."""
    keys = _CRF_KEYS if crf else SECRET_KEYS
    for key in keys:
        if head.startswith(key):
            return len(key)
    if head.startswith(_EVENT_KEY):
        return _EVENT_LINE
    for key in keys:
        if key.startswith(head):
            return -1
    return -1 if _EVENT_KEY.startswith(head) else 0


class Redactor:
    """Streaming masking of secret header values for one direction of a connection.

    ``Secret:``, ``Key:`` and ``ExpectedResponse:`` values are masked wherever they are;
    ``Response:`` values only inside a ``ChallengeResponseFailed`` event (the attempted MD5
    key; elsewhere it is the status of a reply). Asterisk writes ``Event:`` first, so the
    event is known before its ``Response:`` line. The state (how much of the current line's
    key was seen, whether we are inside a secret value or that event) survives between
    chunks, so a header split over several writes is still caught.
    """

    __slots__ = ("_mode", "_head", "_crf", "_blank", "_event", "_cr")

    def __init__(self) -> None:
        self._mode = _UNDECIDED
        self._head = b""
        self._crf = False  # inside a ChallengeResponseFailed event
        self._blank = True  # the current line has nothing but CR so far
        self._event = b""  # the Event: value seen so far (lower-cased, bounded)
        self._cr = False  # the masked value so far ends with CR (its LF may come next)

    def _tail_state(self, tail_low: bytes) -> None:
        """Set the state for a new line that starts with ``tail_low`` (no LF in it)."""
        head = tail_low[:_KEY_MAX]
        verdict = _decide(head, False)
        self._blank = not tail_low.strip(b"\r")
        if verdict == -1:
            self._mode, self._head = _UNDECIDED, head
        elif verdict == _EVENT_LINE:
            self._mode, self._head = _EVENT, b""
            self._event = tail_low[len(_EVENT_KEY):][:_EVENT_MAX]
        else:  # a complete secret key in the tail is handled by the slow path, never here
            self._mode, self._head = _PLAIN, b""

    def process(self, data: bytes) -> bytes:
        """The redacted form of the next chunk of this direction."""
        if not self._crf and (
            self._mode == _PLAIN or (self._mode == _UNDECIDED and not self._head)
        ):
            low = data.lower()
            if (b"secret:" not in low and b"key:" not in low
                    and b"expectedresponse:" not in low and _CRF_NAME not in low):
                nl = data.rfind(b"\n")
                if nl == len(data) - 1:  # the usual case: the chunk ends a line
                    self._mode, self._head, self._blank = _UNDECIDED, b"", True
                elif nl >= 0:
                    self._tail_state(low[nl + 1:])
                elif self._mode == _UNDECIDED:
                    self._tail_state(low)
                return data
        return self._slow(data)

    def _end_line(self) -> None:
        if self._mode == _EVENT and self._event.strip() == _CRF_NAME:
            self._crf = True
        elif self._blank:
            self._crf = False  # the message ended
        self._mode, self._head, self._blank, self._event = _UNDECIDED, b"", True, b""
        self._cr = False

    def _slow(self, data: bytes) -> bytes:
        out: list[bytes] = []
        pos, n = 0, len(data)
        while pos < n:
            nl = data.find(b"\n", pos)
            end = n if nl < 0 else nl
            seg = data[pos:end]
            if self._blank and seg.strip(b"\r"):
                self._blank = False
            if self._mode == _MASKING:
                if nl >= 0:
                    if seg.endswith(b"\r") or (not seg and self._cr):
                        out.append(b"\r")  # the line end survives, also split from its LF
                elif seg:
                    self._cr = seg.endswith(b"\r")
            elif self._mode == _PLAIN:
                out.append(seg)
            elif self._mode == _EVENT:
                out.append(seg)
                self._event = (self._event + seg.lower())[:_EVENT_MAX]
            else:
                have = len(self._head)
                head = self._head + seg[: _KEY_MAX - have].lower()
                verdict = _decide(head, self._crf)
                if verdict == _EVENT_LINE:
                    out.append(seg)
                    self._mode, self._head = _EVENT, b""
                    self._event = head[len(_EVENT_KEY):] + seg[_KEY_MAX - have:].lower()
                    self._event = self._event[:_EVENT_MAX]
                elif verdict > 0:
                    cut = verdict - have
                    out.append(seg[:cut])
                    out.append(b" " + MASK)
                    if nl >= 0 and len(seg) > cut and seg.endswith(b"\r"):
                        out.append(b"\r")
                    self._mode, self._head = _MASKING, b""
                    self._cr = len(seg) > cut and seg.endswith(b"\r")
                elif verdict == 0:
                    out.append(seg)
                    self._mode, self._head = _PLAIN, b""
                else:
                    out.append(seg)
                    self._head = head
            if nl < 0:
                break
            out.append(b"\n")
            self._end_line()
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
        self._secrets: set[str] = set()
        self._matcher = redaction.matcher(())
        self._matcher_version = -1
        self._redactors = {Direction.SENT: Redactor(), Direction.RECEIVED: Redactor()}
        # per direction: recent frames' tails, for secrets split across frames
        self._window: dict[Direction, list[tuple[Frame, bytes]]] = {
            Direction.SENT: [], Direction.RECEIVED: []}
        for secret in secrets:
            self.add_secret(secret)

    def set_addresses(self, local: Address, remote: Address) -> None:
        self.local, self.remote = local, remote

    def add_secret(self, secret: str | bytes | None) -> None:
        """Mask ``secret`` and its hex/base64 forms from now on (and in frames already kept)."""
        if not secret:
            return
        text = secret if isinstance(secret, str) else bytes(secret).decode(
            "utf-8", "surrogateescape")
        if text in self._secrets:
            return
        self._secrets.add(text)
        self._matcher_version = -1
        # already-recorded frames are scrubbed too: a secret may have been sent before it
        # was registered (e.g. typed into send_bytes)
        if self._frames:
            m = redaction.Matcher(redaction.secret_forms([text]))
            for frame in self._frames:
                frame.data = m.sub(frame.data, MASK)

    @property
    def dropped_frames(self) -> int:
        """Frames dropped to stay under ``max_bytes``."""
        self._flush()
        return self._dropped

    def record(self, direction: Direction, data: bytes) -> None:
        """Note ``data``; it is redacted (in order, per direction) before anyone can read it.

        Redaction is deferred to the first read of the transcript so that recording costs
        the hot path of a request almost nothing; every accessor redacts first.
        """
        self._raw.append((time.time(), direction, data, self.local, self.remote))
        self._raw_size += len(data)
        if self._raw_size > _FLUSH_AT:
            self._flush()  # in small batches: no long pause in the middle of a run

    def _current_matcher(self) -> redaction.Matcher:
        """Our secrets' forms plus every derived value registered so far (cached)."""
        version = redaction.derived_version()
        if version != self._matcher_version:
            self._matcher = redaction.matcher(self._secrets)
            self._matcher_version = version
        return self._matcher

    def _flush(self) -> None:
        if not self._raw:
            return
        raw, self._raw, self._raw_size = self._raw, [], 0
        redactors = self._redactors
        frames = self._frames
        m = self._current_matcher()
        for when, direction, data, local, remote in raw:
            if direction is Direction.RECEIVED and (b"hallenge" in data or b"HALLENGE" in data):
                for value in _CHALLENGE.findall(data):  # keys for it get masked everywhere
                    redaction.register_challenge(value.decode("utf-8", "replace"))
            frame = Frame(when, direction, redactors[direction].process(data), local, remote)
            if not m.empty:
                self._scrub(direction, frame, m)
            frames.append(frame)
            self._size += len(frame.data)
        while self._size > self.max_bytes and len(frames) > 1:
            old = frames.popleft()
            self._size -= len(old.data)
            self._dropped += 1

    def _scrub(self, direction: Direction, frame: Frame, m: redaction.Matcher) -> None:
        """Mask secret forms in ``frame``, also those that began in earlier frames.

        A match inside this frame becomes ``********``; one that crosses into earlier frames
        is starred byte for byte there and here (frame sizes stay as recorded).
        """
        window = self._window[direction]
        data = frame.data
        keep = m.longest - 1
        prefix = b"".join(t for _, t in window) if window and keep > 0 else b""
        buf = prefix + data if prefix else data
        spans = m.spans(buf)
        if spans:
            lp = len(prefix)
            pbuf = bytearray(prefix)
            out: list[bytes] = []
            pos = lp
            for a, b in spans:
                if a < lp:
                    pbuf[a:min(b, lp)] = b"*" * (min(b, lp) - a)
                    if b > lp:
                        out.append(b"*" * (b - lp))
                        pos = b
                else:
                    out.append(buf[pos:a])
                    out.append(MASK)
                    pos = b
            out.append(buf[pos:])
            data = b"".join(out)
            if lp and bytes(pbuf) != prefix:
                off = 0
                for i, (old, tail) in enumerate(window):
                    new = bytes(pbuf[off:off + len(tail)])
                    if new != tail and old.data.endswith(tail):
                        old.data = old.data[: len(old.data) - len(tail)] + new
                        window[i] = (old, new)
                    off += len(tail)
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
