from odoo import fields, models


class ResCompany(models.Model):
    _inherit = "res.company"  # pylint: disable=consider-merging-classes-inherited

    crm_credit_hold_amount = fields.Monetary(
        string="Credit Hold Above (amount)",
        currency_field="currency_id",
        help="A customer whose overdue invoices reach this amount (company currency) is put on "
        "credit hold; 0: no amount threshold.",
    )
    crm_credit_hold_days = fields.Integer(
        string="Credit Hold Above (days)",
        help="A customer with an invoice overdue by this many days is put on credit hold; 0: no "
        "days threshold.",
    )
    crm_collection_level_ids = fields.One2many("crm.collection.level", "company_id", string="Reminder Levels")
