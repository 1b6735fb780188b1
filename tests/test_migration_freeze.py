"""Migrations are frozen: a migration, and every module of the package it imports (transitively), is kept by
content hash in tests/data/frozen_migrations.sha256; none of them imports fix, repairs, rules or seed.

The hashes are of the files as committed; `sha256sum -c tests/data/frozen_migrations.sha256` (from the
repository's root) checks them too. A new revision adds its own lines; a changed line is never the fix.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "mita_integrity"
MIGRATIONS = PACKAGE / "migrations"
MANIFEST = ROOT / "tests" / "data" / "frozen_migrations.sha256"
# Code a migration must never run: it changes with the product, and a migration must not.
FORBIDDEN = ("mita_integrity.repair", "mita_integrity.check", "mita_integrity.seed")


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _file_of(module: str) -> Path | None:
    """Gives the file of a module of the package (None: not ours, or no such file)."""
    if module != "mita_integrity" and not module.startswith("mita_integrity."):
        return None
    base = PACKAGE.parent.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    """Gives every module of the package a file imports, at the top or inside a function (`from a import b` gives
    a and, when it is a module, a.b; a relative import is resolved against the file's package)."""
    package = ""
    if path.is_relative_to(PACKAGE.parent):
        package = _module_of(path) if path.name == "__init__.py" else _module_of(path).rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in out if _file_of(m) is not None}


def _package_parents(module: str) -> list[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first: they are imported too — all but the package's
    own root, which names the version (it changes with every release) and imports nothing."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]


def migration_files() -> list[Path]:
    return sorted((MIGRATIONS / "versions").glob("*.py"))


def imported_by_migrations() -> dict[str, set[str]]:
    """Gives each module of the package the migrations import, transitively, with the migrations that reach it."""
    reached: dict[str, set[str]] = {}
    for migration in migration_files():
        todo = [migration]
        seen: set[Path] = set()
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            for module in _imports(path):
                for name in (*_package_parents(module), module):
                    found = _file_of(name)
                    if found is None:
                        continue
                    reached.setdefault(name, set()).add(migration.name)
                    todo.append(found)
    return reached


def frozen_files() -> list[Path]:
    """Gives every file whose content the chain's behaviour depends on: the revisions, the SQL files they read,
    every module of the package they import (transitively)."""
    files = set(migration_files()) | set((MIGRATIONS / "sql").glob("*.sql"))
    files |= {p for m in imported_by_migrations() if (p := _file_of(m)) is not None}
    return sorted(files)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest() -> dict[str, str]:
    out = {}
    for line in MANIFEST.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            out[name.strip()] = digest
    return out


def manifest_problems(files: list[Path], manifest: dict[str, str]) -> list[str]:
    """Gives one line per file that differs from the manifest, saying what to do instead."""
    problems = []
    names = {str(p.relative_to(ROOT)): p for p in files}
    for name, path in names.items():
        digest = _sha256(path)
        if name not in manifest:
            problems.append(f"{name} is new: a new revision (or frozen module) adds its line to "
                            f"{MANIFEST.relative_to(ROOT)}: {digest}  {name}")
        elif manifest[name] != digest:
            problems.append(f"{name} changed, but migrations are frozen: put the change back and add a new revision "
                            "instead (with a new frozen module, e.g. kit_v2.py, if it needs other code); a database "
                            "that ran the old one must get the same result")
    problems += [f"{name} is in {MANIFEST.relative_to(ROOT)} but no longer part of the chain: migrations are frozen, "
                 "put it back and add a new revision instead" for name in manifest if name not in names]
    return problems


def test_no_migration_or_module_it_imports_changed() -> None:
    problems = manifest_problems(frozen_files(), _manifest())
    assert not problems, "\n".join(problems)


def test_no_migration_imports_fix_repairs_rules_or_seed() -> None:
    bad = sorted(f"{', '.join(sorted(by))} import(s) {module}" for module, by in imported_by_migrations().items()
                 if any(module == f or module.startswith(f"{f}.") for f in FORBIDDEN))
    assert not bad, ("migrations must carry the SQL they run, not import code that changes: " + "; ".join(bad))


def test_the_freeze_names_a_changed_file_and_says_to_add_a_revision(tmp_path: Path) -> None:
    """The check itself: an edited frozen file, a new one and a removed one are each named."""
    files = frozen_files()
    manifest = {str(p.relative_to(ROOT)): _sha256(p) for p in files}
    edited = files[0]
    manifest[str(edited.relative_to(ROOT))] = "0" * 64
    manifest["src/mita_integrity/migrations/versions/0099_gone.py"] = "1" * 64
    del manifest[str(files[-1].relative_to(ROOT))]
    problems = manifest_problems(files, manifest)
    assert len(problems) == 3
    assert problems[0].startswith(f"{edited.relative_to(ROOT)} changed") and "add a new revision" in problems[0]
    assert any(p.startswith(f"{files[-1].relative_to(ROOT)} is new") for p in problems)
    assert any("0099_gone.py" in p and "no longer part" in p for p in problems)


def test_the_import_walk_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    """A lazy `from mita_integrity.repair.plan import …` inside a function is an import of fix all the same."""
    probe = MIGRATIONS / "frozen" / "kit_v1.py"
    assert "mita_integrity.migrations.frozen.online_v1" in _imports(probe)  # `from .online_v1 import …`
    fake = tmp_path / "x.py"
    fake.write_text("def f():\n    from mita_integrity.repair.plan import plan_fix\n", encoding="utf-8")
    assert "mita_integrity.repair.plan" in _imports(fake)


@pytest.mark.parametrize("module", ["mita_integrity.migrations.frozen.cleanup_v1",
                                    "mita_integrity.migrations.frozen.r0026"])
def test_the_frozen_modules_are_in_the_closure(module: str) -> None:
    assert module in imported_by_migrations()


def test_the_package_root_a_migration_runs_imports_nothing() -> None:
    """The root __init__ is left out of the manifest (the version changes with every release): it must stay free of
    imports, or what it imports would run unfrozen with every migration."""
    assert _imports(PACKAGE / "__init__.py") == set()


def test_migrate_takes_its_table_list_from_the_baseline_not_the_seed() -> None:
    """`migrate` checks the role owns the baseline's tables by its own list: the seed generator may change."""
    import re

    from mita_integrity.migration import command as migrate
    from mita_integrity.seed.plan import MITA_TABLES

    assert not any(m == "mita_integrity.seed" or m.startswith("mita_integrity.seed.")
                   for m in _imports(PACKAGE / "migration" / "command.py"))
    baseline = (MIGRATIONS / "sql" / "0021_add_habit_completions.sql").read_text(encoding="utf-8")
    created = re.findall(r'CREATE TABLE (?:public\.)?"?(\w+)', baseline)
    assert sorted(migrate.MITA_TABLES) == sorted(created) == sorted(MITA_TABLES)
