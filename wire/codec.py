"""The Avro codec for every message the ledger sends or receives.

A message is Avro's single-object encoding: the marker C3 01, the 8-byte little-endian
CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form, then the binary body.
"""

from __future__ import annotations

import io
import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Final, cast

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint as canonical_fingerprint
from fastavro.schema import load_schema, to_parsing_canonical_form
from fastavro.validation import ValidationError, validate

SCHEMAS_DIR: Final[Path] = Path(__file__).resolve().parent.parent / "schemas"
MAGIC: Final = b"\xc3\x01"
HEADER_SIZE: Final = len(MAGIC) + 8


@dataclass(frozen=True)
class Decoded:
    """A decoded message: the full name of its writer schema and the record as fastavro reads it."""

    schema_name: str
    record: dict[str, Any]


@dataclass(frozen=True)
class _MessageSchema:
    """One message schema, parsed once, with the fingerprint that names it on the wire.

    `reader` is the current schema of the same name when this is a released earlier version:
    its messages are resolved to the current shape (Avro schema resolution).
    """

    name: str
    parsed: dict[str, Any]
    fingerprint: bytes
    reader: dict[str, Any] | None = None


class AvroCodec:
    """Encodes and decodes single-object-encoded Avro messages for every schema in a folder."""

    def __init__(self, folder: Path = SCHEMAS_DIR) -> None:
        """Load and parse every `<fullname>.avsc` in `folder` once; records are message schemas.

        Earlier versions kept under `folder/released/<version>/` are loaded too, as writer
        schemas only: a message written with one of them decodes into the current shape.
        """
        self._folder = folder
        schemas = _records(_load_folder(folder))
        self._by_name = {schema.name: schema for schema in schemas}
        self._by_fingerprint = {
            schema.fingerprint: schema for schema in self._released(folder / "released")
        }
        self._by_fingerprint.update({schema.fingerprint: schema for schema in schemas})

    def _released(self, history: Path) -> list[_MessageSchema]:
        if not history.is_dir():
            return []
        return [
            replace(old, reader=self._by_name[old.name].parsed)
            for version in sorted(p for p in history.iterdir() if p.is_dir())
            for old in _records(_load_folder(version))
            if old.name in self._by_name
        ]

    @property
    def schema_names(self) -> tuple[str, ...]:
        """Sorted full names of every message schema (top-level record) in the folder."""
        return tuple(sorted(self._by_name))

    def schema(self, schema_name: str) -> dict[str, Any]:
        """The parsed schema, shared with the codec: read it, do not change it."""
        return self._message_schema(schema_name).parsed

    def fingerprint(self, schema_name: str) -> bytes:
        """The 8 bytes that name `schema_name` on the wire (CRC-64-AVRO, little-endian)."""
        return self._message_schema(schema_name).fingerprint

    def encode(self, schema_name: str, record: Mapping[str, Any]) -> bytes:
        """Encode `record` as a `schema_name` message; raise InvalidRecord if it does not fit."""
        schema = self._message_schema(schema_name)
        _check_fits(schema, record)
        buffer = io.BytesIO()
        buffer.write(MAGIC + schema.fingerprint)
        try:
            # strict_allow_default rejects keys the schema does not know, e.g. a misspelt field
            # that would otherwise be dropped silently and replaced by its default.
            schemaless_writer(buffer, schema.parsed, record, strict_allow_default=True)
        except (TypeError, ValueError, OverflowError) as error:
            raise InvalidRecord(schema.name, None, str(error)) from error
        return buffer.getvalue()

    def decode(self, data: bytes) -> Decoded:
        """Decode a message written with any loaded schema; raise only AvroError subclasses."""
        schema = self._writer_schema(data)
        return Decoded(schema.name, _read_body(schema, data))

    def decode_as(self, data: bytes, schema_name: str) -> Decoded:
        """Decode like decode(), but raise UnexpectedSchema if the message has another schema."""
        expected = self._message_schema(schema_name)
        actual = self._writer_schema(data)
        if actual.name != expected.name:
            raise UnexpectedSchema(expected=expected.name, actual=actual.name)
        return Decoded(actual.name, _read_body(actual, data))

    def _message_schema(self, schema_name: str) -> _MessageSchema:
        try:
            return self._by_name[schema_name]
        except KeyError:
            raise UnknownSchemaName(schema_name, self._folder, self.schema_names) from None

    def _writer_schema(self, data: bytes) -> _MessageSchema:
        _check_header(data)
        fingerprint = bytes(data[len(MAGIC) : HEADER_SIZE])
        try:
            return self._by_fingerprint[fingerprint]
        except KeyError:
            raise UnknownFingerprint(fingerprint, len(self._by_fingerprint)) from None


