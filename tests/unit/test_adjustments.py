"""Specification of charge requests, credit notes, refunds of credit and write-offs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from commands.messages import (
    AddPaymentMethod,
    Charge,
    Command,
    IssueCreditNote,
    RefundCredit,
    Renegotiate,
    WriteOff,
)
from commands.table import command_from_record
from ledger.account import Account
from ledger.application import BillingLedger
from ledger.postings import Posting, Side, balance_of
from tests.unit.builders import (
    Sender,
    account_events,
    advance_clock,
    fail_charge,
    new_command_id,
    open_account,
    record_payment,
    subscribe,
)
from wire.codec import AvroCodec
from wire.event_records import ACCOUNT_EVENT_SCHEMAS, account_event_record, outgoing

START = datetime(2024, 1, 1, 9, 30, tzinfo=UTC)
LATER = START + timedelta(days=3)
NEXT_CYCLE = datetime(2024, 2, 1, 9, 30, tzinfo=UTC)
THIRD_CYCLE = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
ADJUSTMENT_EVENTS = (
    Account.ChargeRequested,
    Account.CreditNoteIssued,
    Account.CreditRefunded,
    Account.InvoiceWrittenOff,
)


def head(issued_at: datetime = LATER) -> dict[str, Any]:
    return {"command_id": new_command_id(), "account_id": "acc-1", "issued_at": issued_at}


def add_method(method_id: str, kind: str = "credit_card") -> AddPaymentMethod:
    return AddPaymentMethod(
        **head(START),
        payment_method_id=method_id,
        kind=kind,
        label=None,
        expires_on=None,
        make_default=False,
    )


def charge(
    invoice_id: str = "sub-1/1", method_id: str | None = None, *, issued_at: datetime = LATER
) -> Charge:
    return Charge(**head(issued_at), invoice_id=invoice_id, payment_method_id=method_id)


def credit_note(
    amount_minor: int,
    *,
    credit_note_id: str = "cn-1",
    invoice_id: str = "sub-1/1",
    reason: str = "service outage",
    issued_at: datetime = LATER,
) -> IssueCreditNote:
    return IssueCreditNote(
        **head(issued_at),
        credit_note_id=credit_note_id,
        invoice_id=invoice_id,
        amount_minor=amount_minor,
        reason=reason,
    )


def refund(
    amount_minor: int,
    *,
    refund_id: str = "refund-1",
    kind: str = "bank_transfer",
    issued_at: datetime = LATER,
) -> RefundCredit:
    return RefundCredit(
        **head(issued_at), refund_id=refund_id, amount_minor=amount_minor, payment_method_kind=kind
    )


def write_off(
    invoice_id: str = "sub-1/1",
    reason: str = "customer unreachable",
    *,
    issued_at: datetime = LATER,
) -> WriteOff:
    return WriteOff(**head(issued_at), invoice_id=invoice_id, reason=reason)


def named(ledger: BillingLedger, name: str) -> list[Any]:
    return [e for e in account_events(ledger) if type(e).__name__ == name]


def balance(ledger: BillingLedger, ledger_account: str) -> int:
    postings = [p for e in account_events(ledger) for p in getattr(e, "postings", ())]
    return balance_of(ledger_account, postings)


def the_account(ledger: BillingLedger) -> Account:
    account = ledger.account("acc-1")
    assert account is not None
    return account


def rejected(send: Sender, command: Command) -> tuple[str, str | None]:
    (outcome,) = send(command)
    assert outcome.rejection is not None, "the command was accepted"
    return outcome.rejection.code, outcome.rejection.field


@pytest.fixture(name="billed")
def fixture_billed(send: Sender) -> Sender:
    """An account owing one invoice, sub-1/1 of 15.00 EUR, due in 14 days."""
    send(open_account(issued_at=START), subscribe(issued_at=START))
    return send


class TestCharge:
    """A charge request names what to charge and how; no money moves."""

    def test_the_default_method_is_charged(self, ledger: BillingLedger, billed: Sender) -> None:
        """Without a method named, the default on file is charged the whole outstanding."""
        billed(add_method("card-1"), add_method("bank-1", "bank_transfer"))
        billed(charge())
        (requested,) = named(ledger, "ChargeRequested")
        assert (
            requested.invoice_id,
            requested.payment_method_id,
            requested.payment_method_kind,
            requested.amount_minor,
            requested.currency,
            requested.attempt,
        ) == ("sub-1/1", "card-1", "credit_card", 1500, "EUR", 1)
        assert not hasattr(requested, "postings")

    def test_a_named_method_is_charged(self, ledger: BillingLedger, billed: Sender) -> None:
        """A method on file named by the command is charged instead of the default."""
        billed(add_method("card-1"), add_method("bank-1", "bank_transfer"))
        billed(charge(method_id="bank-1"))
        (requested,) = named(ledger, "ChargeRequested")
        assert (requested.payment_method_id, requested.payment_method_kind) == (
            "bank-1",
            "bank_transfer",
        )

    def test_amount_and_attempt_follow_payments_and_failures(
        self, ledger: BillingLedger, billed: Sender
    ) -> None:
        """After 5.00 paid and two failed charges: 10.00 is asked for, attempt 3."""
        billed(add_method("card-1"), record_payment(amount_minor=500, issued_at=LATER))
        billed(fail_charge(invoice_id="sub-1/1", issued_at=LATER))
        billed(fail_charge(invoice_id="sub-1/1", issued_at=LATER))
        billed(charge())
        (requested,) = named(ledger, "ChargeRequested")
        assert (requested.amount_minor, requested.attempt) == (1000, 3)

    def test_no_method_on_file(self, billed: Sender) -> None:
        """no_payment_method on payment_method_id when none is named and none is on file."""
        assert rejected(billed, charge()) == ("no_payment_method", "payment_method_id")

    def test_a_method_not_on_file(self, billed: Sender) -> None:
        """unknown_payment_method on payment_method_id."""
        billed(add_method("card-1"))
        assert rejected(billed, charge(method_id="card-9")) == (
            "unknown_payment_method",
            "payment_method_id",
        )

    def test_an_unknown_or_paid_invoice(self, billed: Sender) -> None:
        """unknown_invoice, or invoice_already_paid, on invoice_id."""
        billed(add_method("card-1"))
        assert rejected(billed, charge("sub-1/9")) == ("unknown_invoice", "invoice_id")
        billed(record_payment(amount_minor=1500, issued_at=LATER))
        assert rejected(billed, charge()) == ("invoice_already_paid", "invoice_id")


class TestIssueCreditNote:
    """A credit note gives revenue back as credit, which settles open invoices."""

    def test_it_settles_its_open_invoice(self, ledger: BillingLedger, billed: Sender) -> None:
        """5.00 back on an open invoice: Dr revenue, Cr customer_credit, applied to it at once."""
        billed(credit_note(500))
        (issued,) = named(ledger, "CreditNoteIssued")
        assert (issued.credit_note_id, issued.reason, issued.amount_minor) == (
            "cn-1",
            "service outage",
            500,
        )
        assert tuple(issued.postings) == (
            Posting("revenue", Side.DEBIT, 500),
            Posting("customer_credit", Side.CREDIT, 500),
        )
        assert [(e.invoice_id, e.amount_minor) for e in named(ledger, "CreditApplied")] == [
            ("sub-1/1", 500)
        ]
        account = the_account(ledger)
        assert (account.invoices["sub-1/1"].outstanding_minor, account.credit_minor) == (1000, 0)

    def test_the_rest_stays_credit_once_the_invoice_is_paid(
        self, ledger: BillingLedger, billed: Sender
    ) -> None:
        """15.00 back on an invoice with 5.00 outstanding: it is paid, 10.00 stays credit."""
        billed(record_payment(amount_minor=1000, issued_at=LATER))
        billed(credit_note(1500))
        assert [e.invoice_id for e in named(ledger, "InvoicePaid")] == ["sub-1/1"]
        assert the_account(ledger).credit_minor == 1000

    def test_credit_on_a_paid_invoice_settles_the_oldest_open_one(
        self, ledger: BillingLedger, billed: Sender
    ) -> None:
        """3.00 back on a paid invoice settles part of the next one."""
        billed(record_payment(amount_minor=1500, issued_at=LATER))
        billed(advance_clock(issued_at=NEXT_CYCLE))
        billed(credit_note(300, issued_at=NEXT_CYCLE))
        assert [(e.invoice_id, e.amount_minor) for e in named(ledger, "CreditApplied")] == [
            ("sub-1/2", 300)
        ]
        assert the_account(ledger).invoices["sub-1/2"].outstanding_minor == 1200

    def test_at_most_what_is_left_of_the_invoice(self, billed: Sender) -> None:
        """exceeds_invoice on amount_minor: 10.00 and then 6.00 of a 15.00 invoice."""
        billed(credit_note(1000))
        assert rejected(billed, credit_note(600, credit_note_id="cn-2")) == (
            "exceeds_invoice",
            "amount_minor",
        )
        (outcome,) = billed(credit_note(500, credit_note_id="cn-3"))
        assert outcome.rejection is None

    def test_a_written_off_share_is_not_credited(self, billed: Sender) -> None:
        """exceeds_invoice: what was written off was never paid, so never given back."""
        billed(record_payment(amount_minor=500, issued_at=LATER), write_off())
        assert rejected(billed, credit_note(600)) == ("exceeds_invoice", "amount_minor")

    def test_rules(self, billed: Sender) -> None:
        """Each rule's code and field."""
        billed(credit_note(100))
        cases = [
            (credit_note(100), ("duplicate_credit_note", "credit_note_id")),
            (credit_note(100, credit_note_id=" "), ("missing_value", "credit_note_id")),
            (credit_note(100, credit_note_id="x" * 129), ("too_long", "credit_note_id")),
            (
                credit_note(100, credit_note_id="cn-2", invoice_id="no"),
                ("unknown_invoice", "invoice_id"),
            ),
            (credit_note(0, credit_note_id="cn-2"), ("non_positive_amount", "amount_minor")),
            (credit_note(100, credit_note_id="cn-2", reason=""), ("missing_value", "reason")),
            (credit_note(100, credit_note_id="cn-2", reason="x" * 501), ("too_long", "reason")),
        ]
        assert [rejected(billed, command) for command, _ in cases] == [want for _, want in cases]


