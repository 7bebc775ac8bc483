"""Assertion helpers for the suites: failures that explain themselves.

The plugin registers this module for assertion rewriting, and every helper hides its own frame
(``__tracebackhide__``), so a failing check points at the suite line and says what was
expected, what arrived and, for messages, which fields differ. Helpers accept an
:class:`amicheck.client.Response` or a :class:`amicheck.protocol.Message`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from amicheck.protocol import Message

__all__ = [
    "as_message",
    "field_diff",
    "assert_success",
    "assert_error",
    "assert_fields",
    "assert_closed",
    "assert_still_open",
    "assert_no_secret",
]


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
