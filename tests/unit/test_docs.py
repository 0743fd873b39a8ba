"""The documentation says what the code does."""

from __future__ import annotations

from pathlib import Path

import commands.handlers  # noqa: F401 - defines the handlers' own rule violations
from infra.config import VARIABLES
from ledger.errors import RuleViolation
from runtime.cli import build_parser
from tools import worked_example
from tools.catalogue import render
from wire.codec import AvroCodec

ROOT = Path(__file__).resolve().parents[2]


class TestDocs:
    """README.md and docs/ match the code and the schemas."""

    def test_catalogue_is_generated_from_the_current_schemas(self) -> None:
        """docs/catalogue.md is exactly what `python -m tools.catalogue` prints."""
        assert (ROOT / "docs" / "catalogue.md").read_text() == render(AvroCodec())

    def test_the_worked_example_is_what_the_ledger_does(self) -> None:
        """docs/worked-example.md is exactly what `python -m tools.worked_example` prints."""
        assert (ROOT / "docs" / "worked-example.md").read_text() == worked_example.render()

    def test_every_step_of_the_worked_example_is_accepted(self) -> None:
        """The story is told with valid commands only, and the customer ends owing nothing."""
        rows = [line for line in worked_example.render().splitlines() if line.startswith("| ")]
        steps = rows[2:]  # after the header and its rule
        assert steps and all("| accepted |" in row for row in steps)
        assert steps[-1].endswith("| 0 | 0 |")

    def test_readme_names_every_variable(self) -> None:
        """Every LEDGER_* variable the code reads is in the README's configuration table."""
        readme = (ROOT / "README.md").read_text()
        assert [name for name in VARIABLES if f"`{name}`" not in readme] == []

    def test_help_names_every_variable(self) -> None:
        """`ledger --help` lists every LEDGER_* variable."""
        help_text = build_parser(AvroCodec()).format_help()
        assert [name for name in VARIABLES if name not in help_text] == []

    def test_readme_names_every_rejection_code(self) -> None:
        """Every RuleViolation code a command can be rejected with is in the README."""
        readme = (ROOT / "README.md").read_text()
        codes = {cls.code for cls in _subclasses(RuleViolation)} - {RuleViolation.code}
        assert sorted(code for code in codes if f"`{code}`" not in readme) == []

    def test_ci_runs_the_readme_test_command(self) -> None:
        """.ci/run runs the README's test command, verbatim."""
        readme = (ROOT / "README.md").read_text()
        ci = (ROOT / ".ci" / "run").read_text()
        command = next(line for line in ci.splitlines() if line.startswith("python3.11 -m venv"))
        assert command in readme


def _subclasses(cls: type) -> set[type]:
    direct = set(cls.__subclasses__())
    return direct.union(*(_subclasses(sub) for sub in direct))
