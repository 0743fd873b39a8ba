"""Specification of payment methods on file: adding, removing, and which one is the default."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from commands.handlers import Outcome
from commands.messages import (
    AddPaymentMethod,
    Command,
    RemovePaymentMethod,
    SetDefaultPaymentMethod,
)
from commands.table import command_from_record
from ledger.account import Account
from ledger.application import BillingLedger, event_id
from ledger.payment_methods import PaymentMethod
from tests.unit.builders import Sender, account_events, open_account
from wire.codec import AvroCodec
from wire.event_records import ACCOUNT_EVENT_SCHEMAS, account_event_record, outgoing

START = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
EXPIRES_ON = date(2027, 12, 31)
PAYMENT_METHOD_EVENTS = (
    Account.PaymentMethodAdded,
    Account.PaymentMethodRemoved,
    Account.DefaultPaymentMethodSet,
)


def add(
    payment_method_id: str = "card-1",
    *,
    kind: str = "credit_card",
    label: str | None = "Visa **** 4242",
    expires_on: date | None = EXPIRES_ON,
    make_default: bool = False,
    account_id: str = "acc-1",
    command_id: str | None = None,
) -> AddPaymentMethod:
    """An AddPaymentMethod command for a card, with a fresh command_id unless one is given."""
    return AddPaymentMethod(
        command_id or str(uuid.uuid4()),
        account_id,
        START,
        payment_method_id=payment_method_id,
        kind=kind,
        label=label,
        expires_on=expires_on,
        make_default=make_default,
    )


def remove(payment_method_id: str) -> RemovePaymentMethod:
    """A RemovePaymentMethod command for acc-1."""
    return RemovePaymentMethod(
        str(uuid.uuid4()), "acc-1", START, payment_method_id=payment_method_id
    )


def set_default(payment_method_id: str) -> SetDefaultPaymentMethod:
    """A SetDefaultPaymentMethod command for acc-1."""
    return SetDefaultPaymentMethod(
        str(uuid.uuid4()), "acc-1", START, payment_method_id=payment_method_id
    )


def the_account(ledger: BillingLedger) -> Account:
    """acc-1, read back from the event store."""
    account = ledger.account("acc-1")
    assert account is not None
    return account


def new_events(ledger: BillingLedger, send: Sender, *commands: Command) -> list[Any]:
    """The events the commands added to acc-1's history."""
    before = len(account_events(ledger))
    send(*commands)
    return account_events(ledger)[before:]


def rejected(send: Sender, command: Command) -> tuple[str, str | None]:
    """The code and field of the rejection `command` got."""
    (outcome,) = send(command)
    assert outcome.rejection is not None, "the command was accepted"
    return outcome.rejection.code, outcome.rejection.field


def accepted(outcomes: list[Outcome]) -> bool:
    """True if every command was accepted."""
    return all(outcome.rejection is None for outcome in outcomes)


@pytest.fixture(name="opened")
def fixture_opened(send: Sender) -> Sender:
    """acc-1 is open, with no payment method on file."""
    send(open_account(issued_at=START - timedelta(days=1)))
    return send


