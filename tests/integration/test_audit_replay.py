"""`ledger audit replay` and `diff`: views of a business time from the events alone, as known
at recording times, against figures worked by hand (tests/integration/replay_book.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from audit.history import History
from audit.replay import Replay, replay
from audit.replay_rows import balance_row, changes, delinquency_row
from audit.store import snapshot
from infra.postgres import create_tables
from ledger.application import BillingLedger
from projections.registry import READ_MODELS
from runtime.cli import main
from runtime.rebuild import rebuild
from runtime.runner import open_ledger
from tests.integration.audit_book import (
    fixture_cli,
    fixture_database_url,
    fixture_postgres_url,
    save_book,
)
from tests.integration.replay_book import day, recorded_times, save_replay_book
from tools.worked_example import ACCOUNT

pytestmark = pytest.mark.integration
__all__ = ["fixture_cli", "fixture_database_url", "fixture_postgres_url"]


@pytest.fixture(name="book")
def fixture_book(database_url: str) -> Iterator[BillingLedger]:
    """The replay book saved in its three batches."""
    ledger = open_ledger(database_url)
    save_replay_book(ledger)
    yield ledger
    ledger.close()


def replayed(database_url: str, as_of: datetime, *known_at: datetime) -> Replay:
    """Replay `as_of` known at each of `known_at` (everything if none)."""
    with snapshot(database_url) as store:
        history = History(store)
        knowledge = [history.known_at(k) for k in known_at] or [history.everything()]
        cutoffs = [k.position for k in knowledge]
        return replay(as_of, cutoffs, history.account_events(max(cutoffs)))


def balance(result: Replay, account_id: str, index: int = 0) -> dict[str, object]:
    """The balances row of one account in view `index`."""
    return balance_row(result.views[index][account_id])


def delinquency(result: Replay, account_id: str, index: int = 0) -> dict[str, object]:
    """The delinquency row of one account in view `index`."""
    return delinquency_row(result.views[index][account_id], result.as_of)


def open_of(result: Replay, account_id: str, index: int = 0) -> dict[str, int]:
    """Open balance of each invoice of one account in view `index`."""
    return {i: v.open_minor for i, v in result.views[index][account_id].invoices.items()}


class TestAsOf:
    """Everything recorded, as of several business times."""

    def test_before_anything_happened(self, book: BillingLedger, database_url: str) -> None:
        """A day before the accounts opened there is no account."""
        assert replayed(database_url, day(-1)).views == [{}]

    def test_after_the_first_invoices(self, book: BillingLedger, database_url: str) -> None:
        """On 20 January each owes its first invoice, not yet due."""
        result = replayed(database_url, day(5))
        assert balance(result, "acme")["receivable_minor"] == 999
        assert balance(result, "beta")["receivable_minor"] == 2000
        assert open_of(result, "acme") == {"sub-1/1": 999}
        assert delinquency(result, "acme")["status"] == "current"
        assert delinquency(result, "acme")["overdue_minor"] == 0

    def test_first_invoice_past_due(self, book: BillingLedger, database_url: str) -> None:
        """On 10 February (day 26) sub-1/1, due 29 January, is 12 days past due."""
        row = delinquency(replayed(database_url, day(26)), "beta")
        assert (row["status"], row["overdue_minor"], row["days_past_due"]) == ("overdue", 2000, 12)

    def test_the_corrected_view(self, book: BillingLedger, database_url: str) -> None:
        """On 17 February (day 33): both invoices of acme open, less the credit of day 32."""
        result = replayed(database_url, day(33))
        assert open_of(result, "acme") == {"sub-1/1": 999, "sub-1/2": 499}
        row = balance(result, "acme")
        assert (row["receivable_minor"], row["credited_minor"], row["invoiced_minor"]) == (
            1498,
            500,
            1998,
        )
        assert row["customer_credit_minor"] == 0  # the credit settled sub-1/2 at once

    def test_after_the_payment(self, book: BillingLedger, database_url: str) -> None:
        """On 20 February (day 36) acme has paid sub-1/1: 499 left, not past due."""
        result = replayed(database_url, day(36))
        assert open_of(result, "acme") == {"sub-1/1": 0, "sub-1/2": 499}
        row = delinquency(result, "acme")
        assert (row["status"], row["open_minor"], row["overdue_minor"]) == ("current", 499, 0)
        assert balance(result, "acme")["paid_minor"] == 999


class TestKnownAt:
    """Only what was recorded by a time counts; corrections recorded later are shown beside."""

    def test_before_the_correction(self, book: BillingLedger, database_url: str) -> None:
        """Known at batch 2's time, day 33 shows sub-1/2 whole: the credit note came later."""
        times = recorded_times(database_url)
        result = replayed(database_url, day(33), times[1], times[2])
        assert open_of(result, "acme", 0) == {"sub-1/1": 999, "sub-1/2": 999}
        assert open_of(result, "acme", 1) == {"sub-1/1": 999, "sub-1/2": 499}
        assert [(e.event_type, e.record["occurred_at"]) for e in result.later[0]] == [
            ("CreditNoteIssued", day(32)),
            ("CreditApplied", day(32)),
        ]

    def test_known_at_the_first_batch(self, book: BillingLedger, database_url: str) -> None:
        """Known at batch 1's time, the clock had not run: day 36 shows the first invoices only."""
        times = recorded_times(database_url)
        result = replayed(database_url, day(36), times[0])
        assert open_of(result, "acme") == {"sub-1/1": 999}
        assert delinquency(result, "acme")["overdue_minor"] == 999

    def test_before_any_batch(self, book: BillingLedger, database_url: str) -> None:
        """Known before the first batch was recorded, nothing was known."""
        times = recorded_times(database_url)
        assert replayed(database_url, day(36), times[0] - timedelta(microseconds=1)).views == [{}]


