"""The fleet file: which UCMs to audit, each with its profile, validated when it is loaded.

A fleet file is TOML: an optional ``[defaults]`` table and ``[[targets]]``. Every key a target
may carry can be given once in ``[defaults]`` instead. Like a profile, the file is checked
structurally when it is loaded and *every* problem is reported at once, one line each, named by
its key path (``targets[3].faults: unknown fault 'foo'``); unknown keys are errors.

```toml
[defaults]
profile = "profiles/ucm.toml"   # relative to this file; omitted: the built-in profile (sim)
deadline_s = 300                # per-target wall-clock limit
tags = ["emea"]

[[targets]]
name = "branch-01"              # unique; [A-Za-z0-9._-], used as a directory name
target = "192.0.2.10:7777"      # or "sim" (the embedded simulator, for demos and tests)
outside_source = "127.0.0.2"    # optional: ACL checks
faults = ["weak-password"]      # sim only
tags = ["emea", "hq"]           # replaces the default tags
```
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amicheck.errors import AmiCheckError

__all__ = [
    "FleetError",
    "FleetTarget",
    "Fleet",
    "load_fleet",
    "parse_fleet",
    "parse_shard",
    "shard_of",
    "DEFAULT_DEADLINE_S",
    "NAME_RE",
]

#: A target's default wall-clock limit: a full run takes ~35 s, a slow real UCM a few minutes.
DEFAULT_DEADLINE_S = 600.0
#: Target names become directory names and JUnit suite names: keep them portable.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


class FleetError(AmiCheckError):
    """A fleet file (or a shard spec) with problems; ``problems`` holds one line each."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(f"{source}: {p}" for p in self.problems))


@dataclass(frozen=True)
class FleetTarget:
    """One UCM of the fleet, defaults applied."""

    name: str
    target: str = "sim"
    profile: Path | None = None
    faults: tuple[str, ...] = ()
    outside_source: str | None = None
    tags: tuple[str, ...] = ()
    deadline_s: float = DEFAULT_DEADLINE_S
    allow_destructive: bool = False
    allow_bruteforce: bool = False

    @property
    def is_sim(self) -> bool:
        return self.target.lower() == "sim"


@dataclass(frozen=True)
class Fleet:
    """A loaded fleet file: targets in file order."""

    name: str
    targets: tuple[FleetTarget, ...] = ()
    path: Path | None = None
    extra_args: tuple[str, ...] = field(default=())

    def select(self, shard: tuple[int, int] | None) -> tuple[FleetTarget, ...]:
        """The targets of shard ``(k, n)`` (1-based), or all of them."""
        if shard is None:
            return self.targets
        k, n = shard
        return tuple(t for t in self.targets if shard_of(t.name, n) == k)


