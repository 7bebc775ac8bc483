"""Named fault profiles: each one deliberate deviation from a compliant UCM.

A harness is trusted only if it catches what it claims to catch, so the simulator can be
told to misbehave in exactly one documented way (docs/internals.md "Fault profiles"). The
names are a contract shared with the suites. A fault that breaks a provisioning rule lists
that rule in ``disabled_rules`` so the profile is still accepted; a fault that needs extra
users (a 6-character name, a weak password, ...) brings them in ``extra_users``.

Most faults are implemented by the session core (server.py/session.py); those with
``core=False`` are read by the action handlers from ``ActionContext.faults``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from amicheck.errors import AmiCheckError

__all__ = ["Fault", "ExtraUser", "FAULTS", "UnknownFaultError", "resolve_faults"]


@dataclass(frozen=True)
class ExtraUser:
    """A user a fault adds to the served profile (plain data; secrets are test values)."""

    username: str
    secret: str
    permitted: tuple[str, ...] = ("127.0.0.1/255.255.255.255",)
    privileges: tuple[str, ...] = ("all",)


@dataclass(frozen=True)
class Fault:
    """One deliberate deviation.

    Attributes:
        name: the contract name (``--fault NAME``).
        description: one sentence saying what deviates.
        disabled_rules: ``rules.py`` rule names not enforced while this fault is on.
        extra_users: users the fault adds to the served profile.
        core: True if the session core implements it, False if the action handlers do.
    """

    name: str
    description: str
    disabled_rules: frozenset[str] = field(default_factory=frozenset)
    extra_users: tuple[ExtraUser, ...] = ()
    core: bool = True


def _f(
    name: str,
    description: str,
    *,
    rules: Iterable[str] = (),
    users: tuple[ExtraUser, ...] = (),
    core: bool = True,
) -> tuple[str, Fault]:
    return name, Fault(name, description, frozenset(rules), users, core)


FAULTS: dict[str, Fault] = dict(
    [
        _f(
            "short-username",
            "an extra user 'ami123' (6 characters, valid password, all) is served",
            rules=("username-length",),
            users=(ExtraUser("ami123", "Sh0rt-Name1"),),
        ),
        _f(
            "weak-password",
            "an extra user 'weakuser1' with secret 'abcdef' (no digit) is served",
            rules=("password-policy",),
            users=(ExtraUser("weakuser1", "abcdef"),),
        ),
        _f(
            "system-privilege",
            "an extra user 'sysuser01' with privileges system,command,config is served",
            rules=("privileges-set",),
            users=(
                ExtraUser("sysuser01", "Sys-Pass01", privileges=("system", "command", "config")),
            ),
        ),
        _f(
            "empty-acl-allows",
            "users with an empty permitted list log in from anywhere (extra user 'openacl01')",
            users=(ExtraUser("openacl01", "0pen-Acl01", permitted=()),),
        ),
        _f("acl-ignored", "permitted lists are not checked at all"),
        _f(
            "user-enumeration",
            "an unknown user is answered at once with 'Invalid username' (bad secret: stock)",
        ),
        _f("no-auth-timeout", "unauthenticated sessions are never timed out"),
        _f("auth-limit-ignored", "no limit on unauthenticated sessions"),
        _f("preauth-actions", "actions other than Login/Logoff/Challenge run before login"),
        _f(
            "challenge-broken",
            "MD5 challenge login always fails (Key checked against a wrong digest)",
        ),
        _f("logoff-ignored", "Logoff answers Goodbye but keeps the connection open"),
        _f("banner-mismatch", "banner 'Asterisk Call Manager/1.1' instead of the profile's"),
        _f("stock-port-open", "AMI is also served on the stand-in for the stock port 5038"),
        _f(
            "timestamp-mismatch",
            "events carry Timestamp although timestamp_events is false (or lack it when true)",
        ),
        _f("expired-cert", "the TLS listener serves a certificate that has expired"),
        _f("weak-cert-key", "the TLS listener serves an RSA-1024 certificate signed with SHA-1"),
        _f("cert-mismatch", "the TLS listener serves a certificate other than the profile's"),
        _f("tls-legacy", "TLS 1.0 and 1.1 are accepted"),
        _f("tls-weak-ciphers", "non-PFS and weak cipher suites (static RSA, 3DES) are accepted"),
        _f("plaintext-on-tls-port", "the TLS port answers plaintext AMI (no handshake)"),
        _f(
            "tls-pipeline-stall",
            "over TLS only the first action of a pipelined burst is answered; the session hangs",
        ),
        _f(
            "long-line-desync",
            "a line over 1024 bytes is split and the message runs (no 'line too long')",
        ),
        _f("nul-closes-session", "a NUL byte in the input closes the connection"),
        _f("header-limit-ignored", "a message with 129+ headers runs"),
        _f("crlf-only", "bare-LF line ends are not recognised (the message never completes)"),
        _f(
            "case-sensitive-keys",
            "header keys match case-sensitively ('action: Ping' has no action)",
        ),
        _f(
            "segment-sensitive",
            "each recv() is parsed as whole lines; a partial line at the end of a read is dropped",
        ),
        _f("pipeline-drop", "of several actions arriving in one read only the first is answered"),
        _f(
            "crash-on-hostile",
            "after a long line, a NUL or 129+ headers the listener stops accepting (until reset)",
        ),
        _f("error-text", "'Missing action in request' and the unknown-command text differ"),
        _f(
            "privilege-leak",
            "the write-privilege check is skipped for the originate and call classes",
        ),
        _f("event-leak", "events go to every logged-in session regardless of read privilege"),
        _f(
            "listcommands-leak",
            "ListCommands lists every action, not only the permitted ones",
            core=False,
        ),
        _f(
            "bridge-unprivileged",
            "BridgeKick/BridgeDestroy/BridgeList/BridgeInfo need no privilege (stock Asterisk)",
        ),
        _f(
            "originate-system",
            "Originate of System/Exec/... is allowed without the system class",
            core=False,
        ),
        _f("getvar-shell", "Getvar of SHELL(...)/EVAL(...) is allowed without system", core=False),
        _f(
            "getconfig-traversal",
            "GetConfig is allowed to every user and reads ../ paths",
            core=False,
        ),
        _f("slow-responses", "every message the simulator sends is delayed by 25 ms"),
        _f(
            "plaintext-with-tls",
            "the profile requires TLS only (plaintext_allowed = false) but plaintext answers",
        ),
    ]
)


class UnknownFaultError(AmiCheckError, ValueError):
    """A fault name that is not in :data:`FAULTS`; the message lists the valid names."""


def resolve_faults(names: Iterable[str]) -> frozenset[str]:
    """Validate fault names (all at once) and return them as a set.

    Raises:
        UnknownFaultError: naming every unknown fault and listing the valid ones.
    """
    given = [n.strip() for n in names]
    bad = [n for n in given if n not in FAULTS]
    if bad:
        raise UnknownFaultError(
            f"unknown fault(s): {', '.join(bad)}; valid faults: {', '.join(sorted(FAULTS))}"
        )
    return frozenset(given)
