"""The delinquency read model's tables and the SQL functions that age open balances as of a date.

Days past due depend on the date they are counted at: the tables store dates and amounts, and
`invoice_balances_as_of` / `delinquency_as_of` count days, buckets and status as of any
business time. The projection stores `delinquency_as_of` at each account event's own time.
"""

from __future__ import annotations

TABLES = """
CREATE TABLE IF NOT EXISTS delinquency (
    account_id text PRIMARY KEY,
    currency text NOT NULL,
    opened_at timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'current',
    open_minor bigint NOT NULL DEFAULT 0,
    overdue_minor bigint NOT NULL DEFAULT 0,
    oldest_unpaid_due_at timestamptz,
    dunning_stage integer NOT NULL DEFAULT 0,
    failed_attempts integer NOT NULL DEFAULT 0,
    installments_paid integer NOT NULL DEFAULT 0,
    installments_missed integer NOT NULL DEFAULT 0,
    installments_remaining integer NOT NULL DEFAULT 0,
    renegotiation_remaining_minor bigint NOT NULL DEFAULT 0,
    next_installment_due_at timestamptz,
    reminder_days_before_due integer[] NOT NULL DEFAULT '{}',
    reminder_days_after_due integer[] NOT NULL DEFAULT '{}',
    retry_days_after_failure integer[] NOT NULL DEFAULT '{}',
    grace_days integer NOT NULL DEFAULT 0,
    policy_final_action text NOT NULL DEFAULT 'NONE',
    hardship_reason text,
    hardship_started_at timestamptz,
    hardship_until timestamptz,
    final_action text,
    final_action_at timestamptz,
    account_version bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS delinquency_invoices (
    account_id text NOT NULL,
    invoice_id text NOT NULL,
    currency text NOT NULL,
    renegotiation_plan_id text,
    renegotiation_defaulted boolean NOT NULL DEFAULT false,
    due_at timestamptz NOT NULL,
    open_minor bigint NOT NULL,
    dunning_stage integer NOT NULL DEFAULT 0,
    last_reminder text,
    last_reminder_at timestamptz,
    failed_attempts integer NOT NULL DEFAULT 0,
    next_retry_at timestamptz,
    final_action_at timestamptz,
    closed_at timestamptz,
    closed_by text,
    account_version bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, invoice_id)
);
CREATE TABLE IF NOT EXISTS receivable_movements (
    event_id text NOT NULL,
    account_id text NOT NULL,
    invoice_id text NOT NULL,
    currency text NOT NULL,
    cause text NOT NULL,
    change_minor bigint NOT NULL,
    due_at timestamptz,
    occurred_at timestamptz NOT NULL,
    account_version bigint NOT NULL,
    PRIMARY KEY (event_id, invoice_id)
);
CREATE INDEX IF NOT EXISTS receivable_movements_by_invoice
    ON receivable_movements (account_id, invoice_id, occurred_at);
CREATE TABLE IF NOT EXISTS delinquency_invoice_facts (
    account_id text NOT NULL,
    invoice_id text NOT NULL,
    account_version bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    dunning_stage integer NOT NULL,
    failed_attempts integer NOT NULL,
    renegotiation_defaulted boolean NOT NULL,
    PRIMARY KEY (account_id, invoice_id, account_version)
);
"""

