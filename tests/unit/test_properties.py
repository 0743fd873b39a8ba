"""Invariants of the ledger over random command histories, processed in random batch splits.

Postings balance, receivable is what the invoices leave outstanding and customer credit what
the account holds, replay rebuilds what the commands built, processing is deterministic, and
redelivery changes nothing.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import hypothesis
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.handlers import Outcome
from commands.messages import (
    AddPaymentMethod,
    AdvanceClock,
    AnnouncePriceChange,
    CancelSubscription,
    ChangePlan,
    Charge,
    Command,
    FailCharge,
    IssueCreditNote,
    OpenAccount,
    PauseSubscription,
    ReactivateSubscription,
    RecordFeedback,
    RecordPayment,
    RefundCredit,
    RemovePaymentMethod,
    Renegotiate,
    ReportHardship,
    ResumeSubscription,
    SetDefaultPaymentMethod,
    SetDunningPolicy,
    Subscribe,
    WriteOff,
)
from ledger.account import Account, CancellationPolicy, Contact, Terms, account_uuid
from ledger.application import BillingLedger, event_id
from ledger.calendar import IntervalUnit
from ledger.dunning import DunningPolicy, FinalAction
from ledger.postings import LedgerAccount, Side, balance_of
from ledger.receivables import ChargeFailureReason
from tests.unit.builders import Sender, digest_of, in_memory_ledger

PROPERTY = settings(max_examples=100, deadline=None)
ACCOUNT_IDS = ("acc-a", "acc-b", "acc-c")
# A few command ids shared between commands, so that some are reused for other content.
SHARED_COMMAND_IDS = (
    *(str(uuid5(NAMESPACE_URL, f"billing-ledger:test-command:{n}")) for n in range(3)),
    "not-a-uuid",
)
FIRST_ISSUED_AT = datetime(2024, 1, 1, tzinfo=UTC)

# None stands for a fresh command id, given once the history is drawn (see histories()).
command_ids = st.sampled_from((*[None] * 8, *SHARED_COMMAND_IDS))
account_ids = st.sampled_from(ACCOUNT_IDS)
issued_ats = st.integers(min_value=0, max_value=2 * 366 * 24 * 60).map(
    lambda minutes: FIRST_ISSUED_AT + timedelta(minutes=minutes)
)
valid_terms = st.builds(
    Terms,
    plan_id=st.sampled_from(("gold", "silver")),
    price_minor=st.integers(min_value=0, max_value=100_000),
    currency=st.just("EUR"),
    interval_unit=st.sampled_from(IntervalUnit),
    interval_count=st.integers(min_value=1, max_value=12),
    trial_days=st.sampled_from((0, 0, 0, 14, 30)),
    days_until_due=st.integers(min_value=0, max_value=30),
    cancellation_policy=st.sampled_from(CancellationPolicy),
    # Mostly no early-payment incentive; sometimes one, up to the largest share allowed.
    early_payment_discount_bp=st.sampled_from((0, 0, 0, 200, 500, 5_000)),
    early_payment_days=st.integers(min_value=0, max_value=30),
)


def broken(terms: Terms) -> st.SearchStrategy[Terms]:
    """The terms with one rule broken."""
    return st.sampled_from(
        [
            dataclasses.replace(terms, plan_id=""),
            dataclasses.replace(terms, price_minor=-terms.price_minor - 1),
            dataclasses.replace(terms, currency="JPY"),
            dataclasses.replace(terms, currency="XXX"),
            dataclasses.replace(terms, interval_count=0),
            dataclasses.replace(terms, trial_days=731),
            dataclasses.replace(terms, days_until_due=366),
            dataclasses.replace(terms, early_payment_discount_bp=5_001),
            dataclasses.replace(terms, early_payment_days=366),
        ]
    )


open_accounts = st.builds(
    OpenAccount,
    command_id=command_ids,
    account_id=account_ids,
    issued_at=issued_ats,
    currency=st.sampled_from(("EUR", "EUR", "EUR", "JPY", "XXX")),
    customer_reference=st.sampled_from(("customer-1", "customer-2", "")),
    contacts=st.sampled_from(((), (Contact("email", "billing@example.com"),))),
)
subscribes = st.builds(
    Subscribe,
    command_id=command_ids,
    account_id=account_ids,
    issued_at=issued_ats,
    subscription_id=st.sampled_from(("sub-1", "sub-2", "sub-3", "sub-4", "sub-5", "")),
    terms=st.one_of(valid_terms, valid_terms, valid_terms.flatmap(broken)),
)
# Invoice ids the histories' subscriptions issue (sub-1 to sub-5), and one they never do.
named_invoice_ids = st.sampled_from(
    ("sub-1/1", "sub-2/1", "sub-3/1", "sub-4/1", "sub-1/2", "sub-2/2", "sub-3/3", "sub-9/1")
)
record_payments = st.builds(
    RecordPayment,
    command_id=command_ids,
    account_id=account_ids,
    issued_at=issued_ats,
    payment_id=st.sampled_from((*(f"pay-{n}" for n in range(1, 13)), "")),
    # Small payments settle parts of invoices, large ones overpay into credit.
    amount_minor=st.one_of(
        st.integers(min_value=1, max_value=5_000),
        st.integers(min_value=1, max_value=50_000),
        st.integers(min_value=1, max_value=300_000),
        st.integers(min_value=-100, max_value=0),
    ),
    currency=st.sampled_from(("EUR",) * 8 + ("USD", "XXX")),
    payment_method_kind=st.sampled_from(("credit_card",) * 4 + ("bank_transfer", "Credit Card")),
    invoice_id=st.one_of(st.none(), st.none(), named_invoice_ids),
)
fail_charges = st.builds(
    FailCharge,
    command_id=command_ids,
    account_id=account_ids,
    issued_at=issued_ats,
    invoice_id=named_invoice_ids,
    payment_method_kind=st.sampled_from(("credit_card", "debit_card", "Debit Card")),
    reason=st.sampled_from(ChargeFailureReason),
)
# How far each tick moves the clock, in days: mostly on, by up to a year, sometimes back.
clock_steps = st.sampled_from(
    (0, 1, 10, 14, 15, 29, 30, 31, 45, 61, 92, 122, 200, 366, -1, -15, -45)
).map(lambda days: timedelta(days=days))
ticks = st.tuples(command_ids, account_ids, clock_steps)


@dataclass(frozen=True)
class History:
    """A sequence of command deliveries and where it is cut into batches."""

    commands: tuple[Command, ...]
    cuts: tuple[int, ...]

    def batches(self) -> list[tuple[Command, ...]]:
        """The commands, batch by batch."""
        edges = [0, *self.cuts, len(self.commands)]
        return [self.commands[start:end] for start, end in pairwise(edges)]

    def in_one_batch(self) -> History:
        """The same deliveries, all in one batch."""
        return History(self.commands, ())


@st.composite
def histories(draw: st.DrawFn) -> History:
    """Commands, some delivered more than once, cut into batches at random.

    Most accounts are also opened early on, so that many subscriptions find their account.
    Clock ticks come in the order of their times, which mostly go forward. Some payments,
    failed charges and ticks come last, aimed at the accounts and invoices of subscriptions.
    """
    commands = draw(st.lists(subscribes, min_size=1, max_size=25))
    commands += draw(st.lists(open_accounts, max_size=5))
    commands += draw(st.lists(record_payments, max_size=12))
    commands += draw(st.lists(fail_charges, max_size=4))
    commands = list(draw(st.permutations(commands)))
    opened_count = draw(st.sampled_from((1, 2, 3, 3, 3)))
    opened = draw(st.permutations(ACCOUNT_IDS))[:opened_count]
    for account_id in opened:
        opening = valid_opening(draw(open_accounts), account_id)
        commands.insert(draw(st.integers(min_value=0, max_value=len(commands) // 4)), opening)
    clock = insert_ticks(commands, draw(st.lists(ticks, max_size=8)), draw)
    late_subscription = Subscribe(
        command_id=None,  # type: ignore[arg-type]  # a fresh id is given below
        account_id=draw(st.sampled_from(opened)),
        issued_at=clock,
        subscription_id="sub-6",
        # Mostly without a trial, so that its first invoice exists for the late commands.
        terms=dataclasses.replace(
            draw(valid_terms), trial_days=draw(st.sampled_from((0, 0, 0, 14)))
        ),
    )
    targets = [command for command in commands if isinstance(command, Subscribe)]
    commands += [late_subscription, *draw(late_commands([*targets, late_subscription], clock))]
    commands = [
        dataclasses.replace(command, command_id=command.command_id or fresh_command_id(index))
        for index, command in enumerate(commands)
    ]
    deliveries = list(commands)
    for _ in range(draw(st.integers(min_value=0, max_value=5))):
        position = draw(st.integers(min_value=0, max_value=len(deliveries)))
        deliveries.insert(position, draw(st.sampled_from(commands)))
    return History(tuple(deliveries), draw(cuts_within(len(deliveries))))


def insert_ticks(
    commands: list[Command], drawn: list[tuple[str | None, str, timedelta]], draw: st.DrawFn
) -> datetime:
    """Put one AdvanceClock per drawn tick into `commands`, in order, at random places.

    Answers the time of the last tick.
    """
    places = st.integers(min_value=0, max_value=len(commands))
    positions = sorted(draw(st.lists(places, min_size=len(drawn), max_size=len(drawn))))
    clock = FIRST_ISSUED_AT
    for inserted, ((command_id, account_id, step), position) in enumerate(
        zip(drawn, positions, strict=True)
    ):
        clock += step
        tick = AdvanceClock(command_id=command_id, account_id=account_id, issued_at=clock)
        commands.insert(position + inserted, tick)
    return clock


# The kinds of late command, weighted: money in and out most often, then the lifecycle.
LATE_KINDS = (
    *("pay", "pay", "fail", "tick", "tick", "renegotiate"),
    *("change_plan", "pause", "resume", "cancel", "cancel", "reactivate", "announce_price"),
    *("dunning_policy", "hardship", "add_method", "add_method", "remove_method"),
    *("default_method", "feedback", "charge", "credit_note", "refund", "write_off"),
)
# Commands that need another first come in pairs: a resume after a pause, and so on.
FOLLOWED_BY = {kind: (kind,) for kind in LATE_KINDS} | {
    "resume": ("pause", "resume"),
    "reactivate": ("cancel", "reactivate"),
    "remove_method": ("add_method", "remove_method"),
    "default_method": ("add_method", "add_method", "default_method"),
    "charge": ("add_method", "charge"),
}
PAYMENT_METHOD_IDS = ("pm-1", "pm-2", "pm-3")
# Payment method ids on file most of the time, sometimes none or one never added.
payment_method_ids = st.sampled_from((*PAYMENT_METHOD_IDS, *PAYMENT_METHOD_IDS, "pm-9", ""))
reasons = st.sampled_from(("goodwill", "goodwill", "uncollectible", ""))
schedules = st.lists(st.integers(min_value=1, max_value=30), max_size=3, unique=True).map(
    lambda days: tuple(sorted(days))
)
dunning_policies = st.one_of(
    st.just(DunningPolicy()),
    st.builds(
        DunningPolicy,
        reminder_days_before_due=schedules,
        reminder_days_after_due=schedules,
        retry_days_after_failure=schedules,
        grace_days=st.integers(min_value=0, max_value=60),
        final_action=st.sampled_from(FinalAction),
    ),
)


@st.composite
def late_commands(draw: st.DrawFn, targets: list[Subscribe], clock: datetime) -> list[Command]:
    """Commands for the accounts of the `targets`, after `clock`, when invoices may exist.

    Payments, failures, charges, credit notes and write-offs name the targets' first invoices
    (or installments of renegotiation plans) most of the time; lifecycle commands name the
    targets' subscriptions; renegotiations come at the clock, after ticks that may have made
    invoices overdue. The last target, a subscription made at `clock` on an open account, is
    aimed at more often than the others.
    """
    late: list[Command] = []
    for kind in draw(st.lists(st.sampled_from(LATE_KINDS), min_size=2, max_size=16)):
        target = draw(st.sampled_from((*[targets[-1]] * 4, *targets)))
        if kind in ("tick", "renegotiate"):
            # A renegotiation follows a tick past the due date of the invoices it names.
            step = draw(clock_steps if kind == "tick" else st.integers(min_value=31, max_value=92))
            clock += timedelta(days=step) if isinstance(step, int) else step
            late.append(
                AdvanceClock(
                    command_id=draw(command_ids), account_id=target.account_id, issued_at=clock
                )
            )
        if kind in ("pay", "fail"):
            late.append(
                aimed(draw(record_payments if kind == "pay" else fail_charges), target, draw)
            )
        elif kind != "tick":
            late += [draw(account_command(each, target, clock)) for each in FOLLOWED_BY[kind]]
    return late


def aimed(
    command: RecordPayment | FailCharge, target: Subscribe, draw: st.DrawFn
) -> RecordPayment | FailCharge:
    """`command` sent to the target's account, naming one of its first invoices if any."""
    invoice_id = command.invoice_id
    if invoice_id is not None:
        invoice_id = draw(invoice_ids_of(target))
    return dataclasses.replace(command, account_id=target.account_id, invoice_id=invoice_id)


