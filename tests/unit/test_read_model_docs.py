"""Every read-model table and column is documented: COMMENT ON in PostgreSQL and docs/read-models.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from projections.registry import READ_MODELS
from runtime.rebuild import with_requirements

ROOT = Path(__file__).resolve().parents[2]
_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", re.S)
_ADDED = re.compile(r"ADD COLUMN IF NOT EXISTS (\w+)")
_NOT_COLUMNS = {"PRIMARY", "CHECK", "UNIQUE", "FOREIGN", "CONSTRAINT"}


def columns_of(schema: str) -> dict[str, list[str]]:
    """Each table a schema creates, with its columns (added ones included)."""
    tables = {}
    for name, body in _TABLE.findall(schema):
        names = [line.split()[0] for line in body.splitlines() if line.strip()]
        tables[name] = [n for n in names if n not in _NOT_COLUMNS and n.islower()]
    for added in _ADDED.findall(schema):
        tables["balances"].append(added)
    return tables


TABLES = {
    table: (model, columns)
    for model in READ_MODELS
    for table, columns in columns_of(model.schema).items()
}


def section(table: str) -> str:
    """The part of docs/read-models.md about `table`: from its heading to the next one."""
    text = (ROOT / "docs" / "read-models.md").read_text()
    match = re.search(rf"^#+ [^\n]*`{table}`[^\n]*$(.*?)(?=^#+ |\Z)", text, re.S | re.M)
    assert match, f"docs/read-models.md has no heading naming `{table}`"
    return match.group(1)


class TestReadModelDocs:
    """The registry's tables are the ones the schemas create, and each column is described."""

    def test_every_registered_table_is_checked(self) -> None:
        """The tables checked below are every table of every model in READ_MODELS."""
        assert sorted(TABLES) == sorted(t for model in READ_MODELS for t in model.tables)

    def test_every_model_lists_the_tables_its_schema_creates(self) -> None:
        """A model's `tables` are exactly the tables of its DDL."""
        for model in READ_MODELS:
            assert set(model.tables) == set(columns_of(model.schema)), model.name

    @pytest.mark.parametrize("table", sorted(TABLES))
    def test_every_column_has_a_comment_in_postgresql(self, table: str) -> None:
        """COMMENT ON TABLE and COMMENT ON COLUMN for each column."""
        model, columns = TABLES[table]
        assert f"COMMENT ON TABLE {table} IS" in model.schema
        missing = [c for c in columns if f"COMMENT ON COLUMN {table}.{c} IS" not in model.schema]
        assert missing == []

    @pytest.mark.parametrize("table", sorted(TABLES))
    def test_every_column_is_in_the_docs(self, table: str) -> None:
        """docs/read-models.md has a section on the table naming each of its columns."""
        text = section(table)
        _, columns = TABLES[table]
        assert [c for c in columns if f"`{c}`" not in text] == []


class TestRebuildRequirements:
    """A model rebuilt alone brings the models whose tables it reads."""

    def test_snapshots_bring_the_forecast_and_subscriptions(self) -> None:
        """forecast_snapshots reads forecast_* and subscription_versions: all three, in order."""
        (snapshots,) = [m for m in READ_MODELS if m.name == "forecast_snapshots"]
        names = [m.name for m in with_requirements([snapshots], READ_MODELS)]
        assert names == ["subscriptions", "forecast", "forecast_snapshots"]
