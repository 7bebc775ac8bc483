"""Login, Challenge and Events of one simulator session (M: action_login, authenticate,
action_challenge, action_events; ami-reference.md section 2).

Every failure path ends in :meth:`AmiSession.fail` (``sleep(1)``, ``Authentication
failed``, close), so a wrong password, an unknown user, an ACL deny and a refused MD5 Key
look the same on the wire; only the security events differ, as in Asterisk. Who may log in
is the core's :class:`~amicheck.sim.behaviour.Behaviour` (``acl``, ``md5_digest``,
``md5_accepts``, ``reveal_unknown_user``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amicheck.privileges import names_to_mask, strings_to_mask
from amicheck.protocol.request import Request
from amicheck.sim import replies
from amicheck.sim.behaviour import KeyAttempt
from amicheck.sim.core import tv

if TYPE_CHECKING:
    from amicheck.sim.session import AmiSession

__all__ = ["login", "challenge", "events"]

_SYSTEM = names_to_mask(("system",))
_FULLY_BOOTED = b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"


def challenge(sess: AmiSession, req: Request, aid: str | None) -> None:
    """action_challenge: one challenge per session, made on the first Challenge."""
    if req.header("AuthType").lower() == "md5":
        if not sess.challenge_value:
            sess.challenge_value = sess.core.challenge()
        sess.send(replies.response("Success", aid, None, [("Challenge", sess.challenge_value)]))
    else:
        sess.send(replies.error(aid, "Must specify AuthType"))


def events(sess: AmiSession, req: Request, aid: str | None) -> None:
    """action_events: the event mask, always limited by the read privilege."""
    mask = strings_to_mask(req.header("EventMask"))
    if mask is None:
        sess.send(replies.error(aid, "Invalid event mask"))
        return
    sess.send_events = mask
    sess.update_event_bits()
    sess.send(replies.response("Success", aid, None, [("Events", "On" if mask else "Off")]))


def _md5_ok(sess: AmiSession, req: Request, username: str, secret: str) -> bool:
    """authenticate(), AuthType MD5: the behaviour's verdict; ChallengeResponseFailed for a
    Key refused against a challenge (Asterisk says nothing when there is no challenge)."""
    core = sess.core
    b = core.behaviour
    key = req.header("Key")
    chal = sess.challenge_value
    expected = b.md5_digest(chal, secret) if chal else ""
    if b.md5_accepts(KeyAttempt(key, chal, secret, expected, core.issued.keys())):
        return True
    if key and chal:
        core.security(
            "ChallengeResponseFailed",
            sess,
            username,
            [("Challenge", chal), ("Response", key), ("ExpectedResponse", expected)],
        )
    return False


def login(sess: AmiSession, req: Request, aid: str | None) -> None:
    """action_login: authenticate, then the success reply, FullyBooted and SuccessfulAuth."""
    core = sess.core
    if sess.authed:
        sess.send(replies.success(aid, "Already authenticated"))
        return
    username = req.header("Username")
    user = core.users.get(username.lower()) if username else None
    ok = False
    if not username:
        pass
    elif user is None:
        core.security("InvalidAccountID", sess, username)
        if core.behaviour.reveal_unknown_user:
            sess.send(replies.error(aid, "Invalid username"))
            sess.close_after_writes()
            return
    elif not core.acl_ok(user, sess.ip):
        core.security("FailedACL", sess, username)
    elif req.header("AuthType").lower() == "md5":
        ok = user.secret is not None and _md5_ok(sess, req, username, user.secret)
    elif user.secret is not None:
        if req.header("Secret") == user.secret:
            ok = True
        else:
            core.security("InvalidPassword", sess, username)
    if not ok or user is None:
        sess.fail(aid)
        return
    sess.logged_in()
    sess.username = username
    sess.privs = tuple(user.privileges)
    sess.read_mask = names_to_mask(sess.privs)
    mask = strings_to_mask(req.header("Events"))
    if mask is not None:
        sess.send_events = mask
    sess.update_event_bits()
    sess.session_tv = tv()
    sess.send(replies.success(aid, "Authentication accepted"))
    if sess.send_events & _SYSTEM and sess.read_mask & _SYSTEM:
        sess.write(_FULLY_BOOTED)
    core.authed[sess] = None
    core.security("SuccessfulAuth", sess, username, [("UsingPassword", "0")])
