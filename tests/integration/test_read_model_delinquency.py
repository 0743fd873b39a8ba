"""The delinquency read model and aging against a scripted book, figures worked out by hand.

The book (bob, EUR, 10.00 a month due in 14 days, the recommended dunning policy: reminders
3 days before and 1, 7, 14 days after the due date, retries 1, 3, 7 days after a failure,
suspension 21 days after the due date), business days from 1 January 2026 09:00:
  day 0   policy set; subscribes: invoice sub-1/1 1000, due day 14 (15 January)
  day 14  a card charge of sub-1/1 fails: attempt 1, retry scheduled for day 15
  day 20  clock: sub-1/1 overdue, the retry is due, reminder stage_1
  day 31  clock: invoice sub-1/2 1000, due day 45 (15 February); sub-1/1 reminder stage_3
  day 33  hardship reported for 10 days: until day 43
  day 35  clock: nothing (the pause holds the suspension back)
  day 40  sub-1/1 renegotiated: 1000 + 100 interest in 2 installments of 550, plan-b/1 due
          day 45 and plan-b/2 due day 75 (17 March)
  day 46  pays 550 for plan-b/1
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.helpers import Servers
from tests.integration.books import Book, day
from tests.processes import ledger

pytestmark = pytest.mark.integration

STATUS_AFTER: dict[int, str] = {}  # filled by the fixture: the stored status after each step


@pytest.fixture(name="book")
def fixture_book(servers: Servers) -> Iterator[Book]:
    """Bob's late payments, projected; the stored status is noted after each step."""
    book = Book(servers.database_url)
    steps = {
        0: lambda: (
            book.open("bob"),
            book.do(
                "SetDunningPolicy",
                "bob",
                day(0),
                reminder_days_before_due=[3],
                reminder_days_after_due=[1, 7, 14],
                retry_days_after_failure=[1, 3, 7],
                grace_days=21,
                final_action="SUSPEND",
            ),
            book.subscribe("bob", day(0), 1000),
        ),
        14: lambda: book.do(
            "FailCharge",
            "bob",
            day(14),
            invoice_id="sub-1/1",
            payment_method_kind="credit_card",
            reason="insufficient_funds",
        ),
        20: lambda: book.tick("bob", day(20)),
        31: lambda: book.tick("bob", day(31)),
        33: lambda: book.do("ReportHardship", "bob", day(33), reason="lost job", days=10),
        35: lambda: book.tick("bob", day(35)),
        40: lambda: book.do(
            "Renegotiate",
            "bob",
            day(40),
            plan_id="plan-b",
            invoice_ids=["sub-1/1"],
            installments=2,
            first_due_at=day(45),
            interval_days=30,
            interest_minor=100,
            forgiven_minor=0,
        ),
        46: lambda: book.pay("bob", day(46), 550, invoice_id="plan-b/1"),
    }
    for number, step in steps.items():
        step()
        STATUS_AFTER[number] = book.rows("SELECT status FROM delinquency")[0][0]
    yield book
    book.close()