class TestRefundCredit:
    """Credit the account holds is paid back through a kind of payment method."""

    def test_credit_is_paid_back(self, ledger: BillingLedger, billed: Sender) -> None:
        """20.00 paid on 15.00 leaves 5.00 credit; 3.00 refunded: Dr credit, Cr cash."""
        billed(record_payment(amount_minor=2000, issued_at=LATER))
        billed(refund(300))
        (refunded,) = named(ledger, "CreditRefunded")
        assert (refunded.refund_id, refunded.amount_minor, refunded.currency) == (
            "refund-1",
            300,
            "EUR",
        )
        assert tuple(refunded.postings) == (
            Posting("customer_credit", Side.DEBIT, 300),
            Posting("cash:bank_transfer", Side.CREDIT, 300),
        )
        assert the_account(ledger).credit_minor == 200

    def test_rules(self, billed: Sender) -> None:
        """Each rule's code and field."""
        billed(record_payment(amount_minor=2000, issued_at=LATER), refund(100))
        cases = [
            (refund(100), ("duplicate_refund", "refund_id")),
            (refund(100, refund_id=""), ("missing_value", "refund_id")),
            (refund(0, refund_id="r-2"), ("non_positive_amount", "amount_minor")),
            (refund(401, refund_id="r-2"), ("exceeds_credit", "amount_minor")),
            (
                refund(100, refund_id="r-2", kind="Bank Transfer"),
                ("invalid_payment", "payment_method_kind"),
            ),
        ]
        assert [rejected(billed, command) for command, _ in cases] == [want for _, want in cases]


