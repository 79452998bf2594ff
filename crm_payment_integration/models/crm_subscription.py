import logging
import re
import threading
from collections import defaultdict
from datetime import date, datetime, timezone

from dateutil.relativedelta import relativedelta

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.osv import expression
from odoo.tools import config

from .. import billing_dates
from ..const import HARD_DECLINE_CODES
from ..services.budget import TimeBudget, iter_batches, report_cron_progress
from .crm_payment_event import EventBatch

_logger = logging.getLogger(__name__)

# Months per interval unit, to normalise recurring revenue per month.
MONTHS_PER_UNIT = {"day": 12 / 365.0, "week": 12 / 52.0, "month": 1.0, "year": 12.0}


class CrmSubscription(models.Model):
    """A recurring sale billed by Odoo every period and charged to a saved payment method."""

    _name = "crm.subscription"
    _description = "Subscription"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "id desc"
    _check_company_auto = True

    name = fields.Char(
        string="Reference", required=True, readonly=True, copy=False, default=lambda self: _("New")
    )
    partner_id = fields.Many2one(
        "res.partner", string="Customer", required=True, tracking=True, index=True, check_company=True
    )
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company, index=True
    )
    currency_id = fields.Many2one(
        "res.currency", required=True, default=lambda self: self.env.company.currency_id, tracking=True
    )
    user_id = fields.Many2one(
        "res.users", string="Salesperson", default=lambda self: self.env.user, tracking=True
    )
    lead_id = fields.Many2one("crm.lead", string="Opportunity", index="btree_not_null", check_company=True)
    template_id = fields.Many2one(
        "crm.subscription.template", string="Plan", check_company=True, index="btree_not_null", tracking=True
    )
    portal_pause = fields.Boolean(related="template_id.portal_pause", string="Customer Can Pause")
    line_ids = fields.One2many("crm.subscription.line", "subscription_id", string="Lines", copy=True)
    interval_number = fields.Integer(string="Every", required=True, default=1)
    interval_unit = fields.Selection(
        [("day", "Days"), ("week", "Weeks"), ("month", "Months"), ("year", "Years")],
        required=True,
        default="month",
    )
    start_date = fields.Date(required=True, default=lambda self: self._crm_today(), tracking=True)
    trial_end_date = fields.Date(string="Trial End", tracking=True)
    # Not tracked: it moves every period, and each period has its invoice.
    next_invoice_date = fields.Date(index=True, copy=False)
    billing_anchor_date = fields.Date(
        string="Billing Anchor",
        readonly=True,
        copy=False,
        help="The day every billing period is counted from: from 31 January, the 28th of February "
        "(29th in a leap year), the 31st of March, the 30th of April... Set when billing starts "
        "(the start, or the trial's end), and when it starts again after a pause or a cancellation.",
    )
    end_date = fields.Date(
        tracking=True, help="The subscription expires after the period ending on this date."
    )
    payment_token_id = fields.Many2one(
        "payment.token",
        string="Payment Method",
        domain="[('partner_id', 'child_of', partner_id), ('provider_id.code', '=', 'stripe')]",
        tracking=True,
    )
    state = fields.Selection(
        [
            ("draft", "Draft"),
            ("trial", "Trial"),
            ("active", "Active"),
            ("past_due", "Past Due"),
            ("paused", "Paused"),
            ("cancelled", "Cancelled"),
            ("expired", "Expired"),
        ],
        default="draft",
        required=True,
        tracking=True,
        index=True,
        copy=False,
    )
    renewal_reminded_for = fields.Date(readonly=True, copy=False)
    card_reminded_token_id = fields.Many2one("payment.token", readonly=True, copy=False)
    end_by_cancellation = fields.Boolean(
        readonly=True, copy=False, help="The end date comes from a cancellation at the end of the period."
    )
    dunning_attempts = fields.Integer(string="Failed Attempts", readonly=True, copy=False)
    dunning_next_date = fields.Date(
        string="Next Payment Retry", readonly=True, copy=False, index="btree_not_null"
    )
    amount_untaxed = fields.Monetary(compute="_compute_amounts", store=True)
    mrr = fields.Monetary(
        string="MRR",
        compute="_compute_mrr",
        store=True,
        currency_field="company_currency_id",
        help="Recurring revenue per month in the company currency; zero unless active or past due.",
    )
    company_currency_id = fields.Many2one(related="company_id.currency_id", string="Company Currency")
    invoice_ids = fields.One2many("account.move", "crm_subscription_id", string="Invoices")
    adjustment_ids = fields.One2many("crm.subscription.adjustment", "subscription_id", string="Prorations")
    invoice_count = fields.Integer(compute="_compute_invoice_count")

    _sql_constraints = [
        ("interval_positive", "CHECK(interval_number > 0)", "The billing interval must be positive."),
    ]

    @api.constrains("start_date", "trial_end_date", "end_date")
    def _check_dates(self):
        for subscription in self:
            start = subscription.start_date
            # Ending the day before the start is cancelling before the first period.
            if (subscription.trial_end_date and subscription.trial_end_date < start) or (
                subscription.end_date and subscription.end_date < start - relativedelta(days=1)
            ):
                raise UserError(
                    _("The trial and the end of %s cannot come before its start.", subscription.name)
                )

    @api.constrains("payment_token_id", "partner_id", "company_id")
    def _check_payment_token(self):
        """A subscription is charged to its own customer's card only, whatever the view offers."""
        for subscription in self.sudo().filtered("payment_token_id"):
            subscription.payment_token_id._crm_check_owner(subscription.partner_id, subscription.company_id)

    def _crm_token_is_own(self, token):
        """Whether a saved method is the subscription's customer's, in its company's account."""
        self.ensure_one()
        return token._crm_is_owned_by(self.partner_id, self.company_id)

    @api.depends("line_ids.price_subtotal")
    def _compute_amounts(self):
        for subscription in self:
            subscription.amount_untaxed = sum(subscription.line_ids.mapped("price_subtotal"))

    @api.depends("amount_untaxed", "state", "interval_number", "interval_unit", "currency_id", "company_id")
    def _compute_mrr(self):
        for subscription in self:
            if subscription.state not in ("active", "past_due") or not subscription.interval_number:
                subscription.mrr = 0.0
                continue
            months = MONTHS_PER_UNIT[subscription.interval_unit] * subscription.interval_number
            monthly = subscription.amount_untaxed / months
            company = subscription.company_id or self.env.company
            subscription.mrr = subscription.currency_id._convert(
                monthly, company.currency_id, company, fields.Date.context_today(subscription)
            )

    def _compute_invoice_count(self):
        counts = dict(
            self.env["account.move"]._read_group(
                [("crm_subscription_id", "in", self.ids)], ["crm_subscription_id"], ["__count"]
            )
        )
        for subscription in self:
            subscription.invoice_count = counts.get(subscription, 0)

    @api.onchange("template_id")
    def _onchange_template_id(self):
        if self.template_id:
            self.update(
                self.template_id._crm_subscription_values(
                    self.start_date or self._crm_today(), self.currency_id
                )
            )

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("template_id") and not vals.get("line_ids"):
                # Created from a plan by code (an opportunity, an import): the plan fills it in.
                template = self.env["crm.subscription.template"].browse(vals["template_id"])
                start = fields.Date.to_date(vals.get("start_date")) or self._crm_company_today(
                    self.env["res.company"].browse(vals.get("company_id")) or self.env.company
                )
                currency = self.env["res.currency"].browse(vals.get("currency_id")) or None
                vals.update(
                    {
                        **template._crm_subscription_values(start, currency),
                        **{k: v for k, v in vals.items() if k != "line_ids"},
                    }
                )
            if vals.get("name", _("New")) == _("New"):
                vals["name"] = self.env["ir.sequence"].next_by_code("crm.subscription") or _("New")
        return super().create(vals_list)

    def write(self, vals):
        """A running subscription whose interval changes counts its periods from its next
        billing date, unless that date is a period start of the new interval too. A state a
        Stripe event changes goes to the audit trail."""
        before = (
            {subscription.id: {"state": subscription.state} for subscription in self}
            if "state" in vals and self.env["crm.payment.audit"]._crm_applying_event()
            else None
        )
        res = super().write(vals)
        if before:
            self.env["crm.payment.audit"]._crm_log_state_changes(self, before)
        if {"interval_unit", "interval_number"} & set(vals):
            for subscription in self.filtered(lambda s: s.billing_anchor_date and s.next_invoice_date):
                if not billing_dates.is_period_start(
                    subscription.billing_anchor_date,
                    subscription.interval_unit,
                    subscription.interval_number,
                    subscription.next_invoice_date,
                ):
                    subscription.billing_anchor_date = subscription.next_invoice_date
        return res

    def action_view_invoices(self):
        self.ensure_one()
        self.check_access("read")
        return {
            "type": "ir.actions.act_window",
            "name": _("Invoices of %s", self.name),
            "res_model": "account.move",
            "view_mode": "list,form",
            "domain": [("crm_subscription_id", "=", self.id)],
            "context": {"create": False, "default_move_type": "out_invoice"},
        }

    # === STATES === #

    def action_start(self):
        """Draft → trial (until the trial end) or active; billing starts at the first period."""
        for subscription in self:
            if subscription.state != "draft":
                raise UserError(_("Only a draft subscription can be started."))
            if not subscription.line_ids:
                raise UserError(
                    _("Add what the customer subscribes to before starting %s.", subscription.name)
                )
            today = subscription._crm_today()
            in_trial = subscription.trial_end_date and subscription.trial_end_date > today
            # Stripe's default anchor: the trial's end, else the start.
            first = subscription.trial_end_date if in_trial else subscription.start_date
            subscription.write(
                {
                    "state": "trial" if in_trial else "active",
                    "next_invoice_date": first,
                    "billing_anchor_date": first,
                }
            )
            subscription.message_post(
                body=_("Trial until %s.", subscription.trial_end_date)
                if in_trial
                else _("Subscription started.")
            )
        return True

    def action_cancel(self, reason=None):
        """Cancel now: no further invoice."""
        for subscription in self.filtered(lambda s: s.state not in ("cancelled", "expired")):
            subscription.write({"state": "cancelled", "next_invoice_date": False})
            subscription.message_post(body=_("Cancelled: %s", reason) if reason else _("Cancelled."))
        return True

    def action_cancel_at_period_end(self, reason=None):
        """Cancel at the end of the period already invoiced: it ends then, without renewal."""
        for subscription in self.filtered(lambda s: s.state in ("trial", "active", "past_due", "paused")):
            last_day = subscription._crm_period_end()
            subscription.write({"end_date": last_day, "end_by_cancellation": True})
            subscription.message_post(
                body=_("Ends on %(date)s: %(reason)s", date=last_day, reason=reason or _("no reason given"))
            )
        return True

    def _crm_period_end(self):
        """Return the last day of the period already invoiced (the day before the next invoice):
        where a cancellation at period end stops the subscription."""
        self.ensure_one()
        return (self.next_invoice_date or self._crm_today()) - relativedelta(days=1)

    def _crm_next_charge_date(self):
        """Return the day the subscription is next charged, or ``None`` when nothing is
        scheduled: paused, past due (only its unpaid invoices are charged again), cancelled,
        expired, or ending before its next period."""
        self.ensure_one()
        day = self.next_invoice_date
        if self.state not in ("trial", "active") or not day or (self.end_date and day > self.end_date):
            return None
        return day

    def action_reactivate(self):
        """Undo a cancellation: one planned for the end of the period is dropped; a cancelled
        or expired subscription starts a new period today."""
        for subscription in self:
            today = subscription._crm_today()
            if subscription.state in ("trial", "active", "past_due", "paused") and subscription.end_date:
                subscription.write({"end_date": False, "end_by_cancellation": False})
                subscription.message_post(body=_("Reactivated: it goes on after the current period."))
            elif subscription.state in ("cancelled", "expired"):
                # Not before what was already invoiced, nor before the start or the trial's end.
                invoiced = subscription.invoice_ids.filtered(
                    lambda m: m.state == "posted" and m.crm_period_end
                )
                start = max(
                    today,
                    subscription.start_date,
                    max(invoiced.mapped("crm_period_end"), default=today) + relativedelta(days=1)
                    if invoiced
                    else today,
                )
                in_trial = subscription.trial_end_date and subscription.trial_end_date > start
                unpaid = subscription._crm_unpaid_invoices()
                values = {
                    "state": "trial" if in_trial else ("past_due" if unpaid else "active"),
                    "end_date": False,
                    "end_by_cancellation": False,
                    "next_invoice_date": subscription.trial_end_date if in_trial else start,
                    "billing_anchor_date": subscription._crm_restart_anchor(
                        subscription.trial_end_date if in_trial else start
                    ),
                    "dunning_attempts": 0,
                    # Unpaid invoices are charged again at the next run.
                    "dunning_next_date": today if unpaid else False,
                }
                subscription.write(values)
                subscription.message_post(
                    body=_("Reactivated: the next period starts on %s.", values["next_invoice_date"])
                )
            else:
                raise UserError(_("%s is not cancelled: there is nothing to reactivate.", subscription.name))
        return True

    def action_pause(self):
        for subscription in self.filtered(lambda s: s.state in ("active", "past_due")):
            subscription.state = "paused"
            subscription.message_post(body=_("Paused: no invoice until it is resumed."))
        return True

    def action_resume(self):
        """Resume a paused subscription: within the period already invoiced, billing goes on at
        its end; later, it starts again today, for a full period counted from today."""
        for subscription in self.filtered(lambda s: s.state == "paused"):
            today = subscription._crm_today()
            restart = max(subscription.next_invoice_date or today, today)
            subscription.write(
                {
                    "state": "active",
                    "next_invoice_date": restart,
                    "billing_anchor_date": subscription._crm_restart_anchor(restart),
                }
            )
            subscription.message_post(body=_("Resumed."))
        return True

    # === DATES === #

    @api.model
    def _crm_company_tz(self, company):
        """Return the time zone whose days a company bills by.

        The time zone of the company's own contact when someone set it, else that of its working
        hours (what Odoo's HR, leaves and digests take as the company's; always set), else UTC.
        Never the time zone of whoever runs the code: a cron runs as OdooBot, without one, and a
        salesperson travels; one day per company also lets the billing run find what is due in
        one query.
        """
        company = company.sudo()
        return company.partner_id.tz or company.resource_calendar_id.tz or "UTC"

    @api.model
    def _crm_company_today(self, company, now=None):
        """Return the day it is at ``now`` in ``company``'s time zone.

        :param now: a UTC datetime (naive, as Odoo stores them, or aware); a date, taken as the
            day itself (tests walking through days); ``None``: now
        :rtype: date
        """
        if isinstance(now, str):
            now = fields.Datetime.to_datetime(now) if len(now) > 10 else fields.Date.to_date(now)
        if isinstance(now, date) and not isinstance(now, datetime):
            return now
        if now and now.tzinfo:
            now = now.astimezone(timezone.utc).replace(tzinfo=None)
        tz = self._crm_company_tz(company)
        return fields.Date.context_today(self.with_context(tz=tz), timestamp=now)

    def _crm_today(self, now=None):
        """Return the day it is for this subscription: in its company's time zone."""
        return self._crm_company_today(self.company_id[:1] or self.env.company, now)

    @api.model
    def _crm_due_domain(self, field, now=None):
        """Return the domain of the subscriptions whose ``field`` is today or before, today being
        each company's own."""
        companies = defaultdict(list)
        for company in self.env["res.company"].sudo().search([]):
            companies[self._crm_company_today(company, now)].append(company.id)
        return expression.OR(
            [[("company_id", "in", ids), (field, "<=", today)] for today, ids in companies.items()]
        )

    def _crm_billing_anchor(self):
        """Return the day this subscription's periods are counted from (see ``billing_dates``)."""
        self.ensure_one()
        if self.billing_anchor_date:
            return self.billing_anchor_date
        if self.next_invoice_date:  # billed before the anchor was stored
            return billing_dates.legacy_anchor(
                self.start_date,
                self.trial_end_date,
                self.next_invoice_date,
                self.interval_unit,
                self.interval_number,
            )
        return self.start_date

    def _crm_next_billing_date(self, period_start):
        """Return the start of the period following the one starting on ``period_start``."""
        self.ensure_one()
        return billing_dates.next_period_start(
            self._crm_billing_anchor(), self.interval_unit, self.interval_number, period_start
        )

    def _crm_restart_anchor(self, restart):
        """Return the anchor when billing starts again on ``restart`` (a resume, a reactivation).

        As Stripe's ``billing_cycle_anchor``: unchanged when ``restart`` is a period start of the
        current anchor (billing goes on at the end of the period already invoiced: Stripe's
        ``unchanged``), else ``restart`` itself: a new cycle from that day (Stripe's ``now``,
        its default on resuming; a cancelled Stripe subscription comes back as a new one).
        """
        self.ensure_one()
        if not restart:
            return self.billing_anchor_date
        if (self.billing_anchor_date or self.next_invoice_date) and billing_dates.is_period_start(
            self._crm_billing_anchor(), self.interval_unit, self.interval_number, restart
        ):
            return self._crm_billing_anchor()
        return restart

    def _crm_init_billing_anchor(self):
        """Store the anchor of the subscriptions billed before it was stored (upgrade to 1.1)."""
        for subscription in self.filtered(lambda s: not s.billing_anchor_date and s.next_invoice_date):
            subscription.billing_anchor_date = subscription._crm_billing_anchor()
        return True

    # === BILLING === #

    @api.model
    def _cron_bill(self, now=None, batch_size=50, budget=None):
        """Invoice and charge every subscription due at ``now``, in committed batches, within
        the share of Odoo's worker limits a run may use; what is left runs next (at once).

        One invoice per subscription and period whatever happens: the period's start is a
        unique key of the invoice. One charge per invoice: the charge's idempotency key comes
        from the invoice. A crash loses at most the batch in progress; the next run resumes.

        :param now: the run's time, a UTC datetime: each company bills what is due on its own
            day then (see :meth:`_crm_company_today`; a date is that day everywhere)
        :param int batch_size: subscriptions billed and committed together (fewer when time is
            short)
        :param TimeBudget budget: when to stop; by default the share of Odoo's limits, shared
            by the runs of one unit of work of the cron
        :return: how many subscriptions were billed or retried
        """
        now = now or fields.Datetime.now()  # one instant for the whole run
        due_domains = self._crm_billing_domains(now)  # each company's day, once per run
        auto_commit = not getattr(threading.current_thread(), "testing", False)
        budget = budget or TimeBudget.for_run(self.env, config)
        billed = done = 0
        skipped = []
        drained = False
        while budget.allows_batch():
            due = self._crm_due_for_billing(due_domains, skipped, limit=budget.batch_size(batch_size))
            if not due:
                drained = True
                break
            with budget.batch(len(due)):
                billed += due._bill_batch(now, skipped)
                if auto_commit:
                    self.env.cr.commit()  # pylint: disable=invalid-commit
                    # What the batch loaded is not needed again: memory stays flat over a long run.
                    self.env.invalidate_all()
            done += len(due)
        remaining = 0 if drained else self._crm_due_for_billing(due_domains, skipped, count=True)
        cron = self.env.ref("crm_payment_integration.ir_cron_crm_subscription_bill")
        report_cron_progress(cron, done, remaining)
        return billed

    @api.model
    @api.model
    def _crm_billing_domains(self, now):
        """Return the domains of what is due at ``now``, each company's day being its own, with
        their order: due periods first, then dunning retries."""
        base_domain = [("managed_by", "=", "odoo")]
        return (
            (
                base_domain
                + [("state", "in", ("trial", "active"))]
                + self._crm_due_domain("next_invoice_date", now),
                "next_invoice_date, id",
            ),
            (
                base_domain + [("state", "=", "past_due")] + self._crm_due_domain("dunning_next_date", now),
                "dunning_next_date, id",
            ),
        )

    @api.model
    def _crm_due_for_billing(self, due_domains, skipped, limit=None, count=False):
        """Return the subscriptions of ``due_domains`` (:meth:`_crm_billing_domains`) to bill,
        but ``skipped``; their number with ``count``."""
        domains = [(domain + [("id", "not in", skipped)], order) for domain, order in due_domains]
        if count:
            return sum(self.search_count(domain) for domain, __ in domains)
        for domain, order in domains:
            due = self.search(domain, limit=limit, order=order)
            if due:
                return due
        return self.browse()

    def _bill_batch(self, now, skipped):
        """Bill a batch: the invoices are created and posted together, then each is charged;
        the payments Stripe confirmed are posted and reconciled together.

        A subscription failing with a user error is noted and skipped until the next run; the
        others go on.

        :param now: the run's time (see :meth:`_cron_bill`)
        :param list skipped: ids of the subscriptions that failed, extended here
        :return: how many subscriptions were billed or retried
        """
        batch = EventBatch()
        subscriptions = self.with_context(crm_batch=batch)
        retrying = subscriptions.filtered(lambda s: s.state == "past_due")
        to_bill = subscriptions - retrying
        failed = self.browse()
        to_charge = []
        try:
            with self.env.cr.savepoint():
                to_charge = to_bill._bill_periods()
        except UserError:
            for subscription in to_bill:  # one at a time, to set the failing one aside
                try:
                    with self.env.cr.savepoint():
                        to_charge += subscription._bill_periods()
                except UserError as error:
                    failed |= subscription._billing_failed(error, skipped)
        steps = [(subscription, invoice) for subscription, invoice in to_charge]
        steps += [(subscription, None) for subscription in retrying]
        for subscription, invoice in steps:
            confirmed = len(batch.confirmed)
            today = subscription._crm_today(now)
            try:
                with self.env.cr.savepoint():
                    if invoice:
                        subscription._charge_invoice(invoice, today)
                    else:
                        subscription._retry_payment(today)
            except UserError as error:
                del batch.confirmed[confirmed:]  # rolled back with the savepoint
                if invoice:
                    # The invoice stands; due again, the next run charges it (or sends its link).
                    subscription.next_invoice_date = invoice.crm_period_start
                failed |= subscription._billing_failed(error, skipped)
        if batch.confirmed:
            self.env["payment.transaction"].browse(batch.confirmed)._crm_post_process_confirmed()
        return len(self - failed)

    def _billing_failed(self, error, skipped):
        """One subscription must not stop the run: it is retried at the next one."""
        skipped.append(self.id)
        _logger.warning("billing %s failed: %s", self.name, error)
        self.message_post(body=_("Billing failed, retried at the next run: %s", error))
        return self

    def _bill_periods(self):
        """Invoice the period starting at each subscription's next invoice date; the invoices
        are created and posted together. A period already invoiced (a run that crashed after
        committing it) is not invoiced again.

        :return: the ``(subscription, invoice)`` pairs to charge
        :rtype: list
        """
        Move = self.env["account.move"]
        expired = self.filtered(lambda s: s.end_date and s.next_invoice_date > s.end_date)
        for subscription in expired:
            subscription.write({"state": "expired", "next_invoice_date": False})
            subscription.message_post(body=_("Expired at the end of its last period."))
        to_bill = self - expired
        if not to_bill:
            return []
        invoices = {
            (move.crm_subscription_id.id, move.crm_period_start): move
            for move in Move.search(
                [
                    ("crm_subscription_id", "in", to_bill.ids),
                    ("crm_period_start", "in", list(set(to_bill.mapped("next_invoice_date")))),
                    ("crm_stripe_invoice_id", "=", False),
                ]
            )
        }
        new = to_bill.filtered(lambda s: (s.id, s.next_invoice_date) not in invoices)
        for company in new.company_id:
            subscriptions = new.filtered(lambda s, company=company: s.company_id == company)
            moves = (
                Move.with_company(company)
                .with_context(mail_create_nolog=True)
                .create([subscription._period_invoice_values() for subscription in subscriptions])
            )
            for subscription, move in zip(subscriptions, moves, strict=True):
                invoices[subscription.id, subscription.next_invoice_date] = move
                subscription.adjustment_ids.filtered(lambda a: not a.invoice_id).invoice_id = move
        pairs = [
            (subscription, invoices[subscription.id, subscription.next_invoice_date])
            for subscription in to_bill
        ]
        cancelled = Move.union(*(invoice for __, invoice in pairs)).filtered(lambda m: m.state == "cancel")
        cancelled.button_draft()  # the period's invoice, cancelled by hand: billed again
        drafts = Move.union(*(invoice for __, invoice in pairs)).filtered(lambda m: m.state == "draft")
        drafts.action_post()
        for subscription in to_bill:
            values = {
                "next_invoice_date": subscription._crm_next_billing_date(subscription.next_invoice_date)
            }
            if subscription.state == "trial":
                values["state"] = "active"
            subscription.write(values)
        return pairs

    def _period_invoice_values(self):
        """The invoice of the period starting at the next invoice date, with the prorations
        waiting for it."""
        self.ensure_one()
        period_start = self.next_invoice_date
        period_end = self._crm_next_billing_date(period_start) - relativedelta(days=1)
        period = _("%(start)s to %(end)s", start=period_start, end=period_end)
        return {
            "move_type": "out_invoice",
            "partner_id": self.partner_id.id,
            "currency_id": self.currency_id.id,
            "invoice_date": period_start,
            "invoice_user_id": self.user_id.id,
            "invoice_origin": self.name,
            "crm_subscription_id": self.id,
            "crm_period_start": period_start,
            "crm_period_end": period_end,
            "crm_lead_id": self.lead_id.id,
            "invoice_line_ids": [
                (
                    0,
                    0,
                    {
                        "product_id": line.product_id.id,
                        "name": f"{line.name or line.product_id.display_name} ({period})",
                        "quantity": line.quantity,
                        "price_unit": line.price_unit,
                        "discount": line.discount,
                        "tax_ids": [(6, 0, line.tax_ids.ids)],
                    },
                )
                for line in self.line_ids
            ]
            + [
                (
                    0,
                    0,
                    {
                        "name": adjustment.name,
                        "quantity": 1,
                        "price_unit": adjustment.amount,
                        "tax_ids": [(6, 0, adjustment.tax_ids.ids)],
                    },
                )
                for adjustment in self.adjustment_ids.filtered(lambda a: not a.invoice_id)
            ],
        }

    def _charge_invoice(self, invoice, today=None):
        """Charge the saved method off-session, or send the payment link without one.

        :return: whether the invoice is paid or being paid (False: declined, or a link sent)
        """
        self.ensure_one()
        if invoice.currency_id.is_zero(invoice.amount_residual):
            return True
        token = self.payment_token_id if self.payment_token_id.active else self.env["payment.token"]
        if token and not self._crm_token_is_own(token):
            # Inconsistent data (written before the constraint, or in SQL): never charge
            # another customer's card; the customer gets the payment link instead.
            _logger.warning("%s: payment method %s is not its customer's, not charged", self.name, token.id)
            token = self.env["payment.token"]
        if not token:
            invoice._crm_send_payment_link(self.user_id or self.env.user)
            return False
        held = self.partner_id._crm_automatic_charges_held(self.company_id)
        if held:  # a risk flag holds the customer's charges until a person clears it
            self._crm_hold_charge(invoice, held)
            return False
        # A charge waiting for the customer (3-D Secure) or already paid is not made again.
        if invoice.transaction_ids.filtered(
            lambda tx: tx.crm_flow == "off_session" and tx.state in ("draft", "pending", "authorized", "done")
        ):
            return True
        # Named after what is charged (the subscription's period), not after the invoice, whose
        # name a crashed run may see shift: the reference, hence the idempotency key and every
        # parameter of the charge, is the same when a run repeats it; an earlier attempt that
        # stands (declined) makes the next one a new charge ("-1", "-2"...).
        reference_prefix = invoice.crm_period_start and f"{self.name}-{invoice.crm_period_start}"
        if reference_prefix and self._crm_adopt_period_charge(invoice, reference_prefix):
            return True
        tx = self.env["payment.transaction"]._crm_create(
            invoice.partner_id,
            invoice.amount_residual,
            invoice.currency_id,
            "off_session",
            invoices=invoice,
            token=token,
            lead=self.lead_id,
            reference_prefix=reference_prefix,
        )
        tx._crm_charge_off_session()
        if tx.state == "error":
            self._payment_failed(tx, today or self._crm_today())
            return False
        return True

    def _crm_adopt_period_charge(self, invoice, reference_prefix):
        """Give ``invoice`` the charge of its period that pays no invoice, if there is one.

        A run rolled back after Stripe took the money loses the period's invoice; its charge
        comes back without it (restored from the request kept apart, by the webhook or the
        cron), under the period's reference. Charged again, the period would get a new
        reference ("-1"), hence a new idempotency key and a second PaymentIntent: the charge
        that stands pays the new invoice instead (reconciled if it is the customer's credit
        already; still under way, its outcome decides).

        :return: whether such a charge was found (then nothing is charged)
        """
        self.ensure_one()
        pattern = re.compile(re.escape(reference_prefix) + r"(-\d+)?")
        txs = (
            self.env["payment.transaction"]
            .sudo()
            .search(
                [
                    ("reference", "=like", f"{reference_prefix}%"),
                    ("crm_flow", "in", ("off_session", "stripe")),
                    ("state", "in", ("draft", "pending", "authorized", "done")),
                    ("invoice_ids", "=", False),
                    ("operation", "!=", "refund"),
                ],
                order="id",
            )
            .filtered(lambda tx: pattern.fullmatch(tx.reference))
        )
        tx = txs.filtered(lambda tx: tx.state == "done")[:1] or txs[:1]
        if not tx:
            return False
        tx.invoice_ids = invoice
        payment = tx.payment_id
        if payment:
            payment.invoice_ids |= invoice
        tx._crm_reconcile_with(invoice)
        invoice.sudo().message_post(
            body=_(
                "Paid by %(reference)s, the charge of this period made by a billing run that was "
                "rolled back: nothing was charged again.",
                reference=tx.reference,
            )
            if tx.state == "done"
            else _(
                "The charge of this period %(reference)s (a billing run that was rolled back) is "
                "still under way: nothing was charged again.",
                reference=tx.reference,
            )
        )
        return True

    # === REMINDERS === #

    @api.model
    def _cron_reminders(self, now=None, budget=None):
        """Remind customers of renewals (a setting, 7 days ahead by default) and ask those
        whose saved card expires within 30 days for a new one; each reminder is sent once.
        Committed in batches within the run's share of Odoo's worker limits; the next run
        (at once) goes on with the rest.

        :param now: the run's time, a UTC datetime: each subscription's day is its company's
            (see :meth:`_crm_company_today`; a date is that day everywhere)
        :param TimeBudget budget: when to stop; by default the share of Odoo's limits
        """
        now = now or fields.Datetime.now()
        renewal = self.env.ref("crm_payment_integration.mail_template_crm_subscription_renewal")
        sent = 0
        for subscription in iter_batches(
            self.search(
                [("state", "=", "active"), ("next_invoice_date", "!=", False), ("managed_by", "=", "odoo")]
            ),
            budget or TimeBudget.for_run(self.env, config),
            self.env.ref("crm_payment_integration.ir_cron_crm_subscription_reminders"),
            commit=not getattr(threading.current_thread(), "testing", False),
        ):
            today = subscription._crm_today(now)
            days = subscription.company_id.crm_renewal_reminder_days
            due = subscription.next_invoice_date
            if (
                days
                and due != subscription.renewal_reminded_for
                and today >= due - relativedelta(days=days)
                and today < due
            ):
                renewal.send_mail(subscription.id, email_layout_xmlid="mail.mail_notification_light")
                subscription.renewal_reminded_for = due
                sent += 1
            token = subscription.payment_token_id
            if token and token.crm_exp_year and token != subscription.card_reminded_token_id:
                expires = date(token.crm_exp_year, token.crm_exp_month or 12, 1) + relativedelta(
                    months=1, days=-1
                )
                if today >= expires - relativedelta(days=30) and subscription.partner_id.email:
                    try:
                        with self.env.cr.savepoint():
                            subscription.partner_id._crm_send_setup_link(
                                "crm_payment_integration.mail_template_crm_payment_card_expiring",
                                subscription.company_id,
                            )
                    except UserError as error:
                        # One customer Stripe cannot serve now must not hold up the others'
                        # reminders: this one is asked again at the next run.
                        _logger.warning("%s: card expiry reminder not sent: %s", subscription.name, error)
                        continue
                    subscription.card_reminded_token_id = token
                    subscription.message_post(
                        body=_(
                            "The customer was asked for a new card (the saved one expires on %s).", expires
                        )
                    )
                    sent += 1
        return sent

    # === PRORATION === #

    def _prorate(self, line, old_amount, new_amount, today=None):
        """Bill the difference of a line changed mid-period, for the days left in the period.

        :param date today: the day of the change (a parameter for tests)
        """
        self.ensure_one()
        if self.state not in ("active", "past_due") or not self.next_invoice_date:
            return
        today = today or self._crm_today()
        # The period being served: the one before the next billing date, counted from the anchor.
        period_end = self.next_invoice_date
        period_start = billing_dates.previous_period_start(
            self._crm_billing_anchor(), self.interval_unit, self.interval_number, period_end
        )
        if not period_start <= today < period_end:
            return
        fraction = billing_dates.remaining_fraction(period_start, period_end, today)
        amount = self.currency_id.round((new_amount - old_amount) * fraction)
        if self.currency_id.is_zero(amount):
            return
        name = _(
            "%(line)s changed on %(date)s: %(days)s of %(total)s days prorated",
            line=line.name or line.product_id.display_name,
            date=today,
            days=(period_end - today).days,
            total=(period_end - period_start).days,
        )
        if self.company_id.crm_proration_mode == "immediate":
            move = (
                self.env["account.move"]
                .with_company(self.company_id)
                .create(
                    {
                        "move_type": "out_invoice" if amount > 0 else "out_refund",
                        "partner_id": self.partner_id.id,
                        "currency_id": self.currency_id.id,
                        "invoice_origin": self.name,
                        "crm_subscription_id": self.id,
                        "invoice_line_ids": [
                            (
                                0,
                                0,
                                {
                                    "name": name,
                                    "quantity": 1,
                                    "price_unit": abs(amount),
                                    "tax_ids": [(6, 0, line.tax_ids.ids)],
                                },
                            )
                        ],
                    }
                )
            )
            move.action_post()
            if amount > 0:
                self._charge_invoice(move, today)
            self.message_post(body=_("Prorated change billed at once: %s", move._get_html_link()))
        else:
            self.env["crm.subscription.adjustment"].create(
                {
                    "subscription_id": self.id,
                    "name": name,
                    "amount": amount,
                    "tax_ids": [(6, 0, line.tax_ids.ids)],
                }
            )
            self.message_post(body=_("Prorated change added to the next invoice: %s", name))

    # === DUNNING === #

    def _retry_days(self):
        days = []
        for part in (self.company_id.crm_dunning_retry_days or "").split(","):
            if part.strip().isdigit():
                days.append(int(part.strip()))
        return sorted(days)

    def _payment_failed(self, tx, today):
        """A charge failed: past due, and the next retry scheduled, unless it cannot succeed
        (a lost or stolen card, a closed account), or the retries are exhausted."""
        self.ensure_one()
        attempts = self.dunning_attempts + 1
        days = self._retry_days()
        hard = tx.crm_decline_code in HARD_DECLINE_CODES
        values = {"state": "past_due", "dunning_attempts": attempts, "dunning_next_date": False}
        if not hard and attempts <= len(days):
            first_failure = today - relativedelta(days=days[attempts - 2]) if attempts > 1 else today
            values["dunning_next_date"] = first_failure + relativedelta(days=days[attempts - 1])
        self.write(values)
        if hard:
            self.message_post(
                body=_(
                    "Payment failed (%(reason)s): retrying cannot succeed, the customer is asked for "
                    "another payment method.",
                    reason=tx.crm_decline_reason,
                )
            )
        elif values["dunning_next_date"]:
            self.message_post(
                body=_(
                    "Payment failed (%(reason)s): retry on %(date)s.",
                    reason=tx.crm_decline_reason,
                    date=values["dunning_next_date"],
                )
            )
        else:
            self._dunning_exhausted()

    def _dunning_exhausted(self):
        self.ensure_one()
        if self.company_id.crm_dunning_final_action == "cancel":
            self.action_cancel(_("unpaid after every payment retry"))
        else:
            self.write({"state": "paused"})
            self.message_post(body=_("Paused: unpaid after every payment retry."))
        self.activity_schedule(
            "mail.mail_activity_data_todo",
            user_id=(self.user_id or self.env.user).id,
            summary=_("Subscription unpaid"),
            note=_(
                "%(name)s is still unpaid after %(count)s attempts.",
                name=self.name,
                count=self.dunning_attempts,
            ),
        )

    def _retry_payment(self, today):
        """Charge the past-due invoices again; paid, the subscription is active again."""
        self.ensure_one()
        unpaid = self._crm_unpaid_invoices()
        token = self.payment_token_id if self.payment_token_id.active else self.env["payment.token"]
        if not unpaid or not token:
            self.write({"dunning_next_date": False})
            if not unpaid:
                self._payment_recovered()
            return
        for invoice in unpaid:
            if not self._charge_invoice(invoice, today):
                return
        self._payment_recovered()

    def _crm_unpaid_invoices(self):
        self.ensure_one()
        return self.invoice_ids.filtered(
            lambda m: (
                m.move_type == "out_invoice"
                and m.state == "posted"
                and not m.currency_id.is_zero(m.amount_residual)
            )
        ).sorted("crm_period_start")

    @api.model
    def _crm_on_new_payment_method(self, partner):
        """The customer saved a new payment method: charge their past-due invoices with it now."""
        for subscription in self.search(
            [
                ("partner_id", "=", partner.commercial_partner_id.id),
                ("state", "=", "past_due"),
                ("managed_by", "=", "odoo"),  # Stripe Billing retries its own
            ]
        ):
            token = partner._crm_default_token(subscription.company_id)
            if token:
                subscription.payment_token_id = token
                subscription._retry_payment(subscription._crm_today())

    def _payment_recovered(self):
        self.write({"state": "active", "dunning_attempts": 0, "dunning_next_date": False})
        self.message_post(body=_("Past-due invoices paid: the subscription is active again."))

    # === RISK HOLDS === #

    def _crm_hold_charge(self, invoice, flags):
        self.ensure_one()
        values = {"dunning_next_date": False}
        if self.state in ("trial", "active"):
            values["state"] = "past_due"
        self.write(values)
        self.message_post(
            body=_(
                "%(invoice)s not charged: the customer's automatic charges are held by a risk flag "
                "(%(flags)s). They resume once a person clears it.",
                invoice=invoice.name,
                flags="; ".join(flags.mapped("summary")),
            )
        )
        _logger.info("%s: charge of %s held by risk flags %s", self.name, invoice.name, flags.ids)

    @api.model
    def _crm_resume_held_charges(self, partners):
        """The risk flags holding these customers' charges are cleared: their subscriptions
        with invoices left unpaid are retried at the next billing run (triggered now)."""
        subscriptions = self.search(
            [
                ("partner_id", "in", partners.commercial_partner_id.ids),
                ("managed_by", "=", "odoo"),
                ("state", "in", ("active", "past_due")),
            ]
        ).filtered(lambda s: s._crm_unpaid_invoices())
        for subscription in subscriptions:
            subscription.write({"state": "past_due", "dunning_next_date": subscription._crm_today()})
            subscription.message_post(
                body=_("Risk flag cleared: the unpaid invoices are charged at the next billing run.")
            )
        if subscriptions:
            self.env.ref("crm_payment_integration.ir_cron_crm_subscription_bill")._trigger(
                fields.Datetime.now()
            )
        return subscriptions


