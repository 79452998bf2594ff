"""The revenue forecast: the next 12 months of recurring revenue (MRR, from the subscriptions
that exist) and of total revenue (invoiced, from the monthly history), with the last 24 months
of actual figures beside them (MRR at each month's end from the movement log; invoiced
revenue). Rows are rebuilt by :meth:`_crm_refresh` (opening the report, and the nightly cron);
figures in the company currency, untaxed."""

from dateutil.relativedelta import relativedelta

from odoo import api, fields, models

from ..services import forecast as method

HISTORY_MONTHS = 36
SHOWN_HISTORY = 24
HORIZON = 12


class CrmRevenueForecast(models.Model):
    _name = "crm.revenue.forecast"
    _description = "Revenue Forecast"
    _order = "company_id, month, series, kind"
    _rec_name = "month"

    company_id = fields.Many2one("res.company", required=True, index=True, readonly=True)
    currency_id = fields.Many2one(related="company_id.currency_id")
    month = fields.Date(required=True, readonly=True)
    series = fields.Selection(
        [("recurring", "Recurring Revenue (MRR)"), ("total", "Total Revenue (Invoiced)")],
        required=True,
        readonly=True,
    )
    kind = fields.Selection([("actual", "Actual"), ("forecast", "Forecast")], required=True, readonly=True)
    amount = fields.Monetary(readonly=True, help="Untaxed, company currency.")

    # === SOURCES === #

    @api.model
    def _crm_monthly_revenue(self, company, first, last):
        """Return the invoiced revenue of each month from ``first`` to ``last`` (first days),
        oldest first: posted customer invoices minus credit notes, untaxed product lines, in the
        company currency (the journal items' balance)."""
        self.env["account.move.line"].flush_model()
        self.env.cr.execute(
            """SELECT gs::date, COALESCE(SUM(-aml.balance), 0)
                 FROM generate_series(%s::date, %s::date, INTERVAL '1 month') gs
            LEFT JOIN account_move am
                   ON am.company_id = %s AND am.state = 'posted'
                  AND am.move_type IN ('out_invoice', 'out_refund')
                  AND am.date >= gs AND am.date < gs + INTERVAL '1 month'
            LEFT JOIN account_move_line aml ON aml.move_id = am.id AND aml.display_type = 'product'
             GROUP BY gs ORDER BY gs""",
            [first, last, company.id],
        )
        return [(row[0], float(row[1])) for row in self.env.cr.fetchall()]

    @api.model
    def _crm_trailing_rates(self, company, today):
        """Return (monthly gross revenue churn, trial conversion) over the last 12 complete
        months, fractions.

        - churn: churned and contracted MRR / MRR at the start of each month, summed;
        - conversion: of the subscriptions whose trial ended in those months, the share that
          ever had an MRR (a 'new' or later movement); 1 when no trial ended then.
        """
        month = today.replace(day=1)
        since = month - relativedelta(months=12)
        self.env.cr.execute(
            """SELECT COALESCE(SUM(-(churn_mrr + contraction_mrr)), 0), COALESCE(SUM(mrr_start), 0)
                 FROM crm_subscription_metric WHERE company_id = %s AND month >= %s AND month < %s""",
            [company.id, since, month],
        )
        lost, base = self.env.cr.fetchone()
        churn = float(lost) / float(base) if base else 0.0
        self.env.cr.execute(
            """SELECT COUNT(*), COUNT(*) FILTER (WHERE EXISTS (
                          SELECT 1 FROM crm_subscription_movement m
                           WHERE m.subscription_id = s.id AND m.mrr_change > 0))
                 FROM crm_subscription s
                WHERE s.company_id = %s AND s.trial_end_date >= %s AND s.trial_end_date < %s
                  AND s.state != 'draft'""",
            [company.id, since, month],
        )
        trials, converted = self.env.cr.fetchone()
        conversion = converted / trials if trials else 1.0
        return min(max(churn, 0.0), 1.0), conversion

    @api.model
    def _crm_recurring_forecast(self, company, today):
        """Return ``{month: MRR}`` for ``today``'s month and the 11 after, from the running
        subscriptions: each one's monthly amount (untaxed amount / months per period) converted
        at today's rate, counted in the months it runs (from the month of its start; a trial
        from the month its trial ends, × the trial conversion rate; until its end date), ×
        (1 - monthly churn)^k in the k-th month after today's (k = 0 this month). Paused,
        cancelled and expired subscriptions count nothing."""
        self.env["crm.subscription"].flush_model()
        churn, conversion = self._crm_trailing_rates(company, today)
        first = today.replace(day=1)
        self.env.cr.execute(
            "SELECT DISTINCT currency_id FROM crm_subscription WHERE company_id = %s", [company.id]
        )
        factors = [
            (
                currency.id,
                currency._convert(1.0, company.currency_id, company, today, round=False),
            )
            for currency in self.env["res.currency"].browse([row[0] for row in self.env.cr.fetchall()])
        ]
        if not factors:
            return {}
        self.env.cr.execute(
            """SELECT gs::date AS month,
                      SUM(s.amount_untaxed * f.factor
                          / (s.interval_number * CASE s.interval_unit WHEN 'day' THEN 12 / 365.0
                                                                      WHEN 'week' THEN 12 / 52.0
                                                                      WHEN 'year' THEN 12.0
                                                                      ELSE 1.0 END)
                          * CASE WHEN s.state = 'trial' THEN %(conversion)s ELSE 1 END
                          * power(1 - %(churn)s,
                                  (date_part('year', gs) - date_part('year', %(first)s::date)) * 12
                                  + date_part('month', gs) - date_part('month', %(first)s::date)))
                 FROM crm_subscription s
                 JOIN unnest(%(currencies)s::int[], %(factors)s::float8[]) AS f(currency_id, factor)
                   ON f.currency_id = s.currency_id
           CROSS JOIN generate_series(%(first)s::date, %(first)s::date + INTERVAL '11 months',
                                      INTERVAL '1 month') gs
                WHERE s.company_id = %(company)s AND s.state IN ('trial', 'active', 'past_due')
                  AND s.interval_number > 0
                  AND s.start_date < gs + INTERVAL '1 month'
                  AND (s.state != 'trial' OR s.trial_end_date < gs + INTERVAL '1 month')
                  AND (s.end_date IS NULL OR s.end_date >= gs)
             GROUP BY 1""",
            {
                "conversion": conversion,
                "churn": churn,
                "currencies": [f[0] for f in factors],
                "factors": [f[1] for f in factors],
                "first": first,
                "company": company.id,
            },
        )
        currency = company.currency_id
        return {row[0]: currency.round(row[1]) for row in self.env.cr.fetchall()}

    # === REFRESH === #

    @api.model
    def _crm_refresh(self, companies=None, today=None):
        """Rebuild the forecast rows of ``companies`` (all by default) for ``today``.

        :return: the rows written
        """
        companies = (companies or self.env["res.company"].search([])).sudo()
        rows = []
        for company in companies:
            day = today or self.env["crm.subscription"]._crm_company_today(company)
            month = day.replace(day=1)
            history = self._crm_monthly_revenue(
                company, month - relativedelta(months=HISTORY_MONTHS), month - relativedelta(months=1)
            )
            # Months before the company's first revenue are not history.
            while history and not history[0][1]:
                history.pop(0)
            values = [amount for __, amount in history]
            for first_day, amount in history[-SHOWN_HISTORY:]:
                rows.append((company, first_day, "total", "actual", amount))
            for h, amount in enumerate(method.forecast(values, HORIZON) if values else []):
                rows.append((company, month + relativedelta(months=h), "total", "forecast", amount))
            for first_day, amount in sorted(self._crm_recurring_forecast(company, day).items()):
                rows.append((company, first_day, "recurring", "forecast", amount))
            self.env.cr.execute(
                """SELECT month, mrr FROM crm_subscription_metric
                    WHERE company_id = %s AND month >= %s AND month < %s ORDER BY month""",
                [company.id, month - relativedelta(months=SHOWN_HISTORY), month],
            )
            for first_day, mrr in self.env.cr.fetchall():
                rows.append((company, first_day, "recurring", "actual", mrr))
        rows = [(c, m, s, k, c.currency_id.round(a)) for c, m, s, k, a in rows]
        self.sudo().search([("company_id", "in", companies.ids)]).unlink()
        return self.sudo().create(
            [{"company_id": c.id, "month": m, "series": s, "kind": k, "amount": a} for c, m, s, k, a in rows]
        )

    @api.model
    def _crm_open(self):
        """Refresh the current company's forecast and open it (the menu's server action)."""
        self._crm_refresh(self.env.company)
        return self.env["ir.actions.act_window"]._for_xml_id(
            "crm_payment_integration.crm_revenue_forecast_action"
        )

    @api.model
    def _cron_refresh(self):
        """Nightly: rebuild every company's forecast."""
        self._crm_refresh()
        return True
