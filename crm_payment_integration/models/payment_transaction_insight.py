from odoo import models


class PaymentTransaction(models.Model):
    _inherit = "payment.transaction"  # pylint: disable=consider-merging-classes-inherited

    def _update_state(self, allowed_states, target_state, state_message):
        """Override of `payment`: a payment that fails or goes through changes its subscriber's
        churn risk: their figures are recomputed at once (set-based, for those customers only)."""
        updated = super()._update_state(allowed_states, target_state, state_message)
        if updated and target_state in ("error", "done"):
            updated._crm_refresh_subscriber_insight()
        return updated

    def _crm_refresh_subscriber_insight(self):
        partners = self.sudo().partner_id.commercial_partner_id
        if not partners:
            return
        self.env.cr.execute(
            """SELECT DISTINCT company_id FROM crm_subscription_movement WHERE partner_id = ANY(%s)""",
            [partners.ids],
        )
        company_ids = [row[0] for row in self.env.cr.fetchall()]
        if company_ids:
            self.env["res.partner"]._crm_refresh_subscription_insight(
                self.env["res.company"].browse(company_ids), partner_ids=partners.ids
            )
