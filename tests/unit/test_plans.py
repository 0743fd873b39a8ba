"""Specification of the plan catalogue: define, revise and retire plans; subscribe to them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from commands.handlers import Delivery, Outcome, process
from commands.messages import ChangePlan, RetirePlan, RevisePlan
from commands.table import command_from_record
from commands.unit_of_work import UnitOfWork
from ledger.account import Account
from ledger.application import BillingLedger
from ledger.calendar import IntervalUnit
from ledger.plans import Plan, plan_uuid
from ledger.receipts import CommandReceipt
from tests.helpers import CODEC
from tests.unit.builders import (
    Sender,
    account_events,
    advance_clock,
    define_plan,
    digest_of,
    open_account,
    subscribe,
    subscribe_to_plan,
)
from wire.codec import AvroCodec
from wire.event_records import event_record, outgoing

START = datetime(2024, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def revise(price_minor: int, *, when: datetime = START, **changes: Any) -> RevisePlan:
    """A RevisePlan of gold-monthly to `price_minor`."""
    return RevisePlan(
        str(uuid.uuid4()),
        "gold-monthly",
        when,
        price_minor=price_minor,
        trial_days=changes.get("trial_days"),
        name=changes.get("name"),
    )


def retire(plan_id: str = "gold-monthly", when: datetime = START) -> RetirePlan:
    """A RetirePlan."""
    return RetirePlan(str(uuid.uuid4()), plan_id, when)


def change_plan(plan_id: str, price_minor: int | None = None, when: datetime = START) -> ChangePlan:
    """A ChangePlan of acc-1's sub-1 to `plan_id`."""
    return ChangePlan(
        str(uuid.uuid4()),
        "acc-1",
        when,
        subscription_id="sub-1",
        plan_id=plan_id,
        price_minor=price_minor,
    )


def rejected(outcome: Outcome) -> tuple[str, str | None]:
    """The rejection's code and field."""
    assert outcome.rejection is not None, "the command was accepted"
    return outcome.rejection.code, outcome.rejection.field


def plan_events(ledger: BillingLedger, plan_id: str = "gold-monthly") -> list[Any]:
    """Every stored event of the plan, oldest first."""
    return list(ledger.repository.event_store.get(plan_uuid(plan_id)))


def subscribed(ledger: BillingLedger) -> Account.Subscribed:
    """acc-1's one Subscribed event."""
    (event,) = [e for e in account_events(ledger) if isinstance(e, Account.Subscribed)]
    return event


def invoiced(ledger: BillingLedger) -> list[int]:
    """The amounts of acc-1's invoices, oldest first."""
    return [e.amount_minor for e in account_events(ledger) if isinstance(e, Account.InvoiceIssued)]


@pytest.fixture(name="catalogue")
def fixture_catalogue(send: Sender) -> Sender:
    """gold-monthly (15.00 EUR a month) in the catalogue, and acc-1 open in EUR."""
    outcomes = send(define_plan(issued_at=START), open_account(issued_at=START))
    assert [o.rejection for o in outcomes] == [None, None]
    return send


