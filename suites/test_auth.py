"""AMI-AUTH: login, failures that reveal nothing, MD5 challenge, Logoff, and the
pre-authentication limits (auth timeout, unauthenticated-session limit).

Password guessing runs only with the ``bruteforce`` marker opted in, rate-limited, and stops
at the first success; a secret never appears in a message (guesses are named by number).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import pytest

from amicheck import rules
from amicheck.assertions import Problems
from amicheck.client import AmiClient
from amicheck.errors import AmiCheckError, ConnectError, ConnectionClosedError
from amicheck.plugin import Target
from amicheck.profile import Profile
from amicheck.redaction import md5_key

from ._support import (
    CLOSE_TIMEOUT,
    STEP_TIMEOUT,
    LoginAttempt,
    Sources,
    attempt_login,
    attempt_md5_login,
    challenge,
    concurrently,
    describe,
    is_denied,
    known_users,
    refusal_differences,
    run_probe,
)

WRONG_SECRET = "amicheck-Wr0ng-secret"
UNKNOWN_USER = "amicheck-nosuchuser"
#: Actions that must be refused before login (read-only if a target wrongly runs them).
PREAUTH_PROBES: tuple[tuple[str, dict[str, str]], ...] = (
    ("Ping", {}),
    ("CoreStatus", {}),
    ("Status", {}),
    ("ListCommands", {}),
    ("Command", {"Command": "core show version"}),
)
#: Common weak AMI passwords (vendor defaults and the usual suspects); short on purpose.
WEAK_PASSWORDS: tuple[str, ...] = (
    "admin", "password", "123456", "abcdef", "abc123", "admin123", "password1", "amp111",
    "ucm123", "Password1",
)
#: Pause between two guesses (on top of the target's own failure delay).
GUESS_INTERVAL = 0.5


def _first_known(profile: Profile, sources: Sources) -> tuple[str, str]:
    """A user with a known secret that may log in from this machine (``all`` preferred)."""
    users = known_users(profile)
    if not users:
        pytest.skip("no user with a known secret in the profile (set secret_env)")
    users = [u for u in users if rules.acl_allows(u.permitted, sources.local)]
    if not users:
        pytest.skip(f"no user with a known secret may log in from {sources.local}")
    best = next((u for u in users if "all" in u.privileges), users[0])
    assert best.secret is not None
    return best.username, best.secret


@pytest.mark.requirement("AMI-AUTH-001")
def test_actions_before_login_refused(ami_connect: Callable[..., AmiClient]) -> None:
    """Before login every action but Login/Logoff/Challenge gets Permission denied, and the
    session stays open."""
    client = ami_connect()
    problems = Problems("unauthenticated session ran actions")
    for action, headers in PREAUTH_PROBES:
        reply = run_probe(client, action, headers)
        if reply is None:
            pytest.fail(f"{action} before login: no reply within {STEP_TIMEOUT:g} s "
                        f"({'connection closed' if client.at_eof else 'silent'})")
        if not is_denied(reply):
            problems.add(f"{action} before login answered {describe(reply)}")
    if challenge(client) is None or client.at_eof:
        problems.add("the session did not stay open after the refusals (Challenge unanswered)")
    problems.assert_none()


@pytest.mark.requirement("AMI-AUTH-002")
def test_no_user_enumeration(
    ami_profile: Profile, ami_connect: Callable[..., AmiClient], ami_sources: Sources
) -> None:
    """An unknown user and a wrong password get the same reply, delay and close."""
    if not ami_profile.users:
        pytest.skip("the profile lists no [[users]]")
    # a user this machine may log in as: else its refusal would be an ACL one (AMI-ACL-001)
    name = next((u.username for u in ami_profile.users
                 if rules.acl_allows(u.permitted, ami_sources.local)),
                ami_profile.users[0].username)
    unknown, wrong = concurrently(
        partial(attempt_login, ami_connect, UNKNOWN_USER, WRONG_SECRET),
        partial(attempt_login, ami_connect, name, WRONG_SECRET),
    )
    assert isinstance(unknown, LoginAttempt) and isinstance(wrong, LoginAttempt)
    assert not unknown.ok and not wrong.ok, (
        f"a bad login succeeded: unknown user: {unknown}; wrong password: {wrong}"
    )
    problems = refusal_differences(unknown, wrong, ("unknown user", "wrong password"),
                                   both_close=True)
    assert not problems, (
        "failed logins reveal whether a user exists: " + "; ".join(problems)
        + f"\n  unknown user: {unknown}\n  wrong password for {name}: {wrong}"
    )


@pytest.mark.requirement("AMI-AUTH-003")
def test_md5_challenge_login(
    ami_profile: Profile, ami_connect: Callable[..., AmiClient], ami_sources: Sources
) -> None:
    """MD5 challenge login works, also when Challenge was asked twice (the last one counts)."""
    username, secret = _first_known(ami_profile, ami_sources)
    client = ami_connect()
    client.transcript.add_secret(secret)
    challenges = []
    for _ in range(2):
        reply = run_probe(client, "Challenge", {"AuthType": "MD5"})
        value = None if reply is None else reply.get("Challenge")
        if reply is None or not value:
            pytest.fail(f"Challenge (AuthType MD5) gave no challenge: {describe(reply)}")
        challenges.append(value)
    key = md5_key(challenges[-1], secret)
    client.transcript.add_secret(key)
    reply = run_probe(
        client, "Login", {"AuthType": "MD5", "Username": username, "Key": key, "Events": "off"}
    )
    same = "the same" if challenges[0] == challenges[1] else "different"
    assert reply is not None and (reply.get("Response") or "") == "Success", (
        f"MD5 login as {username} with the key for the last of two Challenges ({same} "
        f"challenges) was refused: {describe(reply)}"
    )
    ping = run_probe(client, "Ping", {})
    assert ping is not None and ping.get("Response") == "Success", (
        f"Ping after MD5 login: {describe(ping)}"
    )


@pytest.mark.requirement("AMI-AUTH-004")
def test_logoff_closes(ami_client: AmiClient) -> None:
    """Logoff answers Goodbye and the server closes the connection."""
    try:
        reply = ami_client.logoff(timeout=STEP_TIMEOUT)
    except AmiCheckError as exc:
        pytest.fail(f"Logoff: {exc}")
    assert reply is not None, "the server closed without answering Logoff"
    assert reply.status == "Goodbye", f"Logoff answered {describe(reply.response)}"
    assert ami_client.wait_closed(CLOSE_TIMEOUT), (
        f"the connection is still open {CLOSE_TIMEOUT:g} s after Goodbye"
    )


@pytest.mark.slow
@pytest.mark.requirement("AMI-AUTH-005")
def test_auth_timeout(ami_profile: Profile, ami_connect: Callable[..., AmiClient]) -> None:
    """A connection that does not log in is closed after the profile's auth timeout."""
    limit = float(ami_profile.settings.auth_timeout_s)
    grace = 3.0
    start = time.monotonic()
    client = ami_connect()
    closed = client.wait_closed(limit + grace)
    elapsed = time.monotonic() - start
    assert closed, (
        f"an unauthenticated connection is still open after {elapsed:.1f} s "
        f"(settings.auth_timeout_s = {limit:g})"
    )
    assert elapsed >= limit - 0.5, (
        f"closed after {elapsed:.1f} s, before settings.auth_timeout_s = {limit:g}"
    )


