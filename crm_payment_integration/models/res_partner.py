from odoo import _, api, fields, models
from odoo.exceptions import UserError

from .crm_stripe_customer import SYNCED_PARTNER_FIELDS


class ResPartner(models.Model):
    _inherit = "res.partner"

    crm_stripe_customer_ids = fields.One2many(
        comodel_name="crm.stripe.customer",
        inverse_name="partner_id",
        string="Stripe Customers",
        groups="base.group_user",
    )
    stripe_customer_id = fields.Char(
        string="Stripe Customer ID",
        compute="_compute_stripe_customer_id",
        search="_search_stripe_customer_id",
        help="The Stripe Customer of this partner's company in the Stripe account of the current "
        "company.",
    )

    @api.depends_context("company")
    @api.depends("commercial_partner_id.crm_stripe_customer_ids.stripe_customer_id")
    def _compute_stripe_customer_id(self):
        provider_sudo = self.env["payment.provider"]._crm_get_stripe_provider()
        bindings = self.env["crm.stripe.customer"].sudo().search(
            [
                ("partner_id", "in", self.commercial_partner_id.ids),
                ("provider_id", "=", provider_sudo.id),
            ]
        )
        by_partner = {binding.partner_id.id: binding.stripe_customer_id for binding in bindings}
        for partner in self:
            partner.stripe_customer_id = by_partner.get(partner.commercial_partner_id.id, False)

    def _search_stripe_customer_id(self, operator, value):
        bindings = self.env["crm.stripe.customer"].sudo().search(
            [("stripe_customer_id", operator, value)]
        )
        return [("commercial_partner_id", "in", bindings.partner_id.ids)]

    def write(self, vals):
        res = super().write(vals)
        if not self.env.context.get("crm_stripe_no_push") and any(
            field in vals for field in SYNCED_PARTNER_FIELDS
        ):
            self._crm_mark_stripe_changed()
        return res

    def _crm_mark_stripe_changed(self):
        """Queue the partners' new details for their Stripe customers."""
        bindings = self.env["crm.stripe.customer"].sudo().search(
            [
                ("partner_id", "in", self.filtered(lambda p: p == p.commercial_partner_id).ids),
                ("needs_push", "=", False),
            ]
        )
        if bindings:
            bindings.needs_push = True
            self.env.ref("crm_payment_integration.ir_cron_crm_stripe_push")._trigger()

    def action_crm_stripe_sync(self):
        """Create or update the Stripe customer of each partner's company, both ways.

        Odoo's pending changes are sent, then the customer and its saved payment methods are
        read back from Stripe.

        :return: a notification action
        :raise UserError: when the company has no Stripe provider or Stripe refuses
        """
        provider_sudo = self.env["payment.provider"]._crm_get_stripe_provider()
        if not provider_sudo:
            raise UserError(
                _(
                    "No Stripe payment provider is set up for %(company)s. Configure it in "
                    "Invoicing > Configuration > Payment Providers.",
                    company=self.env.company.name,
                )
            )
        Binding = self.env["crm.stripe.customer"]
        partners = self.commercial_partner_id
        partners.check_access("write")
        for partner in partners:
            binding_sudo = Binding._crm_ensure_customer(partner, provider_sudo)
            if not binding_sudo._crm_pull():
                # Deleted in Stripe meanwhile: start over with a new customer.
                Binding._crm_ensure_customer(partner, provider_sudo)._crm_pull()
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "message": _(
                    "%(count)s partner(s) synchronised with Stripe.", count=len(partners)
                ),
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }
