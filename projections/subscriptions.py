"""The subscriptions read model: every subscription's terms and status as they changed.

One row per subscription and account event that changed it (`subscription_versions`), so the
cash-flow forecast can project the invoices a subscription will issue as of any past time,
and the metrics can read each subscription's MRR at any time. A row is keyed by the account
version of its event: an event republished by the relay (at-least-once) inserts nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from fractions import Fraction
from typing import Any

import psycopg

from projections.batch import Batched, Event, upsert

TABLE = "subscription_versions"
# Every column, with its type, in the table's order.
COLUMNS = {
    "account_id": "text",
    "subscription_id": "text",
    "account_version": "bigint",
    "valid_from": "timestamptz",
    "cause": "text",
    "currency": "text",
    "plan_id": "text",
    "price_minor": "bigint",
    "interval_unit": "text",
    "interval_count": "integer",
    "days_until_due": "integer",
    "started_at": "timestamptz",
    "trial_ends_at": "timestamptz",
    "anchor": "timestamptz",
    "cycle_base": "integer",
    "cycles_invoiced": "integer",
    "first_invoiced_at": "timestamptz",
    "status": "text",
    "cancel_at": "timestamptz",
    "announced_price_minor": "bigint",
    "announced_from": "timestamptz",
    "mrr_minor": "bigint",
}
SCHEMA = """
CREATE TABLE IF NOT EXISTS subscription_versions (
    account_id text NOT NULL,
    subscription_id text NOT NULL,
    account_version bigint NOT NULL,
    valid_from timestamptz NOT NULL,
    cause text NOT NULL,
    currency text NOT NULL,
    plan_id text NOT NULL,
    price_minor bigint NOT NULL,
    interval_unit text NOT NULL,
    interval_count integer NOT NULL,
    days_until_due integer NOT NULL,
    started_at timestamptz NOT NULL,
    trial_ends_at timestamptz,
    anchor timestamptz,
    cycle_base integer NOT NULL,
    cycles_invoiced integer NOT NULL,
    first_invoiced_at timestamptz,
    status text NOT NULL,
    cancel_at timestamptz,
    announced_price_minor bigint,
    announced_from timestamptz,
    mrr_minor bigint NOT NULL,
    PRIMARY KEY (account_id, subscription_id, account_version)
);
CREATE INDEX IF NOT EXISTS subscription_versions_by_time
    ON subscription_versions (currency, valid_from);
COMMENT ON TABLE subscription_versions IS
    'One row per change of a subscription: its terms and status from valid_from on (business time).';
COMMENT ON COLUMN subscription_versions.account_version IS
    'The account event that made this version; the latest version at or before a time is the state then.';
COMMENT ON COLUMN subscription_versions.valid_from IS
    'Business time from which this version holds: the event''s occurred_at, or a cancellation''s effective_at.';
COMMENT ON COLUMN subscription_versions.cause IS
    'What changed: subscribed, invoiced, plan_changed, price_announced, price_applied, price_withdrawn, paused, resumed, '
    'cancellation_scheduled, cancelled, reactivated, suspended_for_nonpayment, cancelled_for_nonpayment.';
COMMENT ON COLUMN subscription_versions.price_minor IS
    'Price per billing interval in force, in minor units of currency.';
COMMENT ON COLUMN subscription_versions.interval_unit IS 'DAY, MONTH or YEAR; billed every interval_count of them.';
COMMENT ON COLUMN subscription_versions.days_until_due IS 'Days from a cycle''s start (its invoice) to its due date.';
COMMENT ON COLUMN subscription_versions.anchor IS
    'Start of cycle number cycle_base after a resume or reactivation; null: cycles count from trial_ends_at, else started_at.';
COMMENT ON COLUMN subscription_versions.cycles_invoiced IS 'Billing cycles invoiced so far; the next cycle has this number.';
COMMENT ON COLUMN subscription_versions.first_invoiced_at IS
    'When the first charged cycle was invoiced; null during a trial (no MRR yet).';
COMMENT ON COLUMN subscription_versions.status IS 'ACTIVE (also while past due), PAUSED or CANCELLED.';
COMMENT ON COLUMN subscription_versions.cancel_at IS 'A scheduled cancellation: no cycle starting at or after it is invoiced.';
COMMENT ON COLUMN subscription_versions.announced_price_minor IS
    'An announced price, applied to the first cycle starting on or after announced_from.';
COMMENT ON COLUMN subscription_versions.mrr_minor IS
    'Monthly recurring revenue of this version in minor units: 0 unless ACTIVE and past its trial; '
    'MONTH price/count, YEAR price/(12 count), DAY price x 30/count, rounded half up.';
