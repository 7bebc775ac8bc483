"""The requirement catalogue: every check the compliance suites run, keyed by its ID.

Reports, JUnit properties and the plugin's marker validation all read this one table, so a
requirement ID means the same thing everywhere. The entries' text lives in
``amicheck/data/requirements.toml`` (data, not code); this module types and validates it.
Each entry says where the rule comes from (the UCM guide or stock Asterisk behaviour) and
what a UCM administrator should do when it fails. IDs are ``AMI-<AREA>-<NNN>`` with the
area prefixes of design.md.
"""

from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass
from importlib import resources
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


#: The catalogue's text, in ``amicheck/data`` (one ``[[requirement]]`` table per entry).
CATALOGUE_FILE = "requirements.toml"
_KEYS = frozenset({"id", "title", "severity", "source", "remediation"})


def _load(text: str, name: str = CATALOGUE_FILE) -> tuple[Requirement, ...]:
    """Requirements from catalogue TOML; a malformed entry is a packaging bug: fail loudly."""
    entries = []
    for i, raw in enumerate(tomllib.loads(text).get("requirement", [])):
        where = f"{name}: requirement[{i}]"
        if not isinstance(raw, dict) or set(raw) != _KEYS:
            got = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
            raise ValueError(f"{where}: needs exactly the keys {sorted(_KEYS)}, got {got}")
        if not all(isinstance(v, str) and v for v in raw.values()):
            raise ValueError(f"{where}: every value must be a non-empty string")
        parts = raw["id"].split("-")
        entries.append(
            Requirement(
                raw["id"],
                raw["title"],
                parts[1] if len(parts) == 3 else "",
                Severity(raw["severity"]),
                raw["source"],
                raw["remediation"],
            )
        )
    return tuple(entries)


_ENTRIES: Final[tuple[Requirement, ...]] = _load(
    (resources.files("amicheck") / "data" / CATALOGUE_FILE).read_text(encoding="utf-8")
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
