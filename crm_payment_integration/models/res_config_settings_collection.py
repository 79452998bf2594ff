from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"  # pylint: disable=consider-merging-classes-inherited

    crm_credit_hold_amount = fields.Monetary(
        related="company_id.crm_credit_hold_amount", readonly=False, currency_field="currency_id"
    )
    crm_credit_hold_days = fields.Integer(related="company_id.crm_credit_hold_days", readonly=False)
