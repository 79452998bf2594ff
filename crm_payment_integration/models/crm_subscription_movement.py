"""The MRR movement log: one row each time a subscription's MRR changes, classified per customer.

A subscription's MRR is its untaxed amount per month while it is active or past due, and 0
otherwise (draft, trial, paused, cancelled, expired): that is ``crm.subscription.mrr``'s rule.
Every write on a subscription or its lines ends in :meth:`CrmSubscription._crm_log_mrr`, the one
place that compares the subscription's monthly amount with the last one logged and writes a
movement when it differs. The kind is decided on the customer's total (all of their
subscriptions in the company), as ChartMogul and Lago do: 0 → more is *new* (first time) or
*reactivation*, more → 0 is *churn*, up is *expansion*, down is *contraction*.
"""

from dateutil.relativedelta import relativedelta

from odoo import api, fields, models
from odoo.tools import float_compare

# Subscription states whose MRR counts (as crm.subscription._compute_mrr).
COUNTED_STATES = ("active", "past_due")

KINDS = [
    ("new", "New"),
    ("expansion", "Expansion"),
    ("contraction", "Contraction"),
    ("churn", "Churn"),
    ("reactivation", "Reactivation"),
]
SOURCES = [
    ("start", "Start"),
    ("line", "Line Change"),
    ("pause", "Pause"),
    ("resume", "Resume"),
    ("cancel", "Cancellation"),
    ("expiry", "Expiry"),
    ("reactivation", "Reactivation"),
    ("mirror", "Stripe Billing Update"),
    ("rebuild", "Rebuilt from History"),
]


