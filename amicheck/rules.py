"""The UCM6XXX AMI provisioning rules as pure functions returning findings.

One source of truth: the simulator refuses a profile whose findings include errors (unless a
fault switches that rule off), and the config suite reports the same findings against a real
UCM's profile. Messages never contain a secret.

Sources: the UCM guide ("AMI (restricted access)", "Create New AMI User", "AMI Settings";
design.md), Asterisk ``main/manager.c`` for the timer limits, and the UCM6200 user manual
(Firewall -> Static Defense -> Current Service) for the ports other services already use.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from amicheck.privileges import UCM_PRIVILEGES
from amicheck.profile import Profile, Settings, TlsFiles, User
from amicheck.tlsfiles import MAX_TLS_FILE_BYTES, TlsFileError, key_matches_cert, read_tls_file

__all__ = [
    "Level",
    "Finding",
    "RULES",
    "MAX_TLS_FILE_BYTES",
    "UCM_SERVICE_PORTS",
    "MIN_USERNAME",
    "MIN_PASSWORD",
    "MIN_WRITE_TIMEOUT_MS",
    "check_profile",
    "check_user",
    "check_settings",
    "check_tls_files",
    "errors",
    "username_ok",
    "password_ok",
    "password_problems",
    "permitted_entry_ok",
    "parse_permitted",
    "privileges_ok",
    "port_ok",
    "acl_allows",
]

MIN_USERNAME = 8
MIN_PASSWORD = 6
#: Asterisk rejects a writetimeout below 100 ms (``Invalid writetimeout value``).
MIN_WRITE_TIMEOUT_MS = 100
#: Asterisk ignores an authtimeout below 1 s (manager.c ``__init_manager``).
MIN_AUTH_TIMEOUT_S = 1

#: Ports other UCM services listen on, so AMI cannot use them. From the UCM6200 user manual,
#: table "Firewall -> Static Defense -> Current Service" (TCP and UDP listed together because
#: the GUI port fields do not distinguish), plus 5061 (SIP over TLS, Asterisk's default) and
#: 443 (the HTTPS port the web GUI can be moved to).
UCM_SERVICE_PORTS: dict[int, str] = {
    22: "SSH (dropbear)",
    69: "TFTP (provisioning)",
    80: "HTTP (web GUI redirect)",
    389: "LDAP (phonebook server)",
    443: "HTTPS (alternative web GUI port)",
    2000: "SCCP",
    4569: "IAX2",
    5060: "SIP",
    5061: "SIP over TLS",
    5353: "mDNS (zero-config)",
    6060: "zero-config provisioning",
    8089: "HTTPS (web GUI default)",
    9090: "SIP (alternative UDP port)",
    37435: "syslog",
}


class Level(enum.StrEnum):
    """How bad a finding is: the simulator refuses profiles with ERROR findings."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    """One rule result: ``rule`` is a stable id from :data:`RULES`, ``path`` a profile key."""

    rule: str
    path: str
    message: str
    severity: Level = Level.ERROR

    @property
    def is_error(self) -> bool:
        """True when the finding makes the profile non-compliant."""
        return self.severity is Level.ERROR

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.rule}, {self.severity}]"


#: Stable rule ids and what each checks.
RULES: dict[str, str] = {
    "username-length": f"AMI usernames have at least {MIN_USERNAME} characters",
    "password-policy": (
        f"AMI passwords have at least {MIN_PASSWORD} characters, a digit, and a lowercase, "
        "uppercase or special character"
    ),
    "permitted-entries": "permitted entries are valid IP/netmask or CIDR; empty denies everyone",
    "privileges-set": "privileges come only from the UCM's list (no system, command, config)",
    "ports": "ports are 1-65535, AMI and TLS ports differ, and no other UCM service uses them",
    "write-timeout": f"write timeout is at least {MIN_WRITE_TIMEOUT_MS} ms",
    "auth-timeout": f"auth timeout is at least {MIN_AUTH_TIMEOUT_S} s",
    "auth-limit": "at least one unauthenticated session is allowed",
    "tls-bind": "the TLS bind address is an IP address",
    "tls-files": "TLS cert and key: both given, under 2 MB, valid PEM, key matches cert",
}


def errors(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that make a profile non-compliant."""
    return [f for f in findings if f.is_error]


# --- single rules --------------------------------------------------------------------------


def username_ok(username: str) -> bool:
    """UCM rule: at least 8 characters."""
    return len(username) >= MIN_USERNAME


def password_problems(secret: str) -> list[str]:
    """What is wrong with ``secret`` under the UCM password policy (empty list: fine).

    Never includes the secret itself.
    """
    out: list[str] = []
    if len(secret) < MIN_PASSWORD:
        out.append(f"has {len(secret)} characters, needs at least {MIN_PASSWORD}")
    if not any(c.isdigit() for c in secret):
        out.append("has no digit")
    if not any(c.isalpha() or not c.isalnum() for c in secret):
        out.append("has no lowercase, uppercase or special character")
    return out


