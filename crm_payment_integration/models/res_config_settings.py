from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    crm_payment_lead_won = fields.Boolean(related="company_id.crm_payment_lead_won", readonly=False)
    crm_dunning_retry_days = fields.Char(related="company_id.crm_dunning_retry_days", readonly=False)
    crm_dunning_final_action = fields.Selection(related="company_id.crm_dunning_final_action", readonly=False)
    crm_proration_mode = fields.Selection(related="company_id.crm_proration_mode", readonly=False)
    crm_renewal_reminder_days = fields.Integer(related="company_id.crm_renewal_reminder_days", readonly=False)
    crm_payment_deposit_percent = fields.Float(
        related="company_id.crm_payment_deposit_percent", readonly=False
    )
    crm_drift_days = fields.Integer(related="company_id.crm_drift_days", readonly=False)
    crm_dispute_fee_account_id = fields.Many2one(
        related="company_id.crm_dispute_fee_account_id", readonly=False
    )
