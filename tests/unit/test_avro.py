"""Specification of the Avro codec: single-object encoding, schema fingerprints and codec errors."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form
from fastavro.utils import generate_many
from hypothesis import given, settings
from hypothesis import strategies as st

from wire.codec import (
    SCHEMAS_DIR,
    AvroCodec,
    AvroError,
    Decoded,
    InvalidRecord,
    MalformedBody,
    NotSingleObjectEncoded,
    SchemaLoadError,
    UnexpectedSchema,
    UnknownFingerprint,
    UnknownSchemaName,
)

ENTRY_POSTED = "billing.events.EntryPosted"
OPEN_ACCOUNT = "billing.commands.OpenAccount"
POSTING = "billing.types.Posting"

SCHEMAS: dict[str, dict[str, Any]] = {
    "billing.types.PostingSide": {
        "type": "enum",
        "name": "PostingSide",
        "namespace": "billing.types",
        "symbols": ["DEBIT", "CREDIT"],
    },
    POSTING: {
        "type": "record",
        "name": "Posting",
        "namespace": "billing.types",
        "doc": "One leg of a journal entry.",
        "fields": [
            {"name": "ledger_account", "type": "string"},
            {"name": "side", "type": "billing.types.PostingSide"},
            {"name": "amount_minor", "type": "long"},
        ],
    },
    ENTRY_POSTED: {
        "type": "record",
        "name": "EntryPosted",
        "namespace": "billing.events",
        "fields": [
            {"name": "entry_id", "type": "string", "doc": "Stable id of the entry."},
            {
                "name": "kind",
                "type": {"type": "enum", "name": "EntryKind", "symbols": ["CHARGE", "REFUND"]},
            },
            {"name": "posted_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "postings", "type": {"type": "array", "items": "billing.types.Posting"}},
            {"name": "memo", "type": ["null", "string"], "default": None},
        ],
    },
    OPEN_ACCOUNT: {
        "type": "record",
        "name": "OpenAccount",
        "namespace": "billing.commands",
        "fields": [
            {"name": "account_id", "type": "string"},
            {"name": "credit_limit_minor", "type": "long"},
        ],
    },
}

# Written by hand from the specification's rules: referenced types inlined at first use,
# full names, only name/type/fields/symbols/items kept (no doc, default or logicalType).
ENTRY_POSTED_CANONICAL_FORM = (
    '{"name":"billing.events.EntryPosted","type":"record","fields":['
    '{"name":"entry_id","type":"string"},'
    '{"name":"kind","type":{"name":"billing.events.EntryKind","type":"enum",'
    '"symbols":["CHARGE","REFUND"]}},'
    '{"name":"posted_at","type":"long"},'
    '{"name":"postings","type":{"type":"array","items":{"name":"billing.types.Posting",'
    '"type":"record","fields":[{"name":"ledger_account","type":"string"},'
    '{"name":"side","type":{"name":"billing.types.PostingSide","type":"enum",'
    '"symbols":["DEBIT","CREDIT"]}},{"name":"amount_minor","type":"long"}]}}},'
    '{"name":"memo","type":["null","string"]}]}'
)

ERROR_CODES: dict[type[AvroError], str] = {
    NotSingleObjectEncoded: "not_single_object_encoded",
    UnknownFingerprint: "unknown_schema_fingerprint",
    MalformedBody: "malformed_body",
    InvalidRecord: "invalid_record",
    UnknownSchemaName: "unknown_schema_name",
    UnexpectedSchema: "unexpected_schema",
    SchemaLoadError: "schema_load_failed",
}

EMPTY_64 = 0xC15D213AA4D7A795


def _rabin_table() -> list[int]:
    table = []
    for index in range(256):
        value = index
        for _ in range(8):
            value = (value >> 1) ^ (EMPTY_64 & -(value & 1))
        table.append(value)
    return table


RABIN_TABLE = _rabin_table()


def rabin_64(data: bytes) -> int:
    """CRC-64-AVRO as the Avro specification's reference Java computes it, as an unsigned int."""
    value = EMPTY_64
    for byte in data:
        value = (value >> 8) ^ RABIN_TABLE[(value ^ byte) & 0xFF]
    return value


def signed_64(value: int) -> int:
    """The value as Java's `long` would print it."""
    return value - 2**64 if value >= 2**63 else value


def write_schemas(folder: Path, schemas: dict[str, dict[str, Any]]) -> Path:
    """Write each schema as `<fullname>.avsc` into `folder`."""
    for name, schema in schemas.items():
        (folder / f"{name}.avsc").write_text(json.dumps(schema, indent=2))
    return folder


