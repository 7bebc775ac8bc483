"""Named fault profiles: each one deliberate deviation from a compliant UCM, on one record.

A harness is trusted only if it catches what it claims to catch, so the simulator can be
told to misbehave in exactly one documented way (docs/internals.md "Fault profiles"). The
names are a contract shared with the suites. Everything about a fault lives on its
:class:`Fault` record: what deviates (``description``), the hooks of
:class:`~amicheck.sim.behaviour.Behaviour` it overrides (``hooks``), the provisioning rules
it switches off (``disabled_rules``) and the users it adds (``extra_users``), and the
requirement IDs the suites must fail with it on (``fails``, ``fails_slow``). Adding a fault
is adding one record; :func:`behaviour_for` turns a set of names into the behaviour served.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from amicheck.errors import AmiCheckError
from amicheck.privileges import STOCK_ACTION_PRIVILEGES
from amicheck.profile import Profile, User
from amicheck.protocol.request import Request
from amicheck.redaction import register_derived
from amicheck.rules import acl_allows
from amicheck.sim.behaviour import COMPLIANT, HOOKS, Behaviour, KeyAttempt, md5_hex
from amicheck.sim.certs import write_cert_pair
from amicheck.tls.material import dh_params_pem

__all__ = [
    "Fault",
    "ExtraUser",
    "FAULTS",
    "UnknownFaultError",
    "FaultConflictError",
    "resolve_faults",
    "behaviour_for",
]


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
        hooks: ``(hook, value)`` overrides of :class:`Behaviour` (names checked here).
        fails: requirement IDs the suites must fail with this fault on (normal run).
        fails_slow: requirement IDs the slow checks must fail (short auth-timeout run).
    """

    name: str
    description: str
    disabled_rules: frozenset[str] = field(default_factory=frozenset)
    extra_users: tuple[ExtraUser, ...] = ()
    hooks: tuple[tuple[str, object], ...] = ()
    fails: frozenset[str] = field(default_factory=frozenset)
    fails_slow: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        unknown = sorted({h for h, _ in self.hooks} - HOOKS)
        if unknown:
            raise ValueError(f"fault {self.name!r}: unknown behaviour hook(s) {unknown}")
        if not (self.fails or self.fails_slow):
            raise ValueError(f"fault {self.name!r}: no requirement ID catches it")


def _f(
    name: str,
    description: str,
    *,
    fails: Iterable[str] = (),
    slow: Iterable[str] = (),
    rules: Iterable[str] = (),
    users: tuple[ExtraUser, ...] = (),
    **hooks: object,
) -> tuple[str, Fault]:
    return name, Fault(name, description, frozenset(rules), users, tuple(hooks.items()),
                       frozenset(fails), frozenset(slow))


# -- the hook overrides that are functions ----------------------------------------------------

def _acl_open(user: User, ip: str) -> bool:
    return True


def _acl_empty_allows(user: User, ip: str) -> bool:
    return not user.permitted or acl_allows(user.permitted, ip)


def _action_case_sensitive(req: Request) -> str:
    """``Action:`` spelt exactly so; other spellings of the key are not seen."""
    return next(
        (ln[7:].lstrip() for ln in req.lines if ln.startswith("Action:") and ln[7:].strip()),
        "",
    )


def _digest_swapped(challenge: str, secret: str) -> str:
    key = md5_hex(secret + challenge)
    register_derived(key)
    return key


def _any_key(a: KeyAttempt) -> bool:
    return bool(a.challenge)


def _stale_key(a: KeyAttempt) -> bool:
    if COMPLIANT.md5_accepts(a):
        return True
    return bool(a.key) and any(a.key == md5_hex(c + a.secret) for c in a.issued)


def _uppercase_key(a: KeyAttempt) -> bool:
    return bool(a.key) and bool(a.challenge) and a.key.lower() == a.expected


def _challengeless_key(a: KeyAttempt) -> bool:
    if not a.challenge:
        return bool(a.key) and a.key == md5_hex(a.secret)
    return COMPLIANT.md5_accepts(a)


def _tls_only(profile: Profile) -> Profile:
    return dataclasses.replace(
        profile,
        settings=dataclasses.replace(profile.settings, tls_enable=True),
        tls=dataclasses.replace(profile.tls, plaintext_allowed=False),
    )


