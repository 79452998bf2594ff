from odoo import fields, models


class ResCompany(models.Model):
    _inherit = "res.company"

    crm_payment_lead_won = fields.Boolean(
        string="Win Opportunities When Paid",
        default=True,
        help="Move an opportunity to Won when the customer pays an amount it requested.",
    )
    crm_payment_deposit_percent = fields.Float(
        string="Default Deposit (%)", default=30.0,
        help="The share of the expected revenue proposed when requesting a deposit.",
    )
