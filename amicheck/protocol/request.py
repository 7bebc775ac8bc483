"""What an AMI *server* reads: Asterisk 13's get_input/do_message, byte for byte.

The simulator must answer hostile framing exactly as stock Asterisk does, quirks included
(ami-reference.md section 1, M = main/manager.c 13.4.0):

- ``get_input`` keeps an ``inbuf[1025]`` (1024 usable bytes) and looks for ``\\r\\n`` or a
  bare ``\\n``; a lone ``\\r`` stays in the line. A CR in the buffer's last byte cannot pair
  with the LF that did not fit, so a 1023-byte line + CRLF is already "too long".
- 1024 bytes without a line end: the buffer is discarded (13.x keeps nothing; 14.0 keeps the
  last byte), the session is marked ``MESSAGE_LINE_TOO_LONG`` and the rest of the line is
  read as a junk header; at the next empty line the reply is ``Failed to parse message:
  line too long`` and the action does not run.
- lines are C strings: bytes after a NUL are ignored; a line starting with NUL is empty.
- ``AST_MAX_MANHEADERS`` 128: line 129+ sets ``hdr_loss`` and the message answers
  ``Too many lines in message or allocation failure``.

This module only frames; deciding what to answer is the simulator's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amicheck.protocol.grammar import (
    LINE_TOO_LONG,
    MAX_HEADERS,
    MAX_LINE,
    TOO_MANY_LINES,
    blank_skip,
)
from amicheck.protocol.message import Message, from_wire

__all__ = ["Request", "RequestParser"]


@dataclass(slots=True)
class Request:
    """One message as Asterisk's ``struct message`` holds it.

    Attributes:
        lines: the header lines as stored (decoded lossless with surrogateescape).
        error: the parse error Asterisk answers instead of running the action, or None.
        discarded: bytes thrown away by line-too-long discards while reading it.
    """

    lines: list[str] = field(default_factory=list)
    error: str | None = None
    discarded: int = 0

    def header(self, name: str, *, skip_empty: bool = False, last: bool = False) -> str:
        """``__astman_get_header``: case-insensitive key over its full length, ``:`` right
        after it, value without leading bytes < 0x21; ``""`` when absent."""
        n = len(name)
        low = name.lower()
        result = ""
        for line in self.lines:
            if len(line) > n and line[n] == ":" and line[:n].lower() == low:
                value = blank_skip(line[n + 1 :])
                if skip_empty and not value:
                    continue
                if not last:
                    return value
                result = value
        return result

    @property
    def action(self) -> str:
        """``Action`` as process_message reads it: first non-empty value."""
        return self.header("Action", skip_empty=True)

    @property
    def message(self) -> Message:
        """The lines as a Message (split at the first colon; lines without one kept whole)."""
        triples = []
        for line in self.lines:
            key, colon, rest = line.partition(":")
            if not colon:
                triples.append((line, "", ""))
                continue
            value = blank_skip(rest)
            triples.append((key, ":" + rest[: len(rest) - len(value)], value))
        return from_wire(triples)


class RequestParser:
    """Frames a client's byte stream into :class:`Request` objects like Asterisk 13.

    Args:
        keep_last_byte: model Asterisk 14+'s fix (keep the buffer's last byte on a discard,
            so a CRLF split at the edge is still seen). Default False: 13.x behaviour.

    Memory is bounded: at most 1024 bytes of line buffer and 128 stored headers, whatever
    the input.
    """

    def __init__(self, *, keep_last_byte: bool = False) -> None:
        self._inbuf = bytearray()
        self._lines: list[str] = []
        self._hdr_loss = False
        self._too_long = False
        self._discarded = 0
        self._keep_last = keep_last_byte
        self.lines_too_long = 0

    @property
    def buffered(self) -> int:
        """Bytes held in the line buffer (never more than 1024)."""
        return len(self._inbuf)

    def feed(self, data: bytes) -> list[Request]:
        """Frame ``data``; returns every message completed by it, in order."""
        out: list[Request] = []
        inbuf = self._inbuf
        pos = 0
        n = len(data)
        while True:
            nl = inbuf.find(b"\n")
            if nl >= 0:
                end = nl - 1 if nl and inbuf[nl - 1] == 13 else nl
                line = bytes(inbuf[:end])
                del inbuf[: nl + 1]
                self._on_line(line, out)
                continue
            if len(inbuf) >= MAX_LINE:
                # M get_input: "Discarding message from <ip>. Line too long"
                self.lines_too_long += 1
                self._too_long = True
                if self._keep_last:
                    self._discarded += len(inbuf) - 1
                    del inbuf[:-1]
                else:
                    self._discarded += len(inbuf)
                    inbuf.clear()
                continue
            if pos >= n:
                break
            # ast_iostream_read(..., maxlen - inlen): never more than fits in the buffer.
            take = MAX_LINE - len(inbuf)
            inbuf += data[pos : pos + take]
            pos += take
        return out

    def _on_line(self, raw: bytes, out: list[Request]) -> None:
        nul = raw.find(b"\0")
        if nul >= 0:
            raw = raw[:nul]
        if not raw:
            error = None
            if self._hdr_loss:
                error = TOO_MANY_LINES
            elif self._too_long:
                error = LINE_TOO_LONG
            out.append(Request(self._lines, error, self._discarded))
            self._lines = []
            self._hdr_loss = False
            self._too_long = False
            self._discarded = 0
            return
        if len(self._lines) < MAX_HEADERS:
            self._lines.append(raw.decode("utf-8", "surrogateescape"))
        else:
            self._hdr_loss = True