def shard_of(name: str, count: int) -> int:
    """The 1-based shard a target name belongs to: stable across runs, machines and Pythons."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/3"`` -> ``(2, 3)``; raises FleetError on anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise FleetError("--shard", [f"expected K/N (e.g. 2/3), got {text!r}"])
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= k <= n:
        raise FleetError("--shard", [f"K must be 1..N and N at least 1, got {text!r}"])
    return k, n


# --- validation --------------------------------------------------------------------------

_Check = Callable[[Any], str | None]  # returns a reason, or None when the value is fine


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) else f"must be a string, got {type(v).__name__}"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"must be true or false, got {type(v).__name__}"


def _str_list(v: Any) -> str | None:
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return None
    return f"must be a list of strings, got {v!r}"[:120]


def _deadline(v: Any) -> str | None:
    if isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 86400:
        return None
    return f"must be a number of seconds in (0, 86400], got {v!r}"


def _target(v: Any) -> str | None:
    if not isinstance(v, str):
        return f"must be a string ('sim' or HOST[:PORT]), got {type(v).__name__}"
    return None if _target_ok(v) else f"expected 'sim' or HOST[:PORT], got {v!r}"


def _target_ok(text: str) -> bool:
    text = text.strip()
    if text.lower() == "sim":
        return True
    host, port = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return False
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            return False
        port = rest[1:]
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOST_RE.match(host))
    return True


def _ip(v: Any) -> str | None:
    if not isinstance(v, str):
        return f"must be an IP address string, got {type(v).__name__}"
    try:
        ipaddress.ip_address(v)
    except ValueError:
        return f"not an IP address: {v!r}"
    return None


_TARGET_KEYS: dict[str, _Check] = {
    "name": _str,
    "target": _target,
    "profile": _str,
    "faults": _str_list,
    "outside_source": _ip,
    "tags": _str_list,
    "deadline_s": _deadline,
    "allow_destructive": _bool,
    "allow_bruteforce": _bool,
}
_DEFAULT_KEYS = {k: v for k, v in _TARGET_KEYS.items() if k != "name"}
_FLEET_KEYS: dict[str, _Check] = {"name": _str, "pytest_args": _str_list}
_TOP_KEYS = ("fleet", "defaults", "targets")


def _table(raw: Mapping[str, Any], where: str, spec: Mapping[str, _Check],
           problems: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{where}.{key}"
        check = spec.get(key)
        if check is None:
            problems.append(f"{path}: unknown key (expected one of: {', '.join(spec)})")
            continue
        reason = check(value)
        if reason:
            problems.append(f"{path}: {reason}")
        else:
            out[key] = value
    return out


def _known_faults() -> frozenset[str] | None:
    try:
        from amicheck.sim.faults import FAULTS
    except ImportError:  # pragma: no cover - the simulator is part of the package
        return None
    return frozenset(FAULTS)


def _profile_problems(path: Path, cache: dict[Path, tuple[str, ...]]) -> tuple[str, ...]:
    """What is wrong with a profile file (each file is loaded once per fleet file)."""
    if path not in cache:
        from amicheck.errors import ProfileError
        from amicheck.profile import load_profile

        try:
            load_profile(path)
            cache[path] = ()
        except ProfileError as exc:
            cache[path] = tuple(exc.problems)
    return cache[path]


def parse_fleet(text: str, base_dir: Path | str | None = None,
                source_name: str = "<fleet>") -> Fleet:
    """Parse fleet TOML text; relative profile paths are relative to ``base_dir``.

    Raises:
        FleetError: listing every problem, one line each, named by key path.
    """
    base = Path.cwd() if base_dir is None else Path(base_dir)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FleetError(source_name, [f"not valid TOML: {exc}"]) from None
    problems: list[str] = []
    for key in doc:
        if key not in _TOP_KEYS:
            problems.append(f"{key}: unknown key (expected one of: {', '.join(_TOP_KEYS)})")

    def table(key: str) -> Mapping[str, Any]:
        value = doc.get(key, {})
        if isinstance(value, dict):
            return value
        problems.append(f"{key}: must be a table ([{key}]), got {type(value).__name__}")
        return {}

    fleet_vals = _table(table("fleet"), "fleet", _FLEET_KEYS, problems)
    defaults = _table(table("defaults"), "defaults", _DEFAULT_KEYS, problems)
    raw_targets = doc.get("targets", [])
    if not isinstance(raw_targets, list):
        problems.append("targets: must be an array of tables ([[targets]])")
        raw_targets = []
    if not raw_targets and "targets" not in [p.split(":")[0] for p in problems]:
        problems.append("targets: no targets (add [[targets]] tables with a name each)")
    faults_known = _known_faults()
    seen: dict[str, int] = {}
    checked: dict[Path, tuple[str, ...]] = {}
    targets: list[FleetTarget] = []
    for i, raw in enumerate(raw_targets):
        where = f"targets[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be a table ([[targets]]), got {type(raw).__name__}")
            continue
        vals = {**defaults, **_table(raw, where, _TARGET_KEYS, problems)}
        name = vals.get("name")
        if "name" not in raw:
            problems.append(f"{where}.name: missing (every target needs a unique name)")
            continue
        if name is None:
            continue
        if not NAME_RE.match(name):
            problems.append(f"{where}.name: {name!r} must be 1-64 of A-Z a-z 0-9 . _ - "
                            "(it names a directory), starting with a letter or digit")
            continue
        low = name.lower()
        if low in seen:
            problems.append(f"{where}.name: {name!r} duplicates targets[{seen[low]}] "
                            "(names are case-insensitive: they name directories)")
            continue
        seen[low] = i
        target = str(vals.get("target", "sim")).strip()
        faults = tuple(vals.get("faults", ()))
        is_sim = target.lower() == "sim"
        if faults and not is_sim:
            problems.append(f"{where}.faults: faults apply to target 'sim' only "
                            f"(target is {target!r})")
        for f in faults:
            if faults_known is not None and f not in faults_known:
                problems.append(f"{where}.faults: unknown fault {f!r} (see 'amicheck faults')")
        profile: Path | None = None
        if "profile" in vals:
            p = Path(vals["profile"]).expanduser()
            profile = p if p.is_absolute() else (base / p).resolve()
            if not profile.is_file():
                problems.append(f"{where}.profile: {vals['profile']!r}: no such file "
                                f"(looked at {profile})")
            else:
                problems += [f"{where}.profile: {line}"
                             for line in _profile_problems(profile, checked)]
        elif not is_sim:
            problems.append(f"{where}.profile: missing (a real target needs a profile; "
                            "'amicheck init' writes one)")
        targets.append(FleetTarget(
            name=name,
            target=target,
            profile=profile,
            faults=faults,
            outside_source=vals.get("outside_source"),
            tags=tuple(vals.get("tags", ())),
            deadline_s=float(vals.get("deadline_s", DEFAULT_DEADLINE_S)),
            allow_destructive=bool(vals.get("allow_destructive", False)),
            allow_bruteforce=bool(vals.get("allow_bruteforce", False)),
        ))
    if problems:
        raise FleetError(source_name, problems)
    default_name = Path(source_name).stem if not source_name.startswith("<") else "fleet"
    return Fleet(
        name=fleet_vals.get("name", default_name),
        targets=tuple(targets),
        extra_args=tuple(fleet_vals.get("pytest_args", ())),
    )


def load_fleet(path: str | Path) -> Fleet:
    """Load and validate a fleet file.

    Raises:
        FleetError: unreadable, or one problem per line (every problem at once).
    """
    p = Path(path).expanduser().resolve()
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise FleetError(str(path), [f"cannot read the fleet file: {reason}"]) from None
    fleet = parse_fleet(text, p.parent, str(path))
    return Fleet(name=fleet.name, targets=fleet.targets, path=p, extra_args=fleet.extra_args)
