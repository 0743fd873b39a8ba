"""docs/worked-example.md: one customer's year, run through the real ledger (in memory).

`python -m tools.worked_example > docs/worked-example.md` regenerates it; a test keeps the
committed file equal to what the code does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from commands.handlers import Delivery, Outcome, process
from commands.mapping import PLAN_COMMAND_TYPES, content_digest, key_field_of
from commands.table import command_from_record
from commands.unit_of_work import UnitOfWork
from ledger.account import account_uuid
from ledger.application import BillingLedger
from ledger.plans import plan_uuid
from ledger.postings import balance_of
from ledger.receipts import Source
from wire.event_records import EVENT_SCHEMAS, event_record

ACCOUNT = "cust-0042"
PLAN = "pro-monthly"
NAMESPACE = uuid.UUID("6f1c8e4e-8d7a-4a55-9a43-0d4f7c1b2a10")


def day(month: int, day_of_month: int) -> datetime:
    """A business time in 2024, 09:00 UTC."""
    return datetime(2024, month, day_of_month, 9, tzinfo=UTC)


def story() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(what happens, command type, the command's own fields) in business-time order."""
    yield (
        "The product team puts Pro monthly at 29.00 in the catalogue",
        "DefinePlan",
        {
            "issued_at": day(1, 1),
            "plan_id": PLAN,
            "name": "Pro",
            "price_minor": 2900,
            "currency": "EUR",
            "interval_unit": "MONTH",
            "interval_count": 1,
            "trial_days": 0,
        },
    )
    yield (
        "The customer signs up",
        "OpenAccount",
        {
            "issued_at": day(1, 1),
            "currency": "EUR",
            "customer_reference": "crm-0042",
            "contacts": [{"channel": "email", "address": "ana@example.com"}],
        },
    )
    yield (
        "A card goes on file",
        "AddPaymentMethod",
        {
            "issued_at": day(1, 1),
            "payment_method_id": "card-1",
            "kind": "credit_card",
            "label": "Visa **** 4242",
            "expires_on": None,
            "make_default": False,
        },
    )
    yield (
        "The recommended dunning policy applies",
        "SetDunningPolicy",
        {
            "issued_at": day(1, 1),
            "reminder_days_before_due": [3],
            "reminder_days_after_due": [1, 7, 14],
            "retry_days_after_failure": [1, 3, 7],
            "grace_days": 21,
            "final_action": "SUSPEND",
        },
    )
    yield (
        "Pro monthly from the catalogue, 2% off if paid within 7 days",
        "Subscribe",
        {
            "issued_at": day(1, 1),
            "subscription_id": "pro",
            "plan_id": PLAN,
            "price_minor": None,
            "currency": None,
            "interval_unit": None,
            "interval_count": None,
            "trial_days": None,
            "days_until_due": 14,
            "cancellation_policy": "AT_PERIOD_END",
            "early_payment_discount_bp": 200,
            "early_payment_days": 7,
        },
    )
    yield "Paid early: 28.42", "RecordPayment", _payment(day(1, 3), "pay-jan", 2842)
    yield "February's invoice", "AdvanceClock", {"issued_at": day(2, 1)}
    yield "Three days before due: a reminder", "AdvanceClock", {"issued_at": day(2, 12)}
    yield (
        "The card is declined",
        "FailCharge",
        _declined(day(2, 15), "pro/2"),
    )
    yield "The retry comes due; dunning stage 1", "AdvanceClock", {"issued_at": day(2, 16)}
    yield (
        "Declined again",
        "FailCharge",
        _declined(day(2, 16), "pro/2"),
    )
    yield "March's invoice; February is a week late", "AdvanceClock", {"issued_at": day(3, 1)}
    yield (
        "The customer reports reduced hours",
        "ReportHardship",
        {"issued_at": day(3, 4), "reason": "reduced working hours", "days": 30},
    )
    yield "April's invoice; dunning still paused", "AdvanceClock", {"issued_at": day(4, 1)}
    yield (
        "February and March become three installments, 10.00 forgiven",
        "Renegotiate",
        {
            "issued_at": day(4, 5),
            "plan_id": "plan-1",
            "invoice_ids": ["pro/2", "pro/3"],
            "installments": 3,
            "first_due_at": day(4, 20),
            "interval_days": 30,
            "interest_minor": 0,
            "forgiven_minor": 1000,
        },
    )
    yield "April paid early", "RecordPayment", _payment(day(4, 6), "pay-apr", 2842, "pro/4")
    yield "First installment paid", "RecordPayment", _payment(day(4, 19), "pay-i1", 1600)
    yield "May's invoice", "AdvanceClock", {"issued_at": day(5, 1)}
    yield "May paid early", "RecordPayment", _payment(day(5, 2), "pay-may", 2842, "pro/5")
    yield "Second installment paid", "RecordPayment", _payment(day(5, 19), "pay-i2", 1600)
    yield "June's invoice", "AdvanceClock", {"issued_at": day(6, 1)}
    yield (
        "June paid early, with the last installment",
        "RecordPayment",
        _payment(day(6, 3), "pay-jun", 2842 + 1600),
    )
    yield (
        "Pro costs 32.00 for new customers from now; this customer keeps the 29.00 accepted",
        "RevisePlan",
        {"issued_at": day(6, 15), "price_minor": 3200, "trial_days": None, "name": None},
    )
    for month in range(7, 13):
        name = datetime(2024, month, 1).strftime("%B")
        yield f"{name}'s invoice", "AdvanceClock", {"issued_at": day(month, 1)}
        yield (
            f"{name} paid early",
            "RecordPayment",
            _payment(day(month, 2), f"pay-{month:02d}", 2842, f"pro/{month}"),
        )
    yield (
        "Recovered: the customer says so",
        "RecordFeedback",
        {
            "issued_at": day(12, 31),
            "feedback_id": "nps-2024",
            "score": 9,
            "comment": "The installments got me through a hard spring.",
            "topic": "billing",
        },
    )


