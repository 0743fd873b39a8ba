"""The balances, invoices and postings read models against a scripted book, figures by hand.

The book (alice, EUR, 10.00 a month due in 14 days), business days from 1 January 2026 09:00:
  day 0   subscribes: invoice sub-1/1 1000, due day 14
  day 10  pays 1500: 1000 settle sub-1/1, 500 become credit
  day 31  clock: invoice sub-1/2 1000, due day 45; the 500 credit settles half of it
  day 35  credit note of 200 on sub-1/1: the 200 credit settles sub-1/2 down to 300
  day 59  clock: invoice sub-1/3 1000, due day 73; sub-1/2 is marked overdue
  day 60  sub-1/2's 300 written off
  day 62  pays 1200: 1000 settle sub-1/3, 200 become credit
  day 63  150 of credit refunded by bank transfer: 50 credit left
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.helpers import Servers
from tests.integration.books import Book, day
from tests.processes import ledger

pytestmark = pytest.mark.integration


@pytest.fixture(name="book")
def fixture_book(servers: Servers) -> Iterator[Book]:
    """Alice's first quarter, projected."""
    book = Book(servers.database_url)
    book.open("alice")
    book.subscribe("alice", day(0), 1000)
    book.pay("alice", day(10), 1500)
    book.tick("alice", day(31))
    book.do(
        "IssueCreditNote",
        "alice",
        day(35),
        credit_note_id="cn-1",
        invoice_id="sub-1/1",
        amount_minor=200,
        reason="goodwill",
    )
    book.tick("alice", day(59))
    book.do("WriteOff", "alice", day(60), invoice_id="sub-1/2", reason="disputed")
    book.pay("alice", day(62), 1200)
    book.do(
        "RefundCredit",
        "alice",
        day(63),
        refund_id="rf-1",
        amount_minor=150,
        payment_method_kind="bank_transfer",
    )
    yield book
    book.close()


BALANCE_COLUMNS = (
    "receivable_minor, customer_credit_minor, invoiced_minor, paid_minor, discounted_minor, "
    "credited_minor, refunded_minor, written_off_minor, forgiven_minor"
)


