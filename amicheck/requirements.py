"""The requirement catalogue: every check the compliance suites run, keyed by its ID.

Reports, JUnit properties and the plugin's marker validation all read this one table, so a
requirement ID means the same thing everywhere. Each entry says where the rule comes from
(the UCM guide or stock Asterisk behaviour) and what a UCM administrator should do when it
fails. IDs are ``AMI-<AREA>-<NNN>`` with the area prefixes of design.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

__all__ = [
    "AREAS",
    "CATALOGUE",
    "Requirement",
    "Severity",
    "area_title",
    "by_area",
    "get",
]


class Severity(enum.Enum):
    """How bad a failure is, in the words auditors use (ordered worst first)."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for critical .. 4 for info, for sorting failures worst first."""
        return _SEVERITY_ORDER.index(self)

    def __str__(self) -> str:
        return self.value


_SEVERITY_ORDER: Final = (
    Severity.CRITICAL,
    Severity.HIGH,
    Severity.MEDIUM,
    Severity.LOW,
    Severity.INFO,
)

#: Area code (the middle of an ID) -> title, in report order.
AREAS: Final[dict[str, str]] = {
    "CFG": "Configuration",
    "ACL": "Access control",
    "AUTH": "Authentication",
    "TLS": "TLS",
    "FRM": "Framing robustness",
    "PRV": "Privileges",
    "PRF": "Performance",
}


@dataclass(frozen=True)
class Requirement:
    """One compliance requirement.

    Attributes:
        id: ``AMI-<AREA>-<NNN>``, e.g. ``AMI-AUTH-002``.
        title: one line saying what must hold.
        area: the area code of the ID (a key of ``AREAS``), e.g. ``"AUTH"``.
        severity: how bad a failure is.
        source: where the rule comes from (UCM guide section or Asterisk behaviour).
        remediation: one sentence telling a UCM administrator what to do on failure.
    """

    id: str
    title: str
    area: str
    severity: Severity
    source: str
    remediation: str

    def __post_init__(self) -> None:
        parts = self.id.split("-")
        if len(parts) != 3 or parts[0] != "AMI" or parts[1] != self.area or not parts[2].isdigit():
            raise ValueError(f"requirement {self.id!r}: ID must be AMI-{self.area}-NNN")
        if self.area not in AREAS:
            raise ValueError(f"requirement {self.id!r}: unknown area {self.area!r}")

    @property
    def area_title(self) -> str:
        """Human title of the requirement's area ("Authentication")."""
        return AREAS[self.area]


_C, _H, _M, _L, _I = (
    Severity.CRITICAL,
    Severity.HIGH,
    Severity.MEDIUM,
    Severity.LOW,
    Severity.INFO,
)
_GUIDE = "UCM6XXX user guide, AMI"
_AST = "Asterisk 13 main/manager.c"
_FIRMWARE = "Upgrade the UCM firmware and report the behaviour to Grandstream support"

