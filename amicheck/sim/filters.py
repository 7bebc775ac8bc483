"""Per-session event filters, as the Filter action adds them (manager.c action_filter).

Asterisk compiles each pattern as a POSIX extended regex (``REG_EXTENDED | REG_NOSUB``, no
``REG_NEWLINE``) and runs it over the whole event text, ``\\r\\n`` line ends included: a
pattern that starts with ``!`` excludes, any other includes. With any include filter an
event must match one of them; an event any exclude filter matches is dropped
(match_filter in 13, should_send_event in 22). Python's :mod:`re` stands in for regcomp:
``.`` matches a newline (DOTALL), ``^``/``$`` anchor the whole text, and the POSIX
bracket classes are translated.
"""

from __future__ import annotations

import re

__all__ = ["EventFilters", "compile_posix", "MAX_FILTERS"]

#: Filters one session may hold (Asterisk has no bound; memory here stays bounded).
MAX_FILTERS = 256

_CLASSES = {
    "[:alpha:]": "a-zA-Z", "[:digit:]": "0-9", "[:alnum:]": "a-zA-Z0-9", "[:upper:]": "A-Z",
    "[:lower:]": "a-z", "[:space:]": r" \t\r\n\v\f", "[:blank:]": r" \t", "[:punct:]":
    r"!-/:-@\[-`{-~", "[:xdigit:]": "0-9A-Fa-f", "[:cntrl:]": r"\x00-\x1f\x7f",
    "[:print:]": r"\x20-\x7e", "[:graph:]": r"\x21-\x7e",
}  # fmt: skip
_CLASS_RE = re.compile("|".join(re.escape(k) for k in _CLASSES))


def compile_posix(pattern: str) -> re.Pattern[str] | None:
    """regcomp(REG_EXTENDED) stand-in: the compiled pattern, None when it does not compile."""
    try:
        return re.compile(_CLASS_RE.sub(lambda m: _CLASSES[m.group(0)], pattern), re.DOTALL)
    except (re.error, RecursionError, OverflowError):
        return None


class EventFilters:
    """One session's include and exclude filters."""

    def __init__(self) -> None:
        self.include: list[re.Pattern[str]] = []
        self.exclude: list[re.Pattern[str]] = []

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def add(self, pattern: str) -> bool:
        """Add ``pattern`` (``!`` first: an exclude filter); False when it does not compile."""
        exclude = pattern.startswith("!")
        compiled = compile_posix(pattern[1:] if exclude else pattern)
        if compiled is None:
            return False
        target = self.exclude if exclude else self.include
        if len(target) < MAX_FILTERS:
            target.append(compiled)
        return True

    def passes(self, data: bytes) -> bool:
        """Whether the event ``data`` (its wire bytes) reaches the session."""
        text = data.decode("latin-1")
        if self.include and not any(p.search(text) for p in self.include):
            return False
        return not any(p.search(text) for p in self.exclude)