COMMENTS = """
COMMENT ON TABLE delinquency IS
    'One row per account: how late it pays, its dunning, renegotiation and hardship, as of '
    'updated_at; delinquency_as_of(time) gives the same as of any time. See docs/read-models.md.';
COMMENT ON COLUMN delinquency.account_id IS 'The upstream account id.';
COMMENT ON COLUMN delinquency.currency IS 'ISO 4217 code of every amount of the account.';
COMMENT ON COLUMN delinquency.account_version IS 'The version of the last account event applied.';
COMMENT ON COLUMN delinquency.updated_at IS
    'The business time of that event: the columns marked "as of updated_at" count at it.';
COMMENT ON COLUMN delinquency.opened_at IS 'Business time the account was opened.';
COMMENT ON COLUMN delinquency.status IS
    'As of updated_at: cancelled_for_nonpayment, suspended, hardship, renegotiated, in_dunning, '
    'overdue, written_off or current, the first that holds (docs/read-models.md).';
COMMENT ON COLUMN delinquency.open_minor IS 'As of updated_at: what the open invoices still owe.';
COMMENT ON COLUMN delinquency.overdue_minor IS
    'As of updated_at: what invoices at least one day past due (UTC dates) still owe.';
COMMENT ON COLUMN delinquency.oldest_unpaid_due_at IS 'Due date of the oldest open invoice.';
COMMENT ON COLUMN delinquency.dunning_stage IS
    'Highest dunning stage (stage_N reminder after the due date) of an open invoice; 0: none.';
COMMENT ON COLUMN delinquency.failed_attempts IS 'Failed charges of the open invoices, summed.';
COMMENT ON COLUMN delinquency.installments_paid IS 'Renegotiation installments that owe nothing.';
COMMENT ON COLUMN delinquency.installments_missed IS
    'Renegotiation installments open at least one day past their due date.';
COMMENT ON COLUMN delinquency.installments_remaining IS 'Renegotiation installments still open.';
COMMENT ON COLUMN delinquency.renegotiation_remaining_minor IS 'What the open installments owe.';
COMMENT ON COLUMN delinquency.next_installment_due_at IS
    'Earliest due date of an open installment not yet past due.';
COMMENT ON COLUMN delinquency.reminder_days_before_due IS 'Dunning policy: reminder days before due.';
COMMENT ON COLUMN delinquency.reminder_days_after_due IS
    'Dunning policy: days after due of reminder stages 1, 2, ...';
COMMENT ON COLUMN delinquency.retry_days_after_failure IS
    'Dunning policy: days after the n-th failed charge until its retry.';
COMMENT ON COLUMN delinquency.grace_days IS 'Dunning policy: days after due until the final action.';
COMMENT ON COLUMN delinquency.policy_final_action IS 'Dunning policy: NONE, SUSPEND or CANCEL.';
COMMENT ON COLUMN delinquency.hardship_reason IS 'Reason of the last hardship pause reported.';
COMMENT ON COLUMN delinquency.hardship_started_at IS 'When the last hardship pause started.';
COMMENT ON COLUMN delinquency.hardship_until IS 'When the last hardship pause ends.';
COMMENT ON COLUMN delinquency.final_action IS
    'SUSPEND or CANCEL once the dunning final action was taken; NULL again after a resume or '
    'reactivation.';
COMMENT ON COLUMN delinquency.final_action_at IS 'When the final action was taken.';
COMMENT ON TABLE delinquency_invoices IS
    'One row per invoice: its open balance, due date and dunning. See docs/read-models.md.';
COMMENT ON COLUMN delinquency_invoices.account_id IS 'The upstream account id.';
COMMENT ON COLUMN delinquency_invoices.invoice_id IS 'The invoice (as in invoices).';
COMMENT ON COLUMN delinquency_invoices.currency IS 'ISO 4217 code of its amounts.';
COMMENT ON COLUMN delinquency_invoices.account_version IS
    'The version of the last account event applied to it.';
COMMENT ON COLUMN delinquency_invoices.updated_at IS 'The business time of that event.';
COMMENT ON COLUMN delinquency_invoices.renegotiation_plan_id IS 'The plan of an installment.';
COMMENT ON COLUMN delinquency_invoices.renegotiation_defaulted IS 'The installment''s plan defaulted.';
COMMENT ON COLUMN delinquency_invoices.due_at IS 'Due date now (acceleration moves it).';
COMMENT ON COLUMN delinquency_invoices.open_minor IS 'What it still owes now, in minor units.';
COMMENT ON COLUMN delinquency_invoices.dunning_stage IS 'Highest stage_N reminder sent; 0: none.';
COMMENT ON COLUMN delinquency_invoices.last_reminder IS
    'Stage of the last reminder: before_due_<days>, stage_<n> or charge_failed_<attempt>.';
COMMENT ON COLUMN delinquency_invoices.last_reminder_at IS 'When the last reminder was due.';
COMMENT ON COLUMN delinquency_invoices.failed_attempts IS 'Failed charges of the invoice.';
COMMENT ON COLUMN delinquency_invoices.next_retry_at IS
    'When the next charge retry is scheduled; NULL once due or none.';
COMMENT ON COLUMN delinquency_invoices.final_action_at IS 'When its final action was taken.';
COMMENT ON COLUMN delinquency_invoices.closed_at IS 'When it came to owe nothing.';
COMMENT ON COLUMN delinquency_invoices.closed_by IS
    'The cause that closed it: paid, credit_applied, discounted, written_off or renegotiated.';
COMMENT ON TABLE receivable_movements IS
    'Every change of an invoice''s open balance or due date, with its business time: the '
    'history aging as of a past date is computed from. See docs/read-models.md.';
COMMENT ON COLUMN receivable_movements.event_id IS 'The event that made the change.';
COMMENT ON COLUMN receivable_movements.account_id IS 'The upstream account id.';
COMMENT ON COLUMN receivable_movements.invoice_id IS 'The invoice changed.';
COMMENT ON COLUMN receivable_movements.currency IS 'ISO 4217 code of the change.';
COMMENT ON COLUMN receivable_movements.occurred_at IS 'The business time of the event.';
COMMENT ON COLUMN receivable_movements.account_version IS 'The account version of the event.';
COMMENT ON COLUMN receivable_movements.cause IS
    'issued, installment, paid, credit_applied, discounted, written_off, renegotiated or '
    'accelerated.';
COMMENT ON COLUMN receivable_movements.change_minor IS
    'Change of the open balance, in minor units (positive: owed more).';
COMMENT ON COLUMN receivable_movements.due_at IS 'The due date from then on, if the event set it.';
COMMENT ON TABLE delinquency_invoice_facts IS
    'Every change of an invoice''s dunning stage, failed charges or plan default, with its '
    'business time: the history delinquency as of a past date reads them from.';
COMMENT ON COLUMN delinquency_invoice_facts.account_id IS 'The upstream account id.';
COMMENT ON COLUMN delinquency_invoice_facts.invoice_id IS 'The invoice or installment.';
COMMENT ON COLUMN delinquency_invoice_facts.account_version IS 'The event that made the change.';
COMMENT ON COLUMN delinquency_invoice_facts.occurred_at IS 'The business time of that event.';
COMMENT ON COLUMN delinquency_invoice_facts.dunning_stage IS
    'From then on: the highest stage_N reminder sent; 0: none.';
COMMENT ON COLUMN delinquency_invoice_facts.failed_attempts IS
    'From then on: the failed charges of the invoice.';
COMMENT ON COLUMN delinquency_invoice_facts.renegotiation_defaulted IS
    'From then on: the installment''s plan had defaulted.';
"""

