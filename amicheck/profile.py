"""The target profile: one TOML file describing a UCM's AMI as it should be.

The simulator serves a profile and the suites hold a target against it, so the
file is validated *structurally* when it is loaded (unknown keys, wrong types,
unresolvable secrets: every problem at once, each named by its key path). The
UCM provisioning rules (username length, password policy, ...) are *not*
enforced here; that is :mod:`amicheck.rules`, which both the simulator and the
config suite call.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from amicheck.errors import ProfileError
from amicheck.filekind import not_regular

__all__ = [
    "Profile", "TargetInfo", "Settings", "TlsFiles", "User", "Thresholds", "ProfileError",
    "load_profile", "parse_profile", "default_profile", "DEFAULT_PROFILE_NAME",
    "MAX_PROFILE_BYTES", "MAX_LISTED_PROBLEMS",
]

#: File name of the built-in compliant profile inside ``amicheck/data``.
DEFAULT_PROFILE_NAME = "default-profile.toml"
#: A profile larger than this is refused unread (a UCM has at most a few hundred users).
MAX_PROFILE_BYTES = 1024 * 1024
#: A ProfileError lists at most this many problems, then says how many more there are.
MAX_LISTED_PROBLEMS = 20


@dataclass(frozen=True)
class TargetInfo:
    """Where the AMI lives (the simulator ignores ``host``)."""

    name: str = "ucm"
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class Settings:
    """The UCM's "AMI Settings" dialog (defaults: the UCM guide's values)."""

    port: int = 7777
    tls_enable: bool = False
    tls_port: int = 5039
    tls_bind: str = "0.0.0.0"
    write_timeout_ms: int = 100
    timestamp_events: bool = False
    auth_timeout_s: int = 30
    auth_limit: int = 50
    banner: str = "Asterisk Call Manager/2.7.0"
    #: Stock Asterisk's AMI port, which a UCM must NOT serve (it moved AMI to ``port``).
    stock_port: int = 5038
    #: The Asterisk line the simulator speaks: "13" (UCM firmware), "22", or "" to take it
    #: from the banner (AMI 11.x and later: 22). Targets ignore it.
    dialect: str = ""


@dataclass(frozen=True)
class TlsFiles:
    """The uploaded TLS files (absolute paths) and the plaintext expectation."""

    cert: Path | None = None
    key: Path | None = None
    #: Whether plaintext AMI next to TLS is acceptable (false: TLS only).
    plaintext_allowed: bool = True


@dataclass(frozen=True)
class User:
    """One AMI user ("Create New AMI User"); read privileges equal write privileges."""

    username: str
    secret: str | None = None
    permitted: tuple[str, ...] = ()
    privileges: tuple[str, ...] = ()
    #: Name of the environment variable the secret came from, if any (safe to show).
    secret_env: str | None = None

    def __repr__(self) -> str:
        # Never show the secret: reprs end up in pytest output and reports.
        shown = "None" if self.secret is None else "'***'"
        return (
            f"User(username={self.username!r}, secret={shown}, permitted={self.permitted!r}, "
            f"privileges={self.privileges!r}, secret_env={self.secret_env!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True)
class Thresholds:
    """Performance limits for the AMI-PRF checks."""

    ping_p50_ms: float = 2.0
    #: 5 ms: the Asterisk testsuite's manager/response-time limit (5000 us).
    ping_p95_ms: float = 5.0
    ping_p99_ms: float = 10.0
    pipeline_min_per_s: float = 2000.0
    parse_min_mb_per_s: float = 20.0


@dataclass(frozen=True)
class Profile:
    """A whole profile. ``path`` is the file it came from (None when parsed from text)."""

    target: TargetInfo = field(default_factory=TargetInfo)
    settings: Settings = field(default_factory=Settings)
    tls: TlsFiles = field(default_factory=TlsFiles)
    users: tuple[User, ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)
    path: Path | None = None

    @property
    def name(self) -> str:
        """The target's display name (``[target] name``)."""
        return self.target.name

    def user(self, name: str) -> User | None:
        """The user called ``name``: exact match first, then case-insensitive (as Asterisk)."""
        for u in self.users:
            if u.username == name:
                return u
        low = name.lower()
        for u in self.users:
            if u.username.lower() == low:
                return u
        return None

    def secrets(self) -> set[str]:
        """Every known (non-empty) secret, for redaction and leak checks."""
        return {u.secret for u in self.users if u.secret}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data for reports, secrets replaced by ``"***"`` (never use asdict())."""
        data: dict[str, Any] = dataclasses.asdict(self)
        data["name"] = self.name
        data["path"] = str(self.path) if self.path else None
        for key in ("cert", "key"):
            value = data["tls"][key]
            data["tls"][key] = str(value) if value is not None else None
        for u in data["users"]:
            u["secret"] = None if u["secret"] is None else "***"
            u["permitted"] = list(u["permitted"])
            u["privileges"] = list(u["privileges"])
        data["users"] = list(data["users"])
        return data


# --- parsing -------------------------------------------------------------------------------

_Check = Callable[[Any], bool]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


_TYPE_NAMES: dict[_Check, str] = {
    _is_int: "an integer",
    _is_num: "a number",
    _is_str: "a string",
    _is_bool: "a boolean (true/false)",
    _is_str_list: "a list of strings",
}

# Each table: key -> type check. Defaults come from the dataclasses.
_TARGET_KEYS: dict[str, _Check] = {"name": _is_str, "host": _is_str}
_SETTINGS_KEYS: dict[str, _Check] = {
    "port": _is_int,
    "tls_enable": _is_bool,
    "tls_port": _is_int,
    "tls_bind": _is_str,
    "write_timeout_ms": _is_int,
    "timestamp_events": _is_bool,
    "auth_timeout_s": _is_int,
    "auth_limit": _is_int,
    "banner": _is_str,
    "stock_port": _is_int,
    "dialect": _is_str,
}
#: Values of ``settings.dialect``.
DIALECTS = ("", "13", "22")
_TLS_KEYS: dict[str, _Check] = {"cert": _is_str, "key": _is_str, "plaintext_allowed": _is_bool}
_THRESHOLD_KEYS: dict[str, _Check] = {
    "ping_p50_ms": _is_num,
    "ping_p95_ms": _is_num,
    "ping_p99_ms": _is_num,
    "pipeline_min_per_s": _is_num,
    "parse_min_mb_per_s": _is_num,
}
_USER_KEYS: dict[str, _Check] = {
    "username": _is_str,
    "secret": _is_str,
    "secret_env": _is_str,
    "permitted": _is_str_list,
    "privileges": _is_str_list,
}
_SECRET_KEYS = frozenset({"secret"})
_TOP_KEYS = ("target", "settings", "tls", "users", "thresholds")


def _table(
    data: Mapping[str, Any], where: str, spec: Mapping[str, _Check], problems: list[str]
) -> dict[str, Any]:
    """Type-check one table against ``spec``; returns only the valid known keys."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        check = spec.get(key)
        if check is None:
            problems.append(f"{path}: unknown key (expected one of: {', '.join(spec)})")
        elif not check(value):
            # never echo a secret, even a mistyped one
            shown = "" if key in _SECRET_KEYS else f" {value!r}"
            problems.append(
                f"{path}: must be {_TYPE_NAMES[check]}, got {type(value).__name__}{shown}"
            )
        else:
            out[key] = value
    return out


