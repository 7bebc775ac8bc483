"""Builders for the messages the simulator sends, in Asterisk's header order.

``astman_send_response_full`` writes ``Response:``, then ``ActionID:`` only when the action
carried one, then ``EventList:`` for list responses, then ``Message:``. Events carry
``Privilege: <classes>,all`` right after ``Event:``. Keeping this in one place keeps the
simulator byte-compatible with ../shared/conformance/.
"""

from __future__ import annotations

from collections.abc import Iterable

from amicheck.protocol.message import Message

__all__ = ["response", "error", "success", "event", "list_item", "privilege_value"]


def response(
    status: str,
    action_id: str | None,
    message: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
    *,
    event_list: str | None = None,
) -> Message:
    """``Response: <status>`` with ActionID/EventList/Message in Asterisk's order, then extras."""
    items = [("Response", status)]
    if action_id is not None:
        items.append(("ActionID", action_id))
    if event_list is not None:
        items.append(("EventList", event_list))
    if message is not None:
        items.append(("Message", message))
    items.extend(extra)
    return Message(items)


def error(action_id: str | None, message: str) -> Message:
    """``Response: Error`` with ``Message: <message>`` (astman_send_error)."""
    return response("Error", action_id, message)


def success(action_id: str | None, message: str | None = None,
            extra: Iterable[tuple[str, str]] = ()) -> Message:
    """``Response: Success`` (astman_send_ack / astman_send_response)."""
    return response("Success", action_id, message, extra)


def privilege_value(classes: Iterable[str]) -> str:
    """``call,all`` style value of an event's ``Privilege:`` header (authority_to_str + all)."""
    names = [c for c in classes if c != "all"]
    return ",".join([*names, "all"])


def event(name: str, classes: Iterable[str], extra: Iterable[tuple[str, str]] = (),
          *, timestamp: str | None = None) -> Message:
    """A broadcast event: ``Event``, ``Privilege`` (+ ``Timestamp`` when enabled), headers."""
    items = [("Event", name), ("Privilege", privilege_value(classes))]
    if timestamp is not None:
        items.append(("Timestamp", timestamp))
    items.extend(extra)
    return Message(items)


def list_item(name: str, action_id: str | None, extra: Iterable[tuple[str, str]] = (),
              *, action_id_last: bool = True) -> Message:
    """An event-list item: no Privilege filter; ActionID where the action's code puts it.

    Most 13.x list items (QueueParams, QueueMember, CoreShowChannel) append ActionID last;
    pass ``action_id_last=False`` to put it right after ``Event:``.
    """
    items = [("Event", name)]
    tail = [("ActionID", action_id)] if action_id is not None else []
    if not action_id_last:
        items.extend(tail)
    items.extend(extra)
    if action_id_last:
        items.extend(tail)
    return Message(items)
