"""Money invariants checked after every command of random histories.

No account holds credit while an invoice is open; no invoice is born overdue; credit notes,
write-offs and forgiveness never give back more than an invoice charged net of discounts; and
no accepted history takes any balance or total past the documented bounds (issue 11's and
issue 10's property tests). The histories are those of tests.unit.histories, one command per
batch so that the state after each is seen, and histories of amounts near the bounds.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from commands.messages import (
    AdvanceClock,
    CancelSubscription,
    ChangePlan,
    Command,
    IssueCreditNote,
    RefundCredit,
    Renegotiate,
    WriteOff,
)
from ledger.account import Account
from ledger.account_state import CancellationPolicy
from ledger.bounds import MAX_AMOUNT_MINOR, MAX_TOTAL_MINOR
from tests.unit.builders import Sender, in_memory_ledger, open_account, record_payment, subscribe
from tests.unit.histories import FIRST_ISSUED_AT, History, histories

# Each command is its own batch here, so an example costs several times one of
# test_properties: 100 examples for the credit and caps invariants, fewer for the others.
EVERY_COMMAND = settings(max_examples=100, deadline=None)
ISSUE_DATES = settings(max_examples=50, deadline=None)
NEAR_THE_BOUNDS = settings(max_examples=40, deadline=None)


def after_each_command(commands: tuple[Command, ...]) -> Iterator[dict[str, Account]]:
    """Deliver the commands one batch each; yield the accounts as each command left them (the
    same objects go on changing: look before asking for the next)."""
    send = Sender(in_memory_ledger())
    for command in commands:
        send(command)
        yield send.live_accounts


def check_credit_settles_open_invoices(account: Account) -> None:
    """Credit held means no invoice is open."""
    if account.credit_minor > 0:
        open_invoices = [i.invoice_id for i in account.invoices.values() if i.outstanding_minor]
        assert open_invoices == [], (account.credit_minor, open_invoices)


def check_caps(account: Account) -> None:
    """Credited, written off and forgiven never pass what an invoice charged net of discounts."""
    for invoice in account.invoices.values():
        given_back = invoice.credited_minor + invoice.written_off_minor + invoice.forgiven_minor
        assert given_back <= invoice.amount_minor - invoice.discounted_minor, invoice


def check_bounds(account: Account) -> None:
    """Every balance and total of the account within the bounds, from its own postings."""
    totals = account.totals
    for total in (totals.invoiced_minor, totals.received_minor, totals.credited_minor):
        assert 0 <= total <= MAX_TOTAL_MINOR
    assert 0 <= totals.refunded_minor <= MAX_TOTAL_MINOR
    assert 0 <= account.credit_minor <= MAX_TOTAL_MINOR
    receivable = sum(i.outstanding_minor for i in account.invoices.values())
    assert 0 <= receivable <= totals.invoiced_minor


def check_postings_in_bounds(events: list[Any]) -> None:
    """Each ledger account's balance over the stored postings stays within the bounds, after
    every event (so does any running sum a read model keeps of it)."""
    balances: dict[str, int] = defaultdict(int)
    for event in events:
        for posting in getattr(event, "postings", ()):
            balances[posting.ledger_account] += posting.signed_minor
            assert abs(balances[posting.ledger_account]) <= MAX_TOTAL_MINOR, posting


class TestAfterEveryCommand:
    """What a customer and an accountant expect holds after each command."""

    @EVERY_COMMAND
    @given(history=histories())
    def test_no_credit_beside_an_open_invoice_and_no_credit_past_what_was_charged(
        self, history: History
    ) -> None:
        """Credit settles open invoices at once; caps hold on every invoice."""
        for accounts in after_each_command(history.commands):
            for account in accounts.values():
                check_credit_settles_open_invoices(account)
                check_caps(account)
                check_bounds(account)

    @ISSUE_DATES
    @given(history=histories())
    def test_no_invoice_is_issued_already_overdue(self, history: History) -> None:
        """Every invoice is due at or after its issue, and never marked by the command that
        issued it."""
        send = Sender(in_memory_ledger())
        seen = 0
        for command in history.commands:
            send(command)
            events = stored(send)
            issued, marked = set(), set()
            for event in events[seen:]:
                if isinstance(event, Account.InvoiceIssued):
                    assert event.due_at >= event.timestamp, event
                    issued.add(event.invoice_id)
                elif isinstance(event, Account.InvoiceOverdue):
                    marked.add(event.invoice_id)
            assert not issued & marked
            seen = len(events)


def stored(send: Sender) -> list[Any]:
    """Every stored domain event of the sender's ledger."""
    ledger = send.ledger
    notifications = ledger.recorder.select_notifications(start=1, limit=100_000)
    return [ledger.mapper.to_domain_event(n) for n in notifications]