def _records(schemas: list[_MessageSchema]) -> list[_MessageSchema]:
    return [schema for schema in schemas if schema.parsed["type"] == "record"]


def _load_folder(folder: Path) -> list[_MessageSchema]:
    if not folder.is_dir():
        raise SchemaLoadError(folder, "there is no such folder")
    return [_load_file(path) for path in sorted(folder.glob("*.avsc"))]


def _load_file(path: Path) -> _MessageSchema:
    try:
        # load_schema resolves names defined in other files of the folder (<fullname>.avsc)
        # and inlines them, so the canonical form below is the complete writer schema.
        parsed = load_schema(str(path))
    except Exception as error:  # fastavro raises JSON, repository and parse errors alike
        raise SchemaLoadError(path, f"{type(error).__name__}: {error}") from error
    if not isinstance(parsed, dict):
        raise SchemaLoadError(path, "its top-level schema is not a named type")
    if parsed.get("name") != path.stem:
        raise SchemaLoadError(
            path,
            f"its top-level schema is named {parsed.get('name')!r}; "
            "the file must be named <fullname>.avsc",
        )
    return _MessageSchema(path.stem, parsed, _fingerprint_of(parsed))


def _fingerprint_of(parsed: dict[str, Any]) -> bytes:
    # fastavro's hex answer already lists the fingerprint's bytes little-endian, as the spec
    # puts them on the wire; int(hex, 16) would be the byte-swapped number, not the fingerprint.
    return bytes.fromhex(canonical_fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


def _check_header(data: bytes) -> None:
    if not data:
        raise NotSingleObjectEncoded("the message is empty")
    if len(data) >= len(MAGIC) and data[: len(MAGIC)] != MAGIC:
        raise NotSingleObjectEncoded(f"the message starts with {_hex(data[: len(MAGIC)])}")
    if len(data) < HEADER_SIZE:
        raise NotSingleObjectEncoded(
            f"the message is {_count(len(data))} ({_hex(data)}), "
            f"shorter than the {HEADER_SIZE}-byte header"
        )


def _read_body(schema: _MessageSchema, data: bytes) -> dict[str, Any]:
    buffer = io.BytesIO(data)
    buffer.seek(HEADER_SIZE)
    try:
        record = schemaless_reader(buffer, schema.parsed, schema.reader)
    except EOFError as error:
        raise MalformedBody(schema.name, _truncated(data, error)) from error
    except Exception as error:  # corrupt bytes surface as many error types deep in fastavro
        message = f"invalid data ({type(error).__name__}: {error})"
        raise MalformedBody(schema.name, message) from error
    trailing = len(data) - buffer.tell()
    if trailing:
        raise MalformedBody(schema.name, f"{_count(trailing)} left over after the record")
    return cast("dict[str, Any]", record)  # only record schemas are message schemas


def _truncated(data: bytes, error: EOFError) -> str:
    # fastavro reports a length prefix that is negative or past the end as an EOFError too.
    detail = f" ({error})" if str(error) else ""
    return f"the body ({_count(len(data) - HEADER_SIZE)}) ends before the record does{detail}"


def _count(size: int) -> str:
    return f"{size} byte" if size == 1 else f"{size} bytes"


def _hex(data: bytes) -> str:
    return " ".join(f"{byte:02x}" for byte in data)


def _check_fits(schema: _MessageSchema, record: Mapping[str, Any]) -> None:
    try:
        # strict: a field without a default must be present, even when null would fit it.
        validate(record, schema.parsed, raise_errors=True, strict=True)
    except ValidationError as error:
        field, problem = _explain(schema, error.errors)
        raise InvalidRecord(schema.name, field, problem) from error


def _explain(schema: _MessageSchema, errors: Iterable[Any]) -> tuple[str, str]:
    """The first offending field and what is wrong with every field fastavro complained about."""
    by_field: dict[str, list[Any]] = {}
    for error in errors:  # a union that fits no branch reports one error per branch
        by_field.setdefault(error.field or schema.name, []).append(error)
    problems = [_explain_field(schema, field, found) for field, found in by_field.items()]
    return next(iter(by_field)), "; ".join(problems)


def _explain_field(schema: _MessageSchema, field: str, errors: list[Any]) -> str:
    datum = errors[0].datum
    definitions = [_resolve(schema, error.schema) for error in errors]
    missing = [name for definition in definitions for name in _missing_fields(datum, definition)]
    if missing:
        return "; ".join(f"{field}.{name} is missing and has no default" for name in missing)
    expected = " or ".join(_describe(definition) for definition in definitions)
    return f"{field} is {reprlib.repr(datum)} ({type(datum).__name__}), expected {expected}"


def _resolve(schema: _MessageSchema, definition: Any) -> Any:
    named: dict[str, Any] = schema.parsed.get("__named_schemas", {})
    return named.get(definition, definition) if isinstance(definition, str) else definition


def _missing_fields(datum: Any, definition: Any) -> list[str]:
    if not (isinstance(datum, Mapping) and isinstance(definition, dict)):
        return []
    fields = definition.get("fields", [])
    return [f["name"] for f in fields if f["name"] not in datum and "default" not in f]


def _describe(definition: Any) -> str:
    if isinstance(definition, list):
        return " or ".join(_describe(branch) for branch in definition)
    if not isinstance(definition, dict):
        return str(definition)
    kind = definition["type"]
    if kind == "enum":
        return f"a {definition['name']} symbol ({', '.join(definition['symbols'])})"
    if kind == "array":
        return f"an array of {_describe(definition['items'])}"
    if kind == "map":
        return f"a map of {_describe(definition['values'])}"
    if "logicalType" in definition:
        return f"{definition['logicalType']} ({kind})"
    return f"{kind} {definition.get('name', '')}".rstrip()


class AvroError(Exception):
    """Base of every codec error; `code` is a stable machine-readable reason."""

    code: ClassVar[str] = "avro_error"


class SchemaLoadError(AvroError):
    """A schema folder or file could not be loaded, so no codec can be built from it."""

    code = "schema_load_failed"

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"cannot load Avro schemas from {path}: {problem}")
        self.path = path


