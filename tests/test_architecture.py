"""The shape of the package, checked from its source: module size, import cycles, layering.

Read with ``ast``, never imported, so a broken layer is reported as one line per offence
(``amicheck.a -> amicheck.b -> amicheck.a (amicheck/a.py:12, amicheck/b.py:30)``) and not as
an ImportError. Exceptions are explicit, each with its reason; an exception that is no longer
needed fails too, so the lists only shrink.
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "amicheck"
MAX_LINES = 500

#: Modules allowed over MAX_LINES (path or glob, relative to the repository) -> why.
LONG_MODULES: dict[str, str] = {
    "amicheck/sim/pbx.py": "one cohesive PBX model (channels, bridges, queues, their events)",
}

#: Import edges (importer, imported) allowed to close a cycle -> why. Every other edge must
#: leave the graph acyclic.
CYCLE_EDGES: dict[tuple[str, str], str] = {
}

#: Modules other than amicheck/capture*/pcap* allowed to import scapy -> why.
SCAPY_IMPORTERS: dict[str, str] = {}

#: What the sans-I/O core (amicheck/protocol/) must not import (style.md section 1).
IO_MODULES = frozenset({"socket", "ssl", "asyncio", "time", "select", "selectors", "scapy"})


@dataclass(frozen=True)
class Import:
    """One import statement: what it names, where, and whether only type checkers run it."""

    target: str  # absolute dotted name ("amicheck.protocol.grammar", "scapy.all")
    names: tuple[str, ...]  # ``from X import a, b`` -> ("a", "b"); () for ``import X``
    line: int
    type_checking: bool


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(source: str, module: str, is_package: bool) -> list[Import]:
    """Every import in ``source``, at module level and inside functions and classes."""
    found: list[Import] = []
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST, typing_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, typing_only)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(alias.name, (), node.lineno, typing_only))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = tuple(a.name for a in node.names)
            found.append(Import(base, names, node.lineno, typing_only))
        for inner in ast.iter_child_nodes(node):
            visit(inner, typing_only)

    visit(ast.parse(source), False)
    return found


@dataclass
class Package:
    """The modules of one package under ``root`` and the imports between them."""

    root: Path
    files: dict[str, Path]  # module name -> file
    imports: dict[str, list[Import]]

    @classmethod
    def scan(cls, root: Path, name: str = PACKAGE) -> Package:
        files = {module_name(p, root): p for p in sorted((root / name).rglob("*.py"))}
        imports = {
            mod: imports_of(path.read_text(encoding="utf-8"), mod, path.name == "__init__.py")
            for mod, path in files.items()
        }
        return cls(root, files, imports)

    def rel(self, module: str) -> str:
        return self.files[module].relative_to(self.root).as_posix()

    def edges(self) -> dict[str, dict[str, int]]:
        """importer -> {imported module of this package: line}; TYPE_CHECKING left out.

        ``from a.b import c`` depends on ``a.b.c`` when that is a module, else on ``a.b``.
        Importing ``a.b.c`` also runs the ``a`` and ``a.b`` packages, but those implicit
        edges are not counted: every module of a subpackage would close a cycle with its
        ``__init__`` otherwise.
        """
        graph: dict[str, dict[str, int]] = {mod: {} for mod in self.files}
        for mod, found in self.imports.items():
            for imp in found:
                if imp.type_checking:
                    continue
                targets = [f"{imp.target}.{n}" for n in imp.names
                           if f"{imp.target}.{n}" in self.files]
                if len(targets) < len(imp.names) or not imp.names:
                    targets.append(imp.target)
                for target in targets:
                    if target in self.files and target != mod:
                        graph[mod].setdefault(target, imp.line)
        return graph


def components(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:  # the package is small enough to recurse
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return sorted(found)


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One shortest cycle (``[a, b, ..., a]``) per component that has one."""
    return [_cycle_in(graph, set(c), c[0]) for c in components(graph)]


