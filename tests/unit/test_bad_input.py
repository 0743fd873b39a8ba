"""Bad input on the commands topic: every message is answered or dead-lettered, never a crash.

Specifications of oversized messages, commands keyed by anything but their account id and
records the ledger cannot map, then a property test that throws random bytes, random bodies
and random schema-valid commands at the consumer's in-memory half (`handle_batch`).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastavro.utils import generate_many
from hypothesis import event, given, settings
from hypothesis import strategies as st

from commands.consumer import MAX_COMMAND_BYTES, Handled, handle_batch
from commands.envelope import EARLIEST_ISSUED_AT, LATEST_ISSUED_AT, key_problem
from infra.kafka import Message
from ledger.account import Account
from ledger.application import BillingLedger
from ledger.postings import Side
from tests.helpers import CODEC, command_message, open_account, subscribe
from tests.unit.builders import in_memory_ledger
from wire.codec import MAGIC, SCHEMAS_DIR, AvroCodec
from wire.dead_letters import MAX_DEAD_LETTER_VALUE_BYTES
from wire.topics import COMMANDS_TOPIC

OPEN_ACCOUNT = "billing.commands.OpenAccount"
SUBSCRIBE = "billing.commands.Subscribe"
KeyValue = tuple[bytes | None, bytes | None]  # key, value


def batch(*messages: KeyValue) -> list[Message]:
    """The (key, value) pairs as messages read from consecutive offsets of one partition."""
    return [
        Message(COMMANDS_TOPIC, 0, offset, key, value)
        for offset, (key, value) in enumerate(messages)
    ]


def handle(ledger: BillingLedger, *messages: KeyValue, codec: AvroCodec = CODEC) -> Handled:
    """Handle one batch as the consumer does, and save what it changed."""
    handled = handle_batch(ledger, codec, batch(*messages), "cluster-t")
    ledger.save(*handled.work.changed)
    return handled


def header(handled: Handled, name: str) -> list[bytes]:
    """The value of header `name` on each dead letter."""
    return [dict(letter.headers)[name] for letter in handled.dead_letters]


def padded_open_account(size: int) -> bytes:
    """An OpenAccount message for acc-1 of exactly `size` bytes (its customer_reference grows)."""
    reference_length = size - 100
    while True:
        value = CODEC.encode(
            OPEN_ACCOUNT, open_account("acc-1", customer_reference="x" * reference_length)
        )
        if len(value) >= size:
            assert len(value) == size, "the length prefix grew past the size asked for"
            return value
        reference_length += size - len(value)


class TestOversizedMessages:
    """A command message over MAX_COMMAND_BYTES is dead-lettered whole, without being decoded."""

    def test_a_command_over_the_limit_is_dead_lettered_as_oversized(
        self, ledger: BillingLedger
    ) -> None:
        """Even a valid OpenAccount opens nothing: it is dead-lettered with its key and bytes."""
        value = padded_open_account(MAX_COMMAND_BYTES + 1)
        handled = handle(ledger, (b"acc-1", value))
        assert handled.outcomes == []
        (letter,) = handled.dead_letters
        assert (letter.key, letter.value) == (b"acc-1", value)
        assert header(handled, "dead_letter.reason") == [b"oversized"]
        assert ledger.account("acc-1") is None

    def test_the_dead_letter_says_the_size_and_the_limit(self, ledger: BillingLedger) -> None:
        """Headers dead_letter.size_bytes and dead_letter.max_bytes, and the error names both."""
        handled = handle(ledger, (b"acc-1", padded_open_account(MAX_COMMAND_BYTES + 10)))
        assert header(handled, "dead_letter.size_bytes") == [b"65546"]
        assert header(handled, "dead_letter.max_bytes") == [b"65536"]
        assert b"65546 bytes, more than the 65536" in header(handled, "dead_letter.error")[0]

    def test_the_size_is_checked_before_decoding(self, ledger: BillingLedger) -> None:
        """Oversized garbage is `oversized`, not `not_single_object_encoded`."""
        handled = handle(ledger, (b"acc-1", b"\x00" * (MAX_COMMAND_BYTES + 1)))
        assert header(handled, "dead_letter.reason") == [b"oversized"]

    def test_a_huge_value_is_cut_with_its_size_and_digest(self, ledger: BillingLedger) -> None:
        """Past 512 KiB the dead letter keeps the first 512 KiB, the full size and SHA-256."""
        value = b"\x01" * MAX_DEAD_LETTER_VALUE_BYTES + b"tail"
        handled = handle(ledger, (b"acc-1", value))
        (letter,) = handled.dead_letters
        assert letter.value == value[:MAX_DEAD_LETTER_VALUE_BYTES]
        assert header(handled, "dead_letter.original_bytes") == [str(len(value)).encode()]
        assert header(handled, "dead_letter.original_sha256") == [
            hashlib.sha256(value).hexdigest().encode()
        ]
        assert header(handled, "dead_letter.truncated_to_bytes") == [b"524288"]

    def test_a_value_at_the_cut_is_kept_whole(self, ledger: BillingLedger) -> None:
        """Exactly 512 KiB: whole, without the truncation headers."""
        value = b"\x01" * MAX_DEAD_LETTER_VALUE_BYTES
        handled = handle(ledger, (b"acc-1", value))
        (letter,) = handled.dead_letters
        assert letter.value == value
        assert "dead_letter.original_bytes" not in dict(letter.headers)

    def test_a_command_of_exactly_the_limit_is_processed(self, ledger: BillingLedger) -> None:
        """The limit itself is allowed."""
        (outcome,) = handle(ledger, (b"acc-1", padded_open_account(MAX_COMMAND_BYTES))).outcomes
        assert outcome.rejection is None
        assert ledger.account("acc-1") is not None


class TestKeys:
    """A command whose Kafka key is missing or is not its account_id is rejected key_mismatch."""

    @pytest.mark.parametrize(
        ("key", "quoted"),
        [
            (None, "the message had no key"),
            (b"acc-2", "the key was 'acc-2'"),
            (b"", "the key was ''"),
            (b"\xff\xfe", r"the key was b'\xff\xfe'"),
        ],
    )
    def test_a_wrongly_keyed_command_is_rejected_quoting_the_key(
        self, ledger: BillingLedger, key: bytes | None, quoted: str
    ) -> None:
        """key_mismatch on account_id; the message says why the key matters and what it was."""
        _, value = command_message("OpenAccount", open_account("acc-1"))
        (outcome,) = handle(ledger, (key, value)).outcomes
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == ("key_mismatch", "account_id")
        assert "must be the account_id 'acc-1'" in outcome.rejection.message
        assert "commands stay in order" in outcome.rejection.message
        assert quoted in outcome.rejection.message
        assert ledger.account("acc-1") is None

    def test_a_wrongly_keyed_subscribe_changes_no_account(self, ledger: BillingLedger) -> None:
        """The key is checked before the domain runs."""
        opening = command_message("OpenAccount", open_account("acc-1"))
        _, subscribing = command_message("Subscribe", subscribe("acc-1"))
        outcomes = handle(ledger, opening, (b"acc-2", subscribing)).outcomes
        assert [o.rejection and o.rejection.code for o in outcomes] == [None, "key_mismatch"]
        account = ledger.account("acc-1")
        assert account is not None and account.version == 1

    def test_the_rejection_answers_a_later_correctly_keyed_delivery(
        self, ledger: BillingLedger
    ) -> None:
        """The receipt keeps the answer: the same command_id is not processed again."""
        key, value = command_message("OpenAccount", open_account("acc-1"))
        (first,) = handle(ledger, (None, value)).outcomes
        (again,) = handle(ledger, (key, value)).outcomes
        assert again.redelivery
        assert again.rejection == first.rejection
        assert ledger.account("acc-1") is None

    def test_a_long_key_is_quoted_shortened(self) -> None:
        """The rejection quotes the first characters of a long key and its length."""
        problem = key_problem(b"k" * 5000, "acc-1")
        assert problem is not None
        assert "(5000 bytes)" in problem
        assert len(problem) < 400

    def test_the_account_id_as_key_is_no_problem(self) -> None:
        """The key a sender must use."""
        assert key_problem("acc-é".encode(), "acc-é") is None


class TestIssuedAt:
    """A business time the ledger cannot bill from is rejected out_of_range on issued_at."""

    def test_a_subscription_whose_periods_end_after_year_9999_is_rejected(
        self, ledger: BillingLedger
    ) -> None:
        """Found by the property test below: it used to fail in the calendar (internal_error)."""
        far = datetime(9999, 12, 1, tzinfo=UTC)
        opening = command_message("OpenAccount", open_account("acc-1", issued_at=far))
        subscribing = command_message("Subscribe", subscribe("acc-1", issued_at=far))
        outcomes = handle(ledger, opening, subscribing).outcomes
        for outcome in outcomes:
            assert outcome.rejection is not None
            assert (outcome.rejection.code, outcome.rejection.field) == (
                "out_of_range",
                "issued_at",
            )
            assert "from 1970-01-01 and before 2200-01-01" in outcome.rejection.message
        assert ledger.account("acc-1") is None

    @pytest.mark.parametrize(
        ("issued_at", "accepted"),
        [
            (EARLIEST_ISSUED_AT - timedelta(milliseconds=1), False),
            (EARLIEST_ISSUED_AT, True),
            (LATEST_ISSUED_AT - timedelta(milliseconds=1), True),
            (LATEST_ISSUED_AT, False),
        ],
    )
    def test_the_bounds(self, ledger: BillingLedger, issued_at: datetime, accepted: bool) -> None:
        """From the first bound, up to but not including the last."""
        opening = command_message("OpenAccount", open_account("acc-1", issued_at=issued_at))
        (outcome,) = handle(ledger, opening).outcomes
        assert (outcome.rejection is None) == accepted


class TestText:
    """Text PostgreSQL cannot store (a NUL character) is rejected invalid_text, naming the field."""

    @pytest.mark.parametrize(
        ("command_type", "record", "field"),
        [
            ("OpenAccount", open_account("acc-1\x00"), "account_id"),
            (
                "OpenAccount",
                open_account("acc-1", customer_reference="crm\x00"),
                "customer_reference",
            ),
            (
                "OpenAccount",
                open_account("acc-1", contacts=[{"channel": "email", "address": "\x00"}]),
                "contacts",
            ),
            ("Subscribe", subscribe("acc-1", plan_id="gold\x00"), "plan_id"),
        ],
    )
    def test_a_nul_character_is_rejected(
        self, ledger: BillingLedger, command_type: str, record: dict[str, Any], field: str
    ) -> None:
        """The rejection names the field the sender wrote; nothing is opened or subscribed."""
        opening = command_message("OpenAccount", open_account("acc-1"))
        key = record["account_id"].encode()
        value = CODEC.encode(f"billing.commands.{command_type}", record)
        outcome = handle(ledger, opening, (key, value)).outcomes[-1]
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == ("invalid_text", field)
        assert "must not contain NUL" in outcome.rejection.message
        account = ledger.account("acc-1")
        assert account is not None and account.version == 1


def codec_with(tmp_path: Path, change: Callable[[dict[str, dict[str, Any]]], None]) -> AvroCodec:
    """A codec on a copy of the schemas, changed by `change` (schema JSON by file stem)."""
    folder = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, folder)
    schemas = {path.stem: json.loads(path.read_text()) for path in folder.glob("*.avsc")}
    change(schemas)
    for stem, schema in schemas.items():
        (folder / f"{stem}.avsc").write_text(json.dumps(schema))
    return AvroCodec(folder)


def with_weekly_interval(schemas: dict[str, dict[str, Any]]) -> None:
    """A newer IntervalUnit with a WEEK symbol the code does not know."""
    schemas["billing.types.IntervalUnit"]["symbols"].append("WEEK")


def without_trial_days(schemas: dict[str, dict[str, Any]]) -> None:
    """A Subscribe without the trial_days field the code reads."""
    fields = schemas[SUBSCRIBE]["fields"]
    fields[:] = [field for field in fields if field["name"] != "trial_days"]


class TestRecordsTheLedgerCannotMap:
    """A record that fits its schema but not the command code is dead-lettered invalid_command."""

    def test_an_enum_symbol_the_code_does_not_know(
        self, ledger: BillingLedger, tmp_path: Path
    ) -> None:
        """A WEEK interval from a newer schema; the command after it in the batch is accepted."""
        codec = codec_with(tmp_path, with_weekly_interval)
        weekly = codec.encode(SUBSCRIBE, subscribe("acc-1", interval_unit="WEEK"))
        opening = codec.encode(OPEN_ACCOUNT, open_account("acc-1"))
        handled = handle(ledger, (b"acc-1", weekly), (b"acc-1", opening), codec=codec)
        assert header(handled, "dead_letter.reason") == [b"invalid_command"]
        assert b"'WEEK' is not a valid IntervalUnit" in header(handled, "dead_letter.error")[0]
        assert [(o.delivery.source.offset, o.rejection) for o in handled.outcomes] == [(1, None)]

    def test_a_field_the_code_reads_and_the_record_lacks(
        self, ledger: BillingLedger, tmp_path: Path
    ) -> None:
        """A Subscribe schema without trial_days: the mapping's KeyError becomes a dead letter."""
        codec = codec_with(tmp_path, without_trial_days)
        record = subscribe("acc-1")
        del record["trial_days"]
        handled = handle(ledger, (b"acc-1", codec.encode(SUBSCRIBE, record)), codec=codec)
        assert handled.outcomes == []
        assert header(handled, "dead_letter.reason") == [b"invalid_command"]
        assert b"KeyError: 'trial_days'" in header(handled, "dead_letter.error")[0]