def _sub_table(doc: Mapping[str, Any], key: str, problems: list[str]) -> Mapping[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        problems.append(f"{key}: must be a table ([{key}]), got {type(value).__name__}")
        return {}
    return value


def _user(raw: Any, index: int, env: Mapping[str, str], problems: list[str]) -> User | None:
    where = f"users[{index}]"
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a table ([[users]]), got {type(raw).__name__}")
        return None
    vals = _table(raw, where, _USER_KEYS, problems)
    username = vals.get("username")
    if "username" not in raw:
        problems.append(f"{where}.username: missing (every user needs a username)")
    secret: str | None = vals.get("secret")
    secret_env: str | None = vals.get("secret_env")
    if "secret" in raw and "secret_env" in raw:
        problems.append(f"{where}: give either secret or secret_env, not both")
    elif secret_env is not None:
        if secret_env == "":
            problems.append(f"{where}.secret_env: must name an environment variable")
        elif secret_env not in env:
            problems.append(
                f"{where}.secret: not set (secret_env {secret_env} is not in the environment)"
            )
        else:
            secret = env[secret_env]
    if username is None:
        return None
    return User(
        username=username,
        secret=secret,
        permitted=tuple(vals.get("permitted", ())),
        privileges=tuple(vals.get("privileges", ())),
        secret_env=secret_env,
    )


_CONTROL_NAMES = {"\r": "CR", "\n": "LF", "\0": "NUL", "\t": "TAB", "\x7f": "DEL"}


def _text_problems(where: str, value: str, *, secret: bool = False) -> list[str]:
    """A problem if ``value`` holds a control character (C0 or DEL): a CR or LF in a banner,
    username or secret would split an AMI line (a broken banner, injected login headers)."""
    bad = next((ch for ch in value if ch < " " or ch == "\x7f"), None)
    if bad is None:
        return []
    name = _CONTROL_NAMES.get(bad, f"0x{ord(bad):02x}")
    shown = "" if secret else f" ({value[:40]!r})"
    return [f"{where}: contains the control character {name}{shown}; AMI text must be one line"]


def _value_problems(doc: Mapping[str, Any]) -> list[str]:
    """Problems in values that typed fine: control characters, NaN/inf/negative numbers."""
    out: list[str] = []
    target, settings, thresholds = (
        t if isinstance(t := doc.get(k), dict) else {} for k in ("target", "settings", "thresholds")
    )
    for key in ("name", "host"):
        if isinstance(target.get(key), str):
            out += _text_problems(f"target.{key}", target[key])
    for key in ("banner", "tls_bind"):
        if isinstance(settings.get(key), str):
            out += _text_problems(f"settings.{key}", settings[key])
    dialect = settings.get("dialect")
    if isinstance(dialect, str) and dialect not in DIALECTS:
        out.append(f"settings.dialect: must be \"13\" or \"22\", got {dialect!r}")
    for key in ("auth_timeout_s", "write_timeout_ms", "auth_limit"):
        value = settings.get(key)
        if isinstance(value, int) and value < 0:
            out.append(f"settings.{key}: must not be negative, got {value}")
    for key, value in thresholds.items():
        if _is_num(value) and not (math.isfinite(value) and value >= 0):
            out.append(f"thresholds.{key}: must be a finite number >= 0, got {value!r}")
    users = doc.get("users")
    for i, raw in enumerate(users if isinstance(users, list) else []):
        if not isinstance(raw, dict):
            continue
        for key in ("username", "secret", "secret_env"):
            if isinstance(raw.get(key), str):
                out += _text_problems(f"users[{i}].{key}", raw[key], secret=key == "secret")
        for key in ("permitted", "privileges"):
            if _is_str_list(raw.get(key)):
                for j, item in enumerate(raw[key]):
                    out += _text_problems(f"users[{i}].{key}[{j}]", item)
    return out


def _error(source: str, problems: list[str]) -> ProfileError:
    """A ProfileError listing at most :data:`MAX_LISTED_PROBLEMS` problems, one per line.

    20,000 bad users must not make a 2 MB message; ``problems`` keeps the whole list.
    """
    shown = problems[:MAX_LISTED_PROBLEMS]
    more = len(problems) - len(shown)
    if more:
        shown.append(f"... and {more} more problem{'s' if more > 1 else ''}")
    exc = ProfileError(source, shown)
    exc.problems = list(problems)
    lines = "\n".join(f"  {p}" for p in shown)
    exc.args = (f"{source}: invalid profile ({len(problems)} problem(s))\n{lines}",)
    return exc


def _resolve(base_dir: Path, value: str | None) -> Path | None:
    if value is None or value == "":
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base_dir / p).resolve()


