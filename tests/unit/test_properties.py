"""Invariants of the ledger over random command histories, processed in random batch splits.

Postings balance, receivable is what the invoices leave outstanding and customer credit what
the account holds, replay rebuilds what the commands built, processing is deterministic, and
redelivery changes nothing. The histories themselves are drawn in tests.unit.histories.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import hypothesis
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.handlers import Outcome
from ledger.account import Account, account_uuid
from ledger.application import BillingLedger, event_id
from ledger.calendar import IntervalUnit
from ledger.postings import LedgerAccount, Side, balance_of
from tests.unit.builders import Sender, digest_of, in_memory_ledger
from tests.unit.histories import ACCOUNT_IDS, History, cuts_within, histories

PROPERTY = settings(max_examples=100, deadline=None)


@dataclass
class Run:
    """A ledger after a history, with the accounts as the command methods left them."""

    ledger: BillingLedger
    outcomes: list[Outcome]
    live_accounts: dict[str, Account]


def run(history: History) -> Run:
    """Process the history's batches in a fresh in-memory ledger, as the consumer would."""
    ledger = in_memory_ledger()
    send = Sender(ledger)
    outcomes = [outcome for batch in history.batches() for outcome in send(*batch)]
    return Run(ledger, outcomes, send.live_accounts)


def stored(ledger: BillingLedger) -> list[Any]:
    """Every stored notification, in log order."""
    return list(ledger.recorder.select_notifications(start=1, limit=10_000))


def stored_events(ledger: BillingLedger) -> list[Any]:
    """Every stored domain event, in log order."""
    return [ledger.mapper.to_domain_event(notification) for notification in stored(ledger)]


def streams(ledger: BillingLedger) -> dict[UUID, list[tuple[int, str, bytes]]]:
    """Each aggregate's stored events as (version, topic, state bytes), oldest first."""
    by_aggregate: dict[UUID, list[tuple[int, str, bytes]]] = defaultdict(list)
    for notification in stored(ledger):
        by_aggregate[notification.originator_id].append(
            (notification.originator_version, notification.topic, notification.state)
        )
    return dict(by_aggregate)


def state_of(account: Account) -> dict[str, Any]:
    """What an account knows, for comparing two copies of it.

    Subscriptions (status, cancel_at, anchor, terms) and invoices (paid, overdue, credited,
    written off, renegotiated) compare as whole dataclasses.
    """
    state = {
        "version": account.version,
        "account_id": account.account_id,
        "currency": account.currency,
        "customer_reference": account.customer_reference,
        "contacts": account.contacts,
        "subscriptions": account.subscriptions,
        "invoices": account.invoices,
        "credit_minor": account.credit_minor,
        "payment_ids": account.payment_ids,
        "failed_charges": account.failed_charges,
        "dunning_policy": account.dunning_policy,
        "hardship_until": account.hardship_until,
        "dunning_marks": account.dunning_marks,
        "retries": account.retries,
        "pending_prices": account.pending_prices,
        "payment_methods": account.payment_methods,
        "default_payment_method_id": account.default_payment_method_id,
        "feedback_ids": account.feedback_ids,
        "renegotiations": account.renegotiations,
        "credit_note_ids": account.credit_note_ids,
        "refund_ids": account.refund_ids,
    }
    # An attribute added to the account later must be added here too, or replay goes unchecked.
    assert {name for name in vars(account) if not name.startswith("_")} <= state.keys()
    return state


def account_versions(ledger: BillingLedger) -> dict[str, int | None]:
    """The stored version of every account id the histories use (None: never opened)."""
    versions: dict[str, int | None] = {}
    for account_id in ACCOUNT_IDS:
        account = ledger.account(account_id)
        versions[account_id] = None if account is None else account.version
    return versions


def earned_minor(events: Iterable[Any]) -> int:
    """Revenue the events earned: invoices and interest, less credit notes given back."""
    earned = 0
    for event in events:
        if isinstance(event, Account.InvoiceIssued):
            earned += event.amount_minor
        elif isinstance(event, Account.DebtRenegotiated):
            earned += event.interest_minor
        elif isinstance(event, Account.CreditNoteIssued):
            earned -= event.amount_minor
    return earned


def postings_of(events: Iterable[Any]) -> list[Any]:
    """Every posting of the events."""
    return [posting for event in events for posting in getattr(event, "postings", ())]