class TestDefinePlan:
    """A plan enters the catalogue once, with terms that make sense."""

    def test_the_plan_is_defined(self, ledger: BillingLedger, catalogue: Sender) -> None:
        """PlanDefined records every term; the plan reads back at version 1."""
        (event,) = plan_events(ledger)
        assert isinstance(event, Plan.Defined)
        assert (event.price_minor, event.currency, event.interval_unit) == (
            1500,
            "EUR",
            IntervalUnit.MONTH,
        )
        plan = ledger.plan("gold-monthly")
        assert plan is not None
        assert (plan.version, plan.retired) == (1, False)

    def test_defining_it_again_is_rejected(self, catalogue: Sender) -> None:
        """plan_already_defined, on plan_id."""
        (outcome,) = catalogue(define_plan(price_minor=9900))
        assert rejected(outcome) == ("plan_already_defined", "plan_id")

    @pytest.mark.parametrize(
        ("changes", "code", "field"),
        [
            ({"plan_id": " "}, "missing_value", "plan_id"),
            ({"price_minor": -1}, "negative_amount", "price_minor"),
            ({"currency": "XXX"}, "unsupported_currency", "currency"),
            ({"interval_count": 0}, "out_of_range", "interval_count"),
            ({"trial_days": 731}, "out_of_range", "trial_days"),
            ({"name": "n" * 201}, "too_long", "name"),
        ],
    )
    def test_bad_terms_are_rejected(
        self, ledger: BillingLedger, send: Sender, changes: dict[str, Any], code: str, field: str
    ) -> None:
        """Each broken term is named; nothing is stored for the plan."""
        command = define_plan(**changes)
        (outcome,) = send(command)
        assert rejected(outcome) == (code, field)
        assert plan_events(ledger, command.plan_id) == []

    def test_every_ten_days(self, ledger: BillingLedger, send: Sender) -> None:
        """An interval of N days: a subscriber is invoiced every ten days."""
        send(
            define_plan("ten-days", interval_unit=IntervalUnit.DAY, interval_count=10),
            open_account(issued_at=START),
        )
        send(subscribe_to_plan(plan_id="ten-days", issued_at=START))
        send(advance_clock(issued_at=START + 25 * DAY))
        assert invoiced(ledger) == [1500, 1500, 1500]

    def test_a_plan_command_keyed_by_an_account_is_rejected(self, send: Sender) -> None:
        """The Kafka key of a plan command is its plan_id: key_mismatch names plan_id."""
        command = define_plan()
        delivery = send.deliveries([command])[0]
        keyed_wrong = Delivery(
            command, delivery.command_type, delivery.content_digest, delivery.source, b"acc-1"
        )
        (outcome,) = process(UnitOfWork(send.ledger), [keyed_wrong], frozenset())
        assert rejected(outcome) == ("key_mismatch", "plan_id")
        assert outcome.rejection is not None
        assert "plan_id 'gold-monthly'" in outcome.rejection.message