class TestBalances:
    """Per account: what it owes, holds and has moved, by hand."""

    def test_totals_of_the_quarter(self, book: Book) -> None:
        """Invoiced 3 x 1000, paid 1500 + 1200, credited 200, written off 300, refunded 150:
        receivable 3000 - 1000 - 500 - 200 - 300 - 1000 = 0, credit 500 - 500 + 200 - 200
        + 200 - 150 = 50."""
        (row,) = book.rows(f"SELECT {BALANCE_COLUMNS}, subscriptions FROM balances")
        assert row == (0, 50, 3000, 2700, 0, 200, 150, 300, 0, 1)

    def test_applying_the_history_again_changes_nothing(self, book: Book) -> None:
        """Every event republished: the rows of every read model stay the same."""
        tables = ("balances", "invoices", "postings", "delinquency", "delinquency_invoices")
        before = {t: book.rows(f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables}
        book.replay()
        assert {t: book.rows(f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables} == before


class TestInvoices:
    """Per invoice: what settled it and its status."""

    def test_each_invoice_of_the_quarter(self, book: Book) -> None:
        """sub-1/1 paid (credited 200 of 1000), sub-1/2 settled 500 + 200 by credit then 300
        written off, sub-1/3 paid by the second payment."""
        rows = book.rows(
            "SELECT invoice_id, kind, amount_minor, paid_minor, credit_applied_minor, "
            "credited_minor, written_off_minor, outstanding_minor, overdue, status, "
            "last_payment_method_kind FROM invoices ORDER BY invoice_id"
        )
        assert rows == [
            ("sub-1/1", "cycle", 1000, 1000, 0, 200, 0, 0, False, "paid", "bank_transfer"),
            ("sub-1/2", "cycle", 1000, 0, 700, 0, 300, 0, True, "written_off", None),
            ("sub-1/3", "cycle", 1000, 1000, 0, 0, 0, 0, False, "paid", "bank_transfer"),
        ]

    def test_due_and_closing_dates(self, book: Book) -> None:
        """Due 14 days after each period start; closed when paid or written off."""
        rows = book.rows("SELECT invoice_id, due_at, closed_at FROM invoices ORDER BY invoice_id")
        assert rows == [
            ("sub-1/1", day(14), day(10)),
            ("sub-1/2", day(45), day(60)),
            ("sub-1/3", day(59 + 14), day(62)),
        ]


class TestPostings:
    """Every leg of every money event, summing to zero per currency."""

    def test_trial_balance(self, book: Book) -> None:
        """cash 1500 + 1200 - 150 = 2550; credit -(500 + 200 + 200) + 500 + 200 + 150 = -50;
        receivable 3000 - 3000 = 0; revenue -3000 + 200 = -2800; write_off 300."""
        assert book.rows("SELECT * FROM trial_balance()") == [
            ("EUR", "cash:bank_transfer", 2700, 150, 2550),
            ("EUR", "customer_credit", 850, 900, -50),
            ("EUR", "receivable", 3000, 3000, 0),
            ("EUR", "revenue", 200, 3000, -2800),
            ("EUR", "write_off", 300, 0, 300),
        ]
        assert book.rows("SELECT sum(signed_minor)::bigint, count(*) FROM postings") == [(0, 22)]

    def test_balances_as_of_past_times(self, book: Book) -> None:
        """From the postings up to each time: day 5, day 31 (its events included), day 45,
        day 61; and the latest equals the balances row."""
        as_of = {
            n: book.rows(
                f"SELECT {BALANCE_COLUMNS} FROM account_balances_as_of(%s) "
                "WHERE account_id = 'alice'",
                day(n),
            )
            for n in (5, 31, 45, 61, 100)
        }
        assert as_of[5] == [(1000, 0, 1000, 0, 0, 0, 0, 0, 0)]
        assert as_of[31] == [(500, 0, 2000, 1500, 0, 0, 0, 0, 0)]
        assert as_of[45] == [(300, 0, 2000, 1500, 0, 200, 0, 0, 0)]
        assert as_of[61] == [(1000, 0, 3000, 1500, 0, 200, 0, 300, 0)]
        assert as_of[100] == book.rows(f"SELECT {BALANCE_COLUMNS} FROM balances")
        assert book.rows("SELECT * FROM account_balances_as_of(%s)", day(-1)) == []


class TestBalancesReport:
    """`ledger report balances|invoices` prints the read models for people and scripts."""

    def test_json_as_of_a_past_time(self, book: Book, servers: Servers) -> None:
        """As of day 31: outstanding 500, invoiced 2000, paid 1500, in minor units."""
        done = ledger(
            "report",
            "balances",
            "--as-of",
            day(31).isoformat(),
            "--format",
            "json",
            env={"LEDGER_DATABASE_URL": servers.database_url},
        )
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout)
        assert document["as_of"] == "2026-02-01T09:00:00+00:00"
        (row,) = document["rows"]
        assert (row["outstanding_minor"], row["invoiced_minor"], row["paid_minor"]) == (
            500,
            2000,
            1500,
        )

    def test_table_and_csv(self, book: Book, servers: Servers) -> None:
        """The table shows 30.00 invoiced; the CSV keeps one line per invoice."""
        env = {"LEDGER_DATABASE_URL": servers.database_url}
        table = ledger("report", "balances", env=env)
        assert table.returncode == 0, table.stderr
        assert "30.00" in table.stdout
        done = ledger("report", "invoices", "--format", "csv", "--account", "alice", env=env)
        lines = done.stdout.splitlines()
        assert lines[0].startswith("account_id,invoice_id,currency,kind")
        assert [line.split(",")[1] for line in lines[1:]] == ["sub-1/1", "sub-1/2", "sub-1/3"]
