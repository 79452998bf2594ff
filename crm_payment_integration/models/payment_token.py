from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from .. import const


class PaymentToken(models.Model):
    _inherit = "payment.token"

    crm_exp_month = fields.Integer(string="Expiry Month", readonly=True)
    crm_exp_year = fields.Integer(string="Expiry Year", readonly=True)
    crm_card_fingerprint = fields.Char(
        string="Card Fingerprint", readonly=True, help="Stripe's fingerprint of the card number (risk rules)."
    )
    crm_card_country = fields.Char(string="Card Country", readonly=True, size=2)
    crm_is_default = fields.Boolean(
        string="Default in Stripe",
        readonly=True,
        help="The customer's default payment method for invoices in Stripe.",
    )

    _sql_constraints = [
        (
            "crm_stripe_payment_method_uniq",
            "unique(provider_id, stripe_payment_method)",
            "A Stripe payment method is saved once per provider.",
        ),
    ]

    def _crm_label(self):
        """The method as a person names it: brand, last digits and expiry, e.g.
        ``VISA •••• 4242 (08/2034)``."""
        self.ensure_one()
        label = f"{self.payment_method_id.name} {self._build_display_name()}"
        if self.crm_exp_month and self.crm_exp_year:
            label += f" ({self.crm_exp_month:02d}/{self.crm_exp_year})"
        return label

    def _crm_check_owner(self, partner, company=None):
        """Refuse a saved method that is not the paying customer's (their commercial partner's),
        or not of ``company``'s Stripe account: whatever a client sends, a charge is made to the
        payer's own card only.

        :param partner: the `res.partner` who pays
        :param company: the `res.company` whose Stripe account charges (any when not given)
        :raise ValidationError: naming the card, its owner and the payer
        """
        payer = partner.commercial_partner_id
        for token in self.sudo():
            owner = token.partner_id.commercial_partner_id
            if not token._crm_is_owned_by(partner, company):
                raise ValidationError(
                    _(
                        "%(card)s belongs to %(owner)s, not to %(customer)s: charge a payment "
                        "method %(customer)s saved in %(company)s.",
                        card=token.display_name,
                        owner=owner.display_name if owner != payer else token.provider_id.company_id.name,
                        customer=payer.display_name,
                        company=(company or token.provider_id.company_id).name,
                    )
                )

    def _crm_is_owned_by(self, partner, company=None):
        """Whether this saved method is ``partner``'s (their commercial partner's), in
        ``company``'s Stripe account when one is given."""
        self.ensure_one()
        token = self.sudo()
        return token.partner_id.commercial_partner_id == partner.commercial_partner_id and (
            not company or token.provider_id.company_id == company
        )

    def _crm_archive(self):
        """Archive tokens whose payment method Stripe no longer offers (never delete them:
        transactions refer to them)."""
        self.write({"active": False, "crm_is_default": False})

    @api.model
    def _crm_payment_method_for(self, stripe_pm):
        """Return Odoo's `payment.method` matching a Stripe payment method (its card brand)."""
        brand = (stripe_pm.get("card") or {}).get("brand")
        code = const.CARD_BRAND_MAPPING.get(brand) or "card"
        PaymentMethod = self.env["payment.method"].sudo().with_context(active_test=False)
        return PaymentMethod.search([("code", "=", code)], limit=1) or PaymentMethod.search(
            [("code", "=", "card")], limit=1
        )

    @api.model
    def _crm_upsert_from_stripe(
        self, token, stripe_pm, partner, provider_sudo, customer_id, is_default=False
    ):
        """Create or update the token of a Stripe payment method. Card data is never kept:
        only the brand, the last 4 digits and the expiry. Stripe has the method attached to the
        customer, so the token is active (again, if it was archived when detached).

        :param recordset token: the existing `payment.token`, or an empty recordset
        :param dict stripe_pm: the Stripe PaymentMethod object
        :return: the token
        """
        details = stripe_pm.get(stripe_pm.get("type")) or {}
        values = {
            "payment_details": details.get("last4") or "",
            "crm_exp_month": details.get("exp_month") or 0,
            "crm_exp_year": details.get("exp_year") or 0,
            "crm_card_fingerprint": details.get("fingerprint") or False,
            "crm_card_country": (details.get("country") or "").upper()[:2] or False,
            "crm_is_default": is_default,
            "active": True,
        }
        if token:
            changed = {k: v for k, v in values.items() if token[k] != v}
            if changed:
                token.write(changed)
            return token
        return self.sudo().create(
            {
                **values,
                "provider_id": provider_sudo.id,
                "payment_method_id": self._crm_payment_method_for(stripe_pm).id,
                "partner_id": partner.id,
                "provider_ref": customer_id,
                "stripe_payment_method": stripe_pm["id"],
            }
        )