def entry_posted(**changes: Any) -> dict[str, Any]:
    """A valid EntryPosted record, with `changes` applied."""
    record: dict[str, Any] = {
        "entry_id": "entry-1",
        "kind": "CHARGE",
        "posted_at": datetime(2024, 3, 1, 12, 30, 15, 250_000, tzinfo=UTC),
        "postings": [
            {"ledger_account": "receivable", "side": "DEBIT", "amount_minor": 1250},
            {"ledger_account": "revenue", "side": "CREDIT", "amount_minor": 1250},
        ],
        "memo": "March subscription",
    }
    return record | changes


def damage(message: bytes, position: int, byte: int) -> bytes:
    """The message with one byte replaced, or cut short there when `byte` is odd."""
    position %= len(message)
    if byte % 2:
        return message[:position]
    return message[:position] + bytes([byte]) + message[position + 1 :]


@pytest.fixture(name="schema_folder", scope="module")
def fixture_schema_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_schemas(tmp_path_factory.mktemp("schemas"), SCHEMAS)


@pytest.fixture(name="codec", scope="module")
def fixture_codec(schema_folder: Path) -> AvroCodec:
    return AvroCodec(schema_folder)


@pytest.fixture(name="message")
def fixture_message(codec: AvroCodec) -> bytes:
    return codec.encode(ENTRY_POSTED, entry_posted())


@pytest.fixture(name="seeded_random")
def fixture_seeded_random() -> Iterator[None]:
    # generate_many draws from the global random module; seed it for a repeatable run.
    state = random.getstate()
    random.seed(20240301)
    yield
    random.setstate(state)


@pytest.fixture(name="repository_codec", scope="module")
def fixture_repository_codec() -> AvroCodec:
    if not any(SCHEMAS_DIR.glob("*.avsc")):
        pytest.skip(f"no .avsc files in {SCHEMAS_DIR} yet")
    return AvroCodec()


longs = st.integers(min_value=-(2**63), max_value=2**63 - 1)
timestamps = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))
postings = st.fixed_dictionaries(
    {
        "ledger_account": st.text(),
        "side": st.sampled_from(["DEBIT", "CREDIT"]),
        "amount_minor": longs,
    }
)
entries = st.fixed_dictionaries(
    {
        "entry_id": st.text(),
        "kind": st.sampled_from(["CHARGE", "REFUND"]),
        "posted_at": timestamps,
        "postings": st.lists(postings, max_size=4),
        "memo": st.none() | st.text(),
    }
)


class TestRoundTrip:
    """What encode() writes, decode() reads back unchanged."""

    def test_decode_returns_the_schema_name_and_the_record(self, codec: AvroCodec) -> None:
        """A record with a timestamp, an enum, an array of shared records and a union survives."""
        record = entry_posted()

        decoded = codec.decode(codec.encode(ENTRY_POSTED, record))

        assert decoded == Decoded(schema_name=ENTRY_POSTED, record=record)

    def test_timestamps_decode_as_aware_utc_datetimes(self, codec: AvroCodec) -> None:
        """A timestamp-millis field reads back as a timezone-aware datetime in UTC."""
        decoded = codec.decode(codec.encode(ENTRY_POSTED, entry_posted()))

        assert decoded.record["posted_at"].utcoffset().total_seconds() == 0

    def test_null_branch_of_a_union_round_trips(self, codec: AvroCodec) -> None:
        """A nullable field set to None reads back as None."""
        record = entry_posted(memo=None)

        assert codec.decode(codec.encode(ENTRY_POSTED, record)).record == record

    def test_omitted_field_with_a_default_is_written_as_its_default(self, codec: AvroCodec) -> None:
        """A field the record leaves out is encoded with the schema's default."""
        record = entry_posted()
        del record["memo"]

        assert codec.decode(codec.encode(ENTRY_POSTED, record)).record["memo"] is None

    @settings(max_examples=200)
    @given(record=entries)
    def test_generated_records_round_trip_to_themselves(
        self, codec: AvroCodec, record: dict[str, Any]
    ) -> None:
        """decode(encode(record)) is the record, for any record the schema allows."""
        assert codec.decode(codec.encode(ENTRY_POSTED, record)).record == record