class TestAddPaymentMethod:
    """A payment method goes on file as described; the first one becomes the default."""

    def test_the_first_method_becomes_the_default(
        self, ledger: BillingLedger, opened: Sender
    ) -> None:
        """PaymentMethodAdded, then DefaultPaymentMethodSet with no previous default."""
        added, default = new_events(ledger, opened, add("card-1"))
        assert isinstance(added, Account.PaymentMethodAdded)
        assert (added.payment_method_id, added.kind, added.label, added.expires_on) == (
            "card-1",
            "credit_card",
            "Visa **** 4242",
            EXPIRES_ON,
        )
        assert isinstance(default, Account.DefaultPaymentMethodSet)
        assert (default.payment_method_id, default.previous_payment_method_id) == ("card-1", None)
        account = the_account(ledger)
        assert account.payment_methods == {
            "card-1": PaymentMethod("card-1", "credit_card", "Visa **** 4242", EXPIRES_ON)
        }
        assert account.default_payment_method_id == "card-1"

    def test_a_later_method_does_not_take_the_default(
        self, ledger: BillingLedger, opened: Sender
    ) -> None:
        """Only PaymentMethodAdded; the first method stays the default."""
        opened(add("card-1"))
        events = new_events(
            ledger, opened, add("bank-1", kind="bank_transfer", label=None, expires_on=None)
        )
        assert [type(e) for e in events] == [Account.PaymentMethodAdded]
        account = the_account(ledger)
        assert account.payment_methods["bank-1"] == PaymentMethod(
            "bank-1", "bank_transfer", None, None
        )
        assert account.default_payment_method_id == "card-1"

    def test_make_default_takes_the_default(self, ledger: BillingLedger, opened: Sender) -> None:
        """DefaultPaymentMethodSet names the new default and the one it replaced."""
        opened(add("card-1"))
        added, default = new_events(ledger, opened, add("card-2", make_default=True))
        assert isinstance(added, Account.PaymentMethodAdded)
        assert isinstance(default, Account.DefaultPaymentMethodSet)
        assert (default.payment_method_id, default.previous_payment_method_id) == (
            "card-2",
            "card-1",
        )
        assert the_account(ledger).default_payment_method_id == "card-2"

    def test_make_default_on_the_first_method_sets_it_once(
        self, ledger: BillingLedger, opened: Sender
    ) -> None:
        """One DefaultPaymentMethodSet, not two."""
        events = new_events(ledger, opened, add("card-1", make_default=True))
        assert [type(e) for e in events] == [
            Account.PaymentMethodAdded,
            Account.DefaultPaymentMethodSet,
        ]

    def test_a_removed_id_can_be_added_again(self, ledger: BillingLedger, opened: Sender) -> None:
        """Ids are unique among the methods on file, not forever: a card can come back."""
        opened(add("card-1"), remove("card-1"))
        assert accepted(opened(add("card-1", label="Visa **** 1111")))
        account = the_account(ledger)
        assert account.payment_methods["card-1"].label == "Visa **** 1111"
        assert account.default_payment_method_id == "card-1"

    def test_the_longest_id_and_label_are_accepted(self, opened: Sender) -> None:
        """128 characters each."""
        assert accepted(opened(add("p" * 128, label="l" * 128)))


class TestAddPaymentMethodRules:
    """Each rule rejects with its code on the offending field, and changes nothing."""

    @pytest.mark.parametrize(
        ("command", "code", "field"),
        [
            (add(""), "missing_value", "payment_method_id"),
            (add("   "), "missing_value", "payment_method_id"),
            (add("p" * 129), "too_long", "payment_method_id"),
            (add(kind="Credit Card"), "invalid_payment", "kind"),
            (add(kind="credit-card"), "invalid_payment", "kind"),
            (add(kind=""), "invalid_payment", "kind"),
            (add(kind="c" * 41), "invalid_payment", "kind"),
            (add(label=""), "missing_value", "label"),
            (add(label="  "), "missing_value", "label"),
            (add(label="l" * 129), "too_long", "label"),
            (add(account_id="acc-404"), "unknown_account", "account_id"),
        ],
        ids=lambda value: value if isinstance(value, str) else "",
    )
    def test_a_broken_rule_is_rejected(
        self,
        ledger: BillingLedger,
        opened: Sender,
        command: AddPaymentMethod,
        code: str,
        field: str,
    ) -> None:
        """The rejection names the rule and the field; no event is recorded."""
        before = account_events(ledger)
        assert rejected(opened, command) == (code, field)
        assert account_events(ledger) == before
        assert the_account(ledger).payment_methods == {}

    def test_an_id_on_file_is_a_duplicate(self, ledger: BillingLedger, opened: Sender) -> None:
        """duplicate_payment_method on payment_method_id, whatever else differs."""
        opened(add("card-1"))
        assert rejected(opened, add("card-1", kind="debit_card")) == (
            "duplicate_payment_method",
            "payment_method_id",
        )
        assert the_account(ledger).payment_methods["card-1"].kind == "credit_card"

    def test_the_message_names_the_value(self, opened: Sender) -> None:
        """People see what was wrong."""
        (outcome,) = opened(add(kind="Credit Card"))
        assert outcome.rejection is not None
        assert "'Credit Card'" in outcome.rejection.message
        assert outcome.rejection.message.startswith("kind must be")


