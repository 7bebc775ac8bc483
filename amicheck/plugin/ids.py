"""Requirement IDs at collection: exactly one known, unique ID per suite test.

Enforced on the shipped suites, on directories named by the ``ami_suites`` ini key, on every
test when ``ami_require_ids`` is true, and on any test that carries a requirement marker;
a project's own directory that happens to be called ``suites`` is left alone. Valid IDs are
copied into ``item.user_properties`` so that reports (also on the xdist controller) see them.
"""

from __future__ import annotations

import importlib.util
import sysconfig
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

import pytest

from amicheck.plugin.settings import run_state

__all__ = ["shipped_suite_candidates", "shipped_suites", "is_suite_item", "check_requirements"]

REQUIREMENT_PROPERTY = "requirement"  # amicheck.report.collector reads the same name
_roots_key = pytest.StashKey[tuple[Path, ...]]()


def shipped_suite_candidates() -> list[Path]:
    """Where the shipped suites may be, in search order (see amicheck.cli)."""
    import amicheck

    pkg = Path(amicheck.__file__).resolve().parent
    shared = Path(sysconfig.get_path("data")) / "share" / "amicheck" / "suites"
    candidates = [pkg / "suites", pkg.parent / "suites", shared]
    try:  # shipped as the package ``amicheck.suites`` (a package-dir mapping)
        spec = importlib.util.find_spec("amicheck.suites")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        candidates.insert(0, Path(next(iter(spec.submodule_search_locations))))
    return candidates


def shipped_suites() -> Path | None:
    """The shipped suites directory, or None when this installation has none."""
    for c in shipped_suite_candidates():
        if c.is_dir():
            return c.resolve()
    return None


def _suite_roots(config: pytest.Config) -> tuple[Path, ...]:
    roots = config.stash.get(_roots_key, None)
    if roots is None:
        found = [Path(p).resolve() for p in config.getini("ami_suites")]
        shipped = shipped_suites()
        if shipped is not None:
            found.append(shipped)
        roots = config.stash[_roots_key] = tuple(found)
    return roots


def add_ini(parser: pytest.Parser) -> None:
    parser.addini(
        "ami_require_ids", "every test needs one requirement ID (not only the suites')",
        type="bool", default=False,
    )
    parser.addini(
        "ami_suites", "directories of compliance suites: their tests need one requirement ID "
        "(the shipped suites always do)", type="paths", default=[],
    )


def is_suite_item(item: pytest.Item) -> bool:
    """Whether ``item`` is a compliance check (its requirement ID is enforced)."""
    if item.get_closest_marker("requirement") is not None:
        return True
    if item.config.getini("ami_require_ids"):
        return True
    path = item.path.resolve()
    return any(path.is_relative_to(root) for root in _suite_roots(item.config))


def _function_key(item: pytest.Item) -> str:
    return item.nodeid.split("[", 1)[0]


def check_requirements(config: pytest.Config, items: Iterable[pytest.Item]) -> list[str]:
    """Problems with the requirement markers of ``items``; valid IDs go to user_properties."""
    from amicheck.requirements import CATALOGUE

    state = run_state(config)
    problems: list[str] = []
    for item in items:
        if not is_suite_item(item):
            continue
        marks = list(item.iter_markers("requirement"))
        if len(marks) != 1:
            problems.append(
                f"{item.nodeid}: needs exactly one @pytest.mark.requirement(ID), has {len(marks)}"
            )
            continue
        args = marks[0].args
        if len(args) != 1 or not isinstance(args[0], str) or marks[0].kwargs:
            problems.append(f"{item.nodeid}: requirement marker takes one ID string, got {args!r}")
            continue
        rid = args[0]
        if rid not in CATALOGUE:
            problems.append(f"{item.nodeid}: unknown requirement ID {rid!r} (not in the catalogue)")
            continue
        key = _function_key(item)
        first = state.seen_ids.get(rid)
        if first is not None and first[0] != key:
            problems.append(f"{item.nodeid}: duplicate requirement ID {rid!r} (also on {first[1]})")
            continue
        state.seen_ids.setdefault(rid, (key, item.nodeid))
        if (REQUIREMENT_PROPERTY, rid) not in item.user_properties:
            item.user_properties.append((REQUIREMENT_PROPERTY, rid))
    return problems


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    report = yield
    if report.passed and report.result:
        items = [n for n in report.result if isinstance(n, pytest.Item)]
        problems = check_requirements(collector.config, items) if items else []
        if problems:
            report.outcome = "failed"
            report.longrepr = "amicheck requirement IDs:\n  " + "\n  ".join(problems)
            report.result = []
    return report