# The property test below draws messages of every kind the topic might carry.
LONGS = st.integers(-(2**63), 2**63 - 1)
INTS = st.integers(-(2**31), 2**31 - 1)
ACCOUNT_IDS = ("acc-1", "acc-2", "acc-3")
# A few command ids shared between commands, so that some are reused for other content.
SHARED_COMMAND_IDS = tuple(f"a1b2c3d4-0000-4000-8000-00000000000{n}" for n in range(3))
# Any text, or text that is awkward for the stores: blank, NUL, outside the BMP.
texts = st.one_of(
    st.text(max_size=12), st.sampled_from(("", " ", "\x00", "acc-1\x00", "\U0001f4b6"))
)


def plausibly(values: tuple[Any, ...], anything: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly one of the values that make commands pass, sometimes anything the schema allows."""
    return st.one_of(st.sampled_from(values), st.sampled_from(values), anything)


def symbols(field: str) -> tuple[str, ...]:
    """The symbols of the Subscribe enum field `field`."""
    (definition,) = [f for f in CODEC.schema(SUBSCRIBE)["fields"] if f["name"] == field]
    kinds = definition["type"] if isinstance(definition["type"], list) else [definition["type"]]
    (enum,) = [kind for kind in kinds if isinstance(kind, dict) and kind["type"] == "enum"]
    return tuple(enum["symbols"])


def whole_millis(moment: datetime) -> datetime:
    """The moment as timestamp-millis keeps it."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


issued_ats = st.one_of(
    st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC)),
    st.datetimes(timezones=st.just(UTC)).map(whole_millis),  # years 1 to 9999
    st.datetimes(datetime(9000, 1, 1), timezones=st.just(UTC)).map(whole_millis),  # the far end
    LONGS,  # milliseconds, many of them past what a datetime holds
)
head = {
    "command_id": st.one_of(st.uuids().map(str), st.sampled_from(SHARED_COMMAND_IDS), texts),
    "account_id": plausibly(ACCOUNT_IDS, texts),
    "issued_at": issued_ats,
}
contacts = st.lists(st.fixed_dictionaries({"channel": texts, "address": texts}), max_size=2)
drawn_records = {
    OPEN_ACCOUNT: st.fixed_dictionaries(
        head
        | {
            "currency": plausibly(("EUR", "JPY"), texts),
            "customer_reference": plausibly(("customer-1",), texts),
            "contacts": contacts,
        }
    ),
    SUBSCRIBE: st.fixed_dictionaries(
        head
        | {
            "subscription_id": plausibly(("sub-1", "sub-2"), texts),
            "plan_id": plausibly(("gold",), texts),
            # None takes the catalogue plan's term, or is refused for a custom plan.
            "price_minor": plausibly((0, 999, None), LONGS),
            "currency": plausibly(("EUR", None), texts),
            "interval_unit": st.sampled_from((*symbols("interval_unit"), None)),
            "interval_count": plausibly((1, 12, 1000, None), INTS),
            "trial_days": plausibly((0, 14, None), INTS),
            "days_until_due": plausibly((0, 14), INTS),
            "cancellation_policy": st.sampled_from(symbols("cancellation_policy")),
        }
    ),
}


