from odoo import fields, models


class CrmLead(models.Model):
    _inherit = "crm.lead"  # pylint: disable=consider-merging-classes-inherited

    crm_customer_id = fields.Many2one(
        "res.partner", related="partner_id.commercial_partner_id", string="Customer Account"
    )
    crm_customer_lifetime_value = fields.Float(
        related="partner_id.commercial_partner_id.crm_lifetime_value", string="Customer Lifetime Value"
    )
    crm_customer_average_transaction = fields.Float(
        related="partner_id.commercial_partner_id.crm_average_transaction",
        string="Customer Average Transaction",
    )
    crm_customer_last_payment_date = fields.Date(
        related="partner_id.commercial_partner_id.crm_last_payment_date", string="Customer Last Payment"
    )
    crm_customer_rfm_score = fields.Char(
        related="partner_id.commercial_partner_id.crm_rfm_score", string="RFM Score"
    )
    crm_customer_rfm_segment = fields.Selection(
        related="partner_id.commercial_partner_id.crm_rfm_segment", string="Customer Segment"
    )
