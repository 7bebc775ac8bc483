"""What every action handler shares: the context, the request view, reply helpers.

The helpers mirror Asterisk's astman_send_* family so that each handler reads like its C
original: ``ack``/``err`` (astman_send_ack/error), ``listack`` + ``item`` + ``complete``
(astman_send_listack, list items, astman_send_list_complete_start/end), or ``send_list``
for the whole event list at once; ``required`` is the usual check of mandatory headers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from amicheck.privileges import Privilege, names_to_mask
from amicheck.profile import Profile
from amicheck.protocol.message import Message
from amicheck.sim import replies
from amicheck.sim.behaviour import COMPLIANT, Behaviour
from amicheck.sim.pbx import Channel, Pbx

__all__ = [
    "ActionContext", "Handler", "RequestLike", "aid", "ack", "err", "listack", "item",
    "complete", "send_list", "required", "has_system", "scan_int", "ast_true",
    "channel_or_error", "callerid_parse", "SessionHooks",
]


class RequestLike(Protocol):
    """The part of :class:`amicheck.protocol.Request` the handlers use."""

    def header(self, name: str, *, skip_empty: bool = False, last: bool = False) -> str: ...

    @property
    def message(self) -> Message: ...


class SessionHooks(Protocol):
    """What a handler may ask of its own session (it never does I/O itself)."""

    def add_filter(self, pattern: str) -> bool:
        """Filter: add an include (``!``: exclude) regex; False when it does not compile."""
        ...

    def wait_event(self, timeout: float | None, response: Message, complete: Message) -> None:
        """WaitEvent: hold the session until an event, a client write or ``timeout`` (None:
        none), then write ``response``, the events held meanwhile and ``complete``."""
        ...


@dataclass
class ActionContext:
    """Everything a handler may touch for one action of one session (docs/internals.md)."""

    session_id: str
    username: str
    privileges: frozenset[str]
    action_id: str | None
    faults: frozenset[str]
    profile: Profile
    pbx: Pbx
    reply: Callable[[Message], None]
    local: str
    remote: str
    tls: bool
    #: how to behave (``faults`` are the names, for information only)
    behaviour: Behaviour = COMPLIANT
    #: the session's own hooks (None: a context without a session, e.g. a unit test)
    hooks: SessionHooks | None = None


Handler = Callable[[ActionContext, RequestLike], None]


def aid(ctx: ActionContext) -> str | None:
    """ActionID as astman_send_response_full writes it: only when non-empty."""
    return ctx.action_id or None


def ack(ctx: ActionContext, message: str | None = None,
         extra: Iterable[tuple[str, str]] = ()) -> None:
    ctx.reply(replies.response("Success", aid(ctx), message, extra))


def err(ctx: ActionContext, message: str) -> None:
    ctx.reply(replies.error(aid(ctx), message))


def listack(ctx: ActionContext, message: str) -> None:
    ctx.reply(replies.response("Success", aid(ctx), message, event_list="start"))


def item(ctx: ActionContext, name: str, fields: Iterable[tuple[str, str]], *,
          id_first: bool = False) -> None:
    ctx.reply(replies.list_item(name, aid(ctx), fields, action_id_last=not id_first))


def complete(ctx: ActionContext, name: str, count: int,
              extra: Iterable[tuple[str, str]] = ()) -> None:
    """astman_send_list_complete_start/end: Event, ActionID, EventList, ListItems, extras."""
    items = [("Event", name)]
    action_id = aid(ctx)
    if action_id is not None:
        items.append(("ActionID", action_id))
    items += [("EventList", "Complete"), ("ListItems", str(count)), *extra]
    ctx.reply(Message(items))


def send_list(ctx: ActionContext, message: str, complete_name: str,
              items: Sequence[tuple[str, Iterable[tuple[str, str]]]],
              extra: Iterable[tuple[str, str]] = (), *, id_first: bool = False) -> None:
    """A whole event list: the listack with ``message``, the ``(event, fields)`` items, and
    the ``complete_name`` event whose ListItems is their count (``extra`` after it)."""
    listack(ctx, message)
    for name, fields in items:
        item(ctx, name, fields, id_first=id_first)
    complete(ctx, complete_name, len(items), extra)


def required(ctx: ActionContext, req: RequestLike, *names: str,
             text: str = "{} not specified") -> list[str] | None:
    """The values of the mandatory headers ``names``; None after answering the error for the
    first one absent or empty: ``text`` with ``{}`` as its name, ``{lower}`` lower-cased
    (Asterisk's texts vary per action, typos included, so the caller spells them)."""
    values = [req.header(name) for name in names]
    for name, value in zip(names, values, strict=True):
        if not value:
            err(ctx, text.format(name, lower=name.lower()))
            return None
    return values


def has_system(ctx: ActionContext) -> bool:
    return bool(names_to_mask(ctx.privileges) & Privilege.SYSTEM)


def scan_int(text: str) -> int | None:
    """sscanf("%30d"): leading whitespace, optional sign, digits; None when none."""
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else None


def ast_true(text: str) -> bool:
    """ast_true."""
    return text.strip().lower() in ("yes", "true", "y", "t", "1", "on")


def channel_or_error(ctx: ActionContext, name: str, missing: str = "No such channel"
                      ) -> Channel | None:
    ch = ctx.pbx.find_channel(name)
    if ch is None:
        err(ctx, missing)
    return ch


def callerid_parse(text: str) -> tuple[str | None, str | None]:
    """ast_callerid_parse -> (name, number); ast_shrink_phone_number on the number."""
    text = text.strip()
    if not text:
        return None, None
    m = re.match(r'^\s*"?([^"<]*?)"?\s*<([^>]*)>', text)
    if m:
        name, num = m.group(1).strip() or None, m.group(2).strip()
    elif re.fullmatch(r"[0-9+*#()\-. ]+", text):
        name, num = None, text
    else:
        name, num = text, None
    if num is not None:
        num = re.sub(r"[()\-. ]", "", num) or None
    return name, num