class TestWireLayout:
    """Messages follow the Avro specification's single-object encoding byte for byte."""

    def test_message_starts_with_the_single_object_marker(self, message: bytes) -> None:
        """The first two bytes are C3 01."""
        assert message[:2] == b"\xc3\x01"

    def test_fingerprint_follows_the_marker(self, codec: AvroCodec, message: bytes) -> None:
        """Bytes 2 to 10 are the writer schema's fingerprint."""
        assert message[2:10] == codec.fingerprint(ENTRY_POSTED)

    def test_body_is_the_plain_avro_binary_encoding(self, codec: AvroCodec) -> None:
        """After the header comes the record in Avro binary: zigzag varints, length-prefixed."""
        message = codec.encode(OPEN_ACCOUNT, {"account_id": "a1", "credit_limit_minor": -3})

        assert message[10:] == b"\x04a1\x05"

    def test_reference_rabin_matches_the_specification_example(self) -> None:
        """The reference implementation gives the spec's fingerprint of "null"."""
        assert signed_64(rabin_64(b'"null"')) == 7195948357588979594

    def test_fastavro_hex_fingerprint_already_lists_little_endian_bytes(self) -> None:
        """fastavro's CRC-64-AVRO hex spells the wire bytes, not the number big-endian."""
        hex_fingerprint = fingerprint(to_parsing_canonical_form("null"), "CRC-64-AVRO")

        assert bytes.fromhex(hex_fingerprint) == (0x63DD24E7CC258F8A).to_bytes(8, "little")

    def test_canonical_form_inlines_types_from_other_files(self, codec: AvroCodec) -> None:
        """The writer schema is fingerprinted with its referenced types spelled out."""
        canonical_form = to_parsing_canonical_form(codec.schema(ENTRY_POSTED))

        assert canonical_form == ENTRY_POSTED_CANONICAL_FORM

    def test_fingerprint_is_the_little_endian_rabin_of_the_canonical_form(
        self, codec: AvroCodec
    ) -> None:
        """The wire fingerprint is the reference CRC-64-AVRO, least significant byte first."""
        expected = rabin_64(ENTRY_POSTED_CANONICAL_FORM.encode()).to_bytes(8, "little")

        assert codec.fingerprint(ENTRY_POSTED) == expected

    def test_every_schema_has_its_own_fingerprint(self, codec: AvroCodec) -> None:
        """No two message schemas share a fingerprint."""
        fingerprints = {codec.fingerprint(name) for name in codec.schema_names}

        assert len(fingerprints) == len(codec.schema_names)


class TestLoading:
    """The codec loads every schema file of a folder once, at construction."""

    def test_schema_names_are_the_sorted_top_level_records(self, codec: AvroCodec) -> None:
        """Records are message schemas; a shared enum file is only resolvable by reference."""
        assert codec.schema_names == (OPEN_ACCOUNT, ENTRY_POSTED, POSTING)

    def test_schema_returns_the_parsed_schema(self, codec: AvroCodec) -> None:
        """schema() gives the parsed form, named by its full name."""
        assert codec.schema(POSTING)["name"] == POSTING

    def test_unknown_schema_name_is_rejected(self, codec: AvroCodec) -> None:
        """Asking for a schema that was not loaded names it and lists what was."""
        with pytest.raises(UnknownSchemaName, match=r"'billing\.commands\.Nope'.*OpenAccount"):
            codec.schema("billing.commands.Nope")

    def test_file_must_be_named_after_its_schema(self, tmp_path: Path) -> None:
        """A file whose schema has another full name is refused, naming the file."""
        write_schemas(tmp_path, {"billing.commands.Misnamed": SCHEMAS[OPEN_ACCOUNT]})

        with pytest.raises(SchemaLoadError, match=r"Misnamed\.avsc.*'billing.commands.OpenAcc"):
            AvroCodec(tmp_path)

    def test_unresolvable_reference_names_the_file(self, tmp_path: Path) -> None:
        """A reference to a type with no file of its own fails the load."""
        write_schemas(tmp_path, {POSTING: SCHEMAS[POSTING]})

        with pytest.raises(SchemaLoadError, match=r"billing\.types\.Posting\.avsc"):
            AvroCodec(tmp_path)

    def test_missing_folder_is_refused(self, tmp_path: Path) -> None:
        """A folder that does not exist is an error, not an empty codec."""
        with pytest.raises(SchemaLoadError, match="no such folder"):
            AvroCodec(tmp_path / "absent")


