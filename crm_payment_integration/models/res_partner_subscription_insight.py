"""Subscriber figures on the partner: MRR, tenure, predicted lifetime value and churn risk.

Company-dependent stored fields (each company sees its own figures, in its currency), written
in set-based SQL by :meth:`ResPartner._crm_refresh_subscription_insight`: for the customers a
subscription or payment change touched, and for every subscriber by the nightly cron.
"""

import threading
from datetime import timedelta

from dateutil.relativedelta import relativedelta

from odoo import _, api, fields, models
from odoo.tools import SQL, config

from ..services.budget import TimeBudget, report_cron_progress

# The days of history the churn-risk signals look at (failed payments, downgrades).
RISK_WINDOW_DAYS = 90


def _sql_format(text):
    """A translated reason with ``%(count)s`` and ``%(points)s`` as a PostgreSQL ``format()``
    string (``%1$s``, ``%2$s``)."""
    return text.replace("%", "%%").replace("%%(count)s", "%1$s").replace("%%(points)s", "%2$s")


class ResPartner(models.Model):
    _inherit = "res.partner"  # pylint: disable=consider-merging-classes-inherited

    crm_subscription_mrr = fields.Float(
        string="Subscriber MRR",
        company_dependent=True,
        digits="Account",
        readonly=True,
        help="The customer's monthly recurring revenue in this company, company currency: the sum "
        "of the MRR of their subscriptions as logged in the MRR movements.",
    )
    crm_subscription_tenure = fields.Integer(
        string="Tenure (months)",
        company_dependent=True,
        readonly=True,
        help="Whole months since the customer's first subscription started paying (their first "
        "'new' MRR movement).",
    )
    crm_predicted_ltv = fields.Float(
        string="Predicted Lifetime Value",
        company_dependent=True,
        digits="Account",
        readonly=True,
        help="The customer's MRR divided by the company's trailing monthly logo churn rate (the "
        "last 12 complete months); 0 when no customer churned in that time (not predicted).",
    )
    crm_churn_risk = fields.Integer(
        string="Churn Risk",
        company_dependent=True,
        readonly=True,
        help="0-100: the sum of the weights (Settings) of the signals present, capped at 100.",
    )
    crm_churn_risk_reasons = fields.Text(string="Churn Risk Signals", company_dependent=True, readonly=True)
    crm_churn_at_risk = fields.Boolean(
        string="At Risk",
        compute="_compute_crm_churn_at_risk",
        search="_search_crm_churn_at_risk",
        help="Churn risk at or above the company's threshold (Settings, 70 by default).",
    )

    @api.depends_context("company")
    @api.depends("crm_churn_risk")
    def _compute_crm_churn_at_risk(self):
        threshold = self.env.company.crm_churn_risk_threshold
        for partner in self:
            partner.crm_churn_at_risk = partner.crm_churn_risk >= threshold

    def _search_crm_churn_at_risk(self, operator, value):
        if operator not in ("=", "!="):
            return NotImplemented
        positive = (operator == "=") == bool(value)
        threshold = self.env.company.crm_churn_risk_threshold
        return [("crm_churn_risk", ">=" if positive else "<", threshold)]

    # === RECOMPUTE === #

    @api.model
    def _crm_trailing_logo_churn(self, company, today):
        """Return the company's monthly logo churn rate over the last 12 complete months: churn
        movements in those months ÷ the sum of each month's customers at its start, a fraction
        (as the metrics report sums them).

        One pass over the movements: a month's customers at start counts the new and
        reactivation movements (+1) and churn movements (-1) of the months before it, so each
        movement counts once per window month after its own month.
        """
        month = today.replace(day=1)
        self.env.cr.execute(
            """SELECT COUNT(*) FILTER (WHERE kind = 'churn' AND date >= %(start)s AND date < %(end)s),
                      COALESCE(SUM(CASE kind WHEN 'churn' THEN -1 WHEN 'new' THEN 1 WHEN 'reactivation' THEN 1
                                             ELSE 0 END
                                   * LEAST(12, GREATEST(0, 11 - ((date_part('year', date) - %(y)s) * 12
                                                                 + date_part('month', date) - %(m)s)))), 0)
                 FROM crm_subscription_movement
                WHERE company_id = %(company)s AND date < %(end)s
                  AND kind IN ('new', 'reactivation', 'churn')""",
            {
                "start": month - relativedelta(months=12),
                "end": month,
                "y": (month - relativedelta(months=12)).year,
                "m": (month - relativedelta(months=12)).month,
                "company": company.id,
            },
        )
        churned, base = self.env.cr.fetchone()
        return churned / base if base else 0.0

    @api.model
    def _crm_refresh_subscription_insight(self, companies, partner_ids=None, today=None):
        """Recompute the subscriber figures of ``companies``, for ``partner_ids`` (commercial
        partners) or every customer with an MRR movement, in one SQL statement per company.

        :param companies: ``res.company`` records
        :param list partner_ids: commercial partner ids; ``None``: all subscribers
        :param date today: the day the figures are for (a parameter for tests)
        :return: the number of partners updated
        """
        self.env["crm.subscription.movement"].flush_model()
        self.env["crm.subscription"].flush_model()
        self.env["payment.transaction"].flush_model(["state", "partner_id", "company_id"])
        self.env["account.move"].flush_model()
        self.env["payment.token"].flush_model()
        updated = 0
        for company in companies.sudo():
            day = today or self.env["crm.subscription"]._crm_company_today(company)
            since = day - timedelta(days=RISK_WINDOW_DAYS)
            churn = self._crm_trailing_logo_churn(company, day)
            scope = SQL("AND partner_id = ANY(%s)", list(partner_ids)) if partner_ids is not None else SQL()
            key = str(company.id)
            query = SQL(
                """
WITH scope AS (
    SELECT DISTINCT partner_id FROM crm_subscription_movement WHERE company_id = %(company)s %(scope)s
), last AS (
    SELECT DISTINCT ON (subscription_id) subscription_id, partner_id, mrr_after
      FROM crm_subscription_movement
     WHERE company_id = %(company)s AND partner_id IN (SELECT partner_id FROM scope)
  ORDER BY subscription_id, id DESC
), mrr AS (
    SELECT partner_id, SUM(mrr_after) AS mrr FROM last GROUP BY partner_id
), first AS (
    SELECT partner_id, MIN(date) AS first_date
      FROM crm_subscription_movement
     WHERE company_id = %(company)s AND kind = 'new' AND partner_id IN (SELECT partner_id FROM scope)
  GROUP BY partner_id
), subs AS (
    SELECT s.id, s.state, s.end_date, s.end_by_cancellation, s.next_invoice_date, s.payment_token_id,
           rp.commercial_partner_id AS partner_id
      FROM crm_subscription s JOIN res_partner rp ON rp.id = s.partner_id
     WHERE s.company_id = %(company)s AND rp.commercial_partner_id IN (SELECT partner_id FROM scope)
), failed AS (
    SELECT rp.commercial_partner_id AS partner_id, COUNT(*) AS n
      FROM payment_transaction t JOIN res_partner rp ON rp.id = t.partner_id
     WHERE t.company_id = %(company)s AND t.state = 'error' AND t.create_date >= %(since)s
       AND rp.commercial_partner_id IN (SELECT partner_id FROM scope)
  GROUP BY 1
), dunning AS (
    SELECT partner_id, COUNT(*) AS n FROM subs WHERE state = 'past_due' GROUP BY 1
), downgrade AS (
    SELECT partner_id, COUNT(*) AS n
      FROM crm_subscription_movement
     WHERE company_id = %(company)s AND kind = 'contraction' AND date >= %(since)s
       AND partner_id IN (SELECT partner_id FROM scope)
  GROUP BY 1
), ending AS (
    SELECT partner_id, COUNT(*) AS n
      FROM subs
     WHERE end_by_cancellation AND end_date IS NOT NULL
       AND state IN ('trial', 'active', 'past_due', 'paused')
  GROUP BY 1
), card AS (
    SELECT s.partner_id, COUNT(*) AS n
      FROM subs s JOIN payment_token tk ON tk.id = s.payment_token_id
     WHERE s.state IN ('trial', 'active') AND s.next_invoice_date IS NOT NULL AND tk.crm_exp_year > 0
       AND (make_date(tk.crm_exp_year, LEAST(GREATEST(COALESCE(NULLIF(tk.crm_exp_month, 0), 12), 1), 12), 1)
            + INTERVAL '1 month' - INTERVAL '1 day')::date < s.next_invoice_date
  GROUP BY 1
), overdue AS (
    SELECT m.commercial_partner_id AS partner_id, MAX(%(today)s::date - m.invoice_date_due) AS days
      FROM account_move m
     WHERE m.company_id = %(company)s AND m.move_type = 'out_invoice' AND m.state = 'posted'
       AND m.payment_state IN ('not_paid', 'partial') AND m.invoice_date_due < %(today)s
       AND m.commercial_partner_id IN (SELECT partner_id FROM scope)
  GROUP BY 1
), points AS (
    SELECT sc.partner_id,
           COALESCE(mrr.mrr, 0) AS mrr,
           CASE WHEN first.first_date IS NULL THEN 0
                ELSE (date_part('year', age(%(today)s::date, first.first_date)) * 12
                      + date_part('month', age(%(today)s::date, first.first_date)))::int END AS tenure,
           failed.n AS failed_n, dunning.n AS dunning_n, downgrade.n AS downgrade_n,
           ending.n AS ending_n, card.n AS card_n, overdue.days AS overdue_days,
           CASE WHEN failed.n > 0 THEN %(w_failed)s ELSE 0 END AS p_failed,
           CASE WHEN dunning.n > 0 THEN %(w_dunning)s ELSE 0 END AS p_dunning,
           CASE WHEN downgrade.n > 0 THEN %(w_downgrade)s ELSE 0 END AS p_downgrade,
           CASE WHEN ending.n > 0 THEN %(w_ending)s ELSE 0 END AS p_ending,
           CASE WHEN card.n > 0 THEN %(w_card)s ELSE 0 END AS p_card,
           CASE WHEN overdue.days > 0
                THEN ROUND(%(w_overdue)s * LEAST(overdue.days, %(overdue_full)s)::numeric
                           / %(overdue_full)s)::int
                ELSE 0 END AS p_overdue
      FROM scope sc
 LEFT JOIN mrr ON mrr.partner_id = sc.partner_id
 LEFT JOIN first ON first.partner_id = sc.partner_id
 LEFT JOIN failed ON failed.partner_id = sc.partner_id
 LEFT JOIN dunning ON dunning.partner_id = sc.partner_id
 LEFT JOIN downgrade ON downgrade.partner_id = sc.partner_id
 LEFT JOIN ending ON ending.partner_id = sc.partner_id
 LEFT JOIN card ON card.partner_id = sc.partner_id
 LEFT JOIN overdue ON overdue.partner_id = sc.partner_id
)
UPDATE res_partner p
   SET crm_subscription_mrr = COALESCE(p.crm_subscription_mrr, '{}'::jsonb)
           || jsonb_build_object(%(key)s, pt.mrr),
       crm_subscription_tenure = COALESCE(p.crm_subscription_tenure, '{}'::jsonb)
           || jsonb_build_object(%(key)s, pt.tenure),
       crm_predicted_ltv = COALESCE(p.crm_predicted_ltv, '{}'::jsonb)
           || jsonb_build_object(%(key)s,
                  CASE WHEN %(churn)s > 0 THEN ROUND(pt.mrr::numeric / %(churn)s, 2) ELSE 0 END),
       crm_churn_risk = COALESCE(p.crm_churn_risk, '{}'::jsonb)
           || jsonb_build_object(%(key)s, LEAST(100, pt.p_failed + pt.p_dunning + pt.p_downgrade
                                                 + pt.p_ending + pt.p_card + pt.p_overdue)),
       crm_churn_risk_reasons = COALESCE(p.crm_churn_risk_reasons, '{}'::jsonb)
           || jsonb_build_object(%(key)s, concat_ws(E'\\n',
                  CASE WHEN pt.p_failed > 0 THEN format(%(r_failed)s, pt.failed_n, pt.p_failed) END,
                  CASE WHEN pt.p_dunning > 0 THEN format(%(r_dunning)s, pt.dunning_n, pt.p_dunning) END,
                  CASE WHEN pt.p_downgrade > 0
                       THEN format(%(r_downgrade)s, pt.downgrade_n, pt.p_downgrade) END,
                  CASE WHEN pt.p_ending > 0 THEN format(%(r_ending)s, pt.ending_n, pt.p_ending) END,
                  CASE WHEN pt.p_card > 0 THEN format(%(r_card)s, pt.card_n, pt.p_card) END,
                  CASE WHEN pt.p_overdue > 0 THEN format(%(r_overdue)s, pt.overdue_days, pt.p_overdue) END))
  FROM points pt
 WHERE p.id = pt.partner_id
                """,
                company=company.id,
                scope=scope,
                since=since,
                today=day,
                key=key,
                churn=churn,
                overdue_full=max(company.crm_churn_overdue_days or 1, 1),
                w_failed=company.crm_churn_weight_failed,
                w_dunning=company.crm_churn_weight_dunning,
                w_downgrade=company.crm_churn_weight_downgrade,
                w_ending=company.crm_churn_weight_cancel,
                w_card=company.crm_churn_weight_card,
                w_overdue=company.crm_churn_weight_overdue,
                r_failed=_sql_format(_("Failed payments in the last 90 days: %(count)s (+%(points)s)")),
                r_dunning=_sql_format(_("Subscriptions past due (dunning): %(count)s (+%(points)s)")),
                r_downgrade=_sql_format(_("Downgrades in the last 90 days: %(count)s (+%(points)s)")),
                r_ending=_sql_format(_("Subscriptions cancelled at period end: %(count)s (+%(points)s)")),
                r_card=_sql_format(_("Cards expiring before the next billing: %(count)s (+%(points)s)")),
                r_overdue=_sql_format(_("Days overdue (oldest invoice): %(count)s (+%(points)s)")),
            )
            self.env.cr.execute(query)
            updated += self.env.cr.rowcount
        self.invalidate_model(
            [
                "crm_subscription_mrr",
                "crm_subscription_tenure",
                "crm_predicted_ltv",
                "crm_churn_risk",
                "crm_churn_risk_reasons",
                "crm_churn_at_risk",
            ]
        )
        return updated

    @api.model
    def _cron_refresh_subscription_insight(self, budget=None):
        """Nightly: recompute every subscriber's figures, one company per slice (one SQL
        statement each), committed after each, within the run's share of Odoo's limits; what is
        left runs next (at once)."""
        budget = budget or TimeBudget.for_run(self.env, config)
        cron = self.env.ref("crm_payment_integration.ir_cron_crm_subscription_insight")
        companies = self.env["res.company"].sudo().search([], order="id")
        commit = not getattr(threading.current_thread(), "testing", False)
        param = self.env["ir.config_parameter"].sudo()
        param_key = "crm_payment_integration.insight_refresh_after"
        after = int(param.get_param(param_key, 0) or 0)
        todo = companies.filtered(lambda c: c.id > after)
        done = 0
        for company in todo:
            if not budget.allows_batch():
                break
            with budget.batch(1):
                self._crm_refresh_subscription_insight(company)
                param.set_param(param_key, company.id)
                if commit:
                    self.env.cr.commit()  # pylint: disable=invalid-commit
            done += 1
        remaining = len(todo) - done
        if not remaining:
            param.set_param(param_key, 0)
        report_cron_progress(cron, done, remaining)
        return done
