from odoo import fields, models


class ResCompany(models.Model):
    _inherit = "res.company"

    crm_payment_lead_won = fields.Boolean(
        string="Win Opportunities When Paid",
        default=True,
        help="Move an opportunity to Won when the customer pays an amount it requested.",
    )
    crm_dunning_retry_days = fields.Char(
        string="Payment Retries (days)",
        default="1,3,5,7",
        help="Days after a failed subscription charge on which it is tried again, e.g. 1,3,5,7.",
    )
    crm_dunning_final_action = fields.Selection(
        [("pause", "Pause the subscription"), ("cancel", "Cancel the subscription")],
        string="After the Last Retry",
        default="pause",
    )
    crm_proration_mode = fields.Selection(
        [("next_invoice", "On the next invoice"), ("immediate", "Invoiced at once")],
        string="Mid-period Changes",
        default="next_invoice",
        help="How the prorated difference of a quantity or price change is billed.",
    )
    crm_renewal_reminder_days = fields.Integer(
        string="Renewal Reminder (days)",
        default=7,
        help="Days before a subscription renews on which its customer is reminded; 0: no reminder.",
    )
    crm_payment_deposit_percent = fields.Float(
        string="Default Deposit (%)",
        default=30.0,
        help="The share of the expected revenue proposed when requesting a deposit.",
    )
    crm_drift_days = fields.Integer(
        string="Drift Check Window (days)",
        default=30,
        help="The drift check compares the Stripe charges, refunds and disputes of this many "
        "last days with Odoo's.",
    )
    crm_dispute_fee_account_id = fields.Many2one(
        comodel_name="account.account",
        string="Dispute Fee Account",
        check_company=True,
        help="The expense account Stripe's dispute fees are booked to (by default the first "
        "expense account of the company).",
    )

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
