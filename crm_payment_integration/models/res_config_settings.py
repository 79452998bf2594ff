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

    crm_alert_user_id = fields.Many2one(related="company_id.crm_alert_user_id", readonly=False)
    crm_alert_group_id = fields.Many2one(related="company_id.crm_alert_group_id", readonly=False)
    crm_alert_email_payment_failed = fields.Boolean(
        related="company_id.crm_alert_email_payment_failed", readonly=False
    )
    crm_alert_email_dispute = fields.Boolean(related="company_id.crm_alert_email_dispute", readonly=False)
    crm_alert_email_early_fraud_warning = fields.Boolean(
        related="company_id.crm_alert_email_early_fraud_warning", readonly=False
    )
    crm_alert_email_risk_flag = fields.Boolean(related="company_id.crm_alert_email_risk_flag", readonly=False)
    crm_alert_email_event_failed = fields.Boolean(
        related="company_id.crm_alert_email_event_failed", readonly=False
    )
    crm_alert_email_webhook_silent = fields.Boolean(
        related="company_id.crm_alert_email_webhook_silent", readonly=False
    )
    crm_webhook_silence_hours = fields.Integer(related="company_id.crm_webhook_silence_hours", readonly=False)
    crm_audit_retention_days = fields.Integer(related="company_id.crm_audit_retention_days", readonly=False)
