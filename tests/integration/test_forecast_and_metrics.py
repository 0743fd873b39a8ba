"""The forecast and metrics read models on real PostgreSQL, fed the events of a scripted scenario,
and their reports against figures worked out by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from commands.messages import (
    AddPaymentMethod,
    CancelSubscription,
    Charge,
    Command,
    RecordFeedback,
    SetDunningPolicy,
)
from infra.postgres import create_tables
from ledger.application import BillingLedger
from ledger.calendar import IntervalUnit
from ledger.dunning import DunningPolicy, FinalAction
from projections.forecast_book import load_book
from projections.forecast_history import load_history
from projections.projector import catch_up
from projections.registry import READ_MODELS
from runtime.report_forecast import forecast_report
from runtime.report_metrics import metrics_report
from tests.helpers import CODEC, Servers
from tests.unit.builders import (
    ISSUED_AT,
    Sender,
    account_events,
    advance_clock,
    fail_charge,
    in_memory_ledger,
    new_command_id,
    open_account,
    record_payment,
    subscribe,
)
from wire.event_records import EVENT_SCHEMAS, event_record

pytestmark = pytest.mark.integration


def at(month: int, day: int, hour: int = 9, minute: int = 30) -> datetime:
    """A business time in 2024 (UTC)."""
    return datetime(2024, month, day, hour, minute, tzinfo=UTC)


def method(account_id: str, kind: str) -> AddPaymentMethod:
    """The account's default payment method of `kind`, put on file at the scenario's start."""
    return AddPaymentMethod(
        new_command_id(), account_id, ISSUED_AT, f"pm-{account_id}", kind, None, None, True
    )


def feedback(account_id: str, score: int, when: datetime) -> RecordFeedback:
    """A feedback score of the account."""
    return RecordFeedback(new_command_id(), account_id, when, f"fb-{account_id}", score, "", None)


def scenario() -> list[Command]:
    """acc-1 pays 15.00 a month by card from 31 Jan, fails a charge of its second invoice then
    pays it, and cancels at the period's end (31 Mar); acc-2 pays 120.00 a year by bank
    transfer after a 30-day trial (ends 1 Mar) and leaves its first invoice unpaid; acc-3
    (in USD) pays 10.00 a month never, and its dunning policy cancels it 21 days past due."""
    return [
        open_account("acc-3", currency="USD"),
        SetDunningPolicy(
            new_command_id(), "acc-3", ISSUED_AT, DunningPolicy(final_action=FinalAction.CANCEL)
        ),
        subscribe("acc-3", price_minor=1000, currency="USD"),
        advance_clock("acc-3", issued_at=at(3, 1)),
        open_account("acc-1"),
        method("acc-1", "credit_card"),
        subscribe("acc-1"),
        Charge(new_command_id(), "acc-1", ISSUED_AT, "sub-1/1", None),
        open_account("acc-2"),
        method("acc-2", "bank_transfer"),
        subscribe("acc-2", price_minor=12_000, interval_unit=IntervalUnit.YEAR, trial_days=30),
        record_payment("acc-1", amount_minor=1500, invoice_id="sub-1/1", issued_at=at(2, 10)),
        advance_clock("acc-1", issued_at=at(2, 29, 10)),
        Charge(new_command_id(), "acc-1", at(3, 1), "sub-1/2", None),
        fail_charge("acc-1", invoice_id="sub-1/2", issued_at=at(3, 1, 12)),
        advance_clock("acc-2", issued_at=at(3, 1, 10)),
        record_payment("acc-1", amount_minor=1500, invoice_id="sub-1/2", issued_at=at(3, 5)),
        CancelSubscription(new_command_id(), "acc-1", at(3, 10), "sub-1"),
        feedback("acc-1", 4, at(3, 10)),
        feedback("acc-2", 9, at(3, 12)),
        advance_clock("acc-1", issued_at=at(4, 2)),
        advance_clock("acc-2", issued_at=at(4, 2)),
        advance_clock("acc-3", issued_at=at(4, 2)),
    ]


def decoded_events(
    ledger: BillingLedger, account_ids: list[str]
) -> list[tuple[str, dict[str, Any]]]:
    """Each account's events as the projector receives them: Avro-encoded and decoded again."""
    found = []
    for account_id in account_ids:
        for event in account_events(ledger, account_id):
            schema = EVENT_SCHEMAS[type(event)]
            decoded = CODEC.decode(CODEC.encode(schema, event_record(event)))
            found.append((schema.rpartition(".")[2], decoded.record))
    return found


