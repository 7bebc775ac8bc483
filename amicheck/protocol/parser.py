"""Incremental parser for what an AMI *server* sends (the client side of the wire).

``Parser.feed(bytes) -> list[Message]`` keeps partial input between calls, reads the banner
line, and copes with everything real Asterisk servers send (../shared/conformance/):

- CRLF and bare LF line ends, mixed; a lone CR is data (M: get_input accepts both ends);
- repeated headers kept in order (``Variable``, ``ChanVariable``, ``Output``);
- 13.x ``Response: Follows`` command output up to ``--END COMMAND--``, blank lines inside
  the output included;
- 13.x ``Queues``: headerless text blocks (kind RAW) and the extra blank lines after them;
- bytes that are not UTF-8 (Latin-1 caller names): decoded as Latin-1, recorded.

Speed: a chunk is searched only from where the previous search stopped, so a message of
any size costs time linear in its length. Well-formed CRLF regions take a fast path that
does little more than ``split``/``partition``; any deviation re-parses that region on the
careful path (_careful.py), which records each deviation with its byte offset (lenient) or raises
``RemoteProtocolError`` (strict). Nothing but ``ProtocolError`` ever escapes ``feed``.
"""

from __future__ import annotations

from itertools import repeat
from operator import itemgetter

from amicheck.errors import RemoteProtocolError
from amicheck.protocol._careful import Bytes as _Bytes
from amicheck.protocol._careful import Careful as _Careful
from amicheck.protocol._careful import last_end, next_end, parse_follows, recover
from amicheck.protocol.grammar import (
    BANNER_PREFIX,
    DEFAULT_MAX_MESSAGE_SIZE,
    END_COMMAND,
    FOLLOWS_LINE,
    MAX_BANNER,
    MAX_RECORDED_VIOLATIONS,
)
from amicheck.protocol.message import Message, Violation, from_wire

#: Regions larger than this are parsed in windows cut at message ends (see _parse_region).
_WINDOW = 16384

__all__ = ["Parser"]

_SEP = itemgetter(1)
_partition = str.partition
#: An endless ``": "``: ``map(_partition, lines, _COLON_SPACE)`` partitions every line in C,
#: about half the cost of the floor's list comprehension (map stops at the end of ``lines``).
_COLON_SPACE = repeat(": ")


