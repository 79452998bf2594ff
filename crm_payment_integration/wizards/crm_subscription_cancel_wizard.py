from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import format_date

from .. import utils


class CrmSubscriptionCancelWizard(models.TransientModel):
    """Cancel a subscription at the end of its period, with the reason the customer gave."""

    _name = "crm.subscription.cancel.wizard"
    _description = "Cancel a Subscription at Period End"

    subscription_id = fields.Many2one("crm.subscription", required=True, readonly=True, ondelete="cascade")
    reason = fields.Text(required=True, help="Why the customer leaves; kept in the subscription's chatter.")
    end_date = fields.Date(
        string="Ends On",
        compute="_compute_end_date",
        help="The last day of the period already invoiced: nothing is billed after it.",
    )

    @api.depends("subscription_id")
    def _compute_end_date(self):
        for wizard in self:
            wizard.end_date = wizard.subscription_id and wizard.subscription_id._crm_period_end()

    def action_confirm(self):
        """Plan the end of the subscription and say when it ends.

        :return: a notification naming the subscription and its last day
        :raise UserError: when the reason is empty or the subscription is not running
        """
        self.ensure_one()
        subscription = self.subscription_id
        subscription.check_access("write")
        reason = (self.reason or "").strip()
        if not reason:
            raise UserError(_("Say why the customer cancels: it is kept on the subscription."))
        if subscription.state not in ("trial", "active", "past_due", "paused"):
            raise UserError(
                _("%(name)s is not running: there is no period to end it at.", name=subscription.name)
            )
        subscription.action_cancel_at_period_end(reason=reason)
        return utils.notification(
            _(
                "%(name)s ends on %(date)s; it is not renewed after.",
                name=subscription.name,
                date=format_date(self.env, subscription.end_date),
            ),
            title=_("Cancellation planned"),
        )
