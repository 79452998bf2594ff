from odoo import fields, models


class ResCompany(models.Model):
    _inherit = "res.company"

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
        "expense account).",
    )


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    crm_drift_days = fields.Integer(related="company_id.crm_drift_days", readonly=False)
    crm_dispute_fee_account_id = fields.Many2one(
        related="company_id.crm_dispute_fee_account_id", readonly=False
    )