def parse_profile(
    text: str,
    base_dir: Path | str | None = None,
    source_name: str = "<profile>",
    *,
    env: Mapping[str, str] | None = None,
) -> Profile:
    """Parse profile TOML text.

    Args:
        text: the TOML document.
        base_dir: directory that relative TLS paths are relative to (default: cwd).
        source_name: what :class:`ProfileError` calls the input (file name).
        env: where ``secret_env`` names are looked up (default: ``os.environ``).

    Raises:
        ProfileError: listing every problem as ``key.path: reason``.
    """
    env = os.environ if env is None else env
    base = Path.cwd() if base_dir is None else Path(base_dir)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _error(source_name, [f"not valid TOML: {exc}"]) from None
    except RecursionError:
        raise _error(source_name, ["not valid TOML: arrays or tables nested too deeply"]) from None

    problems: list[str] = _value_problems(doc)
    for key in doc:
        if key not in _TOP_KEYS:
            problems.append(f"{key}: unknown key (expected one of: {', '.join(_TOP_KEYS)})")

    target_vals = _table(_sub_table(doc, "target", problems), "target", _TARGET_KEYS, problems)
    if "name" not in target_vals and not source_name.startswith("<"):
        target_vals["name"] = Path(source_name).stem  # reports need some name
    target = TargetInfo(**target_vals)
    settings = Settings(
        **_table(_sub_table(doc, "settings", problems), "settings", _SETTINGS_KEYS, problems)
    )
    tls_vals = _table(_sub_table(doc, "tls", problems), "tls", _TLS_KEYS, problems)
    tls = TlsFiles(
        cert=_resolve(base, tls_vals.get("cert")),
        key=_resolve(base, tls_vals.get("key")),
        plaintext_allowed=tls_vals.get("plaintext_allowed", True),
    )
    thr_vals = _table(
        _sub_table(doc, "thresholds", problems), "thresholds", _THRESHOLD_KEYS, problems
    )
    thresholds = Thresholds(**{k: float(v) for k, v in thr_vals.items()})

    raw_users = doc.get("users", [])
    users: list[User] = []
    if not isinstance(raw_users, list):
        problems.append(
            f"users: must be an array of tables ([[users]]), got {type(raw_users).__name__}"
        )
        raw_users = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_users):
        u = _user(raw, i, env, problems)
        if u is None:
            continue
        low = u.username.lower()
        if low in seen:
            # Asterisk looks users up case-insensitively: a second section would be unreachable.
            problems.append(
                f"users[{i}].username: {u.username!r} duplicates users[{seen[low]}] "
                "(usernames are case-insensitive)"
            )
        else:
            seen[low] = i
        users.append(u)

    if problems:
        raise _error(source_name, problems)
    return Profile(
        target=target, settings=settings, tls=tls, users=tuple(users), thresholds=thresholds
    )