class TestRemovePaymentMethod:
    """A removed default passes to the most recently added method left."""

    def test_removing_another_method_keeps_the_default(
        self, ledger: BillingLedger, opened: Sender
    ) -> None:
        """Only PaymentMethodRemoved."""
        opened(add("card-1"), add("card-2"))
        events = new_events(ledger, opened, remove("card-2"))
        assert [type(e) for e in events] == [Account.PaymentMethodRemoved]
        account = the_account(ledger)
        assert set(account.payment_methods) == {"card-1"}
        assert account.default_payment_method_id == "card-1"

    def test_removing_the_default_passes_it_to_the_newest_left(
        self, ledger: BillingLedger, opened: Sender
    ) -> None:
        """card-1 (default), card-2, card-3: removing card-1 makes card-3 the default."""
        opened(add("card-1"), add("card-2"), add("card-3"))
        removed, default = new_events(ledger, opened, remove("card-1"))
        assert isinstance(removed, Account.PaymentMethodRemoved)
        assert isinstance(default, Account.DefaultPaymentMethodSet)
        assert (default.payment_method_id, default.previous_payment_method_id) == (
            "card-3",
            "card-1",
        )
        assert the_account(ledger).default_payment_method_id == "card-3"

    def test_newest_means_added_last_not_default_last(
        self, ledger: BillingLedger, opened: Sender
    ) -> None:
        """card-3 was the default before card-2, yet card-2 was added after: re-added counts."""
        opened(add("card-1"), add("card-2"), add("card-3"), remove("card-2"), add("card-2"))
        opened(set_default("card-3"), set_default("card-1"))
        opened(remove("card-1"))
        assert the_account(ledger).default_payment_method_id == "card-2"

    def test_removing_the_last_method_leaves_no_default(
        self, ledger: BillingLedger, opened: Sender
    ) -> None:
        """Only PaymentMethodRemoved; the account has no method and no default."""
        opened(add("card-1"))
        events = new_events(ledger, opened, remove("card-1"))
        assert [type(e) for e in events] == [Account.PaymentMethodRemoved]
        account = the_account(ledger)
        assert (account.payment_methods, account.default_payment_method_id) == ({}, None)

    def test_the_next_method_after_none_left_becomes_the_default(
        self, ledger: BillingLedger, opened: Sender
    ) -> None:
        """With no method on file, the next one added is the first again."""
        opened(add("card-1"), remove("card-1"), add("card-2"))
        assert the_account(ledger).default_payment_method_id == "card-2"

    @pytest.mark.parametrize("payment_method_id", ["card-9", ""])
    def test_an_unknown_method_is_rejected(
        self, ledger: BillingLedger, opened: Sender, payment_method_id: str
    ) -> None:
        """unknown_payment_method on payment_method_id; nothing changes."""
        opened(add("card-1"))
        before = account_events(ledger)
        assert rejected(opened, remove(payment_method_id)) == (
            "unknown_payment_method",
            "payment_method_id",
        )
        assert account_events(ledger) == before

    def test_a_removed_method_is_unknown(self, opened: Sender) -> None:
        """Removing twice: the second is rejected."""
        opened(add("card-1"), remove("card-1"))
        assert rejected(opened, remove("card-1")) == ("unknown_payment_method", "payment_method_id")


class TestSetDefaultPaymentMethod:
    """Any method on file can become the default."""

    def test_another_method_becomes_the_default(
        self, ledger: BillingLedger, opened: Sender
    ) -> None:
        """DefaultPaymentMethodSet names the new and the previous default."""
        opened(add("card-1"), add("card-2"))
        (event,) = new_events(ledger, opened, set_default("card-2"))
        assert isinstance(event, Account.DefaultPaymentMethodSet)
        assert (event.payment_method_id, event.previous_payment_method_id) == ("card-2", "card-1")
        assert the_account(ledger).default_payment_method_id == "card-2"

    def test_the_current_default_changes_nothing(
        self, ledger: BillingLedger, opened: Sender
    ) -> None:
        """Accepted without events: the sender's wish already holds."""
        opened(add("card-1"))
        before = account_events(ledger)
        (outcome,) = opened(set_default("card-1"))
        assert (outcome.rejection, outcome.event_ids) == (None, ())
        assert account_events(ledger) == before

    def test_an_unknown_method_is_rejected(self, opened: Sender) -> None:
        """unknown_payment_method on payment_method_id."""
        opened(add("card-1"))
        assert rejected(opened, set_default("card-2")) == (
            "unknown_payment_method",
            "payment_method_id",
        )

    def test_a_removed_method_cannot_be_the_default(self, opened: Sender) -> None:
        """unknown_payment_method on payment_method_id."""
        opened(add("card-1"), add("card-2"), remove("card-2"))
        assert rejected(opened, set_default("card-2")) == (
            "unknown_payment_method",
            "payment_method_id",
        )