def invoice_ids_of(target: Subscribe) -> st.SearchStrategy[str]:
    """One of the target's first invoices mostly, else an installment or an unknown invoice."""
    return st.sampled_from(
        (
            *(f"{target.subscription_id}/{cycle}" for cycle in (1, 1, 1, 1, 2, 2, 3)),
            "plan-1/1",
            "plan-1/2",
            "plan-2/1",
            "sub-9/1",
        )
    )


@st.composite
def account_command(draw: st.DrawFn, kind: str, target: Subscribe, clock: datetime) -> Command:
    """A command of `kind` (one of LATE_KINDS but pay, fail and tick) for the target's account."""
    head = {
        "command_id": draw(command_ids),
        "account_id": target.account_id,
        "issued_at": clock
        if kind == "renegotiate"
        else draw(st.one_of(issued_ats, st.just(clock))),
    }
    subscription_id = draw(st.sampled_from((target.subscription_id,) * 6 + ("sub-1", "sub-9", "")))
    invoice_id = draw(invoice_ids_of(target))
    if kind in SUBSCRIPTION_COMMANDS:
        return SUBSCRIPTION_COMMANDS[kind](**head, subscription_id=subscription_id)
    if kind == "change_plan":
        return ChangePlan(
            **head,
            subscription_id=subscription_id,
            plan_id=draw(st.sampled_from(("platinum", "silver", ""))),
            price_minor=draw(st.integers(min_value=-1, max_value=100_000)),
        )
    if kind == "announce_price":
        notice = timedelta(days=draw(st.sampled_from((30, 31, 45, 90, 29, 0))))
        return AnnouncePriceChange(
            **head,
            subscription_id=subscription_id,
            new_price_minor=draw(st.integers(min_value=-1, max_value=100_000)),
            effective_from=head["issued_at"] + notice,
        )
    if kind == "renegotiate":
        return draw(renegotiations(head, target))
    return draw(ADJUSTMENT_COMMANDS[kind](head, invoice_id))