class TestDecodeErrors:
    """Decoding names what is wrong with a message and raises nothing but AvroError."""

    def test_empty_message(self, codec: AvroCodec) -> None:
        """Zero bytes are not a message."""
        with pytest.raises(NotSingleObjectEncoded, match="empty") as raised:
            codec.decode(b"")

        assert raised.value.code == "not_single_object_encoded"

    def test_wrong_marker_names_the_bytes_found(self, codec: AvroCodec) -> None:
        """A message that does not start with C3 01 says which bytes it starts with."""
        with pytest.raises(NotSingleObjectEncoded, match="starts with 7b 22"):
            codec.decode(b'{"account_id": "a1", "credit_limit_minor": 0}')

    def test_message_shorter_than_the_header(self, codec: AvroCodec) -> None:
        """The marker alone, without a full fingerprint, is too short."""
        with pytest.raises(NotSingleObjectEncoded, match=r"4 bytes \(c3 01 01 02\)"):
            codec.decode(b"\xc3\x01\x01\x02")

    def test_unknown_fingerprint_is_reported_in_hex(self, codec: AvroCodec) -> None:
        """A fingerprint no schema has is given as wire bytes and as the 64-bit value."""
        unknown = bytes.fromhex("0123456789abcdef")

        with pytest.raises(
            UnknownFingerprint, match=r"0123456789abcdef.*0xefcdab8967452301"
        ) as raised:
            codec.decode(b"\xc3\x01" + unknown + b"\x00")

        assert (raised.value.code, raised.value.fingerprint) == (
            "unknown_schema_fingerprint",
            unknown,
        )

    def test_truncated_body(self, codec: AvroCodec, message: bytes) -> None:
        """A body cut short is malformed, for the schema its fingerprint names."""
        with pytest.raises(MalformedBody, match="ends before the record does") as raised:
            codec.decode(message[:-1])

        assert (raised.value.code, raised.value.schema_name) == ("malformed_body", ENTRY_POSTED)

    def test_trailing_bytes_are_counted(self, codec: AvroCodec, message: bytes) -> None:
        """Bytes after a complete record make the message malformed."""
        with pytest.raises(MalformedBody, match="3 bytes left over after the record"):
            codec.decode(message + b"\x00\x00\x00")

    def test_invalid_body_data(self, codec: AvroCodec) -> None:
        """A string that is not UTF-8 is malformed data, not a crash."""
        header = b"\xc3\x01" + codec.fingerprint(OPEN_ACCOUNT)

        with pytest.raises(MalformedBody, match=r"invalid data.*UnicodeDecodeError"):
            codec.decode(header + b"\x04\xff\xfe\x00")

    @settings(max_examples=300)
    @given(data=st.data())
    def test_any_bytes_decode_or_raise_an_avro_error(
        self, codec: AvroCodec, data: st.DataObject
    ) -> None:
        """Random bytes, random bodies behind real headers and damaged messages never crash."""
        headers = st.sampled_from([b"\xc3\x01" + codec.fingerprint(n) for n in codec.schema_names])
        messages = entries.map(lambda record: codec.encode(ENTRY_POSTED, record))
        candidate = data.draw(
            st.one_of(
                st.binary(max_size=80),
                st.tuples(headers, st.binary(max_size=80)).map(b"".join),
                st.builds(damage, messages, st.integers(min_value=0), st.integers(0, 255)),
            )
        )
        try:
            decoded = codec.decode(candidate)
        except AvroError as error:
            assert error.code in ERROR_CODES.values()
        else:
            assert decoded.schema_name in codec.schema_names


class TestDecodeAs:
    """decode_as() accepts only messages written with the schema the caller expects."""

    def test_expected_schema_decodes(self, codec: AvroCodec, message: bytes) -> None:
        """A message with the expected schema decodes as decode() would."""
        assert codec.decode_as(message, ENTRY_POSTED) == codec.decode(message)

    def test_other_schema_is_unexpected(self, codec: AvroCodec, message: bytes) -> None:
        """A message with another schema names both schemas."""
        with pytest.raises(UnexpectedSchema, match=f"expected a {OPEN_ACCOUNT}.*{ENTRY_POSTED}"):
            codec.decode_as(message, OPEN_ACCOUNT)

    def test_unknown_expected_schema_name(self, codec: AvroCodec, message: bytes) -> None:
        """Expecting a schema that was not loaded is an error of its own."""
        with pytest.raises(UnknownSchemaName):
            codec.decode_as(message, "billing.commands.Nope")