class TestWriteOff:
    """What an invoice still owes is given up on; the invoice is settled unpaid."""

    def test_the_outstanding_amount_is_written_off(
        self, ledger: BillingLedger, billed: Sender
    ) -> None:
        """5.00 paid of 15.00: 10.00 written off, nothing outstanding, not marked paid."""
        billed(record_payment(amount_minor=500, issued_at=LATER))
        billed(write_off())
        (written_off,) = named(ledger, "InvoiceWrittenOff")
        assert (written_off.amount_minor, written_off.reason) == (1000, "customer unreachable")
        assert tuple(written_off.postings) == (
            Posting("write_off", Side.DEBIT, 1000),
            Posting("receivable", Side.CREDIT, 1000),
        )
        invoice = the_account(ledger).invoices["sub-1/1"]
        assert (invoice.outstanding_minor, invoice.written_off_minor) == (0, 1000)
        assert named(ledger, "InvoicePaid") == []
        assert balance(ledger, "receivable") == 0

    def test_a_written_off_invoice_is_never_overdue(
        self, ledger: BillingLedger, billed: Sender
    ) -> None:
        """The clock does not mark it overdue later."""
        billed(write_off())
        billed(advance_clock(issued_at=START + timedelta(days=20)))
        assert named(ledger, "InvoiceOverdue") == []

    def test_rules(self, billed: Sender) -> None:
        """Each rule's code and field."""
        cases = [
            (write_off("sub-1/9"), ("unknown_invoice", "invoice_id")),
            (write_off(reason=" "), ("missing_value", "reason")),
        ]
        assert [rejected(billed, command) for command, _ in cases] == [want for _, want in cases]
        billed(write_off())
        assert rejected(billed, write_off()) == ("invoice_written_off", "invoice_id")