def load_profile(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Profile:
    """Load and validate a profile file; relative paths in it are relative to the file.

    Raises:
        ProfileError: the file cannot be read or has problems (all of them are listed).
    """
    p = Path(path).expanduser().resolve()
    text = _read_profile(p)
    prof = parse_profile(text, p.parent, str(p), env=env)
    return dataclasses.replace(prof, path=p)


def _read_profile(p: Path) -> str:
    """The file's text, refused before any read unless it is a small regular file.

    ``os.stat`` first: opening a FIFO blocks until a writer comes, and /dev/zero never ends.
    """

    def fail(reason: str) -> ProfileError:
        return _error(str(p), [f"cannot read the profile: {reason}"])

    try:
        st = os.stat(p)
        refused = not_regular(st.st_mode, "a profile file")
        if refused:
            raise fail(f"it {refused}")
        if st.st_size > MAX_PROFILE_BYTES:
            raise fail(f"{st.st_size} bytes; a profile has at most {MAX_PROFILE_BYTES} bytes")
        with open(p, "rb") as fh:
            data = fh.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise fail(exc.strerror or str(exc)) from None
    if len(data) > MAX_PROFILE_BYTES:
        raise fail(f"more than {MAX_PROFILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


@functools.lru_cache(maxsize=1)
def _default() -> Profile:
    ref = resources.files("amicheck") / "data" / DEFAULT_PROFILE_NAME
    with resources.as_file(ref) as p:
        return load_profile(p, env={})


def default_profile() -> Profile:
    """The compliant built-in profile (``amicheck/data/default-profile.toml``), cached."""
    return _default()