def password_ok(secret: str) -> bool:
    """UCM rule: >= 6 characters, a digit, and a lowercase, uppercase or special character."""
    return not password_problems(secret)


def parse_permitted(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """``"192.168.40.144/255.255.255.255"`` or ``"10.0.0.0/8"`` -> network.

    Host bits may be set (Asterisk masks the address). A bare address is refused: the UCM
    form asks for IP/netmask. Raises ValueError naming the problem.
    """
    if "/" not in entry:
        raise ValueError("needs a netmask: IP/netmask or IP/prefix")
    addr, _, mask = entry.partition("/")
    if addr.strip() != addr or mask.strip() != mask or not addr or not mask:
        raise ValueError("must be IP/netmask without spaces")
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


def permitted_entry_ok(entry: str) -> bool:
    """Whether ``entry`` is a valid IP/netmask or CIDR ACL entry."""
    try:
        parse_permitted(entry)
    except ValueError:
        return False
    return True


def privileges_ok(privileges: Iterable[str]) -> bool:
    """Whether every privilege is one the UCM offers (exact lower-case names)."""
    return all(p in UCM_PRIVILEGES for p in privileges)


def port_ok(port: int) -> bool:
    """TCP port range."""
    return 1 <= port <= 65535


def acl_allows(permitted: Sequence[str], ip: str) -> bool:
    """The UCM ACL: True if ``ip`` is inside any permitted entry; an EMPTY list denies all.

    (Stock Asterisk allows everyone when no rule is set; the UCM guide says the opposite.)
    Invalid entries match nothing. IPv4-mapped IPv6 addresses are treated as IPv4.
    """
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    for entry in permitted:
        try:
            net = parse_permitted(entry)
        except ValueError:
            continue
        if addr.version == net.version and addr in net:
            return True
    return False


# --- grouped checks ------------------------------------------------------------------------


def check_user(
    user: User, index: int | None = None, *, disabled: frozenset[str] = frozenset()
) -> list[Finding]:
    """Findings for one user; ``index`` makes paths ``users[i].key``."""
    where = f"users[{index}]" if index is not None else f"users[{user.username!r}]"
    out: list[Finding] = []

    if "username-length" not in disabled and not username_ok(user.username):
        out.append(
            Finding(
                "username-length",
                f"{where}.username",
                f"{user.username!r} has {len(user.username)} characters, "
                f"needs at least {MIN_USERNAME}",
            )
        )

    if "password-policy" not in disabled:
        if user.secret is None:
            out.append(
                Finding(
                    "password-policy",
                    f"{where}.secret",
                    "secret not given: the password policy cannot be checked",
                    Level.WARNING,
                )
            )
        else:
            for problem in password_problems(user.secret):
                out.append(Finding("password-policy", f"{where}.secret", f"password {problem}"))

    if "permitted-entries" not in disabled:
        if not user.permitted:
            out.append(
                Finding(
                    "permitted-entries",
                    f"{where}.permitted",
                    "empty: the UCM denies this user from every address",
                    Level.WARNING,
                )
            )
        for i, entry in enumerate(user.permitted):
            try:
                parse_permitted(entry)
            except ValueError as exc:
                out.append(
                    Finding(
                        "permitted-entries",
                        f"{where}.permitted[{i}]",
                        f"{entry!r} is not a valid IP/netmask: {exc}",
                    )
                )

    if "privileges-set" not in disabled:
        if not user.privileges:
            out.append(
                Finding(
                    "privileges-set",
                    f"{where}.privileges",
                    "empty: the user can only run actions that need no privilege",
                    Level.WARNING,
                )
            )
        for i, priv in enumerate(user.privileges):
            if priv not in UCM_PRIVILEGES:
                hint = (
                    f" (did you mean {priv.lower()!r}?)" if priv.lower() in UCM_PRIVILEGES else ""
                )
                out.append(
                    Finding(
                        "privileges-set",
                        f"{where}.privileges[{i}]",
                        f"{priv!r} is not offered by the UCM{hint}; allowed: "
                        + ", ".join(UCM_PRIVILEGES),
                    )
                )
        dupes = sorted({p for p in user.privileges if user.privileges.count(p) > 1})
        if dupes:
            out.append(
                Finding(
                    "privileges-set",
                    f"{where}.privileges",
                    f"listed more than once: {', '.join(dupes)}",
                    Level.WARNING,
                )
            )
    return out


def check_settings(settings: Settings, *, disabled: frozenset[str] = frozenset()) -> list[Finding]:
    """Findings for the "AMI Settings" dialog values."""
    out: list[Finding] = []
    s = settings
    if "ports" not in disabled:
        for key in ("port", "tls_port", "stock_port"):
            value: int = getattr(s, key)
            if not port_ok(value):
                out.append(Finding("ports", f"settings.{key}", f"{value} is not in 1-65535"))
        if s.port == s.tls_port:
            out.append(
                Finding(
                    "ports",
                    "settings.tls_port",
                    f"equals the AMI port {s.port} (Asterisk then moves TLS to 5039)",
                    Level.ERROR if s.tls_enable else Level.WARNING,
                )
            )
        for key in ("port", "tls_port"):
            value = getattr(s, key)
            if key == "tls_port" and not s.tls_enable:
                continue
            if value in UCM_SERVICE_PORTS:
                out.append(
                    Finding(
                        "ports",
                        f"settings.{key}",
                        f"{value} is used by another UCM service: {UCM_SERVICE_PORTS[value]}",
                    )
                )
    if "write-timeout" not in disabled and s.write_timeout_ms < MIN_WRITE_TIMEOUT_MS:
        out.append(
            Finding(
                "write-timeout",
                "settings.write_timeout_ms",
                f"{s.write_timeout_ms} ms is below the minimum of {MIN_WRITE_TIMEOUT_MS} ms",
            )
        )
    if "auth-timeout" not in disabled and s.auth_timeout_s < MIN_AUTH_TIMEOUT_S:
        out.append(
            Finding(
                "auth-timeout",
                "settings.auth_timeout_s",
                f"{s.auth_timeout_s} s is below {MIN_AUTH_TIMEOUT_S} s (Asterisk ignores it)",
            )
        )
    if "auth-limit" not in disabled and s.auth_limit < 1:
        out.append(
            Finding(
                "auth-limit",
                "settings.auth_limit",
                f"{s.auth_limit}: no client could ever connect to log in",
            )
        )
    if "tls-bind" not in disabled:
        try:
            ipaddress.ip_address(s.tls_bind)
        except ValueError:
            out.append(
                Finding("tls-bind", "settings.tls_bind", f"{s.tls_bind!r} is not an IP address")
            )
    return out


def _read_small(path: Path, key: str, out: list[Finding]) -> bytes | None:
    try:
        return read_tls_file(path)[0]
    except TlsFileError as exc:
        if exc.code == "too-big":
            message = f"{path}: {exc.reason}; the UCM accepts only files under 2 MB"
        else:
            message = f"{path}: {exc.reason}"
        out.append(Finding("tls-files", f"tls.{key}", message))
        return None


def check_tls_files(
    tls: TlsFiles, *, tls_enable: bool = True, disabled: frozenset[str] = frozenset()
) -> list[Finding]:
    """Findings for the uploaded TLS files (only when given)."""
    if "tls-files" in disabled or (tls.cert is None and tls.key is None):
        return []
    out: list[Finding] = []
    if tls.cert is None or tls.key is None:
        missing = "cert" if tls.cert is None else "key"
        out.append(
            Finding(
                "tls-files",
                f"tls.{missing}",
                "not given: the UCM needs both the certificate and the private key",
                Level.ERROR if tls_enable else Level.WARNING,
            )
        )
        return out
    cert_pem = _read_small(tls.cert, "cert", out)
    key_pem = _read_small(tls.key, "key", out)
    if cert_pem is None or key_pem is None:
        return out

    # lazy: only profiles with TLS files pay for cryptography
    from cryptography import x509

    cert: x509.Certificate | None = None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        out.append(Finding("tls-files", "tls.cert", f"{tls.cert}: not a PEM certificate"))
    if b"-----BEGIN" not in key_pem or b"PRIVATE KEY-----" not in key_pem:
        out.append(Finding("tls-files", "tls.key", f"{tls.key}: not a PEM private key"))
    elif cert is not None and not key_matches_cert(cert, key_pem):
        out.append(
            Finding(
                "tls-files",
                "tls.key",
                f"{tls.key} is unreadable (encrypted?) or does not match the certificate "
                f"{tls.cert.name} (Asterisk then starts no TLS listener)",
            )
        )
    return out


def check_profile(profile: Profile, *, disabled: frozenset[str] = frozenset()) -> list[Finding]:
    """Every finding for ``profile``; rules whose id is in ``disabled`` are skipped."""
    unknown = set(disabled) - set(RULES)
    if unknown:
        raise ValueError(f"unknown rule id(s) {sorted(unknown)}; known: {', '.join(RULES)}")
    out = check_settings(profile.settings, disabled=disabled)
    out += check_tls_files(profile.tls, tls_enable=profile.settings.tls_enable, disabled=disabled)
    for i, user in enumerate(profile.users):
        out += check_user(user, i, disabled=disabled)
    return out