@pytest.mark.requirement("AMI-AUTH-006")
def test_unauthenticated_limit(
    ami_profile: Profile, ami_connect: Callable[..., AmiClient]
) -> None:
    """At most ``auth_limit`` unauthenticated sessions are admitted; the next is turned away."""
    limit = ami_profile.settings.auth_limit
    admitted = 0
    refusal = ""
    for _ in range(limit + 1):
        try:
            ami_connect(timeout=STEP_TIMEOUT)
        except (ConnectionClosedError, ConnectError) as exc:
            if not admitted:
                pytest.fail(f"not even one unauthenticated session was admitted: {exc}")
            refusal = str(exc)
            break
        except AmiCheckError as exc:  # silent: a hang is no refusal
            pytest.fail(f"connection {admitted + 1} got no banner and was not closed: {exc}")
        admitted += 1
    assert refusal, (
        f"{admitted} unauthenticated sessions were admitted at once "
        f"(settings.auth_limit = {limit})"
    )
    assert admitted <= limit, f"{admitted} sessions admitted before a refusal (limit {limit})"


@pytest.mark.bruteforce
@pytest.mark.requirement("AMI-AUTH-007")
def test_weak_passwords(
    ami_profile: Profile, ami_target: Target, ami_connect: Callable[..., AmiClient]
) -> None:
    """No AMI user accepts a password from a short list of common weak ones.

    A known secret is compared offline and a hit confirmed with one login; unknown secrets
    are guessed live, one attempt at a time, stopping at the first success.
    """
    if not ami_target.allow_bruteforce:
        pytest.skip("password guessing: opt in with --ami-allow-bruteforce")
    if not ami_profile.users:
        pytest.skip("the profile lists no [[users]]")
    attempts = 0
    for user in ami_profile.users:
        if user.secret is not None:
            if user.secret not in WEAK_PASSWORDS:
                continue
            index = WEAK_PASSWORDS.index(user.secret) + 1
            hit = attempt_login(ami_connect, user.username, user.secret, wait_close=False)
            attempts += 1
            assert not hit.ok, (
                f"user {user.username} logs in with guess #{index} of the weak-password list"
            )
            continue
        for index, guess in enumerate(WEAK_PASSWORDS, 1):
            if attempts:
                time.sleep(GUESS_INTERVAL)
            hit = attempt_login(ami_connect, user.username, guess, wait_close=False)
            attempts += 1
            assert not hit.ok, (
                f"user {user.username} logs in with guess #{index} of the weak-password list "
                f"(found after {attempts} attempts)"
            )