OVERDUE = START + timedelta(days=20)  # sub-1/1 was due on day 14


def renegotiate_sub_1_1() -> Renegotiate:
    """Renegotiate sub-1/1 into plan-1 of 3 installments, 30 days apart."""
    return Renegotiate(
        **head(OVERDUE),
        plan_id="plan-1",
        invoice_ids=("sub-1/1",),
        installments=3,
        first_due_at=OVERDUE + timedelta(days=10),
        interval_days=30,
        interest_minor=0,
        forgiven_minor=0,
    )


@pytest.fixture(name="written_off")
def fixture_written_off(billed: Sender) -> Sender:
    """sub-1/1 paid 5.00 of 15.00, then the other 10.00 written off."""
    billed(record_payment(amount_minor=500, issued_at=LATER), write_off())
    return billed


class TestAWrittenOffInvoice:
    """An invoice written off was given up on, not paid: commands that need it open are refused
    invoice_written_off, saying so; it owes nothing, so nothing is charged or stored."""

    @pytest.mark.parametrize(
        "command",
        [
            pytest.param(lambda: write_off(), id="WriteOff"),
            pytest.param(lambda: charge(), id="Charge"),
            pytest.param(lambda: fail_charge(invoice_id="sub-1/1", issued_at=LATER), id="Fail"),
        ],
    )
    def test_commands_naming_it_are_refused(
        self, ledger: BillingLedger, written_off: Sender, command: Callable[[], Command]
    ) -> None:
        """invoice_written_off on invoice_id; the message says what was given up; nothing is stored."""
        written_off(add_method("card-1"))
        before = len(account_events(ledger))
        (outcome,) = written_off(command())
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "invoice_written_off",
            "invoice_id",
        )
        assert "'sub-1/1' was written off" in outcome.rejection.message
        assert "1000" in outcome.rejection.message
        assert len(account_events(ledger)) == before

    def test_a_payment_naming_it_is_recorded(
        self, ledger: BillingLedger, written_off: Sender
    ) -> None:
        """The money did arrive: 10.00 naming it is kept as credit, the event saying why."""
        (outcome,) = written_off(
            record_payment(amount_minor=1000, invoice_id="sub-1/1", issued_at=LATER)
        )
        assert outcome.rejection is None
        assert the_account(ledger).credit_minor == 1000
        payment = [e for e in account_events(ledger) if isinstance(e, Account.PaymentReceived)][-1]
        assert (payment.invoice_id, payment.redirect_reason) == ("sub-1/1", "invoice_written_off")

    def test_the_same_payment_without_invoice_id_becomes_credit(
        self, ledger: BillingLedger, written_off: Sender
    ) -> None:
        """Sent again without invoice_id, the 10.00 is accepted as credit (nothing else is open)."""
        (outcome,) = written_off(record_payment(amount_minor=1000, issued_at=LATER))
        assert outcome.rejection is None
        assert the_account(ledger).credit_minor == 1000

    def test_renegotiating_it_is_refused(self, send: Sender) -> None:
        """invoice_written_off on invoice_ids: there is no debt left to consolidate."""
        send(open_account(issued_at=START), subscribe(issued_at=START))
        send(advance_clock(issued_at=OVERDUE), write_off(issued_at=OVERDUE))
        assert rejected(send, renegotiate_sub_1_1()) == ("invoice_written_off", "invoice_ids")

    def test_a_paid_invoice_is_still_refused_as_paid(self, billed: Sender) -> None:
        """Paid in full, never written off: invoice_already_paid, as before."""
        billed(record_payment(amount_minor=1500, issued_at=LATER))
        assert rejected(billed, write_off()) == ("invoice_already_paid", "invoice_id")

    def test_its_paid_share_can_still_be_credited(
        self, ledger: BillingLedger, written_off: Sender
    ) -> None:
        """A credit note gives back at most the 5.00 paid; the written-off share exceeds it."""
        assert rejected(written_off, credit_note(501)) == ("exceeds_invoice", "amount_minor")
        (outcome,) = written_off(credit_note(500))
        assert outcome.rejection is None
        assert the_account(ledger).credit_minor == 500