SUBSCRIPTION_COMMANDS: dict[str, type[Command]] = {
    "pause": PauseSubscription,
    "resume": ResumeSubscription,
    "cancel": CancelSubscription,
    "reactivate": ReactivateSubscription,
}


def renegotiations(head: dict[str, Any], target: Subscribe) -> st.SearchStrategy[Renegotiate]:
    """A renegotiation of one or two of the target's first invoices, at the clock."""
    invoices = st.lists(
        st.sampled_from((f"{target.subscription_id}/1", f"{target.subscription_id}/2", "sub-9/1")),
        min_size=1,
        max_size=2,
        unique=True,
    )
    return st.builds(
        Renegotiate,
        **just_head(head),
        plan_id=st.sampled_from(("plan-1", "plan-1", "plan-2", target.subscription_id)),
        invoice_ids=invoices.map(tuple),
        installments=st.integers(min_value=1, max_value=6),
        first_due_at=st.integers(min_value=0, max_value=60).map(
            lambda days: head["issued_at"] + timedelta(days=days)
        ),
        interval_days=st.sampled_from((1, 7, 30, 31, 0)),
        interest_minor=st.sampled_from((0, 0, 100, 1_000)),
        forgiven_minor=st.sampled_from((0, 0, 1, 100)),
    )