def generated(schema_name: str, seed: int) -> dict[str, Any]:
    """The record fastavro's own generator makes for the schema from `seed`."""
    state = random.getstate()
    random.seed(seed)
    try:
        return dict(next(generate_many(CODEC.schema(schema_name), 1)))
    finally:
        random.setstate(state)


@st.composite
def commands(draw: st.DrawFn) -> KeyValue:
    """A schema-valid command, mostly keyed by its account id, sometimes by something else."""
    schema_name = draw(st.sampled_from((OPEN_ACCOUNT, SUBSCRIBE)))
    seeds = st.integers(0, 2**32)
    record = draw(
        st.one_of(drawn_records[schema_name], seeds.map(lambda s: generated(schema_name, s)))
    )
    other_keys = st.one_of(
        st.none(), st.binary(max_size=6), st.sampled_from(ACCOUNT_IDS).map(str.encode)
    )
    key = draw(plausibly((record["account_id"].encode(),), other_keys))
    return key, CODEC.encode(schema_name, record)


def damaged(message: KeyValue, position: int, byte: int, cut: bool) -> KeyValue:
    """The message with one byte changed, or cut short there."""
    key, value = message
    assert value is not None
    position %= len(value)
    if cut:
        return key, value[:position]
    return key, value[:position] + bytes([byte]) + value[position + 1 :]