class CrmSubscriptionMovement(models.Model):
    """One change of one subscription's MRR, in the company currency at the rate of its date.

    Written by the add-on only (as superuser): users read it, nobody edits it (no write, create
    or unlink access in ``ir.model.access.csv``).
    """

    _name = "crm.subscription.movement"
    _description = "MRR Movement"
    _order = "date desc, id desc"
    _rec_name = "subscription_id"

    date = fields.Date(required=True, index=True, readonly=True)
    partner_id = fields.Many2one(
        "res.partner",
        string="Customer",
        required=True,
        index=True,
        readonly=True,
        help="The commercial partner of the subscription's customer.",
    )
    subscription_id = fields.Many2one(
        "crm.subscription", required=True, index=True, readonly=True, ondelete="cascade"
    )
    company_id = fields.Many2one("res.company", required=True, index=True, readonly=True)
    currency_id = fields.Many2one("res.currency", string="Company Currency", required=True, readonly=True)
    subscription_currency_id = fields.Many2one("res.currency", readonly=True)
    kind = fields.Selection(KINDS, required=True, index=True, readonly=True)
    source = fields.Selection(SOURCES, required=True, readonly=True)
    mrr_before = fields.Monetary(
        string="Subscription MRR Before",
        readonly=True,
        help="The subscription's MRR before, company currency.",
    )
    mrr_after = fields.Monetary(
        string="Subscription MRR After",
        readonly=True,
        help="The subscription's MRR after (before plus the change), company currency.",
    )
    mrr_change = fields.Monetary(
        string="MRR Change",
        readonly=True,
        help="The change of the subscription's monthly amount, converted into the company currency "
        "at the rate of the movement's date (all of its MRR when it drops to 0).",
    )
    customer_mrr_before = fields.Monetary(
        readonly=True, help="The customer's MRR (all subscriptions) before."
    )
    customer_mrr_after = fields.Monetary(readonly=True, help="The customer's MRR (all subscriptions) after.")
    cohort_month = fields.Date(
        readonly=True,
        index=True,
        help="The first day of the month of the customer's first MRR (their 'new' movement): "
        "the customer's cohort.",
    )
    cohort_age = fields.Integer(
        string="Months Since Cohort",
        readonly=True,
        aggregator=None,
        help="Whole calendar months from the customer's cohort month to the movement's month.",
    )
    amount_currency_after = fields.Float(
        string="Monthly Amount After (Subscription Currency)",
        readonly=True,
        help="The subscription's untaxed amount per month in its own currency after the movement "
        "(0 when it does not count): what the next change is compared with.",
    )

    def init(self):
        self.env.cr.execute(
            """CREATE INDEX IF NOT EXISTS crm_subscription_movement_company_partner_idx
               ON crm_subscription_movement (company_id, partner_id, id)"""
        )
        self.env.cr.execute(
            """CREATE INDEX IF NOT EXISTS crm_subscription_movement_subscription_idx
               ON crm_subscription_movement (subscription_id, id DESC)"""
        )

    @api.model
    def _crm_last_logged(self, subscription_ids):
        """Return ``{subscription id: (monthly amount in its currency, MRR in company currency)}``
        as last logged."""
        if not subscription_ids:
            return {}
        self.env.cr.execute(
            """SELECT DISTINCT ON (subscription_id) subscription_id, amount_currency_after, mrr_after
                 FROM crm_subscription_movement
                WHERE subscription_id = ANY(%s)
             ORDER BY subscription_id, id DESC""",
            [list(subscription_ids)],
        )
        return {row[0]: (row[1] or 0.0, row[2] or 0.0) for row in self.env.cr.fetchall()}

    @api.model
    def _crm_customer_state(self, partner_id, company_id):
        """Return (the customer's MRR in the company as logged, whether they ever had one,
        their cohort month or ``None``)."""
        self.env.cr.execute(
            """SELECT COALESCE(SUM(last.mrr_after), 0), COUNT(*) > 0, MIN(last.cohort_month)
                 FROM (SELECT DISTINCT ON (subscription_id) mrr_after, cohort_month
                         FROM crm_subscription_movement
                        WHERE partner_id = %s AND company_id = %s
                     ORDER BY subscription_id, id DESC) last""",
            [partner_id, company_id],
        )
        return self.env.cr.fetchone()

    @api.model
    def _crm_record(self, subscription, day, amount_currency, source):
        """Log that ``subscription``'s monthly amount became ``amount_currency`` (its currency)
        on ``day``; return the movement, or an empty recordset when nothing changed in the
        company currency.

        The change is the change of the monthly amount converted at ``day``'s rate; the MRR
        after is the MRR logged last plus the change; a subscription whose MRR drops to 0 takes
        out all of its logged MRR (so the customer's MRR always sums its movements, and a
        subscription in another currency that ends leaves nothing behind).
        """
        company = subscription.company_id
        currency = company.currency_id
        before_currency, before = self._crm_last_logged(subscription.ids).get(subscription.id, (0.0, 0.0))
        if subscription.currency_id.is_zero(amount_currency):
            change = -before
        else:
            change = currency.round(
                subscription.currency_id._convert(
                    amount_currency - before_currency, currency, company, day, round=False
                )
            )
        after = currency.round(before + change)
        if currency.is_zero(change):
            return self.browse()
        partner = subscription.partner_id.commercial_partner_id
        customer_before, known, cohort = self._crm_customer_state(partner.id, company.id)
        customer_after = currency.round(customer_before + change)
        was_paying = float_compare(customer_before, 0.0, precision_rounding=currency.rounding) > 0
        pays = float_compare(customer_after, 0.0, precision_rounding=currency.rounding) > 0
        if not was_paying and pays:
            kind = "reactivation" if known else "new"
        elif was_paying and not pays:
            kind = "churn"
        else:
            kind = "expansion" if change > 0 else "contraction"
        if kind == "new":
            cohort = day.replace(day=1)
        age = (day.year - cohort.year) * 12 + day.month - cohort.month if cohort else 0
        return self.sudo().create(
            {
                "date": day,
                "cohort_month": cohort,
                "cohort_age": age,
                "partner_id": partner.id,
                "subscription_id": subscription.id,
                "company_id": company.id,
                "currency_id": currency.id,
                "subscription_currency_id": subscription.currency_id.id,
                "kind": kind,
                "source": source,
                "mrr_before": before,
                "mrr_after": after,
                "mrr_change": change,
                "customer_mrr_before": customer_before,
                "customer_mrr_after": customer_after,
                "amount_currency_after": amount_currency,
            }
        )

    @api.model
    def _crm_rebuild(self, subscriptions=None):
        """Write the movements of subscriptions that have none (install or upgrade to 1.2),
        from what their history still tells, oldest first so that customers are classified in
        order.

        Reconstructed: each change of state in the chatter's tracking (the state field is
        tracked since 1.0), dated by its message, the state before the first one holding from
        the start date (the trial's end when there was one); without tracking, the start date
        and, for a cancelled or expired subscription, the day after its end date (else the day
        of its last change). Not reconstructable: amounts before today
        (line changes are not tracked): every movement uses the subscription's current lines.

        :return: the number of movements written
        """
        Subscription = self.env["crm.subscription"].sudo().with_context(active_test=False)
        subscriptions = (subscriptions or Subscription.search([])).sudo()
        logged = set(self._crm_last_logged(subscriptions.ids))
        subscriptions = subscriptions.filtered(lambda s: s.id not in logged and s.state != "draft")
        if not subscriptions:
            return 0
        labels = {}
        for key, label in Subscription._fields["state"]._description_selection(self.env):
            labels[label] = key
        for key, label in Subscription._fields["state"].selection:
            labels[label] = key
        values = (
            self.env["mail.tracking.value"]
            .sudo()
            .search(
                [
                    ("field_id.model", "=", "crm.subscription"),
                    ("field_id.name", "=", "state"),
                    ("mail_message_id.model", "=", "crm.subscription"),
                    ("mail_message_id.res_id", "in", subscriptions.ids),
                ]
            )
        )
        tracked = {}
        for value in values:
            message = value.mail_message_id
            state = labels.get(value.new_value_char)
            if state:
                tracked.setdefault(message.res_id, []).append(
                    (message.date.date(), message.id, labels.get(value.old_value_char), state)
                )
        events = []
        for subscription in subscriptions:
            steps = sorted(tracked.get(subscription.id, []))
            start = max(subscription.start_date, subscription.trial_end_date or subscription.start_date)
            if steps:
                # The state before the first tracked change held from the start (a subscription
                # started in the request that created it has no tracking of its start).
                first_state = steps[0][2]
                if first_state in COUNTED_STATES:
                    events.append((min(start, steps[0][0]), 0, subscription.id, first_state))
                for day, message_id, __, state in steps:
                    events.append((day, message_id, subscription.id, state))
                continue
            if subscription.state in ("trial",):
                continue
            events.append((start, 0, subscription.id, "active"))
            if subscription.state in ("cancelled", "expired"):
                end = (
                    subscription.end_date + relativedelta(days=1)
                    if subscription.end_date
                    else subscription.write_date.date()
                )
                events.append((max(end, start), 0, subscription.id, subscription.state))
            elif subscription.state == "paused":
                events.append((max(subscription.write_date.date(), start), 0, subscription.id, "paused"))
        count = 0
        # By day, then in the order the chatter wrote them (untracked: the start first).
        for day, __, subscription_id, state in sorted(events, key=lambda e: (e[0], e[1], e[3] != "active")):
            subscription = Subscription.browse(subscription_id)
            amount = subscription._crm_monthly_amount(state)
            last = self._crm_last_logged([subscription_id]).get(subscription_id, (0.0, 0.0))[0]
            if subscription.currency_id.compare_amounts(amount, last) == 0:
                continue
            count += len(self._crm_record(subscription, day, amount, "rebuild"))
        return count
