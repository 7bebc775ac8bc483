"""How the simulated UCM behaves, as one object of named hooks with compliant defaults.

Every place where the simulator could deviate from a compliant UCM reads one field of a
:class:`Behaviour`: who may log in (``acl``, ``md5_accepts``, ``login_required``), what may
run (``privilege_table``, ``unchecked_classes``), which events a session sees, how input is
framed, what the TLS listener serves, how long replies wait. :data:`COMPLIANT` holds the
defaults; a fault (:mod:`amicheck.sim.faults`) is a small declared override of one hook, so
the simulator's code never asks which fault is on, only how it should behave.

Hooks are plain values or small pure functions: the hot path reads attributes, and a hook
whose name is misspelt is an error when the fault table is built (``dataclasses.replace``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import ssl
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from amicheck.privileges import ACTION_PRIVILEGES
from amicheck.profile import Profile, User
from amicheck.protocol.request import Request
from amicheck.redaction import register_derived
from amicheck.rules import acl_allows

__all__ = [
    "Behaviour",
    "COMPLIANT",
    "HOOKS",
    "KeyAttempt",
    "md5_hex",
    "COMPLIANT_CIPHERS",
    "MISSING_ACTION",
    "UNKNOWN_COMMAND",
]

#: M process_message texts.
MISSING_ACTION = "Missing action in request"
UNKNOWN_COMMAND = (
    "Invalid/unknown command: {}. Use Action: ListCommands to show available commands."
)
#: Forward-secret AEAD suites only (what a hardened UCM offers).
COMPLIANT_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"


def md5_hex(text: str) -> str:
    """Lower-case hex MD5 of ``text`` (surrogates from the environment survive)."""
    return hashlib.md5(text.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class KeyAttempt:
    """One MD5 Login, as ``md5_accepts`` sees it.

    Attributes:
        key: the Key header ("" when absent).
        challenge: the session's challenge ("" before any Challenge).
        secret: the user's secret.
        expected: ``md5_digest(challenge, secret)``, "" when there is no challenge.
        issued: every challenge this simulator handed out lately (any session).
    """

    key: str
    challenge: str
    secret: str
    expected: str
    issued: Collection[str]


def _md5_digest(challenge: str, secret: str) -> str:
    """authenticate(): md5(challenge + secret); registered as secret-derived (redaction)."""
    key = md5_hex(challenge + secret)
    register_derived(key)
    return key


def _md5_accepts(a: KeyAttempt) -> bool:
    """authenticate(): a Key and a Challenge, and strcmp against the lower-case digest."""
    return bool(a.key) and bool(a.challenge) and a.key == a.expected


def _acl(user: User, ip: str) -> bool:
    """The UCM rule: an empty permitted list denies every address."""
    return bool(user.permitted) and acl_allows(user.permitted, ip)


def _action_of(req: Request) -> str:
    """astman_get_header(m, "Action"): case-insensitive key, first non-empty value."""
    return req.header("Action", skip_empty=True)


def _serves_plaintext(profile: Profile) -> bool:
    """TLS only (tls_enable and plaintext not allowed): nobody listens on the plain port."""
    return not (profile.settings.tls_enable and not profile.tls.plaintext_allowed)


def _same(profile: Profile) -> Profile:
    return profile


def _keep(on: bool) -> bool:
    return on


@dataclass(frozen=True)
class Behaviour:
    """The hooks; every default is what a compliant UCM (Asterisk 13 + the guide) does."""

    # -- provisioning and listeners (server.py) --------------------------------------------
    #: the profile actually served, from the one given
    profile: Callable[[Profile], Profile] = _same
    #: whether the plaintext AMI port answers for this (effective) profile
    serves_plaintext: Callable[[Profile], bool] = _serves_plaintext
    #: AMI also answers on the stand-in for the stock port 5038
    stock_port_open: bool = False
    # -- TLS context ------------------------------------------------------------------------
    #: the TLS port does a TLS handshake (False: it speaks plaintext AMI)
    tls_on_tls_port: bool = True
    tls_min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    tls_max_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED
    #: PKCS#3 DH parameters (PEM) that enable the DHE suites, or None (ECDHE only)
    tls_dh_params: bytes | None = None
    tls_ciphers: str = COMPLIANT_CIPHERS
    #: OpenSSL security level 0 (legacy protocols, RSA-1024/SHA-1 work; suites stay ECDHE)
    tls_security_level_0: bool = False
    #: rewrites the stored uploaded files ``(cert, key)`` after provisioning, or None
    damage_stored_cert: Callable[[Path, Path], None] | None = None
    #: the listener serves a different certificate with this CN, or None (the stored one)
    served_cert_cn: str | None = None
    # -- session: banner, deadlines, timestamps, delays -------------------------------------
    #: banner instead of the profile's, or None
    banner: str | None = None
    enforce_auth_timeout: bool = True
    enforce_auth_limit: bool = True
    #: events carry Timestamp when this returns True for the profile's timestamp_events
    timestamps: Callable[[bool], bool] = _keep
    #: every message the simulator sends waits this long (seconds)
    reply_delay_s: float = 0.0
    # -- framing (input) --------------------------------------------------------------------
    bare_lf_ends_line: bool = True
    #: a partial line at the end of a read is kept for the next read
    keep_partial_lines: bool = True
    #: of the actions framed from one read, at most this many run (None: all)
    actions_per_read: int | None = None
    #: over TLS, a pipelined read runs its first action and the session stops reading
    tls_stall_on_pipeline: bool = False
    refuse_long_lines: bool = True
    refuse_many_headers: bool = True
    nul_closes_session: bool = False
    #: a long line, NUL or 129+ headers stops the listener until reset
    crash_on_hostile: bool = False
    #: the action name of a framed request ("" when none)
    action_of: Callable[[Request], str] = _action_of
    missing_action_text: str = MISSING_ACTION
    unknown_command_text: str = UNKNOWN_COMMAND
    # -- who may log in ---------------------------------------------------------------------
    #: actions other than Login/Logoff/Challenge need a logged-in session
    login_required: bool = True
    #: an unknown user is answered at once with "Invalid username"
    reveal_unknown_user: bool = False
    #: ACL decision: may ``user`` log in from ``ip``
    acl: Callable[[User, str], bool] = _acl
    #: the digest a Key is compared with
    md5_digest: Callable[[str, str], str] = _md5_digest
    #: the MD5 Login verdict
    md5_accepts: Callable[[KeyAttempt], bool] = _md5_accepts
    close_on_logoff: bool = True
    # -- may-run and event visibility -------------------------------------------------------
    privilege_table: dict[str, frozenset[str]] = dataclasses.field(
        default_factory=lambda: ACTION_PRIVILEGES
    )
    #: privilege classes whose check is skipped (an action needing one of them runs)
    unchecked_classes: frozenset[str] = frozenset()
    #: lower-case actions every user may run
    unchecked_actions: frozenset[str] = frozenset()
    #: broadcast events are filtered by the session's read privilege
    events_by_read_privilege: bool = True
    # -- action handlers --------------------------------------------------------------------
    #: ListCommands lists every action, not only the permitted ones
    list_all_commands: bool = False
    #: Originate of System/Exec/... and SHELL/EVAL data need the system class
    originate_apps_need_system: bool = True
    #: Getvar/Setvar of SHELL(...)/EVAL(...) need the system class
    functions_need_system: bool = True
    #: GetConfig/UpdateConfig stay inside the config directory
    config_paths_confined: bool = True


#: The compliant UCM.
COMPLIANT = Behaviour()
#: Every hook name (what a fault may override).
HOOKS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(Behaviour))
