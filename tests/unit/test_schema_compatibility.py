"""Schema changes are backward compatible: messages written with a released version still decode."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_writer
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form
from fastavro.utils import generate_many

from wire.codec import MAGIC, SCHEMAS_DIR, AvroCodec, AvroError

RELEASED = SCHEMAS_DIR / "released"


def written_with(schema_file: Path, record: dict[str, Any]) -> bytes:
    """A single-object-encoded message written with the schema in `schema_file`."""
    parsed = load_schema(str(schema_file))
    wire = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
    buffer = io.BytesIO()
    buffer.write(MAGIC + wire)
    schemaless_writer(buffer, parsed, record)
    return buffer.getvalue()


def incompatibilities(codec: AvroCodec, released: Path, samples: int = 20) -> list[str]:
    """What of `released`'s message schemas the codec cannot read back, one line each."""
    problems = []
    for schema_file in sorted(released.glob("*.avsc")):
        parsed = load_schema(str(schema_file))
        if parsed["type"] != "record":
            continue
        name = schema_file.stem
        if name not in codec.schema_names:
            problems.append(f"{name}: removed; released message types must stay")
            continue
        for record in generate_many(parsed, samples):
            try:
                codec.decode(written_with(schema_file, record))
            except AvroError as error:
                problems.append(f"{name}: {error}")
                break
    return problems


def released_versions() -> list[Path]:
    return sorted(p for p in RELEASED.iterdir() if p.is_dir())


class TestReleasedSchemas:
    """Every released version of every message schema is readable by the current schemas."""

    @pytest.mark.parametrize("released", released_versions(), ids=lambda p: p.name)
    def test_messages_of_a_released_version_decode(self, released: Path) -> None:
        """Generated records written with the released schemas decode with the current codec."""
        assert incompatibilities(AvroCodec(), released) == []

    def test_the_current_schemas_are_released(self) -> None:
        """The newest release holds the current schemas: bump a version when changing one."""
        newest = released_versions()[-1]
        current = {p.name: json.loads(p.read_text()) for p in SCHEMAS_DIR.glob("*.avsc")}
        snapshot = {p.name: json.loads(p.read_text()) for p in newest.glob("*.avsc")}
        assert current == snapshot, (
            f"schemas/ differs from schemas/released/{newest.name}: copy schemas/*.avsc into "
            "a new schemas/released/<version>/ (and keep the old one)"
        )


class TestEvolution:
    """The check above accepts compatible changes and catches incompatible ones."""

    @pytest.fixture(name="folders")
    def fixture_folders(self, tmp_path: Path) -> tuple[Path, Path]:
        """A copy of the current schemas with an empty release folder for the old version."""
        current = tmp_path / "schemas"
        shutil.copytree(SCHEMAS_DIR, current, ignore=shutil.ignore_patterns("released"))
        old = current / "released" / "0.0.1"
        shutil.copytree(current, old, ignore=shutil.ignore_patterns("released"))
        return current, old

    def add_field(self, folder: Path, field: dict[str, Any]) -> None:
        path = folder / "billing.commands.OpenAccount.avsc"
        schema = json.loads(path.read_text())
        schema["fields"].append(field)
        path.write_text(json.dumps(schema))

    def test_a_field_with_a_default_is_compatible(self, folders: tuple[Path, Path]) -> None:
        """Old OpenAccount messages decode, with the new field at its default."""
        current, old = folders
        self.add_field(current, {"name": "locale", "type": "string", "default": "en"})
        codec = AvroCodec(current)
        assert incompatibilities(codec, old) == []
        record = next(
            iter(generate_many(load_schema(str(old / "billing.commands.OpenAccount.avsc")), 1))
        )
        decoded = codec.decode(written_with(old / "billing.commands.OpenAccount.avsc", record))
        assert decoded.record["locale"] == "en"

    def test_a_field_without_a_default_is_caught(self, folders: tuple[Path, Path]) -> None:
        """Old messages lack the new field: the check names the schema."""
        current, old = folders
        self.add_field(current, {"name": "locale", "type": "string"})
        problems = incompatibilities(AvroCodec(current), old)
        assert problems and problems[0].startswith("billing.commands.OpenAccount")

    def test_a_removed_message_type_is_caught(self, folders: tuple[Path, Path]) -> None:
        """A released command that no longer exists is named."""
        current, old = folders
        (current / "billing.commands.Subscribe.avsc").unlink()
        assert (
            "billing.commands.Subscribe: removed" in incompatibilities(AvroCodec(current), old)[0]
        )
