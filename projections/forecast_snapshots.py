"""The forecast each business day made, stored so its accuracy can be judged later.

A currency's snapshot of day M is the forecast as of 00:00 UTC of M (`forecast_days` over the
rows known then), for the HORIZON_DAYS days from M. It is taken once the currency's events
reach SETTLE_DAYS past M, for every day after the currency's first event; an event applied
later whose business time is at or before a snapshot's time (a lagging partition, a history
applied out of order) makes that snapshot again. So the snapshots depend on the events only,
never on their order: a rebuild reproduces them. Applying events only records from which day
each currency's snapshots are to be made (`forecast_snapshot_pending`); they are made apart
(projections/snapshot_days.py: one per projector batch, the rest when the projector is
idle, and at the end of a rebuild), so recent snapshots may be pending while the projector
catches up. The payment method kinds the forecast groups by are kept here as they changed
(`forecast_default_kinds`, `forecast_attempt_kinds`), so a past day's forecast uses the kinds
in force then. Reads the forecast and subscriptions models' tables, which come before it in
the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from projections.snapshot_days import (
    SETTLE_DAYS,
    first_made_on,
    make_pending,
    mark_pending,
    pending_days,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS forecast_snapshots (
    currency text NOT NULL,
    made_on date NOT NULL,
    day date NOT NULL,
    scheduled_minor bigint NOT NULL,
    expected_minor bigint NOT NULL,
    low_minor bigint NOT NULL,
    high_minor bigint NOT NULL,
    amounts integer NOT NULL,
    PRIMARY KEY (currency, made_on, day)
);
COMMENT ON TABLE forecast_snapshots IS
    'The forecast made at 00:00 UTC of each day for that day and the 89 after, per currency: '
    'a row per day with something scheduled (a day of a snapshot without a row had nothing).';
COMMENT ON COLUMN forecast_snapshots.currency IS 'ISO 4217 code of the amounts.';
COMMENT ON COLUMN forecast_snapshots.made_on IS
    'The day the forecast was made, as of its 00:00 UTC, from what the events had told by then.';
COMMENT ON COLUMN forecast_snapshots.day IS 'The day forecast: made_on to made_on + 89.';
COMMENT ON COLUMN forecast_snapshots.scheduled_minor IS
    'Scheduled inflow of the day: open items due then and invoices the subscriptions will issue, in minor units.';
COMMENT ON COLUMN forecast_snapshots.expected_minor IS
    'Expected inflow: each scheduled amount times its collection probability, rounded half up, in minor units.';
COMMENT ON COLUMN forecast_snapshots.low_minor IS 'Low end of the 95% band, in minor units.';
COMMENT ON COLUMN forecast_snapshots.high_minor IS 'High end of the 95% band, in minor units.';
COMMENT ON COLUMN forecast_snapshots.amounts IS 'Scheduled amounts summed (items and future invoices).';

CREATE TABLE IF NOT EXISTS forecast_snapshot_range (
    currency text PRIMARY KEY,
    first_day date NOT NULL,
    last_day date NOT NULL
);
COMMENT ON TABLE forecast_snapshot_range IS
    'Per currency, the days its events span: snapshots exist for first_day < made_on <= last_day - 7.';
COMMENT ON COLUMN forecast_snapshot_range.currency IS 'ISO 4217 code.';
COMMENT ON COLUMN forecast_snapshot_range.first_day IS 'UTC day of its earliest event.';
COMMENT ON COLUMN forecast_snapshot_range.last_day IS 'UTC day of its latest event.';

CREATE TABLE IF NOT EXISTS forecast_snapshot_pending (
    currency text PRIMARY KEY,
    pending_from date NOT NULL
);
COMMENT ON TABLE forecast_snapshot_pending IS
    'Per currency, the first day whose snapshot events applied have not been made into yet: '
    'the snapshots of pending_from to last_day - 7 are made again when the projector catches up.';
COMMENT ON COLUMN forecast_snapshot_pending.currency IS 'ISO 4217 code.';
COMMENT ON COLUMN forecast_snapshot_pending.pending_from IS
    'The earliest made_on to be made (again); the later ones too.';

CREATE TABLE IF NOT EXISTS forecast_snapshot_accounts (
    account_id text PRIMARY KEY,
    currency text NOT NULL,
    account_version bigint NOT NULL
);
COMMENT ON TABLE forecast_snapshot_accounts IS
    'Each account''s currency, and its last event applied to the snapshots (a republished one changes nothing).';
COMMENT ON COLUMN forecast_snapshot_accounts.account_id IS 'The account (AccountOpened).';
COMMENT ON COLUMN forecast_snapshot_accounts.currency IS 'Its currency (AccountOpened).';
COMMENT ON COLUMN forecast_snapshot_accounts.account_version IS 'The last account event applied.';

CREATE TABLE IF NOT EXISTS forecast_default_kinds (
    account_id text NOT NULL,
    account_version bigint NOT NULL,
    kind text NOT NULL,
    valid_from timestamptz NOT NULL,
    PRIMARY KEY (account_id, account_version)
);
COMMENT ON TABLE forecast_default_kinds IS
    'Every change of an account''s default payment method (DefaultPaymentMethodSet), with the method''s kind.';
COMMENT ON COLUMN forecast_default_kinds.account_id IS 'The account.';
COMMENT ON COLUMN forecast_default_kinds.account_version IS 'The DefaultPaymentMethodSet event.';
COMMENT ON COLUMN forecast_default_kinds.kind IS
    'Kind of the new default (PaymentMethodAdded of that method); none if it is unknown.';
COMMENT ON COLUMN forecast_default_kinds.valid_from IS 'Business time from which it is the default.';

CREATE TABLE IF NOT EXISTS forecast_attempt_kinds (
    account_id text NOT NULL,
    account_version bigint NOT NULL,
    item_id text NOT NULL,
    kind text NOT NULL,
    attempted_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, account_version, item_id)
);
CREATE INDEX IF NOT EXISTS forecast_attempt_kinds_by_item
    ON forecast_attempt_kinds (account_id, item_id, attempted_at);
COMMENT ON TABLE forecast_attempt_kinds IS
    'Every charge attempt of an item (ChargeRequested, ChargeFailed) with its payment method kind.';
COMMENT ON COLUMN forecast_attempt_kinds.account_id IS 'The account.';
COMMENT ON COLUMN forecast_attempt_kinds.account_version IS 'The attempt''s event.';
COMMENT ON COLUMN forecast_attempt_kinds.item_id IS 'The invoice or installment charged.';
COMMENT ON COLUMN forecast_attempt_kinds.kind IS 'Payment method kind of the attempt.';
COMMENT ON COLUMN forecast_attempt_kinds.attempted_at IS 'Business time of the attempt.';
"""

