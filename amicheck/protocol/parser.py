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
careful path, which records each deviation with its byte offset (lenient) or raises
``RemoteProtocolError`` (strict). Nothing but ``ProtocolError`` ever escapes ``feed``.
"""

from __future__ import annotations

from itertools import repeat
from operator import itemgetter

from amicheck.errors import RemoteProtocolError
from amicheck.protocol.grammar import (
    BANNER_PREFIX,
    DEFAULT_MAX_MESSAGE_SIZE,
    END_COMMAND,
    FOLLOWS_LINE,
    MAX_BANNER,
    MAX_RECORDED_VIOLATIONS,
)
from amicheck.protocol.message import Message, Violation, from_wire

_Bytes = bytes | bytearray  # regions are slices of the read buffer

#: Regions larger than this are parsed in windows cut at message ends (see _parse_region).
_WINDOW = 16384

__all__ = ["Parser"]

_SEP = itemgetter(1)
_partition = str.partition
_FOLLOWS_HEADER_KEYS = frozenset({"privilege", "actionid"})


def _next_end(buf: bytes | bytearray, pos: int) -> int:
    """Index just past the FIRST blank-line terminator at or after ``pos``, or -1.

    The search for LF LF is bounded by the first LF CR LF, so that scanning message by
    message stays linear in a pure-CRLF stream, where LF LF never occurs.
    """
    i = buf.find(b"\n\r\n", pos)
    j = buf.find(b"\n\n", pos, i + 3 if i >= 0 else len(buf))
    if j >= 0:
        return j + 2
    return i + 3 if i >= 0 else -1


def _last_end(buf: bytes | bytearray, start: int, stop: int | None = None) -> int:
    """Index just past the LAST blank-line terminator within ``buf[start:stop]``, or -1."""
    stop = len(buf) if stop is None else stop
    i = buf.rfind(b"\n\r\n", start, stop)
    j = buf.rfind(b"\n\n", i if i > start else start, stop)  # only a later one matters
    # The two patterns can never end at the same byte, so the later start wins.
    return i + 3 if i > j else (j + 2 if j >= 0 else -1)


class _Careful(Exception):
    """Internal: the fast path met something it does not handle."""


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
                    self._recover(region, out, self._base, exc)
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
            end = _last_end(buf, self._scan)
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
        end = _next_end(self._buf, self._scan)  # the FIRST terminator ends the dropped message
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
        out.append(self._parse_follows(bytes(buf[:m])))
        self._follows = False
        self._consume(end)
        return True

    def _parse_follows(self, head_and_body: bytes) -> Message:
        base = self._base
        violations: list[Violation] = []
        triples: list[tuple[str, str, str]] = []
        pos = 0
        n = len(head_and_body)
        while pos < n:
            nl = head_and_body.find(b"\n", pos)
            if nl < 0:
                break
            raw = head_and_body[pos:nl]
            line = raw[:-1] if raw.endswith(b"\r") else raw
            text_line = line.decode("utf-8", "surrogateescape")
            key, sep, value = text_line.partition(": ")
            if triples and (not sep or key.lower() not in _FOLLOWS_HEADER_KEYS):
                break
            if not triples and not sep:
                break
            triples.append((key, sep, value))
            pos = nl + 1
        body = head_and_body[pos:]
        encoding = "utf-8"
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            encoding = "latin-1"
            text = body.decode("latin-1")
            violations.append(
                self._violation(
                    "not-utf8",
                    base + pos + exc.start,
                    "command output is not UTF-8; read as Latin-1",
                )
            )
        if encoding == "latin-1":
            triples = [
                (
                    k.encode("utf-8", "surrogateescape").decode("latin-1"),
                    s,
                    v.encode("utf-8", "surrogateescape").decode("latin-1"),
                )
                for k, s, v in triples
            ]
        return from_wire(triples, text, tuple(violations), encoding)

    # -- regions of complete messages ------------------------------------------------------
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
                cut = _next_end(region, pos + _WINDOW)
                if cut < 0:
                    cut = size
            window = region[pos:cut] if pos or cut != size else region
            try:
                out.extend(self._fast(window))
            except (_Careful, UnicodeDecodeError) as exc:
                self._recover(window, out, base + pos, exc)
            pos = cut

    def _recover(
        self, region: _Bytes, out: list[Message], base: int, exc: Exception
    ) -> None:
        """The fast path failed in ``region`` (stream offset ``base``) with ``exc``.

        For bytes that are not UTF-8 (Latin-1 caller names are common in real traffic) the
        error says where: the messages before that one are fast (they decoded), that one
        is read as Latin-1, and the rest is tried again. Anything else is retried message
        by message. No byte is decoded more than twice.
        """
        fast = self._fast
        while True:
            if not isinstance(exc, UnicodeDecodeError):
                self._one_by_one(region, out, base)
                return
            bad = exc.start
            start = max(_last_end(region, 0, bad), 0)
            end = _next_end(region, bad)
            if end < 0:
                end = len(region)
            if start:
                head = region[:start]
                try:
                    out.extend(fast(head))
                except _Careful:
                    self._one_by_one(head, out, base)
            self._latin1(region[start:end], out, base + start, bad - start)
            if end >= len(region):
                return
            region = region[end:]
            base += end
            try:
                out.extend(fast(region))
                return
            except (_Careful, UnicodeDecodeError) as again:
                exc = again

    def _one_by_one(self, region: _Bytes, out: list[Message], base: int) -> None:
        """The fast path failed somewhere in ``region``: retry it message by message, so
        one odd message (a Latin-1 caller name, a bare LF) costs the careful path only for
        itself, not for the whole read."""
        fast = self._fast
        pos = 0
        n = len(region)
        while pos < n:
            end = _next_end(region, pos)
            if end < 0:
                end = n
            one = region[pos:end]
            try:
                out.extend(fast(one))
            except _Careful:
                self._careful(one, out, base + pos)
            except UnicodeDecodeError as exc:
                self._latin1(one, out, base + pos, exc.start)
            pos = end

    def _latin1(self, one: _Bytes, out: list[Message], base: int, bad: int) -> None:
        """One message with bytes that are not UTF-8 at ``one[bad]``: when that is its only
        oddity (pure CRLF, every line ``Key: value``), split it like the fast path does;
        the result is exactly the careful path's, for a fraction of its cost."""
        lines = one.decode("latin-1").split("\r\n")
        n = len(lines) - 1
        if n < 2 or one.count(b"\n") != n or one.count(b"\r") != n or lines[-2]:
            self._careful(one, out, base)
            return
        del lines[-2:]
        triples = list(map(_partition, lines, repeat(": ", n - 1)))
        if not all(map(_SEP, triples)):
            self._careful(one, out, base)
            return
        v = self._violation("not-utf8", base + bad, "bytes that are not UTF-8; read as Latin-1")
        out.append(from_wire(triples, None, (v,), "latin-1"))

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
        result: list[Message] = []
        append = result.append
        for block in blocks:
            lines = block.split("\r\n")
            triples = [line.partition(": ") for line in lines]
            if not all(map(sep, triples)):
                raise _Careful
            flat = join(lines)
            if "\n" in flat or "\r" in flat:
                raise _Careful
            append(adopt(triples))
        return result

    def _careful(self, region: _Bytes, out: list[Message], base: int) -> None:
        """Line by line, with offsets, recording (or raising on) every deviation.

        ``base`` is the stream offset of ``region[0]``."""
        pos = 0
        n = len(region)
        lines: list[tuple[int, _Bytes]] = []
        pending: list[Violation] = []
        while pos < n:
            nl = region.find(b"\n", pos)
            if nl < 0:  # cannot happen: a region ends with a blank line
                nl = n
            raw = region[pos:nl]
            if raw.endswith(b"\r"):
                line = raw[:-1]
            else:
                line = raw
                pending.append(self._violation("bare-lf", base + nl, "line ends in LF without CR"))
            if line:
                lines.append((base + pos, line))
            elif lines:
                out.append(self._build(lines, pending))
                lines = []
                pending = []
            else:
                self._violation("empty-packet", base + pos, "extra empty line between messages")
            pos = nl + 1
        if lines:  # pragma: no cover - regions always end with a terminator
            out.append(self._build(lines, pending))

    def _build(self, lines: list[tuple[int, _Bytes]], violations: list[Violation]) -> Message:
        block = b"\n".join(line for _, line in lines)
        encoding = "utf-8"
        try:
            block.decode("utf-8")
        except UnicodeDecodeError as exc:
            encoding = "latin-1"
            # Map the error back to a stream offset: find the line holding exc.start.
            at = lines[0][0]
            seen = 0
            for off, line in lines:
                if exc.start < seen + len(line) + 1:
                    at = off + (exc.start - seen)
                    break
                seen += len(line) + 1
            violations.append(
                self._violation("not-utf8", at, "bytes that are not UTF-8; read as Latin-1")
            )
        first_off, first = lines[0]
        first_text = first.decode(encoding)
        if ": " not in first_text and not _looks_like_header(first_text):
            text = "\r\n".join(line.decode(encoding) for _, line in lines)
            return from_wire([], text, tuple(violations), encoding)
        triples: list[tuple[str, str, str]] = []
        for off, line in lines:
            text_line = line.decode(encoding)
            key, sep, value = text_line.partition(": ")
            if not sep:
                key, sep, value = text_line.partition(":")
                if sep:
                    violations.append(
                        self._violation(
                            "header-space",
                            off + len(key),
                            f"header {key!r} has no space after the colon",
                        )
                    )
                else:
                    violations.append(
                        self._violation(
                            "header-syntax", off, f"line without a colon: {text_line[:40]!r}"
                        )
                    )
            triples.append((key, sep, value))
        return from_wire(triples, None, tuple(violations), encoding)

    # -- violations ------------------------------------------------------------------------
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


def _looks_like_header(line: str) -> bool:
    """``Key:value`` with a plausible key (no spaces): a header missing its space."""
    key, sep, _ = line.partition(":")
    return bool(sep) and bool(key) and " " not in key and "\t" not in key
