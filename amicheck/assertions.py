"""Assertion helpers for the suites: failures that explain themselves.

The plugin registers this module for assertion rewriting, and every helper hides its own frame
(``__tracebackhide__``), so a failing check points at the suite line and says what was
expected, what arrived and, for messages, which fields differ. Helpers accept an
:class:`amicheck.client.Response` or a :class:`amicheck.protocol.Message`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from amicheck.protocol import Message

__all__ = [
    "Problems",
    "check_cases",
    "as_message",
    "field_diff",
    "assert_success",
    "assert_error",
    "assert_fields",
    "assert_closed",
    "assert_still_open",
    "assert_no_secret",
]


_C = TypeVar("_C")

#: A failure lists at most this many problems, then how many more there were.
MAX_LISTED = 40


class Problems:
    """What one check found wrong across its cases, asserted once at the end.

    A suite test proves one requirement over many cases (users x actions, payloads, login
    variants); each case adds what is wrong and :meth:`assert_none` fails once, with the
    headline and one line per problem, so a failure shows every case, not just the first.
    """

    def __init__(self, headline: str, *, limit: int = MAX_LISTED) -> None:
        self.headline = headline
        self.limit = limit
        self._items: list[str] = []

    def add(self, problem: str) -> None:
        """Record one problem (one line, saying which case and what arrived)."""
        self._items.append(problem)

    def extend(self, problems: Iterable[str]) -> None:
        """Record several problems."""
        self._items.extend(problems)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def text(self) -> str:
        """The failure message: headline, then the problems (capped at ``limit``)."""
        shown = self._items[: self.limit]
        more = len(self._items) - len(shown)
        tail = [f"... and {more} more"] if more > 0 else []
        return f"{self.headline}:\n" + "\n".join([*shown, *tail])

    def assert_none(self) -> None:
        """Fail with :meth:`text` if any problem was recorded."""
        __tracebackhide__ = True
        if self._items:
            raise AssertionError(self.text())


def check_cases(
    headline: str,
    cases: Mapping[str, _C] | Iterable[tuple[str, _C]],
    judge: Callable[[str, _C], str | Iterable[str] | None],
    *,
    stop: Callable[[], bool] | None = None,
) -> Problems:
    """Run ``judge(label, case)`` on every case (a table), then assert none found a problem.

    ``judge`` returns None (fine), one problem or several; ``stop()`` ends the table early
    (the connection is gone, later cases would only repeat it). Returns the (empty) problems.
    """
    __tracebackhide__ = True
    problems = Problems(headline)
    items = cases.items() if isinstance(cases, Mapping) else cases
    for label, case in items:
        found = judge(label, case)
        if isinstance(found, str):
            problems.add(found)
        elif found is not None:
            problems.extend(found)
        if stop is not None and stop():
            break
    problems.assert_none()
    return problems


def as_message(reply: Any) -> Message:
    """The :class:`Message` of a reply (a client ``Response`` or a ``Message``)."""
    msg = getattr(reply, "response", reply)
    if not isinstance(msg, Message):
        raise TypeError(f"expected an AMI Response or Message, got {type(reply).__name__}")
    return msg


def _show(msg: Message) -> str:
    return "\n".join(f"    {k}: {v}" for k, v in msg) or "    (empty message)"


def field_diff(msg: Message, expected: dict[str, str | None]) -> list[str]:
    """``key: expected X, got Y`` for every field that differs (None: must be absent)."""
    lines = []
    for key, want in expected.items():
        got = msg.get(key)
        if got != want:
            want_s = "(absent)" if want is None else repr(want)
            got_s = "(absent)" if got is None else repr(got)
            lines.append(f"{key}: expected {want_s}, got {got_s}")
    return lines


def assert_success(reply: Any, what: str = "") -> None:
    """The reply is ``Response: Success`` (``Follows``/``Goodbye`` count as success too)."""
    __tracebackhide__ = True
    msg = as_message(reply)
    status = (msg.name or "").lower() if msg.kind.value == "response" else ""
    if status not in ("success", "follows", "goodbye"):
        label = f"{what}: " if what else ""
        raise AssertionError(f"{label}expected a successful response, got:\n{_show(msg)}")


def assert_error(reply: Any, message: str | None = None, what: str = "") -> None:
    """The reply is ``Response: Error`` (with exactly ``message``, when given)."""
    __tracebackhide__ = True
    msg = as_message(reply)
    label = f"{what}: " if what else ""
    if msg.kind.value != "response" or (msg.name or "").lower() != "error":
        raise AssertionError(f"{label}expected Response: Error, got:\n{_show(msg)}")
    if message is not None and msg.get("Message") != message:
        raise AssertionError(
            f"{label}Message: expected {message!r}, got {msg.get('Message')!r}\n{_show(msg)}"
        )


def assert_fields(reply: Any, what: str = "", /, **expected: str | None) -> None:
    """Each field has the expected value (None: absent); the error lists every difference.

    Field names are keyword arguments (``ActionID="7"``); lookups ignore case as AMI does.
    """
    __tracebackhide__ = True
    msg = as_message(reply)
    diff = field_diff(msg, dict(expected))
    if diff:
        label = f"{what}: " if what else ""
        raise AssertionError(f"{label}{len(diff)} field(s) differ:\n  " + "\n  ".join(diff)
                             + f"\nmessage:\n{_show(msg)}")


def assert_closed(client: Any, timeout: float = 3.0, what: str = "") -> None:
    """The server closes the connection within ``timeout`` seconds."""
    __tracebackhide__ = True
    if not client.wait_closed(timeout):
        label = f"{what}: " if what else ""
        raise AssertionError(f"{label}the server kept the connection open for {timeout:g} s")


def assert_still_open(client: Any, timeout: float = 3.0, what: str = "") -> None:
    """The connection still answers ``Ping`` (it was not closed or desynchronised)."""
    __tracebackhide__ = True
    from amicheck.errors import AmiCheckError

    label = f"{what}: " if what else ""
    try:
        reply = client.request("Ping", timeout=timeout)
    except AmiCheckError as exc:
        raise AssertionError(f"{label}the connection no longer answers Ping: {exc}") from None
    assert_success(reply, f"{label}Ping")


def assert_no_secret(data: str | bytes, secrets: Iterable[str], where: str = "output") -> None:
    """None of ``secrets`` appears in ``data`` (the secret itself is never printed)."""
    __tracebackhide__ = True
    blob = data if isinstance(data, bytes) else data.encode("utf-8", "replace")
    leaked = [s for s in secrets if s and s.encode("utf-8") in blob]
    if leaked:
        raise AssertionError(f"{len(leaked)} secret(s) found in {where} "
                             f"(lengths {sorted(len(s) for s in leaked)})")
