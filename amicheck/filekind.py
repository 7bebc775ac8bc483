"""What a path that is not a regular file is, in the words every refusal uses.

Profiles, captures, TLS files and report files are all refused the same way before anything
opens them: ``os.stat`` first, because opening a FIFO blocks until a writer comes and a
device such as /dev/zero never ends. One wording, so a user reads the same sentence from
``amicheck run``, ``amicheck pcap``, ``amicheck sim`` and the pytest options.
"""

from __future__ import annotations

import stat

__all__ = ["describe_mode", "not_regular"]


def describe_mode(mode: int) -> str:
    """``is a directory`` / ``is a FIFO (named pipe)`` / ... for a non-regular ``st_mode``."""
    if stat.S_ISDIR(mode):
        return "is a directory"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device"
    if stat.S_ISSOCK(mode):
        return "is a socket"
    return "is not a regular file"


def not_regular(mode: int, what: str) -> str | None:
    """``"is a device, not a profile file"`` for a non-regular ``mode``; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return f"{describe_mode(mode)}, not {what}"