COMMENT ON COLUMN subscription_versions.account_id IS 'The account subscribed.';
COMMENT ON COLUMN subscription_versions.subscription_id IS 'The subscription (Subscribed.subscription_id).';
COMMENT ON COLUMN subscription_versions.currency IS 'ISO 4217 code of its prices.';
COMMENT ON COLUMN subscription_versions.plan_id IS 'The plan in force.';
COMMENT ON COLUMN subscription_versions.interval_count IS 'Billed every interval_count interval_units.';
COMMENT ON COLUMN subscription_versions.started_at IS 'Business time it was subscribed.';
COMMENT ON COLUMN subscription_versions.trial_ends_at IS 'End of its trial; null: none.';
COMMENT ON COLUMN subscription_versions.cycle_base IS 'The number of the cycle that starts at anchor (0 without an anchor).';
COMMENT ON COLUMN subscription_versions.announced_from IS
    'The date from which the first cycle starting on or after it pays announced_price_minor.';
"""


def monthly_minor(price_minor: int, interval_unit: str, interval_count: int) -> int:
    """A price per interval normalised to a month, rounded half up to the minor unit.

    Yearly prices are divided by 12, every N days is multiplied by 30/N.
    """
    if interval_unit == "DAY":
        exact = Fraction(price_minor * 30, interval_count)
    elif interval_unit == "YEAR":
        exact = Fraction(price_minor, 12 * interval_count)
    else:
        exact = Fraction(price_minor, interval_count)
    return (2 * exact.numerator + exact.denominator) // (2 * exact.denominator)


def mrr_of(version: dict[str, Any]) -> int:
    """The MRR a subscription version contributes: active, and its first cycle invoiced."""
    if version["status"] != "ACTIVE" or version["first_invoiced_at"] is None:
        return 0
    return monthly_minor(
        version["price_minor"], version["interval_unit"], version["interval_count"]
    )


Key = tuple[str, str]  # (account id, subscription id)
_DERIVED = ("account_version", "valid_from", "mrr_minor")  # set by each new version


class Subscriptions(Batched):
    """Applies subscription events to subscription_versions, inside the caller's transaction."""

    name = "subscriptions"
    tables: tuple[str, ...] = (TABLE,)
    schema = SCHEMA

    def apply_batch(self, cursor: psycopg.Cursor[Any], events: Sequence[Event]) -> None:
        """Apply decoded events to the latest versions of their accounts' subscriptions, read
        once; the new versions are inserted in one statement."""
        accounts = sorted({r["account_id"] for t, r in events if t in _AFFECTING})
        if not accounts:
            return
        cursor.execute(
            f"SELECT DISTINCT ON (account_id, subscription_id) {', '.join(COLUMNS)} "
            "FROM subscription_versions WHERE account_id = ANY(%s) "
            "ORDER BY account_id, subscription_id, account_version DESC",
            (accounts,),
        )
        latest = {row[:2]: dict(zip(COLUMNS, row, strict=True)) for row in cursor.fetchall()}
        inserted: list[dict[str, Any]] = []
        for event_type, record in events:
            for version in _versions(latest, event_type, record):
                key = (version["account_id"], version["subscription_id"])
                if key not in latest or latest[key]["account_version"] < version["account_version"]:
                    latest[key] = version
                inserted.append(version)
        rows = (tuple(version[c] for c in COLUMNS) for version in inserted)
        primary_key = ("account_id", "subscription_id", "account_version")
        upsert(cursor, TABLE, COLUMNS, primary_key, rows, replace=False)


def _versions(
    latest: dict[Key, dict[str, Any]], event_type: str, record: dict[str, Any]
) -> list[dict[str, Any]]:
    """The new versions of subscriptions one event makes, given the latest ones."""
    if event_type == "Subscribed":
        return [_new(record, _subscribed(record))]
    if event_type == "DunningFinalAction":
        return _final_action(latest, record)
    if event_type in _CHANGES and record.get("subscription_id"):
        previous = _previous(latest, record, record["subscription_id"])
        if previous is not None:
            changed = _CHANGES[event_type](previous, record)
            if changed is not None:
                return [_new(record, changed)]
    return []


def _final_action(
    latest: dict[Key, dict[str, Any]], record: dict[str, Any]
) -> list[dict[str, Any]]:
    if record["action"] == "NONE":
        return []
    versions = []
    for account, subscription_id in sorted(latest):
        if account != record["account_id"]:
            continue
        previous = _previous(latest, record, subscription_id)
        if previous is None or previous["status"] == "CANCELLED":
            continue
        version = previous
        if record["action"] == "SUSPEND":
            version.update(status="PAUSED", cause="suspended_for_nonpayment")
        else:
            version.update(status="CANCELLED", cancel_at=None, cause="cancelled_for_nonpayment")
        versions.append(_new(record, version))
    return versions