Event = tuple[str, dict[str, Any]]
# The events that change what a forecast reads (forecast_items and _settlements, a subscription
# version, a kind above); any other event only widens the span of days, making no snapshot again.
INPUTS = frozenset(
    {
        "InvoiceIssued",
        "DebtRenegotiated",
        "RenegotiationDefaulted",
        "PaymentReceived",
        "CreditApplied",
        "EarlyPaymentDiscountGranted",
        "InvoiceWrittenOff",
        "ChargeRequested",
        "ChargeFailed",
        "DefaultPaymentMethodSet",
        "Subscribed",
        "PlanChanged",
        "PriceChangeAnnounced",
        "PriceChangeApplied",
        "PriceChangeWithdrawn",
        "SubscriptionPaused",
        "SubscriptionResumed",
        "CancellationScheduled",
        "SubscriptionCancelled",
        "SubscriptionReactivated",
        "DunningFinalAction",
    }
)


class ForecastSnapshots:
    """Stores each day's forecast, made again when an event it did not know of arrives."""

    name = "forecast_snapshots"
    tables: tuple[str, ...] = (
        "forecast_snapshots",
        "forecast_snapshot_range",
        "forecast_snapshot_pending",
        "forecast_snapshot_accounts",
        "forecast_default_kinds",
        "forecast_attempt_kinds",
    )
    schema = SCHEMA
    requires = ("forecast", "subscriptions")  # the models whose tables the forecast reads

    def apply(self, cursor: psycopg.Cursor[Any], event_type: str, record: dict[str, Any]) -> None:
        """Apply one decoded event."""
        self.apply_batch(cursor, [(event_type, record)])

    def apply_batch(self, cursor: psycopg.Cursor[Any], events: Sequence[Event]) -> None:
        """Record the events' kinds and the snapshots they change, to be made by `catch_up`."""
        span: dict[str, tuple[datetime, datetime]] = {}  # currency -> earliest, latest time
        changed: dict[str, datetime] = {}  # currency -> earliest time an input changed
        for event_type, record in events:
            currency = _new_account_event(cursor, event_type, record)
            if currency is None:
                continue
            _record_kind(cursor, event_type, record)
            at = record["occurred_at"]
            since = min(at, record.get("effective_at") or at)
            first, last = span.get(currency, (since, at))
            span[currency] = (min(first, since), max(last, at))
            if event_type in INPUTS:
                changed[currency] = min(changed.get(currency, since), since)
        for currency, (first, last) in sorted(span.items()):
            _widen(cursor, currency, (first, last), changed.get(currency))

    def catch_up(self, cursor: psycopg.Cursor[Any], budget: int | None = None) -> int:
        """Make pending snapshots, oldest first, at most `budget` days (all if None); answer
        how many were made."""
        return make_pending(cursor, budget)

    def pending(self, cursor: psycopg.Cursor[Any]) -> int:
        """How many snapshot days `catch_up` has left to make."""
        return pending_days(cursor)


