"""Helpers shared by the compliance suites (not a test module).

Every network step here has a deadline; a target that hangs or drops the connection gives
a result object saying so (closed / timed out, with what arrived), never a hung run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from amicheck.client import AmiClient
from amicheck.errors import AmiCheckError
from amicheck.profile import Profile, User
from amicheck.protocol import Message
from amicheck.redaction import register_derived
from amicheck.stats import percentile

from ._access import Sources, logged_in, try_login

__all__ = [
    "BULK_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_DELAY_DIFFERENCE",
    "STEP_TIMEOUT",
    "Exchange",
    "LoginAttempt",
    "Sources",
    "TempUserFactory",
    "attempt_login",
    "attempt_md5_login",
    "challenge",
    "collect",
    "concurrently",
    "describe",
    "exchange",
    "has_class",
    "is_denied",
    "known_users",
    "logged_in",
    "try_login",
    "percentile",
    "refusal_differences",
    "reply_fields",
    "ping_bytes",
    "restricted_users",
    "run_probe",
]

#: ``ami_temp_user``: ``(username=None, *, privileges, permitted, secret) -> User``.
TempUserFactory = Callable[..., User]

#: Seconds for one request/response step.
STEP_TIMEOUT = 5.0
#: Seconds for a whole bulk exchange (100 pipelined actions, a 70 kB line ...).
BULK_TIMEOUT = 15.0
#: Seconds without any new byte after which a bulk exchange counts as stalled.
IDLE_TIMEOUT = 2.0
#: Seconds to wait for a first reply to a raw payload before sending the sentinel.
SETTLE_TIMEOUT = 0.5
#: Seconds to wait for the server to close after a failed login or a Logoff.
CLOSE_TIMEOUT = 2.0


# --- profile helpers -----------------------------------------------------------------------


def known_users(profile: Profile) -> list[User]:
    """Users whose secret the profile knows (only those can log in)."""
    return [u for u in profile.users if u.secret]


def has_class(user: User, cls: str) -> bool:
    """Whether the user holds privilege class ``cls`` (``all`` holds every class)."""
    return "all" in user.privileges or cls in user.privileges


def restricted_users(profile: Profile) -> list[User]:
    """Known users without ``all``: the ones privilege checks are about."""
    return [u for u in known_users(profile) if "all" not in u.privileges]


# --- message helpers -----------------------------------------------------------------------


def describe(msg: Message | None) -> str:
    """One line for a failure message: ``Error: Permission denied`` / ``Event Foo``."""
    if msg is None:
        return "no reply"
    if msg.get("Response") is not None:
        text = msg.get("Message")
        return f"Response: {msg.get('Response')}" + (f" / Message: {text}" if text else "")
    if msg.get("Event") is not None:
        return f"Event: {msg.get('Event')}"
    return repr(msg)[:120]


def reply_fields(msg: Message) -> list[tuple[str, str]]:
    """A reply's headers without ActionID (which differs per request by design)."""
    return [(k, v) for k, v in msg if k.lower() != "actionid"]


def is_denied(msg: Message | None) -> bool:
    """``Response: Error`` with ``Message: Permission denied`` (Asterisk's privilege refusal)."""
    return (
        msg is not None
        and (msg.get("Response") or "").lower() == "error"
        and (msg.get("Message") or "").strip().lower() == "permission denied"
    )


def ping_bytes(action_id: str) -> bytes:
    """A CRLF Ping with an ActionID, as raw bytes."""
    return f"Action: Ping\r\nActionID: {action_id}\r\n\r\n".encode()


# --- raw exchanges -------------------------------------------------------------------------


@dataclass
class Exchange:
    """What came back after some raw bytes: messages, and how the reading ended."""

    messages: list[Message] = field(default_factory=list)
    closed: bool = False
    timed_out: bool = False
    stalled: bool = False
    elapsed: float = 0.0

    def with_id(self, action_id: str) -> list[Message]:
        """Messages carrying ``ActionID: action_id``."""
        return [m for m in self.messages if m.get("ActionID") == action_id]

    def first(self, action_id: str) -> Message | None:
        """The first message with that ActionID, or None."""
        found = self.with_id(action_id)
        return found[0] if found else None

    def responses(self) -> list[Message]:
        """Every ``Response:`` message, in order."""
        return [m for m in self.messages if m.get("Response") is not None]

    def ending(self) -> str:
        """How the read ended, for failure messages."""
        if self.closed:
            return "the target closed the connection"
        if self.stalled:
            return f"the target went silent (no byte for {IDLE_TIMEOUT:g} s)"
        if self.timed_out:
            return "the deadline passed"
        return "complete"

    def summary(self, limit: int = 8) -> str:
        """The replies in short form."""
        parts = [
            describe(m) + (f" [ActionID {m.get('ActionID')}]" if m.get("ActionID") else "")
            for m in self.messages[:limit]
        ]
        more = len(self.messages) - limit
        if more > 0:
            parts.append(f"... {more} more")
        return "; ".join(parts) if parts else "nothing"


