"""What the clock does to an account: AdvanceClock invoices each cycle begun, completes due
cancellations, marks overdue invoices, defaults renegotiation plans and emits the dunning due.

`Clock` is a part of the Account aggregate (a mixin); the events it causes are those of the
parts it calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ledger.account_state import AccountPart, Subscription
from ledger.errors import RuleViolation

MAX_CYCLES_PER_ADVANCE = 400  # bounds one command's work: about 33 years of monthly invoices


class Clock(AccountPart):
    """AdvanceClock: everything that falls due as business time passes."""

    if TYPE_CHECKING:  # provided by Account
        pending_prices: dict[str, tuple[int, datetime]]

        def _complete_cancellations(self, command_id: str, issued_at: datetime) -> None: ...

        def _mark_overdue(self, command_id: str, issued_at: datetime) -> None: ...

        def _dunning_tick(self, command_id: str, now: datetime) -> None: ...

        def _renegotiation_tick(self, command_id: str, now: datetime) -> None: ...

    def advance_clock(self, *, command_id: str, issued_at: datetime) -> None:
        """Do what has fallen due by `issued_at` and was not done yet: invoice each cycle begun,
        complete due cancellations, mark overdue invoices, default renegotiation plans with a
        missed installment, emit the dunning steps due.

        The account keeps no clock: repeating a time adds nothing already done.
        """
        begun = {
            sub.subscription_id: _cycles_begun(sub, issued_at)
            for sub in self.subscriptions.values()
        }
        due_cycles = sum(begun.values())
        if due_cycles > MAX_CYCLES_PER_ADVANCE:
            raise TooManyCycles(
                f"advancing account {self.account_id!r} to {issued_at.isoformat()} would issue "
                f"{due_cycles} invoices at once (at most {MAX_CYCLES_PER_ADVANCE}); advance the "
                "clock in smaller steps",
                field="issued_at",
            )
        self._check_invoicing(self._most_to_invoice(begun), field="issued_at")
        for sub in self.subscriptions.values():
            for _ in range(begun[sub.subscription_id]):
                self._issue_invoice(command_id, issued_at, sub)
        self._complete_cancellations(command_id, issued_at)
        self._mark_overdue(command_id, issued_at)
        self._renegotiation_tick(command_id, issued_at)  # before dunning sees the due dates
        self._dunning_tick(command_id, issued_at)

    def _most_to_invoice(self, begun: dict[str, int]) -> int:
        """The most the cycles `begun` can invoice: each at the higher of the subscription's
        price and a price change announced for it."""
        return sum(
            count * max(self.subscriptions[sub_id].terms.price_minor, self._pending_price(sub_id))
            for sub_id, count in begun.items()
        )

    def _pending_price(self, subscription_id: str) -> int:
        pending = self.pending_prices.get(subscription_id)
        return 0 if pending is None else pending[0]


def _cycles_begun(sub: Subscription, now: datetime) -> int:
    """How many of the subscription's cycles not yet invoiced have begun by `now`.

    A paused or cancelled subscription has none; one cancelled at a period's end has none
    that start at or after that end.
    """
    if not sub.invoices_itself:
        return 0
    count = 0
    while count <= MAX_CYCLES_PER_ADVANCE:
        start = sub.period(sub.cycles_invoiced + count)[0]
        if start > now or (sub.cancel_at is not None and start >= sub.cancel_at):
            break
        count += 1
    return count


class TooManyCycles(RuleViolation):
    """Advancing the clock that far would issue too many invoices in one command."""

    code = "too_many_cycles"
