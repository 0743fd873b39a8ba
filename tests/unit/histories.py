"""Random command histories for the Account aggregate, for the property tests.

Most late commands aim at one account, opened first in EUR, and its subscription sub-6, and
come after what they need (an invoice, a payment method, credit); a minority break one rule
so that rejections stay exercised too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any, TypeVar
from uuid import NAMESPACE_URL, uuid5

from hypothesis import strategies as st

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
from ledger.account import CancellationPolicy, Contact, Terms
from ledger.calendar import IntervalUnit
from ledger.dunning import DunningPolicy, FinalAction
from ledger.plan_terms import TermsAsked
from ledger.receivables import ChargeFailureReason

T = TypeVar("T")


def usually(valid: st.SearchStrategy[T], invalid: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """`valid` about six times in seven, else `invalid`: most commands pass, some break a rule.

    (st.one_of would not do: it draws each distinct branch equally often, however repeated.)
    """
    return st.integers(min_value=0, max_value=6).flatmap(lambda n: invalid if n == 6 else valid)


def usually_one_of(valid: Sequence[T], invalid: Sequence[T]) -> st.SearchStrategy[T]:
    """One of `valid` about six times in seven, else one of `invalid`."""
    return usually(st.sampled_from(valid), st.sampled_from(invalid))


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
    terms=st.one_of(valid_terms, valid_terms, valid_terms.flatmap(broken)).map(TermsAsked.custom),
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
    amount_minor=usually(
        st.one_of(
            st.integers(min_value=1, max_value=5_000),
            st.integers(min_value=1, max_value=50_000),
            st.integers(min_value=1, max_value=300_000),
        ),
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

    Most accounts are also opened early on, so that many subscriptions find their account; the
    one of the late subscription sub-6 is opened first of all, in EUR, so that no random opening
    in another currency takes its place. Clock ticks come in the order of their times, which
    mostly go forward. Late commands come last, aimed mostly at sub-6 and its invoices.
    """
    commands = draw(st.lists(subscribes, min_size=1, max_size=25))
    commands += draw(st.lists(open_accounts, max_size=5))
    commands += draw(st.lists(record_payments, max_size=12))
    commands += draw(st.lists(fail_charges, max_size=2))
    commands = list(draw(st.permutations(commands)))
    opened_count = draw(st.sampled_from((1, 2, 3, 3, 3)))
    opened = draw(st.permutations(ACCOUNT_IDS))[:opened_count]
    for account_id in opened[1:]:
        opening = valid_opening(draw(open_accounts), account_id)
        commands.insert(draw(st.integers(min_value=0, max_value=len(commands) // 4)), opening)
    commands.insert(0, valid_opening(draw(open_accounts), opened[0]))
    clock = insert_ticks(commands, draw(st.lists(ticks, max_size=8)), draw)
    late_subscription = Subscribe(
        command_id=None,  # type: ignore[arg-type]  # a fresh id is given below
        account_id=opened[0],
        issued_at=clock,
        subscription_id="sub-6",
        # Mostly without a trial and dearer than most payments and the credit they may leave, so
        # that its first invoice is there, still open, for late commands to charge or credit.
        terms=TermsAsked.custom(
            dataclasses.replace(
                draw(valid_terms),
                price_minor=draw(st.integers(min_value=300_000, max_value=1_000_000)),
                trial_days=draw(st.sampled_from((0, 0, 0, 0, 0, 0, 0, 14))),
            )
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
    *("pay", "pay", "fail", "fail", "tick", "tick", "renegotiate", "renegotiate"),
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
    # A refund needs credit: a payment larger than anything owed comes first.
    "refund": ("overpay", "refund"),
}
PAYMENT_METHOD_IDS = ("pm-1", "pm-2", "pm-3")
# Payment method ids on file most of the time, sometimes none or one never added.
payment_method_ids = usually_one_of(PAYMENT_METHOD_IDS, ("pm-9", ""))
reasons = usually_one_of(("goodwill", "uncollectible"), ("",))
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
    aimed at three times in four. The commands of one step (an AddPaymentMethod and the
    RemovePaymentMethod after it, say) mostly name the same payment method.
    """
    late: list[Command] = []
    for kind in draw(st.lists(st.sampled_from(LATE_KINDS), min_size=2, max_size=16)):
        target = draw(usually(st.just(targets[-1]), st.sampled_from(targets)))
        method_id = draw(st.sampled_from(PAYMENT_METHOD_IDS))
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
            late += [
                draw(account_command(each, target, clock, method_id)) for each in FOLLOWED_BY[kind]
            ]
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
    """The target's first invoice mostly, else a later one, an installment or an unknown one."""
    first = f"{target.subscription_id}/1"
    others = (f"{target.subscription_id}/2", f"{target.subscription_id}/3")
    return usually(
        st.just(first), st.sampled_from((*others, "plan-1/1", "plan-1/2", "plan-2/1", "sub-9/1"))
    )


@st.composite
def account_command(
    draw: st.DrawFn, kind: str, target: Subscribe, clock: datetime, method_id: str
) -> Command:
    """A command of `kind` (one of LATE_KINDS but pay, fail and tick, or an overpayment) for
    the target's account, mostly at the clock, naming `method_id` if it names a payment method.
    """
    head = {
        "command_id": draw(command_ids),
        "account_id": target.account_id,
        # At the clock mostly, inside the target's current period; sometimes any time at all.
        "issued_at": clock if kind == "renegotiate" else draw(usually(st.just(clock), issued_ats)),
    }
    subscription_id = draw(usually_one_of((target.subscription_id,), ("sub-1", "sub-9", "")))
    invoice_id = draw(invoice_ids_of(target))
    if kind == "overpay":
        return draw(overpayments(head))
    if kind in SUBSCRIPTION_COMMANDS:
        return SUBSCRIPTION_COMMANDS[kind](**head, subscription_id=subscription_id)
    if kind == "change_plan":
        return ChangePlan(
            **head,
            subscription_id=subscription_id,
            plan_id=draw(usually_one_of(("platinum", "silver"), ("",))),
            price_minor=draw(usually(st.integers(0, 100_000), st.just(-1))),
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
    method_ids = usually(st.just(method_id), payment_method_ids)
    return draw(ADJUSTMENT_COMMANDS[kind](head, invoice_id, method_ids))


SUBSCRIPTION_COMMANDS: dict[str, type[Command]] = {
    "pause": PauseSubscription,
    "resume": ResumeSubscription,
    "cancel": CancelSubscription,
    "reactivate": ReactivateSubscription,
}


def renegotiations(head: dict[str, Any], target: Subscribe) -> st.SearchStrategy[Renegotiate]:
    """A renegotiation of the target's first invoice or first two, at the clock."""
    first, second = f"{target.subscription_id}/1", f"{target.subscription_id}/2"
    invoices = usually_one_of(((first,), (first,), (first, second)), ((second,), ("sub-9/1",)))
    return st.builds(
        Renegotiate,
        **just_head(head),
        plan_id=usually_one_of(("plan-1", "plan-2"), (target.subscription_id,)),
        invoice_ids=invoices,
        installments=st.integers(min_value=1, max_value=6),
        first_due_at=st.integers(min_value=0, max_value=60).map(
            lambda days: head["issued_at"] + timedelta(days=days)
        ),
        interval_days=usually_one_of((1, 7, 30, 31), (0,)),
        interest_minor=st.sampled_from((0, 0, 100, 1_000)),
        forgiven_minor=st.sampled_from((0, 0, 1, 100)),
    )


def overpayments(head: dict[str, Any]) -> st.SearchStrategy[RecordPayment]:
    """A payment on no invoice in particular, more than the account is likely to owe."""
    return st.builds(
        RecordPayment,
        **just_head(head),
        payment_id=st.sampled_from(tuple(f"overpay-{n}" for n in range(1, 4))),
        amount_minor=st.integers(min_value=2_000_000, max_value=5_000_000),
        currency=st.just("EUR"),
        payment_method_kind=st.just("bank_transfer"),
        invoice_id=st.none(),
    )


def just_head(head: dict[str, Any]) -> dict[str, st.SearchStrategy[Any]]:
    """The command id, account id and time of a command, as strategies for st.builds."""
    return {name: st.just(value) for name, value in head.items()}


ADJUSTMENT_COMMANDS: dict[str, Any] = {
    "dunning_policy": lambda head, _, __: st.builds(
        SetDunningPolicy, **just_head(head), policy=dunning_policies
    ),
    "hardship": lambda head, _, __: st.builds(
        ReportHardship,
        **just_head(head),
        reason=usually_one_of(("job loss", "illness"), ("",)),
        days=usually_one_of((1, 14, 30, 180), (0, 181)),
    ),
    "add_method": lambda head, _, method_ids: st.builds(
        AddPaymentMethod,
        **just_head(head),
        payment_method_id=method_ids,
        kind=usually_one_of(("credit_card", "debit_card"), ("Credit Card",)),
        label=st.sampled_from((None, "Visa 4242")),
        expires_on=st.sampled_from((None, date(2027, 12, 31))),
        make_default=st.booleans(),
    ),
    "remove_method": lambda head, _, method_ids: st.builds(
        RemovePaymentMethod, **just_head(head), payment_method_id=method_ids
    ),
    "default_method": lambda head, _, method_ids: st.builds(
        SetDefaultPaymentMethod, **just_head(head), payment_method_id=method_ids
    ),
    "feedback": lambda head, _, __: st.builds(
        RecordFeedback,
        **just_head(head),
        feedback_id=usually_one_of(("fb-1", "fb-2", "fb-3"), ("",)),
        score=usually(st.integers(min_value=0, max_value=10), st.sampled_from((-1, 11))),
        comment=st.sampled_from(("", "too expensive")),
        topic=usually_one_of((None, "billing"), ("",)),
    ),
    "charge": lambda head, invoice_id, method_ids: st.builds(
        Charge,
        **just_head(head),
        invoice_id=st.just(invoice_id),
        payment_method_id=st.one_of(st.none(), method_ids),
    ),
    "credit_note": lambda head, invoice_id, _: st.builds(
        IssueCreditNote,
        **just_head(head),
        credit_note_id=usually_one_of(("cn-1", "cn-2", "cn-3", "cn-4"), ("",)),
        invoice_id=st.just(invoice_id),
        # Mostly within what a first invoice (at least 1.00) leaves, sometimes more.
        amount_minor=usually(
            st.integers(min_value=1, max_value=100),
            st.one_of(st.integers(min_value=1, max_value=100_000), st.integers(-10, 0)),
        ),
        reason=reasons,
    ),
    "refund": lambda head, _, __: st.builds(
        RefundCredit,
        **just_head(head),
        refund_id=usually_one_of(("rf-1", "rf-2", "rf-3"), ("",)),
        # Mostly within the credit an overpayment leaves, sometimes more than any.
        amount_minor=usually(
            st.integers(min_value=1, max_value=5_000),
            st.one_of(st.integers(min_value=1, max_value=1_000_000), st.integers(-10, 0)),
        ),
        payment_method_kind=usually_one_of(("credit_card", "bank_transfer"), ("Credit Card",)),
    ),
    "write_off": lambda head, invoice_id, _: st.builds(
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