def _previous(
    latest: dict[Key, dict[str, Any]], record: dict[str, Any], subscription_id: str
) -> dict[str, Any] | None:
    """The state a new version starts from: the latest, unless this event is older (a
    redelivery, whose versions exist already)."""
    version = latest.get((record["account_id"], subscription_id))
    if version is None or version["account_version"] >= record["account_version"]:
        return None
    return {column: value for column, value in version.items() if column not in _DERIVED}


def _new(record: dict[str, Any], version: dict[str, Any]) -> dict[str, Any]:
    version.setdefault("valid_from", record["occurred_at"])
    return version | {"account_version": record["account_version"], "mrr_minor": mrr_of(version)}


def _subscribed(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "account_id": record["account_id"],
        "subscription_id": record["subscription_id"],
        "cause": "subscribed",
        "currency": record["currency"],
        "plan_id": record["plan_id"],
        "price_minor": record["price_minor"],
        "interval_unit": record["interval_unit"],
        "interval_count": record["interval_count"],
        "days_until_due": record["days_until_due"],
        "started_at": record["occurred_at"],
        "trial_ends_at": record["trial_ends_at"],
        "anchor": None,
        "cycle_base": 0,
        "cycles_invoiced": 0,
        "first_invoiced_at": None,
        "status": "ACTIVE",
        "cancel_at": None,
        "announced_price_minor": None,
        "announced_from": None,
    }


def _invoiced(version: dict[str, Any], record: dict[str, Any]) -> dict[str, Any] | None:
    cycles = max(version["cycles_invoiced"], record["cycle"] + 1)
    first: datetime | None = version["first_invoiced_at"] or record["occurred_at"]
    if cycles == version["cycles_invoiced"] and first == version["first_invoiced_at"]:
        return None  # a proration invoice: the schedule is unchanged
    return version | {"cycles_invoiced": cycles, "first_invoiced_at": first, "cause": "invoiced"}


def _plan_changed(version: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    return version | {
        "plan_id": record["plan_id"],
        "price_minor": record["price_minor"],
        "days_until_due": record["days_until_due"],
        "cause": "plan_changed",
    }


def _announced(version: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    return version | {
        "announced_price_minor": record["new_price_minor"],
        "announced_from": record["effective_from"],
        "cause": "price_announced",
    }


def _price_applied(version: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    return version | {
        "price_minor": record["price_minor"],
        "announced_price_minor": None,
        "announced_from": None,
        "cause": "price_applied",
    }


def _withdrawn(version: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    # A plan change withdrew the announced price of the old terms: nothing is pending now.
    return version | {
        "announced_price_minor": None,
        "announced_from": None,
        "cause": "price_withdrawn",
    }


def _paused(version: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    return version | {"status": "PAUSED", "cause": "paused"}


def _restarted(version: dict[str, Any], anchor: datetime, cause: str) -> dict[str, Any]:
    return version | {
        "status": "ACTIVE",
        "anchor": anchor,
        "cycle_base": version["cycles_invoiced"],
        "cancel_at": None,
        "cause": cause,
    }


def _resumed(version: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    return _restarted(version, record["anchor"], "resumed")


def _scheduled(version: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    return version | {"cancel_at": record["cancel_at"], "cause": "cancellation_scheduled"}


def _cancelled(version: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    # Churn is dated when the subscription ends, not when the clock noticed it.
    return version | {
        "status": "CANCELLED",
        "cancel_at": None,
        "valid_from": record["effective_at"],
        "cause": "cancelled",
    }


def _reactivated(version: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    if record["anchor"] is None:
        return version | {"cancel_at": None, "cause": "reactivated"}
    return _restarted(version, record["anchor"], "reactivated")


_CHANGES: dict[str, Any] = {
    "InvoiceIssued": _invoiced,
    "PlanChanged": _plan_changed,
    "PriceChangeAnnounced": _announced,
    "PriceChangeApplied": _price_applied,
    "PriceChangeWithdrawn": _withdrawn,
    "SubscriptionPaused": _paused,
    "SubscriptionResumed": _resumed,
    "CancellationScheduled": _scheduled,
    "SubscriptionCancelled": _cancelled,
    "SubscriptionReactivated": _reactivated,
}
_AFFECTING = frozenset({"Subscribed", "DunningFinalAction", *_CHANGES})