class Parser:
    """Incremental parser of the server-to-client AMI stream.

    Args:
        banner: expect the ``Asterisk Call Manager/x.y.z`` line first (a client connecting
            to a server). False for streams without one (the client-to-server direction).
        strict: raise ``RemoteProtocolError`` on the first deviation instead of recording it.
        max_message_size: the largest message buffered; a longer one is dropped up to its
            end and recorded as a ``message-too-large`` violation, so hostile input cannot
            grow memory without bound.
    """

    def __init__(
        self,
        *,
        banner: bool = True,
        strict: bool = False,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        if max_message_size < 64:
            raise ValueError(f"max_message_size must be >= 64 bytes, got {max_message_size}")
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._scan = 0  # index in _buf where the next terminator search starts
        self._expect_banner = banner
        self._follows = False  # _buf starts with an unfinished "Response: Follows"
        self._discarding = False  # skipping the rest of an oversized message
        self._plain = not banner  # none of the three states above: feed() takes its fast path
        self.strict = strict
        self.max_message_size = max_message_size
        self.banner: str | None = None
        self.violations: list[Violation] = []
        self.violation_count = 0

    # -- public ----------------------------------------------------------------------------
    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a message."""
        return len(self._buf)

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet consumed."""
        return self._base

    def feed(self, data: bytes) -> list[Message]:
        """Parse ``data`` (any chunking) and return the messages it completes."""
        if self._plain:
            buf = self._buf
            if buf:
                # Part of a message is held: append, and search for terminators only from
                # where the last search stopped (3 bytes back: one may straddle the cut).
                scan = len(buf) - 3 if len(buf) > 3 else 0
                buf += data
                i = buf.rfind(b"\n\r\n", scan)
                j = buf.rfind(b"\n\n", i if i > scan else scan)  # only a later one matters
                end = i + 3 if i > j else (j + 2 if j >= 0 else -1)
                if end < 0:
                    if len(buf) > self.max_message_size:
                        self._start_discard()
                    return []
                if buf.find(FOLLOWS_LINE, 0, end) >= 0:
                    del buf[-len(data) :]  # undo: the general path appends ``data`` itself
                    return self._general_feed(data)
                region: _Bytes = buf[:end]
                del buf[:end]
            else:
                i = data.rfind(b"\n\r\n")
                j = data.rfind(b"\n\n", i if i > 0 else 0)
                end = i + 3 if i > j else (j + 2 if j >= 0 else -1)
                if end < 0:
                    buf += data
                    if len(buf) > self.max_message_size:
                        self._start_discard()
                    return []
                if data.find(FOLLOWS_LINE, 0, end) >= 0:
                    return self._general_feed(data)
                if end == len(data):
                    region = data
                else:
                    region = data[:end]
                    buf += data[end:]
            if end <= _WINDOW:
                try:
                    out = self._fast(region)
                except (_Careful, UnicodeDecodeError) as exc:
                    out = []
                    recover(region, out, self._base, exc, self._fast, self._violation)
            else:
                out = []
                self._parse_region(region, out)
            self._base += end
            return out
        return self._general_feed(data)

    def _general_feed(self, data: bytes) -> list[Message]:
        out: list[Message] = []
        if not data:
            return out
        buf = self._buf
        if self._plain:  # the fast path in feed() keeps no _scan: nothing held is complete
            self._scan = max(0, len(buf) - 3)
        buf += data
        if self._expect_banner and not self._take_banner():
            return out
        while buf:
            if self._discarding:
                if not self._skip_oversized():
                    break
                continue
            if self._follows:
                if not self._take_follows(out):
                    break
                continue
            end = last_end(buf, self._scan)
            if end < 0:
                break
            follows_at = self._follows_start(end)
            if follows_at >= 0:
                if follows_at:
                    self._parse_region(bytes(buf[:follows_at]), out)
                    self._consume(follows_at)
                self._follows = True
                self._scan = 0  # search the whole Follows message for its end marker
                continue
            self._parse_region(bytes(buf[:end]), out)
            self._consume(end)
            break  # ``end`` was the last terminator: the rest is an incomplete message
        if len(buf) > self.max_message_size and not self._discarding:
            self._start_discard()
        self._scan = max(0, len(buf) - 3) if not self._follows else self._scan
        self._plain = not (self._expect_banner or self._follows or self._discarding)
        return out

    # -- stream plumbing -------------------------------------------------------------------
    def _consume(self, n: int) -> None:
        del self._buf[:n]
        self._base += n
        self._scan = 0

    def _follows_start(self, end: int) -> int:
        """Index of a ``Response: Follows`` message starting before ``end``, or -1."""
        buf = self._buf
        pos = buf.find(FOLLOWS_LINE, 0, end)
        while pos >= 0:
            if pos == 0 or buf[pos - 1] == 10:  # at a line start
                before = bytes(buf[max(0, pos - 3) : pos])
                if pos == 0 or before.endswith((b"\n\n", b"\n\r\n")) \
                        or not buf[:pos].strip(b"\r\n"):  # only empty lines before it
                    return pos
            pos = buf.find(FOLLOWS_LINE, pos + 1, end)
        return -1

    def _take_banner(self) -> bool:
        buf = self._buf
        nl = buf.find(b"\n")
        if nl < 0:
            if len(buf) > MAX_BANNER:
                self._violation("banner", 0, f"no line end in the first {MAX_BANNER} bytes")
                self._expect_banner = False
                return True
            return False
        line = bytes(buf[:nl])
        self._expect_banner = False
        if line.endswith(b"\r"):
            line = line[:-1]
        else:
            self._violation("bare-lf", self._base + nl, "banner line ends in LF without CR")
        text = line.decode("utf-8", "replace")
        if text.startswith(BANNER_PREFIX):
            self.banner = text
            self._consume(nl + 1)
        else:
            # No banner (a capture that starts mid-stream, or not AMI at all): keep the
            # line as data and let the message grammar judge it.
            self._violation("banner", self._base, f"first line is not an AMI banner: {text[:60]!r}")
        return True

    def _start_discard(self) -> None:
        size = len(self._buf)
        self._violation(
            "message-too-large",
            self._base,
            f"message exceeds max_message_size={self.max_message_size}; dropping it up to its end",
        )
        self._discarding = True
        self._plain = False
        self._follows = False
        self._consume(size - 3)  # keep 3 bytes: a terminator may straddle the cut

    def _skip_oversized(self) -> bool:
        end = next_end(self._buf, self._scan)  # the FIRST terminator ends the dropped message
        if end < 0:
            size = len(self._buf)
            if size > 3:
                self._consume(size - 3)
            return False
        self._consume(end)
        self._discarding = False
        return True

    # -- Follows (13.x Command output) -----------------------------------------------------
    def _take_follows(self, out: list[Message]) -> bool:
        buf = self._buf
        m = buf.find(END_COMMAND, self._scan)
        if m < 0:
            if len(buf) > self.max_message_size:
                self._start_discard()
            else:
                self._scan = max(0, len(buf) - len(END_COMMAND))
            return False
        after = m + len(END_COMMAND)
        tail = bytes(buf[after : after + 4])
        endings = (b"\r\n\r\n", b"\r\n\n", b"\n\r\n", b"\n\n")
        done = next((e for e in endings if tail.startswith(e)), None)
        if done is not None:
            end = after + len(done)
        elif any(e.startswith(tail) for e in endings):
            self._scan = m  # the ending may still arrive
            return False
        else:
            nl = buf.find(b"\n", after)
            if nl < 0:
                self._scan = m
                return False
            end = nl + 1
            self._violation(
                "follows-end", self._base + after, "--END COMMAND-- not followed by an empty line"
            )
        out.append(parse_follows(bytes(buf[:m]), self._base, self._violation))
        self._follows = False
        self._consume(end)
        return True

    def _parse_region(self, region: _Bytes, out: list[Message]) -> None:
        """Parse ``region`` (whole messages, ending in a blank line) into ``out``.

        A big region (one large read) is taken in windows of about ``_WINDOW`` bytes cut at
        message ends: the fast path's lists then stay cache-sized (a 2 MB read in one piece
        parsed at half the speed of 64 KB pieces), and a careful re-parse after an odd
        message never has to copy or re-decode more than one window.
        """
        base = self._base
        size = len(region)
        pos = 0
        while pos < size:
            cut = size
            if size - pos > _WINDOW:
                cut = next_end(region, pos + _WINDOW)
                if cut < 0:
                    cut = size
            window = region[pos:cut] if pos or cut != size else region
            try:
                out.extend(self._fast(window))
            except (_Careful, UnicodeDecodeError) as exc:
                recover(window, out, base + pos, exc, self._fast, self._violation)
            pos = cut

    @staticmethod
    def _fast(region: _Bytes) -> list[Message]:
        """Pure-CRLF, UTF-8, ``Key: value`` messages: split and partition, nothing else.

        The split floor's own moves (split at blank lines, split lines, partition), plus
        two proofs that cost next to nothing. Every line has ``": "`` (so an extra empty
        line between messages, an empty line inside a block, is caught), and no line holds
        a CR or LF (a bare LF or a lone CR): the lines of a block are joined (a memcpy)
        and searched (a memchr) -- ``bytes.count`` would cost a third of the floor.
        """
        blocks = region.decode("utf-8").split("\r\n\r\n")
        if blocks.pop():  # the region must end in a blank line
            raise _Careful
        adopt = from_wire
        sep = _SEP
        join = "".join
        partition = _partition
        colon_space = _COLON_SPACE
        result: list[Message] = []
        append = result.append
        for block in blocks:
            lines = block.split("\r\n")
            triples = list(map(partition, lines, colon_space))
            if not all(map(sep, triples)):
                raise _Careful
            flat = join(lines)
            if "\n" in flat or "\r" in flat:
                raise _Careful
            append(adopt(triples))
        return result

    def _violation(self, rule: str, offset: int, detail: str) -> Violation:
        v = Violation(rule, offset, detail)
        if self.strict:
            raise RemoteProtocolError(
                f"{rule} at byte {offset}: {detail}", rule=rule, offset=offset
            )
        self.violation_count += 1
        if len(self.violations) < MAX_RECORDED_VIOLATIONS:
            self.violations.append(v)
        return v