def near_the_limit(offset: int) -> KeyValue:
    """A valid OpenAccount of MAX_COMMAND_BYTES + offset bytes."""
    return b"acc-1", padded_open_account(MAX_COMMAND_BYTES + offset)


@st.composite
def account_lives(draw: st.DrawFn) -> list[KeyValue]:
    """OpenAccount then Subscribe at one business time, well keyed, to reach the domain's rules."""
    account_id = draw(st.sampled_from(ACCOUNT_IDS))
    fixed = {"account_id": account_id, "issued_at": draw(issued_ats), "currency": "EUR"}
    opening = draw(drawn_records[OPEN_ACCOUNT]) | fixed | {"command_id": str(draw(st.uuids()))}
    subscribing = draw(drawn_records[SUBSCRIBE]) | fixed | {"command_id": str(draw(st.uuids()))}
    return [command_message("OpenAccount", opening), command_message("Subscribe", subscribing)]


def other_message(schema_name: str, seed: int) -> KeyValue:
    """A valid message of a schema that is not a command's (an event, a result)."""
    return b"acc-1", CODEC.encode(schema_name, generated(schema_name, seed))


keys = st.one_of(st.none(), st.binary(max_size=8))
headers = st.sampled_from([MAGIC + CODEC.fingerprint(name) for name in CODEC.schema_names])
not_commands = [name for name in CODEC.schema_names if not name.startswith("billing.commands.")]
any_message: st.SearchStrategy[KeyValue] = st.one_of(
    st.tuples(keys, st.one_of(st.none(), st.binary(max_size=64))),
    st.tuples(keys, st.tuples(headers, st.binary(max_size=64)).map(b"".join)),
    commands(),
    commands(),
    st.builds(damaged, commands(), st.integers(0), st.integers(0, 255), st.booleans()),
    st.builds(near_the_limit, st.integers(-3, 3)),
    st.builds(other_message, st.sampled_from(not_commands), st.integers(0, 2**32)),
)
# Some messages come twice, as a sender's retry would send them.
batches = (
    st.lists(st.one_of(any_message.map(lambda m: [m]), account_lives()), min_size=1, max_size=6)
    .map(lambda groups: [message for group in groups for message in group])
    .flatmap(
        lambda drawn: st.lists(st.sampled_from(drawn), max_size=2).map(lambda again: drawn + again)
    )
)


