from odoo import fields, models

DISPUTE_READERS = "sales_team.group_sale_salesman,account.group_account_invoice"


class AccountMove(models.Model):
    _inherit = "account.move"

    crm_dispute_count = fields.Integer(
        string="Disputes", compute="_compute_crm_dispute_count", groups=DISPUTE_READERS
    )

    def _compute_crm_dispute_count(self):
        counts = dict(
            self.env["crm.payment.dispute"]._read_group(
                [("invoice_id", "in", self.ids)], ["invoice_id"], ["__count"]
            )
        )
        for move in self:
            move.crm_dispute_count = counts.get(move, 0)


class ResPartner(models.Model):
    _inherit = "res.partner"

    crm_dispute_count = fields.Integer(
        string="Disputes", compute="_compute_crm_dispute_count", groups=DISPUTE_READERS
    )

    def _compute_crm_dispute_count(self):
        counts = dict(
            self.env["crm.payment.dispute"]._read_group(
                [("partner_id", "in", self.commercial_partner_id.ids)], ["partner_id"], ["__count"]
            )
        )
        for partner in self:
            partner.crm_dispute_count = counts.get(partner.commercial_partner_id, 0)