class TestPostings:
    """Money never appears or disappears: every entry balances."""

    @PROPERTY
    @given(history=histories())
    def test_every_entry_balances_and_revenue_is_what_was_invoiced(self, history: History) -> None:
        """Debits equal credits per event; each account's revenue is what it earned."""
        result = run(history)
        events = stored_events(result.ledger)
        for event in events:
            postings = getattr(event, "postings", ())
            assert all(posting.amount_minor > 0 for posting in postings), event
            debits = sum(p.amount_minor for p in postings if p.side is Side.DEBIT)
            credits = sum(p.amount_minor for p in postings if p.side is Side.CREDIT)
            assert debits == credits, event
        for account_id in ACCOUNT_IDS:
            own = [e for e in events if e.originator_id == account_uuid(account_id)]
            assert balance_of(LedgerAccount.REVENUE, postings_of(own)) == -earned_minor(own)

    @PROPERTY
    @given(history=histories())
    def test_the_whole_ledger_sums_to_zero_and_receivable_is_outstanding_after_every_batch(
        self, history: History
    ) -> None:
        """After each batch: all postings sum to zero, receivable = what all invoices owe."""
        ledger = in_memory_ledger()
        send = Sender(ledger)
        for batch in history.batches():
            send(*batch)
            postings = postings_of(stored_events(ledger))
            assert sum(p.signed_minor for p in postings) == 0
            accounts = [a for a in map(ledger.account, ACCOUNT_IDS) if a is not None]
            assert balance_of(LedgerAccount.RECEIVABLE, postings) == sum(
                i.outstanding_minor for a in accounts for i in a.invoices.values()
            )

    @PROPERTY
    @given(history=histories())
    def test_every_account_event_is_answered_to_exactly_one_command(self, history: History) -> None:
        """The event ids of first deliveries are exactly the stored account events, once each."""
        result = run(history)
        answered = [
            identity
            for outcome in result.outcomes
            if not outcome.redelivery
            for identity in outcome.event_ids
        ]
        account_events = [
            e for e in stored_events(result.ledger) if isinstance(e, Account.Event | Account.Opened)
        ]
        assert sorted(answered) == sorted(
            event_id(e.originator_id, e.originator_version) for e in account_events
        )


class TestReceivables:
    """What the postings say is owed agrees with the invoices and the account's credit."""

    @PROPERTY
    @given(history=histories())
    def test_receivable_is_outstanding_and_customer_credit_is_the_accounts_credit(
        self, history: History
    ) -> None:
        """Per account: receivable = outstanding, customer credit = credit_minor, cash = paid."""
        result = run(history)
        events = stored_events(result.ledger)
        for account_id in ACCOUNT_IDS:
            account = result.ledger.account(account_id)
            own = [e for e in events if e.originator_id == account_uuid(account_id)]
            if account is None:
                assert own == []
                continue
            invoices = account.invoices.values()
            postings = postings_of(own)
            assert balance_of(LedgerAccount.RECEIVABLE, postings) == sum(
                i.outstanding_minor for i in invoices
            )
            assert -balance_of(LedgerAccount.CUSTOMER_CREDIT, postings) == account.credit_minor
            assert account.credit_minor >= 0
            assert all(0 <= i.paid_minor <= i.amount_minor for i in invoices)
            assert all(i.paid_minor + i.written_off_minor <= i.amount_minor for i in invoices)
            received = [e for e in own if isinstance(e, Account.PaymentReceived)]
            refunded = [e for e in own if isinstance(e, Account.CreditRefunded)]
            cash = sum(p.signed_minor for p in postings if p.ledger_account.startswith("cash:"))
            assert cash == sum(e.amount_minor for e in received) - sum(
                e.amount_minor for e in refunded
            )
            label_coverage(own, account)

    @PROPERTY
    @given(history=histories())
    def test_an_invoice_is_marked_overdue_at_most_once_and_only_while_unpaid(
        self, history: History
    ) -> None:
        """One InvoiceOverdue per invoice at most, with something outstanding, past its due date."""
        result = run(history)
        events = stored_events(result.ledger)
        for account_id in ACCOUNT_IDS:
            account = result.ledger.account(account_id)
            if account is None:
                continue
            own = [e for e in events if e.originator_id == account_uuid(account_id)]
            marks = [e for e in own if isinstance(e, Account.InvoiceOverdue)]
            assert len({m.invoice_id for m in marks}) == len(marks)
            assert {m.invoice_id for m in marks} == {
                i.invoice_id for i in account.invoices.values() if i.overdue
            }
            for mark in marks:
                assert mark.outstanding_minor > 0
                assert mark.due_at < mark.timestamp