class TestDiff:
    """What changed in one view between two recording times, per account."""

    def test_names_the_corrected_account_only(self, book: BillingLedger, database_url: str) -> None:
        """Between batches 2 and 3 only acme's figures of day 36 moved, by the credit note."""
        times = recorded_times(database_url)
        result = replayed(database_url, day(36), times[1], times[2])
        rows = changes(result.views[0], result.views[1], result.as_of)
        assert {row["account_id"] for row in rows} == {"acme"}
        moved = {row["figure"]: (row["before"], row["after"]) for row in rows}
        assert moved["balance receivable_minor"] == (999, 499)
        assert moved["balance credited_minor"] == (0, 500)
        assert moved["invoice sub-1/2 open_minor"] == (999, 499)
        assert moved["invoice sub-1/2 credit_applied_minor"] == (0, 500)

    def test_between_the_first_two_batches(self, book: BillingLedger, database_url: str) -> None:
        """Between batches 1 and 2 both accounts moved: the clock ran on each."""
        times = recorded_times(database_url)
        result = replayed(database_url, day(36), times[0], times[1])
        rows = changes(result.views[0], result.views[1], result.as_of)
        assert {row["account_id"] for row in rows} == {"acme", "beta"}


@pytest.mark.usefixtures("cli")
class TestCommands:
    """The subcommands print the views, as tables or JSON."""

    def test_replay_json(
        self,
        book: BillingLedger,
        database_url: str,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """`replay --known-at` prints the old view, the later events and the figures they changed."""
        monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
        known = recorded_times(database_url)[1].isoformat()
        args = ["audit", "replay", "--as-of", day(33).isoformat(), "--known-at", known]
        assert main([*args, "--account", "acme", "--format", "json"]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert [row["open_minor"] for row in printed["invoices"]] == [999, 999]
        later = printed["events recorded after the known-at time"]
        assert [row["event_type"] for row in later] == ["CreditNoteIssued", "CreditApplied"]
        figures = {row["figure"]: row["after"] for row in printed["changed figures"]}
        assert figures["invoice sub-1/2 open_minor"] == 499

    def test_diff_table(
        self,
        book: BillingLedger,
        database_url: str,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """`diff` prints each changed figure with both values."""
        monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
        times = [t.isoformat() for t in recorded_times(database_url)]
        args = ["audit", "diff", "--as-of", day(36).isoformat()]
        assert main([*args, "--known-at", times[2], "--known-at", times[1]]) == 0
        out = capsys.readouterr().out
        assert "invoice sub-1/2 open_minor" in out and "beta" not in out


# The figures delinquency_as_of (the read model's SQL) counts as of its time, as replay does,
# the dunning stage, failed charges and the status they lead to included.
SHARED = (
    "status",
    "dunning_stage",
    "failed_attempts",
    "open_minor",
    "overdue_minor",
    "oldest_unpaid_due_at",
    "days_past_due",
    "installments_paid",
    "installments_missed",
    "installments_remaining",
    "renegotiation_remaining_minor",
    "next_installment_due_at",
)


class TestAgainstTheReadModel:
    """Replay and the delinquency read model are two implementations: they agree."""

    def test_the_worked_example_month_by_month(self, database_url: str) -> None:
        """The worked example's customer on the 10th and 20th of each month of 2024."""
        ledger = open_ledger(database_url)
        save_book(ledger)
        with psycopg.connect(database_url) as connection:
            create_tables(connection, *(model.schema for model in READ_MODELS))
        rebuild(ledger, database_url, READ_MODELS, swap=True)
        ledger.close()
        for month, day_of_month in ((m, d) for m in range(1, 13) for d in (10, 20)):
            as_of = datetime(2024, month, day_of_month, 12, tzinfo=UTC)
            result = replayed(database_url, as_of)
            ours = delinquency_row(result.views[0][ACCOUNT], as_of)
            with psycopg.connect(database_url) as connection:
                cursor = connection.execute(
                    "SELECT * FROM delinquency_as_of(%s, %s)", (as_of, ACCOUNT)
                )
                names = [column.name for column in cursor.description or ()]
                theirs = dict(zip(names, cursor.fetchone() or (), strict=True))
            assert {k: ours[k] for k in SHARED} == {k: theirs[k] for k in SHARED}, as_of


@pytest.mark.usefixtures("cli")
class TestMistakes:
    """A diff needs two recording times; the message says so."""

    def test_diff_with_one_known_at(
        self, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """One --known-at is a usage error (exit 2), named."""
        monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
        args = ["audit", "diff", "--as-of", "2026-02-01", "--known-at", "2026-12-01"]
        assert main(args) == 2
        assert "diff needs --known-at twice" in capsys.readouterr().err