def _cycle_in(graph: dict[str, dict[str, int]], members: set[str], start: str) -> list[str]:
    """A shortest path from ``start`` back to itself inside one component (breadth first)."""
    parent: dict[str, str] = {}
    queue = [start]
    for v in queue:
        for w in sorted(graph[v]):
            if w not in members:
                continue
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if w not in parent:
                parent[w] = v
                queue.append(w)
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def describe(pkg: Package, graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    where = ", ".join(f"{pkg.rel(a)}:{graph[a][b]}" for a, b in pairwise(cycle))
    return " -> ".join(cycle) + f" ({where})"


def _matches(path: str, pattern: str) -> bool:
    return path == pattern or fnmatch.fnmatchcase(path, pattern)


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


@pytest.fixture(scope="module")
def pkg() -> Package:
    return Package.scan(ROOT)


# -- the package ----------------------------------------------------------------------------

def test_no_module_over_the_line_limit(pkg: Package) -> None:
    too_long = [f"{pkg.rel(m)}: {line_count(p)} lines" for m, p in pkg.files.items()
                if line_count(p) > MAX_LINES
                and not any(_matches(pkg.rel(m), pat) for pat in LONG_MODULES)]
    assert not too_long, (f"modules over {MAX_LINES} lines (split them, or add them to "
                          "LONG_MODULES with the reason):\n" + "\n".join(too_long))


def test_every_long_module_exception_is_still_needed(pkg: Package) -> None:
    """An exact path must still exist and be over the limit; a glob that matches files must
    match one over the limit (a glob matching nothing is a package still being written)."""
    stale = []
    for pattern in LONG_MODULES:
        matched = [p for m, p in pkg.files.items() if _matches(pkg.rel(m), pattern)]
        if any(line_count(p) > MAX_LINES for p in matched):
            continue
        if matched or not any(c in pattern for c in "*?["):
            stale.append(pattern)
    assert not stale, f"LONG_MODULES entries no longer needed: {stale}"


def cycles_left(pkg: Package, allowed: dict[tuple[str, str], str]) -> list[str]:
    """Each cycle that remains once the ``allowed`` edges are cut, described."""
    graph = pkg.edges()
    for a, b in allowed:
        graph.get(a, {}).pop(b, None)
    return [describe(pkg, pkg.edges(), c) for c in find_cycles(graph)]


def test_no_import_cycle(pkg: Package) -> None:
    cycles = cycles_left(pkg, CYCLE_EDGES)
    assert not cycles, "import cycles among amicheck modules:\n" + "\n".join(cycles)


def test_every_allowed_cycle_edge_still_exists_and_closes_a_cycle(pkg: Package) -> None:
    graph = pkg.edges()
    stale = []
    for a, b in CYCLE_EDGES:
        in_cycle = any(a in c and b in c for c in components(graph))
        if b not in graph.get(a, {}) or not in_cycle:
            stale.append((a, b))
    assert not stale, f"CYCLE_EDGES entries no longer needed: {stale}"


def test_protocol_core_imports_no_io(pkg: Package) -> None:
    bad = [f"{pkg.rel(m)}:{imp.line} imports {imp.target}"
           for m, found in pkg.imports.items() if m.startswith(f"{PACKAGE}.protocol")
           for imp in found if imp.target.split(".")[0] in IO_MODULES]
    assert not bad, "amicheck/protocol/ must stay sans-I/O:\n" + "\n".join(bad)


def test_only_the_capture_modules_import_scapy(pkg: Package) -> None:
    bad = [f"{pkg.rel(m)}:{imp.line} imports {imp.target}"
           for m in _scapy_importers(pkg)
           if pkg.rel(m) not in SCAPY_IMPORTERS
           for imp in pkg.imports[m] if imp.target.split(".")[0] == "scapy"]
    assert not bad, "only amicheck/capture*/pcap* may import scapy:\n" + "\n".join(bad)


def test_every_scapy_exception_is_still_needed(pkg: Package) -> None:
    importers = {pkg.rel(m) for m in _scapy_importers(pkg)}
    stale = sorted(set(SCAPY_IMPORTERS) - importers)
    assert not stale, f"SCAPY_IMPORTERS entries no longer needed: {stale}"


def _scapy_importers(pkg: Package) -> list[str]:
    """Modules outside amicheck/capture*/pcap* (module or package) that import scapy."""
    def edge(module: str) -> bool:
        first = module.split(".")[1] if "." in module else ""
        return first.startswith(("capture", "pcap"))

    return [m for m, found in pkg.imports.items() if not edge(m)
            and any(imp.target.split(".")[0] == "scapy" for imp in found)]


# -- the checks themselves, on a planted package --------------------------------------------

def _plant(tmp_path: Path, files: dict[str, str]) -> Package:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return Package.scan(tmp_path, "pkg")


def test_a_planted_cycle_is_reported_with_its_path_and_lines(tmp_path: Path) -> None:
    pkg = _plant(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "import pkg.b\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "\n\ndef f():\n    from .. import a\n",  # function-level, relative
        "pkg/b.py": "from pkg.sub import c\n",
        "pkg/d.py": "from pkg.b import thing\n",  # into the cycle, not part of it
    })
    assert cycles_left(pkg, {}) == [
        "pkg.a -> pkg.b -> pkg.sub.c -> pkg.a (pkg/a.py:1, pkg/b.py:1, pkg/sub/c.py:4)"]
    assert cycles_left(pkg, {("pkg.sub.c", "pkg.a"): "planted"}) == []
    assert cycles_left(pkg, {("pkg.d", "pkg.b"): "not on the cycle"}) != []


def test_type_checking_imports_close_no_cycle(tmp_path: Path) -> None:
    pkg = _plant(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "import pkg.b\n",
        "pkg/b.py": ("import typing\nif typing.TYPE_CHECKING:\n    from pkg import a\n"
                     "else:\n    import pkg.c\n"),
        "pkg/c.py": "",
    })
    graph = pkg.edges()
    assert find_cycles(graph) == []
    assert graph["pkg.b"] == {"pkg.c": 5}
    assert [i.type_checking for i in pkg.imports["pkg.b"]] == [False, True, False]


def test_a_self_import_through_the_package_is_no_cycle(tmp_path: Path) -> None:
    """``from pkg.x import y`` inside ``pkg/x/__init__.py``'s own modules is not a cycle of
    one module, and the implicit parent-package edge is not counted."""
    pkg = _plant(tmp_path, {
        "pkg/__init__.py": "from pkg.x import y\n",
        "pkg/x/__init__.py": "from pkg.x.y import Y\n",
        "pkg/x/y.py": "from pkg.x import z\nY = 1\n",
        "pkg/x/z.py": "",
    })
    assert find_cycles(pkg.edges()) == []
    assert pkg.edges()["pkg.x.y"] == {"pkg.x.z": 1}


def test_line_limit_and_glob_exceptions(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text("x = 1\n" * (MAX_LINES + 1), encoding="utf-8")
    assert line_count(path) == MAX_LINES + 1
    assert _matches("amicheck/tls/probe.py", "amicheck/tls/*")
    assert not _matches("amicheck/tlsaudit.py", "amicheck/tls/*")


def _imports(tree_text: str) -> Iterator[str]:
    yield from (i.target for i in imports_of(tree_text, "pkg.protocol.m", False))


def test_io_and_scapy_imports_are_seen_wherever_they_are() -> None:
    text = ("import time as clock\n"
            "def f():\n    from scapy.all import IP\n"
            "class C:\n    import ssl\n")
    assert list(_imports(text)) == ["time", "scapy.all", "ssl"]