@pytest.mark.requirement("AMI-AUTH-008")
def test_md5_wrong_keys_refused(
    ami_profile: Profile, ami_connect: Callable[..., AmiClient], ami_sources: Sources
) -> None:
    """Only the lower-case key of the session's current challenge logs in: a wrong key, a key
    for another challenge, the upper-case key and a key without a Challenge are each refused
    exactly like a wrong plain password (reply, close, delay), each on a fresh connection.
    The right key must log in first; if it does not, nothing here can be judged (skip)."""
    username, secret = _first_known(ami_profile, ami_sources)
    right = attempt_md5_login(ami_connect, username, lambda cs: md5_key(cs[-1], secret),
                              wait_close=False)
    if not right.ok:
        pytest.skip(f"the right MD5 key for {username} is refused ({right}; AMI-AUTH-003), "
                    "so a refused wrong key proves nothing")
    try:
        other = ami_connect()  # another session's challenge, valid while that session lives
    except AmiCheckError as exc:
        pytest.skip(f"cannot open a second session for its challenge: {exc}")
    other_challenge = challenge(other)
    if other_challenge is None:
        pytest.skip("a second session got no MD5 challenge (AMI-AUTH-003)")

    def first_of_two(cs: list[str]) -> str | None:
        # Asterisk keeps a session's first challenge: then the first key is the right one.
        return None if cs[0] == cs[-1] else md5_key(cs[0], secret)

    cases: dict[str, tuple[int, Callable[[list[str]], str | None]]] = {
        "a wrong key": (1, lambda cs: md5_key(cs[-1], WRONG_SECRET)),
        "the key for the first of two different Challenges": (2, first_of_two),
        "the key for another session's challenge": (
            1, lambda cs: md5_key(other_challenge, secret)),
        "the upper-case hex form of the right key": (
            1, lambda cs: md5_key(cs[-1], secret).upper()),
        "the key md5(secret) with no Challenge asked": (0, lambda cs: md5_key("", secret)),
    }
    calls = [partial(attempt_login, ami_connect, username, WRONG_SECRET)] + [
        partial(attempt_md5_login, ami_connect, username, key, challenges=n)
        for n, key in cases.values()
    ]
    wrong, *results = concurrently(*calls)
    other.close()
    assert isinstance(wrong, LoginAttempt)
    problems = Problems(f"MD5 login as {username} is not bound to the session's challenge "
                        "and key")
    for label, attempt in zip(cases, results, strict=True):
        assert isinstance(attempt, LoginAttempt)
        if attempt.error.startswith("no challenge"):
            pytest.skip(f"{label}: the target gave no MD5 challenge (AMI-AUTH-003)")
        if attempt.error == "not applicable":
            continue
        if attempt.ok:
            problems.add(f"{label} was ACCEPTED: {attempt}")
            continue
        diff = refusal_differences(attempt, wrong, (label, "wrong password"), both_close=True)
        if diff:
            problems.add(f"{label} is refused unlike a wrong password: {'; '.join(diff)}"
                         f" ({attempt}; wrong password: {wrong})")
    problems.assert_none()