@pytest.fixture(name="events")
def fixture_events() -> list[tuple[str, dict[str, Any]]]:
    """The scenario's events, every command accepted."""
    ledger = in_memory_ledger()
    send = Sender(ledger)
    for command in scenario():
        (outcome,) = send(command)
        assert outcome.rejection is None, outcome.rejection
    return decoded_events(ledger, ["acc-1", "acc-2", "acc-3"])


@pytest.fixture(name="database")
def fixture_database(
    servers: Servers, events: list[tuple[str, dict[str, Any]]]
) -> Iterator[psycopg.Connection[Any]]:
    """The read models' tables with the scenario applied twice (a republished history)."""
    connection = psycopg.connect(servers.database_url)
    create_tables(connection, *(model.schema for model in READ_MODELS))
    for _ in range(2):
        with connection.transaction(), connection.cursor() as cursor:
            for event_type, record in events:
                for model in READ_MODELS:
                    model.apply(cursor, event_type, record)
            catch_up(cursor, READ_MODELS)
    yield connection
    connection.close()


def rows_with(rows: list[dict[str, Any]], **values: Any) -> list[dict[str, Any]]:
    """The rows having every one of `values`."""
    return [row for row in rows if all(row.get(k) == v for k, v in values.items())]


class TestForecast:
    """Scheduled inflow from open items and the subscriptions' terms, known at the as-of time."""

    def test_future_invoices_by_terms_as_of_20_february(
        self, database: psycopg.Connection[Any]
    ) -> None:
        """acc-1's cycles from 29 Feb, 31 Mar, 30 Apr are due 14 Mar, 14 Apr, 14 May (15.00 each);
        acc-2's first cycle after the trial (1 Mar) is due 15 Mar (120.00); nothing else in 90 days."""
        report = forecast_report(database, as_of=datetime(2024, 2, 20, tzinfo=UTC), currency="EUR")
        due = {
            row["day"]: row["scheduled_minor"] for row in report["days"] if row["scheduled_minor"]
        }
        assert due == {
            "2024-03-14": 1500,
            "2024-03-15": 12_000,
            "2024-04-14": 1500,
            "2024-05-14": 1500,
        }
        assert len(report["days"]) == 90
        # one observation only (acc-1's paid first invoice): every amount counts as collected
        assert sum(row["expected_minor"] for row in report["days"]) == 16_500

    def test_scheduled_cancellation_and_open_invoice_as_of_10_march(
        self, database: psycopg.Connection[Any]
    ) -> None:
        """After acc-1 cancels at 31 Mar, only acc-2's open 120.00 due 15 Mar is scheduled."""
        report = forecast_report(database, as_of=at(3, 10, 12), currency="EUR")
        due = {
            row["day"]: row["scheduled_minor"] for row in report["days"] if row["scheduled_minor"]
        }
        assert due == {"2024-03-15": 12_000}
        assert report["past_due"][0]["scheduled_minor"] == 0

    def test_past_days_against_collected_cash(self, database: psycopg.Connection[Any]) -> None:
        """As of 2 Apr: of the 30 days before, only 5 Mar collected cash (15.00), which the
        forecast of 27 Feb had not expected on that day: MAPE 100%."""
        report = forecast_report(database, as_of=at(4, 2, 12), currency="EUR")
        (fifth,) = rows_with(report["accuracy"], day="2024-03-05")
        assert (fifth["expected_minor"], fifth["collected_minor"]) == (0, 1500)
        (fifteenth,) = rows_with(report["accuracy"], day="2024-03-15")
        assert (fifteenth["expected_minor"], fifteenth["collected_minor"]) == (12_000, 0)
        assert rows_with(report["accuracy"], day="mean")[0]["absolute_percentage_error"] == 100.0
        # acc-2's 120.00 is past due now, in the 1-30 band (18 days)
        assert report["past_due"][0]["scheduled_minor"] == 12_000

    def test_a_pending_snapshot_gives_no_forecast_yet(
        self, database: psycopg.Connection[Any]
    ) -> None:
        """With EUR's snapshots from 9 Mar on pending (the projector catching up), the days they
        would judge (16 Mar on) have no forecast rather than the rows made before; 15 Mar keeps
        acc-2's 120.00 of the snapshot of 8 Mar."""
        with database.transaction(force_rollback=True):
            database.execute("INSERT INTO forecast_snapshot_pending VALUES ('EUR', '2024-03-09')")
            pending = forecast_report(database, as_of=at(4, 2, 12), currency="EUR")
        made = forecast_report(database, as_of=at(4, 2, 12), currency="EUR")
        for report, sixteenth in ((pending, None), (made, 0)):
            assert rows_with(report["accuracy"], day="2024-03-16")[0]["expected_minor"] == sixteenth
            assert rows_with(report["accuracy"], day="2024-03-15")[0]["expected_minor"] == 12_000