def _new_account_event(
    cursor: psycopg.Cursor[Any], event_type: str, record: dict[str, Any]
) -> str | None:
    """The currency of an account event not applied before; None for any other event."""
    if "account_id" not in record or "account_version" not in record:
        return None
    if event_type == "AccountOpened":
        row = cursor.execute(
            "INSERT INTO forecast_snapshot_accounts VALUES (%s, %s, %s) ON CONFLICT DO NOTHING "
            "RETURNING currency",
            (record["account_id"], record["currency"], record["account_version"]),
        ).fetchone()
    else:
        row = cursor.execute(
            "UPDATE forecast_snapshot_accounts SET account_version = %s "
            "WHERE account_id = %s AND account_version < %s RETURNING currency",
            (record["account_version"], record["account_id"], record["account_version"]),
        ).fetchone()
    return None if row is None else str(row[0])


def _record_kind(cursor: psycopg.Cursor[Any], event_type: str, record: dict[str, Any]) -> None:
    if event_type == "DefaultPaymentMethodSet":
        cursor.execute(
            "INSERT INTO forecast_default_kinds SELECT %s, %s, COALESCE((SELECT kind FROM "
            "forecast_payment_methods WHERE account_id = %s AND payment_method_id = %s), 'none'), "
            "%s ON CONFLICT DO NOTHING",
            (
                record["account_id"],
                record["account_version"],
                record["account_id"],
                record["payment_method_id"],
                record["occurred_at"],
            ),
        )
    elif event_type in ("ChargeRequested", "ChargeFailed"):
        cursor.execute(
            "INSERT INTO forecast_attempt_kinds VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                record["account_id"],
                record["account_version"],
                record["invoice_id"],
                record["payment_method_kind"],
                record["occurred_at"],
            ),
        )


def _day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _widen(
    cursor: psycopg.Cursor[Any],
    currency: str,
    span: tuple[datetime, datetime],
    changed: datetime | None,
) -> None:
    """Widen the currency's span of days to the events'; mark pending the snapshots that are
    new, and every one whose time is at or after `changed` (the earliest input changed)."""
    row = cursor.execute(
        "SELECT first_day, last_day FROM forecast_snapshot_range WHERE currency = %s", (currency,)
    ).fetchone()
    if row is None:
        first, last = _day(span[0]), _day(span[1])
        dirty = [first + timedelta(days=1)]  # none made yet
    else:
        first, last = min(row[0], _day(span[0])), max(row[1], _day(span[1]))
        dirty = _new_days(tuple(row), (first, last))
    if changed is not None:
        dirty.append(first_made_on(changed))
    if row is None or (first, last) != tuple(row):
        cursor.execute(
            "INSERT INTO forecast_snapshot_range VALUES (%s, %s, %s) ON CONFLICT (currency) "
            "DO UPDATE SET first_day = EXCLUDED.first_day, last_day = EXCLUDED.last_day",
            (currency, first, last),
        )
    pending_from = max(min(dirty, default=date.max), first + timedelta(days=1))
    if pending_from <= last - timedelta(days=SETTLE_DAYS):
        mark_pending(cursor, currency, pending_from)


def _new_days(before: tuple[date, date], after: tuple[date, date]) -> list[date]:
    """The first day of each run of snapshot days `after`'s span has and `before`'s had not:
    those after a new first day, and those past the old end."""
    new = []
    if after[0] < before[0]:
        new.append(after[0] + timedelta(days=1))
    if after[1] > before[1]:
        new.append(before[1] - timedelta(days=SETTLE_DAYS - 1))
    return new