def _always(profile: Profile) -> bool:
    return True


def _invert(on: bool) -> bool:
    return not on


def _expired(cert: Path, key: Path) -> None:
    write_cert_pair(cert, key, expired=True)


def _weak(cert: Path, key: Path) -> None:
    write_cert_pair(cert, key, key_size=1024, sha1=True)


def _ca_leaf(cert: Path, key: Path) -> None:
    write_cert_pair(cert, key, self_signed_ca=True)


def _no_san(cert: Path, key: Path) -> None:
    write_cert_pair(cert, key, cn_only=True)


_WEAK_CIPHERS = "ALL:COMPLEMENTOFALL:@SECLEVEL=0"
_AUTH_008 = ("AMI-AUTH-008",)

FAULTS: dict[str, Fault] = dict(
    [
        _f(
            "short-username",
            "an extra user 'ami123' (6 characters, valid password, all) is served",
            fails=("AMI-CFG-001",),
            rules=("username-length",),
            users=(ExtraUser("ami123", "Sh0rt-Name1"),),
        ),
        _f(
            "weak-password",
            "an extra user 'weakuser1' with secret 'abcdef' (no digit) is served",
            fails=("AMI-CFG-002", "AMI-AUTH-007"),
            rules=("password-policy",),
            users=(ExtraUser("weakuser1", "abcdef"),),
        ),
        _f(
            "system-privilege",
            "an extra user 'sysuser01' with privileges system,command,config is served",
            fails=("AMI-CFG-003",),
            rules=("privileges-set",),
            users=(
                ExtraUser("sysuser01", "Sys-Pass01", privileges=("system", "command", "config")),
            ),
        ),
        _f(
            "empty-acl-allows",
            "users with an empty permitted list log in from anywhere (extra user 'openacl01')",
            fails=("AMI-CFG-004", "AMI-ACL-002"),
            users=(ExtraUser("openacl01", "0pen-Acl01", permitted=()),),
            acl=_acl_empty_allows,
        ),
        _f("acl-ignored", "permitted lists are not checked at all",
           fails=("AMI-ACL-001", "AMI-ACL-002"), acl=_acl_open),
        _f(
            "user-enumeration",
            "an unknown user is answered at once with 'Invalid username' (bad secret: stock)",
            fails=("AMI-AUTH-002",),
            reveal_unknown_user=True,
        ),
        _f("no-auth-timeout", "unauthenticated sessions are never timed out",
           slow=("AMI-AUTH-005",), enforce_auth_timeout=False),
        _f("auth-limit-ignored", "no limit on unauthenticated sessions",
           fails=("AMI-AUTH-006",), enforce_auth_limit=False),
        _f("preauth-actions", "actions other than Login/Logoff/Challenge run before login",
           fails=("AMI-AUTH-001",), login_required=False),
        _f(
            "challenge-broken",
            "MD5 challenge login always fails (Key checked against a wrong digest)",
            fails=("AMI-AUTH-003",),
            md5_digest=_digest_swapped,
        ),
        _f("logoff-ignored", "Logoff answers Goodbye but keeps the connection open",
           fails=("AMI-AUTH-004",), close_on_logoff=False),
        _f("banner-mismatch", "banner 'Asterisk Call Manager/1.1' instead of the profile's",
           fails=("AMI-CFG-005",), banner="Asterisk Call Manager/1.1"),
        _f("stock-port-open", "AMI is also served on the stand-in for the stock port 5038",
           fails=("AMI-CFG-006",), stock_port_open=True),
        _f(
            "timestamp-mismatch",
            "events carry Timestamp although timestamp_events is false (or lack it when true)",
            fails=("AMI-CFG-007",),
            timestamps=_invert,
        ),
        _f("expired-cert", "the TLS listener serves a certificate that has expired",
           fails=("AMI-TLS-002",), damage_stored_cert=_expired),
        # Only the security level drops with the weak certificate and the legacy versions
        # (RSA-1024/SHA-1 and TLS 1.0/1.1 need it); the suites stay forward-secret, so each
        # fault is ONE deviation.
        _f("weak-cert-key", "the TLS listener serves an RSA-1024 certificate signed with SHA-1",
           fails=("AMI-TLS-003",), damage_stored_cert=_weak, tls_security_level_0=True),
        _f("cert-mismatch", "the TLS listener serves a certificate other than the profile's",
           fails=("AMI-TLS-004",), served_cert_cn="other.invalid"),
        _f("tls-legacy", "TLS 1.0 and 1.1 are accepted", fails=("AMI-TLS-005",),
           tls_min_version=ssl.TLSVersion.TLSv1, tls_security_level_0=True),
        _f("tls-weak-ciphers",
           "NULL, anonymous and static-RSA suites (no encryption, no authentication, no "
           "forward secrecy) are accepted at TLS 1.2",
           fails=("AMI-TLS-006",), tls_ciphers=_WEAK_CIPHERS),
        _f("tls-weak-dh", "DHE suites with a 1024-bit DH group are accepted next to ECDHE",
           fails=("AMI-TLS-015",), tls_dh_params=dh_params_pem()),
        _f("tls-no-tls13", "TLS 1.3 is not offered (TLS 1.2 only)", fails=("AMI-TLS-017",),
           tls_max_version=ssl.TLSVersion.TLSv1_2),
        _f("tls-ca-leaf",
           "the TLS listener serves a self-signed CA certificate (CA:TRUE) as its leaf",
           fails=("AMI-TLS-016",), damage_stored_cert=_ca_leaf),
        _f("tls-no-san", "the served leaf has no subjectAltName (CN only)",
           fails=("AMI-TLS-016",), damage_stored_cert=_no_san),
        # The TLS port does not speak TLS: every live TLS check fails, with the reason.
        _f(
            "plaintext-on-tls-port",
            "the TLS port answers plaintext AMI (no handshake)",
            fails=("AMI-TLS-001", "AMI-TLS-002", "AMI-TLS-003", "AMI-TLS-004", "AMI-TLS-005",
                   "AMI-TLS-006", "AMI-TLS-007", "AMI-TLS-009", "AMI-TLS-010", "AMI-TLS-011",
                   "AMI-TLS-012", "AMI-TLS-013", "AMI-TLS-014", "AMI-TLS-015", "AMI-TLS-016",
                   "AMI-TLS-017", "AMI-FRM-009"),
            tls_on_tls_port=False,
        ),
        _f(
            "tls-pipeline-stall",
            "over TLS only the first action of a pipelined burst is answered; the session hangs",
            fails=("AMI-FRM-009",),
            tls_stall_on_pipeline=True,
        ),
        _f(
            "long-line-desync",
            "a line over 1024 bytes is split and the message runs (no 'line too long')",
            fails=("AMI-FRM-002",),
            refuse_long_lines=False,
        ),
        _f("nul-closes-session", "a NUL byte in the input closes the connection",
           fails=("AMI-FRM-004",), nul_closes_session=True),
        _f("header-limit-ignored", "a message with 129+ headers runs",
           fails=("AMI-FRM-003",), refuse_many_headers=False),
        _f("crlf-only", "bare-LF line ends are not recognised (the message never completes)",
           fails=("AMI-FRM-001",), bare_lf_ends_line=False),
        _f(
            "case-sensitive-keys",
            "header keys match case-sensitively ('action: Ping' has no action)",
            fails=("AMI-FRM-006",),
            action_of=_action_case_sensitive,
        ),
        _f(
            "segment-sensitive",
            "each recv() is parsed as whole lines; a partial line at the end of a read is dropped",
            fails=("AMI-FRM-007",),
            keep_partial_lines=False,
        ),
        _f("pipeline-drop", "of several actions arriving in one read only the first is answered",
           fails=("AMI-FRM-008", "AMI-FRM-009", "AMI-PRF-002"), actions_per_read=1),
        _f(
            "crash-on-hostile",
            "after a long line, a NUL or 129+ headers the listener stops accepting (until reset)",
            fails=("AMI-FRM-010",),
            crash_on_hostile=True,
        ),
        _f("error-text", "'Missing action in request' and the unknown-command text differ",
           fails=("AMI-FRM-005",), missing_action_text="Missing Action header",
           unknown_command_text="Unknown action: {}"),
        # BridgeKick/BridgeDestroy need `call` on a UCM, so skipping the call check opens them.
        _f(
            "privilege-leak",
            "the write-privilege check is skipped for the originate and call classes",
            fails=("AMI-PRV-001", "AMI-PRV-004"),
            unchecked_classes=frozenset({"originate", "call"}),
        ),
        _f("event-leak", "events go to every logged-in session regardless of read privilege",
           fails=("AMI-PRV-002",), events_by_read_privilege=False),
        _f(
            "listcommands-leak",
            "ListCommands lists every action, not only the permitted ones",
            fails=("AMI-PRV-003",),
            list_all_commands=True,
        ),
        _f(
            "bridge-unprivileged",
            "BridgeKick/BridgeDestroy/BridgeList/BridgeInfo need no privilege (stock Asterisk)",
            fails=("AMI-PRV-004",),
            privilege_table=STOCK_ACTION_PRIVILEGES,
        ),
        _f(
            "originate-system",
            "Originate of System/Exec/... is allowed without the system class",
            fails=("AMI-PRV-005",),
            originate_apps_need_system=False,
        ),
        _f("getvar-shell", "Getvar of SHELL(...)/EVAL(...) is allowed without system",
           fails=("AMI-PRV-006",), functions_need_system=False),
        _f(
            "getconfig-traversal",
            "GetConfig is allowed to every user and reads ../ paths",
            fails=("AMI-PRV-007",),
            unchecked_actions=frozenset({"getconfig", "getconfigjson"}),
            config_paths_confined=False,
        ),
        # Replies are delayed, not serialised: pipelined throughput is unaffected.
        _f("slow-responses", "every message the simulator sends is delayed by 25 ms",
           fails=("AMI-PRF-001", "AMI-PRF-003"), reply_delay_s=0.025),
        _f(
            "plaintext-with-tls",
            "the profile requires TLS only (plaintext_allowed = false) but plaintext answers",
            fails=("AMI-TLS-008",),
            profile=_tls_only,
            serves_plaintext=_always,
        ),
        _f(
            "md5-any-key",
            "after a Challenge, an MD5 Login with any Key for a known user succeeds",
            fails=_AUTH_008,
            md5_accepts=_any_key,
        ),
        _f(
            "md5-stale-challenge",
            "a Key for any challenge the simulator issued (another session's) is accepted",
            fails=_AUTH_008,
            md5_accepts=_stale_key,
        ),
        _f(
            "md5-uppercase-key",
            "the MD5 Key is compared case-insensitively (upper-case hex accepted)",
            fails=_AUTH_008,
            md5_accepts=_uppercase_key,
        ),
        _f(
            "md5-no-challenge",
            "an MD5 Login without a Challenge succeeds with Key = md5(secret)",
            fails=_AUTH_008,
            md5_accepts=_challengeless_key,
        ),
    ]
)