def collect(
    client: AmiClient,
    done: Callable[[list[Message]], bool],
    *,
    timeout: float = BULK_TIMEOUT,
    idle: float = IDLE_TIMEOUT,
    into: Exchange | None = None,
) -> Exchange:
    """Read messages until ``done(messages)``, the server closes, it stalls or time is up."""
    ex = into if into is not None else Exchange()
    start = time.monotonic()
    deadline = start + timeout
    last_progress = start
    seen = len(client.received)
    while not done(ex.messages):
        now = time.monotonic()
        if client.at_eof:
            ex.closed = True
            break
        if now >= deadline:
            ex.timed_out = True
            break
        if now - last_progress >= idle:
            ex.stalled = True
            break
        wait = min(deadline - now, idle - (now - last_progress), 0.5)
        try:
            ex.messages.extend(client.read_messages(max(wait, 0.01), count=1))
        except AmiCheckError:
            ex.closed = True
            break
        got = len(client.received)
        if got != seen:
            seen = got
            last_progress = time.monotonic()
    if client.at_eof and not done(ex.messages):
        ex.closed = True
    ex.elapsed = time.monotonic() - start
    return ex


def exchange(
    client: AmiClient,
    payload: bytes | Iterable[bytes],
    *,
    sentinel: str,
    timeout: float = BULK_TIMEOUT,
    idle: float = IDLE_TIMEOUT,
    gap: float = 0.0,
    settle: float = SETTLE_TIMEOUT,
) -> Exchange:
    """Send raw bytes, then a Ping with ActionID ``sentinel``; read until its answer.

    Everything the target says about the payload arrives before the sentinel's answer
    (AMI answers in order), so the returned messages are exactly the payload's replies
    plus the sentinel's. The sentinel goes out only once the payload got a first reply (or
    after ``settle`` seconds of silence), so the two never share one read on the target.
    ``payload`` as an iterable of chunks is written chunk by chunk, ``gap`` seconds apart
    (segmentation tests).
    """
    ex = Exchange()
    chunks = [payload] if isinstance(payload, bytes) else list(payload)
    chunks = [c for c in chunks if c]
    try:
        for i, chunk in enumerate(chunks):
            if gap and i:
                time.sleep(gap)
            client.send_bytes(chunk)
        if chunks:
            collect(
                client,
                lambda msgs: any(m.get("Response") for m in msgs),
                timeout=settle,
                idle=settle,
                into=ex,
            )
            ex.timed_out = ex.stalled = False
            if ex.closed:
                return ex
        client.send_bytes(ping_bytes(sentinel))
    except AmiCheckError:
        ex.closed = True
        ex.messages.extend(client.read_messages(0.2, count=None))
        return ex

    def answered(msgs: list[Message]) -> bool:
        return any(m.get("ActionID") == sentinel and m.get("Response") for m in msgs)

    return collect(client, answered, timeout=timeout, idle=idle, into=ex)


# --- logins --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginAttempt:
    """One login as observed from outside: the reply, how long it took, and the close."""

    response: Message | None
    elapsed: float
    closed: bool
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.response is not None and (self.response.get("Response") or "") == "Success"

    @property
    def message(self) -> str | None:
        return None if self.response is None else self.response.get("Message")

    def __str__(self) -> str:
        where = "closed" if self.closed else "left open"
        extra = f" ({self.error})" if self.error else ""
        return f"{describe(self.response)} after {self.elapsed:.2f} s, connection {where}{extra}"


#: Two refusals whose delays differ by more than this can be told apart (issue 5: 0.3 s).
MAX_DELAY_DIFFERENCE = 0.3


