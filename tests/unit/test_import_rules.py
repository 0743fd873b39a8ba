"""The import rules of docs/architecture.md, checked from the code's own imports."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = ("runtime", "demo", "audit", "tools")
INTAKE_AND_OUTPUT = ("commands", "outbox", "projections")
# What each folder may import of the project's own folders; imports run down only.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "ledger": frozenset({"ledger"}),
    "infra": frozenset({"infra"}),
    "local": frozenset({"local", "infra"}),
    "wire": frozenset({"wire", "ledger", "infra"}),
    **{name: frozenset({name, "wire", "ledger", "infra"}) for name in INTAKE_AND_OUTPUT},
    **{
        name: frozenset({*ENTRY_POINTS, *INTAKE_AND_OUTPUT, "local", "wire", "ledger", "infra"})
        for name in ENTRY_POINTS
    },
}
OWN_FOLDERS = frozenset(MAY_IMPORT)


def imported_folders(path: Path) -> Iterator[tuple[int, str]]:
    """(line, folder) for every import of one of the project's folders in the file at `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            folder = name.partition(".")[0]
            if folder in OWN_FOLDERS:
                yield node.lineno, folder


def violations() -> list[str]:
    """Every import of a folder that the importing folder may not import."""
    found = []
    for folder, allowed in MAY_IMPORT.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, imported in imported_folders(path):
                if imported not in allowed:
                    found.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    return found


class TestImportRules:
    """Imports run down: entry points -> intake and output -> wire -> ledger, infra."""

    def test_no_folder_imports_a_folder_above_it(self) -> None:
        """No module imports a folder its own folder may not depend on."""
        assert violations() == []

    def test_the_check_sees_an_upward_import(self, tmp_path: Path) -> None:
        """The checker itself finds an import of runtime from a domain module."""
        module = tmp_path / "bad.py"
        module.write_text("from runtime.cli import main\nimport ledger.money\n")
        assert [folder for _, folder in imported_folders(module)] == ["runtime", "ledger"]
        assert "runtime" not in MAY_IMPORT["ledger"]

    def test_every_package_of_the_project_has_rules(self) -> None:
        """A new top-level package must be given its place in the rules."""
        packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
        assert packages <= OWN_FOLDERS
