from odoo import _, api, fields, models
from odoo.exceptions import UserError


class ResPartner(models.Model):
    _inherit = "res.partner"

    crm_risk_flag_ids = fields.One2many("crm.payment.risk.flag", "partner_id", string="Risk Flags")
    crm_risk_open_count = fields.Integer(
        string="Open Risk Flags", compute="_compute_crm_risk_open_count", compute_sudo=True
    )
    crm_risk_hold = fields.Boolean(
        string="Automatic Charges Held", compute="_compute_crm_risk_open_count", compute_sudo=True
    )

    @api.depends("crm_risk_flag_ids.state", "commercial_partner_id")
    def _compute_crm_risk_open_count(self):
        groups = self.env["crm.payment.risk.flag"]._read_group(
            [("partner_id", "in", self.commercial_partner_id.ids), ("state", "=", "open")],
            ["partner_id", "hold_charges"],
            ["__count"],
        )
        counts, holds = {}, set()
        for partner, hold, count in groups:
            counts[partner.id] = counts.get(partner.id, 0) + count
            if hold:
                holds.add(partner.id)
        for partner in self:
            commercial = partner.commercial_partner_id.id
            partner.crm_risk_open_count = counts.get(commercial, 0)
            partner.crm_risk_hold = commercial in holds

    def _crm_automatic_charges_held(self, company=None):
        """The open risk flags holding this customer's automatic charges (billing runs, dunning
        retries, saved-card charges): every path charging a saved method without the customer
        asks this first and charges nothing while it returns flags.

        :param company: only the flags of this company (default: all of the customer's)
        :return: the open holding `crm.payment.risk.flag` records of the commercial partner,
            empty when nothing holds the charges
        """
        domain = [
            ("partner_id", "in", self.commercial_partner_id.ids),
            ("state", "=", "open"),
            ("hold_charges", "=", True),
        ]
        if company:
            domain.append(("company_id", "=", company.id))
        return self.env["crm.payment.risk.flag"].sudo().search(domain)

    def _crm_check_charges_not_held(self, company=None):
        """Refuse a saved-card charge of a customer whose charges a risk flag holds.

        :raise UserError: naming the flags, saying to clear them first
        """
        held = self._crm_automatic_charges_held(company)
        if held:
            raise UserError(
                _(
                    "Charges of %(partner)s are held by a risk flag (%(flags)s): review it and clear "
                    "it (Invoicing › Customers › Risk Flags) before charging the saved method.",
                    partner=self.commercial_partner_id.display_name,
                    flags="; ".join(held.mapped("summary")),
                )
            )
