"""Where the harness may log in from, and logins that are a check's precondition.

A check that logs in as a user whose Permitted IP(s) exclude the harness would fail the
target for the harness's own position (issue 9, AMI-PRV-007 on real Asterisk); these helpers
pick the address each user may log in from and turn a failed precondition into a skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pytest

from amicheck import rules
from amicheck.client import AmiClient
from amicheck.errors import AmiCheckError
from amicheck.profile import User

__all__ = ["Sources", "logged_in", "try_login"]


@dataclass(frozen=True)
class Sources:
    """Where the harness can log in from: this machine's address as the target sees the
    connection, and the optional address outside the ACL (``--ami-outside-source``)."""

    local: str
    outside: str | None

    def can_login(self, user: User) -> bool:
        """Whether the user's Permitted IP(s) cover an address the harness has."""
        return rules.acl_allows(user.permitted, self.local) or (
            self.outside is not None and rules.acl_allows(user.permitted, self.outside)
        )

    def address(self, user: User) -> str | None:
        """Where to log in as ``user`` from: None (this machine) or the outside source."""
        if rules.acl_allows(user.permitted, self.local) or self.outside is None:
            return None
        return self.outside if rules.acl_allows(user.permitted, self.outside) else None

    def reachable(self, users: Iterable[User], what: str) -> list[tuple[User, str | None]]:
        """``users`` each with the address to log in from; skips the test when none is left.

        A user the harness may not log in as (its Permitted IP(s) exclude every address the
        harness has) says nothing about the target: it is left out, never a failure.
        """
        users = list(users)
        pairs = [(u, self.address(u)) for u in users if self.can_login(u)]
        if not pairs:
            where = self.local + (f" or {self.outside}" if self.outside else "")
            left_out = [u.username for u in users]
            detail = f" (left out: {', '.join(left_out)})" if left_out else ""
            pytest.skip(f"no {what} may log in from {where}{detail}")
        return pairs


def try_login(
    connect: Callable[..., AmiClient],
    user: User,
    source_address: str | None = None,
    *,
    events: bool = False,
) -> AmiClient | str:
    """A client logged in as ``user`` from ``source_address``, or why that failed.

    Such a login is a check's precondition, not what it judges (AMI-AUTH and AMI-ACL do):
    callers skip users it fails for, never fail the target for it.
    """
    where = source_address or "this machine"
    if user.secret is None:
        return f"no secret for AMI user {user.username}"
    try:
        client = connect(source_address=source_address)
        client.login(user.username, user.secret, events=events)
    except AmiCheckError as exc:
        return f"login as {user.username} from {where} failed ({exc})"
    return client


def logged_in(
    connect: Callable[..., AmiClient],
    pairs: Iterable[tuple[User, str | None]],
    *,
    events: bool = False,
) -> list[tuple[User, AmiClient]]:
    """Sessions for every (user, source) that logs in; skips the test when none does."""
    sessions: list[tuple[User, AmiClient]] = []
    why: list[str] = []
    for user, source in pairs:
        got = try_login(connect, user, source, events=events)
        if isinstance(got, str):
            why.append(got)
        else:
            sessions.append((user, got))
    if not sessions:
        pytest.skip("cannot check: " + "; ".join(why))
    return sessions
