"""Subscription metrics and cohorts: SQL views over the MRR movement log.

Both are read-only reports (``_auto = False``); the company record rule applies to them. The
definitions are in ``readme/USAGE.md`` (*Subscription metrics*).
"""

from odoo import api, fields, models, tools
from odoo.tools import SQL

# Ratio measures: (numerator SQL, denominator SQL, factor) over summed columns, so that a group
# of months (a quarter, a year) gets the ratio of its sums, never an average of ratios.
METRIC_RATIOS = {
    "logo_churn_rate": ("{churned_customers}", "{customers_start}", 100),
    "gross_revenue_churn": ("-({churn_mrr} + {contraction_mrr})", "{mrr_start}", 100),
    "net_revenue_churn": ("-({churn_mrr} + {contraction_mrr} + {expansion_mrr})", "{mrr_start}", 100),
    "nrr": ("{mrr_start} + {expansion_mrr} + {contraction_mrr} + {churn_mrr}", "{mrr_start}", 100),
    "grr": ("{mrr_start} + {contraction_mrr} + {churn_mrr}", "{mrr_start}", 100),
    "arpa": ("{mrr}", "{customers}", 1),
    "quick_ratio": (
        "{new_mrr} + {expansion_mrr} + {reactivation_mrr}",
        "-({churn_mrr} + {contraction_mrr})",
        1,
    ),
}
COHORT_RATIOS = {
    "customer_retention": ("{customers}", "{cohort_customers}", 100),
    "mrr_retention": ("{mrr}", "{cohort_mrr}", 100),
}


def _ratio_select(model, ratios, aggregate_spec, query):
    """The SQL of a ratio measure aggregated as the ratio of sums, or ``None``."""
    fname, __, func = aggregate_spec.partition(":")
    if fname not in ratios or func not in ("sum", "avg"):
        return None
    numerator, denominator, factor = ratios[fname]
    columns = {}
    for name in model._fields:
        token = "{" + name + "}"
        if token in numerator or token in denominator:
            columns[name] = model._field_to_sql(model._table, name, query)

    def expression(template):
        parts = []
        rest = template
        while "{" in rest:
            head, __, tail = rest.partition("{")
            name, __, rest = tail.partition("}")
            parts.append(SQL(head))
            parts.append(SQL("COALESCE(SUM(%s), 0)", columns[name]))
        parts.append(SQL(rest))
        return SQL("").join(parts)

    return SQL(
        "ROUND((%s * (%s)::numeric / NULLIF((%s)::numeric, 0))::numeric, 2)",
        factor,
        expression(numerator),
        expression(denominator),
    )


