from odoo import api, fields, models


class PaymentToken(models.Model):
    _inherit = "payment.token"  # pylint: disable=consider-merging-classes-inherited

    crm_card_country_id = fields.Many2one(
        "res.country",
        string="Card Country",
        readonly=True,
        help="The country of the card's (or bank account's) issuer, from Stripe.",
    )

    @api.model
    def _crm_upsert_from_stripe(
        self, token, stripe_pm, partner, provider_sudo, customer_id, is_default=False
    ):
        """Override to keep the issuer's country of the saved method (for the payment analysis)."""
        token = super()._crm_upsert_from_stripe(
            token, stripe_pm, partner, provider_sudo, customer_id, is_default=is_default
        )
        details = stripe_pm.get(stripe_pm.get("type")) or {}
        code = (details.get("country") or "").upper() if isinstance(details, dict) else ""
        country = (
            self.env["res.country"].search([("code", "=", code)], limit=1)
            if code
            else self.env["res.country"]
        )
        if token and token.crm_card_country_id != country and country:
            token.crm_card_country_id = country
        return token
