"""Payment methods on file: the ways an account can be charged, and which one is the default.

`PaymentMethods` is a part of the Account aggregate (a mixin); its events are account events.
Nothing here moves money. The first method added becomes the default; removing the default
makes the most recently added remaining method the default, so an account has a default
exactly when it has a payment method.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from ledger.account_state import AccountEvent, AccountPart
from ledger.errors import RuleViolation, check_text
from ledger.invoice_rules import check_method_kind

MAX_PAYMENT_METHOD_ID_LENGTH = 128
MAX_LABEL_LENGTH = 128


@dataclass(frozen=True)
class PaymentMethod:
    """A way to charge the account, as the sender described it (the ledger holds no secrets)."""

    payment_method_id: str
    kind: str
    label: str | None
    expires_on: date | None


class PaymentMethods(AccountPart):
    """Adding and removing payment methods, and choosing the default one."""

    if TYPE_CHECKING:  # provided by Account
        payment_methods: dict[str, PaymentMethod]
        default_payment_method_id: str | None

    class PaymentMethodAdded(AccountEvent):
        """A payment method was put on file."""

        payment_method_id: str
        kind: str
        label: str | None
        expires_on: date | None

        def apply(self, aggregate: Any) -> None:
            aggregate.payment_methods[self.payment_method_id] = PaymentMethod(
                self.payment_method_id, self.kind, self.label, self.expires_on
            )

    class PaymentMethodRemoved(AccountEvent):
        """A payment method was taken off file; if it was the default, there is none until set."""

        payment_method_id: str

        def apply(self, aggregate: Any) -> None:
            del aggregate.payment_methods[self.payment_method_id]
            if aggregate.default_payment_method_id == self.payment_method_id:
                aggregate.default_payment_method_id = None

    class DefaultPaymentMethodSet(AccountEvent):
        """The account is charged with this payment method from now on."""

        payment_method_id: str
        previous_payment_method_id: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.default_payment_method_id = self.payment_method_id

    def add_payment_method(
        self,
        *,
        command_id: str,
        issued_at: datetime,
        payment_method_id: str,
        kind: str,
        label: str | None,
        expires_on: date | None,
        make_default: bool,
    ) -> None:
        """Put a payment method on file; it becomes the default if asked or if it is the first."""
        check_text("payment_method_id", payment_method_id, MAX_PAYMENT_METHOD_ID_LENGTH)
        if payment_method_id in self.payment_methods:
            raise DuplicatePaymentMethod(
                f"payment method {payment_method_id!r} is already on account {self.account_id!r}",
                field="payment_method_id",
            )
        check_method_kind(kind, field="kind")
        if label is not None:
            check_text("label", label, MAX_LABEL_LENGTH)
        previous = self.default_payment_method_id
        self._record(
            self.PaymentMethodAdded,
            issued_at,
            command_id,
            payment_method_id=payment_method_id,
            kind=kind,
            label=label,
            expires_on=expires_on,
        )
        if make_default or previous is None:
            self._set_default(command_id, issued_at, payment_method_id, previous)

    def remove_payment_method(
        self, *, command_id: str, issued_at: datetime, payment_method_id: str
    ) -> None:
        """Take a payment method off file; a removed default passes to the newest one left."""
        self._payment_method(payment_method_id)
        was_default = payment_method_id == self.default_payment_method_id
        self._record(
            self.PaymentMethodRemoved,
            issued_at,
            command_id,
            payment_method_id=payment_method_id,
        )
        if was_default and self.payment_methods:
            newest = next(reversed(self.payment_methods))  # dicts keep the order of adding
            self._set_default(command_id, issued_at, newest, payment_method_id)

    def set_default_payment_method(
        self, *, command_id: str, issued_at: datetime, payment_method_id: str
    ) -> None:
        """Charge the account with this payment method from now on; the default already is."""
        self._payment_method(payment_method_id)
        previous = self.default_payment_method_id
        if payment_method_id != previous:
            self._set_default(command_id, issued_at, payment_method_id, previous)

    def _set_default(
        self, command_id: str, issued_at: datetime, payment_method_id: str, previous: str | None
    ) -> None:
        self._record(
            self.DefaultPaymentMethodSet,
            issued_at,
            command_id,
            payment_method_id=payment_method_id,
            previous_payment_method_id=previous,
        )

    def _payment_method(self, payment_method_id: str) -> PaymentMethod:
        method = self.payment_methods.get(payment_method_id)
        if method is None:
            raise UnknownPaymentMethod(
                f"payment method {payment_method_id!r} is not on account {self.account_id!r}",
                field="payment_method_id",
            )
        return method


class DuplicatePaymentMethod(RuleViolation):
    """The payment method id is already on file for the account."""

    code = "duplicate_payment_method"


class UnknownPaymentMethod(RuleViolation):
    """The command names a payment method the account does not have on file."""

    code = "unknown_payment_method"
