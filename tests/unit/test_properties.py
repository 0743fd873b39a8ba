"""Invariants of the ledger over random command histories, processed in random batch splits.

Postings balance, receivable is what the invoices leave outstanding and customer credit what
the account holds, subscriptions take their catalogue plan's terms as they were, replay rebuilds
what the commands built, processing is deterministic, and redelivery changes nothing. The
histories themselves are drawn in tests.unit.histories.
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
from commands.messages import ChangePlan, Subscribe
from ledger.account import Account, Terms, account_uuid
from ledger.application import BillingLedger, event_id
from ledger.calendar import IntervalUnit
from ledger.plan_terms import TermsAsked
from ledger.plans import Plan, plan_uuid
from ledger.postings import LedgerAccount, Side, balance_of
from tests.unit.builders import Sender, digest_of, in_memory_ledger
from tests.unit.histories import (
    ACCOUNT_IDS,
    CUSTOM_PLAN_ID,
    PLAN_IDS,
    UNDEFINED_PLAN_ID,
    History,
    cuts_within,
    histories,
)

PROPERTY = settings(max_examples=100, deadline=None)
# Every plan id the histories name: the catalogue's, and two that are never defined.
NAMED_PLAN_IDS = (*PLAN_IDS, UNDEFINED_PLAN_ID, CUSTOM_PLAN_ID)
PLAN_EVENTS = Plan.Defined | Plan.Revised | Plan.Retired


class PlanKeepingLedger(BillingLedger):
    """An in-memory ledger that also keeps each plan object as the command methods saved it
    (the Sender keeps only the accounts)."""

    name = BillingLedger.name  # a subclass would otherwise take its own class name

    def __init__(self) -> None:
        super().__init__(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        self.live_plans: dict[str, Plan] = {}

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        self.live_plans |= {plan.plan_id: plan for plan in objs if isinstance(plan, Plan)}
        return super().save(*objs, **kwargs)


@dataclass
class Run:
    """A ledger after a history, with the accounts and plans as the command methods left them."""

    ledger: BillingLedger
    outcomes: list[Outcome]
    live_accounts: dict[str, Account]
    live_plans: dict[str, Plan]

    @property
    def first_answers(self) -> list[Outcome]:
        """The outcomes of the commands processed, not of redeliveries, in processing order."""
        return [outcome for outcome in self.outcomes if not outcome.redelivery]


def run(history: History) -> Run:
    """Process the history's batches in a fresh in-memory ledger, as the consumer would."""
    ledger = PlanKeepingLedger()
    send = Sender(ledger)
    outcomes = [outcome for batch in history.batches() for outcome in send(*batch)]
    return Run(ledger, outcomes, send.live_accounts, ledger.live_plans)


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
        "totals": account.totals,
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


def plan_state(plan: Plan) -> dict[str, Any]:
    """What a catalogue plan knows, for comparing two copies of it."""
    state = {
        "version": plan.version,
        "plan_id": plan.plan_id,
        "name": plan.name,
        "price_minor": plan.price_minor,
        "currency": plan.currency,
        "interval_unit": plan.interval_unit,
        "interval_count": plan.interval_count,
        "trial_days": plan.trial_days,
        "retired": plan.retired,
    }
    # An attribute added to the plan later must be added here too, or replay goes unchecked.
    assert {name for name in vars(plan) if not name.startswith("_")} <= state.keys()
    return state


def aggregate_versions(ledger: BillingLedger) -> dict[str, int | None]:
    """The stored version of every account and plan the histories name (None: none stored)."""
    versions: dict[str, int | None] = {}
    for account_id in ACCOUNT_IDS:
        account = ledger.account(account_id)
        versions[account_id] = None if account is None else account.version
    for plan_id in NAMED_PLAN_IDS:
        plan = ledger.plan(plan_id)
        versions[f"plan {plan_id}"] = None if plan is None else plan.version
    return versions


def events_by_id(ledger: BillingLedger) -> dict[str, Any]:
    """Every stored domain event, by the event id the command results give."""
    return {event_id(e.originator_id, e.originator_version): e for e in stored_events(ledger)}


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
    def test_every_account_and_plan_event_is_answered_to_exactly_one_command(
        self, history: History
    ) -> None:
        """First deliveries' event ids are the stored account and plan events, once each, and
        each event names the command that made it and the aggregate the command is keyed by."""
        result = run(history)
        answered = [i for outcome in result.first_answers for i in outcome.event_ids]
        own_events = [
            e
            for e in stored_events(result.ledger)
            if isinstance(e, Account.Event | Account.Opened | PLAN_EVENTS)
        ]
        assert sorted(answered) == sorted(
            event_id(e.originator_id, e.originator_version) for e in own_events
        )
        events = events_by_id(result.ledger)
        for outcome in result.first_answers:
            command = outcome.delivery.command
            for identity in outcome.event_ids:
                assert events[identity].command_id == command.command_id
                assert getattr(events[identity], command.key_field) == command.key


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


