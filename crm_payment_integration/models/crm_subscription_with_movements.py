"""The hook of the MRR movement log on subscriptions and their lines: every change ends in
:meth:`CrmSubscription._crm_log_mrr` (see ``crm_subscription_movement``)."""

from odoo import api, fields, models

from .crm_subscription import MONTHS_PER_UNIT
from .crm_subscription_movement import COUNTED_STATES

# What a subscription's MRR depends on (see crm.subscription._compute_mrr).
MRR_FIELDS = {"state", "line_ids", "interval_unit", "interval_number", "currency_id", "company_id"}


class CrmSubscription(models.Model):
    """The hook: every change of a subscription ends in :meth:`_crm_log_mrr`."""

    _inherit = "crm.subscription"  # pylint: disable=consider-merging-classes-inherited

    movement_ids = fields.One2many(
        "crm.subscription.movement",
        "subscription_id",
        string="MRR Movements",
        groups="sales_team.group_sale_salesman,account.group_account_invoice",
    )

    def _crm_monthly_amount(self, state=None):
        """Return the untaxed amount per month in the subscription's currency when its MRR
        counts (active or past due; ``state`` instead of its own), else 0."""
        self.ensure_one()
        if (state or self.state) not in COUNTED_STATES or not self.interval_number:
            return 0.0
        return self.amount_untaxed / (MONTHS_PER_UNIT[self.interval_unit] * self.interval_number)

    def _crm_mrr_source(self, old_state):
        """Name what moved the MRR, from the state before and after."""
        self.ensure_one()
        forced = self.env.context.get("crm_mrr_source")
        if forced:
            return forced
        new = self.state
        if old_state == new:
            return "line"
        if new == "paused":
            return "pause"
        if new == "cancelled":
            return "cancel"
        if new == "expired":
            return "expiry"
        if old_state in ("cancelled", "expired"):
            return "reactivation"
        if old_state == "paused":
            return "resume"
        if old_state in (None, "draft", "trial"):
            return "start"
        return "line"

    def _crm_log_mrr(self, old_states=None):
        """Log a movement for each subscription whose monthly amount differs from the last
        one logged; then refresh its customer's figures. Deferred while ``crm_mrr_defer`` is in
        the context (a larger change logs once at its end).

        The movement's date is the subscription's day (its company's time zone) unless
        ``crm_movement_date`` is in the context (the demo and the rebuild back-date them).
        """
        if self.env.context.get("crm_mrr_defer"):
            return
        subscriptions = self.sudo().exists()
        if not subscriptions:
            return
        old_states = old_states or {}
        Movement = self.env["crm.subscription.movement"].sudo()
        logged = Movement._crm_last_logged(subscriptions.ids)
        touched = self.env["crm.subscription.movement"]
        forced_day = self.env.context.get("crm_movement_date")
        for subscription in subscriptions.sorted("id"):
            amount = subscription._crm_monthly_amount()
            last = logged.get(subscription.id, (0.0, 0.0))[0]
            if subscription.currency_id.compare_amounts(amount, last) == 0:
                continue
            day = fields.Date.to_date(forced_day) if forced_day else subscription._crm_today()
            touched |= Movement._crm_record(
                subscription, day, amount, subscription._crm_mrr_source(old_states.get(subscription.id))
            )
        if touched and not self.env.context.get("crm_insight_no_refresh"):
            self.env["res.partner"]._crm_refresh_subscription_insight(
                touched.company_id, partner_ids=touched.partner_id.ids
            )

    @api.model_create_multi
    def create(self, vals_list):
        subscriptions = super(CrmSubscription, self.with_context(crm_mrr_defer=True)).create(vals_list)
        subscriptions = subscriptions.with_env(self.env)
        subscriptions._crm_log_mrr()
        return subscriptions

    def write(self, vals):
        """Log the MRR movements the change makes (see :meth:`_crm_log_mrr`)."""
        if not MRR_FIELDS & set(vals):
            return super().write(vals)
        old_states = {subscription.id: subscription.state for subscription in self}
        res = super(CrmSubscription, self.with_context(crm_mrr_defer=True)).write(vals)
        self._crm_log_mrr(old_states)
        return res

    def _crm_apply_stripe_subscription(self, remote, cache=None):
        """Override: a Stripe Billing update logs one movement, once its state and its items
        are both applied."""
        old_states = {subscription.id: subscription.state for subscription in self}
        res = super(CrmSubscription, self.with_context(crm_mrr_defer=True))._crm_apply_stripe_subscription(
            remote, cache
        )
        self.with_context(crm_mrr_source="mirror")._crm_log_mrr(old_states)
        return res


class CrmSubscriptionLine(models.Model):
    _inherit = "crm.subscription.line"  # pylint: disable=consider-merging-classes-inherited

    @api.model_create_multi
    def create(self, vals_list):
        lines = super().create(vals_list)
        lines.subscription_id.with_context(crm_mrr_source="line")._crm_log_mrr()
        return lines

    def write(self, vals):
        res = super().write(vals)
        self.subscription_id.with_context(crm_mrr_source="line")._crm_log_mrr()
        return res

    def unlink(self):
        subscriptions = self.subscription_id
        res = super().unlink()
        subscriptions.with_context(crm_mrr_source="line")._crm_log_mrr()
        return res