def story() -> list[Command]:
    """Every adjustment in one account's life, with payments and invoices between them."""
    return [
        open_account(issued_at=START),
        subscribe(issued_at=START),
        add_method("card-1"),
        charge(),
        fail_charge(invoice_id="sub-1/1", issued_at=LATER),
        credit_note(400),
        record_payment(amount_minor=2000, issued_at=LATER),
        refund(300),
        advance_clock(issued_at=NEXT_CYCLE),  # sub-1/2: 6.00 of its 15.00 settled by credit
        charge("sub-1/2", issued_at=NEXT_CYCLE),
        credit_note(500, credit_note_id="cn-2", issued_at=NEXT_CYCLE),  # sub-1/1 is paid
        write_off("sub-1/2", issued_at=NEXT_CYCLE),
        advance_clock(issued_at=THIRD_CYCLE),
        record_payment(amount_minor=1500, issued_at=THIRD_CYCLE),
        credit_note(1500, credit_note_id="cn-3", invoice_id="sub-1/3", issued_at=THIRD_CYCLE),
        refund(500, refund_id="refund-2", issued_at=THIRD_CYCLE),
    ]


class TestInvariants:
    """Adjustments keep the books consistent with the account's state."""

    def test_after_each_command_the_books_match_the_state(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Every command accepted; postings balance; receivable and credit match the state."""
        for command in story():
            (outcome,) = send(command)
            assert outcome.rejection is None, outcome.rejection
            events = account_events(ledger)
            for event in events:
                postings = getattr(event, "postings", ())
                assert sum(p.signed_minor for p in postings) == 0
            account = send.live_accounts["acc-1"]
            outstanding = sum(i.outstanding_minor for i in account.invoices.values())
            assert balance(ledger, "receivable") == outstanding
            assert -balance(ledger, "customer_credit") == account.credit_minor
        assert {type(e) for e in account_events(ledger)} >= set(ADJUSTMENT_EVENTS)

    def test_replaying_rebuilds_the_same_state(self, ledger: BillingLedger, send: Sender) -> None:
        """The account read back from its events equals the one the commands changed."""
        for command in story():
            send(command)
        live = send.live_accounts["acc-1"]
        replayed = the_account(ledger)
        assert replayed.invoices == live.invoices
        assert replayed.credit_minor == live.credit_minor
        assert (replayed.credit_note_ids, replayed.refund_ids) == (
            {"cn-1", "cn-2", "cn-3"},
            {"refund-1", "refund-2"},
        )
        assert replayed.refund_ids == live.refund_ids
        assert replayed.credit_note_ids == live.credit_note_ids


class TestWire:
    """The commands arrive through Avro and the events leave through it."""

    def test_the_commands_decode(self) -> None:
        """Each command's record maps to its dataclass; payment_method_id defaults to null."""
        codec = AvroCodec()
        base = {"command_id": "c", "account_id": "acc-1", "issued_at": START}
        cases: list[tuple[str, dict[str, Any], Command]] = [
            ("Charge", {"invoice_id": "i"}, Charge("c", "acc-1", START, "i", None)),
            (
                "IssueCreditNote",
                {"credit_note_id": "cn", "invoice_id": "i", "amount_minor": 5, "reason": "r"},
                IssueCreditNote("c", "acc-1", START, "cn", "i", 5, "r"),
            ),
            (
                "RefundCredit",
                {"refund_id": "r", "amount_minor": 5, "payment_method_kind": "credit_card"},
                RefundCredit("c", "acc-1", START, "r", 5, "credit_card"),
            ),
            (
                "WriteOff",
                {"invoice_id": "i", "reason": "r"},
                WriteOff("c", "acc-1", START, "i", "r"),
            ),
        ]
        for name, own, expected in cases:
            decoded = codec.decode(codec.encode(f"billing.commands.{name}", base | own))
            assert command_from_record(name, decoded.record) == expected

    def test_every_event_round_trips_through_its_schema(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Each stored event is published with its billing.events schema and decodes unchanged."""
        send(*story())
        codec = AvroCodec()
        published = set()
        for notification in ledger.recorder.select_notifications(start=1, limit=1000):
            event = ledger.mapper.to_domain_event(notification)
            if isinstance(event, ADJUSTMENT_EVENTS):
                message = outgoing(event, notification.id, codec)
                decoded = codec.decode(message.value)
                assert decoded.schema_name == ACCOUNT_EVENT_SCHEMAS[type(event)]
                assert decoded.record == account_event_record(event)
                published.add(type(event))
        assert published == set(ADJUSTMENT_EVENTS)
