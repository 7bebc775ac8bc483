"""AMI grammar rules and limits, each with the source it comes from.

Asterisk 13.4.0 ``main/manager.c`` (M) and ``include/asterisk/manager.h`` (H); see
../shared/docs/ami-reference.md section 1. Limits that Asterisk applies to what a *server
reads from clients* (line buffer, header count) are used by :class:`RequestParser`; what a
server *sends* can be far larger (command output, long events), so the client-side
:class:`Parser` is bounded only by a configurable maximum message size.
"""

from __future__ import annotations

__all__ = [
    "INBUF_SIZE",
    "MAX_LINE",
    "MAX_HEADERS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_BANNER",
    "MAX_RECORDED_VIOLATIONS",
    "BANNER_PREFIX",
    "END_COMMAND",
    "FOLLOWS_LINE",
    "LINE_TOO_LONG",
    "TOO_MANY_LINES",
    "blank_skip",
]

#: M: ``struct mansession_session { char inbuf[1025]; }`` -- 1024 usable bytes per line
#: (``maxlen = sizeof(inbuf) - 1`` in get_input).
INBUF_SIZE = 1025
MAX_LINE = INBUF_SIZE - 1

#: H: ``#define AST_MAX_MANHEADERS 128``; do_message drops line 129+ and answers
#: ``Too many lines in message or allocation failure``.
MAX_HEADERS = 128

#: Client side: the largest message we buffer before giving up on it. Command output of a
#: few MB is legitimate (``core show help``, ``sip show peers`` on big systems).
DEFAULT_MAX_MESSAGE_SIZE = 8 * 1024 * 1024

#: The banner is one short line (``Asterisk Call Manager/2.7.0``); anything longer is not AMI.
MAX_BANNER = 256

#: Hostile input must not grow the parser's violation list without bound.
MAX_RECORDED_VIOLATIONS = 100

#: M: session_do: ``ast_iostream_write(..., "Asterisk Call Manager/%s\r\n", AMI_VERSION)``.
BANNER_PREFIX = "Asterisk Call Manager/"

#: M (13.x action_command): ``Response: Follows`` ... ``--END COMMAND--\r\n\r\n``.
FOLLOWS_LINE = b"Response: Follows"
END_COMMAND = b"--END COMMAND--"

#: M: do_message error texts.
LINE_TOO_LONG = "Failed to parse message: line too long"
TOO_MANY_LINES = "Too many lines in message or allocation failure"


def blank_skip(value: str) -> str:
    """``ast_skip_blanks``: drop leading bytes < 0x21 (spaces, tabs, control characters)."""
    i = 0
    n = len(value)
    while i < n and ord(value[i]) < 33:
        i += 1
    return value[i:] if i else value
