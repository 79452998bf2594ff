# Timing of bench/insight_subscriptions.sh, run by `odoo shell` on the generated data: each
# report as the web client asks for it (read_group as a CRM user, record rules applied), beside
# a hand-written SQL query computing the same figures (checked equal), best of 9 runs; then the
# nightly recompute of the subscriber figures. Prints "result" lines and "FAIL" on a miss.
import time  # noqa: E402

from dateutil.relativedelta import relativedelta  # noqa: E402

bench_env = env  # noqa: F821
bench_company = bench_env.company
bench_user = bench_env["res.users"].search([("login", "=", "bench_insight")], limit=1)
bench_today = bench_env["crm.subscription"]._crm_company_today(bench_company)
bench_since = bench_today.replace(day=1) - relativedelta(months=23)
bench_failed = False


def bench_best(function, runs=9):
    """Return (best seconds, last result) of ``runs`` calls, caches cleared before each."""
    best, result = None, None
    for __ in range(runs):
        bench_env.invalidate_all()
        started = time.perf_counter()
        result = function()
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return best, result


def bench_report(name, orm_seconds, sql_seconds, ceiling=0.5, ratio_ceiling=1.5):
    global bench_failed
    ratio = orm_seconds / sql_seconds if sql_seconds else 0.0
    verdict = "ok" if orm_seconds < ceiling and ratio <= ratio_ceiling else "FAIL"
    bench_failed |= verdict == "FAIL"
    print(
        f"result {name}: report {orm_seconds * 1000:.0f} ms (ceiling {ceiling * 1000:.0f} ms), "
        f"hand-written SQL {sql_seconds * 1000:.0f} ms, ratio x{ratio:.2f} "
        f"(ceiling x{ratio_ceiling}) {verdict}"
    )


# 1. The MRR movements report over 24 months: the metrics pivot, month by month, every measure.
bench_measures = [
    "mrr:sum",
    "new_mrr:sum",
    "expansion_mrr:sum",
    "contraction_mrr:sum",
    "churn_mrr:sum",
    "reactivation_mrr:sum",
    "net_new_mrr:sum",
    "customers:sum",
    "churned_customers:sum",
    "logo_churn_rate:sum",
    "gross_revenue_churn:sum",
    "nrr:sum",
    "grr:sum",
    "arpa:sum",
    "quick_ratio:sum",
]
Metric = bench_env["crm.subscription.metric"].with_user(bench_user)
orm_time, groups = bench_best(
    lambda: Metric.read_group([("month", ">=", bench_since)], bench_measures, ["month:month"], lazy=False)
)
BENCH_MOVEMENTS_SQL = """
WITH flows AS (
    SELECT date_trunc('month', date::timestamp)::date AS month, SUM(mrr_change) AS net,
           SUM(mrr_change) FILTER (WHERE kind = 'new') AS new,
           SUM(mrr_change) FILTER (WHERE kind = 'expansion') AS expansion,
           SUM(mrr_change) FILTER (WHERE kind = 'contraction') AS contraction,
           SUM(mrr_change) FILTER (WHERE kind = 'churn') AS churn,
           SUM(mrr_change) FILTER (WHERE kind = 'reactivation') AS reactivation,
           COUNT(*) FILTER (WHERE kind IN ('new', 'reactivation'))
               - COUNT(*) FILTER (WHERE kind = 'churn') AS logos,
           COUNT(*) FILTER (WHERE kind = 'churn') AS churned
      FROM crm_subscription_movement WHERE company_id = %s GROUP BY 1
), running AS (
    SELECT flows.*, SUM(net) OVER (ORDER BY month) AS mrr, SUM(logos) OVER (ORDER BY month) AS customers
      FROM flows
)
SELECT month, mrr, customers, new, expansion, contraction, churn, reactivation, net, churned,
       ROUND(100 * churned::numeric / NULLIF(customers - logos, 0), 2) AS logo_churn,
       ROUND(100 * (mrr - net + COALESCE(expansion, 0) + COALESCE(contraction, 0) + COALESCE(churn, 0))
             / NULLIF(mrr - net, 0), 2) AS nrr
  FROM running WHERE month >= %s ORDER BY month
"""


def bench_movements_sql():
    bench_env.cr.execute(BENCH_MOVEMENTS_SQL, [bench_company.id, bench_since])
    return bench_env.cr.fetchall()


sql_time, rows = bench_best(bench_movements_sql)
by_month = {row[0]: row for row in rows}
for group in groups:
    month = group["__range"]["month:month"]["from"] if "__range" in group else None
    month = bench_env["crm.subscription.metric"]._fields["month"].convert_to_cache(month[:10], None)
    row = by_month[month]
    if (round(group["mrr"], 2), group["customers"]) != (round(float(row[1]), 2), row[2]) or (
        float(group["nrr"] or 0) != float(row[11] or 0)
    ):
        print(
            f"FAIL: {month}: report {group['mrr']}, {group['customers']}, {group['nrr']}; "
            f"SQL {row[1:3]}, {row[11]}"
        )
        bench_failed = True
print(
    f"result movements: {len(groups)} months, "
    f"{bench_env['crm.subscription.movement'].search_count([])} movements; "
    f"last month MRR {groups[-1]['mrr']:.2f}, {groups[-1]['customers']} customers, NRR {groups[-1]['nrr']} %"
)
bench_report("MRR movements report (24 months)", orm_time, sql_time)