FUNCTIONS = """
CREATE OR REPLACE FUNCTION invoice_balances_as_of(as_of timestamptz, only_account text DEFAULT NULL)
RETURNS TABLE (account_id text, invoice_id text, currency text, renegotiation_plan_id text,
               due_at timestamptz, open_minor bigint, days_past_due integer, aging_bucket text)
LANGUAGE sql STABLE AS $$
    SELECT h.account_id, h.invoice_id, h.currency, h.renegotiation_plan_id, h.due_at,
           h.open_minor, d.days,
           CASE WHEN h.open_minor <= 0 THEN NULL WHEN d.days <= 0 THEN 'current'
                WHEN d.days <= 30 THEN '1-30' WHEN d.days <= 60 THEN '31-60'
                WHEN d.days <= 90 THEN '61-90' ELSE '91+' END
    FROM (
        SELECT m.account_id, m.invoice_id, min(m.currency) AS currency,
               min(i.renegotiation_plan_id) AS renegotiation_plan_id,
               (array_agg(m.due_at ORDER BY m.account_version DESC)
                    FILTER (WHERE m.due_at IS NOT NULL))[1] AS due_at,
               sum(m.change_minor)::bigint AS open_minor
        FROM receivable_movements m
        JOIN delinquency_invoices i ON i.account_id = m.account_id AND i.invoice_id = m.invoice_id
        WHERE m.occurred_at <= as_of AND (only_account IS NULL OR m.account_id = only_account)
        GROUP BY m.account_id, m.invoice_id
    ) h
    CROSS JOIN LATERAL (SELECT CASE WHEN h.open_minor > 0 THEN greatest(0,
        (as_of AT TIME ZONE 'UTC')::date - (h.due_at AT TIME ZONE 'UTC')::date) END AS days) d
$$;
COMMENT ON FUNCTION invoice_balances_as_of(timestamptz, text) IS
    'Each invoice issued by as_of: its due date and open balance then, from receivable_movements '
    '(so invoices paid after as_of count as open), with days past due (UTC calendar days, 0 '
    'until the day after the due date) and aging bucket: current, 1-30, 31-60, 61-90 or 91+.';

CREATE OR REPLACE FUNCTION delinquency_as_of(as_of timestamptz, only_account text DEFAULT NULL)
RETURNS TABLE (account_id text, currency text, status text, open_minor bigint,
               overdue_minor bigint, oldest_unpaid_due_at timestamptz, days_past_due integer,
               current_minor bigint, past_due_1_30_minor bigint, past_due_31_60_minor bigint,
               past_due_61_90_minor bigint, past_due_91_plus_minor bigint,
               dunning_stage integer, failed_attempts integer, installments_paid integer,
               installments_missed integer, installments_remaining integer,
               renegotiation_remaining_minor bigint, next_installment_due_at timestamptz,
               hardship_until timestamptz, final_action text)
LANGUAGE sql STABLE AS $$
    WITH b AS (
        -- An invoice's dunning stage, failed charges and default as of as_of: its last fact
        -- by then, none before the first; an invoice with no fact kept at all was projected
        -- before facts were kept (rebuild to date them) and keeps its latest.
        SELECT b.*,
               CASE WHEN k.kept THEN coalesce(f.dunning_stage, 0) ELSE i.dunning_stage END
                   AS dunning_stage,
               CASE WHEN k.kept THEN coalesce(f.failed_attempts, 0) ELSE i.failed_attempts END
                   AS failed_attempts,
               CASE WHEN k.kept THEN coalesce(f.renegotiation_defaulted, false)
                    ELSE i.renegotiation_defaulted END AS renegotiation_defaulted,
               i.closed_at, i.closed_by, b.open_minor > 0 AS open,
               b.renegotiation_plan_id IS NOT NULL AS installment
        FROM invoice_balances_as_of(as_of, only_account) b
        JOIN delinquency_invoices i ON i.account_id = b.account_id AND i.invoice_id = b.invoice_id
        LEFT JOIN LATERAL (
            SELECT g.dunning_stage, g.failed_attempts, g.renegotiation_defaulted
            FROM delinquency_invoice_facts g
            WHERE g.account_id = b.account_id AND g.invoice_id = b.invoice_id
              AND g.occurred_at <= as_of
            ORDER BY g.occurred_at DESC, g.account_version DESC
            LIMIT 1
        ) f ON true
        CROSS JOIN LATERAL (
            SELECT EXISTS (
                SELECT 1 FROM delinquency_invoice_facts g
                WHERE g.account_id = b.account_id AND g.invoice_id = b.invoice_id
            ) AS kept
        ) k
    ), a AS (
        SELECT b.account_id,
            coalesce(sum(b.open_minor) FILTER (WHERE open), 0) AS open_minor,
            coalesce(sum(b.open_minor) FILTER (WHERE b.days_past_due >= 1), 0) AS overdue_minor,
            min(b.due_at) FILTER (WHERE open) AS oldest_unpaid_due_at,
            max(b.days_past_due) AS days_past_due,
            coalesce(sum(b.open_minor) FILTER (WHERE b.aging_bucket = 'current'), 0) AS b0,
            coalesce(sum(b.open_minor) FILTER (WHERE b.aging_bucket = '1-30'), 0) AS b1,
            coalesce(sum(b.open_minor) FILTER (WHERE b.aging_bucket = '31-60'), 0) AS b2,
            coalesce(sum(b.open_minor) FILTER (WHERE b.aging_bucket = '61-90'), 0) AS b3,
            coalesce(sum(b.open_minor) FILTER (WHERE b.aging_bucket = '91+'), 0) AS b4,
            coalesce(max(b.dunning_stage) FILTER (WHERE open), 0) AS dunning_stage,
            coalesce(sum(b.failed_attempts) FILTER (WHERE open), 0) AS failed_attempts,
            count(*) FILTER (WHERE installment AND NOT open) AS installments_paid,
            count(*) FILTER (WHERE installment AND b.days_past_due >= 1) AS installments_missed,
            count(*) FILTER (WHERE installment AND open) AS installments_remaining,
            coalesce(sum(b.open_minor) FILTER (WHERE installment AND open), 0) AS reneg_minor,
            min(b.due_at) FILTER (WHERE installment AND open AND b.due_at >= as_of) AS next_due,
            bool_or(b.days_past_due >= 1 AND (b.dunning_stage > 0 OR b.failed_attempts > 0))
                AS in_dunning,
            bool_or(installment AND open AND NOT b.renegotiation_defaulted) AS renegotiated,
            (array_agg(b.closed_by ORDER BY b.closed_at DESC)
                FILTER (WHERE NOT open AND b.closed_at <= as_of))[1] AS last_closed_by
        FROM b GROUP BY b.account_id
    )
    SELECT d.account_id, d.currency,
        CASE
            WHEN d.final_action = 'CANCEL' AND d.final_action_at <= as_of
                THEN 'cancelled_for_nonpayment'
            WHEN d.final_action = 'SUSPEND' AND d.final_action_at <= as_of THEN 'suspended'
            WHEN d.hardship_started_at <= as_of AND as_of < d.hardship_until THEN 'hardship'
            WHEN a.renegotiated THEN 'renegotiated'
            WHEN a.in_dunning THEN 'in_dunning'
            WHEN a.overdue_minor > 0 THEN 'overdue'
            WHEN a.open_minor = 0 AND a.last_closed_by = 'written_off' THEN 'written_off'
            ELSE 'current'
        END,
        coalesce(a.open_minor, 0)::bigint, coalesce(a.overdue_minor, 0)::bigint,
        a.oldest_unpaid_due_at, coalesce(a.days_past_due, 0)::integer,
        coalesce(a.b0, 0)::bigint, coalesce(a.b1, 0)::bigint, coalesce(a.b2, 0)::bigint,
        coalesce(a.b3, 0)::bigint, coalesce(a.b4, 0)::bigint,
        coalesce(a.dunning_stage, 0)::integer, coalesce(a.failed_attempts, 0)::integer,
        coalesce(a.installments_paid, 0)::integer, coalesce(a.installments_missed, 0)::integer,
        coalesce(a.installments_remaining, 0)::integer, coalesce(a.reneg_minor, 0)::bigint,
        a.next_due, CASE WHEN as_of < d.hardship_until THEN d.hardship_until END,
        CASE WHEN d.final_action_at <= as_of THEN d.final_action END
    FROM delinquency d LEFT JOIN a ON a.account_id = d.account_id
    WHERE d.opened_at <= as_of AND (only_account IS NULL OR d.account_id = only_account)
$$;
COMMENT ON FUNCTION delinquency_as_of(timestamptz, text) IS
    'Each account opened by as_of (or only only_account): status, open and overdue balance, '
    'days past due of the oldest open invoice, the open balance in aging buckets, dunning and '
    'renegotiation progress, all as of as_of; see docs/read-models.md.';
"""

# The same functions for one account at a time, whose filters an index answers: the
# projector refreshes a batch's accounts with them (`only_account IS NULL OR ...` makes
# PostgreSQL scan every account's rows for each).
ONE_ACCOUNT_FUNCTIONS = (
    FUNCTIONS.replace(
        "(only_account IS NULL OR m.account_id = only_account)", "m.account_id = only_account"
    )
    .replace("(only_account IS NULL OR d.account_id = only_account)", "d.account_id = only_account")
    .replace("only_account text DEFAULT NULL", "only_account text")
    .replace("invoice_balances_as_of(", "account_invoice_balances_as_of(")
    .replace("FUNCTION delinquency_as_of(", "FUNCTION account_delinquency_as_of(")
)
SCHEMA = TABLES + COMMENTS + FUNCTIONS + ONE_ACCOUNT_FUNCTIONS