class TestStoredDelinquency:
    """The delinquency row as of each account event's own business time."""

    def test_status_after_each_step(self, book: Book) -> None:
        """current until due; in dunning once the charge failed and it was past due; hardship
        during the pause (day 33 to 43); renegotiated once the pause is over."""
        assert STATUS_AFTER == {
            0: "current",
            14: "current",  # day 14 is the due date itself: not yet a day past due
            20: "in_dunning",
            31: "in_dunning",
            33: "hardship",
            35: "hardship",
            40: "hardship",  # the pause (until day 43) comes before the new plan
            46: "renegotiated",
        }

    def test_row_after_the_installment_paid(self, book: Book) -> None:
        """As of day 46: sub-1/2 (1000, due day 45, one day past due) and plan-b/2 (550) open;
        one installment paid, one remaining, next due day 75; the pause ended day 43."""
        assert book.rows(
            "SELECT open_minor, overdue_minor, oldest_unpaid_due_at, dunning_stage, "
            "failed_attempts, installments_paid, installments_missed, installments_remaining, "
            "renegotiation_remaining_minor, next_installment_due_at, hardship_until, "
            "final_action, updated_at FROM delinquency"
        ) == [(1550, 1000, day(45), 0, 0, 1, 0, 1, 550, day(75), day(43), None, day(46))]

    def test_per_invoice_dunning(self, book: Book) -> None:
        """sub-1/1 reached stage 3 after one failed charge, its retry done, and was closed by
        the renegotiation; the installments are open or paid."""
        assert book.rows(
            "SELECT invoice_id, renegotiation_plan_id, due_at, open_minor, dunning_stage, "
            "last_reminder, failed_attempts, next_retry_at, closed_by "
            "FROM delinquency_invoices ORDER BY invoice_id"
        ) == [
            ("plan-b/1", "plan-b", day(45), 0, 0, None, 0, None, "paid"),
            ("plan-b/2", "plan-b", day(75), 550, 0, None, 0, None, None),
            ("sub-1/1", None, day(14), 0, 3, "stage_3", 1, None, "renegotiated"),
            ("sub-1/2", None, day(45), 1000, 0, None, 0, None, None),
        ]


DUNNING = "SELECT status, dunning_stage, failed_attempts FROM delinquency_as_of(%s, 'bob')"


class TestDunningAsOf:
    """Each invoice's dunning stage and failed charges as they stood at a past date, not the
    latest: sub-1/1 (due day 14) failed its charge on day 14, with its charge_failed_1
    reminder; the clock's tick on day 20 sent the stage_1 reminder, the tick on day 31
    stage_3 (the highest then due, 14 days after the due date)."""

    def test_stage_and_failed_charges_at_past_dates(self, book: Book) -> None:
        """Day 13: nothing yet. Day 16: one failed charge, no reminder after the due date yet.
        Day 25: stage 1. Day 32: stage 3 (before the hardship pause of day 33)."""
        assert book.rows(DUNNING, day(13)) == [("current", 0, 0)]
        assert book.rows(DUNNING, day(16)) == [("in_dunning", 0, 1)]
        assert book.rows(DUNNING, day(25)) == [("in_dunning", 1, 1)]
        assert book.rows(DUNNING, day(32)) == [("in_dunning", 3, 1)]

    def test_each_change_is_kept_dated(self, book: Book) -> None:
        """delinquency_invoice_facts: a row per event that set a fact, dated by the event: the
        failed charge and its reminder (day 14), stage 1 (day 20), stage 3 (day 31)."""
        assert book.rows(
            "SELECT invoice_id, occurred_at, dunning_stage, failed_attempts, "
            "renegotiation_defaulted FROM delinquency_invoice_facts "
            "ORDER BY occurred_at, account_version"
        ) == [
            ("sub-1/1", day(14), 0, 1, False),
            ("sub-1/1", day(14), 0, 1, False),
            ("sub-1/1", day(20), 1, 1, False),
            ("sub-1/1", day(31), 3, 1, False),
        ]

    def test_invoices_projected_before_the_facts_keep_their_latest(self, book: Book) -> None:
        """With no fact kept for sub-1/1 (a read model projected before the table existed),
        day 16 shows its latest stage 3 rather than none; the facts' removal is rolled back."""
        with book.connection.transaction(force_rollback=True):
            book.connection.execute("DELETE FROM delinquency_invoice_facts")
            rows = book.connection.execute(DUNNING, (day(16),)).fetchall()
        assert rows == [("in_dunning", 3, 1)]
        assert book.rows(DUNNING, day(16)) == [("in_dunning", 0, 1)]


AGING = (
    "SELECT status, open_minor, overdue_minor, days_past_due, current_minor, "
    "past_due_1_30_minor, past_due_31_60_minor, past_due_61_90_minor, past_due_91_plus_minor "
    "FROM delinquency_as_of(%s, 'bob')"
)