def answers_to(handled: Handled, message: Message) -> list[tuple[str, str]]:
    """Every answer the batch gave the message, outcomes and dead letters alike, with its code."""
    outcomes = [
        ("accepted", "") if o.rejection is None else ("rejected", o.rejection.code)
        for o in handled.outcomes
        if o.delivery.source.offset == message.offset
    ]
    letters = [
        ("dead letter", dict(d.headers)["dead_letter.reason"].decode())
        for d in handled.dead_letters
        if dict(d.headers)["dead_letter.source_offset"] == str(message.offset).encode()
    ]
    return outcomes + letters


def check_kept_whole(handled: Handled, messages: list[Message]) -> None:
    """Every dead letter carries its message's key and bytes."""
    by_offset = {message.offset: message for message in messages}
    for letter in handled.dead_letters:
        source = by_offset[int(dict(letter.headers)["dead_letter.source_offset"])]
        assert (letter.key, letter.value) == (source.key, source.value)


def check_balanced(handled: Handled) -> None:
    """Every event the batch triggered that carries postings has debits equal to credits."""
    for aggregate in handled.work.changed:
        for triggered in aggregate.pending_events:
            postings = getattr(triggered, "postings", ())
            assert all(p.amount_minor > 0 for p in postings), triggered
            debits = sum(p.amount_minor for p in postings if p.side is Side.DEBIT)
            credits = sum(p.amount_minor for p in postings if p.side is Side.CREDIT)
            assert debits == credits, triggered