class CrmSubscriptionMetric(models.Model):
    """Monthly subscription metrics: one row per company and month, from the company's first
    movement to the current month. Amounts in the company currency (the movements' own)."""

    _name = "crm.subscription.metric"
    _description = "Subscription Metrics"
    _auto = False
    _order = "month desc"
    _rec_name = "month"

    month = fields.Date(readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    currency_id = fields.Many2one("res.currency", readonly=True)
    mrr_start = fields.Monetary(string="MRR at Start", readonly=True)
    mrr = fields.Monetary(string="MRR (End of Month)", readonly=True)
    arr = fields.Monetary(string="ARR", readonly=True, help="12 × MRR at the end of the month.")
    new_mrr = fields.Monetary(string="New MRR", readonly=True)
    expansion_mrr = fields.Monetary(string="Expansion MRR", readonly=True)
    contraction_mrr = fields.Monetary(string="Contraction MRR", readonly=True, help="Negative.")
    churn_mrr = fields.Monetary(string="Churned MRR", readonly=True, help="Negative.")
    reactivation_mrr = fields.Monetary(string="Reactivation MRR", readonly=True)
    net_new_mrr = fields.Monetary(string="Net New MRR", readonly=True)
    customers_start = fields.Integer(string="Customers at Start", readonly=True)
    customers = fields.Integer(readonly=True, help="Paying customers at the end of the month.")
    new_customers = fields.Integer(readonly=True)
    reactivated_customers = fields.Integer(readonly=True)
    churned_customers = fields.Integer(readonly=True)
    logo_churn_rate = fields.Float(string="Logo Churn (%)", readonly=True, aggregator="sum")
    gross_revenue_churn = fields.Float(string="Gross Revenue Churn (%)", readonly=True, aggregator="sum")
    net_revenue_churn = fields.Float(string="Net Revenue Churn (%)", readonly=True, aggregator="sum")
    nrr = fields.Float(string="NRR (%)", readonly=True, aggregator="sum")
    grr = fields.Float(string="GRR (%)", readonly=True, aggregator="sum")
    arpa = fields.Float(
        string="Average Revenue per Account", readonly=True, aggregator="sum", digits="Account"
    )
    quick_ratio = fields.Float(readonly=True, aggregator="sum")

    @api.model
    def _read_group_select(self, aggregate_spec, query):
        """Ratios of a group are the ratio of its sums (see ``METRIC_RATIOS``)."""
        return _ratio_select(self, METRIC_RATIOS, aggregate_spec, query) or super()._read_group_select(
            aggregate_spec, query
        )

    def init(self):
        tools.drop_view_if_exists(self.env.cr, self._table)
        self.env.cr.execute(
            """
CREATE OR REPLACE VIEW crm_subscription_metric AS (
WITH flows AS (
    SELECT company_id, date_trunc('month', date::timestamp)::date AS month,
           SUM(mrr_change) AS net_new_mrr,
           SUM(mrr_change) FILTER (WHERE kind = 'new') AS new_mrr,
           SUM(mrr_change) FILTER (WHERE kind = 'expansion') AS expansion_mrr,
           SUM(mrr_change) FILTER (WHERE kind = 'contraction') AS contraction_mrr,
           SUM(mrr_change) FILTER (WHERE kind = 'churn') AS churn_mrr,
           SUM(mrr_change) FILTER (WHERE kind = 'reactivation') AS reactivation_mrr,
           COUNT(*) FILTER (WHERE kind = 'new') AS new_customers,
           COUNT(*) FILTER (WHERE kind = 'reactivation') AS reactivated_customers,
           COUNT(*) FILTER (WHERE kind = 'churn') AS churned_customers
      FROM crm_subscription_movement
  GROUP BY 1, 2
), months AS (
    SELECT f.company_id, gs::date AS month
      FROM (SELECT company_id, MIN(month) AS first FROM flows GROUP BY company_id) f,
           generate_series(f.first, date_trunc('month', CURRENT_DATE)::date, INTERVAL '1 month') gs
), rows AS (
    SELECT m.company_id, m.month,
           COALESCE(f.net_new_mrr, 0) AS net_new_mrr,
           COALESCE(f.new_mrr, 0) AS new_mrr,
           COALESCE(f.expansion_mrr, 0) AS expansion_mrr,
           COALESCE(f.contraction_mrr, 0) AS contraction_mrr,
           COALESCE(f.churn_mrr, 0) AS churn_mrr,
           COALESCE(f.reactivation_mrr, 0) AS reactivation_mrr,
           COALESCE(f.new_customers, 0) AS new_customers,
           COALESCE(f.reactivated_customers, 0) AS reactivated_customers,
           COALESCE(f.churned_customers, 0) AS churned_customers,
           SUM(COALESCE(f.net_new_mrr, 0)) OVER w AS mrr,
           SUM(COALESCE(f.new_customers, 0) + COALESCE(f.reactivated_customers, 0)
               - COALESCE(f.churned_customers, 0)) OVER w AS customers
      FROM months m
 LEFT JOIN flows f ON f.company_id = m.company_id AND f.month = m.month
    WINDOW w AS (PARTITION BY m.company_id ORDER BY m.month)
), r AS (
    SELECT rows.*, rows.mrr - rows.net_new_mrr AS mrr_start,
           rows.customers - rows.new_customers - rows.reactivated_customers + rows.churned_customers
               AS customers_start
      FROM rows
)
SELECT row_number() OVER (ORDER BY r.company_id, r.month) AS id,
       r.company_id, c.currency_id, r.month, r.mrr_start, r.mrr, 12 * r.mrr AS arr,
       r.new_mrr, r.expansion_mrr, r.contraction_mrr, r.churn_mrr, r.reactivation_mrr, r.net_new_mrr,
       r.customers_start::int AS customers_start, r.customers::int AS customers,
       r.new_customers::int AS new_customers, r.reactivated_customers::int AS reactivated_customers,
       r.churned_customers::int AS churned_customers,
       ROUND((100 * r.churned_customers::numeric / NULLIF(r.customers_start, 0))::numeric, 2)
           AS logo_churn_rate,
       ROUND((100 * -(r.churn_mrr + r.contraction_mrr)::numeric / NULLIF(r.mrr_start, 0))::numeric, 2)
           AS gross_revenue_churn,
       ROUND((100 * -(r.churn_mrr + r.contraction_mrr + r.expansion_mrr)::numeric
              / NULLIF(r.mrr_start, 0))::numeric, 2) AS net_revenue_churn,
       ROUND((100 * (r.mrr_start + r.expansion_mrr + r.contraction_mrr + r.churn_mrr)::numeric
              / NULLIF(r.mrr_start, 0))::numeric, 2) AS nrr,
       ROUND((100 * (r.mrr_start + r.contraction_mrr + r.churn_mrr)::numeric
              / NULLIF(r.mrr_start, 0))::numeric, 2) AS grr,
       ROUND((r.mrr::numeric / NULLIF(r.customers, 0))::numeric, 2) AS arpa,
       ROUND(((r.new_mrr + r.expansion_mrr + r.reactivation_mrr)::numeric
              / NULLIF(-(r.churn_mrr + r.contraction_mrr), 0))::numeric, 2) AS quick_ratio
  FROM r JOIN res_company c ON c.id = r.company_id
)"""
        )


class CrmSubscriptionCohort(models.Model):
    """Cohorts: customers by the month of their first MRR ('new' movement), and how many of
    them, and how much of their MRR, remain n months later (at the end of that month).

    One row per company, cohort month and months since: ``customers`` and ``mrr`` are those
    retained; ``cohort_customers`` and ``cohort_mrr`` the cohort's size at the end of its first
    month (repeated on each row, for the retention ratios)."""

    _name = "crm.subscription.cohort"
    _description = "Subscription Cohorts"
    _auto = False
    _order = "cohort_month desc, months_since"
    _rec_name = "cohort_month"

    company_id = fields.Many2one("res.company", readonly=True)
    currency_id = fields.Many2one("res.currency", readonly=True)
    cohort_month = fields.Date(readonly=True)
    cohort = fields.Char(
        readonly=True, help="The cohort month as YYYY-MM: the rows of the cohort table (sorted as text)."
    )
    months_since = fields.Integer(string="Months Since First", readonly=True, aggregator=None)
    customers = fields.Integer(string="Customers Retained", readonly=True)
    mrr = fields.Monetary(string="MRR Retained", readonly=True)
    cohort_customers = fields.Integer(string="Cohort Size (Customers)", readonly=True)
    cohort_mrr = fields.Monetary(string="Cohort MRR", readonly=True)
    customer_retention = fields.Float(string="Customer Retention (%)", readonly=True, aggregator="sum")
    mrr_retention = fields.Float(string="MRR Retention (%)", readonly=True, aggregator="sum")

    @api.model
    def _read_group_select(self, aggregate_spec, query):
        return _ratio_select(self, COHORT_RATIOS, aggregate_spec, query) or super()._read_group_select(
            aggregate_spec, query
        )

    def init(self):
        tools.drop_view_if_exists(self.env.cr, self._table)
        self.env.cr.execute(
            """
CREATE OR REPLACE VIEW crm_subscription_cohort AS (
WITH steps AS (
    -- What each month changes in each cohort (the month of its customers' first MRR and the
    -- months since, stored on their movements): +1 customer on a new or reactivation movement,
    -- -1 on a churn (the kinds are decided on the customer's MRR), and the MRR moved.
    SELECT company_id, cohort_month, cohort_age AS months_since,
           SUM(CASE kind WHEN 'churn' THEN -1 WHEN 'new' THEN 1 WHEN 'reactivation' THEN 1 ELSE 0 END)
               AS customers,
           SUM(mrr_change) AS mrr
      FROM crm_subscription_movement
     WHERE cohort_month IS NOT NULL
  GROUP BY 1, 2, 3
), grid AS (
    -- Every month of every cohort up to the current one, with or without movements.
    SELECT c.company_id, c.cohort_month, gs::int AS months_since
      FROM (SELECT DISTINCT company_id, cohort_month FROM steps) c,
           generate_series(0, ((date_part('year', CURRENT_DATE) - date_part('year', c.cohort_month)) * 12
                               + date_part('month', CURRENT_DATE)
                               - date_part('month', c.cohort_month))::int) gs
), running AS (
    SELECT g.company_id, g.cohort_month, g.months_since,
           SUM(COALESCE(st.customers, 0)) OVER r AS customers, SUM(COALESCE(st.mrr, 0)) OVER r AS mrr
      FROM grid g
 LEFT JOIN steps st ON st.company_id = g.company_id AND st.cohort_month = g.cohort_month
                   AND st.months_since = g.months_since
    WINDOW r AS (PARTITION BY g.company_id, g.cohort_month ORDER BY g.months_since)
), cells AS (
    SELECT * FROM running WHERE customers > 0
)
SELECT row_number() OVER (ORDER BY c.company_id, c.cohort_month, c.months_since) AS id,
       c.company_id, co.currency_id, c.cohort_month, to_char(c.cohort_month, 'YYYY-MM') AS cohort,
       c.months_since,
       c.customers::int AS customers, c.mrr,
       first.customers::int AS cohort_customers, first.mrr AS cohort_mrr,
       ROUND((100 * c.customers::numeric / NULLIF(first.customers, 0))::numeric, 2) AS customer_retention,
       ROUND((100 * c.mrr::numeric / NULLIF(first.mrr, 0))::numeric, 2) AS mrr_retention
  FROM cells c
  JOIN res_company co ON co.id = c.company_id
  LEFT JOIN cells first ON first.company_id = c.company_id AND first.cohort_month = c.cohort_month
                       AND first.months_since = 0
)"""
        )
