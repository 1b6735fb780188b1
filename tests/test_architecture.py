"""The package's architecture, read from its source (nothing imported): no import cycle, dependencies
pointing one way, and no product module reaching into the test helpers.

The one source of truth for the direction is each top-level package's docstring: its last paragraph says
`May import: a, b, c.` (or `every package`, or `nothing`). The top-level modules (findings, wording) are the
base layer: they may import only each other; a top-level module that declares `May import:` (a public name kept
for users, like `migration_api`) is held to its declaration. The migrations' packages are frozen (their files are
hashed by tests/test_migration_freeze.py, docstrings included), so FROZEN_DECLARATIONS below says theirs; the code
the revisions run, `migrations.frozen`, is a unit of its own at the bottom. Every import counts, including the ones
inside functions and under `if TYPE_CHECKING:`: a loop through a type annotation is still a loop.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = "mita_integrity"
SRC = ROOT / "src" / PKG
FREEZE_MANIFEST = ROOT / "tests" / "data" / "frozen_migrations.sha256"
# Units whose __init__ is frozen (its docstring cannot gain the line): what each may import. A dotted unit is a
# sub-package that stands on its own. `migrations` (Alembic's env.py and the revisions) never imports the rules,
# the repairs or the seed (issue 17: migrations are frozen); `migrations.frozen` imports nothing of the product.
FROZEN_DECLARATIONS = {
    "migrations": "migrations.frozen, migration, database",
    "migrations.frozen": "nothing",
}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


MODULES = _modules()


def _imports(name: str, path: Path, is_pkg: bool) -> set[str]:
    """Gives every module name the file imports (ours resolved to a module of the package; others as written)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                found.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module)
    out = set()
    for imported in found:
        while imported not in MODULES and "." in imported and imported.startswith(PKG + "."):
            imported = imported.rsplit(".", 1)[0]
        if imported != name:
            out.add(imported)
    return out


GRAPH = {name: _imports(name, path, is_pkg) for name, (path, is_pkg) in MODULES.items()}


def _unit(module: str) -> str:
    """Gives the part of the architecture a module belongs to: its top-level package (or a sub-package that is a
    unit of its own), or itself at the top."""
    parts = module.split(".")
    for sub in sorted((u for u in FROZEN_DECLARATIONS if "." in u), key=len, reverse=True):
        if module == f"{PKG}.{sub}" or module.startswith(f"{PKG}.{sub}."):
            return sub
    return parts[1] if len(parts) > 1 else ""


def _is_package(unit: str) -> bool:
    return f"{PKG}.{unit}" in MODULES and MODULES[f"{PKG}.{unit}"][1]


def _declaration(unit: str) -> str | None:
    if unit in FROZEN_DECLARATIONS:
        return FROZEN_DECLARATIONS[unit]
    doc = ast.get_docstring(ast.parse(MODULES[f"{PKG}.{unit}"][0].read_text(encoding="utf-8"))) or ""
    found = re.search(r"^May import: (.*?)\.?\s*$", doc, re.MULTILINE)
    return found.group(1) if found else None


def _declared_units() -> set[str]:
    """Gives the top-level packages, the top-level modules that declare what they may import (a public shim), and
    the frozen sub-packages that stand on their own."""
    tops = {_unit(m) for m in MODULES if m.count(".") == 1}
    return {u for u in tops if _is_package(u) or _declaration(u) is not None} | set(FROZEN_DECLARATIONS)


def _may_import(unit: str) -> set[str] | None:
    """Gives the units a top-level package (or module) declares it may import (None: `every package`)."""
    found = _declaration(unit)
    if found is None:
        raise AssertionError(f"src/{PKG}/{unit}/__init__.py: its docstring does not say what it may import "
                             "(a last paragraph `May import: a, b.`)")
    text = found.strip()
    if text.startswith("every package"):
        return None
    if text == "nothing":
        return set()
    return {u.strip() for u in text.split(",") if u.strip()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Gives the strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next((c for c in children if c in graph), None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_the_walk_sees_the_package() -> None:
    # a walk that found nothing would pass every test below
    assert len(MODULES) > 100
    assert sum(len(v & MODULES.keys()) for v in GRAPH.values()) > 300
    assert any(_unit(m) == "cli" for m in GRAPH[f"{PKG}.cli.root"])


def test_frozen_declarations_name_frozen_packages_only() -> None:
    # the table is for packages whose __init__ cannot change; any other package says it in its own docstring
    frozen = FREEZE_MANIFEST.read_text(encoding="utf-8")
    for unit in FROZEN_DECLARATIONS:
        init = f"src/{PKG}/{unit.replace('.', '/')}/__init__.py"
        assert f"  {init}\n" in frozen, f"{init} is not frozen: declare `May import:` in its docstring instead"


def test_the_frozen_code_imports_nothing_of_the_product() -> None:
    wrong = sorted(f"{m} imports {d}" for m, deps in GRAPH.items() if _unit(m) == "migrations.frozen"
                   for d in deps if d.startswith(PKG) and _unit(d) != "migrations.frozen")
    assert not wrong, wrong


def test_no_import_cycle() -> None:
    cycles = _cycles({m: {d for d in deps if d in MODULES} for m, deps in GRAPH.items()})
    assert not cycles, "import cycles (every import counts, TYPE_CHECKING and lazy ones too):\n" + "\n".join(
        "  " + " <-> ".join(c) for c in cycles)


def test_declared_directions_form_no_loop() -> None:
    units = _declared_units()
    declared = {u: (_may_import(u) or set()) for u in units}
    unknown = {u: sorted(d - units - {m.split(".")[1] for m in MODULES if m.count(".") == 1}) for u, d in
               declared.items()}
    assert not any(unknown.values()), f"May import names what is not a package or top-level module: {unknown}"
    assert not _cycles({u: d & units for u, d in declared.items()}), declared


def test_imports_follow_the_stated_direction() -> None:
    units = _declared_units()
    top_modules = {_unit(m) for m in MODULES if m.count(".") == 1} - units  # the base layer
    wrong = []
    for module, deps in GRAPH.items():
        here = _unit(module)
        for dep in deps:
            if dep not in MODULES or dep == PKG:
                continue  # another distribution, or the package root (its __version__)
            there = _unit(dep)
            if there == here:
                continue
            if here in top_modules or not here:
                allowed: set[str] | None = top_modules
            else:
                allowed = _may_import(here)
            if allowed is not None and there not in allowed:
                wrong.append(f"{module} imports {dep} ({here or 'the root'} may import: "
                             f"{', '.join(sorted(allowed)) or 'nothing'})")
    assert not wrong, "imports against the stated direction:\n  " + "\n  ".join(sorted(wrong))


@pytest.mark.parametrize("forbidden", ["tests", "conftest", "benchmarks"])
def test_the_product_does_not_import_test_helpers(forbidden: str) -> None:
    wrong = sorted(f"{m} imports {d}" for m, deps in GRAPH.items() for d in deps
                   if d == forbidden or d.startswith(forbidden + "."))
    assert not wrong, wrong