class CrmSubscriptionAdjustment(models.Model):
    """A prorated amount waiting for the subscription's next invoice (negative: a credit)."""

    _name = "crm.subscription.adjustment"
    _description = "Subscription Proration"

    subscription_id = fields.Many2one("crm.subscription", required=True, ondelete="cascade", index=True)
    currency_id = fields.Many2one(related="subscription_id.currency_id")
    name = fields.Char(required=True)
    amount = fields.Monetary(required=True)
    tax_ids = fields.Many2many("account.tax", string="Taxes")
    invoice_id = fields.Many2one("account.move", readonly=True, index="btree_not_null")


class CrmSubscriptionLineMixin(models.AbstractModel):
    """What is sold, on a subscription or on a plan."""

    _name = "crm.subscription.line.mixin"
    _description = "Subscription or Plan Line"

    product_id = fields.Many2one("product.product", required=True, check_company=True)
    name = fields.Char(string="Description")
    quantity = fields.Float(default=1.0, digits="Product Unit of Measure")
    price_unit = fields.Float(string="Unit Price", digits="Product Price")
    discount = fields.Float(string="Discount (%)", digits="Discount")
    tax_ids = fields.Many2many("account.tax", string="Taxes", domain=[("type_tax_use", "=", "sale")])

    _sql_constraints = [
        ("quantity_positive", "CHECK(quantity >= 0)", "A line cannot have a negative quantity."),
        ("price_positive", "CHECK(price_unit >= 0)", "A line cannot have a negative price."),
        ("discount_range", "CHECK(discount >= 0 AND discount <= 100)", "A discount is between 0 and 100%."),
    ]


class CrmSubscriptionLine(models.Model):
    _name = "crm.subscription.line"
    _inherit = "crm.subscription.line.mixin"
    _description = "Subscription Line"

    subscription_id = fields.Many2one("crm.subscription", required=True, ondelete="cascade", index=True)
    company_id = fields.Many2one(related="subscription_id.company_id", store=True)
    currency_id = fields.Many2one(related="subscription_id.currency_id")
    price_subtotal = fields.Monetary(compute="_compute_price_subtotal", store=True)

    def write(self, vals):
        """A quantity or price changed during a running period is prorated."""
        priced = {"quantity", "price_unit", "discount"} & set(vals)
        before = {line.id: line.price_subtotal for line in self} if priced else {}
        res = super().write(vals)
        if priced:
            today = self.env.context.get("crm_today")
            for line in self:
                line.subscription_id._prorate(line, before[line.id], line.price_subtotal, today=today)
        return res

    @api.depends("quantity", "price_unit", "discount")
    def _compute_price_subtotal(self):
        for line in self:
            line.price_subtotal = (
                line.currency_id.round(line.quantity * line.price_unit * (1 - (line.discount or 0.0) / 100))
                if line.currency_id
                else 0.0
            )