def _declined(when: datetime, invoice_id: str) -> dict[str, Any]:
    return {
        "issued_at": when,
        "invoice_id": invoice_id,
        "payment_method_kind": "credit_card",
        "reason": "insufficient_funds",
    }


def _payment(
    when: datetime, payment_id: str, amount_minor: int, invoice_id: str | None = None
) -> dict[str, Any]:
    return {
        "issued_at": when,
        "payment_id": payment_id,
        "amount_minor": amount_minor,
        "currency": "EUR",
        "payment_method_kind": "credit_card",
        "invoice_id": invoice_id,
    }


def render() -> str:
    """The worked example in Markdown."""
    ledger = BillingLedger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    lines = [
        "# A customer's year, worked through",
        "",
        "Generated by `python -m tools.worked_example` from the ledger's own code (an in-memory",
        "event store); do not edit by hand. Amounts are minor units of EUR (2900 = 29.00).",
        "Receivable is what the customer owes after the step; credit is what the account holds.",
        "",
        "| # | business time | what happens | command | outcome | events | receivable | credit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for number, (what, command_type, fields) in enumerate(story(), start=1):
        outcome = _send(ledger, number, command_type, fields)
        events = _events(ledger, outcome)
        answer = "accepted" if outcome.rejection is None else f"rejected `{outcome.rejection.code}`"
        when = fields["issued_at"].strftime("%d %b")
        receivable, credit = _balances(ledger)
        lines.append(
            f"| {number} | {when} | {what} | `{command_type}` | {answer} | {events} "
            f"| {receivable} | {credit} |"
        )
    return "\n".join(lines) + "\n"


def _send(ledger: BillingLedger, number: int, command_type: str, fields: dict[str, Any]) -> Outcome:
    record = {"command_id": str(uuid.uuid5(NAMESPACE, str(number)))}
    record[key_field_of(command_type)] = PLAN if command_type in PLAN_COMMAND_TYPES else ACCOUNT
    record |= fields
    delivery = Delivery(
        command_from_record(command_type, record),
        command_type,
        content_digest(command_type, record),
        Source("billing.commands", 0, number),
    )
    work = UnitOfWork(ledger)
    (outcome,) = process(work, [delivery], frozenset())
    ledger.save(*work.changed)
    return outcome


def _events(ledger: BillingLedger, outcome: Outcome) -> str:
    if not outcome.event_ids:
        return "none"
    stored = [
        *ledger.repository.event_store.get(account_uuid(ACCOUNT)),
        *ledger.repository.event_store.get(plan_uuid(PLAN)),
    ]
    by_id = {event_record(e)["event_id"]: e for e in stored}
    return "<br>".join(_describe(by_id[i]) for i in outcome.event_ids if i in by_id)


def _describe(event: Any) -> str:
    name = EVENT_SCHEMAS[type(event)].rpartition(".")[2]
    record = event_record(event)
    details = [
        f"{key} {record[key]}"
        for key in (
            "invoice_id",
            "amount_minor",
            "stage",
            "retry_at",
            "plan_id",
            "price_minor",
            "plan_version",
            "forgiven_minor",
            "until",
            "score",
        )
        if record.get(key) is not None
    ]
    return name + (f" ({', '.join(str(d) for d in details)})" if details else "")


def _balances(ledger: BillingLedger) -> tuple[int, int]:
    account = ledger.account(ACCOUNT)
    if account is None:
        return 0, 0
    postings = [
        p for e in ledger.repository.event_store.get(account.id) for p in getattr(e, "postings", ())
    ]
    return balance_of("receivable", postings), -balance_of("customer_credit", postings)


if __name__ == "__main__":
    print(render(), end="")
