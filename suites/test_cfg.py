"""AMI-CFG: the profile's users and settings against the UCM rules, observed live where possible.

The static rules come from :mod:`amicheck.rules` (the same functions the simulator uses to
refuse a bad configuration), so the suite and the simulator can never disagree on a rule.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from amicheck import rules
from amicheck.assertions import Problems
from amicheck.client import AmiClient
from amicheck.errors import AmiCheckError
from amicheck.plugin import Target
from amicheck.profile import Profile

from ._support import STEP_TIMEOUT, describe

STOCK_PROBE_TIMEOUT = 2.0


def _user_findings(profile: Profile, rule: str) -> list[rules.Finding]:
    out: list[rules.Finding] = []
    for i, user in enumerate(profile.users):
        out += [f for f in rules.check_user(user, i) if f.rule == rule]
    return out


def _need_users(profile: Profile) -> None:
    if not profile.users:
        pytest.skip("the profile lists no [[users]]")


@pytest.mark.requirement("AMI-CFG-001")
def test_username_length(ami_profile: Profile) -> None:
    """Every AMI username has at least 8 characters (UCM guide, Create New AMI User)."""
    _need_users(ami_profile)
    bad = [f for f in _user_findings(ami_profile, "username-length") if f.is_error]
    assert not bad, "usernames too short:\n" + "\n".join(str(f) for f in bad)


@pytest.mark.requirement("AMI-CFG-002")
def test_password_policy(ami_profile: Profile) -> None:
    """Every password the profile knows has >= 6 characters, a digit and a letter or special."""
    _need_users(ami_profile)
    if not any(u.secret for u in ami_profile.users):
        pytest.skip("no secret is known (set the users' secret_env variables to check them)")
    bad = [f for f in _user_findings(ami_profile, "password-policy") if f.is_error]
    assert not bad, "weak passwords:\n" + "\n".join(str(f) for f in bad)


@pytest.mark.requirement("AMI-CFG-003")
def test_privileges_offered(ami_profile: Profile) -> None:
    """Users hold only privileges a UCM offers (no system, command or config)."""
    _need_users(ami_profile)
    bad = [f for f in _user_findings(ami_profile, "privileges-set") if f.is_error]
    assert not bad, "privileges a UCM does not offer:\n" + "\n".join(str(f) for f in bad)


@pytest.mark.requirement("AMI-CFG-004")
def test_permitted_entries(ami_profile: Profile) -> None:
    """Every user has at least one valid Permitted IP entry (an empty list denies everything)."""
    _need_users(ami_profile)
    bad = _user_findings(ami_profile, "permitted-entries")
    assert not bad, "Permitted IP(s) problems:\n" + "\n".join(str(f) for f in bad)


@pytest.mark.requirement("AMI-CFG-005")
def test_port_and_banner(
    ami_target: Target, ami_profile: Profile, ami_connect: Callable[..., AmiClient]
) -> None:
    """The AMI port accepts a connection and greets with the profile's banner."""
    expected = ami_profile.settings.banner
    try:
        client = ami_connect(timeout=STEP_TIMEOUT)
    except AmiCheckError as exc:
        pytest.fail(f"AMI port {ami_target.host}:{ami_target.port} gave no banner: {exc}")
    got = client.banner
    first = client.received[:80]
    assert got == expected, (
        f"banner on {ami_target.host}:{ami_target.port} is {got!r}, the profile expects "
        f"{expected!r} (first bytes: {first!r})"
    )


@pytest.mark.requirement("AMI-CFG-006")
def test_port_layout(
    ami_target: Target, ami_profile: Profile, ami_connect: Callable[..., AmiClient]
) -> None:
    """AMI ports are distinct, clear of other UCM services, and nothing answers AMI on 5038."""
    s = ami_profile.settings
    problems = Problems("port problems")
    problems.extend(str(f) for f in rules.check_settings(s) if f.rule == "ports" and f.is_error)
    if s.port == s.stock_port:
        problems.add(f"settings.port: {s.port} is the stock Asterisk port")
    stock = ami_target.stock_port
    if stock:
        where = "the simulator's stand-in for 5038" if ami_target.is_sim else "the stock port"
        try:
            client = ami_connect(port=stock, timeout=STOCK_PROBE_TIMEOUT)
        except AmiCheckError:
            pass  # refused, closed or silent: no AMI there
        else:
            if client.banner:
                problems.add(
                    f"{ami_target.host}:{stock} ({where}) serves AMI: banner {client.banner!r}"
                )
    problems.assert_none()


@pytest.mark.requirement("AMI-CFG-007")
def test_event_settings(ami_client: AmiClient, ami_profile: Profile) -> None:
    """Events carry Timestamp exactly when the profile enables it; the write timeout is valid."""
    s = ami_profile.settings
    problems = Problems("event settings")
    problems.extend(
        str(f) for f in rules.check_settings(s) if f.rule == "write-timeout" and f.is_error
    )
    marker = "amicheck-cfg-timestamp"
    reply = ami_client.request("UserEvent", UserEvent=marker, timeout=STEP_TIMEOUT)
    if not reply.ok:
        pytest.fail(f"UserEvent (to observe an event) was refused: {describe(reply.response)}")
    event = ami_client.wait_event(
        lambda m: (m.name or "").lower() == "userevent" and m.get("UserEvent") == marker,
        timeout=STEP_TIMEOUT,
    )
    has = event.get("Timestamp") is not None
    if has != s.timestamp_events:
        problems.add(
            f"settings.timestamp_events is {str(s.timestamp_events).lower()} but events "
            + ("carry" if has else "lack")
            + f" a Timestamp header (UserEvent: {list(event.keys())})"
        )
    problems.assert_none()
