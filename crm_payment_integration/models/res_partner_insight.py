"""Customer value on the partner: lifetime value, average transaction, purchase frequency,
first and last payment, RFM scores and segment.

The figures live on the commercial partner, per company (company-dependent fields: each
company sees its own figures, in its currency), and are written by set-based SQL: one UPDATE
per company, for the customers a payment or a refund touched, or for all of them nightly.
Their source is the payment analysis (`crm.payment.analysis`): confirmed transactions of every
payment provider, in the company's currency at the rate of the transaction's date.
"""

import threading

from dateutil.relativedelta import relativedelta

from odoo import api, fields, models, tools
from odoo.tools import SQL

from ..services.budget import TimeBudget, report_cron_progress

RFM_SEGMENTS = [
    ("champions", "Champions"),
    ("loyal", "Loyal"),
    ("potential_loyalist", "Potential loyalist"),
    ("new", "New"),
    ("promising", "Promising"),
    ("needs_attention", "Needs attention"),
    ("about_to_sleep", "About to sleep"),
    ("at_risk", "At risk"),
    ("cant_lose", "Can't lose them"),
    ("hibernating", "Hibernating"),
    ("lost", "Lost"),
]

# The segment of each (R, FM) pair, FM = (F + M) / 2 rounded half up. Rows: R; columns: FM 1..5.
RFM_SEGMENT_GRID = {
    5: ("new", "potential_loyalist", "potential_loyalist", "champions", "champions"),
    4: ("promising", "potential_loyalist", "potential_loyalist", "loyal", "loyal"),
    3: ("about_to_sleep", "about_to_sleep", "needs_attention", "loyal", "loyal"),
    2: ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"),
    1: ("lost", "hibernating", "at_risk", "at_risk", "cant_lose"),
}
# The window of the RFM scores.
RFM_MONTHS = 24
CUSTOMER_VALUE_FIELDS = (
    "crm_lifetime_value",
    "crm_average_transaction",
    "crm_purchase_frequency",
    "crm_value_payment_count",
    "crm_first_payment_date",
    "crm_last_payment_date",
    "crm_days_since_payment",
    "crm_rfm_recency",
    "crm_rfm_frequency",
    "crm_rfm_monetary",
    "crm_rfm_score",
    "crm_rfm_segment",
)


def _segment_sql():
    cases = [
        SQL("WHEN %s AND %s THEN %s", SQL("r = %s", r), SQL("fm = %s", fm + 1), segment)
        for r, row in RFM_SEGMENT_GRID.items()
        for fm, segment in enumerate(row)
    ]
    return SQL("CASE %s END", SQL(" ").join(cases))


def _score_sql(value, cuts):
    """1 + the number of quintile cut points strictly below ``value`` (equal values, equal
    scores)."""
    return SQL("(1 + (SELECT count(*) FROM unnest(%s::numeric[]) cut WHERE %s > cut))::int", cuts, value)


