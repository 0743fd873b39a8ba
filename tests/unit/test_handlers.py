"""Specification of command processing: outcomes, rejections, redeliveries and receipts."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import OperationalError

from commands.handlers import HANDLERS, HandlerFailed
from commands.messages import OpenAccount, Subscribe
from ledger.account import account_uuid
from ledger.application import BillingLedger, event_id
from ledger.receipts import CommandReceipt, Rejection, Source, receipt_uuid
from tests.unit.builders import COMMANDS_TOPIC, Sender, digest_of, open_account, subscribe


def stored_events(ledger: BillingLedger, aggregate_id: UUID) -> list[Any]:
    """Every stored event of one aggregate, oldest first."""
    return list(ledger.repository.event_store.get(aggregate_id))


def stored_event_ids(ledger: BillingLedger, account_id: str) -> list[str]:
    """The event ids of every stored event of the account, oldest first."""
    return [
        event_id(event.originator_id, event.originator_version)
        for event in stored_events(ledger, account_uuid(account_id))
    ]


def account_version(ledger: BillingLedger, account_id: str) -> int | None:
    """The stored version of the account, None if it was never opened."""
    account = ledger.account(account_id)
    return None if account is None else account.version


class TestAcceptedBatch:
    """OpenAccount and Subscribe in one batch are both accepted and saved together."""

    def test_both_commands_are_accepted(self, send: Sender) -> None:
        """Neither outcome is a rejection or a redelivery."""
        outcomes = send(open_account(), subscribe())
        assert [(o.rejection, o.redelivery) for o in outcomes] == [(None, False), (None, False)]

    def test_the_event_ids_are_those_of_the_saved_events(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """OpenAccount answers the Opened event; Subscribe answers Subscribed and InvoiceIssued."""
        opening, subscribing = send(open_account(), subscribe())
        opened_id, subscribed_id, invoiced_id = stored_event_ids(ledger, "acc-1")
        assert opening.event_ids == (opened_id,)
        assert subscribing.event_ids == (subscribed_id, invoiced_id)

    def test_the_event_ids_are_derived_from_aggregate_id_and_version(self, send: Sender) -> None:
        """Event ids are stable: uuid5 of the account's id and the event's version."""
        outcomes = send(open_account(), subscribe())
        assert [identity for outcome in outcomes for identity in outcome.event_ids] == [
            event_id(account_uuid("acc-1"), version) for version in (1, 2, 3)
        ]

    def test_the_saved_account_holds_the_subscription_and_invoice(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Reading the account back from the store shows what the commands did."""
        send(open_account(), subscribe(price_minor=999))
        account = ledger.account("acc-1")
        assert account is not None
        assert account.version == 3
        assert list(account.subscriptions) == ["sub-1"]
        assert account.invoices["sub-1/1"].amount_minor == 999

    def test_commands_for_different_accounts_do_not_interfere(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Each account gets only its own events."""
        send(open_account("acc-1"), open_account("acc-2"), subscribe("acc-2"))
        assert account_version(ledger, "acc-1") == 1
        assert account_version(ledger, "acc-2") == 3


class TestRejections:
    """A command that breaks a rule is answered with a rejection and changes no account."""

    def test_subscribing_an_unknown_account_is_rejected(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """unknown_account on the account_id field; no account comes into being."""
        (outcome,) = send(subscribe("acc-404"))
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "unknown_account",
            "account_id",
        )
        assert "'acc-404'" in outcome.rejection.message
        assert outcome.event_ids == ()
        assert ledger.account("acc-404") is None

    def test_opening_an_open_account_again_is_rejected(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """A second OpenAccount with another command_id is account_already_open."""
        send(open_account())
        (outcome,) = send(open_account(currency="USD"))
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "account_already_open",
            "account_id",
        )
        account = ledger.account("acc-1")
        assert account is not None
        assert (account.version, account.currency) == (1, "EUR")

    def test_opening_twice_in_one_batch_is_rejected_too(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """The second OpenAccount sees the account the first one opened in the same batch."""
        first, second = send(open_account(), open_account(currency="USD"))
        assert first.rejection is None
        assert second.rejection is not None
        assert second.rejection.code == "account_already_open"
        assert account_version(ledger, "acc-1") == 1

    def test_a_command_id_that_is_not_a_uuid_is_rejected(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """invalid_command_id on the command_id field, before the handler runs."""
        (outcome,) = send(open_account(command_id="order-42"))
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "invalid_command_id",
            "command_id",
        )
        assert "'order-42'" in outcome.rejection.message
        assert ledger.account("acc-1") is None

    @pytest.mark.parametrize(
        "spelling",
        [
            "6F1C8E4E-8D7A-4A55-9A43-0D4F7C1B2A10",
            "6f1c8e4e8d7a4a559a430d4f7c1b2a10",
            "{6f1c8e4e-8d7a-4a55-9a43-0d4f7c1b2a10}",
            "urn:uuid:6f1c8e4e-8d7a-4a55-9a43-0d4f7c1b2a10",
        ],
    )
    def test_a_uuid_in_another_spelling_is_rejected_naming_the_canonical_form(
        self, ledger: BillingLedger, send: Sender, spelling: str
    ) -> None:
        """Receipts are keyed by the text, so only the canonical spelling is accepted."""
        (outcome,) = send(open_account(command_id=spelling))
        assert outcome.rejection is not None
        assert outcome.rejection.code == "invalid_command_id"
        assert "'6f1c8e4e-8d7a-4a55-9a43-0d4f7c1b2a10'" in outcome.rejection.message
        assert ledger.account("acc-1") is None

    def test_a_domain_rule_surfaces_as_the_rejection(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """A negative price is answered negative_amount on price_minor; the account is unchanged."""
        send(open_account())
        (outcome,) = send(subscribe(price_minor=-100))
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "negative_amount",
            "price_minor",
        )
        assert account_version(ledger, "acc-1") == 1

    def test_a_rejected_opening_can_be_followed_by_a_valid_one(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """A rejection leaves no trace on the account: the next OpenAccount succeeds."""
        rejected, accepted = send(open_account(currency="XXX"), open_account())
        assert rejected.rejection is not None
        assert rejected.rejection.code == "unsupported_currency"
        assert accepted.rejection is None
        assert account_version(ledger, "acc-1") == 1


class TestRedelivery:
    """A command_id already answered is never processed again."""

    def test_a_redelivery_in_a_later_batch_repeats_the_original_event_ids(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """The answer is the original one, flagged as a redelivery; the account is unchanged."""
        opening = open_account()
        subscribing = subscribe()
        original = send(opening, subscribing)
        again = send(subscribing, opening)
        assert [o.redelivery for o in again] == [True, True]
        assert again[0].event_ids == original[1].event_ids
        assert again[1].event_ids == original[0].event_ids
        assert [o.rejection for o in again] == [None, None]
        assert account_version(ledger, "acc-1") == 3

    def test_a_redelivered_rejection_stays_rejected(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """A Subscribe rejected for an unknown account is not applied once the account exists."""
        early = subscribe()
        (original,) = send(early)
        send(open_account())
        (again,) = send(early)
        assert again.redelivery
        assert again.rejection == original.rejection
        assert again.rejection is not None and again.rejection.code == "unknown_account"
        account = ledger.account("acc-1")
        assert account is not None
        assert account.subscriptions == {}

    def test_a_reused_command_id_with_other_content_is_rejected(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Same command_id, different digest: command_id_reused, and nothing changes."""
        send(open_account())
        first = subscribe(price_minor=1500)
        send(first)
        reused = subscribe(command_id=first.command_id, price_minor=1)
        assert digest_of(reused) != digest_of(first)
        (outcome,) = send(reused)
        assert outcome.redelivery
        assert outcome.event_ids == ()
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "command_id_reused",
            "command_id",
        )
        account = ledger.account("acc-1")
        assert account is not None
        assert account.version == 3
        assert account.invoices["sub-1/1"].amount_minor == 1500

    def test_a_duplicate_inside_one_batch_is_answered_as_a_redelivery(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """The second copy repeats the first copy's answer and subscribes nothing more."""
        subscribing = subscribe()
        _, first, second = send(open_account(), subscribing, subscribing)
        assert (first.redelivery, second.redelivery) == (False, True)
        assert second.event_ids == first.event_ids
        assert second.rejection is None
        assert account_version(ledger, "acc-1") == 3

    def test_a_reused_command_id_inside_one_batch_is_rejected(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Reuse is detected before the first use is even saved."""
        opening = open_account()
        reused = open_account("acc-2", command_id=opening.command_id)
        first, second = send(opening, reused)
        assert first.rejection is None
        assert second.rejection is not None
        assert second.rejection.code == "command_id_reused"
        assert ledger.account("acc-2") is None

    def test_a_redelivered_invalid_command_id_repeats_its_rejection(self, send: Sender) -> None:
        """Even commands rejected for their id are remembered by that id."""
        opening = open_account(command_id="not-a-uuid")
        (original,) = send(opening)
        (again,) = send(opening)
        assert again.redelivery
        assert again.rejection == original.rejection


class TestPoisonedCommands:
    """A command that made the ledger fail is rejected without touching the domain again."""

    def test_a_poisoned_command_is_rejected_as_an_internal_error(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """internal_error with no field; the account it would have opened does not exist."""
        opening = open_account()
        (outcome,) = send(opening, poisoned=frozenset({opening.command_id}))
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == ("internal_error", None)
        assert outcome.event_ids == ()
        assert ledger.account("acc-1") is None

    def test_only_the_poisoned_command_is_rejected(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """The rest of the batch is processed as usual."""
        opening, subscribing = open_account(), subscribe()
        outcomes = send(opening, subscribing, poisoned=frozenset({subscribing.command_id}))
        assert outcomes[0].rejection is None
        assert outcomes[1].rejection is not None
        assert outcomes[1].rejection.code == "internal_error"
        assert account_version(ledger, "acc-1") == 1

    def test_a_poisoned_command_stays_rejected_when_redelivered(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Its receipt answers later deliveries, even when it is no longer poisoned."""
        opening = open_account()
        send(opening, poisoned=frozenset({opening.command_id}))
        (again,) = send(opening)
        assert again.redelivery
        assert again.rejection is not None
        assert again.rejection.code == "internal_error"
        assert ledger.account("acc-1") is None


class TestFailingHandlers:
    """A handler that fails for a reason other than a rule names its command; the store's errors pass."""

    def test_an_unexpected_error_names_the_command(
        self, ledger: BillingLedger, send: Sender, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """HandlerFailed carries the failing command's id, so the consumer can poison it."""
        subscribing = subscribe()

        def broken(command: Any, work: Any) -> None:
            raise ZeroDivisionError("a bug")

        monkeypatch.setitem(HANDLERS, Subscribe, broken)
        with pytest.raises(HandlerFailed) as raised:
            send(open_account(), subscribing)
        assert raised.value.command_id == subscribing.command_id
        assert ledger.account("acc-1") is None  # nothing of the batch was saved

    def test_a_store_error_is_not_blamed_on_the_command(
        self, send: Sender, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A PersistenceError propagates as it is: the batch is retried, no command is poisoned."""

        def database_down(command: Any, work: Any) -> None:
            raise OperationalError("connection lost")

        monkeypatch.setitem(HANDLERS, OpenAccount, database_down)
        with pytest.raises(OperationalError):
            send(open_account())


class TestReceipts:
    """Every delivery leaves a receipt: Recorded on first processing, Redelivered after."""

    def test_an_accepted_command_is_recorded_with_its_event_ids_and_source(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """The receipt says what the command was, where it was read and what it caused."""
        opening = open_account()
        (outcome,) = send(opening)
        receipt = ledger.receipt(opening.command_id)
        assert receipt is not None
        assert receipt.id == receipt_uuid(opening.command_id)
        assert receipt.command_type == "OpenAccount"
        assert receipt.account_id == "acc-1"
        assert receipt.content_digest == digest_of(opening)
        assert receipt.source == Source(COMMANDS_TOPIC, 0, 0)
        assert receipt.event_ids == outcome.event_ids
        assert receipt.accepted
        assert receipt.deliveries == 1

    def test_a_rejected_command_is_recorded_with_its_rejection(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """The receipt keeps the rejection that was answered."""
        subscribing = subscribe("acc-404")
        (outcome,) = send(subscribing)
        receipt = ledger.receipt(subscribing.command_id)
        assert receipt is not None
        assert not receipt.accepted
        assert receipt.rejection == outcome.rejection
        assert isinstance(receipt.rejection, Rejection)

    def test_every_delivery_adds_one_receipt_event(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """First delivery Recorded, each later one Redelivered, reuse included."""
        opening = open_account()
        send(opening, opening)
        send(opening)
        send(open_account(command_id=opening.command_id, customer_reference="someone-else"))
        events = stored_events(ledger, receipt_uuid(opening.command_id))
        assert [type(event) for event in events] == [
            CommandReceipt.Recorded,
            CommandReceipt.Redelivered,
            CommandReceipt.Redelivered,
            CommandReceipt.Redelivered,
        ]
        assert [event.source.offset for event in events] == [0, 1, 2, 3]
        assert [event.rejection is None for event in events] == [True, True, True, False]
        receipt = ledger.receipt(opening.command_id)
        assert receipt is not None
        assert receipt.deliveries == 4

    def test_every_processed_delivery_has_a_receipt(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Accepted, rejected, invalid and poisoned commands alike."""
        commands = [
            open_account(),
            subscribe(),
            subscribe("acc-404"),
            open_account("acc-2", command_id="bad-id"),
            open_account("acc-3"),
        ]
        send(*commands, poisoned=frozenset({commands[-1].command_id}))
        for command in commands:
            receipt = ledger.receipt(command.command_id)
            assert receipt is not None, command
            assert receipt.command_id == command.command_id

    def test_a_command_never_processed_has_no_receipt(self, ledger: BillingLedger) -> None:
        """receipt() answers None rather than raising."""
        assert ledger.receipt("7b0c8f0e-0000-4000-8000-000000000000") is None

    def test_receipt_events_are_stamped_with_the_commands_issued_at(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Receipts use business time too: the ledger never reads the clock."""
        opening = open_account()
        send(opening)
        (recorded,) = stored_events(ledger, receipt_uuid(opening.command_id))
        assert recorded.timestamp == opening.issued_at
