"""The read models' accounting of an event agrees with its postings, over random histories.

Whatever the commands, the changes an event makes to invoices' open balances add up to its
postings on receivable, the open balances of an account's invoices add up to what the domain
says they owe, and the balances totals explain receivable less credit.
"""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given

from ledger.account import Account, account_uuid
from projections.balances import TOTALS, invoiced_of, totals_of
from projections.receivable import debit_balance, invoice_changes
from tests.unit.histories import ACCOUNT_IDS, History, histories
from tests.unit.test_properties import PROPERTY, run, stored_events
from wire.event_records import ACCOUNT_EVENT_SCHEMAS, account_event_record


def account_records(history: History) -> tuple[dict[str, Account], list[tuple[str, dict]]]:
    """The accounts as the history left them, and every account event as (type, record)."""
    result = run(history)
    records = [
        (ACCOUNT_EVENT_SCHEMAS[type(e)].rpartition(".")[2], account_event_record(e))
        for e in stored_events(result.ledger)
        if type(e) in ACCOUNT_EVENT_SCHEMAS
    ]
    accounts = {a: result.ledger.account(a) for a in ACCOUNT_IDS}
    return {k: v for k, v in accounts.items() if v is not None}, records


class TestInvoiceChanges:
    """Open balances per invoice follow the receivable postings exactly."""

    @PROPERTY
    @given(history=histories())
    def test_each_events_changes_sum_to_its_receivable_postings(self, history: History) -> None:
        """For every event: the sum of its invoice changes is its receivable debit balance."""
        _, records = account_records(history)
        for event_type, record in records:
            changes = invoice_changes(event_type, record)
            assert sum(c.change_minor for c in changes) == debit_balance(
                "receivable", record.get("postings", [])
            ), (event_type, record)

    @PROPERTY
    @given(history=histories())
    def test_open_balances_are_what_each_invoice_still_owes(self, history: History) -> None:
        """Summed per invoice, the changes give each invoice's outstanding amount."""
        accounts, records = account_records(history)
        open_minor: dict[tuple[str, str], int] = defaultdict(int)
        for event_type, record in records:
            for change in invoice_changes(event_type, record):
                open_minor[record["account_id"], change.invoice_id] += change.change_minor
        for account_id, account in accounts.items():
            assert account.id == account_uuid(account_id)
            for invoice in account.invoices.values():
                assert open_minor[account_id, invoice.invoice_id] == invoice.outstanding_minor


class TestBalanceTotals:
    """The totals of the balances read model explain what the account owes and holds."""

    @PROPERTY
    @given(history=histories())
    def test_receivable_less_credit_is_invoiced_less_what_settled_it(
        self, history: History
    ) -> None:
        """receivable - credit = invoiced - paid - discounted - credited - written off
        - forgiven + refunded, for every account."""
        _, records = account_records(history)
        totals: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(TOTALS, 0))
        net: dict[str, int] = defaultdict(int)
        invoiced: dict[str, int] = defaultdict(int)
        for event_type, record in records:
            account_id = record["account_id"]
            postings = record.get("postings", [])
            net[account_id] += debit_balance("receivable", postings) + debit_balance(
                "customer_credit", postings
            )
            invoiced[account_id] += invoiced_of(event_type, record)
            for total, amount in totals_of(event_type, record).items():
                totals[account_id][total] += amount
        for account_id, owed in net.items():
            t = totals[account_id]
            assert owed == (
                invoiced[account_id]
                - t["paid_minor"]
                - t["discounted_minor"]
                - t["credited_minor"]
                - t["written_off_minor"]
                - t["forgiven_minor"]
                + t["refunded_minor"]
            )
