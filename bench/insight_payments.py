"""Insight benchmark, run by bench/insight_payments.sh through `odoo shell` (``env`` is given).

Generates CUSTOMERS customers and TRANSACTIONS payment transactions over 36 months in SQL
(Stripe and payment_demo, card / sepa_debit / demo methods, 3 brands, 12 % declines, 10 % in
EUR, 1 % refunded), then times, each beside a hand-written SQL query computing the same
figures:

1. the payment analysis grouped by month x method with its success rate, read as the web
   client's pivot reads it (``read_group``, lazy=False, as a user under the record rules);
2. the customer list sorted by lifetime value, first page (``web_search_read``, 80 rows, as
   the list view asks it);
3. the nightly recompute of the customers' figures (CLTV, ATV, frequency, RFM).

Ceilings: each report under 0.5 s and at most 1.5 x its hand-written query; the recompute
under 60 s.
"""

import os
import statistics
import time

CUSTOMERS = int(os.environ.get("CUSTOMERS", "20000"))
TRANSACTIONS = int(os.environ.get("TRANSACTIONS", "1000000"))
REPORT_CEILING = 0.5
RATIO_CEILING = 1.5
RECOMPUTE_CEILING = 60.0

cr = env.cr  # noqa: F821
company = env.company  # noqa: F821
stripe_provider = env.ref("payment.payment_provider_stripe")  # noqa: F821
demo_provider = env.ref("payment.payment_provider_demo")  # noqa: F821
stripe_provider.write({"stripe_secret_key": "sk_test_bench", "stripe_publishable_key": "pk_test_bench"})
(stripe_provider | demo_provider).write({"state": "test", "company_id": company.id})
eur = env.ref("base.EUR")  # noqa: F821
eur.active = True
env["res.currency.rate"].create({"currency_id": eur.id, "name": "2020-01-01", "rate": 0.9})  # noqa: F821
admin = env.ref("base.user_admin")  # noqa: F821
env.flush_all()  # noqa: F821


def timed(label, function):
    """Run ``function`` once to warm up, then 3 times; return the median seconds."""
    function()
    runs = []
    for _ in range(3):
        env.invalidate_all()  # noqa: F821
        started = time.perf_counter()
        result = function()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), result