class TestCatalogue:
    """Subscriptions and plan changes take their catalogue plan's terms as they were then."""

    @PROPERTY
    @given(history=histories())
    def test_subscribed_and_changed_terms_are_the_plan_version_they_record(
        self, history: History
    ) -> None:
        """Each records the plan's version current when processed (None: not in the catalogue)
        and bills like it; price and trial differ from it only where the command set them."""
        result = run(history)
        events = events_by_id(result.ledger)
        versions: dict[str, int] = {}
        from_catalogue = False
        for outcome in result.first_answers:
            command = outcome.delivery.command
            for event in (events[identity] for identity in outcome.event_ids):
                if isinstance(event, PLAN_EVENTS):
                    versions[event.plan_id] = event.originator_version
                elif isinstance(event, Account.Subscribed):
                    assert isinstance(command, Subscribe)
                    check_terms(result.ledger, versions, event.terms, command.terms)
                    from_catalogue |= event.terms.plan_version is not None
                elif isinstance(event, Account.PlanChanged):
                    assert isinstance(command, ChangePlan)
                    check_changed_terms(result.ledger, versions, event, command)
        hypothesis.event(f"subscribed to a catalogue plan: {from_catalogue}")


def plan_at(ledger: BillingLedger, versions: dict[str, int], terms: Terms) -> Plan | None:
    """The catalogue plan the terms name, at the version they record; None for a custom plan.

    Checks that the version is the one current when the command was processed (`versions`).
    """
    assert terms.plan_version == versions.get(terms.plan_id)
    if terms.plan_version is None:
        return None
    plan = ledger.repository.get(plan_uuid(terms.plan_id), version=terms.plan_version)
    assert isinstance(plan, Plan)
    assert not plan.retired
    assert (terms.currency, terms.interval_unit, terms.interval_count) == (
        plan.currency,
        plan.interval_unit,
        plan.interval_count,
    )
    return plan


def check_terms(
    ledger: BillingLedger, versions: dict[str, int], terms: Terms, asked: TermsAsked
) -> None:
    """Subscribed terms: what the Subscribe set, the rest from the plan's version (or, for a
    custom plan, which must set price, currency and interval unit, one interval and no trial)."""
    plan = plan_at(ledger, versions, terms)
    offered: dict[str, Any] = {
        "price_minor": None,
        "currency": None,
        "interval_unit": None,
        "interval_count": 1,
        "trial_days": 0,
    }
    if plan is not None:
        offered = {name: getattr(plan, name) for name in offered}
    for name, default in offered.items():
        wanted = getattr(asked, name)
        assert getattr(terms, name) == (default if wanted is None else wanted), name
    for name in (
        *("plan_id", "days_until_due", "cancellation_policy"),
        *("early_payment_discount_bp", "early_payment_days"),
    ):
        assert getattr(terms, name) == getattr(asked, name), name


def check_changed_terms(
    ledger: BillingLedger, versions: dict[str, int], event: Any, command: ChangePlan
) -> None:
    """Changed terms: the plan's version's price unless the ChangePlan set one."""
    plan = plan_at(ledger, versions, event.terms)
    offered = None if plan is None else plan.price_minor
    assert event.terms.plan_id == command.plan_id
    assert event.terms.price_minor == (
        offered if command.price_minor is None else command.price_minor
    )


class TestReplay:
    """Stored events rebuild exactly the state the commands built."""

    @PROPERTY
    @given(history=histories())
    def test_reading_accounts_and_plans_back_rebuilds_their_state(self, history: History) -> None:
        """Subscriptions, invoices (paid, overdue), credit, payments, failures, version survive;
        so do each plan's price, trial, name, billing, retirement and version."""
        result = run(history)
        for plan_id in NAMED_PLAN_IDS:
            rebuilt_plan = result.ledger.plan(plan_id)
            live_plan = result.live_plans.get(plan_id)
            if live_plan is None:
                assert rebuilt_plan is None
                continue
            assert rebuilt_plan is not None
            assert plan_state(rebuilt_plan) == plan_state(live_plan)
            assert type(rebuilt_plan.interval_unit) is IntervalUnit
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
    """Delivering every command again changes no account and no plan."""

    @PROPERTY
    @given(history=histories(), data=st.data())
    def test_redelivering_everything_changes_no_account_or_plan(
        self, history: History, data: st.DataObject
    ) -> None:
        """Each repeat is a redelivery with the recorded answer; only receipts grow."""
        result = run(history)
        versions_before = aggregate_versions(result.ledger)
        log_size = len(stored(result.ledger))
        repeat = History(history.commands, data.draw(cuts_within(len(history.commands))))
        send = Sender(result.ledger)
        send.next_offset = len(history.commands)
        outcomes = [o for batch in repeat.batches() for o in send(*batch)]
        assert aggregate_versions(result.ledger) == versions_before
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
