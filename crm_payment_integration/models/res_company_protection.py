from odoo import fields, models


class ResCompany(models.Model):
    _inherit = "res.company"

    crm_alert_user_id = fields.Many2one(
        "res.users",
        string="Alert User",
        help="Who gets an activity for each payment alert (failed payments, disputes, fraud "
        "warnings, risk flags, failed events, a silent webhook).",
    )
    crm_alert_group_id = fields.Many2one(
        "res.groups",
        string="Alert Group",
        help="Without an alert user, each user of this group gets the activity.",
    )
    crm_alert_email_payment_failed = fields.Boolean(string="Email on Failed Payments")
    crm_alert_email_dispute = fields.Boolean(string="Email on Disputes", default=True)
    crm_alert_email_early_fraud_warning = fields.Boolean(string="Email on Early Fraud Warnings", default=True)
    crm_alert_email_risk_flag = fields.Boolean(string="Email on Risk Flags")
    crm_alert_email_event_failed = fields.Boolean(string="Email on Failed Stripe Events")
    crm_alert_email_webhook_silent = fields.Boolean(string="Email on a Silent Webhook", default=True)
    crm_webhook_silence_hours = fields.Integer(
        string="Webhook Silence (hours)",
        default=24,
        help="Alert when no Stripe event arrived for this long while payments were being made; 0: never.",
    )
    crm_audit_retention_days = fields.Integer(
        string="Audit Retention (days)",
        default=3650,
        help="Audit lines older than this are purged by a daily cron; 0 keeps them for ever.",
    )
