"""Bulk data of the collections benchmark, in SQL (run by bench/collections.sh in `odoo shell`).

INVOICES posted customer invoices of INVOICES / 5 customers, one in ten (drawn at random, the
same each time) overdue by 1 to 40 days, the others due within 30 days, each a consistent entry:
the move, its receivable line and its income line; plus one customer with STATEMENT_LINES
invoices of the last 25 days, due in 30 days (the statement PDF). What an earlier size left
(rows named BENCH/...) is deleted first.
"""

import os
import time

N = int(os.environ["INVOICES"])
C = max(1, N // 5)
S = int(os.environ.get("STATEMENT_LINES", "1000"))
cr = env.cr  # noqa: F821
company = env.company  # noqa: F821
started = time.monotonic()
cr.execute("DELETE FROM crm_collection_reminder")
cr.execute(
    "DELETE FROM mail_mail WHERE mail_message_id IN "
    "(SELECT id FROM mail_message WHERE model = 'crm.collection.reminder')"
)
cr.execute("DELETE FROM mail_message WHERE model = 'crm.collection.reminder'")
cr.execute(
    "DELETE FROM account_move_line WHERE move_id IN (SELECT id FROM account_move WHERE name LIKE 'BENCH/%%')"
)
cr.execute("DELETE FROM account_move WHERE name LIKE 'BENCH/%%'")
cr.execute(
    "DELETE FROM mail_message WHERE model = 'res.partner' "
    "AND res_id IN (SELECT id FROM res_partner WHERE ref = 'bench')"
)
cr.execute("DELETE FROM res_partner WHERE ref = 'bench'")
journal = env["account.journal"].search([("type", "=", "sale"), ("company_id", "=", company.id)], limit=1)  # noqa: F821
receivable = env["account.account"].search(  # noqa: F821
    [("account_type", "=", "asset_receivable"), ("company_ids", "in", company.id)], limit=1
)
income = journal.default_account_id
params = {
    "n": N,
    "c": C,
    "s": S,
    "company": company.id,
    "currency": company.currency_id.id,
    "journal": journal.id,
    "receivable": receivable.id,
    "income": income.id,
}
cr.execute(
    """
    INSERT INTO res_partner (name, email, is_company, active, type, ref, company_id, autopost_bills,
                             create_date, write_date)
    SELECT 'Bench customer ' || i, 'bench' || i || '@example.com', TRUE, TRUE, 'contact', 'bench',
           NULL, 'ask', now(), now()
      FROM generate_series(1, %(c)s + 1) i;
    UPDATE res_partner SET commercial_partner_id = id, complete_name = name WHERE ref = 'bench';
    """,
    params,
)
cr.execute("SELECT min(id), max(id) FROM res_partner WHERE ref = 'bench'")
first_partner, big_customer = cr.fetchone()
params.update(first=first_partner, big=big_customer)
# Invoice i: customer i %% C; one in ten overdue by 1..40 days, the others due in 1..30 days.
cr.execute(
    """
    SELECT setseed(0.42);
    CREATE TEMP TABLE bench_inv ON COMMIT DROP AS
    SELECT i, %(first)s + (i %% %(c)s) AS partner_id,
           (100 + i %% 900)::numeric AS amount,
           CASE WHEN random() < 0.1 THEN CURRENT_DATE - (1 + i %% 40)
                ELSE CURRENT_DATE + (1 + i %% 30) END AS due,
           CURRENT_DATE - 45 AS day
      FROM generate_series(1, %(n)s) i
    UNION ALL
    SELECT %(n)s + j, %(big)s, (10 + j %% 90)::numeric, CURRENT_DATE + 30 AS due,
           CURRENT_DATE - (j %% 25) AS day
      FROM generate_series(1, %(s)s) j;
    INSERT INTO account_move (name, move_type, state, payment_state, auto_post, journal_id, company_id,
                              currency_id, partner_id, commercial_partner_id, date, invoice_date,
                              invoice_date_due, amount_untaxed, amount_tax, amount_total, amount_residual,
                              amount_untaxed_signed, amount_total_signed, amount_total_in_currency_signed,
                              amount_residual_signed, create_date, write_date)
    SELECT 'BENCH/' || i, 'out_invoice', 'posted', 'not_paid', 'no', %(journal)s, %(company)s,
           %(currency)s, partner_id, partner_id, day, day, due, amount, 0, amount, amount,
           amount, amount, amount, amount, now(), now()
      FROM bench_inv;
    INSERT INTO account_move_line (move_id, name, display_type, account_id, partner_id, company_id,
                                   journal_id, currency_id, company_currency_id, date, date_maturity,
                                   parent_state, balance, debit, credit, amount_currency,
                                   amount_residual, amount_residual_currency, reconciled, quantity,
                                   create_date, write_date)
    SELECT m.id, m.name, 'payment_term', %(receivable)s, m.partner_id, m.company_id, m.journal_id,
           m.currency_id, m.currency_id, m.date, m.invoice_date_due, 'posted', m.amount_total,
           m.amount_total, 0, m.amount_total, m.amount_total, m.amount_total, FALSE, 1, now(), now()
      FROM account_move m WHERE m.name LIKE 'BENCH/%%'
    UNION ALL
    SELECT m.id, 'Goods', 'product', %(income)s, m.partner_id, m.company_id, m.journal_id,
           m.currency_id, m.currency_id, m.date, NULL, 'posted', -m.amount_total, 0, m.amount_total,
           -m.amount_total, 0, 0, FALSE, 1, now(), now()
      FROM account_move m WHERE m.name LIKE 'BENCH/%%';
    """,
    params,
)
cr.execute("ANALYZE account_move; ANALYZE account_move_line; ANALYZE res_partner")
cr.commit()
cr.execute("SELECT count(*) FROM account_move WHERE name LIKE 'BENCH/%%' AND invoice_date_due < CURRENT_DATE")
overdue = cr.fetchone()[0]
print(
    f"setup invoices={N + S} customers={C + 1} overdue={overdue} big_customer={big_customer} "
    f"seconds={time.monotonic() - started:.1f}"
)