class NotSingleObjectEncoded(AvroError):
    """The bytes do not begin with the single-object header: C3 01 and an 8-byte fingerprint."""

    code = "not_single_object_encoded"

    def __init__(self, problem: str) -> None:
        super().__init__(
            f"not an Avro single-object-encoded message: {problem}; expected c3 01, "
            "an 8-byte schema fingerprint, then the body"
        )


class UnknownFingerprint(AvroError):
    """The message's writer schema fingerprint matches no loaded schema."""

    code = "unknown_schema_fingerprint"

    def __init__(self, fingerprint: bytes, known_count: int) -> None:
        value = int.from_bytes(fingerprint, "little")
        super().__init__(
            f"unknown writer schema: fingerprint {fingerprint.hex()} (CRC-64-AVRO {value:#018x}) "
            f"matches none of the {known_count} loaded schemas"
        )
        self.fingerprint = fingerprint


class MalformedBody(AvroError):
    """The body is truncated, invalid for its writer schema, or followed by extra bytes."""

    code = "malformed_body"

    def __init__(self, schema_name: str, problem: str) -> None:
        super().__init__(f"malformed {schema_name} body: {problem}")
        self.schema_name = schema_name


class InvalidRecord(AvroError):
    """encode() was given a record that does not fit its schema."""

    code = "invalid_record"

    def __init__(self, schema_name: str, field: str | None, problem: str) -> None:
        super().__init__(f"record does not fit {schema_name}: {problem}")
        self.schema_name = schema_name
        self.field = field


class UnknownSchemaName(AvroError):
    """No message schema of that full name was loaded."""

    code = "unknown_schema_name"

    def __init__(self, schema_name: str, folder: Path, known: tuple[str, ...]) -> None:
        super().__init__(
            f"no message schema named {schema_name!r} in {folder} "
            f"(loaded: {', '.join(known) or 'none'})"
        )
        self.schema_name = schema_name


class UnexpectedSchema(AvroError):
    """decode_as() was given a message written with a different schema."""

    code = "unexpected_schema"

    def __init__(self, *, expected: str, actual: str) -> None:
        super().__init__(f"expected a {expected} message, got a {actual} message")
        self.expected = expected
        self.actual = actual
