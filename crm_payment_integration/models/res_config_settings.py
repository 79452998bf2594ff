from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    crm_payment_lead_won = fields.Boolean(related="company_id.crm_payment_lead_won", readonly=False)
    crm_payment_deposit_percent = fields.Float(
        related="company_id.crm_payment_deposit_percent", readonly=False
    )
