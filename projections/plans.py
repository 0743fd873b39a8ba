"""The plans read model: the catalogue as it stands, one row per plan, built from billing.events.

Each row keeps the plan version it has applied, so an event republished by the relay
(at-least-once) is applied once.
"""

from __future__ import annotations

from typing import Any

import psycopg

from projections.batch import EachEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS plans (
    plan_id text PRIMARY KEY,
    name text NOT NULL,
    price_minor bigint NOT NULL,
    currency text NOT NULL,
    interval_unit text NOT NULL,
    interval_count integer NOT NULL,
    trial_days integer NOT NULL,
    retired boolean NOT NULL DEFAULT false,
    plan_version bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
COMMENT ON TABLE plans IS
    'The plan catalogue: what new subscribers to each plan pay, in minor units of currency.';
COMMENT ON COLUMN plans.plan_id IS 'The catalogue plan''s id.';
COMMENT ON COLUMN plans.name IS 'Its name for people.';
COMMENT ON COLUMN plans.price_minor IS 'What new subscribers pay per interval, in minor units.';
COMMENT ON COLUMN plans.currency IS 'ISO 4217 code of the price.';
COMMENT ON COLUMN plans.interval_unit IS 'DAY, MONTH or YEAR.';
COMMENT ON COLUMN plans.interval_count IS 'Billed every interval_count interval_units.';
COMMENT ON COLUMN plans.trial_days IS 'Free days before a new subscriber''s first invoice.';
COMMENT ON COLUMN plans.retired IS 'The plan takes no new subscribers.';
COMMENT ON COLUMN plans.plan_version IS 'The version of the last plan event applied.';
COMMENT ON COLUMN plans.updated_at IS 'The business time of that event.';
"""


class Plans(EachEvent):
    """Applies plan events to the plans table, inside the caller's transaction."""

    name = "plans"
    tables: tuple[str, ...] = ("plans",)
    schema = SCHEMA

    def apply(self, cursor: psycopg.Cursor[Any], event_type: str, record: dict[str, Any]) -> None:
        """Apply one decoded event; events of accounts are not the catalogue's."""
        if event_type == "PlanDefined":
            cursor.execute(
                "INSERT INTO plans (plan_id, name, price_minor, currency, interval_unit, "
                "interval_count, trial_days, plan_version, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (plan_id) DO NOTHING",
                (
                    record["plan_id"],
                    record["name"],
                    record["price_minor"],
                    record["currency"],
                    record["interval_unit"],
                    record["interval_count"],
                    record["trial_days"],
                    record["plan_version"],
                    record["occurred_at"],
                ),
            )
        elif event_type == "PlanRevised":
            cursor.execute(
                "UPDATE plans SET name = %s, price_minor = %s, trial_days = %s, "
                "plan_version = %s, updated_at = %s WHERE plan_id = %s AND plan_version < %s",
                (
                    record["name"],
                    record["price_minor"],
                    record["trial_days"],
                    *_version_and_key(record),
                ),
            )
        elif event_type == "PlanRetired":
            cursor.execute(
                "UPDATE plans SET retired = true, plan_version = %s, updated_at = %s "
                "WHERE plan_id = %s AND plan_version < %s",
                _version_and_key(record),
            )


def _version_and_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """The new version and time, then the plan and the version it must be older than."""
    version = record["plan_version"]
    return version, record["occurred_at"], record["plan_id"], version