class TestSubscribeToACataloguePlan:
    """Subscribing to a defined plan takes its current terms, unless the command sets them."""

    def test_the_plan_terms_are_taken(self, ledger: BillingLedger, catalogue: Sender) -> None:
        """Price, currency and interval come from the plan; its version is recorded."""
        (outcome,) = catalogue(subscribe_to_plan(issued_at=START))
        assert outcome.rejection is None
        terms = subscribed(ledger).terms
        assert (terms.price_minor, terms.currency, terms.interval_unit) == (
            1500,
            "EUR",
            IntervalUnit.MONTH,
        )
        assert terms.plan_version == 1
        assert invoiced(ledger) == [1500]

    def test_a_negotiated_price_and_trial_override_the_plan(
        self, ledger: BillingLedger, catalogue: Sender
    ) -> None:
        """price_minor and trial_days set on the command win over the plan's."""
        catalogue(subscribe_to_plan(issued_at=START, price_minor=1200, trial_days=7))
        terms = subscribed(ledger).terms
        assert (terms.price_minor, terms.trial_days, terms.plan_version) == (1200, 7, 1)
        assert invoiced(ledger) == []  # in the trial

    @pytest.mark.parametrize(
        ("asked", "field"),
        [
            ({"currency": "USD"}, "currency"),
            ({"interval_unit": IntervalUnit.YEAR}, "interval_unit"),
            ({"interval_count": 3}, "interval_count"),
        ],
    )
    def test_billing_unlike_the_plan_is_rejected(
        self, ledger: BillingLedger, catalogue: Sender, asked: dict[str, Any], field: str
    ) -> None:
        """terms_differ_from_plan names the field; nothing is subscribed."""
        (outcome,) = catalogue(subscribe_to_plan(issued_at=START, **asked))
        assert rejected(outcome) == ("terms_differ_from_plan", field)
        assert not any(isinstance(e, Account.Subscribed) for e in account_events(ledger))

    def test_the_same_billing_spelled_out_is_accepted(
        self, ledger: BillingLedger, catalogue: Sender
    ) -> None:
        """Setting the plan's own currency and interval is no difference."""
        (outcome,) = catalogue(
            subscribe_to_plan(
                issued_at=START, currency="EUR", interval_unit=IntervalUnit.MONTH, interval_count=1
            )
        )
        assert outcome.rejection is None

    def test_a_plan_in_another_currency_is_rejected(self, send: Sender) -> None:
        """A USD plan for a EUR account: currency_mismatch."""
        send(define_plan("usd-plan", currency="USD"), open_account(issued_at=START))
        (outcome,) = send(subscribe_to_plan(plan_id="usd-plan", issued_at=START))
        assert rejected(outcome) == ("currency_mismatch", "currency")

    def test_a_plan_not_yet_defined_is_unknown(self, catalogue: Sender) -> None:
        """No terms and no such plan: unknown_plan on plan_id, which a sender can retry."""
        (outcome,) = catalogue(subscribe_to_plan(plan_id="bespoke", issued_at=START))
        assert rejected(outcome) == ("unknown_plan", "plan_id")
        assert outcome.rejection is not None
        assert "DefinePlan" in outcome.rejection.message

    def test_a_custom_plan_needs_all_its_terms(self, catalogue: Sender) -> None:
        """A custom plan with a price but no currency: missing_value on currency."""
        (outcome,) = catalogue(
            subscribe_to_plan(
                plan_id="bespoke", issued_at=START, price_minor=500, interval_unit=IntervalUnit.DAY
            )
        )
        assert rejected(outcome) == ("missing_value", "currency")

    def test_a_custom_plan_with_its_terms_is_accepted(
        self, ledger: BillingLedger, catalogue: Sender
    ) -> None:
        """Terms given in full need no catalogue; no plan version is recorded."""
        (outcome,) = catalogue(subscribe(issued_at=START, plan_id="bespoke", price_minor=777))
        assert outcome.rejection is None
        assert (subscribed(ledger).terms.price_minor, subscribed(ledger).terms.plan_version) == (
            777,
            None,
        )

    def test_a_plan_defined_earlier_in_the_same_batch_is_seen(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """DefinePlan and Subscribe in one batch: the Subscribe finds the new plan."""
        outcomes = send(
            open_account(issued_at=START),
            define_plan("silver", price_minor=900),
            subscribe_to_plan(plan_id="silver", issued_at=START),
        )
        assert [o.rejection for o in outcomes] == [None, None, None]
        assert subscribed(ledger).terms.price_minor == 900


class TestRevisePlan:
    """A revision changes what new subscribers pay; those subscribed keep their terms."""

    def test_new_subscribers_get_the_new_price(
        self, ledger: BillingLedger, catalogue: Sender
    ) -> None:
        """After a revision to 18.00, a new subscription is on version 2 at 18.00."""
        (outcome,) = catalogue(revise(1800))
        assert outcome.rejection is None
        catalogue(subscribe_to_plan(issued_at=START))
        terms = subscribed(ledger).terms
        assert (terms.price_minor, terms.plan_version) == (1800, 2)
        (_, revised) = plan_events(ledger)
        assert isinstance(revised, Plan.Revised)
        assert (revised.previous_price_minor, revised.price_minor) == (1500, 1800)

    def test_existing_subscribers_keep_their_price(
        self, ledger: BillingLedger, catalogue: Sender
    ) -> None:
        """Subscribed at 15.00, still invoiced 15.00 after the plan went to 18.00."""
        catalogue(subscribe_to_plan(issued_at=START))
        catalogue(revise(1800, when=START + DAY))
        catalogue(advance_clock(issued_at=START + 40 * DAY))
        assert invoiced(ledger) == [1500, 1500]

    def test_a_revision_that_changes_nothing_is_rejected(self, catalogue: Sender) -> None:
        """plan_unchanged, on price_minor."""
        (outcome,) = catalogue(revise(1500))
        assert rejected(outcome) == ("plan_unchanged", "price_minor")

    def test_the_trial_and_name_can_change_alone(
        self, ledger: BillingLedger, catalogue: Sender
    ) -> None:
        """Same price, a 14-day trial and a new name: accepted."""
        (outcome,) = catalogue(revise(1500, trial_days=14, name="Gold 2025"))
        assert outcome.rejection is None
        plan = ledger.plan("gold-monthly")
        assert plan is not None
        assert (plan.trial_days, plan.name) == (14, "Gold 2025")

    def test_an_unknown_plan_is_rejected(self, send: Sender) -> None:
        """unknown_plan, on plan_id."""
        (outcome,) = send(revise(1800))
        assert rejected(outcome) == ("unknown_plan", "plan_id")

    def test_a_negative_price_is_rejected(self, catalogue: Sender) -> None:
        """negative_amount, on price_minor."""
        (outcome,) = catalogue(revise(-5))
        assert rejected(outcome) == ("negative_amount", "price_minor")


class TestRetirePlan:
    """A retired plan takes no new subscribers; its subscribers go on."""

    def test_subscribing_to_a_retired_plan_is_rejected(self, catalogue: Sender) -> None:
        """plan_retired, on plan_id."""
        catalogue(retire())
        (outcome,) = catalogue(subscribe_to_plan(issued_at=START))
        assert rejected(outcome) == ("plan_retired", "plan_id")

    def test_existing_subscriptions_go_on(self, ledger: BillingLedger, catalogue: Sender) -> None:
        """Subscribed before retirement: still invoiced each month."""
        catalogue(subscribe_to_plan(issued_at=START))
        catalogue(retire(when=START + DAY))
        catalogue(advance_clock(issued_at=START + 40 * DAY))
        assert invoiced(ledger) == [1500, 1500]

    def test_a_retired_plan_cannot_be_revised_or_retired_again(self, catalogue: Sender) -> None:
        """plan_retired for both."""
        catalogue(retire())
        assert rejected(catalogue(revise(1800))[0]) == ("plan_retired", "plan_id")
        assert rejected(catalogue(retire())[0]) == ("plan_retired", "plan_id")


class TestChangePlanToACataloguePlan:
    """ChangePlan to a defined plan takes its price, if it bills in the same way."""

    def test_the_catalogue_price_is_taken(self, ledger: BillingLedger, catalogue: Sender) -> None:
        """Without price_minor, the new plan's price and version apply."""
        catalogue(define_plan("platinum-monthly", price_minor=3000), subscribe_to_plan())
        (outcome,) = catalogue(change_plan("platinum-monthly"))
        assert outcome.rejection is None
        (changed,) = [e for e in account_events(ledger) if isinstance(e, Account.PlanChanged)]
        assert (changed.terms.plan_id, changed.terms.price_minor) == ("platinum-monthly", 3000)
        assert changed.terms.plan_version == 1

    def test_a_plan_billing_otherwise_is_rejected(self, catalogue: Sender) -> None:
        """A yearly plan for a monthly subscription: terms_differ_from_plan on plan_id."""
        catalogue(define_plan("gold-yearly", interval_unit=IntervalUnit.YEAR), subscribe_to_plan())
        (outcome,) = catalogue(change_plan("gold-yearly"))
        assert rejected(outcome) == ("terms_differ_from_plan", "plan_id")

    def test_a_retired_plan_is_rejected(self, catalogue: Sender) -> None:
        """plan_retired."""
        catalogue(define_plan("old", price_minor=10), subscribe_to_plan())
        catalogue(retire("old"))
        assert rejected(catalogue(change_plan("old"))[0]) == ("plan_retired", "plan_id")

    def test_a_custom_plan_needs_a_price(self, catalogue: Sender) -> None:
        """Without a price, unknown_plan; with a price it is accepted."""
        catalogue(subscribe_to_plan())
        assert rejected(catalogue(change_plan("bespoke"))[0]) == ("unknown_plan", "plan_id")
        assert catalogue(change_plan("bespoke", 2500))[0].rejection is None

    def test_an_unknown_subscription_is_named_first(self, catalogue: Sender) -> None:
        """No sub-1 on the account: unknown_subscription, whatever the plan."""
        (outcome,) = catalogue(change_plan("gold-monthly"))
        assert rejected(outcome) == ("unknown_subscription", "subscription_id")


class TestPlanHistory:
    """Plans are event-sourced like accounts: replayable, published, idempotent."""

    def test_replay_rebuilds_the_plan(self, ledger: BillingLedger, catalogue: Sender) -> None:
        """A fresh read of the stored events gives the same plan state."""
        catalogue(revise(1800, trial_days=3))
        catalogue(retire())
        plan = ledger.plan("gold-monthly")
        assert plan is not None
        assert (plan.version, plan.price_minor, plan.trial_days, plan.retired) == (3, 1800, 3, True)

    def test_events_are_published_keyed_by_plan(
        self, ledger: BillingLedger, catalogue: Sender
    ) -> None:
        """PlanDefined goes out keyed by plan_id, with plan_version and no account."""
        (event,) = plan_events(ledger)
        message = outgoing(event, 1, CODEC)
        assert message.key == b"gold-monthly"
        decoded = CODEC.decode(message.value)
        assert decoded.schema_name == "billing.events.PlanDefined"
        assert decoded.record == event_record(event)
        assert decoded.record["plan_version"] == 1
        assert "account_id" not in decoded.record

    def test_the_result_names_the_plan(self, ledger: BillingLedger, send: Sender) -> None:
        """The CommandResult of a plan command has plan_id, an empty account_id, its key."""
        command = define_plan()
        send(command)
        receipt = ledger.receipt(command.command_id)
        assert receipt is not None
        (recorded,) = ledger.repository.event_store.get(receipt.id)
        assert isinstance(recorded, CommandReceipt.Recorded)
        message = outgoing(recorded, 1, CODEC)
        record = CODEC.decode(message.value).record
        assert (record["plan_id"], record["account_id"], message.key) == (
            "gold-monthly",
            "",
            b"gold-monthly",
        )

    def test_a_redelivery_changes_nothing(self, ledger: BillingLedger, send: Sender) -> None:
        """The same DefinePlan twice: one PlanDefined, the second answer is a redelivery."""
        command = define_plan()
        send(command)
        (again,) = send(command)
        assert again.redelivery and again.rejection is None
        assert len(plan_events(ledger)) == 1

    def test_the_wire_records_map_to_the_commands(self) -> None:
        """DefinePlan, RevisePlan and RetirePlan records decode into their commands."""
        codec = AvroCodec()
        base = {"command_id": "c", "plan_id": "p", "issued_at": START}
        defined = codec.decode(
            codec.encode(
                "billing.commands.DefinePlan",
                base | {"price_minor": 5, "currency": "EUR", "interval_unit": "DAY"},
            )
        )
        command = command_from_record("DefinePlan", defined.record)
        assert command == define_plan(
            "p",
            command_id="c",
            issued_at=START,
            name="",
            price_minor=5,
            interval_unit=IntervalUnit.DAY,
        )
        assert command.key == "p"
        revised = codec.decode(
            codec.encode("billing.commands.RevisePlan", base | {"price_minor": 7})
        )
        assert command_from_record("RevisePlan", revised.record) == RevisePlan(
            "c", "p", START, price_minor=7, trial_days=None, name=None
        )
        retired = codec.decode(codec.encode("billing.commands.RetirePlan", base))
        assert command_from_record("RetirePlan", retired.record) == RetirePlan("c", "p", START)
        assert digest_of(RetirePlan("c", "p", START)) != digest_of(RetirePlan("c", "q", START))