_ENTRIES: Final[tuple[Requirement, ...]] = (
    # --- configuration -------------------------------------------------------------------
    Requirement(
        "AMI-CFG-001",
        "Every AMI username has at least 8 characters",
        "CFG",
        _M,
        f"{_GUIDE}: Create New AMI User (username at least 8 characters)",
        "In PBX Settings > AMI, delete each AMI user whose name is shorter than 8 characters "
        "and recreate it with a longer name.",
    ),
    Requirement(
        "AMI-CFG-002",
        "Every known AMI password follows the UCM password policy",
        "CFG",
        _H,
        f"{_GUIDE}: Create New AMI User (password at least 6 characters, a digit and a "
        "lowercase, uppercase or special character)",
        "In PBX Settings > AMI, edit each listed user and set a password of at least 6 "
        "characters with a digit and a letter or special character (longer is better).",
    ),
    Requirement(
        "AMI-CFG-003",
        "AMI users hold only privileges the UCM offers",
        "CFG",
        _H,
        f"{_GUIDE}: privileges (no system, command or config on a UCM)",
        "In PBX Settings > AMI, remove the system, command and config privileges (and any "
        "other not offered by the UCM) from the listed users.",
    ),
    Requirement(
        "AMI-CFG-004",
        "Every AMI user has at least one Permitted IP entry",
        "CFG",
        _M,
        f"{_GUIDE}: Permitted IP(s) (an empty list denies every address)",
        "In PBX Settings > AMI, give each listed user the IP/netmask of the host that uses "
        "it, or delete the unused user.",
    ),
    Requirement(
        "AMI-CFG-005",
        "The AMI port answers with the banner the profile expects",
        "CFG",
        _L,
        f"{_GUIDE}: AMI Settings (port 7777) and {_AST} (banner)",
        "In PBX Settings > AMI, check that AMI is enabled on the configured port and that the "
        "firmware is the one the profile describes (the banner names the AMI version).",
    ),
    Requirement(
        "AMI-CFG-006",
        "AMI ports are distinct, avoid other UCM services, and nothing answers on 5038",
        "CFG",
        _M,
        f"{_GUIDE}: AMI Settings (port, TLS port); Asterisk default port 5038",
        "In PBX Settings > AMI, use a port other than the stock 5038 and other UCM service "
        "ports, and close any forwarding or service that exposes AMI on 5038.",
    ),
    Requirement(
        "AMI-CFG-007",
        "Event timestamps and write timeout behave as the profile says",
        "CFG",
        _L,
        f"{_GUIDE}: AMI Settings (Write Timeout >= 100 ms, Timestamp Events)",
        "In PBX Settings > AMI, set Timestamp Events and Write Timeout (at least 100 ms) to "
        "the values your AMI clients expect.",
    ),
    # --- ACL -----------------------------------------------------------------------------
    Requirement(
        "AMI-ACL-001",
        "Login works inside the Permitted IP list and fails outside it like a wrong password",
        "ACL",
        _H,
        f"{_GUIDE}: Permitted IP(s); Asterisk main/acl.c",
        "In PBX Settings > AMI, restrict each user's Permitted IP(s) to its client hosts and "
        "upgrade the firmware if the list is not enforced.",
    ),
    Requirement(
        "AMI-ACL-002",
        "A user with an empty Permitted IP list is refused from everywhere",
        "ACL",
        _C,
        f"{_GUIDE}: Permitted IP(s) unset = all denied (stock Asterisk allows all)",
        "In PBX Settings > AMI, give every user explicit Permitted IP(s), and upgrade the "
        "firmware if an empty list lets logins in.",
    ),
    # --- authentication --------------------------------------------------------------------
    Requirement(
        "AMI-AUTH-001",
        "Actions before login are refused with Permission denied and the session kept",
        "AUTH",
        _C,
        f"{_AST}: process_message (only Login, Logoff, Challenge before authentication)",
        f"{_FIRMWARE}; meanwhile restrict the AMI port to trusted hosts with the firewall.",
    ),
    Requirement(
        "AMI-AUTH-002",
        "Unknown user and wrong password fail identically (text, delay, close)",
        "AUTH",
        _M,
        f"{_AST}: authenticate (1 s delay, Authentication failed, close for every failure)",
        f"{_FIRMWARE}; meanwhile use usernames that are hard to guess.",
    ),
    Requirement(
        "AMI-AUTH-003",
        "MD5 challenge login works, also after a repeated Challenge",
        "AUTH",
        _M,
        f"{_AST}: action_challenge, authenticate (Key = md5(challenge + secret))",
        f"{_FIRMWARE}; clients can log in with a plain Secret over TLS meanwhile.",
    ),
    Requirement(
        "AMI-AUTH-004",
        "Logoff answers Goodbye and closes the connection",
        "AUTH",
        _L,
        f"{_AST}: action_logoff",
        f"{_FIRMWARE}.",
    ),
    Requirement(
        "AMI-AUTH-005",
        "Unauthenticated sessions are closed after the auth timeout",
        "AUTH",
        _M,
        f"{_AST}: authtimeout (30 s from connect, AST-2014-007)",
        f"{_FIRMWARE}; meanwhile restrict the AMI port to trusted hosts with the firewall.",
    ),
    Requirement(
        "AMI-AUTH-006",
        "The number of unauthenticated sessions is limited",
        "AUTH",
        _M,
        f"{_AST}: authlimit (50 unauthenticated sessions)",
        f"{_FIRMWARE}; meanwhile restrict the AMI port to trusted hosts with the firewall.",
    ),
    Requirement(
        "AMI-AUTH-007",
        "No AMI user has a password from a list of common weak ones",
        "AUTH",
        _C,
        f"{_GUIDE}: password policy; common-password guessing (opt-in)",
        "In PBX Settings > AMI, change the password of the reported user at once to a long "
        "random one and update its clients.",
    ),
    Requirement(
        "AMI-AUTH-008",
        "Only the lower-case MD5 key of the session's current challenge logs in; a wrong "
        "key, a key for another challenge, an upper-case key or a key without a challenge "
        "is refused like a wrong password",
        "AUTH",
        _H,
        f"{_AST}: authenticate (Key compared with strcmp against the lower-case hex "
        "md5(challenge + secret) of the session's own challenge)",
        f"{_FIRMWARE}; until it is fixed, have AMI clients log in with a plain Secret over "
        "TLS and block MD5 logins (AuthType: MD5) at a firewall or proxy in front of the AMI "
        "port.",
    ),
    # --- TLS -----------------------------------------------------------------------------
    Requirement(
        "AMI-TLS-001",
        "The TLS port speaks TLS with the AMI banner and login, exactly when TLS is enabled",
        "TLS",
        _H,
        f"{_GUIDE}: AMI Settings (TLS Enable, TLS Port 5039); Asterisk main/tcptls.c",
        "In PBX Settings > AMI, enable TLS on the profile's TLS port with a valid certificate "
        "and key, or disable it if the profile says so.",
    ),
    Requirement(
        "AMI-TLS-002",
        "The certificate is valid now and for at least 30 more days",
        "TLS",
        _H,
        "X.509 validity; certificate audit practice (sslyze, testssl.sh)",
        "In PBX Settings > AMI, upload a renewed TLS certificate (ami_certificate.pem) and "
        "its key.",
    ),
    Requirement(
        "AMI-TLS-003",
        "The certificate key is RSA >= 2048 or EC >= 256 bits, signed with SHA-256 or better",
        "TLS",
        _M,
        "NIST SP 800-57 key sizes; CA/B forum (no MD5/SHA-1 signatures)",
        "In PBX Settings > AMI, upload a certificate with an RSA-2048 (or EC P-256) key "
        "signed with SHA-256.",
    ),
    Requirement(
        "AMI-TLS-004",
        "The profile's certificate files are sound and the TLS port serves that certificate",
        "TLS",
        _M,
        f"{_GUIDE}: TLS key and cert uploads (< 2 MB, ami_private.pem, ami_certificate.pem)",
        "In PBX Settings > AMI, upload the matching certificate and private key again "
        "(PEM, each under 2 MB).",
    ),
    Requirement(
        "AMI-TLS-005",
        "TLS 1.0 and 1.1 are refused; TLS 1.2 or 1.3 is accepted",
        "TLS",
        _M,
        "RFC 8996 (TLS 1.0/1.1 deprecated); Asterisk tlsdisablev1/v11",
        f"{_FIRMWARE} (a firmware on Asterisk 13.7.1 or later can disable TLS 1.0 and 1.1).",
    ),
    Requirement(
        "AMI-TLS-006",
        "No NULL, anonymous, EXPORT, RC4, DES, 3DES or static-RSA cipher suite is accepted",
        "TLS",
        _M,
        "RFC 7465 (RC4), RFC 9325 (TLS recommendations); Asterisk tlscipher",
        f"{_FIRMWARE}; a firmware with a tlscipher setting should use a modern cipher list.",
    ),
    Requirement(
        "AMI-TLS-007",
        "Plaintext AMI spoken to the TLS port is refused",
        "TLS",
        _M,
        "Asterisk main/tcptls.c (implicit TLS on the TLS port)",
        "In PBX Settings > AMI, make sure the TLS port is not also configured as the plain "
        "AMI port.",
    ),
    Requirement(
        "AMI-TLS-008",
        "Plaintext AMI is not served while TLS is on unless the profile allows it",
        "TLS",
        _L,
        f"{_GUIDE}: AMI Settings (plain port stays open when TLS is enabled)",
        "Restrict the plain AMI port to trusted hosts with the UCM firewall, or allow "
        "plaintext in the profile if that is intended.",
    ),
    # --- framing -------------------------------------------------------------------------
    Requirement(
        "AMI-FRM-001",
        "Bare LF and mixed line ends are accepted",
        "FRM",
        _M,
        f"{_AST}: get_input (lines end in CRLF or LF)",
        f"{_FIRMWARE}.",
    ),
    Requirement(
        "AMI-FRM-002",
        "Lines of 1024 bytes or more are rejected without running the message",
        "FRM",
        _H,
        f"{_AST}: get_input (inbuf[1025], Failed to parse message: line too long)",
        f"{_FIRMWARE}; meanwhile allow AMI only from trusted clients.",
    ),
    Requirement(
        "AMI-FRM-003",
        "128 headers are accepted; a message with 129 is refused",
        "FRM",
        _M,
        "Asterisk include/asterisk/manager.h: AST_MAX_MANHEADERS 128",
        f"{_FIRMWARE}.",
    ),
    Requirement(
        "AMI-FRM-004",
        "NUL and 0xff bytes neither break nor close the session",
        "FRM",
        _M,
        f"{_AST}: get_input (bytes after NUL ignored)",
        f"{_FIRMWARE}; meanwhile allow AMI only from trusted clients.",
    ),
    Requirement(
        "AMI-FRM-005",
        "Empty packets, missing and unknown actions get Asterisk's error replies",
        "FRM",
        _L,
        f"{_AST}: process_message (Missing action in request, Invalid/unknown command)",
        f"{_FIRMWARE}.",
    ),
    Requirement(
        "AMI-FRM-006",
        "Header names match case-insensitively",
        "FRM",
        _L,
        f"{_AST}: __astman_get_header (strncasecmp)",
        f"{_FIRMWARE}.",
    ),
    Requirement(
        "AMI-FRM-007",
        "Messages written one byte at a time are parsed whole",
        "FRM",
        _M,
        f"{_AST}: get_input (line buffer across reads)",
        f"{_FIRMWARE}.",
    ),
    Requirement(
        "AMI-FRM-008",
        "100 pipelined actions over TCP are all answered, in order, with their ActionIDs",
        "FRM",
        _M,
        f"{_AST}: session_do / do_message",
        f"{_FIRMWARE}; meanwhile clients should wait for each reply before the next action.",
    ),
    Requirement(
        "AMI-FRM-009",
        "100 pipelined actions over TLS are all answered, in order, without a stall",
        "FRM",
        _M,
        "Asterisk 22 TLS read loop stalls on pipelined actions (observed)",
        f"{_FIRMWARE}; meanwhile TLS clients should wait for each reply before the next action.",
    ),
    Requirement(
        "AMI-FRM-010",
        "Hostile input does not stop the AMI from accepting connections",
        "FRM",
        _H,
        "Robustness: the listener survives long lines, NUL bytes and too many headers",
        f"{_FIRMWARE}; meanwhile allow AMI only from trusted clients.",
    ),
    # --- privileges ----------------------------------------------------------------------
    Requirement(
        "AMI-PRV-001",
        "Each action class runs exactly when the user's privileges allow it",
        "PRV",
        _C,
        f"{_AST}: process_message (writeperm & authority)",
        f"{_FIRMWARE}; meanwhile give AMI users only the privileges they need.",
    ),
    Requirement(
        "AMI-PRV-002",
        "Events reach a session only when the user may read their class",
        "PRV",
        _H,
        f"{_AST}: process_events ((send_events & class) == class)",
        f"{_FIRMWARE}; meanwhile give AMI users only the read privileges they need.",
    ),
    Requirement(
        "AMI-PRV-003",
        "ListCommands lists only the actions the user may run",
        "PRV",
        _L,
        f"{_AST}: action_listcommands",
        f"{_FIRMWARE}.",
    ),
    Requirement(
        "AMI-PRV-004",
        "Actions that change calls (BridgeKick, BridgeDestroy, DAHDI Restart) need a privilege",
        "PRV",
        _H,
        "Asterisk main/manager_bridges.c (no privilege in stock Asterisk)",
        f"{_FIRMWARE}; meanwhile give AMI accounts only to trusted applications.",
    ),
    Requirement(
        "AMI-PRV-005",
        "Originate of System, Exec and similar applications needs the system privilege",
        "PRV",
        _C,
        f"{_AST}: action_originate; GHSA-c4cg-9275-6w44",
        f"{_FIRMWARE}; meanwhile remove the originate privilege from users that do not need "
        "it in PBX Settings > AMI.",
    ),
    Requirement(
        "AMI-PRV-006",
        "Getvar of SHELL() or EVAL() needs the system privilege",
        "PRV",
        _C,
        f"{_AST}: action_getvar (GetVar Access Forbidden: Variable)",
        f"{_FIRMWARE}; meanwhile remove the call and reporting privileges from users that do "
        "not need them.",
    ),
    Requirement(
        "AMI-PRV-007",
        "GetConfig needs the config privilege and never reads outside the config directory",
        "PRV",
        _H,
        "ASTERISK-30176 (GetConfig path traversal, fixed 2022)",
        f"{_FIRMWARE}.",
    ),
    # --- performance ---------------------------------------------------------------------
    Requirement(
        "AMI-PRF-001",
        "Ping latency p50/p95/p99 within the profile's thresholds",
        "PRF",
        _L,
        "Asterisk testsuite tests/manager/response-time (a Ping over 5 ms fails)",
        "Check the UCM's CPU load and network path; upgrade the firmware if AMI answers slowly "
        "while the system is idle.",
    ),
    Requirement(
        "AMI-PRF-002",
        "Pipelined action throughput at or above the profile's minimum",
        "PRF",
        _L,
        "amicheck performance thresholds (profile [thresholds])",
        "Check the UCM's CPU load and network path; AMI clients should not send bursts the "
        "UCM cannot absorb.",
    ),
    Requirement(
        "AMI-PRF-003",
        "An event burst arrives in time and parses at the profile's minimum rate",
        "PRF",
        _I,
        "amicheck performance thresholds (profile [thresholds])",
        "Check the UCM's CPU load and network path; reduce the event classes AMI clients "
        "subscribe to.",
    ),
)

#: Every requirement, keyed by ID, in catalogue order.
CATALOGUE: Final[dict[str, Requirement]] = {r.id: r for r in _ENTRIES}
if len(CATALOGUE) != len(_ENTRIES):  # pragma: no cover - a typo guard at import
    raise RuntimeError("duplicate requirement ID in the catalogue")


def get(requirement_id: str) -> Requirement:
    """Return the requirement with this ID.

    Raises:
        KeyError: naming the unknown ID (and the known prefixes).
    """
    try:
        return CATALOGUE[requirement_id]
    except KeyError:
        raise KeyError(
            f"unknown requirement ID {requirement_id!r} (catalogue has "
            f"{len(CATALOGUE)} IDs: AMI-{{{','.join(AREAS)}}}-NNN)"
        ) from None


def area_title(area: str) -> str:
    """Title of an area code ("AUTH" -> "Authentication"); the code itself if unknown."""
    return AREAS.get(area, area)


def by_area() -> dict[str, list[Requirement]]:
    """Requirements grouped by area code, in ``AREAS`` order (empty areas included)."""
    groups: dict[str, list[Requirement]] = {code: [] for code in AREAS}
    for req in CATALOGUE.values():
        groups[req.area].append(req)
    return groups
