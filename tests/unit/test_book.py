"""Specifications of the book `ledger demo` plays: deterministic, realistic, and accepted."""

from __future__ import annotations

import json
import statistics
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest

from commands.consumer import handle_batch
from commands.handlers import Outcome
from commands.table import FROM_RECORD
from demo.book import Book, BookMonth
from demo.records import BookCommand
from infra.kafka import Message
from ledger.application import BillingLedger
from runtime.send import encode_command
from tests.unit.builders import COMMANDS_TOPIC, in_memory_ledger
from wire.codec import AvroCodec

# Large enough for every kind of command and event to happen, small enough to play in seconds.
MID_SIZE = {"customers": 200, "months": 12}
BATCH_SIZE = 500
# The book's deliberate mistakes: a payment sent twice under the same payment id.
EXPECTED_REJECTIONS = {"duplicate_payment"}


@dataclass
class Played:
    """A book played through the ledger's command intake, as the consumer does, in memory."""

    months: list[BookMonth] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    dead_letters: int = 0

    @property
    def commands(self) -> list[BookCommand]:
        """Every command of the book, in the order sent."""
        return [c for month in self.months for c in month.all]

    def events_named(self, name: str) -> list[Any]:
        """The events of one class, e.g. InvoiceIssued."""
        return [e for e in self.events if type(e).__name__ == name]


def play(book: Book, ledger: BillingLedger | None = None) -> Played:
    """Encode each command as `ledger send` does and hand the batches to `handle_batch`:
    each month's catalogue commands first, then its account commands (saved in `ledger`, a
    new one in memory if None)."""
    codec, ledger, played = AvroCodec(), ledger or in_memory_ledger(), Played()
    offset = 0
    for month in book.months():
        played.months.append(month)
        batches = [list(month.catalogue)] + [
            list(month.commands[i : i + BATCH_SIZE])
            for i in range(0, len(month.commands), BATCH_SIZE)
        ]
        for batch in batches:
            messages = []
            for command in batch:
                out = encode_command(codec, command.type, command.record)
                messages.append(Message(COMMANDS_TOPIC, 0, offset, out.key, out.value))
                offset += 1
            _handle(ledger, codec, messages, played)
    return played


def _handle(
    ledger: BillingLedger, codec: AvroCodec, messages: list[Message], played: Played
) -> None:
    if not messages:
        return
    handled = handle_batch(ledger, codec, messages, "demo-shadow")
    played.outcomes += handled.outcomes
    played.dead_letters += len(handled.dead_letters)
    changed = handled.work.changed
    played.events += [e for aggregate in changed for e in aggregate.pending_events]
    ledger.save(*changed)


@pytest.fixture(scope="module", name="played")
def fixture_played() -> Played:
    """The mid-size book, played once for the specifications below."""
    return play(Book(**MID_SIZE))


class TestDeterminism:
    """The same seed gives the same book, command ids and business times included."""

    def test_the_same_seed_gives_the_same_commands(self) -> None:
        """Two books of one seed are equal, line for line."""
        first = [c.json_line() for c in Book(customers=40, months=4, seed=7).commands()]
        second = [c.json_line() for c in Book(customers=40, months=4, seed=7).commands()]
        assert first == second

    def test_another_seed_gives_another_book(self) -> None:
        """The seed decides the book."""
        first = [c.json_line() for c in Book(customers=40, months=4, seed=7).commands()]
        other = [c.json_line() for c in Book(customers=40, months=4, seed=8).commands()]
        assert first != other

    def test_command_ids_are_distinct_version_4_uuids(self, played: Played) -> None:
        """Every command id is a canonical UUID (version 4, from the seeded generator), once."""
        ids = [c.record["command_id"] for c in played.commands]
        assert len(set(ids)) == len(ids)
        assert all(str(uuid.UUID(i)) == i and uuid.UUID(i).version == 4 for i in ids)


class TestTheBook:
    """The book sends what an upstream system of a subscription business would."""

    def test_every_command_type_is_sent(self, played: Played) -> None:
        """Each of the ledger's command types is in the book."""
        assert {c.type for c in played.commands} == set(FROM_RECORD)

    def test_business_time_advances_for_each_account(self, played: Played) -> None:
        """An account's commands are in business-time order, and within the book's months."""
        last: dict[str, Any] = {}
        start, end = played.months[0].start, played.months[-1].start.replace(year=2026)
        for command in played.commands:
            assert start <= command.issued_at < end
            if command.type in ("DefinePlan", "RevisePlan", "RetirePlan"):
                continue
            assert command.issued_at >= last.get(command.key, start)
            last[command.key] = command.issued_at

    def test_each_month_keeps_to_its_month(self, played: Played) -> None:
        """A month's commands are issued in that month, its catalogue ones at its first moment."""
        for month, following in zip(played.months, played.months[1:], strict=False):
            assert all(c.issued_at == month.start for c in month.catalogue)
            assert all(month.start <= c.issued_at < following.start for c in month.commands)

    def test_the_clock_ticks_sparsely(self, played: Played) -> None:
        """AdvanceClock comes at the times that matter, far fewer than one a day per account."""
        ticks = Counter(c.type for c in played.commands)["AdvanceClock"]
        assert 0 < ticks < MID_SIZE["customers"] * MID_SIZE["months"] * 5

    def test_commands_are_lines_for_ledger_send(self, played: Played) -> None:
        """Each command renders as a `ledger send --file` line naming its type."""
        line = json.loads(played.commands[0].json_line())
        assert line["type"] == "DefinePlan" and line["plan_id"] == played.commands[0].key


