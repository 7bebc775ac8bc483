"""AMI-ACL: the Permitted IP(s) list is enforced, and an empty list denies everyone.

The UCM guide's rule (empty list = all denied) differs from stock Asterisk (no rule = all
allowed); the suite checks the guide's rule. A refusal must look exactly like a wrong
password (same text, delay and close) so that it reveals nothing about the account.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest

from amicheck import rules
from amicheck.assertions import Problems
from amicheck.client import AmiClient
from amicheck.plugin import Target
from amicheck.profile import Profile

from ._support import (
    LoginAttempt,
    Sources,
    TempUserFactory,
    attempt_login,
    concurrently,
    known_users,
    refusal_differences,
)

#: Replies to two failed logins may differ in delay by at most this much (seconds).
#: A secret no profile uses (for the wrong-password comparison).
WRONG_SECRET = "amicheck-Wr0ng-secret"
#: The user the simulator is given for the empty-list probe.
PROBE_USERNAME, PROBE_SECRET = "aclprobe01", "Pr0be-Acl01"


@pytest.mark.requirement("AMI-ACL-001")
def test_permitted_list_enforced(
    ami_profile: Profile,
    ami_target: Target,
    ami_connect: Callable[..., AmiClient],
    ami_sources: Sources,
) -> None:
    """Login works inside the Permitted IP list; outside it fails exactly like a bad password."""
    outside = ami_target.outside_source
    if outside is None:
        pytest.skip("no address outside the ACL: pass --ami-outside-source IP (an address of "
                    "this machine that no user's Permitted IP(s) covers)")
    local = ami_sources.local
    users = [u for u in known_users(ami_profile)
             if rules.acl_allows(u.permitted, local) and not rules.acl_allows(u.permitted, outside)]
    if not users:
        pytest.skip(f"no user with a known secret permits {local} (this machine) but not "
                    f"{outside}")
    user = users[0]
    assert user.secret is not None
    inside = attempt_login(ami_connect, user.username, user.secret, wait_close=False)
    assert inside.ok, (
        f"login as {user.username} from {local}, inside its Permitted IP(s) "
        f"{list(user.permitted)}, was refused: {inside}"
    )
    denied, wrong = concurrently(
        partial(attempt_login, ami_connect, user.username, user.secret, source_address=outside),
        partial(attempt_login, ami_connect, user.username, WRONG_SECRET),
    )
    assert isinstance(denied, LoginAttempt) and isinstance(wrong, LoginAttempt)
    assert not denied.ok, (
        f"login as {user.username} from {outside}, OUTSIDE its Permitted IP(s) "
        f"{list(user.permitted)}, succeeded: {denied}"
    )
    problems = refusal_differences(denied, wrong, ("ACL refusal", "wrong password"),
                                   both_close=False)
    assert not problems, (
        "an ACL refusal can be told apart from a wrong password: " + "; ".join(problems)
        + f"\n  ACL refusal from {outside}: {denied}\n  wrong password from {local}: {wrong}"
    )


@pytest.mark.requirement("AMI-ACL-002")
def test_empty_list_denies_all(
    ami_profile: Profile,
    ami_target: Target,
    ami_connect: Callable[..., AmiClient],
    ami_temp_user: TempUserFactory,
) -> None:
    """A user whose Permitted IP(s) list is empty cannot log in from anywhere."""
    users = [u for u in known_users(ami_profile) if not u.permitted]
    if ami_target.is_sim and not any(u.username == PROBE_USERNAME for u in users):
        users.append(ami_temp_user(PROBE_USERNAME, privileges=("reporting",), permitted=(),
                                   secret=PROBE_SECRET))
    if not users:
        pytest.skip("the profile has no user with an empty Permitted IP(s) list and a known "
                    "secret to try")
    sources: list[str | None] = [None]
    if ami_target.outside_source:
        sources.append(ami_target.outside_source)
    cases = [(u, src) for u in users for src in sources]
    results = concurrently(*[partial(attempt_login, ami_connect, u.username, u.secret or "",
                                     source_address=src) for u, src in cases])
    problems = Problems("users with an EMPTY Permitted IP(s) list logged in")
    problems.extend(f"{u.username} from {src or 'this machine'}: {r}"
                    for (u, src), r in zip(cases, results, strict=True) if r.ok)
    problems.assert_none()