# Amounts at, just past and far past the largest a command may carry, and ordinary ones.
large_amounts = st.sampled_from(
    (MAX_AMOUNT_MINOR, MAX_AMOUNT_MINOR, MAX_AMOUNT_MINOR - 1, MAX_AMOUNT_MINOR + 1, 2**63 - 1)
) | st.integers(min_value=1, max_value=MAX_AMOUNT_MINOR)
months = st.integers(min_value=0, max_value=60)


@st.composite
def large_commands(draw: st.DrawFn, index: int) -> Command:
    """One command of acc-1 with a large amount: mostly payments, also clock ticks of up to
    five years, credit notes, refunds, plan changes, cancellations, write-offs, renegotiation."""
    when = FIRST_ISSUED_AT + timedelta(days=30 * draw(months))
    head: dict[str, Any] = {"command_id": None, "account_id": "acc-1", "issued_at": when}
    invoice_id = draw(st.sampled_from(("sub-1/1", "sub-1/2", "sub-2/1", "sub-1/1/change-1")))
    kind = draw(st.sampled_from(("pay",) * 6 + ("tick", "credit", "refund", "change", "other")))
    if kind == "pay":
        return record_payment(
            amount_minor=draw(large_amounts), payment_id=f"p-{index}", issued_at=when
        )
    if kind == "tick":
        return AdvanceClock(**head)
    if kind == "credit":
        return IssueCreditNote(
            **head,
            credit_note_id=f"cn-{index}",
            invoice_id=invoice_id,
            amount_minor=draw(large_amounts),
            reason="goodwill",
        )
    if kind == "refund":
        return RefundCredit(
            **head,
            refund_id=f"rf-{index}",
            amount_minor=draw(large_amounts),
            payment_method_kind="bank_transfer",
        )
    if kind == "change":
        return ChangePlan(
            **head, subscription_id="sub-1", plan_id="big", price_minor=draw(large_amounts)
        )
    other = draw(st.sampled_from(("cancel", "write_off", "renegotiate")))
    if other == "cancel":
        return CancelSubscription(**head, subscription_id=draw(st.sampled_from(("sub-1", "sub-2"))))
    if other == "write_off":
        return WriteOff(**head, invoice_id=invoice_id, reason="bad debt")
    return Renegotiate(
        **head,
        plan_id=f"plan-{index}",
        invoice_ids=(invoice_id,),
        installments=2,
        first_due_at=when,
        interval_days=30,
        interest_minor=draw(large_amounts),
        forgiven_minor=0,
    )


@st.composite
def large_histories(draw: st.DrawFn) -> tuple[Command, ...]:
    """acc-1 with two large subscriptions, then up to 150 commands with large amounts."""
    opening = [
        open_account(issued_at=FIRST_ISSUED_AT),
        subscribe(issued_at=FIRST_ISSUED_AT, price_minor=draw(large_amounts)),
        subscribe(
            issued_at=FIRST_ISSUED_AT,
            subscription_id="sub-2",
            price_minor=draw(large_amounts),
            cancellation_policy=CancellationPolicy.IMMEDIATELY_WITH_PRORATED_REFUND,
        ),
    ]
    count = draw(st.integers(min_value=1, max_value=150))
    rest = [draw(large_commands(index)) for index in range(count)]
    return tuple(fresh_ids([*opening, *rest]))


def fresh_ids(commands: list[Command]) -> list[Command]:
    """The commands, each with a command id of its own."""
    return [
        dataclasses.replace(c, command_id=str(uuid.UUID(int=n + 1))) for n, c in enumerate(commands)
    ]


class TestBounds:
    """No accepted history takes a balance or total past the documented bounds."""

    @NEAR_THE_BOUNDS
    @given(commands=large_histories())
    def test_no_balance_or_total_leaves_the_bounds(self, commands: tuple[Command, ...]) -> None:
        """After every command: the account's totals, credit and receivable, and every ledger
        account's balance, within 10^17; a refusal for the bounds is out_of_range."""
        send = Sender(in_memory_ledger())
        for command in commands:
            send(command)
            account = send.live_accounts.get("acc-1")
            if account is not None:
                check_bounds(account)
                check_credit_settles_open_invoices(account)
                check_caps(account)
        check_postings_in_bounds(stored(send))
