"""Who may log in to the simulator: authenticate() of main/manager.c (ami-reference.md
section 2), as the login verdict :class:`~amicheck.protocol.server_session.ServerSession`
waits for.

Every refusal looks the same on the wire (``sleep(1)``, ``Authentication failed``, close:
the session's job), so a wrong password, an unknown user, an ACL deny and a refused MD5 Key
differ only in their security events, as in Asterisk. How it decides is the core's
:class:`~amicheck.sim.behaviour.Behaviour` (``acl``, ``md5_digest``, ``md5_accepts``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amicheck.protocol.server_session import Authenticate, Verdict
from amicheck.sim.behaviour import KeyAttempt

if TYPE_CHECKING:
    from amicheck.sim.core import SimCore

__all__ = ["verdict"]


def _md5(core: SimCore, auth: Authenticate, secret: str) -> Verdict | None:
    """AuthType MD5: None when accepted; ChallengeResponseFailed for a Key refused against a
    challenge (Asterisk says nothing when there is no challenge)."""
    b = core.behaviour
    chal = auth.challenge
    expected = b.md5_digest(chal, secret) if chal else ""
    if b.md5_accepts(KeyAttempt(auth.key, chal, secret, expected, core.issued.keys())):
        return None
    if auth.key and chal:
        return Verdict.refuse(
            "ChallengeResponseFailed",
            [("Challenge", chal), ("Response", auth.key), ("ExpectedResponse", expected)],
        )
    return Verdict.refuse()


def verdict(core: SimCore, ip: str, auth: Authenticate) -> Verdict:
    """authenticate(): the user (case-insensitive), the ACL for ``ip``, the secret or Key."""
    user = core.users.get(auth.username.lower())
    if user is None:
        return Verdict.refuse("InvalidAccountID", unknown_user=True)
    if not core.behaviour.acl(user, ip):
        return Verdict.refuse("FailedACL")
    if user.secret is None:
        return Verdict.refuse()
    if auth.md5:
        refused = _md5(core, auth, user.secret)
        if refused is not None:
            return refused
    elif auth.secret != user.secret:
        return Verdict.refuse("InvalidPassword")
    return Verdict.accept(user.privileges)