class TestAgingAsOf:
    """Aging of the open balance as of past dates, with invoices settled later still open."""

    def test_before_and_after_the_first_due_date(self, book: Book) -> None:
        """Day 9: 1000 not yet due. Day 19 (20 January): sub-1/1 5 days past due, in dunning
        (a failed charge)."""
        assert book.rows(AGING, day(9)) == [("current", 1000, 0, 0, 1000, 0, 0, 0, 0)]
        assert book.rows(AGING, day(19)) == [("in_dunning", 1000, 1000, 5, 0, 1000, 0, 0, 0)]

    def test_an_invoice_renegotiated_later_is_aged_as_it_stood(self, book: Book) -> None:
        """Day 39: sub-1/1 25 days past due (renegotiated on day 40), sub-1/2 not yet due;
        the hardship paused dunning until day 43."""
        assert book.rows(AGING, day(39)) == [("hardship", 2000, 1000, 25, 1000, 1000, 0, 0, 0)]

    def test_an_installment_paid_later_is_open_before(self, book: Book) -> None:
        """Day 44: both installments (550 each) and sub-1/2 are open and not yet due."""
        assert book.rows(AGING, day(44)) == [("renegotiated", 2100, 0, 0, 2100, 0, 0, 0, 0)]

    def test_later_dates_fill_the_older_buckets(self, book: Book) -> None:
        """Day 120 (1 May): sub-1/2 75 days past due (61-90), plan-b/2 45 days (31-60).
        Day 151 (1 June): 106 days (91+) and 76 days (61-90)."""
        assert book.rows(AGING, day(120)) == [("renegotiated", 1550, 1550, 75, 0, 0, 550, 1000, 0)]
        assert book.rows(AGING, day(151)) == [("renegotiated", 1550, 1550, 106, 0, 0, 0, 550, 1000)]

    def test_aging_per_invoice(self, book: Book) -> None:
        """As of day 44, per invoice: the three open ones, with their due dates then."""
        assert book.rows(
            "SELECT invoice_id, due_at, open_minor, days_past_due, aging_bucket "
            "FROM invoice_balances_as_of(%s) WHERE open_minor > 0 ORDER BY invoice_id",
            day(44),
        ) == [
            ("plan-b/1", day(45), 550, 0, "current"),
            ("plan-b/2", day(75), 550, 0, "current"),
            ("sub-1/2", day(45), 1000, 0, "current"),
        ]


class TestDelinquencyReports:
    """`ledger report delinquency|aging` for scripts."""

    def test_delinquency_with_its_next_action(self, book: Book, servers: Servers) -> None:
        """As of the latest business time (day 46): renegotiated; the next dunning step is
        sub-1/2's first reminder after its due date, day 45 + 1."""
        done = ledger(
            "report", "delinquency", "--format", "json",
            env={"LEDGER_DATABASE_URL": servers.database_url},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout)
        (row,) = document["rows"]
        assert document["as_of"] == day(46).isoformat()
        assert (row["status"], row["next_action"], row["next_action_at"]) == (
            "renegotiated",
            "reminder",
            day(46).isoformat(),
        )

    def test_aging_csv_as_of_a_past_date(self, book: Book, servers: Servers) -> None:
        """As of day 39: bob's row and the EUR total, 1000 current and 1000 in 1-30."""
        done = ledger(
            "report", "aging", "--as-of", day(39).isoformat(), "--format", "csv",
            env={"LEDGER_DATABASE_URL": servers.database_url},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [
            "account_id,currency,current_minor,past_due_1_30_minor,past_due_31_60_minor,"
            "past_due_61_90_minor,past_due_91_plus_minor,open_minor",
            "bob,EUR,1000,1000,0,0,0,2000",
            "total,EUR,1000,1000,0,0,0,2000",
        ]