class TestThroughTheLedger:
    """Played through the ledger's intake, the book is accepted and exercises the whole ledger."""

    def test_nearly_every_command_is_accepted(self, played: Played) -> None:
        """At least 99.5% are accepted; the rejections are the book's deliberate ones."""
        rejected = Counter(o.rejection.code for o in played.outcomes if o.rejection is not None)
        assert len(played.outcomes) == len(played.commands)
        assert sum(rejected.values()) <= 0.005 * len(played.outcomes)
        assert set(rejected) <= EXPECTED_REJECTIONS

    def test_the_ledger_refuses_exactly_what_the_book_expects(self, played: Played) -> None:
        """The rejections the book foresaw from its shadow ledger are the ones that happen."""
        foreseen: Counter[str] = Counter()
        for month in played.months:
            foreseen.update(month.rejections)
        rejected = Counter(o.rejection.code for o in played.outcomes if o.rejection is not None)
        assert rejected == foreseen
        assert played.dead_letters == 0

    @pytest.mark.parametrize(
        "event_name",
        [
            "EarlyPaymentDiscountGranted",
            "ChargeFailed",
            "ChargeRetryDue",
            "PaymentReminderDue",
            "InvoiceOverdue",
            "HardshipPauseStarted",
            "DebtRenegotiated",
            "RenegotiationDefaulted",
            "InvoiceWrittenOff",
            "CreditNoteIssued",
            "CreditRefunded",
            "PlanChanged",
            "SubscriptionPaused",
            "SubscriptionResumed",
            "CancellationScheduled",
            "SubscriptionCancelled",
            "SubscriptionReactivated",
            "DunningFinalAction",
            "FeedbackRecorded",
            "PriceChangeAnnounced",
            "PriceChangeApplied",
            "PaymentMethodRemoved",
        ],
    )
    def test_the_book_exercises(self, played: Played, event_name: str) -> None:
        """The event happens in the book."""
        assert played.events_named(event_name)

    def test_renegotiations_complete_and_default(self, played: Played) -> None:
        """Some plans of installments are paid in full, others default."""
        paid = {e.invoice_id for e in played.events_named("InvoicePaid")}
        plans = played.events_named("DebtRenegotiated")
        completed = [p for p in plans if all(line.invoice_id in paid for line in p.schedule)]
        assert completed
        assert played.events_named("RenegotiationDefaulted")

    def test_plans_change_up_and_down(self, played: Played) -> None:
        """Customers upgrade and downgrade."""
        changes = played.events_named("PlanChanged")
        assert any(e.terms.price_minor > e.previous_price_minor for e in changes)
        assert any(e.terms.price_minor < e.previous_price_minor for e in changes)

    def test_customers_leave_of_their_own_accord_and_for_non_payment(self, played: Played) -> None:
        """Voluntary cancellations, and dunning that suspends or cancels."""
        actions = {str(e.action) for e in played.events_named("DunningFinalAction")}
        assert actions == {"SUSPEND", "CANCEL"}
        written_off = {e.originator_id for e in played.events_named("InvoiceWrittenOff")}
        cancelled = {e.originator_id for e in played.events_named("SubscriptionCancelled")}
        assert cancelled - written_off and cancelled & written_off

    def test_payment_methods_fail_their_own_ways(self, played: Played) -> None:
        """Cards fail for card reasons, transfers for not arriving; every kind fails sometimes."""
        reasons: defaultdict[str, set[str]] = defaultdict(set)
        for event in played.events_named("ChargeFailed"):
            reasons[event.payment_method_kind].add(str(event.reason))
        assert set(reasons) == {"credit_card", "debit_card", "bank_transfer"}
        assert reasons["bank_transfer"] == {"bank_transfer_not_received"}
        assert "card_expired" in reasons["credit_card"] | reasons["debit_card"]

    def test_leavers_score_lower(self, played: Played) -> None:
        """Customers who cancelled gave lower feedback scores than those who stayed."""
        cancelled = {e.originator_id for e in played.events_named("SubscriptionCancelled")}
        scores: defaultdict[bool, list[int]] = defaultdict(list)
        for event in played.events_named("FeedbackRecorded"):
            scores[event.originator_id in cancelled].append(event.score)
        assert statistics.mean(scores[True]) < statistics.mean(scores[False]) - 1