class TestMetrics:
    """MRR, churn dated at the end, charges, dunning and feedback, as of 2 April."""

    @pytest.fixture(name="report")
    def fixture_report(self, database: psycopg.Connection[Any]) -> dict[str, list[dict[str, Any]]]:
        """The metrics report as of 2 April 12:00."""
        return metrics_report(database, as_of=at(4, 2, 12), currency="EUR")

    def test_monthly_mrr_and_movements(self, report: dict[str, list[dict[str, Any]]]) -> None:
        """Jan: new 15.00; Feb: unchanged; Mar: acc-2 new 10.00 (120.00 / 12), acc-1's 15.00
        churned on 31 Mar: MRR 10.00, gross and net churn 100%, one voluntary lost logo."""
        months = {row["period"]: row for row in report["monthly"]}
        assert (months["2024-01"]["new_minor"], months["2024-01"]["mrr_minor"]) == (1500, 1500)
        assert months["2024-02"]["mrr_start_minor"] == months["2024-02"]["mrr_minor"] == 1500
        march = months["2024-03"]
        assert (march["new_minor"], march["churn_minor"], march["mrr_minor"]) == (1000, 1500, 1000)
        assert (march["gross_mrr_churn_pct"], march["net_mrr_churn_pct"]) == (100.0, 100.0)
        assert (march["churned_customers_voluntary"], march["churned_customers_involuntary"]) == (
            1,
            0,
        )
        assert (
            months["2024-04"]["active_subscriptions"],
            months["2024-04"]["active_customers"],
        ) == (1, 1)

    def test_daily_churn_is_dated_when_the_subscription_ends(
        self, report: dict[str, list[dict[str, Any]]]
    ) -> None:
        """The churn falls on 31 Mar (the period's end), not on 2 Apr when the clock completed it."""
        churn = {row["period"]: row["churn_minor"] for row in report["daily"] if row["churn_minor"]}
        assert churn == {"2024-03-31": 1500}

    def test_cohorts(self, report: dict[str, list[dict[str, Any]]]) -> None:
        """The January cohort (acc-1) keeps 100% through February and 0% from March."""
        january = {
            r["month"]: r["logo_retention_pct"]
            for r in rows_with(report["cohorts"], cohort="2024-01")
        }
        assert january == {"2024-01": 100.0, "2024-02": 100.0, "2024-03": 0.0, "2024-04": 0.0}

    def test_charges_dunning_and_feedback(self, report: dict[str, list[dict[str, Any]]]) -> None:
        """Jan's card charge succeeded at once; Mar's was recovered after a failure; acc-2's
        120.00 entered dunning in April, not recovered; March feedback 4 and 9: average 6.5,
        one detractor, one promoter, and half of them churned."""
        charges = {row["month"]: row for row in report["charges"]}
        assert charges["2024-01"]["first_attempt_success_pct"] == 100.0
        assert (
            charges["2024-03"]["first_attempt_minor"],
            charges["2024-03"]["recovered_after_retries_pct"],
        ) == (
            0,
            100.0,
        )
        (dunning,) = report["dunning"]
        assert (dunning["month"], dunning["overdue_minor"], dunning["recovery_rate_pct"]) == (
            "2024-04",
            12_000,
            0.0,
        )
        (march,) = report["feedback"]
        assert (march["average_score"], march["detractors_0_6"], march["promoters_9_10"]) == (
            6.5,
            1,
            1,
        )
        assert (march["net_score"], march["churn_pct"]) == (0.0, 50.0)