class TestNoMoneyMoves:
    """Payment methods change what the account may be charged with, never what it owes."""

    def test_no_postings_and_no_change_to_balances(
        self, ledger: BillingLedger, opened: Sender
    ) -> None:
        """No event carries postings; invoices, credit and payments stay as they were."""
        events = new_events(
            ledger,
            opened,
            add("card-1"),
            add("card-2", make_default=True),
            set_default("card-1"),
            remove("card-1"),
        )
        assert {type(e) for e in events} == set(PAYMENT_METHOD_EVENTS)
        assert all(not hasattr(e, "postings") for e in events)
        account = the_account(ledger)
        assert (account.invoices, account.credit_minor, account.payment_ids) == ({}, 0, set())


class TestStorage:
    """The event store keeps payment methods, dates included, and replay rebuilds them."""

    def test_replay_rebuilds_methods_and_default(
        self, ledger: BillingLedger, opened: Sender
    ) -> None:
        """The account read back equals the one the commands changed."""
        opened(add("card-1"), add("bank-1", kind="bank_transfer", expires_on=None))
        opened(add("card-2", make_default=True), remove("card-2"))
        live = opened.live_accounts["acc-1"]
        rebuilt = the_account(ledger)
        assert rebuilt.payment_methods == live.payment_methods
        assert rebuilt.default_payment_method_id == live.default_payment_method_id == "bank-1"
        assert type(rebuilt.payment_methods["card-1"].expires_on) is date


class TestWire:
    """The commands arrive as Avro records; their events leave as Avro records."""

    def test_a_minimal_add_payment_method_record_takes_the_defaults(self) -> None:
        """No label, no expiry, not made the default."""
        command = command_from_record(
            "AddPaymentMethod",
            {
                "command_id": "c",
                "account_id": "acc-1",
                "issued_at": START,
                "payment_method_id": "bank-1",
                "kind": "bank_transfer",
                "label": None,
                "expires_on": None,
                "make_default": False,
            },
        )
        assert command == AddPaymentMethod(
            "c", "acc-1", START, "bank-1", "bank_transfer", None, None, False
        )

    def test_the_command_decodes_with_its_date(self) -> None:
        """expires_on travels as an Avro date and arrives as a date; omitted fields default."""
        codec = AvroCodec()
        record = {
            "command_id": "c",
            "account_id": "acc-1",
            "issued_at": START,
            "payment_method_id": "card-1",
            "kind": "credit_card",
            "expires_on": EXPIRES_ON,
        }
        decoded = codec.decode(codec.encode("billing.commands.AddPaymentMethod", record))
        command = command_from_record("AddPaymentMethod", decoded.record)
        assert command == AddPaymentMethod(
            "c", "acc-1", START, "card-1", "credit_card", None, EXPIRES_ON, False
        )

    def test_every_event_round_trips_through_its_schema(
        self, ledger: BillingLedger, opened: Sender
    ) -> None:
        """Each stored event is published with its billing.events schema and decodes unchanged."""
        opened(add("card-1"), add("bank-1", kind="bank_transfer", label=None, expires_on=None))
        opened(remove("card-1"))
        codec = AvroCodec()
        published = []
        for notification in ledger.recorder.select_notifications(start=1, limit=1000):
            event = ledger.mapper.to_domain_event(notification)
            if isinstance(event, PAYMENT_METHOD_EVENTS):
                message = outgoing(event, notification.id, codec)
                decoded = codec.decode(message.value)
                assert decoded.schema_name == ACCOUNT_EVENT_SCHEMAS[type(event)]
                assert decoded.record == account_event_record(event)
                assert dict(message.headers)["event_type"] == type(event).__name__.encode()
                published.append((event, decoded.record))
        assert {type(event) for event, _ in published} == set(PAYMENT_METHOD_EVENTS)
        event, record = published[0]
        assert record == {
            "event_id": event_id(event.originator_id, 2),
            "account_id": "acc-1",
            "occurred_at": START,
            "command_id": event.command_id,
            "account_version": 2,
            "payment_method_id": "card-1",
            "kind": "credit_card",
            "label": "Visa **** 4242",
            "expires_on": EXPIRES_ON,
        }
        defaults = [r for e, r in published if isinstance(e, Account.DefaultPaymentMethodSet)]
        assert [(r["payment_method_id"], r["previous_payment_method_id"]) for r in defaults] == [
            ("card-1", None),
            ("bank-1", "card-1"),
        ]