# === DATA === #
started = time.perf_counter()
cr.execute(
    """
    INSERT INTO res_partner (name, complete_name, active, is_company, type, autopost_bills, email,
                             country_id, create_date, write_date, create_uid, write_uid)
    SELECT 'Bench Customer ' || g, 'Bench Customer ' || g, true, true, 'contact', 'ask',
           'bench' || g || '@example.com',
           (SELECT id FROM res_country ORDER BY id OFFSET g %% 50 LIMIT 1),
           now(), now(), 1, 1
      FROM generate_series(1, %(customers)s) g;
    UPDATE res_partner SET commercial_partner_id = id
     WHERE commercial_partner_id IS NULL AND name LIKE 'Bench Customer %%';
    """,
    {"customers": CUSTOMERS},
)
cr.execute(
    """
    CREATE TEMP TABLE bench_customers AS
    SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM res_partner WHERE name LIKE 'Bench Customer %%';
    CREATE UNIQUE INDEX ON bench_customers (n);
    """
)
cr.execute(
    """
    INSERT INTO payment_transaction (
        provider_id, payment_method_id, currency_id, partner_id, company_id, reference, state, amount,
        operation, create_date, write_date, last_state_change, create_uid, write_uid, is_post_processed,
        crm_method_type, crm_card_brand, crm_card_country_id, crm_decline_code, crm_decline_reason,
        crm_amount_company)
    SELECT CASE WHEN g %% 100 < 15 THEN %(demo)s ELSE %(stripe)s END,
           CASE WHEN g %% 100 < 15 THEN %(demo_method)s ELSE %(card)s END,
           CASE WHEN g %% 10 = 3 THEN %(eur)s ELSE %(usd)s END,
           c.id, %(company)s, 'BENCH-' || g,
           CASE WHEN (g * 7919) %% 100 < 12 THEN 'error' ELSE 'done' END,
           round((10 + (g * 31) %% 490)::numeric, 2),
           'offline', ts, ts, ts, 1, 1, true,
           CASE WHEN g %% 100 < 15 THEN NULL WHEN g %% 100 < 35 THEN 'sepa_debit' ELSE 'card' END,
           CASE WHEN g %% 100 >= 35 THEN (ARRAY['visa', 'mastercard', 'amex'])[1 + g %% 3] END,
           NULL,
           CASE WHEN (g * 7919) %% 100 < 12 THEN 'insufficient_funds' END,
           CASE WHEN (g * 7919) %% 100 < 12 THEN 'Insufficient funds' END,
           -- Odoo's conversion at the one EUR rate (0.9 EUR per USD), rounded to the cent.
           CASE WHEN g %% 10 = 3 THEN round((10 + (g * 31) %% 490)::numeric / 0.9, 2)
                ELSE round((10 + (g * 31) %% 490)::numeric, 2) END
      FROM generate_series(1::bigint, %(transactions)s) g
      JOIN bench_customers c ON c.n = g %% %(customers)s
      CROSS JOIN LATERAL (
          SELECT now() - make_interval(secs => (g::bigint * 104729) %% (36 * 30 * 86400)) AS ts
      ) d;
    INSERT INTO payment_transaction (
        provider_id, payment_method_id, currency_id, partner_id, company_id, reference, state, amount,
        operation, source_transaction_id, create_date, write_date, last_state_change, create_uid,
        write_uid, is_post_processed, crm_method_type, crm_card_brand, crm_amount_company)
    SELECT provider_id, payment_method_id, currency_id, partner_id, company_id, 'R-' || reference, 'done',
           -round(amount / 2, 2), 'refund', id, last_state_change + interval '3 days',
           last_state_change + interval '3 days', last_state_change + interval '3 days', 1, 1, true,
           crm_method_type, crm_card_brand, -round(crm_amount_company / 2, 2)
      FROM payment_transaction
     WHERE reference LIKE 'BENCH-%%' AND state = 'done' AND abs(hashtext(reference)) %% 100 = 0;
    """,
    {
        "demo": demo_provider.id,
        "stripe": stripe_provider.id,
        "demo_method": env.ref("payment_demo.payment_method_demo").id,  # noqa: F821
        "card": env.ref("payment.payment_method_card").id,  # noqa: F821
        "eur": eur.id,
        "usd": company.currency_id.id,
        "company": company.id,
        "transactions": TRANSACTIONS,
        "customers": CUSTOMERS,
    },
)
cr.execute("SELECT count(*) FROM payment_transaction")
tx_total = cr.fetchone()[0]
env.cr.commit()  # noqa: F821
cr.execute("ANALYZE payment_transaction; ANALYZE res_partner")
print(
    f"bench: generated {CUSTOMERS} customers and {tx_total} payment transactions "
    f"in {time.perf_counter() - started:.1f} s"
)

# === 3. NIGHTLY RECOMPUTE (first: the list below sorts by its figures) === #
Partner = env["res.partner"]  # noqa: F821
company.crm_customer_value_date = False
started = time.perf_counter()
Partner._cron_crm_recompute_customer_value()
recompute = time.perf_counter() - started
env.cr.commit()  # noqa: F821
cr.execute("ANALYZE res_partner")


def hand_recompute():
    cr.execute(
        """
        SELECT p.commercial_partner_id,
               sum(t.amount) FILTER (WHERE t.operation <> 'refund') AS collected,
               sum(t.amount) AS ltv,
               count(*) FILTER (WHERE t.operation <> 'refund') AS n,
               min(t.last_state_change::date),
               max(t.last_state_change::date) FILTER (WHERE t.operation <> 'refund'),
               count(*) FILTER (WHERE t.operation <> 'refund'
                                  AND t.last_state_change > now() - interval '24 months')
          FROM payment_transaction t JOIN res_partner p ON p.id = t.partner_id
         WHERE t.company_id = %s AND t.state = 'done' AND t.operation <> 'validation'
         GROUP BY 1
        """,
        (company.id,),
    )
    return cr.fetchall()


hand_recompute_time, _rows = timed("hand recompute", hand_recompute)

# === 1. PAYMENT ANALYSIS, MONTH x METHOD, SUCCESS RATE === #
Analysis = env["crm.payment.analysis"].with_user(admin)  # noqa: F821


def orm_analysis():
    return Analysis.read_group(
        [],
        ["success_rate:avg", "attempt_count:sum", "success_count:sum"],
        ["date:month", "method_type"],
        lazy=False,
    )