def refusal_differences(
    a: LoginAttempt, b: LoginAttempt, labels: tuple[str, str], *, both_close: bool
) -> list[str]:
    """What tells two refused logins apart: the reply (ActionID aside), the close, the delay.

    ``both_close``: each refusal must also close the connection (Asterisk's rule for failed
    logins); otherwise the two only have to agree on it.
    """
    problems = []
    if a.response is None or b.response is None:
        problems.append("a login attempt got no reply")
    elif reply_fields(a.response) != reply_fields(b.response):
        problems.append(f"replies differ: {labels[0]} {reply_fields(a.response)} vs "
                        f"{labels[1]} {reply_fields(b.response)}")
    if both_close and not (a.closed and b.closed):
        problems.append("a failed login left the connection open")
    elif a.closed != b.closed:
        problems.append("one refusal closes the connection and the other does not")
    if abs(a.elapsed - b.elapsed) > MAX_DELAY_DIFFERENCE:
        problems.append(f"delays differ by more than {MAX_DELAY_DIFFERENCE} s")
    return problems


def attempt_login(
    connect: Callable[..., AmiClient],
    username: str,
    secret: str,
    *,
    source_address: str | None = None,
    timeout: float = STEP_TIMEOUT,
    wait_close: bool = True,
) -> LoginAttempt:
    """Log in by hand (plain Secret) and observe reply, delay and whether the server closes."""
    try:
        client = connect(source_address=source_address)
    except AmiCheckError as exc:
        return LoginAttempt(None, 0.0, True, f"connect failed: {exc}")
    client.transcript.add_secret(secret)
    start = time.monotonic()
    try:
        aid = client.send("Login", Username=username, Secret=secret, Events="off")
        response = client.wait_response(aid, timeout).response
    except AmiCheckError as exc:
        return LoginAttempt(None, time.monotonic() - start, client.at_eof, str(exc))
    elapsed = time.monotonic() - start
    accepted = (response.get("Response") or "") == "Success"
    closed = client.wait_closed(CLOSE_TIMEOUT) if wait_close and not accepted else client.at_eof
    return LoginAttempt(response, elapsed, closed)


def challenge(client: AmiClient) -> str | None:
    """Ask ``Challenge`` (AuthType MD5); the challenge string, or None when none came."""
    reply = run_probe(client, "Challenge", {"AuthType": "MD5"})
    return None if reply is None else (reply.get("Challenge") or None)


def attempt_md5_login(
    connect: Callable[..., AmiClient],
    username: str,
    make_key: Callable[[list[str]], str | None],
    *,
    challenges: int = 1,
    source_address: str | None = None,
    timeout: float = STEP_TIMEOUT,
    wait_close: bool = True,
) -> LoginAttempt:
    """An MD5 login observed like :func:`attempt_login`, on a fresh connection.

    Asks ``Challenge`` ``challenges`` times (0: never), then logs in with
    ``make_key(challenges received)``; the key is registered as secret-derived and masked in
    the transcript. ``error`` starts with ``no challenge`` when the target gave none, and with
    ``not applicable`` when ``make_key`` returned None (the case does not arise on this target).
    """
    try:
        client = connect(source_address=source_address)
    except AmiCheckError as exc:
        return LoginAttempt(None, 0.0, True, f"connect failed: {exc}")
    got: list[str] = []
    for _ in range(challenges):
        value = challenge(client)
        if value is None:
            return LoginAttempt(None, 0.0, client.at_eof, "no challenge: Challenge unanswered")
        got.append(value)
    key = make_key(got)
    if key is None:
        client.close()
        return LoginAttempt(None, 0.0, True, "not applicable")
    register_derived(key)
    client.transcript.add_secret(key)
    start = time.monotonic()
    try:
        aid = client.send("Login", AuthType="MD5", Username=username, Key=key, Events="off")
        response = client.wait_response(aid, timeout).response
    except AmiCheckError as exc:
        return LoginAttempt(None, time.monotonic() - start, client.at_eof, str(exc))
    elapsed = time.monotonic() - start
    accepted = (response.get("Response") or "") == "Success"
    closed = client.wait_closed(CLOSE_TIMEOUT) if wait_close and not accepted else client.at_eof
    return LoginAttempt(response, elapsed, closed)


def concurrently(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads at once (each has its own deadline) and return the results.

    Used for the failed-login probes, each of which waits the target's failure delay.
    """
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int, fn: Callable[[], Any]) -> None:
        try:
            results[i] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(i, fn), daemon=True) for i, fn in enumerate(calls)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(BULK_TIMEOUT + CLOSE_TIMEOUT)
    if errors:
        raise errors[0]
    return results


def run_probe(client: AmiClient, action: str, headers: dict[str, str]) -> Message | None:
    """Send one action and return its response Message (None: no answer / connection lost)."""
    try:
        return client.request(Message.action(action, **headers), timeout=STEP_TIMEOUT).response
    except AmiCheckError:
        return None