class TestInvoluntaryChurn:
    """The dunning's final action churns the customer involuntarily, dated when it acts."""

    def test_cancelled_for_nonpayment(self, database: psycopg.Connection[Any]) -> None:
        """acc-3's first invoice, due 14 Feb, is 21 days past due on 6 Mar: the clock of 1 Mar
        does nothing yet, the clock of 2 Apr cancels it: 10.00 churned in April, involuntary."""
        report = metrics_report(database, as_of=at(4, 2, 12))
        months = {row["period"]: row for row in rows_with(report["monthly"], currency="USD")}
        assert months["2024-03"]["mrr_minor"] == 1000
        april = months["2024-04"]
        assert (april["churn_minor"], april["mrr_minor"]) == (1000, 0)
        assert (april["churned_customers_voluntary"], april["churned_customers_involuntary"]) == (
            0,
            1,
        )
        assert rows_with(report["monthly"], currency="EUR")  # both currencies, apart


class TestSnapshots:
    """Each day's forecast is stored, whatever order the events come in."""

    def _snapshots(self, database: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
        return database.execute(
            "SELECT * FROM forecast_snapshots ORDER BY currency, made_on, day"
        ).fetchall()

    def test_a_snapshot_is_the_forecast_made_at_its_midnight(
        self, database: psycopg.Connection[Any], events: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """The snapshot of 20 Feb equals the report's forecast as of 20 Feb 00:00 (days with
        something scheduled); EUR's span is the days of its first and last events."""
        as_of = datetime(2024, 2, 20, tzinfo=UTC)
        report = forecast_report(database, as_of=as_of, currency="EUR")
        expected = [
            (row["day"], row["scheduled_minor"], row["expected_minor"], row["low_minor"],
             row["high_minor"], row["amounts"])
            for row in report["days"] if row["amounts"]
        ]  # fmt: skip
        stored = database.execute(
            "SELECT day::text, scheduled_minor, expected_minor, low_minor, high_minor, amounts "
            "FROM forecast_snapshots WHERE currency = 'EUR' AND made_on = '2024-02-20' "
            "ORDER BY day"
        ).fetchall()
        assert stored == expected
        eur = [r["occurred_at"].date() for _, r in events if r["account_id"] != "acc-3"]
        assert database.execute(
            "SELECT first_day, last_day FROM forecast_snapshot_range WHERE currency = 'EUR'"
        ).fetchall() == [(min(eur), max(eur))]
        # from 16 Mar nothing is scheduled (acc-2's invoice is past due, acc-1 cancels): no rows
        made = database.execute(
            "SELECT min(made_on)::text, max(made_on)::text FROM forecast_snapshots "
            "WHERE currency = 'EUR'"
        ).fetchone()
        assert made == ("2024-02-01", "2024-03-15")

    def test_the_order_of_the_events_changes_nothing(
        self, database: psycopg.Connection[Any], events: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """Applied account by account (acc-2's January events after acc-1's April ones) or in
        business-time order, the stored snapshots are the same rows."""
        by_account = self._snapshots(database)
        tables = [t for model in READ_MODELS for t in model.tables]
        with database.transaction():
            database.execute(f"TRUNCATE {', '.join(tables)}")
            with database.cursor() as cursor:
                for event_type, record in sorted(events, key=lambda e: e[1]["occurred_at"]):
                    for model in READ_MODELS:
                        model.apply(cursor, event_type, record)
                catch_up(cursor, READ_MODELS)
        assert self._snapshots(database) == by_account
        assert len(by_account) > 0

    def test_the_rows_read_once_are_those_read_day_by_day(
        self, database: psycopg.Connection[Any]
    ) -> None:
        """The book seen as of any time from the rows read once up to 3 April (how many days'
        snapshots are made at once) equals load_book's as of that time: items, their kinds after
        a failed charge, settlements, subscription versions with the default kinds then."""
        until = at(4, 3, 0, 0)
        for currency in ("EUR", "USD"):
            history = load_history(database, currency, until)
            moment = at(1, 1, 0, 0)
            while moment <= until:
                assert history.as_of(moment) == load_book(database, currency, moment), moment
                moment += timedelta(hours=13)
        assert len(history.as_of(until).items) > 0