# 2. The cohort table: cohort month x months since first, customers and MRR retained.
Cohort = bench_env["crm.subscription.cohort"].with_user(bench_user)
orm_time, cells = bench_best(
    lambda: Cohort.read_group(
        [],
        ["customers:sum", "mrr:sum", "customer_retention:sum"],
        ["cohort", "months_since"],
        lazy=False,
    )
)
BENCH_COHORT_SQL = """
WITH step AS (
    SELECT cohort_month AS cohort, cohort_age AS since,
           SUM(CASE WHEN kind = 'churn' THEN -1 WHEN kind IN ('new', 'reactivation') THEN 1 ELSE 0 END) AS n,
           SUM(mrr_change) AS mrr
      FROM crm_subscription_movement
     WHERE company_id = %s AND cohort_month IS NOT NULL
  GROUP BY 1, 2
), grid AS (
    SELECT c.cohort, gs AS since
      FROM (SELECT DISTINCT cohort FROM step) c,
           generate_series(0, ((date_part('year', CURRENT_DATE) - date_part('year', c.cohort)) * 12
                               + date_part('month', CURRENT_DATE) - date_part('month', c.cohort))::int) gs
), cell AS (
    SELECT g.cohort, g.since, SUM(COALESCE(s.n, 0)) OVER c AS n, SUM(COALESCE(s.mrr, 0)) OVER c AS mrr
      FROM grid g LEFT JOIN step s ON s.cohort = g.cohort AND s.since = g.since
    WINDOW c AS (PARTITION BY g.cohort ORDER BY g.since)
)
SELECT c.cohort, c.since, c.n, c.mrr, ROUND(100 * c.n / NULLIF(f.n, 0), 2) AS retention
  FROM cell c JOIN cell f ON f.cohort = c.cohort AND f.since = 0
 WHERE c.n > 0
"""


def bench_cohort_sql():
    bench_env.cr.execute(BENCH_COHORT_SQL, [bench_company.id])
    return bench_env.cr.fetchall()


sql_time, rows = bench_best(bench_cohort_sql)
hand = {(row[0], int(row[1])): (row[2], round(float(row[3]), 2)) for row in rows}
mismatch = 0
for cell in cells:
    cohort = (
        bench_env["crm.subscription.cohort"]
        ._fields["cohort_month"]
        .convert_to_cache(cell["cohort"] + "-01", None)
    )
    if hand.get((cohort, cell["months_since"])) != (cell["customers"], round(cell["mrr"], 2)):
        mismatch += 1
if mismatch or len(cells) != len(hand):
    print(
        f"FAIL: cohort cells differ from the hand-written query: {mismatch} of {len(cells)} "
        f"({len(hand)} by hand)"
    )
    bench_failed = True
print(f"result cohorts: {len(cells)} cells (cohort month x months since)")
bench_report("cohort table", orm_time, sql_time)

# 3. The nightly recompute of the subscriber figures (MRR, tenure, predicted LTV, churn risk).
Partner = bench_env["res.partner"]
bench_env.cr.commit()
started = time.perf_counter()
updated = Partner._crm_refresh_subscription_insight(bench_company)
recompute = time.perf_counter() - started
bench_env.cr.commit()
BENCH_PARTNER_SQL = """
SELECT last.partner_id, SUM(last.mrr_after)
  FROM (SELECT DISTINCT ON (subscription_id) partner_id, mrr_after
          FROM crm_subscription_movement WHERE company_id = %s ORDER BY subscription_id, id DESC) last
 GROUP BY 1
"""
started = time.perf_counter()
bench_env.cr.execute(BENCH_PARTNER_SQL, [bench_company.id])
hand_mrr = dict(bench_env.cr.fetchall())
hand_seconds = time.perf_counter() - started
key = str(bench_company.id)
bench_env.cr.execute(
    """SELECT id, (crm_subscription_mrr->>%s)::numeric, (crm_churn_risk->>%s)::int
         FROM res_partner WHERE id = ANY(%s)""",
    [key, key, list(hand_mrr)],
)
stored = bench_env.cr.fetchall()
wrong = [row for row in stored if round(float(row[1]), 2) != round(float(hand_mrr[row[0]]), 2)]
at_risk = sum(1 for row in stored if row[2] >= bench_company.crm_churn_risk_threshold)
if wrong or len(stored) != len(hand_mrr):
    print(f"FAIL: {len(wrong)} partners' MRR differ from the hand-written query")
    bench_failed = True
verdict = "ok" if recompute < 60 else "FAIL"
bench_failed |= verdict == "FAIL"
print(
    f"result recompute: {updated} subscribers (MRR, tenure, LTV, churn risk; {at_risk} at risk) in "
    f"{recompute:.2f} s (ceiling 60 s) {verdict}; hand-written SQL of their MRR alone {hand_seconds:.2f} s"
)
# The same for one customer, as after one of their subscriptions or payments changed.
one_partner = next(iter(hand_mrr))
one_seconds, __ = bench_best(
    lambda: Partner._crm_refresh_subscription_insight(bench_company, partner_ids=[one_partner])
)
print(f"result refresh of one customer (after a subscription or payment change): {one_seconds * 1000:.0f} ms")
print("result verdict:", "FAIL" if bench_failed else "ok")