def texts_in(value: Any) -> list[str]:
    """Every string inside an event's attributes, however nested."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, tuple | list):
        return [text for item in value for text in texts_in(item)]
    if isinstance(value, dict):
        return [text for item in value.values() for text in texts_in(item)]
    return texts_in(vars(value)) if hasattr(value, "__dict__") else []


def check_projectable(handled: Handled) -> None:
    """No account event holds text PostgreSQL cannot store (NUL), so read models can take it."""
    for aggregate in handled.work.changed:
        if isinstance(aggregate, Account):
            for triggered in aggregate.pending_events:
                assert not [t for t in texts_in(triggered) if "\x00" in t], triggered


class TestAnyMessage:
    """Whatever arrives, each message gets exactly one answer or dead letter, and nothing raises."""

    @settings(max_examples=1000, deadline=None)
    @given(drawn=batches, split=st.integers(0, 10))
    def test_every_message_is_answered_once_and_nothing_raises(
        self, drawn: list[KeyValue], split: int
    ) -> None:
        """In two batches (a random split): one answer each, no internal error, postings balance,
        and no accepted command carries text the read models in PostgreSQL cannot store."""
        ledger = in_memory_ledger()
        messages = batch(*drawn)
        for part in (messages[:split], messages[split:]):
            handled = handle_batch(ledger, CODEC, part, "cluster-t")
            check_kept_whole(handled, part)
            check_balanced(handled)
            check_projectable(handled)
            ledger.save(*handled.work.changed)
            for message in part:
                ((kind, code),) = answers_to(handled, message)
                event(f"{kind} {code}".strip())
                assert kind == "accepted" or code, "a rejection or dead letter without a code"
                assert code != "internal_error", "a handler failed: see the captured log"
                oversized = len(message.value or b"") > MAX_COMMAND_BYTES
                assert (code == "oversized") == oversized