def label_coverage(events: list[Any], account: Account) -> None:
    """Tell hypothesis's statistics which receivables paths a history took."""
    for event_type in (
        Account.InvoiceOverdue,
        Account.PaymentReceived,
        Account.CreditApplied,
        Account.InvoicePaid,
        Account.ChargeFailed,
    ):
        seen = any(isinstance(e, event_type) for e in events)
        hypothesis.event(f"{event_type.__name__}: {seen}")
    hypothesis.event(f"credit left: {account.credit_minor > 0}")


class TestReplay:
    """Stored events rebuild exactly the state the commands built."""

    @PROPERTY
    @given(history=histories())
    def test_reading_an_account_back_rebuilds_its_state(self, history: History) -> None:
        """Subscriptions, invoices (paid, overdue), credit, payments, failures, version survive."""
        result = run(history)
        for account_id in ACCOUNT_IDS:
            rebuilt = result.ledger.account(account_id)
            live = result.live_accounts.get(account_id)
            if live is None:
                assert rebuilt is None
                continue
            assert rebuilt is not None
            assert state_of(rebuilt) == state_of(live)
            for subscription in rebuilt.subscriptions.values():
                assert type(subscription.terms.interval_unit) is IntervalUnit
            for posting in postings_of(result.ledger.repository.event_store.get(rebuilt.id)):
                assert type(posting.side) is Side

    @PROPERTY
    @given(history=histories())
    def test_reading_a_receipt_back_counts_every_delivery(self, history: History) -> None:
        """A receipt rebuilt from its events knows the first answer and how often it was given."""
        result = run(history)
        deliveries = Counter(command.command_id for command in history.commands)
        first_answers = {
            o.delivery.command.command_id: o for o in result.outcomes if not o.redelivery
        }
        for command_id, count in deliveries.items():
            receipt = result.ledger.receipt(command_id)
            assert receipt is not None
            assert receipt.deliveries == count
            first = first_answers[command_id]
            assert (receipt.event_ids, receipt.rejection) == (first.event_ids, first.rejection)


class TestDeterminism:
    """The same deliveries always store the same events, byte for byte."""

    @PROPERTY
    @given(history=histories())
    def test_two_ledgers_store_identical_logs(self, history: History) -> None:
        """Topics, ids, versions and state bytes are equal, in the same order."""
        first, second = stored(run(history).ledger), stored(run(history).ledger)
        assert [(n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in first] == [
            (n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in second
        ]

    @PROPERTY
    @given(history=histories())
    def test_how_deliveries_are_batched_does_not_change_any_aggregate(
        self, history: History
    ) -> None:
        """Every aggregate's stream is the same whether the history is split or not."""
        assert streams(run(history).ledger) == streams(run(history.in_one_batch()).ledger)


class TestRedelivery:
    """Delivering every command again changes no account."""

    @PROPERTY
    @given(history=histories(), data=st.data())
    def test_redelivering_everything_changes_no_account(
        self, history: History, data: st.DataObject
    ) -> None:
        """Each repeat is a redelivery with the recorded answer; only receipts grow."""
        result = run(history)
        versions_before = account_versions(result.ledger)
        log_size = len(stored(result.ledger))
        repeat = History(history.commands, data.draw(cuts_within(len(history.commands))))
        send = Sender(result.ledger)
        send.next_offset = len(history.commands)
        outcomes = [o for batch in repeat.batches() for o in send(*batch)]
        assert account_versions(result.ledger) == versions_before
        assert all(outcome.redelivery for outcome in outcomes)
        for outcome in outcomes:
            receipt = result.ledger.receipt(outcome.delivery.command.command_id)
            assert receipt is not None
            if digest_of(outcome.delivery.command) == receipt.content_digest:
                assert (outcome.event_ids, outcome.rejection) == (
                    receipt.event_ids,
                    receipt.rejection,
                )
            else:
                assert outcome.rejection is not None
                assert outcome.rejection.code == "command_id_reused"
        added = stored(result.ledger)[log_size:]
        assert len(added) == len(history.commands)
        assert {n.topic for n in added} == {"ledger.receipts:CommandReceipt.Redelivered"}
