from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

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
