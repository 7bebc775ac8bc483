"""The parser's slow paths: line by line, with byte offsets, recording every deviation.

The fast path in parser.py handles well-formed CRLF regions with ``split``/``partition``;
whatever it refuses (a bare LF, a lone CR, ``Key:value``, Latin-1 bytes, raw text blocks,
extra empty lines) is re-parsed here, one message at a time, so one odd message costs the
careful path only for itself. ``violation`` is the parser's recorder: it counts and keeps
the deviation, or raises ``RemoteProtocolError`` when the parser is strict.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import repeat
from operator import itemgetter

from amicheck.protocol.message import Message, Violation, from_wire

__all__ = ["Bytes", "Careful", "careful", "last_end", "latin1", "next_end", "one_by_one",
           "parse_follows", "recover"]

Bytes = bytes | bytearray  # regions are slices of the read buffer
Record = Callable[[str, int, str], Violation]
Fast = Callable[[Bytes], list[Message]]

_SEP = itemgetter(1)
_partition = str.partition
_FOLLOWS_HEADER_KEYS = frozenset({"privilege", "actionid"})


class Careful(Exception):
    """Internal: the fast path met something it does not handle."""


def next_end(buf: bytes | bytearray, pos: int) -> int:
    """Index just past the FIRST blank-line terminator at or after ``pos``, or -1.

    The search for LF LF is bounded by the first LF CR LF, so that scanning message by
    message stays linear in a pure-CRLF stream, where LF LF never occurs.
    """
    i = buf.find(b"\n\r\n", pos)
    j = buf.find(b"\n\n", pos, i + 3 if i >= 0 else len(buf))
    if j >= 0:
        return j + 2
    return i + 3 if i >= 0 else -1


def last_end(buf: bytes | bytearray, start: int, stop: int | None = None) -> int:
    """Index just past the LAST blank-line terminator within ``buf[start:stop]``, or -1."""
    stop = len(buf) if stop is None else stop
    i = buf.rfind(b"\n\r\n", start, stop)
    j = buf.rfind(b"\n\n", i if i > start else start, stop)  # only a later one matters
    # The two patterns can never end at the same byte, so the later start wins.
    return i + 3 if i > j else (j + 2 if j >= 0 else -1)


def parse_follows(head_and_body: bytes, base: int, violation: Record) -> Message:
    """A 13.x ``Response: Follows`` message without its ``--END COMMAND--``: headers, text."""
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
            violation(
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
def recover(
    region: Bytes, out: list[Message], base: int, exc: Exception, fast: Fast, violation: Record
) -> None:
    """The fast path failed in ``region`` (stream offset ``base``) with ``exc``.

    For bytes that are not UTF-8 (Latin-1 caller names are common in real traffic) the
    error says where: the messages before that one are fast (they decoded), that one
    is read as Latin-1, and the rest is tried again. Anything else is retried message
    by message. No byte is decoded more than twice.
    """
    while True:
        if not isinstance(exc, UnicodeDecodeError):
            one_by_one(region, out, base, fast, violation)
            return
        bad = exc.start
        start = max(last_end(region, 0, bad), 0)
        end = next_end(region, bad)
        if end < 0:
            end = len(region)
        if start:
            head = region[:start]
            try:
                out.extend(fast(head))
            except Careful:
                one_by_one(head, out, base, fast, violation)
        latin1(region[start:end], out, base + start, bad - start, violation)
        if end >= len(region):
            return
        region = region[end:]
        base += end
        try:
            out.extend(fast(region))
            return
        except (Careful, UnicodeDecodeError) as again:
            exc = again

def one_by_one(
    region: Bytes, out: list[Message], base: int, fast: Fast, violation: Record
) -> None:
    """The fast path failed somewhere in ``region``: retry it message by message, so
    one odd message (a Latin-1 caller name, a bare LF) costs the careful path only for
    itself, not for the whole read."""
    pos = 0
    n = len(region)
    while pos < n:
        end = next_end(region, pos)
        if end < 0:
            end = n
        one = region[pos:end]
        try:
            out.extend(fast(one))
        except Careful:
            careful(one, out, base + pos, violation)
        except UnicodeDecodeError as exc:
            latin1(one, out, base + pos, exc.start, violation)
        pos = end

def latin1(one: Bytes, out: list[Message], base: int, bad: int, violation: Record) -> None:
    """One message with bytes that are not UTF-8 at ``one[bad]``: when that is its only
    oddity (pure CRLF, every line ``Key: value``), split it like the fast path does;
    the result is exactly the careful path's, for a fraction of its cost."""
    lines = one.decode("latin-1").split("\r\n")
    n = len(lines) - 1
    if n < 2 or one.count(b"\n") != n or one.count(b"\r") != n or lines[-2]:
        careful(one, out, base, violation)
        return
    del lines[-2:]
    triples = list(map(_partition, lines, repeat(": ", n - 1)))
    if not all(map(_SEP, triples)):
        careful(one, out, base, violation)
        return
    v = violation("not-utf8", base + bad, "bytes that are not UTF-8; read as Latin-1")
    out.append(from_wire(triples, None, (v,), "latin-1"))


def careful(region: Bytes, out: list[Message], base: int, violation: Record) -> None:
    """Line by line, with offsets, recording (or raising on) every deviation.

    ``base`` is the stream offset of ``region[0]``."""
    pos = 0
    n = len(region)
    lines: list[tuple[int, Bytes]] = []
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
            pending.append(violation("bare-lf", base + nl, "line ends in LF without CR"))
        if line:
            lines.append((base + pos, line))
        elif lines:
            out.append(_build(lines, pending, violation))
            lines = []
            pending = []
        else:
            violation("empty-packet", base + pos, "extra empty line between messages")
        pos = nl + 1
    if lines:  # pragma: no cover - regions always end with a terminator
        out.append(_build(lines, pending, violation))

def _build(
    lines: list[tuple[int, Bytes]], violations: list[Violation], violation: Record
) -> Message:
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
            violation("not-utf8", at, "bytes that are not UTF-8; read as Latin-1")
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
                    violation(
                        "header-space",
                        off + len(key),
                        f"header {key!r} has no space after the colon",
                    )
                )
            else:
                violations.append(
                    violation(
                        "header-syntax", off, f"line without a colon: {text_line[:40]!r}"
                    )
                )
        triples.append((key, sep, value))
    return from_wire(triples, None, tuple(violations), encoding)

# -- violations ------------------------------------------------------------------------


def _looks_like_header(line: str) -> bool:
    """``Key:value`` with a plausible key (no spaces): a header missing its space."""
    key, sep, _ = line.partition(":")
    return bool(sep) and bool(key) and " " not in key and "\t" not in key
