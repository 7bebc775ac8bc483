"""``amicheck init``: from one AMI credential to a first profile of a UCM.

Writing a profile by hand means knowing the UCM's AMI settings and the user's privileges.
Most of that can be *observed* with the credential itself: the banner (and with it the
Asterisk line: AMI 2.x is Asterisk 13, 3.x and later is 14+ up to 22's 11.0.0), whether the TLS
port speaks TLS (its certificate is saved beside the profile, which pins it: AMI-TLS-004 then
notices a swapped certificate), the user's privilege classes (ListCommands lists the actions the
user may run with their ``(Priv: ...)`` classes), and whether events carry ``Timestamp:``.
What cannot be observed (other users, the full Permitted IP list, write timeout, auth limits)
keeps the UCM guide's default and is marked with a comment. The secret comes from
``AMICHECK_SECRET_<USER>`` or a no-echo prompt, never from the command line, and the profile
refers to it by ``secret_env`` only.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Discovery", "discover", "render_profile", "secret_env_name", "main",
           "dialect_of", "infer_privileges"]

DEFAULT_PORT = 7777
DEFAULT_TLS_PORT = 5039
EVENT_WAIT_S = 1.5
_TOKEN = "amicheck-init"


@dataclass
class Discovery:
    """What one credential saw; ``None`` fields could not be observed."""

    host: str
    port: int
    username: str
    banner: str = ""
    local_ip: str = "127.0.0.1"
    tls_port: int = DEFAULT_TLS_PORT
    tls: str = "unknown"  # "tls", "plaintext", "closed", "other"
    tls_detail: str = ""
    cert_pem: bytes | None = None
    privileges: tuple[str, ...] | None = None
    privilege_note: str = ""
    actions_listed: int = 0
    timestamps: bool | None = None
    asterisk_version: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def dialect(self) -> str:
        return dialect_of(self.banner)


def secret_env_name(username: str) -> str:
    """``AMICHECK_SECRET_<USER>``: upper case, anything but letters and digits as ``_``."""
    return "AMICHECK_SECRET_" + re.sub(r"[^A-Z0-9]", "_", username.upper())


def dialect_of(banner: str) -> str:
    """``"13"`` for AMI 1.x/2.x banners (Asterisk <= 13), ``"22"`` style for AMI 3+ (14+)."""
    m = re.search(r"/(\d+)\.", banner)
    if not m:
        return "unknown"
    return "13" if int(m.group(1)) <= 2 else "22"


def infer_privileges(listed: dict[str, frozenset[str]]) -> tuple[tuple[str, ...], str]:
    """The user's classes from ListCommands (action -> classes that grant it, any one).

    An action is listed when the user holds one of its classes. When the listed actions name
    every class the UCM offers that grants an action at all, the user is written as ``all``;
    otherwise the answer is the fewest classes that grant every listed action (greedy, the
    class granting most first). Classes that grant no action (event-only ones such as cdr or
    security) cannot be seen this way. Returns (classes, note).
    """
    from amicheck.privileges import ACTION_PRIVILEGES, PERM_NAMES, UCM_PRIVILEGES

    order = [n for n, _ in PERM_NAMES]
    seen = {n for c in listed.values() for n in c}
    ucm = set(UCM_PRIVILEGES) - {"all"}
    granting = ucm & {n for c in ACTION_PRIVILEGES.values() for n in c}
    if granting and len(granting - seen) <= 1:
        return ("all",), "the listed actions span every class the UCM offers"
    sets = [c for c in listed.values() if c]
    chosen: list[str] = []
    while sets:
        counts: dict[str, int] = {}
        for c in sets:
            for name in c:
                counts[name] = counts.get(name, 0) + 1
        best = min(counts, key=lambda n: (-counts[n], order.index(n) if n in order else 99))
        chosen.append(best)
        sets = [c for c in sets if best not in c]
    classes = tuple(sorted(chosen, key=lambda n: order.index(n) if n in order else 99))
    if not classes:
        return (), ("NOT DISCOVERED: only actions that need no privilege are listed (the "
                    "user's classes grant no action, e.g. cdr or security): set privileges")
    return classes, ("inferred from ListCommands; classes that grant no action (cdr, "
                     "security, ...) cannot be seen: add them if the user has them")


def _probe_tls(d: Discovery, timeout: float) -> None:
    from amicheck import tlsaudit
    from amicheck.errors import AmiCheckError

    try:
        chain = tlsaudit.fetch_certificate_chain(d.host, d.tls_port, timeout=timeout)
    except AmiCheckError as exc:
        plain = tlsaudit.probe_plaintext(d.host, d.tls_port, timeout=min(timeout, 3.0))
        if plain.reply == "no-listener":
            d.tls, d.tls_detail = "closed", f"nothing listens on port {d.tls_port}"
        elif plain.reply in ("banner", "ami-response"):
            d.tls, d.tls_detail = "plaintext", (f"port {d.tls_port} answers plaintext AMI, "
                                                "not TLS")
        else:
            d.tls, d.tls_detail = "other", f"port {d.tls_port} does not speak TLS ({exc})"
        return
    from cryptography.hazmat.primitives.serialization import Encoding

    d.tls = "tls"
    d.cert_pem = chain[0].public_bytes(Encoding.PEM)
    info = tlsaudit.cert_info(chain[0])
    d.tls_detail = f"serves {info.subject}, valid until {info.not_after:%Y-%m-%d}"


def discover(host: str, port: int, username: str, secret: str, *,
             tls_port: int = DEFAULT_TLS_PORT, timeout: float = 5.0) -> Discovery:
    """Connect, log in and look around (read-only but for one ``UserEvent``).

    Raises:
        AmiCheckError: connect, banner or login failed (the message says which).
    """
    from amicheck.client import AmiClient
    from amicheck.privileges import parse_listcommands

    d = Discovery(host=host, port=port, username=username, tls_port=tls_port)
    with AmiClient.connect(host, port, timeout=timeout) as c:
        d.banner = c.banner or ""
        d.local_ip = str(c.local[0])
        c.login(username, secret, timeout=timeout)
        r = c.request("ListCommands", timeout)
        listed = {k: v.privileges
                  for k, v in parse_listcommands(r.response.items).items()}
        d.actions_listed = len(listed)
        if r.ok and listed:
            d.privileges, d.privilege_note = infer_privileges(listed)
        else:
            d.notes.append(f"ListCommands answered {r.status}: {r.message}; privileges not "
                           "discovered")
        if "coresettings" in listed:
            s = c.request("CoreSettings", timeout)
            if s.ok:
                d.asterisk_version = s.get("AsteriskVersion")
        if "userevent" in listed:
            c.drain_events()
            c.send("UserEvent", UserEvent=_TOKEN)
            try:
                ev = c.wait_event(lambda m: (m.get("UserEvent") or "") == _TOKEN,
                                  EVENT_WAIT_S)
                d.timestamps = ev.get("Timestamp") is not None
            except Exception:  # noqa: BLE001 - the user's read privileges may hide it
                d.timestamps = None
        if d.timestamps is None:
            d.notes.append("timestamp_events: no event reached this user, not discovered")
        c.logoff(timeout)
    _probe_tls(d, timeout)
    return d


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_profile(d: Discovery, *, name: str, secret_env: str,
                   cert_file: str | None) -> str:
    """The profile text (TOML with comments on what was and was not discovered)."""
    from amicheck.profile import Settings

    dflt = Settings()
    ver = f", Asterisk {d.asterisk_version}" if d.asterisk_version else ""
    lines = [
        f"# Written by 'amicheck init' for {d.username}@{d.host}:{d.port}.",
        f"# Seen: banner {d.banner!r} (Asterisk {d.dialect} dialect{ver}); "
        f"{d.actions_listed} actions listed for this user.",
        "# Lines marked 'not discovered' keep the UCM guide's defaults: check them against",
        "# the UCM's AMI settings page. Unknown keys are errors.",
        "",
        "[target]",
        f"name = {_toml_str(name)}",
        f"host = {_toml_str(d.host)}",
        "",
        "[settings]",
        f"port = {d.port}",
        f"tls_enable = {'true' if d.tls == 'tls' else 'false'}"
        f"{'' if d.tls == 'tls' else '  # ' + d.tls_detail}",
        f"tls_port = {d.tls_port}",
        f'tls_bind = "{dflt.tls_bind}"             # not discovered',
        f"write_timeout_ms = {dflt.write_timeout_ms}         # not discovered",
    ]
    if d.timestamps is None:
        lines.append(f"timestamp_events = {str(dflt.timestamp_events).lower()}     "
                     "# not discovered (no event reached this user)")
    else:
        lines.append(f"timestamp_events = {str(d.timestamps).lower()}     # observed")
    lines += [
        f"auth_timeout_s = {dflt.auth_timeout_s}           # not discovered (measuring takes "
        f"{dflt.auth_timeout_s} s; AMI-AUTH-005 checks it)",
        f"auth_limit = {dflt.auth_limit}               # not discovered",
        f"banner = {_toml_str(d.banner)}   # observed",
        f"stock_port = {dflt.stock_port}              # must NOT serve AMI on a UCM",
        "",
    ]
    if d.tls == "tls" and cert_file:
        lines += [
            "[tls]",
            f"# {d.tls_detail}; the served certificate, saved by init (pins it):",
            f"cert = {_toml_str(cert_file)}",
            '# key = "ami_private.pem"   # not discoverable: add the uploaded key to check it',
            "",
        ]
    privs = d.privileges if d.privileges is not None else ()
    plist = ", ".join(_toml_str(p) for p in privs)
    lines += [
        "[[users]]",
        f"username = {_toml_str(d.username)}",
        f"secret_env = {_toml_str(secret_env)}",
        f'permitted = ["{d.local_ip}/255.255.255.255"]   # only the address init used is known;'
        " add the UCM's other Permitted IP(s)",
        f"privileges = [{plist}]"
        + ("   # from ListCommands" if d.privileges is not None else "   # not discovered"),
    ]
    if d.privilege_note:
        lines.append(f"# {d.privilege_note}")
    lines += [
        "",
        "# Other AMI users of this UCM are not visible to one credential: add a [[users]]",
        "# table for each (username, secret_env, permitted, privileges).",
    ]
    lines += [f"# Not discovered: {n}" for n in d.notes]
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="amicheck init",
        description="Discover a UCM's AMI with one credential and write a first profile. "
        "The secret comes from $AMICHECK_SECRET_<USER> or a no-echo prompt.")
    p.add_argument("--target", required=True, metavar="HOST[:PORT]",
                   help=f"the AMI endpoint (default port {DEFAULT_PORT})")
    p.add_argument("--user", required=True, metavar="NAME", help="the AMI username")
    p.add_argument("--tls-port", type=int, default=DEFAULT_TLS_PORT, metavar="P",
                   help=f"the AMI-over-TLS port to probe (default {DEFAULT_TLS_PORT})")
    p.add_argument("-o", "--output", default="ucm.toml", metavar="FILE",
                   help="profile to write (default: ucm.toml)")
    p.add_argument("--name", help="the target's name in reports (default: from the host)")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                   help="per-step network timeout (default 5 s)")
    return p


def _split_target(text: str) -> tuple[str, int] | None:
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host or (port and (not port.isdigit() or not 0 < int(port) < 65536)):
        return None
    return host, int(port) if port else DEFAULT_PORT


def _err(text: str) -> int:
    print(f"amicheck init: error: {text}", file=sys.stderr)
    return 2


def main(argv: Sequence[str]) -> int:
    """``amicheck init --target HOST[:PORT] --user NAME [--tls-port P] [-o FILE] [--force]``."""
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    where = _split_target(args.target)
    if where is None:
        return _err(f"--target: expected HOST[:PORT], got {args.target!r}")
    if not 0 < args.tls_port < 65536:
        return _err(f"--tls-port: must be 1-65535, got {args.tls_port}")
    host, port = where
    out = Path(args.output)
    if out.exists() and not args.force:
        return _err(f"{out} exists; use --force to overwrite it")
    env_name = secret_env_name(args.user)
    secret = os.environ.get(env_name)
    if not secret:
        if not sys.stdin.isatty():
            return _err(f"no secret: set {env_name} (stdin is not a terminal to ask on)")
        try:
            secret = getpass.getpass(f"AMI secret for {args.user} (not echoed): ")
        except (EOFError, KeyboardInterrupt):
            print("", file=sys.stderr)
            return _err("no secret given")
        if not secret:
            return _err("no secret given")
    from amicheck.errors import AmiCheckError

    try:
        d = discover(host, port, args.user, secret, tls_port=args.tls_port,
                     timeout=args.timeout)
    except (AmiCheckError, OSError) as exc:
        text = str(exc).replace(secret, "***")
        return _err(f"{host}:{port}: {text.splitlines()[0] if text else type(exc).__name__}")
    cert_file = None
    if d.cert_pem is not None:
        cert_path = out.with_name(out.stem + "-served-cert.pem")
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        cert_path.write_bytes(d.cert_pem)
        cert_file = cert_path.name
    name = args.name or re.sub(r"[^A-Za-z0-9._-]", "-", host)
    text = render_profile(d, name=name, secret_env=env_name, cert_file=cert_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    privs = ",".join(d.privileges) if d.privileges is not None else "not discovered"
    print(f"wrote {out}: banner {d.banner!r} (dialect {d.dialect}), TLS {d.tls} on "
          f"{d.tls_port}, privileges {privs}"
          + (f", certificate {cert_file}" if cert_file else ""))
    target = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    if env_name not in os.environ:
        print(f"next: export {env_name}=...   # the profile reads the secret from it")
    print(f"next: amicheck run --target {target} --profile {out}")
    return 0