class ResPartner(models.Model):
    _inherit = "res.partner"  # pylint: disable=consider-merging-classes-inherited

    crm_lifetime_value = fields.Float(
        string="Lifetime Value",
        company_dependent=True,
        readonly=True,
        copy=False,
        digits=(16, 2),
        help="Collected minus refunded, all time, in the company's currency (confirmed payments "
        "of every gateway, converted at each payment's date).",
    )
    crm_average_transaction = fields.Float(
        string="Average Transaction",
        company_dependent=True,
        readonly=True,
        copy=False,
        digits=(16, 2),
        help="Collected (before refunds) divided by the number of confirmed payments, company currency.",
    )
    crm_purchase_frequency = fields.Float(
        string="Payments per Year",
        company_dependent=True,
        readonly=True,
        copy=False,
        digits=(16, 2),
        help="Confirmed payments divided by the years since the first one (at least one year).",
    )
    crm_value_payment_count = fields.Integer(
        string="Confirmed Payments",
        company_dependent=True,
        readonly=True,
        copy=False,
        help="Confirmed payments, all time.",
    )
    crm_first_payment_date = fields.Date(
        string="First Confirmed Payment", company_dependent=True, readonly=True, copy=False
    )
    crm_last_payment_date = fields.Date(
        string="Last Confirmed Payment", company_dependent=True, readonly=True, copy=False
    )
    crm_days_since_payment = fields.Integer(
        string="Days Since Last Payment",
        company_dependent=True,
        readonly=True,
        copy=False,
        help="As of the last recompute (nightly, and on each payment of the customer).",
    )
    crm_rfm_recency = fields.Integer(
        string="Recency (R)",
        company_dependent=True,
        readonly=True,
        copy=False,
        help="1-5; 5 = paid most recently.",
    )
    crm_rfm_frequency = fields.Integer(
        string="Frequency (F)",
        company_dependent=True,
        readonly=True,
        copy=False,
        help="1-5, quintile of the number of payments in the last 24 months.",
    )
    crm_rfm_monetary = fields.Integer(
        string="Monetary (M)",
        company_dependent=True,
        readonly=True,
        copy=False,
        help="1-5, quintile of the net amount collected in the last 24 months.",
    )
    crm_rfm_score = fields.Char(
        string="RFM Score",
        company_dependent=True,
        readonly=True,
        copy=False,
        help="R, F and M digits, e.g. 545.",
    )
    crm_rfm_segment = fields.Selection(
        RFM_SEGMENTS,
        string="RFM Segment",
        company_dependent=True,
        readonly=True,
        copy=False,
        help="The customer's segment from its R score and the average of its F and M scores.",
    )

    # === RECOMPUTE === #

    @api.model
    def _crm_customer_value_source(self, company, partners=None):
        """SQL of the confirmed payments and refunds of ``company`` per customer (the payment
        analysis' rows), of ``partners`` only when given."""
        where = SQL("a.company_id = %s AND a.state = 'done' AND a.operation <> 'validation'", company.id)
        if partners is not None:
            where = SQL(
                """%s AND a.id IN (
                    SELECT t.id FROM payment_transaction t
                    JOIN res_partner tp ON tp.id = t.partner_id
                    WHERE t.company_id = %s AND tp.commercial_partner_id = ANY(%s))""",
                where,
                company.id,
                partners.ids,
            )
        return SQL(
            """SELECT a.partner_id, a.date, a.operation, a.amount_paid, a.amount_refunded
                 FROM crm_payment_analysis a WHERE %s""",
            where,
        )

    @api.model
    def _crm_customer_value_aggregates(self, company, today, partners=None):
        since = today - relativedelta(months=RFM_MONTHS)
        return SQL(
            """
            SELECT partner_id,
                   SUM(amount_paid) AS collected,
                   SUM(amount_paid) - SUM(amount_refunded) AS ltv,
                   COUNT(*) FILTER (WHERE operation <> 'refund') AS n,
                   MIN(date) FILTER (WHERE operation <> 'refund') AS first_day,
                   MAX(date) FILTER (WHERE operation <> 'refund') AS last_day,
                   COUNT(*) FILTER (WHERE operation <> 'refund' AND date > %(since)s) AS f_value,
                   COALESCE(SUM(amount_paid - amount_refunded) FILTER (WHERE date > %(since)s), 0) AS m_value,
                   -(%(today)s::date - MAX(date) FILTER (WHERE operation <> 'refund')) AS r_value
              FROM (%(source)s) src
             GROUP BY partner_id
            """,
            since=since,
            today=today,
            source=self._crm_customer_value_source(company, partners),
        )

    @api.model
    def _crm_rfm_cuts(self, company, today, keep=True):
        """Compute the quintile cut points (20, 40, 60, 80 %) of the company's customers who paid
        in the last 24 months, per measure, and keep them on the company (``keep``).

        :return: ``{"r": [4 numbers], "f": [...], "m": [...]}`` (recency as minus days)
        """
        self.env.cr.execute(
            SQL(
                """
                SELECT percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY r_value),
                       percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY f_value),
                       percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY m_value)
                  FROM (%s) agg
                 WHERE f_value > 0
                """,
                self._crm_customer_value_aggregates(company, today),
            )
        )
        r_cuts, f_cuts, m_cuts = self.env.cr.fetchone()
        cuts = {
            "r": [float(v) for v in r_cuts or []],
            "f": [float(v) for v in f_cuts or []],
            "m": [float(v) for v in m_cuts or []],
        }
        if keep:
            company.sudo().crm_rfm_cuts = cuts
        return cuts

    @api.model
    def _crm_recompute_customer_value(self, partners=None, companies=None, today=None):
        """Recompute the customer value figures in set-based SQL: one UPDATE per company.

        :param partners: commercial partners to recompute (their payments only); ``None``: every
            customer of the companies, and new RFM cut points
        :param companies: `res.company` records (all by default)
        :param date today: the day the figures are as of (today by default)
        :return: how many (partner, company) figures were written
        """
        today = today or fields.Date.context_today(self)
        companies = companies if companies is not None else self.env["res.company"].sudo().search([])
        self.env.flush_all()
        written = 0
        for company in companies.sudo():
            cuts = company.crm_rfm_cuts
            if partners is None or not cuts or not cuts.get("r"):
                # Kept by the full recompute only: a payment's recompute writes no company
                # (concurrent payments would contend for its row).
                cuts = self._crm_rfm_cuts(company, today, keep=partners is None)
            written += self._crm_write_customer_value(company, today, cuts, partners)
            if partners is None:
                company.crm_customer_value_date = today
        self.invalidate_model(list(CUSTOMER_VALUE_FIELDS))
        return written

    @api.model
    def _crm_write_customer_value(self, company, today, cuts, partners=None):
        key = str(company.id)
        rounding = company.currency_id.rounding
        scored = SQL(
            """
            SELECT agg.*,
                   CASE WHEN f_value > 0 THEN %(r)s ELSE 1 END AS r,
                   CASE WHEN f_value > 0 THEN %(f)s ELSE 1 END AS f,
                   CASE WHEN f_value > 0 THEN %(m)s ELSE 1 END AS m
              FROM (%(agg)s) agg
            """,
            r=_score_sql(SQL("r_value"), cuts["r"]),
            f=_score_sql(SQL("f_value"), cuts["f"]),
            m=_score_sql(SQL("m_value"), cuts["m"]),
            agg=self._crm_customer_value_aggregates(company, today, partners),
        )
        figures = SQL(
            "SELECT g.*, %s AS segment FROM (SELECT s.*, (s.f + s.m + 1) / 2 AS fm FROM (%s) s) g",
            _segment_sql(),
            scored,
        )

        def put(column, value):
            return SQL(
                "%(column)s = COALESCE(p.%(column)s, '{}'::jsonb)"
                " || jsonb_build_object(%(key)s::text, %(value)s)",
                column=SQL.identifier(column),
                key=key,
                value=value,
            )

        assignments = SQL(", ").join(
            [
                put("crm_lifetime_value", SQL("v.ltv")),
                put(
                    "crm_average_transaction",
                    SQL(
                        "CASE WHEN v.n > 0 THEN ROUND(v.collected / v.n / %s) * %s ELSE 0 END",
                        rounding,
                        rounding,
                    ),
                ),
                put(
                    "crm_purchase_frequency",
                    SQL(
                        "CASE WHEN v.n > 0 "
                        "THEN ROUND(v.n / GREATEST(1.0, (%s::date - v.first_day) / 365.25), 2) "
                        "ELSE 0 END",
                        today,
                    ),
                ),
                put("crm_value_payment_count", SQL("v.n")),
                put("crm_first_payment_date", SQL("v.first_day")),
                put("crm_last_payment_date", SQL("v.last_day")),
                put("crm_days_since_payment", SQL("%s::date - v.last_day", today)),
                put("crm_rfm_recency", SQL("v.r")),
                put("crm_rfm_frequency", SQL("v.f")),
                put("crm_rfm_monetary", SQL("v.m")),
                put("crm_rfm_score", SQL("concat(v.r, v.f, v.m)")),
                put("crm_rfm_segment", SQL("v.segment")),
            ]
        )
        self.env.cr.execute(
            SQL(
                "UPDATE res_partner p SET %s FROM (%s) v WHERE p.id = v.partner_id AND v.n > 0",
                assignments,
                figures,
            )
        )
        return self.env.cr.rowcount

    @api.model
    def _cron_crm_recompute_customer_value(self, budget=None):
        """Nightly: recompute every customer's figures, one company per slice (committed), each
        company once a day; what the run's share of Odoo's limits leaves goes to the next run.

        :param TimeBudget budget: when to stop; by default the share of Odoo's limits
        :return: how many companies were recomputed
        """
        today = fields.Date.context_today(self)
        budget = budget or TimeBudget.for_run(self.env, tools.config)
        companies = (
            self.env["res.company"]
            .sudo()
            .search(["|", ("crm_customer_value_date", "=", False), ("crm_customer_value_date", "<", today)])
        )
        testing = getattr(threading.current_thread(), "testing", False)
        done = 0
        for company in companies:
            if not budget.allows_batch():
                break
            with budget.batch(1):
                self._crm_recompute_customer_value(companies=company, today=today)
                if not testing:
                    self.env.cr.commit()  # pylint: disable=invalid-commit
            done += 1
        cron = self.env.ref("crm_payment_integration.ir_cron_crm_customer_value", raise_if_not_found=False)
        if cron:
            report_cron_progress(cron, done, len(companies) - done)
        return done