def just_head(head: dict[str, Any]) -> dict[str, st.SearchStrategy[Any]]:
    """The command id, account id and time of a command, as strategies for st.builds."""
    return {name: st.just(value) for name, value in head.items()}


ADJUSTMENT_COMMANDS: dict[str, Any] = {
    "dunning_policy": lambda head, _: st.builds(
        SetDunningPolicy, **just_head(head), policy=dunning_policies
    ),
    "hardship": lambda head, _: st.builds(
        ReportHardship,
        **just_head(head),
        reason=st.sampled_from(("job loss", "illness", "")),
        days=st.sampled_from((1, 14, 30, 180, 0, 181)),
    ),
    "add_method": lambda head, _: st.builds(
        AddPaymentMethod,
        **just_head(head),
        payment_method_id=payment_method_ids,
        kind=st.sampled_from(("credit_card", "credit_card", "debit_card", "Credit Card")),
        label=st.sampled_from((None, "Visa 4242")),
        expires_on=st.sampled_from((None, date(2027, 12, 31))),
        make_default=st.booleans(),
    ),
    "remove_method": lambda head, _: st.builds(
        RemovePaymentMethod, **just_head(head), payment_method_id=payment_method_ids
    ),
    "default_method": lambda head, _: st.builds(
        SetDefaultPaymentMethod, **just_head(head), payment_method_id=payment_method_ids
    ),
    "feedback": lambda head, _: st.builds(
        RecordFeedback,
        **just_head(head),
        feedback_id=st.sampled_from(("fb-1", "fb-2", "fb-3", "")),
        score=st.integers(min_value=-1, max_value=11),
        comment=st.sampled_from(("", "too expensive")),
        topic=st.sampled_from((None, "billing", "")),
    ),
    "charge": lambda head, invoice_id: st.builds(
        Charge,
        **just_head(head),
        invoice_id=st.just(invoice_id),
        payment_method_id=st.one_of(st.none(), st.none(), payment_method_ids),
    ),
    "credit_note": lambda head, invoice_id: st.builds(
        IssueCreditNote,
        **just_head(head),
        credit_note_id=st.sampled_from(("cn-1", "cn-2", "cn-3", "cn-4", "")),
        invoice_id=st.just(invoice_id),
        amount_minor=st.one_of(
            st.integers(min_value=1, max_value=2_000),
            st.integers(min_value=1, max_value=100_000),
            st.integers(min_value=-10, max_value=0),
        ),
        reason=reasons,
    ),
    "refund": lambda head, _: st.builds(
        RefundCredit,
        **just_head(head),
        refund_id=st.sampled_from(("rf-1", "rf-2", "rf-3", "")),
        amount_minor=st.one_of(
            st.integers(min_value=1, max_value=5_000),
            st.integers(min_value=1, max_value=300_000),
            st.integers(min_value=-10, max_value=0),
        ),
        payment_method_kind=st.sampled_from(("credit_card", "bank_transfer", "Credit Card")),
    ),
    "write_off": lambda head, invoice_id: st.builds(
        WriteOff, **just_head(head), invoice_id=st.just(invoice_id), reason=reasons
    ),
}


def cuts_within(length: int) -> st.SearchStrategy[tuple[int, ...]]:
    """Where a sequence of `length` deliveries may be cut into batches."""
    inner = st.sets(st.integers(min_value=1, max_value=max(1, length - 1)))
    return inner.map(lambda cuts: tuple(sorted(cut for cut in cuts if cut < length)))


def fresh_command_id(index: int) -> str:
    """The command id of the command drawn at `index`, used by no other command."""
    return str(uuid5(NAMESPACE_URL, f"billing-ledger:test-command:fresh:{index}"))


def valid_opening(command: OpenAccount, account_id: str) -> OpenAccount:
    """`command` made to open `account_id` in EUR, with a fresh command_id."""
    return dataclasses.replace(
        command,
        command_id=None,
        account_id=account_id,
        currency="EUR",
        customer_reference="customer-1",
    )


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