def hand_analysis():
    cr.execute(
        """
        SELECT date_trunc('month', COALESCE(t.last_state_change, t.create_date)::date) AS month,
               COALESCE(t.crm_method_type, ppm.code, pm.code) AS method,
               100.0 * count(*) FILTER (WHERE t.state IN ('done', 'authorized'))
                     / NULLIF(count(*), 0) AS rate,
               count(*) AS attempts
          FROM payment_transaction t
          JOIN payment_method pm ON pm.id = t.payment_method_id
          LEFT JOIN payment_method ppm ON ppm.id = pm.primary_payment_method_id
         WHERE t.company_id = %s AND t.operation NOT IN ('refund', 'validation')
           AND t.state IN ('done', 'authorized', 'error')
         GROUP BY 1, 2
        """,
        (company.id,),
    )
    return cr.fetchall()


orm_time, groups = timed("analysis", orm_analysis)
hand_time, hand_rows = timed("hand analysis", hand_analysis)
# Groups without attempts (a month of refunds only) have no rate; the hand query has no row.
orm_figures = sorted((g["attempt_count"], round(g["success_rate"], 4)) for g in groups if g["attempt_count"])
hand_figures = sorted((attempts, round(float(rate), 4)) for _m, _k, rate, attempts in hand_rows)
same_analysis = orm_figures == hand_figures

# === 2. CUSTOMER LIST SORTED BY LIFETIME VALUE === #
Partners = env["res.partner"].with_user(admin)  # noqa: F821
specification = {
    name: {}
    for name in (
        "complete_name",
        "phone",
        "email",
        "city",
        "country_id",
        "crm_lifetime_value",
        "crm_rfm_segment",
        "crm_last_payment_date",
    )
}


def orm_list():
    return Partners.web_search_read(
        [["is_company", "=", True]],
        specification,
        limit=80,
        order="crm_lifetime_value desc",
        count_limit=10001,
    )


def hand_list():
    key = str(company.id)
    cr.execute(
        """
        SELECT p.id, p.complete_name, p.phone, p.email, p.city, c.name, (p.crm_lifetime_value -> %s)::numeric,
               p.crm_rfm_segment ->> %s, p.crm_last_payment_date ->> %s
          FROM res_partner p LEFT JOIN res_country c ON c.id = p.country_id
         WHERE p.active AND p.is_company
         ORDER BY p.crm_lifetime_value -> %s DESC NULLS FIRST, p.complete_name, p.id
         LIMIT 80
        """,
        (key, key, key, key),
    )
    page = cr.fetchall()
    cr.execute("SELECT count(*) FROM (SELECT 1 FROM res_partner WHERE active AND is_company LIMIT 10001) x")
    return page, cr.fetchone()[0]


list_time, page = timed("list", orm_list)
hand_list_time, (hand_page, _count) = timed("hand list", hand_list)
same_list = [r["crm_lifetime_value"] for r in page["records"]] == [float(row[6] or 0) for row in hand_page]


def verdict(seconds, hand):
    ok = seconds < REPORT_CEILING and seconds <= RATIO_CEILING * hand
    return "OK" if ok else "OVER"


print(
    f"bench: payment analysis month x method with success rate ({len(groups)} groups): "
    f"{orm_time * 1000:.0f} ms; hand SQL {hand_time * 1000:.0f} ms; ratio {orm_time / hand_time:.2f} "
    f"(ceiling {REPORT_CEILING * 1000:.0f} ms and {RATIO_CEILING}x) {verdict(orm_time, hand_time)}; "
    f"same figures: {'yes' if same_analysis else 'NO'}"
)
print(
    f"bench: customer list by lifetime value, first page of 80: {list_time * 1000:.0f} ms; "
    f"hand SQL {hand_list_time * 1000:.0f} ms; ratio {list_time / hand_list_time:.2f} "
    f"(ceiling {REPORT_CEILING * 1000:.0f} ms and {RATIO_CEILING}x) {verdict(list_time, hand_list_time)}; "
    f"same page: {'yes' if same_list else 'NO'}"
)
print(
    f"bench: nightly recompute of {CUSTOMERS} customers' figures: {recompute:.1f} s "
    f"(ceiling {RECOMPUTE_CEILING:.0f} s) {'OK' if recompute < RECOMPUTE_CEILING else 'OVER'}; "
    f"hand SQL of the per-customer sums {hand_recompute_time:.1f} s"
)