class TestEncodeErrors:
    """encode() refuses records that do not fit their schema and names the offending field."""

    def test_wrong_type_names_the_field(self, codec: AvroCodec) -> None:
        """A number where a string belongs names the field, the value and the expected type."""
        with pytest.raises(
            InvalidRecord, match=r"EntryPosted\.entry_id is 42 \(int\), expected string"
        ):
            codec.encode(ENTRY_POSTED, entry_posted(entry_id=42))

    def test_error_carries_code_and_field(self, codec: AvroCodec) -> None:
        """The error's code and field let a caller react without parsing the message."""
        with pytest.raises(InvalidRecord) as raised:
            codec.encode(ENTRY_POSTED, entry_posted(entry_id=42))

        assert (raised.value.code, raised.value.field) == (
            "invalid_record",
            "billing.events.EntryPosted.entry_id",
        )

    def test_missing_field_is_named(self, codec: AvroCodec) -> None:
        """A field without a default must be present."""
        record = entry_posted()
        del record["entry_id"]

        with pytest.raises(InvalidRecord, match=r"EntryPosted\.entry_id is missing"):
            codec.encode(ENTRY_POSTED, record)

    def test_missing_field_of_a_nested_record_is_named(self, codec: AvroCodec) -> None:
        """A posting without its amount names the amount."""
        postings = [{"ledger_account": "receivable", "side": "DEBIT"}]

        with pytest.raises(InvalidRecord, match="amount_minor is missing"):
            codec.encode(ENTRY_POSTED, entry_posted(postings=postings))

    def test_union_lists_the_allowed_branches(self, codec: AvroCodec) -> None:
        """A value that fits no branch of a union names every branch."""
        with pytest.raises(
            InvalidRecord, match=r"EntryPosted\.memo is 7 \(int\), expected null or string"
        ):
            codec.encode(ENTRY_POSTED, entry_posted(memo=7))

    def test_enum_lists_its_symbols(self, codec: AvroCodec) -> None:
        """An unknown symbol names the enum and its symbols."""
        with pytest.raises(InvalidRecord, match=r"EntryKind symbol \(CHARGE, REFUND\)"):
            codec.encode(ENTRY_POSTED, entry_posted(kind="GIFT"))

    def test_timestamp_must_be_a_datetime_or_milliseconds(self, codec: AvroCodec) -> None:
        """Text in a timestamp field names the logical type."""
        with pytest.raises(InvalidRecord, match=r"posted_at is 'yesterday'.*timestamp-millis"):
            codec.encode(ENTRY_POSTED, entry_posted(posted_at="yesterday"))

    def test_boolean_is_not_an_amount(self, codec: AvroCodec) -> None:
        """True is refused as a long, though fastavro's writer alone would write 1."""
        record = {"account_id": "a1", "credit_limit_minor": True}

        with pytest.raises(
            InvalidRecord, match=r"credit_limit_minor is True \(bool\), expected long"
        ):
            codec.encode(OPEN_ACCOUNT, record)

    def test_unknown_field_is_refused(self, codec: AvroCodec) -> None:
        """A misspelt field is refused rather than silently dropped."""
        record = {"account_id": "a1", "credit_limit_minor": 0, "credit_limt_minor": 5}

        with pytest.raises(InvalidRecord, match="credit_limt_minor"):
            codec.encode(OPEN_ACCOUNT, record)

    def test_unknown_schema_name(self, codec: AvroCodec) -> None:
        """Encoding with a schema that was not loaded is refused."""
        with pytest.raises(UnknownSchemaName, match=r"billing\.commands\.Nope") as raised:
            codec.encode("billing.commands.Nope", {})

        assert raised.value.code == "unknown_schema_name"


class TestErrorCodes:
    """Every codec error is an AvroError with a stable machine-readable code."""

    @pytest.mark.parametrize(("error", "code"), ERROR_CODES.items())
    def test_code_is_stable(self, error: type[AvroError], code: str) -> None:
        """Each error class keeps its published code."""
        assert (issubclass(error, AvroError), error.code) == (True, code)


class TestRepositorySchemas:
    """Every schema in the repository's schemas/ folder loads and round-trips."""

    @pytest.mark.usefixtures("seeded_random")
    def test_generated_records_round_trip(self, repository_codec: AvroCodec) -> None:
        """Records generated for each message schema decode and re-encode to the same bytes."""
        for name in repository_codec.schema_names:
            for record in generate_many(repository_codec.schema(name), 25):
                message = repository_codec.encode(name, record)
                decoded = repository_codec.decode_as(message, name)
                assert repository_codec.encode(name, decoded.record) == message, (name, record)