class UnknownFaultError(AmiCheckError, ValueError):
    """A fault name that is not in :data:`FAULTS`; the message lists the valid names."""


class FaultConflictError(AmiCheckError, ValueError):
    """Two faults override the same behaviour hook differently (one deviation each)."""


def resolve_faults(names: Iterable[str]) -> frozenset[str]:
    """Validate fault names (all at once) and return them as a set.

    Raises:
        UnknownFaultError: naming every unknown fault and listing the valid ones.
        FaultConflictError: two of them override the same hook differently.
    """
    given = [n.strip() for n in names]
    bad = [n for n in given if n not in FAULTS]
    if bad:
        raise UnknownFaultError(
            f"unknown fault(s): {', '.join(bad)}; valid faults: {', '.join(sorted(FAULTS))}"
        )
    faults = frozenset(given)
    _merged_hooks(faults)
    return faults


def _merged_hooks(faults: frozenset[str]) -> dict[str, object]:
    owner: dict[str, str] = {}
    merged: dict[str, object] = {}
    for name in sorted(faults):
        for hook, value in FAULTS[name].hooks:
            if hook in merged and merged[hook] is not value and merged[hook] != value:
                raise FaultConflictError(
                    f"faults {owner[hook]} and {name} both change the simulator's "
                    f"{hook!r}; use one of them"
                )
            owner[hook], merged[hook] = name, value
    return merged


def behaviour_for(names: Iterable[str]) -> Behaviour:
    """The behaviour served with the faults ``names`` on (COMPLIANT when none)."""
    merged = _merged_hooks(resolve_faults(names))
    return dataclasses.replace(COMPLIANT, **merged) if merged else COMPLIANT  # type: ignore[arg-type]
